/*-------------------------------------------------------------------------
 *
 * proxy_dbcheck.c
 *	  Is the client's database one an agent can use?  Checked at login.
 *
 * PgBouncer 1.18 answers a database that does not exist, that does not
 * allow connections (template0) or that lacks the extension (its
 * auth_query fails) only after query_wait_timeout (120 s by default), with
 * "query_wait_timeout" or "bouncer config error".  libpq and node-postgres
 * default the database name to the user name, and agents are told any user
 * name works, so this is the first thing a new agent hits.  The proxy
 * therefore checks the database itself before agentgate.login() and
 * answers at once with a FATAL that says what is wrong and what to set.
 *
 * Two steps, each on a short-lived libpq connection made from
 * admin_conninfo (the proxy's own credential; nothing the client sent
 * reaches libpq except the database name as a plain value):
 *
 *	  1. in the admin database, pg_database by exact name: exists, allows
 *		 connections, not a template.  When the database is the admin
 *		 database itself, the same query also reads pg_extension.
 *	  2. otherwise, in the database itself (pg_extension is per database
 *		 and can only be read there): is agentgate installed?
 *
 * Decisions are made on catalog rows, never on the text of a libpq error.
 * A check that cannot be made (no connection, an error, no answer within
 * auth_timeout) refuses the login (fail closed) and is logged in full.
 *
 * Answers are cached per database name: a usable database for
 * CHECK_TTL_OK seconds, an unusable one for CHECK_TTL_BAD seconds (so a
 * database created or fixed by the DBA is seen quickly, and a client
 * retrying a wrong name costs one check every few seconds).  The cache
 * holds at most CHECK_MAX_ENTRIES names and at most CHECK_MAX_RUNNING
 * checks run at once (others wait their turn); only clients with a valid
 * token get this far, and each is bounded by its own auth_timeout.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define CHECK_TTL_OK		10
#define CHECK_TTL_BAD		2
#define CHECK_MAX_ENTRIES	1024
#define CHECK_MAX_RUNNING	8

/*
 * One row or none.  "here" says whether the answer about the extension
 * could be read in this database (the admin database itself).
 */
#define CATALOG_SQL \
	"SELECT d.datallowconn, d.datistemplate, d.datname = current_database(), " \
	"       d.datname = current_database() AND " \
	"       EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'agentgate') " \
	"  FROM pg_catalog.pg_database d WHERE d.datname = $1::text COLLATE \"C\""
#define EXTENSION_SQL \
	"SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'agentgate')"

typedef enum
{
	CK_IDLE,					/* answer cached (or none yet) */
	CK_WAITING,					/* waiting for a free check slot */
	CK_CONNECTING,
	CK_QUERYING
} check_phase;

struct ag_dbcheck_req
{
	struct ag_dbcheck_req *next;
	ag_dbcheck_cb cb;
	void	   *arg;
};

typedef struct check_entry
{
	struct check_entry *next;
	char	   *dbname;
	check_phase phase;
	int			step;			/* 1: catalog, 2: pg_extension */
	time_t		expires;		/* of the cached answer; 0: none */
	time_t		started;
	ag_dbcheck_result res;
	PGconn	   *conn;
	struct event *sock_ev;
	short		sock_ev_flags;
	int			sock_ev_fd;
	int			got_row;
	struct ag_dbcheck_req *waiters;
} check_entry;

static check_entry *entries;
static int	nentries;
static int	nrunning;
static struct event *tick_ev;	/* once a second: slow checks */
static struct event *kick_ev;	/* runs start_waiting() from the loop */

static void start_step(check_entry *e, int step);
static void sock_cb(evutil_socket_t fd, short what, void *arg);

static void
set_result(ag_dbcheck_result *r, int ok, const char *sqlstate, const char *msg,
		   const char *detail, const char *hint)
{
	memset(r, 0, sizeof(*r));
	r->ok = ok;
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate ? sqlstate : "");
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
	snprintf(r->detail, sizeof(r->detail), "%s", detail ? detail : "");
	snprintf(r->hint, sizeof(r->hint), "%s", hint ? hint : "");
}

