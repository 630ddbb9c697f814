/*-------------------------------------------------------------------------
 *
 * proxy_admin.c
 *	  The proxy's own connections to PostgreSQL: agentgate.login() calls,
 *	  LISTEN agentgate_revocations, and reading the content patterns
 *	  (LISTEN agentgate_patterns; proxy_patterns.c keeps them).
 *
 * libpq runs in non-blocking mode inside the event loop.  admin_connections
 * connections share one queue of logins, each running one login at a time:
 * a login is a short write transaction that waits for its commit, so a
 * single connection would cap logins at one commit latency each.  The
 * first connection also LISTENs for revocations.
 *
 * Fail closed: while the listening connection is down, no revocation could
 * reach the proxy, so new logins are refused at once; established sessions
 * go on.  Every connection is retried with exponential backoff.
 *
 * A revocation notice is only a hint: any role allowed to NOTIFY can send
 * one with any identity in it.  A notice marks the identity (if it holds
 * connections here at all; others cost nothing), and the marked identities
 * are read back from agentgate.agents in one query
 * (agentgate.identity_status) on a free admin connection, ahead of queued
 * logins.  Only identities whose status is not active, or that are gone
 * from the registry, have their connections closed.  Notices arriving while
 * a read runs mark again and are read in the next one, so a flood of
 * forged notices costs at most one read per identity per batch, and a real
 * revocation committed while a read was running is still seen.  If the
 * read fails with an error, the batch's connections are closed (fail
 * closed); if its connection is lost, the batch is marked again and read
 * on another.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

/*
 * One round trip: the login and $3 fresh stamps for its role, the first for
 * the connection, the others for the token's next connections (the login
 * cache).  OFFSET 0 keeps the subquery whole, so session_stamp() runs once
 * per row and each row's stamp and session id belong together.
 */
#define LOGIN_SQL \
	"SELECT r::text, (s.x).stamp, (s.x).session_id " \
	"  FROM agentgate.login($1, $2::jsonb) AS r, " \
	"       LATERAL (SELECT agentgate.session_stamp(r, $2::jsonb) AS x " \
	"                  FROM generate_series(1, $3::int) OFFSET 0) AS s"
#define REVOCATION_CHANNEL "agentgate_revocations"
#define PATTERNS_CHANNEL "agentgate_patterns"
#define STATUS_SQL \
	"SELECT u.i, coalesce(s.status, 'unknown') " \
	"  FROM unnest($1::text[]) WITH ORDINALITY AS u(identity, i) " \
	"  LEFT JOIN agentgate.identity_status($1::text[]) AS s ON s.identity = u.identity"
#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	30000
#define MAX_ADMIN		64
#define MAX_STAMPS		(1 + AG_TOKCACHE_STAMPS)

typedef struct ag_login_req
{
	struct ag_login_req *next;
	ag_login_cb cb;				/* NULL once the client has gone */
	void	   *arg;
	char	   *identity;
	char	   *claims;
	int			want;			/* stamps asked for, 1..MAX_STAMPS */
	/* outcome */
	int			have_result;
	int			ok;
	char		sqlstate[6];
	char		msg[200];
	char		detail[300];
	char		role[AG_PGPROTO_NAMELEN + 1];
	int			nstamps;
	ag_tokcache_stamp stamps[MAX_STAMPS];
} ag_login_req;

typedef enum
{
	ADM_DOWN,
	ADM_CONNECTING,
	ADM_LISTENING,				/* LISTEN sent, waiting for its result */
	ADM_READY
} admin_state;

typedef struct admin_conn
{
	int			index;			/* 0 is the listener */
	PGconn	   *conn;
	admin_state state;
	struct event *sock_ev;
	short		sock_ev_flags;
	int			sock_ev_fd;
	struct event *retry_ev;
	int			backoff_ms;
	ag_login_req *inflight;
	time_t		inflight_since;
	int			status_inflight;	/* the status read runs here */
	int			patterns_inflight;	/* the patterns are read here */
} admin_conn;

/*
 * The identities of the status read in flight (at most one at a time): a
 * text[] literal for the query, the names, and what the read said of each.
 */
