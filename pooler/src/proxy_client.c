/*-------------------------------------------------------------------------
 *
 * proxy_client.c
 *	  Per-connection state machine, from accept() to the relay.
 *
 *	  PRETLS	 SSLRequest -> 'S' and TLS; GSSENCRequest -> 'N';
 *				 CancelRequest -> relayed; StartupMessage -> "TLS required"
 *	  STARTUP	 (in TLS) startup packet parsed and filtered, then
 *				 AuthenticationCleartextPassword
 *	  PASSWORD	 PasswordMessage = the JWT, verified here
 *	  LOGIN		 agentgate.login() on the admin connection
 *	  RELAY		 rewritten startup packet sent to PgBouncer, bytes relayed
 *	  CLOSING	 a final ErrorResponse is flushed, then the socket closed
 *
 * auth_timeout covers everything before RELAY; in RELAY the same timer
 * fires at the token's exp + exp_grace.  Error texts never echo the token.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/crypto.h>

/* The proxy's one global state (see proxy.h). */
ag_proxy	ag_proxy_g;

/* A PasswordMessage: type, length, the token, its terminating NUL. */
#define MAX_PASSWORD_MSG (1 + 4 + AG_JWT_MAX_TOKEN + 1)
/*
 * Input buffered before the relay starts: more than any startup packet or
 * password message, so reading pauses (instead of buffering without bound)
 * only when a client sends ahead while its login runs.
 */
#define LOGIN_READ_LIMIT (64 * 1024)
/* How long a client may take to read its final error message. */
#define CLOSE_LINGER_SECONDS 5

static void pretls_read_cb(struct bufferevent *bev, void *arg);
static void startup_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void free_claims(char *claims);


static double
elapsed(const ag_client *c)
{
	struct timeval now;

	gettimeofday(&now, NULL);
	return (double) (now.tv_sec - c->started.tv_sec) +
		(double) (now.tv_usec - c->started.tv_usec) / 1e6;
}

static void
arm_timer(ag_client *c, double seconds)
{
	struct timeval tv;

	if (seconds < 0)
		seconds = 0;
	tv.tv_sec = (time_t) seconds;
	tv.tv_usec = (suseconds_t) ((seconds - (double) tv.tv_sec) * 1e6);
	evtimer_add(c->timer, &tv);
}

void
ag_client_accept(int fd, const struct sockaddr *sa, socklen_t salen)
{
	ag_proxy   *g = &ag_proxy_g;
	ag_client  *c;
	char		host[NI_MAXHOST] = "?";
	char		serv[NI_MAXSERV] = "?";
	int			one = 1;

	getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
				NI_NUMERICHOST | NI_NUMERICSERV);
	if (g->shutting_down || g->nclients >= g->cfg->max_clients)
	{
		ag_log(AG_LOG_WARNING, NULL, "connection from %s:%s refused: %s", host, serv,
			   g->shutting_down ? "shutting down" : "max_clients reached");
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
	{
		close(fd);
		return;
	}
	c->id = ++g->next_id;
	c->fd = fd;
	c->state = AG_CS_PRETLS;
	gettimeofday(&c->started, NULL);
	snprintf(c->peer, sizeof(c->peer), "%s:%s", host, serv);
	ag_peer_key_from_sockaddr(sa, salen, &c->peer_key);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	/* no CLOSE_ON_FREE: the socket moves to a TLS bufferevent later */
	c->cbev = bufferevent_socket_new(g->base, fd, 0);
	c->timer = evtimer_new(g->base, timer_cb, c);
	if (c->cbev == NULL || c->timer == NULL)
	{
		if (c->cbev)
			bufferevent_free(c->cbev);
		if (c->timer)
			event_free(c->timer);
		close(fd);
		free(c);
		return;
	}
	c->next = g->clients;
	if (g->clients)
		g->clients->prev = c;
	g->clients = c;
	g->nclients++;

	bufferevent_setcb(c->cbev, pretls_read_cb, NULL, client_event_cb, c);
	bufferevent_setwatermark(c->cbev, EV_READ, 0, LOGIN_READ_LIMIT);
	bufferevent_enable(c->cbev, EV_READ);
	arm_timer(c, g->cfg->auth_timeout);
	ag_log(AG_LOG_INFO, c, "connection accepted from %s", c->peer);
}

