/*-------------------------------------------------------------------------
 *
 * proxy.h
 *	  agentgate-proxy: shared state and the interfaces between its parts.
 *
 * One thread, one libevent loop.  The parts, one file each:
 *	  proxy_log.c		log lines on stderr
 *	  proxy_config.c	the configuration file
 *	  proxy_listen.c	TCP listeners and the TLS context
 *	  proxy_tickets.c	TLS session ticket keys, rotated
 *	  proxy_logincache.c verified tokens and login() results, briefly kept
 *	  proxy_client.c	per-connection state machine up to authentication
 *	  proxy_relay.c		the relay: both sockets and the protocol state
 *						(pgstream.c) of a logged-in connection
 *	  proxy_cancel.c	CancelRequest relay to PgBouncer
 *	  proxy_admin.c		admin connection: agentgate.login() and LISTEN
 *	  proxy_dbcheck.c	the client's database checked before login
 *	  proxy_patterns.c	the content patterns in force (patterns.c,
 *						applied by pgfilter.c in the relay)
 *	  proxy_main.c		startup, signals, reload, shutdown
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROXY_H
#define PROXY_H

#include <stdint.h>
#include <sys/time.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "ag_jwt.h"
#include "ag_limits.h"
#include "ag_pgproto.h"
#include "ag_pgstream.h"
#include "ag_patterns.h"
#include "ag_tokcache.h"
#include "proxy_config.h"

/* Relay: stop reading a side when the queue to the other has this much. */
#define AG_RELAY_HIGH_WATER		(256 * 1024)
#define AG_RELAY_LOW_WATER		(64 * 1024)

/* How long a relayed cancel socket may stay open waiting for PgBouncer. */
#define AG_CANCEL_HOLD_SECONDS	60

/* Peers the cancel rate limit remembers (least recently seen go first). */
#define AG_CANCEL_RATE_SLOTS	4096

typedef enum ag_client_state
{
	AG_CS_PRETLS,				/* plain TCP: SSLRequest/GSSENCRequest */
	AG_CS_STARTUP,				/* in TLS, waiting for the startup packet */
	AG_CS_PASSWORD,				/* AuthenticationCleartextPassword sent */
	AG_CS_LOGIN,				/* agentgate.login() running */
	AG_CS_CONNECTING,			/* startup packet sent to PgBouncer */
	AG_CS_RELAY,				/* bytes flow both ways */
	AG_CS_CLOSING				/* flushing a final message, then close */
} ag_client_state;

struct ag_login_req;
struct ag_dbcheck_req;
typedef struct ag_relay ag_relay;	/* proxy_relay.c */

/* A token's place in the login cache, kept from its check to login()'s answer. */
typedef struct ag_login_key
{
	int			valid;
	uint64_t	epoch;			/* the cache's, when the token came */
	uint8_t		digest[AG_TOKCACHE_DIGEST];
} ag_login_key;

typedef struct ag_client
{
	struct ag_client *prev;
	struct ag_client *next;
	uint64_t	id;
	ag_client_state state;
	int			fd;
	int			tls;			/* cbev is the TLS bufferevent */
	struct bufferevent *cbev;	/* client side until the relay (plain, then TLS) */
	ag_relay   *relay;			/* both sides from the relay on */
	struct event *timer;		/* auth_timeout, then token expiry */
	struct timeval started;
	char		peer[64];
	ag_peer_key peer_key;		/* for the cancel rate limit */
	int			counted;		/* holds a slot in ag_proxy.idents */

	ag_pg_startup *startup;		/* login phase only */
	ag_pg_client_params params;
	int			minor;			/* client's requested protocol minor */
	char		identity[AG_JWT_MAX_IDENTITY + 1];
	char		role[AG_PGPROTO_NAMELEN + 1];
	char		stamp[AG_PGPROTO_MAX_STAMP + 1];
	char		session[AG_PGPROTO_MAX_STAMP + 1];	/* session id, from session_stamp() */
	int			shared;			/* logged into PgBouncer's shared pool */
	char		client_app[AG_PGPROTO_NAMELEN + 1]; /* shared pool: shown to it */
	int64_t		exp;
	struct ag_login_req *login; /* in flight on the admin connection */
	struct ag_dbcheck_req *dbcheck; /* the database check in flight */
	char	   *claims;			/* the token's claims, until login() */
	ag_login_key cache_key;		/* where login()'s answer is cached */
	int			cached;			/* role and stamp came from the cache */
	int			awaiting_ready; /* auth_timeout still runs: no ReadyForQuery yet */
	const char *close_reason;	/* for the log line when CLOSING ends */
} ag_client;

