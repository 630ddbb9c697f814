/*-------------------------------------------------------------------------
 *
 * proxy_admin.c
 *	  The proxy's own connection to PostgreSQL: agentgate.login() calls and
 *	  LISTEN agentgate_revocations.
 *
 * libpq runs in non-blocking mode inside the event loop; logins queue and
 * run one at a time (each is a short transaction on the server).  When the
 * connection is down, logins are refused at once (fail closed) while
 * established sessions go on, and the connection is retried with
 * exponential backoff.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define LOGIN_SQL \
	"SELECT r::text, agentgate.session_stamp(r) FROM agentgate.login($1, $2::jsonb) AS r"
#define REVOCATION_CHANNEL "agentgate_revocations"
#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	30000

typedef struct ag_login_req
{
	struct ag_login_req *next;
	ag_login_cb cb;				/* NULL once the client has gone */
	void	   *arg;
	char	   *identity;
	char	   *claims;
	/* outcome */
	int			have_result;
	int			ok;
	char		sqlstate[6];
	char		msg[200];
	char		detail[300];
	char		role[AG_PGPROTO_NAMELEN + 1];
	char		stamp[AG_PGPROTO_MAX_STAMP + 1];
} ag_login_req;

typedef enum
{
	ADM_DOWN,
	ADM_CONNECTING,
	ADM_LISTENING,				/* LISTEN sent, waiting for its result */
	ADM_READY
} admin_state;

static PGconn *conn;
static admin_state state = ADM_DOWN;
static struct event *sock_ev;
static short sock_ev_flags;
static int	sock_ev_fd = -1;
static struct event *retry_ev;
static int	backoff_ms = BACKOFF_MIN_MS;
static int	stopped;

static ag_login_req *queue_head;	/* head is in flight when inflight */
static ag_login_req *queue_tail;
static int	inflight;

static void sock_cb(evutil_socket_t fd, short what, void *arg);
static void admin_connect(void);

static void
watch(short flags)
{
	int			fd = PQsocket(conn);

	if (sock_ev && fd == sock_ev_fd && flags == sock_ev_flags)
		return;
	if (sock_ev)
	{
		event_free(sock_ev);
		sock_ev = NULL;
	}
	sock_ev_fd = fd;
	sock_ev_flags = flags;
	if (fd < 0)
		return;
	sock_ev = event_new(ag_proxy_g.base, fd, flags | EV_PERSIST, sock_cb, NULL);
	event_add(sock_ev, NULL);
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
	}
	return r;
}

static void
deliver(ag_login_req *r)
{
	if (r->cb)
	{
		if (r->ok)
			r->cb(r->arg, 1, NULL, NULL, NULL, r->role, r->stamp);
		else
			r->cb(r->arg, 0, r->sqlstate, r->msg, r->detail[0] ? r->detail : NULL,
				  NULL, NULL);
	}
	req_free(r);
}

