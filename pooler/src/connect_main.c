/*-------------------------------------------------------------------------
 *
 * connect_main.c
 *	  agentgate-connect: a local connector for tools that cannot hold or
 *	  refresh an identity token.
 *
 * Local tools (psql, BI tools, JDBC applications, the MCP reference
 * server) connect to a unix socket in a private directory with no secret;
 * the connector checks the peer's OS user (SO_PEERCRED), then opens a TLS
 * connection to agentgate-proxy (verify-full against ca_file by default)
 * and logs in with a fresh token from the token source (tokensource.c).
 *
 * Tokens expire, and the proxy closes a connection at its token's exp.
 * The connector therefore gives each connection a new upstream connection
 * before that: token_refresh_margin seconds before exp it fetches a fresh
 * token, opens and logs in a second upstream connection in the
 * background, and swaps it in at the first moment the client is idle
 * between transactions (every Query and Sync answered, the last
 * ReadyForQuery said 'I', no extended-protocol message pending).  The new
 * login replays the client's startup parameters, with client_encoding,
 * DateStyle and TimeZone as the server last reported them.  What does not
 * survive a swap is what would not survive transaction pooling anyway:
 * session state kept on a server connection (prepared statements, SET of
 * other settings, temporary tables, advisory locks, LISTEN).
 *
 * The client gets its own BackendKeyData; a CancelRequest with it is sent
 * on to the proxy, inside TLS, with the current upstream's key.
 *
 * One thread, one libevent loop; every socket is non-blocking.  The proxy
 * host name is resolved when an upstream connection is opened (getaddrinfo:
 * use an address or a name the resolver answers quickly).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ag_pgproto.h"
#include "ag_tokensource.h"
#include "connect_config.h"

#define MAX_ALLOWED_UIDS 32
/* a side is not read while the other has this much to write */
#define HIGH_WATER (256 * 1024)

typedef struct conn conn;

typedef enum
{
	U_TCP,						/* connecting, then SSLRequest sent */
	U_TLS,						/* TLS handshake */
	U_LOGIN,					/* startup packet sent */
	U_READY						/* first ReadyForQuery seen */
} up_state;

typedef struct upstream
{
	conn	   *owner;
	int			is_cancel;		/* carries one CancelRequest */
	uint8_t		cancel_pkt[16];
	up_state	state;
	struct bufferevent *bev;	/* plain socket, then the TLS filter */
	ag_token_wait *tw;
	char	   *token;			/* until the password is sent */
	int64_t		exp;
	uint32_t	be_pid;
	uint32_t	be_key;
	struct event *timer;		/* connect_timeout */
} upstream;

typedef enum
{
	C_STARTUP,
	C_LOGIN,
	C_RELAY,
	C_CLOSING
} conn_state;

struct conn
{
	conn	   *prev;
	conn	   *next;
	unsigned long long id;
	conn_state	state;
	struct bufferevent *cbev;
	char		peer[64];
	/* startup parameters to replay */
	char	   *database;
	char	   *appname;
	char	   *client_encoding;
	char	   *datestyle;
	char	   *timezone;
	uint32_t	my_pid;
	uint32_t	my_key;
	upstream   *up;				/* current */
	upstream   *next_up;		/* being logged in for a swap */
	/* client stream */
	uint8_t		chdr[5];
	size_t		chdrlen;
	uint32_t	cleft;
	uint64_t	syncs;			/* Query + Sync sent to the current upstream */
	int			ext_open;		/* extended-protocol messages since the last Sync */
	/* server stream of the current upstream */
	uint32_t	sleft;
	uint64_t	ready;			/* ReadyForQuery from the current upstream */
	char		status;
	struct event *rot_timer;
	int			swaps;
};

static struct
{
	struct event_base *base;
	ag_connect_config *cfg;
	ag_tokensrc *tokens;
	SSL_CTX    *ssl_ctx;
	uid_t		allowed[MAX_ALLOWED_UIDS];
	int			nallowed;
	conn	   *conns;
	int			nconns;
	unsigned long long next_id;
	char		sock_path[100];
	struct evconnlistener *unix_l;
	struct evconnlistener *tcp_l;
} G;

static void up_free(upstream *u);
static void conn_free(conn *c, const char *why);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void up_start(conn *c, int for_swap);
static void try_swap(conn *c);
static void relay_server(conn *c);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_login_read(upstream *u);

static void logmsg(const conn *c, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
logmsg(const conn *c, const char *fmt,...)
{
	char		msg[1024];
	char		ts[40];
	struct timeval tv;
	struct tm	tm;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	if (c)
		fprintf(stderr, "%s.%03d UTC [c%llu] %s\n", ts, (int) (tv.tv_usec / 1000), c->id, msg);
	else
		fprintf(stderr, "%s.%03d UTC %s\n", ts, (int) (tv.tv_usec / 1000), msg);
}

/* An ErrorResponse to the client, then close once it is written. */
static void
closing_write_cb(struct bufferevent *bev, void *arg)
{
	conn	   *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c, "closed after error");
}

static void
closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_free(arg, "client went away");
}

