/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  The shared pool: many agent identities on few server connections.
 *
 * With one PgBouncer pool per identity, the number of identities is bounded
 * by max_connections.  In the shared pool every agent of a database reaches
 * the server through one login role, agentgate_pool, which owns nothing,
 * is a member of no role and holds no privilege; the identity is switched
 * inside the backend for each client's turn on the server connection:
 *
 *	 - at the start of a turn, the proxy pipelines (no Sync, so PgBouncer
 *	   keeps the server connection for the client's message that follows)
 *	   CALL agentgate.assume(role, stamp), the stamp being the one
 *	   session_stamp() issued for that client connection, as a bound
 *	   parameter (never in query text, so never in pg_stat_activity);
 *	 - assume() verifies the stamp for the role with the session key, and
 *	   binds: the current user becomes the agent's role with
 *	   SECURITY_LOCAL_USERID_CHANGE, under which PostgreSQL itself refuses
 *	   SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION, set_config('role')
 *	   and a function's SET role clause;
 *	 - the binding lasts until DISCARD ALL, which PgBouncer runs when the
 *	   client's turn ends (server_reset_query = DISCARD ALL,
 *	   server_reset_query_always = 1) and which removes everything a turn
 *	   leaves behind: temp tables, prepared statements, WITH HOLD cursors,
 *	   advisory locks, LISTEN, lastval(), session settings.  So a message
 *	   holding several transactions ("COMMIT; BEGIN; ...") keeps its
 *	   identity, and no state crosses identities;
 *	 - a shared-pool backend with no identity runs nothing but the carrier,
 *	   ROLLBACK, DISCARD/RESET ALL and the settings PgBouncer re-sends; a
 *	   missing carrier or a missing reset query fails closed, and binding a
 *	   second identity over a first is refused.
 *
 * Everything agentgate decides (policy, masks, approvals, scopes, audit,
 * revocation at every statement) asks ag_session_role(), which is the bound
 * role here and session_user elsewhere.
 *
 * PostgreSQL's transactions save the user id and security context when
 * they start and restore them when they abort; the binding follows the same
 * rule (an abort puts back the binding the transaction started with).
 * Between transactions the security context must be clear (StartTransaction
 * asserts it), so a commit clears SECURITY_LOCAL_USERID_CHANGE and the
 * hooks that precede anything a statement runs (ProcessUtility, the planner,
 * ExecutorStart) set it again: parse analysis, which runs before them,
 * executes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "libpq/libpq.h"
#include "storage/proc.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "hooks.h"
#include "identity.h"
#include "pool.h"

PG_FUNCTION_INFO_V1(agentgate_assume);
PG_FUNCTION_INFO_V1(agentgate_session_role);

/* The carrier's C symbol: what identifies the procedure, not its name. */
#define CARRIER_SYMBOL		"agentgate_assume"
#define POOL_STAMP_MAX		256

typedef struct PoolBinding
{
	bool		valid;
	Oid			role;
	char		rolname[NAMEDATALEN];
	char		stamp[POOL_STAMP_MAX];
} PoolBinding;

static PoolBinding bound;

/*
 * Is the client's turn still going?  Set by the carrier, cleared when the
 * backend tells the client it is idle (ReadyForQuery 'I'): PgBouncer takes
 * the server connection back then, and its DISCARD ALL follows.  A bound
 * backend between turns runs nothing of a client's until the next carrier,
 * and inside a turn DISCARD ALL is the client's own, refused: it would drop
 * the identity and let the client bind another.
 */
static bool turn_open = false;

/* The backend's own protocol output, wrapped to see ReadyForQuery. */
static const PQcommMethods *socket_methods = NULL;
static PQcommMethods watched_methods;
static PoolBinding xact_start_binding;	/* what an abort puts back */
static bool xact_changed = false;

/*
 * Is session_user agentgate_pool?  -1: not known yet (or roles changed);
 * known for pool_session_of (a superuser's SET SESSION AUTHORIZATION
 * changes session_user).
 */
static int	pool_session = -1;
static Oid	pool_session_of = InvalidOid;

/* The last CALL target looked at, and whether it is the carrier. */
static Oid	carrier_checked = InvalidOid;
static bool carrier_is = false;