typedef struct status_batch
{
	char	   *literal;
	size_t		len;
	size_t		cap;
	char	  **names;
	char	  **status;			/* NULL until the read answers */
	int			n;
	int			cap_names;
	int			failed;			/* out of memory while building */
	int			error;			/* the read returned an error */
} status_batch;

static admin_conn admins[MAX_ADMIN];
static status_batch batch;
static int	nadmins;
static int	stopped = 1;
static struct event *dispatch_ev;	/* runs dispatch() from the loop */
static struct event *watchdog_ev;	/* once a second: stuck logins */

/*
 * The content patterns are to be read (again): at start, when the listener
 * is back, after a notice, and a second after a failed read.
 */
static int	patterns_stale = 1;
static int	patterns_failed;

/* logins waiting for a free connection */
static ag_login_req *queue_head;
static ag_login_req *queue_tail;

static void sock_cb(evutil_socket_t fd, short what, void *arg);
static void admin_connect(admin_conn *a);
static void dispatch(void);
static void batch_remark(void);

static void
watch(admin_conn *a, short flags)
{
	int			fd = PQsocket(a->conn);

	if (a->sock_ev && fd == a->sock_ev_fd && flags == a->sock_ev_flags)
		return;
	if (a->sock_ev)
	{
		event_free(a->sock_ev);
		a->sock_ev = NULL;
	}
	a->sock_ev_fd = fd;
	a->sock_ev_flags = flags;
	if (fd < 0)
		return;
	a->sock_ev = event_new(ag_proxy_g.base, fd, flags | EV_PERSIST, sock_cb, a);
	event_add(a->sock_ev, NULL);
}

static void
req_free(ag_login_req *r)
{
	free(r->identity);
	if (r->claims)
	{
		memset(r->claims, 0, strlen(r->claims));
		free(r->claims);
	}
	OPENSSL_cleanse(r->stamps, sizeof(r->stamps));
	free(r);
}

static ag_login_req *
queue_pop(void)
{
	ag_login_req *r = queue_head;

	if (r)
	{
		queue_head = r->next;
		if (queue_head == NULL)
			queue_tail = NULL;
		r->next = NULL;
	}
	return r;
}

static void
deliver(ag_login_req *r)
{
	if (r->cb)
	{
		if (r->ok)
			r->cb(r->arg, 1, NULL, NULL, NULL, r->role, r->stamps, r->nstamps);
		else
			r->cb(r->arg, 0, r->sqlstate, r->msg, r->detail[0] ? r->detail : NULL,
				  NULL, NULL, 0);
	}
	req_free(r);
}

static void
fail_one(ag_login_req *r)
{
	r->ok = 0;
	snprintf(r->sqlstate, sizeof(r->sqlstate), "08006");
	snprintf(r->msg, sizeof(r->msg), "login failed");
	r->detail[0] = '\0';
	deliver(r);
}

static void
fail_queue(void)
{
	ag_login_req *r;

	while ((r = queue_pop()) != NULL)
		fail_one(r);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	admin_connect(arg);
}