static void
conn_close_after_output(conn *c)
{
	c->state = C_CLOSING;
	if (c->up)
		up_free(c->up);
	c->up = NULL;
	if (c->next_up)
		up_free(c->next_up);
	c->next_up = NULL;
	bufferevent_disable(c->cbev, EV_READ);
	bufferevent_setcb(c->cbev, NULL, closing_write_cb, closing_event_cb, c);
	bufferevent_enable(c->cbev, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
		conn_free(c, "closed after error");
}

static void
conn_fatal(conn *c, const char *sqlstate, const char *msg, const char *detail, const char *hint)
{
	uint8_t		buf[1024];
	int			n;

	logmsg(c, "connection refused: %s%s%s", msg, detail ? ": " : "", detail ? detail : "");
	n = ag_pgproto_error(buf, sizeof(buf), "FATAL", sqlstate, msg, detail, hint);
	if (n > 0)
		bufferevent_write(c->cbev, buf, (size_t) n);
	conn_close_after_output(c);
}

static void
up_free(upstream *u)
{
	if (u == NULL)
		return;
	if (u->tw)
		ag_tokensrc_forget(u->tw);
	if (u->token)
	{
		OPENSSL_cleanse(u->token, strlen(u->token));
		free(u->token);
	}
	if (u->timer)
		event_free(u->timer);
	if (u->bev)
		bufferevent_free(u->bev);
	free(u);
}

static void
conn_free(conn *c, const char *why)
{
	logmsg(c, "connection closed: %s (swaps=%d)", why, c->swaps);
	if (c->prev)
		c->prev->next = c->next;
	else
		G.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	G.nconns--;
	up_free(c->up);
	up_free(c->next_up);
	if (c->rot_timer)
		event_free(c->rot_timer);
	if (c->cbev)
		bufferevent_free(c->cbev);
	free(c->database);
	free(c->appname);
	free(c->client_encoding);
	free(c->datestyle);
	free(c->timezone);
	free(c);
}

/* ---------- upstream: TCP, SSLRequest, TLS, startup, password ---------- */

static int
put_param(uint8_t *buf, size_t cap, size_t *pos, const char *k, const char *v)
{
	size_t		kl = strlen(k) + 1;
	size_t		vl = strlen(v) + 1;

	if (*pos + kl + vl + 1 > cap)
		return -1;
	memcpy(buf + *pos, k, kl);
	*pos += kl;
	memcpy(buf + *pos, v, vl);
	*pos += vl;
	return 0;
}

static void
up_send_startup(upstream *u)
{
	conn	   *c = u->owner;
	uint8_t		buf[2048];
	size_t		pos = 8;

	ag_pg_put32(buf + 4, 196608);
	if (put_param(buf, sizeof(buf), &pos, "user", G.cfg->user) < 0 ||
		put_param(buf, sizeof(buf), &pos, "database", c->database) < 0 ||
		(c->appname && put_param(buf, sizeof(buf), &pos, "application_name", c->appname) < 0) ||
		(c->client_encoding && put_param(buf, sizeof(buf), &pos, "client_encoding", c->client_encoding) < 0) ||
		(c->datestyle && put_param(buf, sizeof(buf), &pos, "DateStyle", c->datestyle) < 0) ||
		(c->timezone && put_param(buf, sizeof(buf), &pos, "TimeZone", c->timezone) < 0))
		return;
	buf[pos++] = '\0';
	ag_pg_put32(buf, (uint32_t) pos);
	bufferevent_write(u->bev, buf, pos);
}

/* The upstream failed before it was ready. */
static void
up_failed(upstream *u, const char *why)
{
	conn	   *c = u->owner;

	if (u->is_cancel)
	{
		up_free(u);
		return;
	}
	if (u == c->next_up)
	{
		/* a swap: keep the current one, try again shortly */
		logmsg(c, "new upstream connection for the token rotation failed: %s", why);
		up_free(u);
		c->next_up = NULL;
		if (c->rot_timer)
		{
			struct timeval tv = {1, 0};

			evtimer_add(c->rot_timer, &tv);
		}
		return;
	}
	conn_fatal(c, "08006", "could not connect to agentgate-proxy", why,
			   "Check the connector's proxy_host, proxy_port, ca_file and token source.");
}

static const char *
tls_error(struct bufferevent *bev)
{
	static char buf[256];
	unsigned long e = bufferevent_get_openssl_error(bev);

	if (e == 0)
		e = ERR_get_error();
	if (e == 0)
		return NULL;
	ERR_error_string_n(e, buf, sizeof(buf));
	while (bufferevent_get_openssl_error(bev))
		;
	ERR_clear_error();
	return buf;
}

static void up_read_cb(struct bufferevent *bev, void *arg);

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	upstream   *u = arg;
	char		why[400];

	if (what & BEV_EVENT_CONNECTED)
	{
		if (u->state == U_TCP)
		{
			uint8_t		req[8];

			ag_pg_put32(req, 8);
			ag_pg_put32(req + 4, 80877103);
			bufferevent_write(bev, req, 8);
			return;
		}
		if (u->state == U_TLS)
		{
			if (u->is_cancel)
			{
				bufferevent_write(u->bev, u->cancel_pkt, 16);
				u->state = U_LOGIN;
				return;
			}
			u->state = U_LOGIN;
			up_send_startup(u);
			return;
		}
		return;
	}
	if (u->is_cancel)
	{
		up_free(u);				/* the proxy closes a cancel connection */
		return;
	}
	if (what & BEV_EVENT_ERROR)
	{
		const char *t = tls_error(bev);

		snprintf(why, sizeof(why), "%s", t ? t : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	else
		snprintf(why, sizeof(why), "the proxy closed the connection");
	if (u->state == U_LOGIN && u == u->owner->up &&
		evbuffer_get_length(bufferevent_get_input(bev)) > 0)
	{
		/* the proxy's refusal arrived with its close: the client reads it */
		conn	   *c = u->owner;

		up_login_read(u);
		if (c->state != C_LOGIN || c->up != u)
			return;
	}
	if (u->state != U_READY)
	{
		up_failed(u, why);
		return;
	}
	/* a ready upstream went away */
	if (u == u->owner->next_up)
	{
		up_free(u);
		u->owner->next_up = NULL;
		return;
	}
	{
		conn	   *c = u->owner;

		/* what the proxy said last (often a FATAL) is flushed first */
		relay_server(c);
		logmsg(c, "upstream closed: %s", why);
		conn_close_after_output(c);
	}
}

static void
up_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	upstream   *u = arg;

	if (u->state != U_READY)
		up_failed(u, "no answer within connect_timeout");
}

/* The 'S' answer to our SSLRequest: start TLS on top of the socket. */
static void
up_start_tls(upstream *u)
{
	SSL		   *ssl = SSL_new(G.ssl_ctx);
	const char *name = G.cfg->tls_server_name ? G.cfg->tls_server_name : G.cfg->proxy_host;
	struct in6_addr a6;
	struct in_addr a4;
	int			is_ip = inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
	struct bufferevent *tls;

	if (ssl == NULL)
	{
		up_failed(u, "could not create a TLS session");
		return;
	}
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, name);
	if (strcmp(G.cfg->sslmode, "verify-full") == 0)
	{
		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
		else
			SSL_set1_host(ssl, name);
	}
	tls = bufferevent_openssl_filter_new(G.base, u->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
										 BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL)
	{
		SSL_free(ssl);
		up_failed(u, "could not start TLS");
		return;
	}
	u->bev = tls;
	u->state = U_TLS;
	bufferevent_setcb(tls, up_read_cb, up_write_cb, up_event_cb, u);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* Login messages from the proxy (the relay takes over at ReadyForQuery). */
static void
up_login_read(upstream *u)
{
	conn	   *c = u->owner;
	struct evbuffer *in = bufferevent_get_input(u->bev);
	int			first = (u == c->up);

	while (u->state == U_LOGIN)
	{
		uint8_t		hdr[5];
		uint32_t	len;
		uint8_t    *body;

		if (evbuffer_get_length(in) < 5)
			return;
		evbuffer_copyout(in, hdr, 5);
		len = ag_pg_get32(hdr + 1);
		if (len < 4 || len > 65536)
		{
			up_failed(u, "invalid message from the proxy during login");
			return;
		}
		if (evbuffer_get_length(in) < 1 + (size_t) len)
			return;
		body = evbuffer_pullup(in, 1 + (ssize_t) len) + 5;
		switch (hdr[0])
		{
			case 'R':
				if (len >= 8 && ag_pg_get32(body) == 3 && u->token)
				{
					size_t		tl = strlen(u->token);
					uint8_t    *pm = malloc(tl + 6);

					if (pm == NULL)
					{
						up_failed(u, "out of memory");
						return;
					}
					pm[0] = 'p';
					ag_pg_put32(pm + 1, (uint32_t) (tl + 5));
					memcpy(pm + 5, u->token, tl + 1);
					bufferevent_write(u->bev, pm, tl + 6);
					OPENSSL_cleanse(pm, tl + 6);
					free(pm);
					OPENSSL_cleanse(u->token, tl);
					free(u->token);
					u->token = NULL;
				}
				else if (len >= 8 && ag_pg_get32(body) == 0)
				{
					if (first)
					{
						bufferevent_write(c->cbev, hdr, 5);
						bufferevent_write(c->cbev, body, len - 4);
					}
				}
				else
				{
					evbuffer_drain(in, 1 + len);
					up_failed(u, "the proxy asked for an authentication method the connector does not speak");
					return;
				}
				break;
			case 'K':
				if (len == 12)
				{
					u->be_pid = ag_pg_get32(body);
					u->be_key = ag_pg_get32(body + 4);
				}
				if (first)
				{
					uint8_t		k[13];

					k[0] = 'K';
					ag_pg_put32(k + 1, 12);
					ag_pg_put32(k + 5, c->my_pid);
					ag_pg_put32(k + 9, c->my_key);
					bufferevent_write(c->cbev, k, 13);
				}
				break;
			case 'E':
				if (first)
				{
					/* the proxy's refusal, as it is: the client reads why */
					bufferevent_write(c->cbev, hdr, 5);
					bufferevent_write(c->cbev, body, len - 4);
					logmsg(c, "the proxy refused the login");
					evbuffer_drain(in, 1 + len);
					conn_close_after_output(c);
					return;
				}
				evbuffer_drain(in, 1 + len);
				up_failed(u, "the proxy refused the new login");
				return;
			case 'Z':
				u->state = U_READY;
				evtimer_del(u->timer);
				if (first)
				{
					bufferevent_write(c->cbev, hdr, 5);
					bufferevent_write(c->cbev, body, len - 4);
				}
				break;
			default:
				/* ParameterStatus, NoticeResponse: the client's on the first login */
				if (first)
				{
					bufferevent_write(c->cbev, hdr, 5);
					bufferevent_write(c->cbev, body, len - 4);
				}
				break;
		}
		evbuffer_drain(in, 1 + len);
	}
	if (u->state != U_READY)
		return;
	if (first)
	{
		struct timeval tv;
		int64_t		left = u->exp - G.cfg->token_refresh_margin - (int64_t) time(NULL);

		c->state = C_RELAY;
		c->status = 'I';
		logmsg(c, "logged in through agentgate-proxy (database=%s, token exp in %lld s)",
			   c->database, (long long) (u->exp - (int64_t) time(NULL)));
		tv.tv_sec = left > 0 ? left : 0;
		tv.tv_usec = 0;
		evtimer_add(c->rot_timer, &tv);
		/* what the client sent meanwhile */
		client_read_cb(c->cbev, c);
		relay_server(c);
	}
	else
		try_swap(c);
}

static void
up_read_cb(struct bufferevent *bev, void *arg)
{
	upstream   *u = arg;

	if (u->is_cancel && u->state != U_TCP)
	{
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	if (u->state == U_TCP)
	{
		uint8_t		a;

		if (evbuffer_remove(bufferevent_get_input(bev), &a, 1) != 1)
			return;
		if (a != 'S' || evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		{
			up_failed(u, a == 'N' ? "the proxy does not offer TLS" : "unexpected answer to SSLRequest");
			return;
		}
		up_start_tls(u);
		return;
	}
	if (u->state == U_LOGIN)
	{
		up_login_read(u);
		return;
	}
	if (u->state == U_READY && u == u->owner->up)
		relay_server(u->owner);
}

static upstream *
up_open(conn *c, int is_cancel)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char		port[16];
	upstream   *u;
	struct timeval tv = {G.cfg->connect_timeout, 0};
	int			rc;

	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return NULL;
	u->owner = c;
	u->is_cancel = is_cancel;
	u->state = U_TCP;
	u->timer = evtimer_new(G.base, up_timeout_cb, u);
	u->bev = bufferevent_socket_new(G.base, -1, BEV_OPT_CLOSE_ON_FREE);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", G.cfg->proxy_port);
	rc = getaddrinfo(G.cfg->proxy_host, port, &hints, &res);
	if (u->timer == NULL || u->bev == NULL || rc != 0 ||
		bufferevent_socket_connect(u->bev, res->ai_addr, (int) res->ai_addrlen) < 0)
	{
		if (res)
			freeaddrinfo(res);
		if (rc != 0 && c)
			logmsg(c, "could not resolve proxy_host \"%s\": %s", G.cfg->proxy_host, gai_strerror(rc));
		up_free(u);
		return NULL;
	}
	freeaddrinfo(res);
	{
		int			one = 1;

		setsockopt(bufferevent_getfd(u->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	bufferevent_setcb(u->bev, up_read_cb, NULL, up_event_cb, u);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	evtimer_add(u->timer, &tv);
	return u;
}

static void
token_cb(void *arg, const char *token, int64_t exp, const char *err)
{
	upstream   *u = arg;
	conn	   *c = u->owner;
	int			for_swap = (u == c->next_up);
	upstream   *n;

	u->tw = NULL;
	if (token == NULL)
	{
		logmsg(c, "no token: %s", err);
		up_failed(u, err);
		return;
	}
	if (for_swap && exp <= c->up->exp)
	{
		/* nothing fresher yet: the IdP's agent has not rotated the file */
		logmsg(c, "token source has no fresher token yet (exp %lld); retrying in 1 s", (long long) exp);
		up_free(u);
		c->next_up = NULL;
		{
			struct timeval tv = {1, 0};

			evtimer_add(c->rot_timer, &tv);
		}
		return;
	}
	if (exp <= (int64_t) time(NULL))
	{
		up_failed(u, "the token source's token has expired");
		return;
	}
	n = up_open(c, 0);
	if (n == NULL)
	{
		up_failed(u, "could not connect to the proxy");
		return;
	}
	n->token = strdup(token);
	n->exp = exp;
	if (for_swap)
		c->next_up = n;
	else
		c->up = n;
	up_free(u);
}

/* Get a token, then connect; u is a placeholder until the token comes. */
static void
up_start(conn *c, int for_swap)
{
	upstream   *u = calloc(1, sizeof(*u));

	if (u == NULL)
	{
		if (!for_swap)
			conn_fatal(c, "53200", "out of memory", NULL, NULL);
		return;
	}
	u->owner = c;
	u->state = U_TCP;
	if (for_swap)
		c->next_up = u;
	else
		c->up = u;
	u->tw = ag_tokensrc_get(G.tokens, token_cb, u);
	if (u->tw == NULL)
		up_failed(u, "out of memory");
}

/* ---------- relay ---------- */

static int
conn_idle(const conn *c)
{
	return c->state == C_RELAY && c->up && c->up->state == U_READY &&
		c->syncs == c->ready && !c->ext_open && c->status == 'I' &&
		c->chdrlen == 0 && c->cleft == 0 && c->sleft == 0 &&
		evbuffer_get_length(bufferevent_get_input(c->up->bev)) == 0;
}

static void
rot_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	conn	   *c = arg;

	if (c->state != C_RELAY || c->next_up)
		return;
	logmsg(c, "token expires in %lld s: logging in again for a swap",
		   (long long) (c->up->exp - (int64_t) time(NULL)));
	up_start(c, 1);
}

static void
try_swap(conn *c)
{
	upstream   *old = c->up;
	struct timeval tv;
	int64_t		left;

	if (c->next_up == NULL || c->next_up->state != U_READY || !conn_idle(c))
		return;
	/* Terminate the old session politely, then forget it */
	bufferevent_write(old->bev, "X\0\0\0\4", 5);
	bufferevent_flush(old->bev, EV_WRITE, BEV_FLUSH);
	up_free(old);
	c->up = c->next_up;
	c->next_up = NULL;
	c->syncs = c->ready = 0;
	c->swaps++;
	logmsg(c, "swapped to a new upstream connection (token exp in %lld s)",
		   (long long) (c->up->exp - (int64_t) time(NULL)));
	left = c->up->exp - G.cfg->token_refresh_margin - (int64_t) time(NULL);
	tv.tv_sec = left > 0 ? left : 1;
	tv.tv_usec = 0;
	evtimer_add(c->rot_timer, &tv);
	/* anything already there */
	relay_server(c);
	client_read_cb(c->cbev, c);
}

static void
set_param(char **slot, const uint8_t *v, size_t n)
{
	char	   *s = strndup((const char *) v, n);

	if (s)
	{
		free(*slot);
		*slot = s;
	}
}

/* Server to client: stream bodies, look at ReadyForQuery and ParameterStatus. */
static void
relay_server(conn *c)
{
	struct evbuffer *in;
	struct evbuffer *out;

	if (c->up == NULL || c->up->state != U_READY || c->state != C_RELAY)
		return;
	in = bufferevent_get_input(c->up->bev);
	out = bufferevent_get_output(c->cbev);
	while (evbuffer_get_length(in) > 0)
	{
		uint8_t		hdr[5];
		uint32_t	len;

		if (evbuffer_get_length(out) > HIGH_WATER)
			break;
		if (c->sleft > 0)
		{
			int			n = evbuffer_remove_buffer(in, out, c->sleft);

			if (n <= 0)
				break;
			c->sleft -= (uint32_t) n;
			continue;
		}
		if (evbuffer_get_length(in) < 5)
			break;
		evbuffer_copyout(in, hdr, 5);
		len = ag_pg_get32(hdr + 1);
		if (len < 4)
		{
			logmsg(c, "invalid message length from the proxy");
			conn_close_after_output(c);
			return;
		}
		if (hdr[0] == 'Z' || hdr[0] == 'S')
		{
			uint8_t    *m;

			if (len > 8192)
			{
				logmsg(c, "oversized message from the proxy");
				conn_close_after_output(c);
				return;
			}
			if (evbuffer_get_length(in) < 1 + (size_t) len)
				break;
			m = evbuffer_pullup(in, 1 + (ssize_t) len);
			if (hdr[0] == 'Z' && len == 5)
			{
				c->status = (char) m[5];
				c->ready++;
			}
			else if (hdr[0] == 'S')
			{
				const uint8_t *k = m + 5;
				const uint8_t *end = m + 1 + len;
				const uint8_t *z = memchr(k, '\0', (size_t) (end - k));

				if (z && z + 1 < end)
				{
					const uint8_t *v = z + 1;
					const uint8_t *z2 = memchr(v, '\0', (size_t) (end - v));
					size_t		vl = z2 ? (size_t) (z2 - v) : 0;

					if (z2 && vl > 0 && vl <= 64)
					{
						if (strcmp((const char *) k, "client_encoding") == 0)
							set_param(&c->client_encoding, v, vl);
						else if (strcmp((const char *) k, "DateStyle") == 0)
							set_param(&c->datestyle, v, vl);
						else if (strcmp((const char *) k, "TimeZone") == 0)
							set_param(&c->timezone, v, vl);
					}
				}
			}
			evbuffer_remove_buffer(in, out, 1 + len);
			continue;
		}
		evbuffer_remove_buffer(in, out, 5);
		c->sleft = len - 4;
	}
	/* backpressure: stop reading the proxy while the client lags */
	if (evbuffer_get_length(out) > HIGH_WATER)
		bufferevent_disable(c->up->bev, EV_READ);
	else
		bufferevent_enable(c->up->bev, EV_READ);
	try_swap(c);
}

/* Client to server: stream bodies, count Query/Sync, see Terminate. */
static void
relay_client(conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	struct evbuffer *out;

	if (c->state != C_RELAY || c->up == NULL || c->up->state != U_READY)
		return;
	out = bufferevent_get_output(c->up->bev);
	while (evbuffer_get_length(in) > 0)
	{
		uint32_t	len;

		if (evbuffer_get_length(out) > HIGH_WATER)
			break;
		if (c->cleft > 0)
		{
			int			n = evbuffer_remove_buffer(in, out, c->cleft);

			if (n <= 0)
				break;
			c->cleft -= (uint32_t) n;
			continue;
		}
		if (evbuffer_get_length(in) < 5)
			break;
		evbuffer_copyout(in, c->chdr, 5);
		len = ag_pg_get32(c->chdr + 1);
		if (len < 4)
		{
			conn_fatal(c, "08P01", "invalid message length", NULL, NULL);
			return;
		}
		switch (c->chdr[0])
		{
			case 'Q':
			case 'S':
				c->syncs++;
				c->ext_open = 0;
				break;
			case 'P':
			case 'B':
			case 'E':
			case 'D':
			case 'C':
			case 'H':
				c->ext_open = 1;
				break;
			case 'X':
				evbuffer_remove_buffer(in, out, 5);
				bufferevent_flush(c->up->bev, EV_WRITE, BEV_FLUSH);
				conn_free(c, "client terminated");
				return;
			default:
				break;
		}
		evbuffer_remove_buffer(in, out, 5);
		c->cleft = len - 4;
	}
	if (evbuffer_get_length(out) > HIGH_WATER)
		bufferevent_disable(c->cbev, EV_READ);
	else
		bufferevent_enable(c->cbev, EV_READ);
}

static void
up_write_cb(struct bufferevent *bev, void *arg)
{
	upstream   *u = arg;

	if (!u->is_cancel && u == u->owner->up && u->state == U_READY)
		relay_client(u->owner);
}

/* ---------- client side: startup, cancel, relay ---------- */

static void
cancel_forward(const uint8_t *pkt)
{
	uint32_t	pid = ag_pg_get32(pkt + 8);
	uint32_t	key = ag_pg_get32(pkt + 12);
	conn	   *c;

	for (c = G.conns; c; c = c->next)
		if (c->my_pid == pid && c->my_key == key && c->up && c->up->state == U_READY)
			break;
	if (c == NULL)
	{
		logmsg(NULL, "cancel request for an unknown key dropped");
		return;
	}
	{
		upstream   *u = up_open(NULL, 1);

		if (u == NULL)
			return;
		memcpy(u->cancel_pkt, pkt, 8);
		ag_pg_put32(u->cancel_pkt + 8, c->up->be_pid);
		ag_pg_put32(u->cancel_pkt + 12, c->up->be_key);
		logmsg(c, "cancel request sent on");
	}
}

static void
client_startup(conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	uint8_t		buf[AG_PGPROTO_MAX_STARTUP];
	uint8_t		hdr[4];
	uint32_t	len;
	ag_pg_startup *st;
	ag_pg_client_params p;
	char		err[AG_PGPROTO_ERRLEN];
	char		bad[AG_PGPROTO_NAMELEN + 1];

	while (c->state == C_STARTUP)
	{
		if (evbuffer_get_length(in) < 4)
			return;
		evbuffer_copyout(in, hdr, 4);
		len = ag_pg_get32(hdr);
		if (len < 8 || len > sizeof(buf))
		{
			conn_fatal(c, "08P01", "invalid startup packet length", NULL, NULL);
			return;
		}
		if (evbuffer_get_length(in) < len)
			return;
		evbuffer_remove(in, buf, len);
		st = malloc(sizeof(*st));
		if (st == NULL)
		{
			conn_free(c, "out of memory");
			return;
		}
		if (ag_pgproto_parse_startup(buf, len, st, err) < 0)
		{
			free(st);
			conn_fatal(c, "08P01", err, NULL, NULL);
			return;
		}
		if (st->kind == AG_PG_SSLREQUEST || st->kind == AG_PG_GSSENCREQUEST)
		{
			/* local socket: no TLS here; the connector's upstream is TLS */
			free(st);
			bufferevent_write(c->cbev, "N", 1);
			continue;
		}
		if (st->kind == AG_PG_CANCELREQUEST)
		{
			free(st);
			cancel_forward(buf);
			conn_free(c, "cancel request");
			return;
		}
		if (ag_pgproto_filter_startup(st, &p, bad, err) < 0)
		{
			char		m[AG_PGPROTO_ERRLEN + AG_PGPROTO_NAMELEN + 8];

			free(st);
			if (bad[0])
			{
				snprintf(m, sizeof(m), "%s \"%s\"", err, bad);
				conn_fatal(c, "08P01", m, NULL,
						   "agentgate-connect passes on only database, user, application_name, client_encoding, DateStyle, TimeZone and extra_float_digits.");
			}
			else
				conn_fatal(c, "08P01", err, NULL, NULL);
			return;
		}
		/*
		 * The user name is not a credential here (the token is): a client
		 * that sent no database gets the configured one, if any.
		 */
		if (G.cfg->database && p.user && p.database == p.user &&
			!ag_pgproto_reserved_database(G.cfg->database))
			c->database = strdup(G.cfg->database);
		else
			c->database = strdup(p.database);
		c->appname = p.application_name ? strdup(p.application_name) : NULL;
		c->client_encoding = p.client_encoding ? strdup(p.client_encoding) : NULL;
		c->datestyle = p.datestyle ? strdup(p.datestyle) : NULL;
		c->timezone = p.timezone ? strdup(p.timezone) : NULL;
		logmsg(c, "startup: database=%s client_user=%s", c->database ? c->database : "",
			   p.user ? p.user : "");
		free(st);
		if (c->database == NULL)
		{
			conn_free(c, "out of memory");
			return;
		}
		c->state = C_LOGIN;
		up_start(c, 0);
		return;
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	conn	   *c = arg;

	if (c->state == C_STARTUP)
		client_startup(c);
	else if (c->state == C_RELAY)
		relay_client(c);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	conn	   *c = arg;

	if (c->state == C_RELAY)
		relay_server(c);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn	   *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(c, (what & BEV_EVENT_EOF) ? "client disconnected" : "client socket error");
}

static int
peer_allowed(int fd, char *who, size_t wholen)
{
	struct ucred cred;
	socklen_t	len = sizeof(cred);
	struct passwd *pw;
	int			i;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
	{
		snprintf(who, wholen, "unknown (no peer credentials)");
		return 0;
	}
	pw = getpwuid(cred.uid);
	snprintf(who, wholen, "%s (uid %u, pid %d)", pw ? pw->pw_name : "?", (unsigned) cred.uid,
			 (int) cred.pid);
	if (cred.uid == geteuid())
		return 1;
	for (i = 0; i < G.nallowed; i++)
		if (G.allowed[i] == cred.uid)
			return 1;
	return 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	int			is_unix = (arg != NULL);
	conn	   *c;
	char		who[160] = "127.0.0.1";
	int			allowed = 1;

	if (is_unix)
		allowed = peer_allowed(fd, who, sizeof(who));
	c = calloc(1, sizeof(*c));
	if (c == NULL)
	{
		close(fd);
		return;
	}
	c->id = ++G.next_id;
	c->state = C_STARTUP;
	snprintf(c->peer, sizeof(c->peer), "%.63s", who);
	c->cbev = bufferevent_socket_new(G.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->rot_timer = evtimer_new(G.base, rot_timer_cb, c);
	c->my_pid = (uint32_t) (c->id & 0x7fffffff);
	if (RAND_bytes((unsigned char *) &c->my_key, sizeof(c->my_key)) != 1 ||
		c->cbev == NULL || c->rot_timer == NULL)
	{
		if (c->cbev)
			bufferevent_free(c->cbev);
		else
			close(fd);
		if (c->rot_timer)
			event_free(c->rot_timer);
		free(c);
		return;
	}
	c->next = G.conns;
	if (G.conns)
		G.conns->prev = c;
	G.conns = c;
	G.nconns++;
	bufferevent_setcb(c->cbev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
	logmsg(c, "connection from %s", who);
	if (!allowed)
	{
		char		msg[200];

		snprintf(msg, sizeof(msg), "OS user %s may not use this connector", who);
		conn_fatal(c, "28000", msg, NULL,
				   "Connect as the connector's own OS user, or add the user to allowed_users.");
		return;
	}
	if (G.nconns > G.cfg->max_clients)
	{
		conn_fatal(c, "53300", "too many connections to agentgate-connect", NULL,
				   "Close unused connections or raise max_clients.");
		return;
	}
}

/* ---------- startup ---------- */

static int
parse_allowed_users(const char *list, char *err, size_t errlen)
{
	char	   *copy;
	char	   *tok;
	char	   *save = NULL;

	G.nallowed = 0;
	if (list == NULL)
		return 0;
	copy = strdup(list);
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
	{
		struct passwd *pw = getpwnam(tok);

		if (pw == NULL)
		{
			snprintf(err, errlen, "allowed_users: no OS user \"%s\"", tok);
			free(copy);
			return -1;
		}
		if (G.nallowed == MAX_ALLOWED_UIDS)
		{
			snprintf(err, errlen, "allowed_users: at most %d users", MAX_ALLOWED_UIDS);
			free(copy);
			return -1;
		}
		G.allowed[G.nallowed++] = pw->pw_uid;
	}
	free(copy);
	return 0;
}

/*
 * The socket directory is the first lock: created 0700 when missing; an
 * existing one must be ours and closed to others (with allowed_users, its
 * group may enter it).
 */
static int
prepare_socket_dir(char *err, size_t errlen)
{
	const char *d = G.cfg->listen_socket_dir;
	struct stat st;

	if (mkdir(d, 0700) < 0 && errno != EEXIST)
	{
		snprintf(err, errlen, "could not create listen_socket_dir \"%s\": %s", d, strerror(errno));
		return -1;
	}
	if (lstat(d, &st) < 0 || !S_ISDIR(st.st_mode))
	{
		snprintf(err, errlen, "listen_socket_dir \"%s\" is not a directory", d);
		return -1;
	}
	if (st.st_uid != geteuid())
	{
		snprintf(err, errlen, "listen_socket_dir \"%s\" is not owned by the connector's OS user", d);
		return -1;
	}
	if ((st.st_mode & 0007) != 0 || (G.nallowed == 0 && (st.st_mode & 0077) != 0))
	{
		snprintf(err, errlen, "listen_socket_dir \"%s\" has mode %04o; it must be 0700%s", d,
				 (unsigned) (st.st_mode & 07777), G.nallowed ? " (or 0710/0750 for allowed_users)" : "");
		return -1;
	}
	snprintf(G.sock_path, sizeof(G.sock_path), "%s/.s.PGSQL.%d", d, G.cfg->listen_port);
	if (lstat(G.sock_path, &st) == 0)
	{
		if (!S_ISSOCK(st.st_mode))
		{
			snprintf(err, errlen, "\"%s\" exists and is not a socket", G.sock_path);
			return -1;
		}
		unlink(G.sock_path);
	}
	return 0;
}

static SSL_CTX *
tls_context(char *err, size_t errlen)
{
	SSL_CTX    *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
	{
		snprintf(err, errlen, "could not create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (strcmp(G.cfg->sslmode, "require") == 0)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	else
	{
		if (SSL_CTX_load_verify_locations(ctx, G.cfg->ca_file, NULL) != 1)
		{
			unsigned long e = ERR_get_error();
			char		eb[200];

			ERR_error_string_n(e, eb, sizeof(eb));
			snprintf(err, errlen, "could not load ca_file \"%s\": %s", G.cfg->ca_file, eb);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	return ctx;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	logmsg(NULL, "received signal %d: shutting down", (int) sig);
	event_base_loopexit(G.base, NULL);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: agentgate-connect -c FILE [-t]\n"
			"  -c FILE  configuration file\n"
			"  -t       check the configuration, the CA file and the token source; exit\n");
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	int			check_only = 0;
	char		err[512];
	int			opt;
	struct sockaddr_un sun;
	struct event *sigs[3];

	while ((opt = getopt(argc, argv, "c:th")) != -1)
	{
		switch (opt)
		{
			case 'c':
				path = optarg;
				break;
			case 't':
				check_only = 1;
				break;
			default:
				usage();
				return 2;
		}
	}
	if (path == NULL)
	{
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	G.cfg = ag_connect_config_load(path, err, sizeof(err));
	if (G.cfg == NULL)
	{
		fprintf(stderr, "agentgate-connect: %s\n", err);
		return 1;
	}
	if (parse_allowed_users(G.cfg->allowed_users, err, sizeof(err)) < 0 ||
		(G.ssl_ctx = tls_context(err, sizeof(err))) == NULL)
	{
		fprintf(stderr, "agentgate-connect: %s\n", err);
		return 1;
	}
	if (strcmp(G.cfg->sslmode, "require") == 0)
		logmsg(NULL, "WARNING: sslmode = require does not check the proxy's certificate; use verify-full with ca_file");
	G.base = event_base_new();
	G.tokens = ag_tokensrc_new(G.base, G.cfg->token_file, G.cfg->token_command,
							   G.cfg->token_refresh_margin, G.cfg->command_timeout);
	if (G.base == NULL || G.tokens == NULL)
	{
		fprintf(stderr, "agentgate-connect: out of memory\n");
		return 1;
	}
	if (check_only)
	{
		printf("configuration ok\n");
		return 0;
	}
	if (prepare_socket_dir(err, sizeof(err)) < 0)
	{
		fprintf(stderr, "agentgate-connect: %s\n", err);
		return 1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, G.sock_path, strlen(G.sock_path) + 1);
	G.unix_l = evconnlistener_new_bind(G.base, accept_cb, (void *) 1,
									   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
									   (struct sockaddr *) &sun, sizeof(sun));
	if (G.unix_l == NULL)
	{
		fprintf(stderr, "agentgate-connect: could not listen on \"%s\": %s\n", G.sock_path,
				strerror(errno));
		return 1;
	}
	chmod(G.sock_path, G.nallowed ? 0660 : 0600);
	if (G.cfg->listen_tcp_port > 0)
	{
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t) G.cfg->listen_tcp_port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		G.tcp_l = evconnlistener_new_bind(G.base, accept_cb, NULL,
										  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
										  128, (struct sockaddr *) &sin, sizeof(sin));
		if (G.tcp_l == NULL)
		{
			fprintf(stderr, "agentgate-connect: could not listen on 127.0.0.1:%d: %s\n",
					G.cfg->listen_tcp_port, strerror(errno));
			unlink(G.sock_path);
			return 1;
		}
		logmsg(NULL, "WARNING: listening on 127.0.0.1:%d too: every local user can connect there (no peer credentials over TCP)",
			   G.cfg->listen_tcp_port);
	}
	sigs[0] = evsignal_new(G.base, SIGTERM, signal_cb, NULL);
	sigs[1] = evsignal_new(G.base, SIGINT, signal_cb, NULL);
	sigs[2] = NULL;
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	logmsg(NULL, "agentgate-connect listening on %s, proxy %s:%d (sslmode=%s), token from %s",
		   G.sock_path, G.cfg->proxy_host, G.cfg->proxy_port, G.cfg->sslmode,
		   G.cfg->token_file ? "token_file" : "token_command");
	event_base_dispatch(G.base);
	evconnlistener_free(G.unix_l);
	if (G.tcp_l)
		evconnlistener_free(G.tcp_l);
	unlink(G.sock_path);
	while (G.conns)
		conn_free(G.conns, "shutting down");
	ag_tokensrc_free(G.tokens);
	event_free(sigs[0]);
	event_free(sigs[1]);
	SSL_CTX_free(G.ssl_ctx);
	event_base_free(G.base);
	ag_connect_config_free(G.cfg);
	return 0;
}