/*
 * The local transaction the carrier ran in, while nothing else has run in it
 * since.  PostgreSQL marks a transaction that an Execute left open as a
 * pipeline, which refuses VACUUM, CREATE INDEX CONCURRENTLY and the like;
 * the carrier alone is not the client's pipeline, so the client's first
 * statement is judged as if it came first.
 */
static LocalTransactionId carrier_lxid = InvalidLocalTransactionId;

/* Set by hooks.c while the carrier runs: no other concern looks at it. */
bool		ag_pool_in_carrier = false;

static void
pool_role_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	pool_session = -1;
}

static void
pool_proc_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	carrier_checked = InvalidOid;
}

/*
 * Is this a shared-pool backend?  Needs a transaction the first time (and
 * after any change to roles).
 */
bool
ag_pool_session(void)
{
	Oid			session = GetSessionUserId();

	if (pool_session < 0 || pool_session_of != session)
	{
		Oid			pool;

		if (!IsTransactionState())
			return bound.valid;
		pool = get_role_oid(AG_POOL_ROLE, true);
		pool_session = (OidIsValid(pool) && session == pool) ? 1 : 0;
		pool_session_of = session;
	}
	return pool_session == 1;
}

Oid
ag_pool_bound_role(void)
{
	return bound.valid ? bound.role : InvalidOid;
}

const char *
ag_pool_stamp(void)
{
	return bound.valid ? bound.stamp : NULL;
}

/*
 * What pg_stat_activity shows for a shared-pool backend: its usename is the
 * login role for every client, so application_name (the activity entry
 * only, not the setting: PgBouncer and the client see no change) names the
 * identity and session the backend serves now.
 */
static void
report_binding(void)
{
	char		buf[NAMEDATALEN * 2];
	const char *sid = NULL;

	if (!bound.valid)
	{
		pgstat_report_appname(application_name ? application_name : "");
		return;
	}
	if (strlen(bound.stamp) == AG_STAMP_LEN &&
		strncmp(bound.stamp, AG_STAMP_PREFIX, strlen(AG_STAMP_PREFIX)) == 0)
		sid = bound.stamp + strlen(AG_STAMP_PREFIX);
	snprintf(buf, sizeof(buf), "%s %.*s", bound.rolname,
			 sid ? AG_STAMP_SID_HEX : 0, sid ? sid : "");
	pgstat_report_appname(buf);
}

/* Remember what an abort of this transaction must restore, once. */
static void
binding_will_change(void)
{
	if (!xact_changed)
	{
		xact_start_binding = bound;
		xact_changed = true;
	}
}

/*
 * Is the utility statement the carrier, CALL agentgate.assume(...)?
 * Decided on the called procedure's OID: a C function whose symbol is the
 * carrier's (only a superuser can create C functions).
 */
bool
ag_pool_is_carrier(Node *parsetree)
{
	CallStmt   *cs;
	Oid			fn;

	if (parsetree == NULL || !IsA(parsetree, CallStmt))
		return false;
	cs = (CallStmt *) parsetree;
	if (cs->funcexpr == NULL)
		return false;
	fn = cs->funcexpr->funcid;
	if (fn != carrier_checked)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
		bool		is = false;

		if (HeapTupleIsValid(tup))
		{
			Form_pg_proc p = (Form_pg_proc) GETSTRUCT(tup);
			bool		isnull;
			Datum		src;

			if (p->prolang == ClanguageId)
			{
				src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
				if (!isnull)
				{
					char	   *s = TextDatumGetCString(src);

					is = strcmp(s, CARRIER_SYMBOL) == 0;
					pfree(s);
				}
			}
			ReleaseSysCache(tup);
		}
		carrier_checked = fn;
		carrier_is = is;
	}
	return carrier_is;
}

static int
watched_putmessage(char msgtype, const char *s, size_t len)
{
	if (msgtype == 'Z' && len == 1 && s[0] == 'I')
		turn_open = false;
	return socket_methods->putmessage(msgtype, s, len);
}

/*
 * Called at authentication of every client backend (after PostgreSQL set up
 * its protocol output): from here on the backend's ReadyForQuery messages
 * end turns.  Parallel workers redirect their own output and never get here.
 */