static void
trim_newline(char *s)
{
	size_t		n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static void
connection_lost(admin_conn *a, const char *why)
{
	char		reason[512];
	ag_login_req *r;

	snprintf(reason, sizeof(reason), "%s", why);
	trim_newline(reason);
	ag_log(AG_LOG_WARNING, NULL, "admin connection %d lost: %s%s", a->index, reason,
		   a->index == 0 ? "; logins are refused until it is back" : "");
	if (a->sock_ev)
	{
		event_free(a->sock_ev);
		a->sock_ev = NULL;
		a->sock_ev_fd = -1;
	}
	if (a->conn)
	{
		PQfinish(a->conn);
		a->conn = NULL;
	}
	a->state = ADM_DOWN;
	if (a->status_inflight)
	{
		a->status_inflight = 0;
		batch_remark();
		if (dispatch_ev)
			event_active(dispatch_ev, EV_TIMEOUT, 0);
	}
	if (a->patterns_inflight)
	{
		a->patterns_inflight = 0;
		patterns_stale = 1;
	}
	r = a->inflight;
	a->inflight = NULL;
	if (r)
		fail_one(r);
	if (a->index == 0)
	{
		/* revocation notices may be missed until it is back */
		ag_logincache_clear();
		fail_queue();
	}
	if (!stopped)
	{
		struct timeval tv = {a->backoff_ms / 1000, (a->backoff_ms % 1000) * 1000};

		evtimer_add(a->retry_ev, &tv);
		a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
	}
}

/* Returns -1 if the connection was lost. */
static int
flush_or_watch(admin_conn *a)
{
	int			rc = PQflush(a->conn);

	if (rc < 0)
	{
		connection_lost(a, PQerrorMessage(a->conn));
		return -1;
	}
	watch(a, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
	return 0;
}

static int
batch_put(const char *p, size_t n)
{
	if (batch.len + n + 1 > batch.cap)
	{
		size_t		cap = (batch.cap ? batch.cap * 2 : 256) + n;
		char	   *l = realloc(batch.literal, cap);

		if (l == NULL)
			return -1;
		batch.literal = l;
		batch.cap = cap;
	}
	memcpy(batch.literal + batch.len, p, n);
	batch.len += n;
	batch.literal[batch.len] = '\0';
	return 0;
}

/* ag_ident_take_marked callback: one more identity for the read. */
static void
batch_add(void *arg, const char *identity)
{
	const char *p;

	if (batch.failed)
		return;
	if (batch.n == batch.cap_names)
	{
		int			cap = batch.cap_names ? batch.cap_names * 2 : 16;
		char	  **names = realloc(batch.names, sizeof(char *) * cap);

		if (names == NULL)
		{
			batch.failed = 1;
			return;
		}
		batch.names = names;
		batch.cap_names = cap;
	}
	if ((batch.names[batch.n] = strdup(identity)) == NULL)
	{
		batch.failed = 1;
		return;
	}
	batch.n++;
	/* an array element in double quotes, with \ and " escaped */
	if (batch_put(batch.n == 1 ? "{\"" : ",\"", 2) < 0)
		batch.failed = 1;
	for (p = identity; *p && !batch.failed; p++)
	{
		if ((*p == '"' || *p == '\\') && batch_put("\\", 1) < 0)
			batch.failed = 1;
		if (batch_put(p, 1) < 0)
			batch.failed = 1;
	}
	if (batch_put("\"", 1) < 0)
		batch.failed = 1;
}

static void
batch_reset(void)
{
	int			i;

	for (i = 0; i < batch.n; i++)
	{
		free(batch.names[i]);
		if (batch.status)
			free(batch.status[i]);
	}
	free(batch.status);
	batch.status = NULL;
	batch.n = 0;
	batch.len = 0;
	batch.failed = 0;
	batch.error = 0;
}

/* The read did not happen: mark the batch again for the next one. */
static void
batch_remark(void)
{
	int			i;

	for (i = 0; i < batch.n; i++)
		(void) ag_ident_mark(ag_proxy_g.idents, batch.names[i]);
	batch_reset();
}

/* Act on the read's answer; only a status other than active closes. */
static void
batch_done(void)
{
	int			i;

	for (i = 0; i < batch.n; i++)
	{
		const char *name = batch.names[i];
		const char *st = batch.status ? batch.status[i] : NULL;

		if (batch.error || st == NULL)
		{
			ag_log(AG_LOG_WARNING, NULL,
				   "revocation notice for \"%s\": its status could not be read; closing its connections (fail closed)",
				   name);
			(void) ag_client_revoke(name);
		}
		else if (strcmp(st, "active") == 0)
			ag_log(AG_LOG_INFO, NULL,
				   "revocation notice for \"%s\" ignored: the identity is active; %d connection(s) kept",
				   name, ag_ident_count(ag_proxy_g.idents, name));
		else
		{
			ag_log(AG_LOG_INFO, NULL, "identity \"%s\" is %s", name, st);
			(void) ag_client_revoke(name);
		}
	}
	batch_reset();
}

/* Record one PGresult of the status read. */
static void
batch_result(PGresult *res)
{
	int			i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2)
	{
		if (!batch.error)
			ag_log(AG_LOG_ERROR, NULL, "agentgate.identity_status() failed: %s",
				   PQresultStatus(res) == PGRES_FATAL_ERROR ? PQresultErrorMessage(res)
				   : PQresStatus(PQresultStatus(res)));
		batch.error = 1;
		return;
	}
	if (batch.status == NULL && (batch.status = calloc(batch.n, sizeof(char *))) == NULL)
	{
		batch.error = 1;
		return;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		long		k = strtol(PQgetvalue(res, i, 0), NULL, 10);

		if (k >= 1 && k <= batch.n && batch.status[k - 1] == NULL)
			batch.status[k - 1] = strdup(PQgetvalue(res, i, 1));
	}
}

/*
 * Start the status read of the marked identities on an idle connection,
 * the listener first (logins use it last), ahead of queued logins.
 */
static void
dispatch_status(void)
{
	int			k;

	if (batch.n > 0 || ag_proxy_g.idents == NULL || ag_ident_nmarked(ag_proxy_g.idents) == 0)
		return;
	for (k = 0; k < nadmins; k++)
	{
		admin_conn *a = &admins[k];
		const char *values[1];

		if (a->state != ADM_READY || a->inflight || a->status_inflight ||
			a->patterns_inflight)
			continue;
		(void) ag_ident_take_marked(ag_proxy_g.idents, batch_add, NULL);
		if (batch.n == 0)
			return;
		if (batch.failed || batch_put("}", 1) < 0)
		{
			/* out of memory: fail closed */
			batch.error = 1;
			batch_done();
			return;
		}
		values[0] = batch.literal;
		if (!PQsendQueryParams(a->conn, STATUS_SQL, 1, NULL, values, NULL, NULL, 0))
		{
			batch_remark();
			connection_lost(a, PQerrorMessage(a->conn));
			continue;
		}
		a->status_inflight = 1;
		a->inflight_since = time(NULL);
		(void) flush_or_watch(a);
		return;
	}
}

/* Read the content patterns on an idle connection, when they are stale. */
static void
dispatch_patterns(void)
{
	int			k;

	if (!patterns_stale)
		return;
	/* one read at a time; a notice during it makes another after it */
	for (k = 0; k < nadmins; k++)
		if (admins[k].patterns_inflight)
			return;
	for (k = 0; k < nadmins; k++)
	{
		admin_conn *a = &admins[k];

		if (a->state != ADM_READY || a->inflight || a->status_inflight)
			continue;
		if (!PQsendQueryParams(a->conn, ag_proxy_patterns_sql(), 0, NULL, NULL, NULL, NULL, 0))
		{
			connection_lost(a, PQerrorMessage(a->conn));
			continue;
		}
		patterns_stale = 0;
		a->patterns_inflight = 1;
		a->inflight_since = time(NULL);
		(void) flush_or_watch(a);
		return;
	}
}

/*
 * Hand queued logins to idle ready connections, the listener last: a login
 * stuck on it would cost the revocation channel too.
 */
static void
dispatch(void)
{
	int			k;

	dispatch_status();
	dispatch_patterns();

	for (k = 0; k < nadmins && queue_head; k++)
	{
		admin_conn *a = &admins[(k + 1) % nadmins];
		ag_login_req *r;
		const char *values[3];
		char		want[12];

		if (a->state != ADM_READY || a->inflight || a->status_inflight ||
			a->patterns_inflight)
			continue;
		r = queue_pop();
		snprintf(want, sizeof(want), "%d", r->want);
		values[0] = r->identity;
		values[1] = r->claims;
		values[2] = want;
		if (!PQsendQueryParams(a->conn, LOGIN_SQL, 3, NULL, values, NULL, NULL, 0))
		{
			/* back to the head of the queue for another connection */
			r->next = queue_head;
			queue_head = r;
			if (queue_tail == NULL)
				queue_tail = r;
			connection_lost(a, PQerrorMessage(a->conn));
			continue;
		}
		a->inflight = r;
		a->inflight_since = time(NULL);
		(void) flush_or_watch(a);
	}
}

/* Record what one PGresult says about the login in flight. */
/* 1 if every row names the same usable role and a usable stamp. */
static int
rows_usable(const ag_login_req *r, PGresult *res)
{
	int			n = PQntuples(res);
	int			i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || n < 1 || n > r->want ||
		PQnfields(res) != 3)
		return 0;
	for (i = 0; i < n; i++)
	{
		if (PQgetisnull(res, i, 0) || PQgetisnull(res, i, 1) || PQgetisnull(res, i, 2) ||
			strlen(PQgetvalue(res, i, 0)) > AG_PGPROTO_NAMELEN ||
			strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, 0, 0)) != 0 ||
			strlen(PQgetvalue(res, i, 1)) > AG_PGPROTO_MAX_STAMP ||
			strlen(PQgetvalue(res, i, 2)) > AG_PGPROTO_MAX_STAMP)
			return 0;
	}
	return 1;
}