static void
fail_all(void)
{
	ag_login_req *r;

	inflight = 0;
	while ((r = queue_pop()) != NULL)
	{
		r->ok = 0;
		snprintf(r->sqlstate, sizeof(r->sqlstate), "08006");
		snprintf(r->msg, sizeof(r->msg), "login failed");
		r->detail[0] = '\0';
		deliver(r);
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	admin_connect();
}

static void
connection_lost(const char *why)
{
	ag_log(AG_LOG_WARNING, NULL, "admin connection lost: %s; logins are refused until it is back",
		   why);
	if (sock_ev)
	{
		event_free(sock_ev);
		sock_ev = NULL;
		sock_ev_fd = -1;
	}
	if (conn)
	{
		PQfinish(conn);
		conn = NULL;
	}
	state = ADM_DOWN;
	fail_all();
	if (!stopped)
	{
		struct timeval tv = {backoff_ms / 1000, (backoff_ms % 1000) * 1000};

		evtimer_add(retry_ev, &tv);
		backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
	}
}

static void
trim_newline(char *s)
{
	size_t		n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static void
flush_or_watch(void)
{
	int			rc = PQflush(conn);

	if (rc < 0)
		connection_lost(PQerrorMessage(conn));
	else
		watch(rc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void
send_next(void)
{
	ag_login_req *r = queue_head;
	const char *values[2];

	if (state != ADM_READY || inflight || r == NULL)
		return;
	values[0] = r->identity;
	values[1] = r->claims;
	if (!PQsendQueryParams(conn, LOGIN_SQL, 2, NULL, values, NULL, NULL, 0))
	{
		connection_lost(PQerrorMessage(conn));
		return;
	}
	inflight = 1;
	flush_or_watch();
}

/* Record what one PGresult says about the login in flight. */
static void
take_result(ag_login_req *r, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (r->have_result)
		return;
	r->have_result = 1;
	if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 2 &&
		!PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1) &&
		strlen(PQgetvalue(res, 0, 0)) <= AG_PGPROTO_NAMELEN &&
		strlen(PQgetvalue(res, 0, 1)) <= AG_PGPROTO_MAX_STAMP)
	{
		r->ok = 1;
		snprintf(r->role, sizeof(r->role), "%s", PQgetvalue(res, 0, 0));
		snprintf(r->stamp, sizeof(r->stamp), "%s", PQgetvalue(res, 0, 1));
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
		ag_log(AG_LOG_ERROR, NULL, "agentgate.login(\"%s\") failed: %s%s", r->identity,
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
handle_notifies(void)
{
	PGnotify   *n;

	while ((n = PQnotifies(conn)) != NULL)
	{
		if (strcmp(n->relname, REVOCATION_CHANNEL) == 0 && n->extra && n->extra[0])
			ag_client_revoke(n->extra);
		PQfreemem(n);
	}
}

/* Read everything libpq can give without blocking. */
static void
handle_input(void)
{
	if (!PQconsumeInput(conn))
	{
		connection_lost(PQerrorMessage(conn));
		return;
	}
	while (!PQisBusy(conn))
	{
		PGresult   *res = PQgetResult(conn);

		if (res == NULL)
		{
			/* the command in flight is complete */
			if (state == ADM_LISTENING)
			{
				state = ADM_READY;
				backoff_ms = BACKOFF_MIN_MS;
				ag_log(AG_LOG_INFO, NULL, "admin connection ready");
			}
			else if (inflight)
			{
				ag_login_req *r = queue_pop();

				inflight = 0;
				if (!r->have_result)
					take_result(r, NULL);
				deliver(r);
				if (conn == NULL)
					return;
			}
			break;
		}
		if (state == ADM_LISTENING)
		{
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				char		why[300];

				snprintf(why, sizeof(why), "LISTEN failed: %s", PQresultErrorMessage(res));
				trim_newline(why);
				PQclear(res);
				connection_lost(why);
				return;
			}
		}
		else if (inflight)
			take_result(queue_head, res);
		PQclear(res);
	}
	handle_notifies();
	if (PQstatus(conn) == CONNECTION_BAD)
	{
		connection_lost(PQerrorMessage(conn));
		return;
	}
	send_next();
}

static void
connect_poll(void)
{
	switch (PQconnectPoll(conn))
	{
		case PGRES_POLLING_READING:
			watch(EV_READ);
			break;
		case PGRES_POLLING_WRITING:
			watch(EV_WRITE);
			break;
		case PGRES_POLLING_OK:
			PQsetnonblocking(conn, 1);
			if (!PQsendQuery(conn, "LISTEN " REVOCATION_CHANNEL))
			{
				connection_lost(PQerrorMessage(conn));
				return;
			}
			state = ADM_LISTENING;
			flush_or_watch();
			break;
		default:
			{
				char		why[512];

				snprintf(why, sizeof(why), "%s", PQerrorMessage(conn));
				trim_newline(why);
				connection_lost(why);
			}
			break;
	}
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	if (state == ADM_CONNECTING)
	{
		connect_poll();
		return;
	}
	if (what & EV_WRITE)
	{
		flush_or_watch();
		if (conn == NULL)
			return;
	}
	if (what & EV_READ)
		handle_input();
}

static void
admin_connect(void)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {ag_proxy_g.cfg->admin_conninfo, "agentgate-proxy", NULL};

	if (stopped)
		return;
	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD)
	{
		char		why[512];

		snprintf(why, sizeof(why), "%s", conn ? PQerrorMessage(conn) : "out of memory");
		trim_newline(why);
		connection_lost(why);
		return;
	}
	state = ADM_CONNECTING;
	watch(EV_WRITE);
}

void
ag_admin_start(void)
{
	stopped = 0;
	if (retry_ev == NULL)
		retry_ev = evtimer_new(ag_proxy_g.base, retry_cb, NULL);
	backoff_ms = BACKOFF_MIN_MS;
	admin_connect();
}

void
ag_admin_stop(void)
{
	stopped = 1;
	if (retry_ev)
		evtimer_del(retry_ev);
	if (sock_ev)
	{
		event_free(sock_ev);
		sock_ev = NULL;
		sock_ev_fd = -1;
	}
	if (conn)
	{
		PQfinish(conn);
		conn = NULL;
	}
	state = ADM_DOWN;
	fail_all();
}

int
ag_admin_ready(void)
{
	return state == ADM_READY;
}

struct ag_login_req *
ag_admin_login(const char *identity, const char *claims_json, ag_login_cb cb,
			   void *arg)
{
	ag_login_req *r;

	if (state != ADM_READY)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->arg = arg;
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
	 * send_next may find the connection broken and fail every request; the
	 * callback is set afterwards so that it never runs inside this call.
	 */
	send_next();
	if (state != ADM_READY)
		return NULL;
	r->cb = cb;
	return r;
}

void
ag_admin_forget(struct ag_login_req *req)
{
	ag_login_req **pp;

	if (inflight && req == queue_head)
	{
		req->cb = NULL;			/* the answer is dropped when it comes */
		return;
	}
	for (pp = &queue_head; *pp; pp = &(*pp)->next)
	{
		if (*pp == req)
		{
			*pp = req->next;
			if (queue_tail == req)
			{
				queue_tail = NULL;
				for (ag_login_req *t = queue_head; t; t = t->next)
					queue_tail = t;
			}
			req_free(req);
			return;
		}
	}
}