void
ag_pool_watch_client(void)
{
	if (socket_methods != NULL || PqCommMethods == NULL)
		return;
	socket_methods = PqCommMethods;
	watched_methods = *socket_methods;
	watched_methods.putmessage = watched_putmessage;
	PqCommMethods = &watched_methods;
}

/*
 * Is this a shared-pool backend that serves no client's turn now: no
 * identity bound, or one bound but its turn over (the next client's
 * carrier has not come yet)?  Such a backend runs nothing of a client's.
 * Without the watch on its output (no client authenticated it) a binding
 * counts as a turn.
 */
bool
ag_pool_unserved(void)
{
	return ag_pool_session() &&
		!(bound.valid && (turn_open || socket_methods == NULL));
}

/* The refusal of whatever an unserved shared-pool backend was asked to do. */
void
ag_pool_refuse(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("no agent identity on this shared server connection"),
			 errdetail("A backend of role \"%s\" %s only for the agent identity the proxy binds for a client's turn (its first message to its idle ReadyForQuery); PgBouncer's DISCARD ALL ends the binding.",
					   AG_POOL_ROLE, what),
			 errhint("Connect through the agentgate proxy with shared_pool = on.")));
}

/*
 * The planner may run functions (constant folding): an unserved shared-pool
 * backend plans nothing.  (Utility statements are identity's: some of them
 * run there.)
 */
void
ag_pool_planner_check(void)
{
	if (ag_pool_unserved())
		ag_pool_refuse("plans statements");
}

/*
 * A function is about to run (object_access, OAT_FUNCTION_EXECUTE): in a
 * shared-pool backend only for the identity of the client's turn.  The
 * statement hooks refuse everything else earlier; this also covers the
 * protocol's FunctionCall message, which runs a function with no statement
 * around it (the proxy does not forward it; a client of PgBouncer's socket
 * might).  Parallel workers run part of a plan their leader has checked,
 * and have no binding of their own.
 */
void
ag_pool_function_check(void)
{
	if (!ag_pool_in_carrier && !IsParallelWorker() && IsTransactionState() &&
		ag_pool_unserved())
		ag_pool_refuse("runs functions");
}

/*
 * Called first by the hooks that precede anything a statement executes:
 * a bound backend runs with SECURITY_LOCAL_USERID_CHANGE set, so that
 * PostgreSQL refuses every change of role.
 */
void
ag_pool_enter(Node *utility)
{
	Oid			user;
	int			ctx;

	if (carrier_lxid != InvalidLocalTransactionId)
	{
		if (utility != NULL && carrier_lxid == MyProc->lxid && !ag_pool_is_carrier(utility))
			MyXactFlags &= ~XACT_FLAGS_PIPELINING;
		carrier_lxid = InvalidLocalTransactionId;
	}
	if (!bound.valid || !IsTransactionState())
		return;
	GetUserIdAndSecContext(&user, &ctx);
	if ((ctx & SECURITY_LOCAL_USERID_CHANGE) == 0)
		SetUserIdAndSecContext(user, ctx | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * Before a utility statement runs: DISCARD ALL ends the client's turn.
 * The identity is dropped first, so that DISCARD ALL's own
 * SET SESSION AUTHORIZATION DEFAULT (refused under
 * SECURITY_LOCAL_USERID_CHANGE) runs, as the login role.
 */
void
ag_pool_utility(Node *parsetree)
{
	if (!bound.valid || parsetree == NULL || !IsA(parsetree, DiscardStmt) ||
		((DiscardStmt *) parsetree)->target != DISCARD_ALL)
		return;
	if (turn_open)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("DISCARD ALL is not allowed on a shared server connection"),
				 errdetail("PgBouncer runs it when the client's turn ends; inside the turn it would drop the agent identity the proxy bound."),
				 errhint("Use DISCARD TEMP, DISCARD PLANS, DEALLOCATE ALL or RESET ALL for what you need reset.")));
	binding_will_change();
	bound.valid = false;
	SetUserIdAndSecContext(GetSessionUserId(), 0);
	report_binding();
}