static void
take_result(ag_login_req *r, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	int			i;

	if (r->have_result)
		return;
	r->have_result = 1;
	if (res && rows_usable(r, res))
	{
		r->ok = 1;
		snprintf(r->role, sizeof(r->role), "%s", PQgetvalue(res, 0, 0));
		r->nstamps = PQntuples(res);
		for (i = 0; i < r->nstamps; i++)
		{
			snprintf(r->stamps[i].stamp, sizeof(r->stamps[i].stamp), "%s",
					 PQgetvalue(res, i, 1));
			snprintf(r->stamps[i].session, sizeof(r->stamps[i].session), "%s",
					 PQgetvalue(res, i, 2));
		}
		return;
	}
	r->ok = 0;
	if (st == PGRES_FATAL_ERROR)
	{
		const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		const char *d = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

		/*
		 * Class 28 (invalid authorization: revoked, suspended, unknown) is
		 * meant for the client; anything else may name internals and is
		 * only logged.
		 */
		if (code && strncmp(code, "28", 2) == 0 && strlen(code) == 5 && m)
		{
			snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", code);
			snprintf(r->msg, sizeof(r->msg), "%s", m);
			snprintf(r->detail, sizeof(r->detail), "%s", d ? d : "");
			return;
		}
		ag_log(AG_LOG_ERROR, NULL, "agentgate.login(\"%s\") failed: %s %s", r->identity,
			   code ? code : "", m ? m : PQresultErrorMessage(res));
	}
	else
		ag_log(AG_LOG_ERROR, NULL, "agentgate.login(\"%s\") returned %s with %d row(s)",
			   r->identity, PQresStatus(st), PQntuples(res));
	snprintf(r->sqlstate, sizeof(r->sqlstate), "28000");
	snprintf(r->msg, sizeof(r->msg), "login failed");
	r->detail[0] = '\0';
}