void
ag_client_free(ag_client *c, const char *reason)
{
	ag_proxy   *g = &ag_proxy_g;

	ag_log(AG_LOG_INFO, c,
		   "connection closed: %s%s%s duration=%.3fs peer=%s", reason,
		   c->role[0] ? " role=" : "", c->role, elapsed(c), c->peer);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->nclients--;
	if (c->counted)
		ag_ident_release(g->idents, c->identity);

	if (c->login)
		ag_admin_forget(c->login);
	if (c->dbcheck)
		ag_dbcheck_forget(c->dbcheck);
	if (c->relay)
	{
		ag_relay_free(c->relay);	/* it owns the TLS session by now */
		c->relay = NULL;
	}
	else if (c->tls && c->cbev)
	{
		SSL		   *ssl = bufferevent_openssl_get_ssl(c->cbev);

		/* best effort close_notify; the socket is non-blocking */
		if (ssl && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
			SSL_shutdown(ssl);
		ERR_clear_error();
		bufferevent_free(c->cbev);
		SSL_free(ssl);
	}
	else if (c->cbev)
		bufferevent_free(c->cbev);
	close(c->fd);
	event_free(c->timer);
	free(c->startup);
	free_claims(c->claims);
	free(c);
}

/* The final message is out (or the client stopped reading): close. */
static void
closing_write_cb(struct bufferevent *bev, void *arg)
{
	ag_client  *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ag_client_free(c, c->close_reason ? c->close_reason : "closed after error");
}

static void
send_raw_and_close(ag_client *c, const uint8_t *msg, size_t len)
{
	if (c->login)
	{
		ag_admin_forget(c->login);
		c->login = NULL;
	}
	if (c->dbcheck)
	{
		ag_dbcheck_forget(c->dbcheck);
		c->dbcheck = NULL;
	}
	if (len > 0)
		bufferevent_write(c->cbev, msg, len);
	c->state = AG_CS_CLOSING;
	bufferevent_disable(c->cbev, EV_READ);
	bufferevent_setcb(c->cbev, NULL, closing_write_cb, client_event_cb, c);
	bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
	bufferevent_enable(c->cbev, EV_WRITE);
	arm_timer(c, CLOSE_LINGER_SECONDS);
}

void
ag_client_fatal(ag_client *c, const char *sqlstate, const char *msg,
				const char *detail, const char *hint)
{
	uint8_t		buf[1024];
	int			n;

	if (c->relay)
	{
		/* the relay ends itself (at a message boundary) and reports back */
		if (c->state != AG_CS_CLOSING)
		{
			c->state = AG_CS_CLOSING;
			evtimer_del(c->timer);
			ag_relay_end(c->relay, sqlstate, msg, detail, hint, msg);
		}
		return;
	}

	n = ag_pgproto_error(buf, sizeof(buf), "FATAL", sqlstate, msg, detail, hint);
	if (n < 0)
		n = ag_pgproto_error(buf, sizeof(buf), "FATAL", sqlstate, msg, NULL, NULL);
	if (n < 0)
	{
		ag_client_free(c, msg);
		return;
	}
	send_raw_and_close(c, buf, (size_t) n);
}

/* Refuse with a FATAL error and a log line saying why. */
static void
refuse(ag_client *c, const char *sqlstate, const char *msg, const char *detail,
	   const char *hint)
{
	ag_log(AG_LOG_INFO, c, "connection refused: %s%s%s peer=%s", msg,
		   detail ? ": " : "", detail ? detail : "", c->peer);
	ag_client_fatal(c, sqlstate, msg, detail, hint);
}

/*
 * Take one complete first packet (int32 length first) from the input, at
 * most max bytes.  Returns its length, 0 if more bytes are needed, -1 on a
 * bad length (the client has been refused).
 */
static int
take_packet(ag_client *c, uint8_t *buf, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	uint8_t		hdr[4];
	uint32_t	len;

	if (evbuffer_get_length(in) < 4)
		return 0;
	evbuffer_copyout(in, hdr, 4);
	len = ag_pg_get32(hdr);
	if (len < 8 || len > max)
	{
		refuse(c, "08P01", "invalid startup packet length", NULL, NULL);
		return -1;
	}
	if (evbuffer_get_length(in) < len)
		return 0;
	evbuffer_remove(in, buf, len);
	return (int) len;
}

static void
start_tls(ag_client *c)
{
	SSL		   *ssl;

	bufferevent_free(c->cbev);
	c->cbev = NULL;
	ssl = SSL_new(ag_proxy_g.ssl_ctx);
	if (ssl == NULL)
	{
		c->state = AG_CS_PRETLS;
		ag_client_free(c, "could not create TLS session");
		return;
	}
	c->state = AG_CS_STARTUP;
	c->tls = 1;
	/* no CLOSE_ON_FREE: the relay takes the session and socket over */
	c->cbev = bufferevent_openssl_socket_new(ag_proxy_g.base, c->fd, ssl,
											 BUFFEREVENT_SSL_ACCEPTING, 0);
	if (c->cbev == NULL)
	{
		SSL_free(ssl);
		c->tls = 0;
		c->state = AG_CS_PRETLS;
		ag_client_free(c, "could not start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->cbev, 1);
	bufferevent_setcb(c->cbev, startup_read_cb, NULL, client_event_cb, c);
	bufferevent_setwatermark(c->cbev, EV_READ, 0, LOGIN_READ_LIMIT);
	bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
}

static double
monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/*
 * A CancelRequest needs no credentials and costs PgBouncer a client slot,
 * so each peer address (an IPv6 /64) gets cancel_rate a second with bursts
 * of cancel_burst; the rest are dropped here, before any connection to
 * PgBouncer.  The client learns nothing either way (PostgreSQL never
 * answers a cancel), so a dropped one looks like a relayed one.
 */
static void
relay_cancel(ag_client *c, const uint8_t *buf, size_t len)
{
	ag_proxy   *g = &ag_proxy_g;
	ag_client  *target;

	if (!ag_rate_allow(g->cancel_rates, &c->peer_key, monotonic_seconds(),
					   (double) g->cfg->cancel_rate, (double) g->cfg->cancel_burst))
	{
		ag_client_free(c, "cancel request dropped: over cancel_rate for this address");
		return;
	}

	/*
	 * Shared pool: only while the named connection waits for an answer; a
	 * late cancel could reach the statement of whichever identity the
	 * server connection serves by then (proxy_cancel.c).
	 */
	target = ag_cancel_target(buf, len);
	if (target ? target->shared && !ag_relay_cancel_matches(target->relay, buf + 8, 1)
		: g->cfg->shared_pool)
		ag_client_free(c, target ? "cancel request dropped: nothing outstanding on that connection"
					   : "cancel request dropped: no connection has that key");
	else if (ag_cancel_forward(buf, len) < 0)
		ag_client_free(c, "cancel request dropped: max_cancel_connections in flight");
	else
		ag_client_free(c, "cancel request relayed");
}

/* 'S' has been flushed: the next bytes are the client's TLS hello. */
static void
ssl_answer_flushed_cb(struct bufferevent *bev, void *arg)
{
	ag_client  *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		start_tls(c);
}

static void
pretls_read_cb(struct bufferevent *bev, void *arg)
{
	ag_client  *c = arg;
	uint8_t		buf[AG_PGPROTO_MAX_STARTUP];
	ag_pg_startup *st;
	char		err[AG_PGPROTO_ERRLEN];
	int			len;

	while (c->state == AG_CS_PRETLS)
	{
		len = take_packet(c, buf, (size_t) ag_proxy_g.cfg->max_startup_bytes);
		if (len <= 0)
			return;
		st = malloc(sizeof(*st));
		if (st == NULL)
		{
			ag_client_free(c, "out of memory");
			return;
		}
		if (ag_pgproto_parse_startup(buf, (size_t) len, st, err) < 0)
		{
			free(st);
			refuse(c, "08P01", err, NULL, NULL);
			return;
		}
		switch (st->kind)
		{
			case AG_PG_SSLREQUEST:
				free(st);

				/*
				 * Bytes after the SSLRequest would be read as if they came
				 * through TLS (CVE-2021-23214): refuse them.
				 */
				if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
				{
					ag_client_free(c, "data after SSLRequest before TLS handshake");
					return;
				}
				bufferevent_disable(bev, EV_READ);
				bufferevent_setcb(bev, NULL, ssl_answer_flushed_cb, client_event_cb, c);
				bufferevent_write(bev, "S", 1);
				return;
			case AG_PG_GSSENCREQUEST:
				free(st);
				bufferevent_write(bev, "N", 1);
				continue;
			case AG_PG_CANCELREQUEST:
				free(st);
				relay_cancel(c, buf, (size_t) len);
				return;
			case AG_PG_STARTUP:
				free(st);
				refuse(c, "28000", "TLS required",
					   "This server accepts only TLS connections.",
					   "Connect with sslmode=require.");
				return;
		}
	}
}

static void login_done(void *arg, int ok, const char *sqlstate, const char *msg,
					   const char *detail, const char *role,
					   const ag_tokcache_stamp *stamps, int nstamps);
static void database_checked(ag_client *c, const ag_dbcheck_result *dres);
static void identity_checked(ag_client *c);
static void dbcheck_done(void *arg, const ag_dbcheck_result *res);

/* Claims may name the identity's groups: wiped before they are freed. */
static void
free_claims(char *claims)
{
	if (claims)
	{
		OPENSSL_cleanse(claims, strlen(claims));
		free(claims);
	}
}

/* The relay is over: so is the connection. */
static void
relay_ended(void *owner, const char *reason)
{
	ag_client_free((ag_client *) owner, reason);
}

static const ag_relay_hooks relay_hooks = {
	.ended = relay_ended,
};

/*
 * Hand the logged-in connection to a relay: the TLS session, what the
 * login phase has not yet written to the client, and what the client
 * sent after its password.  Returns -1 (with errno) when the relay could
 * not start; the login phase's bufferevent is still there then.
 */
static int
start_relay(ag_client *c, const uint8_t *pkt, size_t len)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	ag_relay_args a;

	bufferevent_disable(c->cbev, EV_READ | EV_WRITE);
	memset(&a, 0, sizeof(a));
	a.hooks = &relay_hooks;
	a.owner = c;
	a.log_as = c;
	a.role = c->role;
	a.client_fd = c->fd;
	a.ssl = bufferevent_openssl_get_ssl(c->cbev);
	a.startup = pkt;
	a.startup_len = len;
	a.pending_out_len = evbuffer_get_length(out);
	a.pending_out = a.pending_out_len ? evbuffer_pullup(out, -1) : NULL;
	a.early_in_len = evbuffer_get_length(in);
	a.early_in = a.early_in_len ? evbuffer_pullup(in, -1) : NULL;
	a.stamp = c->stamp[0] ? c->stamp : NULL;
	a.shared = c->shared;
	a.client_app = c->client_app;
	c->relay = ag_relay_start(&a);
	if (c->relay == NULL)
		return -1;
	/* created without BEV_OPT_CLOSE_ON_FREE: the session and socket stay */
	bufferevent_free(c->cbev);
	c->cbev = NULL;
	return 0;
}

static void
password_received(ag_client *c, const char *token, size_t toklen)
{
	ag_proxy   *g = &ag_proxy_g;
	ag_keyset  *ks;
	ag_jwt_result res;
	ag_jwt_status st;
	char		err[AG_JWT_ERRLEN];
	ag_tokcache_hit hit;

	memset(&res, 0, sizeof(res));

	/*
	 * The same token logged in here a moment ago: its identity, exp and
	 * login() answer are known, and one of the stamps fetched with that
	 * login is this connection's (proxy_logincache.c says when not).
	 */
	if (ag_logincache_take(token, toklen, &c->cache_key, &hit) > 0)
	{
		c->cached = 1;
		snprintf(c->identity, sizeof(c->identity), "%s", hit.identity);
		snprintf(c->role, sizeof(c->role), "%s", hit.role);
		snprintf(c->stamp, sizeof(c->stamp), "%s", hit.stamp.stamp);
		snprintf(c->session, sizeof(c->session), "%s", hit.stamp.session);
		c->exp = hit.exp;
		OPENSSL_cleanse(&hit, sizeof(hit));
		identity_checked(c);
		return;
	}
	ks = ag_keysource_get(g->keys);
	if (ks == NULL)
	{
		refuse(c, "28000", "invalid token", "No signing keys are available.", NULL);
		return;
	}
	err[0] = '\0';
	st = ag_jwt_verify(ks, token, toklen, &g->policy, time(NULL), &res, err, sizeof(err));
	ag_keyset_unref(ks);
	if (st == AG_JWT_NO_KEY)
	{
		char		kid[128];

		ag_keysource_unknown_kid(g->keys,
								 ag_jwt_peek_kid(token, toklen, kid, sizeof(kid)) ? kid : NULL);
	}
	if (st != AG_JWT_OK)
	{
		char		detail[AG_JWT_ERRLEN + 32];

		snprintf(detail, sizeof(detail), "%s: %s", ag_jwt_status_name(st),
				 err[0] ? err : "rejected");
		refuse(c, "28000", "invalid token", detail, NULL);
		return;
	}

	/*
	 * The role is the identity that connects: with delegation the current
	 * actor (act.sub), not the principal it acts for.  The whole chain goes
	 * to the server inside the claims, where session_stamp() binds it to
	 * the session's stamp (docs/identity.md, "Delegation").
	 */
	snprintf(c->identity, sizeof(c->identity), "%s",
			 res.nchain > 0 ? res.chain[0] : res.identity);
	c->exp = res.exp;

	/*
	 * A delegated or scoped token is never cached: its stamps register the
	 * chain in the server, and a revocation may name any identity of the
	 * chain, not only the one that connects.  Scopes read from another
	 * claim (scope_claim) count too: the verifier has written them into the
	 * claims as "scope", and nscopes says so.
	 */
	if (res.nchain > 0 || res.nscopes > 0 ||
		(res.claims_json && strstr(res.claims_json, "\"scope\"") != NULL))
		c->cache_key.valid = 0;
	c->claims = strdup(res.claims_json ? res.claims_json : "{}");
	ag_jwt_result_free(&res);
	if (c->claims == NULL)
	{
		refuse(c, "53200", "out of memory", NULL, NULL);
		return;
	}
	identity_checked(c);
}

/* The token names an identity (verified now or cached): admit and log in. */
static void
identity_checked(ag_client *c)
{
	ag_proxy   *g = &ag_proxy_g;

	/*
	 * Every connection past this point becomes one of PgBouncer's clients
	 * (max_client_conn) and holds two of the proxy's descriptors: one token
	 * may not take them all.  Counted before agentgate.login(), so a flood
	 * of logins with one token does not reach the database either.
	 */
	switch (ag_ident_acquire(g->idents, c->identity, g->cfg->max_connections_per_identity,
							 g->cfg->max_connections))
	{
		case AG_IDENT_OK:
			c->counted = 1;
			break;
		case AG_IDENT_OVER_TOTAL:
			{
				char		msg[100];
				char		detail[200];

				snprintf(msg, sizeof(msg), "too many connections (max_connections = %d)",
						 g->cfg->max_connections);
				snprintf(detail, sizeof(detail),
						 "agentgate-proxy already holds %d logged-in connections.",
						 ag_ident_total(g->idents));
				refuse(c, "53300", msg, detail,
					   "Try again later, or ask the administrator to raise max_connections of agentgate-proxy.");
				return;
			}
		case AG_IDENT_OVER_IDENTITY:
			{
				char		msg[AG_JWT_MAX_IDENTITY + 100];
				char		detail[200];

				snprintf(msg, sizeof(msg),
						 "too many connections for identity \"%s\" (max_connections_per_identity = %d)",
						 c->identity, g->cfg->max_connections_per_identity);
				snprintf(detail, sizeof(detail), "The identity already holds %d connections.",
						 ag_ident_count(g->idents, c->identity));
				refuse(c, "53300", msg, detail,
					   "Close connections the agent does not use, or share a few through a connection pool.");
				return;
			}
		case AG_IDENT_NOMEM:
			refuse(c, "53200", "out of memory", NULL, NULL);
			return;
	}
	if (!ag_admin_ready())
	{
		ag_log(AG_LOG_WARNING, c, "login refused: admin connection is down, or the content patterns have not loaded");
		refuse(c, "08006", "login failed", NULL, NULL);
		return;
	}
	c->state = AG_CS_LOGIN;

	/*
	 * The database first: PgBouncer would make the client wait for
	 * query_wait_timeout on a name it cannot serve.  Checked after the
	 * token, so that only an authenticated client learns which databases
	 * exist, and before login(), so that a wrong name provisions nothing.
	 */
	{
		ag_dbcheck_result dres;
		int			rc = ag_dbcheck(c->params.database, &dres, dbcheck_done, c, &c->dbcheck);

		if (rc < 0)
			refuse(c, "53200", "out of memory", "The database check could not be started.", NULL);
		else if (rc > 0)
			database_checked(c, &dres);
	}
}

/* The database is usable (or not): go on with agentgate.login(). */
static void
database_checked(ag_client *c, const ag_dbcheck_result *dres)
{
	char	   *claims = c->claims;

	c->claims = NULL;
	if (!dres->ok)
	{
		char		detail[sizeof(dres->detail) + 120];

		free_claims(claims);
		/*
		 * libpq and node-postgres send the user name when no database is
		 * set (and PostgreSQL falls back to it when none is sent): say so.
		 */
		if (strcmp(dres->sqlstate, "3D000") == 0 && c->params.user &&
			strcmp(c->params.database, c->params.user) == 0)
			snprintf(detail, sizeof(detail),
					 "The database name is the user name \"%s\": clients use it when no database name is set.",
					 c->params.user);
		else
			snprintf(detail, sizeof(detail), "%s", dres->detail);
		refuse(c, dres->sqlstate, dres->msg, detail[0] ? detail : NULL,
			   dres->hint[0] ? dres->hint : NULL);
		return;
	}
	if (!ag_admin_ready())
	{
		free_claims(claims);
		ag_log(AG_LOG_WARNING, c, "login refused: admin connection is down, or the content patterns have not loaded");
		refuse(c, "08006", "login failed", NULL, NULL);
		return;
	}
	if (c->cached)
	{
		char		role[sizeof(c->role)];
		ag_tokcache_stamp st;

		/* login() answered for this token a moment ago */
		memcpy(role, c->role, sizeof(role));
		memcpy(st.stamp, c->stamp, sizeof(st.stamp));
		memcpy(st.session, c->session, sizeof(st.session));
		login_done(c, 1, NULL, NULL, NULL, role, &st, 1);
		return;
	}
	c->login = ag_admin_login(c->identity, claims,
							  c->cache_key.valid ? 1 + AG_TOKCACHE_STAMPS : 1, login_done, c);
	free_claims(claims);
	if (c->login == NULL)
		refuse(c, "08006", "login failed", NULL, NULL);
}

static void
dbcheck_done(void *arg, const ag_dbcheck_result *res)
{
	ag_client  *c = arg;

	c->dbcheck = NULL;
	database_checked(c, res);
}

static void
password_read(ag_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	uint8_t		hdr[5];
	uint32_t	len;
	char	   *msg;
	size_t		toklen;

	if (evbuffer_get_length(in) < 5)
		return;
	evbuffer_copyout(in, hdr, 5);
	if (hdr[0] == 'X')
	{
		ag_client_free(c, "client terminated during authentication");
		return;
	}
	if (hdr[0] != 'p')
	{
		refuse(c, "08P01", "expected password response", NULL, NULL);
		return;
	}
	len = ag_pg_get32(hdr + 1);
	if (len < 5 || len > MAX_PASSWORD_MSG - 1)
	{
		refuse(c, "28000", "invalid token", "The password message is empty or larger than the token size limit.", NULL);
		return;
	}
	if (evbuffer_get_length(in) < 1 + (size_t) len)
		return;
	msg = malloc(len + 1);
	if (msg == NULL)
	{
		ag_client_free(c, "out of memory");
		return;
	}
	evbuffer_remove(in, msg, 1 + (size_t) len);
	/* body = token + NUL; a NUL inside the token is an error */
	toklen = len - 5;
	if (msg[1 + len - 1] != '\0' || toklen == 0 || strlen(msg + 5) != toklen)
	{
		free(msg);
		refuse(c, "28000", "invalid token", "The password message is not one NUL-terminated string.", NULL);
		return;
	}
	password_received(c, msg + 5, toklen);
	OPENSSL_cleanse(msg, len + 1);
	free(msg);
}

static void
startup_read_cb(struct bufferevent *bev, void *arg)
{
	ag_client  *c = arg;
	uint8_t		buf[AG_PGPROTO_MAX_STARTUP];
	char		err[AG_PGPROTO_ERRLEN];
	char		bad[AG_PGPROTO_NAMELEN + 1];
	uint8_t		msg[16];
	int			len;

	if (c->state == AG_CS_PASSWORD)
	{
		password_read(c);
		return;
	}
	if (c->state != AG_CS_STARTUP)
		return;					/* LOGIN: input waits for the relay */

	len = take_packet(c, buf, (size_t) ag_proxy_g.cfg->max_startup_bytes);
	if (len <= 0)
		return;
	c->startup = malloc(sizeof(*c->startup));
	if (c->startup == NULL)
	{
		ag_client_free(c, "out of memory");
		return;
	}
	if (ag_pgproto_parse_startup(buf, (size_t) len, c->startup, err) < 0)
	{
		refuse(c, "08P01", err, NULL, NULL);
		return;
	}
	switch (c->startup->kind)
	{
		case AG_PG_CANCELREQUEST:
			relay_cancel(c, buf, (size_t) len);
			return;
		case AG_PG_SSLREQUEST:
		case AG_PG_GSSENCREQUEST:
			refuse(c, "08P01", "unexpected encryption request inside TLS", NULL, NULL);
			return;
		case AG_PG_STARTUP:
			break;
	}
	if (ag_pgproto_filter_startup(c->startup, &c->params, bad, err) < 0)
	{
		char		m[AG_PGPROTO_ERRLEN + AG_PGPROTO_NAMELEN + 8];

		if (bad[0])
		{
			snprintf(m, sizeof(m), "%s \"%s\"", err, bad);
			refuse(c, "08P01", m, NULL,
				   "agentgate-proxy accepts only database, user, application_name, client_encoding, DateStyle, TimeZone and extra_float_digits.");
		}
		else
			refuse(c, "08P01", err, NULL, NULL);
		return;
	}
	c->minor = c->startup->minor;

	/*
	 * PgBouncer's admin console is a database name to PgBouncer: refused
	 * here, before the password is even asked for, in every spelling (the
	 * name may also come from the user name when database is absent).
	 */
	if (ag_pgproto_reserved_database(c->params.database))
	{
		refuse(c, "42501", "database \"pgbouncer\" is not available",
			   "\"pgbouncer\" is the connection pooler's admin console; agents cannot use it.",
			   "Connect to an application database.");
		return;
	}

	/* a newer 3.x client is told to speak 3.0, as PostgreSQL does */
	if (c->minor > 0)
	{
		msg[0] = 'v';
		ag_pg_put32(msg + 1, 12);
		ag_pg_put32(msg + 5, 0);
		ag_pg_put32(msg + 9, 0);
		bufferevent_write(bev, msg, 13);
	}
	msg[0] = 'R';
	ag_pg_put32(msg + 1, 8);
	ag_pg_put32(msg + 5, 3);	/* AuthenticationCleartextPassword */
	bufferevent_write(bev, msg, 9);
	c->state = AG_CS_PASSWORD;
	/* the password may already be here */
	password_read(c);
}

static void
login_done(void *arg, int ok, const char *sqlstate, const char *msg,
		   const char *detail, const char *role,
		   const ag_tokcache_stamp *stamps, int nstamps)
{
	ag_client  *c = arg;
	uint8_t		pkt[1024];
	int			len;
	const char *stamp;
	const char *session;

	c->login = NULL;
	if (!ok || nstamps < 1)
	{
		refuse(c, ok ? "28000" : sqlstate, ok ? "login failed" : msg, ok ? NULL : detail, NULL);
		return;
	}
	stamp = stamps[0].stamp;
	session = stamps[0].session;
	/* the other stamps serve this token's next connections */
	if (!c->cached && nstamps > 1)
		ag_logincache_store(&c->cache_key, c->identity, role, c->exp, stamps + 1, nstamps - 1);
	snprintf(c->role, sizeof(c->role), "%s", role);
	snprintf(c->stamp, sizeof(c->stamp), "%s", stamp);
	/* the extension owns the stamp's format: the session id is its own column */
	snprintf(c->session, sizeof(c->session), "%s", session);

	/*
	 * Shared pool: PgBouncer sees one role for every agent, and the
	 * identity goes in each transaction's carrier (ag_pgstream.h).  The
	 * client is shown its own application_name, cleaned as the server
	 * would clean it.
	 */
	c->shared = ag_proxy_g.cfg->shared_pool;
	if (c->shared)
	{
		const char *app = c->params.application_name ? c->params.application_name : "";
		size_t		i;

		for (i = 0; app[i] && i < sizeof(c->client_app) - 1; i++)
			c->client_app[i] = (app[i] >= 0x20 && app[i] < 0x7f) ? app[i] : '?';
		c->client_app[i] = '\0';
		len = ag_pgproto_build_shared_startup(&c->params, pkt, sizeof(pkt));
	}
	else
		len = ag_pgproto_build_startup(&c->params, role, stamp, pkt, sizeof(pkt));
	if (len < 0 || strlen(role) != strlen(c->role) || strlen(stamp) != strlen(c->stamp))
	{
		ag_log(AG_LOG_ERROR, c, "agentgate.login() returned an unusable role or stamp");
		refuse(c, "28000", "login failed", NULL, NULL);
		return;
	}
	ag_log(AG_LOG_INFO, c, "login%s: role=%s%s database=%s client_user=%s tls=%s peer=%s",
		   c->cached ? " (cached)" : "", c->role, c->shared ? " pool=shared" : "",
		   c->params.database, c->params.user ? c->params.user : "",
		   SSL_session_reused(bufferevent_openssl_get_ssl(c->cbev)) ? "resumed" : "full",
		   c->peer);

	/* the startup packet is no longer needed; params are copied by now */
	c->state = AG_CS_RELAY;
	free(c->startup);
	c->startup = NULL;
	memset(&c->params, 0, sizeof(c->params));

	/*
	 * PgBouncer answers the startup packet only once it has a server
	 * connection for the pool (query_wait_timeout, 120 s by default): the
	 * login is not over until its first ReadyForQuery, and auth_timeout
	 * still bounds the wait.  Then the timer moves to the token's exp.
	 */
	evtimer_del(c->timer);
	{
		double		to_exp = (double) (c->exp + ag_proxy_g.cfg->exp_grace - time(NULL));
		double		to_auth = (double) ag_proxy_g.cfg->auth_timeout - elapsed(c);

		c->awaiting_ready = 1;
		arm_timer(c, to_auth < to_exp ? to_auth : to_exp);
	}
	/* the relay connects to PgBouncer and sends pkt */
	if (start_relay(c, pkt, (size_t) len) < 0)
	{
		ag_log(AG_LOG_ERROR, c, "could not connect to PgBouncer: %s", strerror(errno));
		bufferevent_enable(c->cbev, EV_WRITE);
		refuse(c, "08006", "could not connect to the pooler", NULL, NULL);
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_client  *c = arg;

	switch (c->state)
	{
		case AG_CS_CLOSING:
			ag_client_free(c, "client did not read its final message");
			break;
		case AG_CS_PRETLS:
			ag_client_free(c, "authentication timeout");
			break;
		case AG_CS_RELAY:
			if (c->awaiting_ready)
			{
				double		to_exp = (double) (c->exp + ag_proxy_g.cfg->exp_grace - time(NULL));

				c->awaiting_ready = 0;
				if (!ag_relay_ready_seen(c->relay))
				{
					char		detail[160];

					snprintf(detail, sizeof(detail),
							 "The connection pooler did not finish the login within auth_timeout (%d s).",
							 ag_proxy_g.cfg->auth_timeout);
					ag_log(AG_LOG_WARNING, c, "PgBouncer did not answer the login within auth_timeout");
					/* the relay sends it only at a message boundary */
					ag_client_fatal(c, "08006", "the connection pooler did not answer in time",
									detail, "Try again; if it persists, the pool may be exhausted or the server down.");
					break;
				}
				if (to_exp > 0)
				{
					arm_timer(c, to_exp);
					break;
				}
			}
			ag_log(AG_LOG_INFO, c, "token expired");
			ag_client_fatal(c, "57P01", "token expired",
							"The connection's token has expired.",
							"Connect again with a fresh token.");
			break;
		default:
			refuse(c, "08006", "authentication timeout", NULL, NULL);
			break;
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	ag_client  *c = arg;
	char		why[300];
	unsigned long e;

	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "client disconnected");
	else if (what & BEV_EVENT_ERROR)
	{
		e = c->tls ? bufferevent_get_openssl_error(bev) : 0;
		if (e)
		{
			char		ebuf[200];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			snprintf(why, sizeof(why), "TLS error: %s", ebuf);
			while (bufferevent_get_openssl_error(bev))
				;
		}
		else
			snprintf(why, sizeof(why), "client socket error: %s",
					 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	else
		return;
	ag_client_free(c, why);
}

/*
 * The identity's status was read and it is revoked or suspended (or gone):
 * close its connections.  Returns how many.
 */
int
ag_client_revoke(const char *identity)
{
	ag_client  *c;
	ag_client  *next;
	int			n = 0;

	for (c = ag_proxy_g.clients; c; c = next)
	{
		next = c->next;
		if (c->state < AG_CS_LOGIN || c->state == AG_CS_CLOSING ||
			strcmp(c->identity, identity) != 0)
			continue;
		n++;
		ag_client_fatal(c, "57P01", "identity revoked",
						"The identity of this connection was revoked or suspended.", NULL);
	}
	ag_log(AG_LOG_INFO, NULL, "revocation of \"%s\": %d connection(s) closed", identity, n);
	return n;
}

/*
 * Every few seconds: relays give back the memory of their empty queues.
 * Returns how many bytes.
 */
size_t
ag_client_trim_idle(void)
{
	ag_client  *c;
	size_t		freed = 0;

	for (c = ag_proxy_g.clients; c; c = c->next)
		if (c->relay)
			freed += ag_relay_trim(c->relay);
	return freed;
}

/*
 * Shutdown: close connections still authenticating and relayed ones that
 * are idle between transactions.  Returns how many remain.
 */
int
ag_client_shutdown_idle(void)
{
	ag_client  *c;
	ag_client  *next;
	int			left = 0;

	for (c = ag_proxy_g.clients; c; c = next)
	{
		next = c->next;
		if (c->state == AG_CS_CLOSING)
		{
			left++;
			continue;
		}
		if (c->state == AG_CS_RELAY && !ag_relay_idle(c->relay))
		{
			left++;
			continue;
		}
		if (c->state == AG_CS_PRETLS)
			ag_client_free(c, "shutting down");
		else
		{
			ag_client_fatal(c, "57P01", "terminating connection due to administrator command",
							NULL, NULL);
			left++;
		}
	}
	return left;
}