typedef struct ag_proxy
{
	struct event_base *base;
	char	   *config_path;
	ag_proxy_config *cfg;
	SSL_CTX    *ssl_ctx;
	ag_keysource *keys;
	ag_jwt_policy policy;		/* strings point into cfg */
	ag_client  *clients;		/* all client connections */
	int			nclients;
	int			ncancels;
	ag_ident_table *idents;		/* connections per identity, and in all */
	ag_rate_table *cancel_rates;	/* CancelRequests per peer address */
	uint64_t	next_id;
	int			shutting_down;
} ag_proxy;

extern ag_proxy ag_proxy_g;

/* proxy_log.c */
typedef enum
{
	AG_LOG_DEBUG,
	AG_LOG_INFO,
	AG_LOG_WARNING,
	AG_LOG_ERROR,
	AG_LOG_FATAL
} ag_log_level;

extern void ag_log(ag_log_level level, const ag_client *c, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* proxy_listen.c */
extern SSL_CTX *ag_tls_context_new(const ag_proxy_config *cfg, char *err, size_t errlen);
extern int	ag_listen_open(const ag_proxy_config *cfg, char *err, size_t errlen);
extern void ag_listen_close(void);
extern void ag_listen_pause(void);

/* proxy_tickets.c */
extern void ag_tickets_setup(SSL_CTX *ctx, int lifetime);
extern void ag_tickets_forget(void);

/* proxy_client.c */
extern void ag_client_accept(int fd, const struct sockaddr *sa, socklen_t salen);
extern void ag_client_fatal(ag_client *c, const char *sqlstate, const char *msg,
							const char *detail, const char *hint);
extern void ag_client_free(ag_client *c, const char *reason);
extern int	ag_client_revoke(const char *identity);
extern int	ag_client_shutdown_idle(void);
extern size_t ag_client_trim_idle(void);

/*
 * proxy_relay.c: a relay owns a logged-in connection's sockets, TLS
 * session, queues and protocol state, and reports up through hooks.
 */
typedef struct ag_relay_hooks
{
	/*
	 * The relay is over (reason for the log): the owner frees it now.
	 * Called once, from the event loop, never from a call into the relay.
	 */
	void		(*ended) (void *owner, const char *reason);
} ag_relay_hooks;

typedef struct ag_relay_args
{
	const char *role;			/* the agent's role: which patterns apply */
	const ag_relay_hooks *hooks;
	void	   *owner;
	const ag_client *log_as;	/* log lines name this connection */
	int			client_fd;		/* stays the owner's to close */
	SSL		   *ssl;			/* the client's session: the relay's from now */
	const uint8_t *startup;		/* the startup packet for PgBouncer */
	size_t		startup_len;
	const uint8_t *pending_out; /* login output not yet sent to the client */
	size_t		pending_out_len;
	const uint8_t *early_in;	/* what the client sent after its password */
	size_t		early_in_len;
	const char *stamp;			/* the session stamp the client must keep */
	int			shared;			/* shared pool: stamp and role go in carriers */
	const char *client_app;		/* shared pool: application_name shown */
} ag_relay_args;

/* NULL with errno on failure (nothing was taken over then). */
extern ag_relay *ag_relay_start(const ag_relay_args *args);

/*
 * End the relay: a FATAL ErrorResponse after what is queued when the
 * client's stream is at a message boundary, otherwise just close.
 * ended() follows from the loop.
 */
extern void ag_relay_end(ag_relay *r, const char *sqlstate, const char *msg,
						 const char *detail, const char *hint, const char *reason);
extern void ag_relay_free(ag_relay *r);
extern int	ag_relay_idle(const ag_relay *r);
extern int	ag_relay_ready_seen(const ag_relay *r);
extern int	ag_relay_cancel_matches(const ag_relay *r, const uint8_t key[8],
									int only_outstanding);
extern size_t ag_relay_trim(ag_relay *r);

/* proxy_cancel.c */
extern int	ag_cancel_forward(const uint8_t *packet, size_t len);
extern ag_client *ag_cancel_target(const uint8_t *packet, size_t len);
extern int	ag_pgbouncer_addr(struct sockaddr_storage *ss, socklen_t *len);

/*
 * proxy_admin.c.  A login asks for nstamps session stamps (1 for the
 * connection, more for the login cache); stamps[0] is the connection's.
 */
typedef void (*ag_login_cb) (void *arg, int ok, const char *sqlstate,
							 const char *msg, const char *detail,
							 const char *role, const ag_tokcache_stamp *stamps,
							 int nstamps);

extern void ag_admin_start(void);
extern void ag_admin_stop(void);
extern int	ag_admin_ready(void);
extern struct ag_login_req *ag_admin_login(const char *identity,
										   const char *claims_json, int nstamps,
										   ag_login_cb cb, void *arg);
extern void ag_admin_forget(struct ag_login_req *req);

/* proxy_logincache.c */
extern void ag_logincache_reset(void);
extern void ag_logincache_free(void);
extern int	ag_logincache_take(const char *token, size_t len, ag_login_key *key,
							   ag_tokcache_hit *hit);
extern void ag_logincache_store(const ag_login_key *key, const char *identity,
								const char *role, int64_t exp,
								const ag_tokcache_stamp *stamps, int n);
extern void ag_logincache_revoked(const char *identity);
extern void ag_logincache_clear(void);

/* proxy_dbcheck.c */
typedef struct ag_dbcheck_result
{
	int			ok;
	char		sqlstate[6];
	char		msg[160];
	char		detail[200];
	char		hint[300];
} ag_dbcheck_result;

typedef void (*ag_dbcheck_cb) (void *arg, const ag_dbcheck_result *res);

/*
 * 1: answered from the cache (*res filled); 0: a check runs and cb is
 * called from the event loop later (*req lets the caller forget it);
 * -1: out of memory or the cache is full.
 */
extern int	ag_dbcheck(const char *dbname, ag_dbcheck_result *res,
					   ag_dbcheck_cb cb, void *arg, struct ag_dbcheck_req **req);
extern void ag_dbcheck_forget(struct ag_dbcheck_req *req);
extern void ag_dbcheck_invalidate(void);

/*
 * proxy_patterns.c: the content pattern set in force, reference-counted
 * (a relay keeps the set it uses until its next message boundary).
 */
struct pg_result;
typedef struct ag_pattern_set ag_pattern_set;

extern const char *ag_proxy_patterns_sql(void);
extern int	ag_proxy_patterns_result(struct pg_result *res);
extern int	ag_proxy_patterns_ready(void);
extern uint64_t ag_proxy_patterns_generation(void);
extern ag_pattern_set *ag_pattern_set_current(void);
extern void ag_pattern_set_release(ag_pattern_set *s);
extern uint64_t ag_pattern_set_generation(const ag_pattern_set *s);
extern ag_patterns *ag_pattern_set_compiled(const ag_pattern_set *s);

/* Which of the set's patterns apply to role, into *active (grown as needed). */
extern int	ag_pattern_set_active(const ag_pattern_set *s, const char *role,
								  uint8_t **active, int *cap);

#endif							/* PROXY_H */