static void
handle_notifies(admin_conn *a)
{
	PGnotify   *n;

	while ((n = PQnotifies(a->conn)) != NULL)
	{
		if (strcmp(n->relname, REVOCATION_CHANNEL) == 0 && n->extra && n->extra[0])
		{
			/* cached logins of the identity end now, whatever the status says */
			ag_logincache_revoked(n->extra);
			(void) ag_ident_mark(ag_proxy_g.idents, n->extra);
		}
		else if (strcmp(n->relname, PATTERNS_CHANNEL) == 0)
			patterns_stale = 1;
		PQfreemem(n);
	}
}

/* Read everything libpq can give without blocking. */
static void
handle_input(admin_conn *a)
{
	if (!PQconsumeInput(a->conn))
	{
		connection_lost(a, PQerrorMessage(a->conn));
		return;
	}
	while (!PQisBusy(a->conn))
	{
		PGresult   *res = PQgetResult(a->conn);

		if (res == NULL)
		{
			/* the command in flight is complete */
			if (a->state == ADM_LISTENING)
			{
				a->state = ADM_READY;
				a->backoff_ms = BACKOFF_MIN_MS;
				ag_log(AG_LOG_INFO, NULL, "admin connection %d ready", a->index);
				/* pattern notices may have been missed while it was down */
				if (a->index == 0)
					patterns_stale = 1;
			}
			else if (a->inflight)
			{
				ag_login_req *r = a->inflight;

				a->inflight = NULL;
				if (!r->have_result)
					take_result(r, NULL);
				deliver(r);
			}
			else if (a->status_inflight)
			{
				a->status_inflight = 0;
				batch_done();
			}
			else if (a->patterns_inflight)
				a->patterns_inflight = 0;
			break;
		}
		if (a->state == ADM_LISTENING)
		{
			if (PQresultStatus(res) != PGRES_COMMAND_OK &&
				PQresultStatus(res) != PGRES_EMPTY_QUERY)
			{
				char		why[300];

				snprintf(why, sizeof(why), "setup failed: %s", PQresultErrorMessage(res));
				PQclear(res);
				connection_lost(a, why);
				return;
			}
		}
		else if (a->inflight)
			take_result(a->inflight, res);
		else if (a->status_inflight)
			batch_result(res);
		else if (a->patterns_inflight)
			patterns_failed = ag_proxy_patterns_result(res) < 0;
		PQclear(res);
	}
	if (a->index == 0)
		handle_notifies(a);
	if (PQstatus(a->conn) == CONNECTION_BAD)
	{
		connection_lost(a, PQerrorMessage(a->conn));
		return;
	}
	dispatch();
}