static void
pool_xact_callback(XactEvent event, void *arg)
{
	Oid			user;
	int			ctx;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			xact_changed = false;
			if (bound.valid)
			{
				GetUserIdAndSecContext(&user, &ctx);
				if (user == bound.role)
					SetUserIdAndSecContext(user, ctx & ~SECURITY_LOCAL_USERID_CHANGE);
			}
			break;
		case XACT_EVENT_ABORT:
			/* PostgreSQL puts back the user id; put back its binding */
			if (xact_changed)
			{
				bound = xact_start_binding;
				report_binding();
			}
			xact_changed = false;
			break;
		default:
			break;
	}
}

void
ag_pool_init(void)
{
	CacheRegisterSyscacheCallback(AUTHOID, pool_role_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, pool_proc_inval, (Datum) 0);
	RegisterXactCallback(pool_xact_callback, NULL);
}

/*
 * CALL agentgate.assume(role, stamp): the carrier.  Binds this shared-pool
 * backend to the agent identity the stamp was issued for.
 */
Datum
agentgate_assume(PG_FUNCTION_ARGS)
{
	char	   *rolname;
	char	   *stamp;
	Oid			roleid;
	Oid			user;
	int			ctx;

	if (!ag_pool_session())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate.assume() is only for the shared pool's login role"),
				 errdetail("session_user is not %s.", AG_POOL_ROLE),
				 errhint("Agents connect through the agentgate proxy, which calls it itself.")));
	if (!ag_pool_in_carrier)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate.assume() must be called on its own"),
				 errdetail("It runs only as a top-level CALL statement."),
				 errhint("The agentgate proxy sends it at the start of each client's turn.")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("agentgate.assume() needs a role and a session stamp")));
	if (superuser_arg(GetSessionUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" must not be a superuser", AG_POOL_ROLE),
				 errhint("ALTER ROLE %s NOSUPERUSER.", AG_POOL_ROLE)));

	rolname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	stamp = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (bound.valid)
	{
		if (strcmp(bound.rolname, rolname) == 0 && strcmp(bound.stamp, stamp) == 0)
		{
			/* the same client again, on a connection not reset: its turn */
			turn_open = true;
			carrier_lxid = MyProc->lxid;
			PG_RETURN_VOID();
		}
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("this shared server connection still holds another agent session"),
				 errdetail("It serves a session of role \"%s\" until DISCARD ALL ends that client's turn.",
						   bound.rolname),
				 errhint("Run PgBouncer with server_reset_query = DISCARD ALL and server_reset_query_always = 1.")));
	}

	roleid = get_role_oid(rolname, true);
	if (strlen(rolname) >= NAMEDATALEN || strlen(stamp) >= POOL_STAMP_MAX ||
		!OidIsValid(roleid) || !ag_role_is_governed(roleid) ||
		!ag_identity_stamp_ok(stamp, rolname))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("session stamp does not verify for an agent role"),
				 errdetail("The stamp was not issued by agentgate for role \"%s\", or that role is not an agent role.",
						   rolname),
				 errhint("Agents connect through the agentgate proxy; stamps come from agentgate.session_stamp().")));

	binding_will_change();
	bound.valid = true;
	bound.role = roleid;
	strlcpy(bound.rolname, rolname, sizeof(bound.rolname));
	strlcpy(bound.stamp, stamp, sizeof(bound.stamp));
	GetUserIdAndSecContext(&user, &ctx);
	SetUserIdAndSecContext(roleid, ctx | SECURITY_LOCAL_USERID_CHANGE);
	turn_open = true;
	carrier_lxid = MyProc->lxid;
	report_binding();

	/*
	 * The identity's own checks, now: revoked, suspended, reaching a role
	 * agents may not hold, a revoked identity in its chain.  A refusal
	 * aborts, which puts the binding back.
	 */
	ag_identity_check_now();
	PG_RETURN_VOID();
}

/*
 * agentgate.session_role(): the role agentgate governs this session as:
 * the identity a shared-pool backend is bound to, session_user otherwise.
 */
Datum
agentgate_session_role(PG_FUNCTION_ARGS)
{
	Oid			role = ag_session_role();
	char	   *name = GetUserNameFromId(role, true);

	if (name == NULL || (ag_pool_session() && !bound.valid))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(namein, CStringGetDatum(name)));
}