static void
watch(check_entry *e, short flags)
{
	int			fd = PQsocket(e->conn);

	if (e->sock_ev && fd == e->sock_ev_fd && flags == e->sock_ev_flags)
		return;
	if (e->sock_ev)
		event_free(e->sock_ev);
	e->sock_ev = NULL;
	e->sock_ev_fd = fd;
	e->sock_ev_flags = flags;
	if (fd < 0)
		return;
	e->sock_ev = event_new(ag_proxy_g.base, fd, flags | EV_PERSIST, sock_cb, e);
	if (e->sock_ev)
		event_add(e->sock_ev, NULL);
}

static void
close_conn(check_entry *e)
{
	if (e->sock_ev)
		event_free(e->sock_ev);
	e->sock_ev = NULL;
	e->sock_ev_fd = -1;
	if (e->conn)
		PQfinish(e->conn);
	e->conn = NULL;
}

static void
start_waiting(void)
{
	check_entry *e;

	for (e = entries; e && nrunning < CHECK_MAX_RUNNING; e = e->next)
		if (e->phase == CK_WAITING)
			start_step(e, 1);
}

/* The answer is in e->res: cache it and tell every waiting client. */
static void
finish(check_entry *e)
{
	struct ag_dbcheck_req *w;

	close_conn(e);
	if (e->phase != CK_IDLE && e->phase != CK_WAITING)
		nrunning--;
	e->phase = CK_IDLE;
	e->expires = time(NULL) + (e->res.ok ? CHECK_TTL_OK : CHECK_TTL_BAD);
	while ((w = e->waiters) != NULL)
	{
		e->waiters = w->next;
		if (w->cb)
			w->cb(w->arg, &e->res);
		free(w);
	}
	start_waiting();
}

/* The check itself failed: refuse (fail closed), log why. */
static void
check_failed(check_entry *e, const char *why)
{
	char		reason[512];
	size_t		n;

	snprintf(reason, sizeof(reason), "%s", why ? why : "unknown error");
	n = strlen(reason);
	while (n > 0 && (reason[n - 1] == '\n' || reason[n - 1] == '\r'))
		reason[--n] = '\0';
	ag_log(AG_LOG_WARNING, NULL, "could not check database \"%s\": %s", e->dbname, reason);
	{
		char		msg[AG_PGPROTO_NAMELEN + 64];

		snprintf(msg, sizeof(msg), "could not check database \"%s\"", e->dbname);
		set_result(&e->res, 0, "08006", msg,
				   "agentgate-proxy could not read the database's catalog; the reason is in the proxy's log.",
				   "Try again later; if it persists, the administrator should check that the proxy's role can connect to this database.");
	}
	finish(e);
}