static void
connect_poll(admin_conn *a)
{
	switch (PQconnectPoll(a->conn))
	{
		case PGRES_POLLING_READING:
			watch(a, EV_READ);
			break;
		case PGRES_POLLING_WRITING:
			watch(a, EV_WRITE);
			break;
		case PGRES_POLLING_OK:
			PQsetnonblocking(a->conn, 1);

			/*
			 * Connection 0 listens; the others send an empty query so that
			 * every connection passes through the same LISTENING step.
			 */
			if (!PQsendQuery(a->conn, a->index == 0 ? "LISTEN " REVOCATION_CHANNEL "; "
							 "LISTEN " PATTERNS_CHANNEL : ""))
			{
				connection_lost(a, PQerrorMessage(a->conn));
				return;
			}
			a->state = ADM_LISTENING;
			(void) flush_or_watch(a);
			break;
		default:
			connection_lost(a, PQerrorMessage(a->conn));
			break;
	}
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	admin_conn *a = arg;

	if (a->state == ADM_CONNECTING)
	{
		connect_poll(a);
		return;
	}
	if ((what & EV_WRITE) && flush_or_watch(a) < 0)
		return;
	if (what & EV_READ)
		handle_input(a);
}

static void
admin_connect(admin_conn *a)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {ag_proxy_g.cfg->admin_conninfo, "agentgate-proxy", NULL};

	if (stopped)
		return;
	a->conn = PQconnectStartParams(keys, vals, 1);
	if (a->conn == NULL || PQstatus(a->conn) == CONNECTION_BAD)
	{
		connection_lost(a, a->conn ? PQerrorMessage(a->conn) : "out of memory");
		return;
	}
	a->state = ADM_CONNECTING;
	watch(a, EV_WRITE);
}

static void
dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
	dispatch();
}

/*
 * A login that outlives auth_timeout has no client waiting any more, and
 * its connection is probably stuck (a hung server or network): drop the
 * connection so that it is rebuilt, instead of queueing every later login
 * behind it.
 */
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	time_t		now = time(NULL);
	int			i;

	for (i = 0; i < nadmins; i++)
	{
		admin_conn *a = &admins[i];

		if (a->inflight && now - a->inflight_since > ag_proxy_g.cfg->auth_timeout)
			connection_lost(a, "agentgate.login() did not answer within auth_timeout");
		else if (a->status_inflight && now - a->inflight_since > ag_proxy_g.cfg->auth_timeout)
			connection_lost(a, "agentgate.identity_status() did not answer within auth_timeout");
		else if (a->patterns_inflight && now - a->inflight_since > ag_proxy_g.cfg->auth_timeout)
			connection_lost(a, "agentgate.patterns_for_proxy() did not answer within auth_timeout");
	}
	/* a failed read of the patterns is tried again */
	if (patterns_failed && !patterns_stale)
	{
		patterns_failed = 0;
		patterns_stale = 1;
		dispatch();
	}
}

void
ag_admin_start(void)
{
	int			i;

	stopped = 0;
	if (dispatch_ev == NULL)
		dispatch_ev = event_new(ag_proxy_g.base, -1, 0, dispatch_cb, NULL);
	if (watchdog_ev == NULL)
	{
		struct timeval second = {1, 0};

		watchdog_ev = event_new(ag_proxy_g.base, -1, EV_PERSIST, watchdog_cb, NULL);
		event_add(watchdog_ev, &second);
	}
	nadmins = ag_proxy_g.cfg->admin_connections;
	for (i = 0; i < nadmins; i++)
	{
		admin_conn *a = &admins[i];

		memset(a, 0, sizeof(*a));
		a->index = i;
		a->sock_ev_fd = -1;
		a->backoff_ms = BACKOFF_MIN_MS;
		a->retry_ev = evtimer_new(ag_proxy_g.base, retry_cb, a);
		admin_connect(a);
	}
}

void
ag_admin_stop(void)
{
	int			i;

	stopped = 1;
	for (i = 0; i < nadmins; i++)
	{
		admin_conn *a = &admins[i];
		ag_login_req *r;

		if (a->retry_ev)
			event_free(a->retry_ev);
		a->retry_ev = NULL;
		if (a->sock_ev)
			event_free(a->sock_ev);
		a->sock_ev = NULL;
		if (a->conn)
			PQfinish(a->conn);
		a->conn = NULL;
		a->state = ADM_DOWN;
		if (a->status_inflight)
		{
			/* read again once connections are back (a reload) */
			a->status_inflight = 0;
			batch_remark();
		}
		r = a->inflight;
		a->inflight = NULL;
		if (r)
			fail_one(r);
	}
	fail_queue();
	nadmins = 0;
	if (dispatch_ev)
		event_free(dispatch_ev);
	dispatch_ev = NULL;
	if (watchdog_ev)
		event_free(watchdog_ev);
	watchdog_ev = NULL;
}

/*
 * Logins go ahead only while revocations can reach the proxy and the
 * content patterns have loaded (fail closed).
 */
int
ag_admin_ready(void)
{
	return nadmins > 0 && admins[0].state == ADM_READY && ag_proxy_patterns_ready();
}

struct ag_login_req *
ag_admin_login(const char *identity, const char *claims_json, int nstamps,
			   ag_login_cb cb, void *arg)
{
	ag_login_req *r;

	if (!ag_admin_ready())
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->cb = cb;
	r->arg = arg;
	r->want = nstamps < 1 ? 1 : nstamps > MAX_STAMPS ? MAX_STAMPS : nstamps;
	r->identity = strdup(identity);
	r->claims = strdup(claims_json);
	if (r->identity == NULL || r->claims == NULL)
	{
		req_free(r);
		return NULL;
	}
	if (queue_tail)
		queue_tail->next = r;
	else
		queue_head = r;
	queue_tail = r;

	/*
	 * Sent from the event loop, not from here: a send can find a connection
	 * broken and fail requests, and the caller's callback must never run
	 * inside this call.
	 */
	event_active(dispatch_ev, EV_TIMEOUT, 0);
	return r;
}

void
ag_admin_forget(struct ag_login_req *req)
{
	ag_login_req **pp;
	int			i;

	for (i = 0; i < nadmins; i++)
	{
		if (admins[i].inflight == req)
		{
			req->cb = NULL;		/* the answer is dropped when it comes */
			return;
		}
	}
	for (pp = &queue_head; *pp; pp = &(*pp)->next)
	{
		if (*pp == req)
		{
			*pp = req->next;
			if (queue_tail == req)
			{
				ag_login_req *t;

				queue_tail = NULL;
				for (t = queue_head; t; t = t->next)
					queue_tail = t;
			}
			req_free(req);
			return;
		}
	}
}