static void
decide_catalog(check_entry *e, PGresult *res)
{
	char		msg[AG_PGPROTO_NAMELEN + 80];
	char		detail[300];

	if (PQntuples(res) == 0)
	{
		snprintf(msg, sizeof(msg), "database \"%s\" does not exist", e->dbname);
		set_result(&e->res, 0, "3D000", msg, NULL,
				   "Set the database name (dbname= in libpq and psycopg, database in node-postgres, or PGDATABASE); "
				   "libpq and node-postgres use the user name when none is set.");
		finish(e);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
	{
		snprintf(msg, sizeof(msg), "database \"%s\" is a template", e->dbname);
		snprintf(detail, sizeof(detail),
				 "Template databases are copied into new databases; agents cannot connect to them.");
		set_result(&e->res, 0, "55000", msg, detail,
				   "Connect to an application database where agentgate is installed.");
		finish(e);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
	{
		snprintf(msg, sizeof(msg), "database \"%s\" does not allow connections", e->dbname);
		set_result(&e->res, 0, "55000", msg,
				   "Its datallowconn is false.",
				   "Connect to an application database where agentgate is installed.");
		finish(e);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
	{
		/* the admin database: the extension was read in the same query */
		if (strcmp(PQgetvalue(res, 0, 3), "t") == 0)
			set_result(&e->res, 1, NULL, NULL, NULL, NULL);
		else
			goto not_installed;
		finish(e);
		return;
	}
	close_conn(e);
	start_step(e, 2);
	return;

not_installed:
	snprintf(msg, sizeof(msg), "agentgate is not installed in database \"%s\"", e->dbname);
	set_result(&e->res, 0, "55000", msg,
			   "Agents can only use databases where the agentgate extension is installed.",
			   "Connect to a database where agentgate is installed, or ask the administrator to run CREATE EXTENSION agentgate there.");
	finish(e);
}

static void
decide_extension(check_entry *e, PGresult *res)
{
	char		msg[AG_PGPROTO_NAMELEN + 80];

	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
	{
		set_result(&e->res, 1, NULL, NULL, NULL, NULL);
		finish(e);
		return;
	}
	snprintf(msg, sizeof(msg), "agentgate is not installed in database \"%s\"", e->dbname);
	set_result(&e->res, 0, "55000", msg,
			   "Agents can only use databases where the agentgate extension is installed.",
			   "Connect to a database where agentgate is installed, or ask the administrator to run CREATE EXTENSION agentgate there.");
	finish(e);
}

static void
handle_input(check_entry *e)
{
	if (!PQconsumeInput(e->conn))
	{
		check_failed(e, PQerrorMessage(e->conn));
		return;
	}
	while (!PQisBusy(e->conn))
	{
		PGresult   *res = PQgetResult(e->conn);

		if (res == NULL)
		{
			/* the query ended without a result we could use */
			check_failed(e, "the catalog query returned no result");
			return;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK ||
			PQnfields(res) != (e->step == 1 ? 4 : 1) || PQntuples(res) > 1)
		{
			char		why[400];

			snprintf(why, sizeof(why), "%s",
					 PQresultStatus(res) == PGRES_FATAL_ERROR ? PQresultErrorMessage(res)
					 : PQresStatus(PQresultStatus(res)));
			PQclear(res);
			check_failed(e, why);
			return;
		}
		if (e->step == 1)
			decide_catalog(e, res);
		else
			decide_extension(e, res);
		PQclear(res);
		return;
	}
}

static void
send_query(check_entry *e)
{
	const char *values[1] = {e->dbname};
	int			rc;

	PQsetnonblocking(e->conn, 1);
	if (e->step == 1)
		rc = PQsendQueryParams(e->conn, CATALOG_SQL, 1, NULL, values, NULL, NULL, 0);
	else
		rc = PQsendQueryParams(e->conn, EXTENSION_SQL, 0, NULL, NULL, NULL, NULL, 0);
	if (!rc)
	{
		check_failed(e, PQerrorMessage(e->conn));
		return;
	}
	e->phase = CK_QUERYING;
	rc = PQflush(e->conn);
	if (rc < 0)
	{
		check_failed(e, PQerrorMessage(e->conn));
		return;
	}
	watch(e, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void
connect_poll(check_entry *e)
{
	switch (PQconnectPoll(e->conn))
	{
		case PGRES_POLLING_READING:
			watch(e, EV_READ);
			break;
		case PGRES_POLLING_WRITING:
			watch(e, EV_WRITE);
			break;
		case PGRES_POLLING_OK:
			send_query(e);
			break;
		default:
			check_failed(e, PQerrorMessage(e->conn));
			break;
	}
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	check_entry *e = arg;

	if (e->phase == CK_CONNECTING)
	{
		connect_poll(e);
		return;
	}
	if (what & EV_WRITE)
	{
		int			rc = PQflush(e->conn);

		if (rc < 0)
		{
			check_failed(e, PQerrorMessage(e->conn));
			return;
		}
		watch(e, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
	}
	if (what & EV_READ)
		handle_input(e);
}

/*
 * Step 1 connects to the admin database as configured; step 2 to the
 * client's database with the same settings.  libpq expands only the first
 * dbname (the conninfo string); the second is taken as a plain name.
 */
static void
start_step(check_entry *e, int step)
{
	const char *keys[] = {"dbname", "fallback_application_name", "dbname", NULL};
	const char *vals[] = {ag_proxy_g.cfg->admin_conninfo, "agentgate-proxy dbcheck",
	e->dbname, NULL};

	if (e->phase == CK_WAITING || e->phase == CK_IDLE)
	{
		nrunning++;
		e->started = time(NULL);
	}
	e->step = step;
	e->phase = CK_CONNECTING;
	if (step == 1)
		keys[2] = vals[2] = NULL;
	e->conn = PQconnectStartParams(keys, vals, 1);
	if (e->conn == NULL || PQstatus(e->conn) == CONNECTION_BAD)
	{
		check_failed(e, e->conn ? PQerrorMessage(e->conn) : "out of memory");
		return;
	}
	watch(e, EV_WRITE);
}

/* Checks slower than auth_timeout fail (their clients have gone anyway). */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	time_t		now = time(NULL);
	check_entry *e;
	check_entry *next;

	for (e = entries; e; e = next)
	{
		next = e->next;
		if ((e->phase == CK_CONNECTING || e->phase == CK_QUERYING) &&
			now - e->started >= ag_proxy_g.cfg->auth_timeout)
			check_failed(e, "no answer within auth_timeout");
	}
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	start_waiting();
}

static void
entry_free(check_entry *e)
{
	close_conn(e);
	free(e->dbname);
	free(e);
}

/* Make room: drop expired answers, then the oldest idle one. */
static void
evict(void)
{
	check_entry **pp;
	check_entry **oldest = NULL;
	time_t		now = time(NULL);

	for (pp = &entries; *pp;)
	{
		check_entry *e = *pp;

		if (e->phase == CK_IDLE && e->waiters == NULL && e->expires <= now)
		{
			*pp = e->next;
			entry_free(e);
			nentries--;
			continue;
		}
		if (e->phase == CK_IDLE && e->waiters == NULL &&
			(oldest == NULL || e->expires < (*oldest)->expires))
			oldest = pp;
		pp = &e->next;
	}
	if (nentries >= CHECK_MAX_ENTRIES && oldest)
	{
		check_entry *e = *oldest;

		*oldest = e->next;
		entry_free(e);
		nentries--;
	}
}

int
ag_dbcheck(const char *dbname, ag_dbcheck_result *res, ag_dbcheck_cb cb, void *arg,
		   struct ag_dbcheck_req **req)
{
	check_entry *e;
	struct ag_dbcheck_req *w;

	*req = NULL;
	if (tick_ev == NULL)
	{
		struct timeval second = {1, 0};

		tick_ev = event_new(ag_proxy_g.base, -1, EV_PERSIST, tick_cb, NULL);
		if (tick_ev == NULL)
			return -1;
		event_add(tick_ev, &second);
		kick_ev = event_new(ag_proxy_g.base, -1, 0, kick_cb, NULL);
	}
	if (kick_ev == NULL)
		return -1;
	for (e = entries; e; e = e->next)
		if (strcmp(e->dbname, dbname) == 0)
			break;
	if (e && e->phase == CK_IDLE && e->expires > time(NULL))
	{
		*res = e->res;
		return 1;
	}
	if (e == NULL)
	{
		if (nentries >= CHECK_MAX_ENTRIES)
			evict();
		if (nentries >= CHECK_MAX_ENTRIES)
			return -1;
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->dbname = strdup(dbname)) == NULL)
		{
			free(e);
			return -1;
		}
		e->phase = CK_IDLE;
		e->sock_ev_fd = -1;
		e->next = entries;
		entries = e;
		nentries++;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	w->cb = cb;
	w->arg = arg;
	w->next = e->waiters;
	e->waiters = w;
	*req = w;
	if (e->phase == CK_IDLE)
	{
		e->phase = CK_WAITING;
		/* started from the loop: the callback never runs inside this call */
		event_active(kick_ev, EV_TIMEOUT, 0);
	}
	return 0;
}

void
ag_dbcheck_forget(struct ag_dbcheck_req *req)
{
	/* the entry frees it when the answer comes */
	req->cb = NULL;
}

void
ag_dbcheck_invalidate(void)
{
	check_entry *e;

	for (e = entries; e; e = e->next)
		e->expires = 0;
}
