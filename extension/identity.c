/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Agent identities inside the server: live revocation, session stamps,
 *	  and the settings agentgate.login() reads.
 *
 * Revocation.  agentgate.revoke()/suspend() make the identity's role
 * NOLOGIN.  PgBouncer's auth_query then refuses new server logins, but
 * PgBouncer keeps server connections open for days and passes them from
 * client to client, so the role's live backends must stop as well: every
 * statement of a governed session first checks, through the syscache, that
 * session_user may still log in.  ALTER ROLE invalidates that cache entry
 * in every backend; pending invalidations are read at the start of each
 * check, so the refusal reaches even the next statement of an open
 * transaction.  On top of that, the role's backends are sent SIGTERM right
 * after the revoking transaction commits (agentgate.terminate_revoked_sessions),
 * which also stops a statement that is already running.
 *
 * Session stamps.  Under transaction pooling only session_user tells
 * backends' clients apart; application_name is the one per-client value
 * PgBouncer carries to whichever backend serves the client, re-sending it
 * with SET when it assigns a server connection.  The proxy asks
 * agentgate.session_stamp() (over its admin connection) for a stamp bound
 * to the agent's role:
 *
 *		ag1.<session id, 16 hex>.<HMAC-SHA256(key, "ag1.<sid>.<role>"), 16 hex>
 *
 * and sends "<client app> <stamp>" as application_name.  The key lives in
 * the superuser-only setting agentgate.session_key, so proxies need no
 * secret of their own and an agent cannot mint a stamp for itself.  A
 * governed session may run a statement only while its application_name
 * carries a valid stamp for session_user: SET/RESET application_name are
 * judged on the value they would install, and set_config() or a function's
 * SET clause (which no hook sees) are caught by the check at the start of
 * the next statement.  The last value that verified is remembered, so the
 * HMAC is recomputed only when application_name changes.
 *
 * Both checks run in ExecutorStart (every plan execution, nested ones
 * included) and ProcessUtility (every utility statement).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "identity.h"

/*
 * agentgate.session_key: the HMAC key of session stamps.  Superuser-only and
 * hidden from SHOW ALL; changing it on reload invalidates every stamp (and
 * with agentgate.require_session_stamp on, every live agent session).
 */
static char *session_key = NULL;

/*
 * agentgate.require_session_stamp: governed sessions must carry a valid
 * stamp in application_name.  Turn off only for test servers where agents
 * do not come through the proxy.
 */
static bool require_session_stamp = true;

/*
 * agentgate.auto_provision: login() creates a role for an identity it has
 * never seen.  Off: only identities registered with agentgate.register()
 * may log in.  Read by login() through current_setting().
 */
static bool auto_provision = true;

/*
 * agentgate.groups_claim: the claim login() reads group names from; must
 * match the proxy's groups_claim.  A name starting with "/" is a JSON
 * pointer into the claims (e.g. /realm_access/roles).
 */
static char *groups_claim = NULL;

/*
 * agentgate.terminate_revoked_sessions: after a revocation or suspension
 * commits, terminate the backends logged in as the identity's role.
 */
static bool terminate_revoked = true;

static ExecutorStart_hook_type prev_executor_start = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* Last application_name that verified, for which role (see stamp_current_ok) */
#define AG_APPNAME_CACHE	256
static char stamp_ok_app[AG_APPNAME_CACHE];
static Oid	stamp_ok_role = InvalidOid;
static bool stamp_ok_valid = false;

/* Roles whose backends are terminated when this transaction commits */
typedef struct PendingTermination
{
	Oid			role;
	SubTransactionId subid;
} PendingTermination;

#define AG_MAX_PENDING_TERMINATIONS 64
static PendingTermination pending[AG_MAX_PENDING_TERMINATIONS];
static int	npending = 0;

/* How a statement is judged (see classify_utility) */
typedef enum AgStmtKind
{
	AG_STMT_ORDINARY,			/* live identity and a valid stamp */
	AG_STMT_EXIT,				/* always allowed: ends a transaction, or
								 * is judged by PostgreSQL itself */
	AG_STMT_NO_STAMP,			/* live identity; no stamp needed */
	AG_STMT_SET_APPNAME			/* live identity; the new value needs a stamp */
} AgStmtKind;

PG_FUNCTION_INFO_V1(agentgate_session_stamp);
PG_FUNCTION_INFO_V1(agentgate_session_id);
PG_FUNCTION_INFO_V1(agentgate_terminate_at_commit);

static void
hex_encode_lower(const uint8 *src, int len, char *dst)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < len; i++)
	{
		dst[2 * i] = hex[src[i] >> 4];
		dst[2 * i + 1] = hex[src[i] & 0x0f];
	}
	dst[2 * len] = '\0';
}

static bool
session_key_usable(void)
{
	return session_key != NULL && strlen(session_key) >= 32;
}

static void
require_session_key(void)
{
	if (!session_key_usable())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate.session_key is not set"),
				 errdetail("Session stamps need a secret of at least 32 characters."),
				 errhint("Set agentgate.session_key in postgresql.conf (for example to the output of \"openssl rand -hex 32\") and reload.")));
}

/* MAC of "ag1.<sid>.<role>" as 16 lower-case hex characters. */
static bool
stamp_mac(const char *sid, const char *role, char *out)
{
	pg_hmac_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	bool		ok;

	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		return false;
	ok = pg_hmac_init(ctx, (const uint8 *) session_key, strlen(session_key)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) AG_STAMP_PREFIX, strlen(AG_STAMP_PREFIX)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) sid, strlen(sid)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) ".", 1) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) role, strlen(role)) == 0 &&
		pg_hmac_final(ctx, digest, sizeof(digest)) == 0;
	pg_hmac_free(ctx);
	if (ok)
		hex_encode_lower(digest, AG_STAMP_MAC_BYTES, out);
	return ok;
}

/*
 * Stamps that verified, by role name.  A MAC is a pure function of the key,
 * the session id and the role name, so entries stay true until the key
 * changes (stamp_cache_reset).  Under PgBouncer's transaction pooling one
 * backend sees the stamps of every connection of its role in turn (PgBouncer
 * re-sends application_name when a transaction lands on a server connection
 * another client used); without this cache each of them cost an HMAC three
 * times per transaction.  Only successes are cached; the MAC part is
 * compared in constant time.
 */
#define AG_STAMP_CACHE		16

typedef struct StampCacheEntry
{
	bool		valid;
	char		role[NAMEDATALEN];
	char		stamp[AG_STAMP_LEN + 1];
} StampCacheEntry;

static StampCacheEntry verified_stamps[AG_STAMP_CACHE];
static int	verified_next = 0;

static void
verified_stamps_reset(void)
{
	memset(verified_stamps, 0, sizeof(verified_stamps));
	verified_next = 0;
}

static bool
verified_stamp_known(const char *stamp, const char *role)
{
	size_t		pub = strlen(AG_STAMP_PREFIX) + AG_STAMP_SID_HEX + 1;

	for (int i = 0; i < AG_STAMP_CACHE; i++)
	{
		StampCacheEntry *e = &verified_stamps[i];
		int			diff = 0;

		if (!e->valid || strcmp(e->role, role) != 0 ||
			memcmp(e->stamp, stamp, pub) != 0)
			continue;
		for (size_t k = pub; k < AG_STAMP_LEN; k++)
			diff |= e->stamp[k] ^ stamp[k];
		return diff == 0;
	}
	return false;
}

static void
verified_stamp_add(const char *stamp, const char *role)
{
	StampCacheEntry *e;

	if (strlen(role) >= NAMEDATALEN)
		return;
	e = &verified_stamps[verified_next];
	verified_next = (verified_next + 1) % AG_STAMP_CACHE;
	strlcpy(e->role, role, sizeof(e->role));
	memcpy(e->stamp, stamp, AG_STAMP_LEN);
	e->stamp[AG_STAMP_LEN] = '\0';
	e->valid = true;
}

/*
 * ag_stamp_verify checks the stamp at the end of appname (after its last
 * space, or the whole value) for role.  On success copies the session id
 * into sid_out (AG_STAMP_SID_HEX + 1 bytes) and returns true.
 */
bool
ag_stamp_verify(const char *appname, const char *role, char *sid_out)
{
	const char *stamp;
	const char *p;
	char		sid[AG_STAMP_SID_HEX + 1];
	char		mac[AG_STAMP_MAC_BYTES * 2 + 1];
	size_t		plen = strlen(AG_STAMP_PREFIX);

	if (appname == NULL || role == NULL || !session_key_usable())
		return false;
	stamp = strrchr(appname, ' ');
	stamp = stamp ? stamp + 1 : appname;
	if (strlen(stamp) != AG_STAMP_LEN || strncmp(stamp, AG_STAMP_PREFIX, plen) != 0)
		return false;
	p = stamp + plen;
	for (int i = 0; i < AG_STAMP_SID_HEX; i++)
	{
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	}
	if (p[AG_STAMP_SID_HEX] != '.')
		return false;
	memcpy(sid, p, AG_STAMP_SID_HEX);
	sid[AG_STAMP_SID_HEX] = '\0';
	if (verified_stamp_known(stamp, role))
	{
		if (sid_out)
			strlcpy(sid_out, sid, AG_STAMP_SID_HEX + 1);
		return true;
	}
	if (!stamp_mac(sid, role, mac))
		return false;
	/* constant-time compare: the MAC is the only secret-dependent value */
	{
		const char *given = p + AG_STAMP_SID_HEX + 1;
		int			diff = 0;

		for (int i = 0; i < AG_STAMP_MAC_BYTES * 2; i++)
			diff |= given[i] ^ mac[i];
		if (diff != 0)
			return false;
	}
	verified_stamp_add(stamp, role);
	if (sid_out)
		strlcpy(sid_out, sid, AG_STAMP_SID_HEX + 1);
	return true;
}

/*
 * agentgate.session_stamp(role name) returns a fresh stamp for role.
 * EXECUTE is granted to agentgate_proxy only.
 */
Datum
agentgate_session_stamp(PG_FUNCTION_ARGS)
{
	Name		role = PG_GETARG_NAME(0);
	uint8		raw[AG_STAMP_SID_HEX / 2];
	char		sid[AG_STAMP_SID_HEX + 1];
	char		mac[AG_STAMP_MAC_BYTES * 2 + 1];

	require_session_key();
	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session id")));
	hex_encode_lower(raw, sizeof(raw), sid);
	if (!stamp_mac(sid, NameStr(*role), mac))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the session stamp")));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s%s.%s", AG_STAMP_PREFIX, sid, mac)));
}

/*
 * agentgate.session_id() returns the verified session id of this session,
 * or NULL when application_name carries no valid stamp for session_user.
 */
Datum
agentgate_session_id(PG_FUNCTION_ARGS)
{
	char		sid[AG_STAMP_SID_HEX + 1];
	const char *app = GetConfigOption("application_name", true, false);
	char	   *role = GetUserNameFromId(GetSessionUserId(), true);

	if (role == NULL || !ag_stamp_verify(app, role, sid))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(sid));
}

/* ---------- per-statement checks ---------- */

static void
stamp_cache_reset(void)
{
	verified_stamps_reset();
	stamp_ok_valid = false;
	stamp_ok_role = InvalidOid;
	stamp_ok_app[0] = '\0';
}

/* A role was altered or renamed: a stamp is bound to the role's name. */
static void
identity_authid_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	stamp_cache_reset();
}

/* A new key makes every earlier verification meaningless. */
static void
session_key_assign(const char *newval, void *extra)
{
	stamp_cache_reset();
}

/* Does the current application_name carry a valid stamp for role? */
static bool
stamp_current_ok(Oid roleid, const char *rolname)
{
	const char *app = application_name ? application_name : "";

	if (stamp_ok_valid && stamp_ok_role == roleid && strcmp(stamp_ok_app, app) == 0)
		return true;
	if (!ag_stamp_verify(app, rolname, NULL))
		return false;
	if (strlen(app) < AG_APPNAME_CACHE)
	{
		strlcpy(stamp_ok_app, app, AG_APPNAME_CACHE);
		stamp_ok_role = roleid;
		stamp_ok_valid = true;
	}
	return true;
}

/*
 * PgBouncer re-sends these (with application_name last) before a client's
 * first query on a server connection, while application_name may still be
 * unstamped; they change nothing the stamp protects.
 */
static bool
pooler_tracked_setting(const char *name)
{
	static const char *const names[] = {
		"client_encoding", "datestyle", "timezone", "standard_conforming_strings"
	};

	for (int i = 0; i < lengthof(names); i++)
	{
		if (pg_strcasecmp(name, names[i]) == 0)
			return true;
	}
	return false;
}

static AgStmtKind
classify_utility(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_TransactionStmt:
			{
				TransactionStmt *ts = (TransactionStmt *) parsetree;

				/* never keep a session from leaving a transaction */
				if (ts->kind == TRANS_STMT_ROLLBACK || ts->kind == TRANS_STMT_ROLLBACK_TO)
					return AG_STMT_EXIT;
				return AG_STMT_ORDINARY;
			}
		case T_VariableSetStmt:
			{
				VariableSetStmt *vs = (VariableSetStmt *) parsetree;

				if (vs->kind == VAR_RESET_ALL)
					return AG_STMT_NO_STAMP;
				if (vs->name == NULL)
					return AG_STMT_ORDINARY;
				/*
				 * Only a superuser-authenticated session can switch to
				 * another role; PostgreSQL checks that itself.
				 */
				if (strcmp(vs->name, "session_authorization") == 0)
					return AG_STMT_EXIT;
				if (pg_strcasecmp(vs->name, "application_name") == 0)
					return AG_STMT_SET_APPNAME;
				if (pooler_tracked_setting(vs->name))
					return AG_STMT_NO_STAMP;
				return AG_STMT_ORDINARY;
			}
		case T_DiscardStmt:
			/* a pooler's reset: removes state, runs nothing */
			return AG_STMT_NO_STAMP;
		default:
			return AG_STMT_ORDINARY;
	}
}

/* The value SET/RESET application_name would install. */
static const char *
appname_after(VariableSetStmt *vs)
{
	switch (vs->kind)
	{
		case VAR_SET_VALUE:
			return ExtractSetVariableArgs(vs);
		case VAR_SET_DEFAULT:
		case VAR_RESET:
			return GetConfigOptionResetString("application_name");
		case VAR_SET_CURRENT:
			return application_name;
		default:
			return NULL;
	}
}

static void
identity_check(AgStmtKind kind, Node *parsetree)
{
	Oid			roleid;
	HeapTuple	tup;
	bool		canlogin;
	NameData	rolname;

	/*
	 * Outside a valid transaction (an aborted block) only ROLLBACK or COMMIT
	 * can run, and both only end the transaction.
	 */
	if (kind == AG_STMT_EXIT || !IsTransactionState())
		return;

	/*
	 * Read pending catalog invalidations now: a statement inside an open
	 * transaction takes no new snapshot and maybe no lock, and would
	 * otherwise see a revocation only at its transaction's end.  Cheap when
	 * the queue holds nothing for us.
	 */
	AcceptInvalidationMessages();

	roleid = GetSessionUserId();
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	if (!HeapTupleIsValid(tup))
	{
		/* background workers may run with no role of their own */
		if (!AmRegularBackendProcess())
			return;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("session role no longer exists"),
				 errdetail("The role this session logged in as (OID %u) was dropped.", roleid),
				 errhint("Reconnect as an existing role.")));
	}
	canlogin = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	namestrcpy(&rolname, NameStr(((Form_pg_authid) GETSTRUCT(tup))->rolname));
	ReleaseSysCache(tup);

	if (!ag_session_is_governed())
		return;

	if (!canlogin)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("agent identity has been revoked"),
				 errdetail("Role \"%s\" may no longer log in: its identity was revoked or suspended.",
						   NameStr(rolname)),
				 errhint("Ask a database administrator to resume the identity, then reconnect through the agentgate proxy.")));

	if (!require_session_stamp || kind == AG_STMT_NO_STAMP)
		return;

	if (kind == AG_STMT_SET_APPNAME)
	{
		const char *newval = appname_after((VariableSetStmt *) parsetree);

		if (!ag_stamp_verify(newval, NameStr(rolname), NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("agents may not set application_name without a valid session stamp"),
					 errdetail("The new value does not end with a stamp issued by agentgate for role \"%s\".",
							   NameStr(rolname)),
					 errhint("Keep the stamp the agentgate proxy put at the end of application_name.")));
		return;
	}

	if (!stamp_current_ok(roleid, NameStr(rolname)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agent session has no valid session stamp"),
				 errdetail("application_name does not end with a stamp issued by agentgate for role \"%s\".",
						   NameStr(rolname)),
				 errhint("Connect through the agentgate proxy and do not change application_name.")));
}

static void
ag_identity_executor_start(QueryDesc *queryDesc, int eflags)
{
	identity_check(AG_STMT_ORDINARY, NULL);

	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
ag_identity_process_utility(PlannedStmt *pstmt, const char *queryString,
							bool readOnlyTree, ProcessUtilityContext context,
							ParamListInfo params, QueryEnvironment *queryEnv,
							DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	identity_check(classify_utility(parsetree), parsetree);

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* ---------- terminating a revoked role's backends ---------- */

/*
 * Send SIGTERM to every client backend logged in as role, like
 * pg_terminate_backend() (the whole process group when backends lead one).
 * Runs after commit: it must not throw.
 */
static void
terminate_role_backends(Oid role)
{
	int			n;

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_backendType != B_BACKEND || be->st_userid != role ||
			be->st_procpid <= 0 || be->st_procpid == MyProcPid)
			continue;
#ifdef HAVE_SETSID
		(void) kill(-be->st_procpid, SIGTERM);
#else
		(void) kill(be->st_procpid, SIGTERM);
#endif
	}
	pgstat_clear_backend_activity_snapshot();
}

static void
identity_xact_callback(XactEvent event, void *arg)
{
	int			n;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
			/* reset first: nothing below may leave stale entries behind */
			n = npending;
			npending = 0;
			for (int i = 0; i < n; i++)
				terminate_role_backends(pending[i].role);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_ABORT:
			/* a prepared revocation commits elsewhere; statements still stop */
			npending = 0;
			break;
		default:
			break;
	}
}

static void
identity_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			keep = 0;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (int i = 0; i < npending; i++)
		{
			if (pending[i].subid != mySubid)
				pending[keep++] = pending[i];
		}
		npending = keep;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < npending; i++)
		{
			if (pending[i].subid == mySubid)
				pending[i].subid = parentSubid;
		}
	}
}

/*
 * agentgate.terminate_at_commit(role regrole) returns true when the
 * backends logged in as role will be terminated once the calling
 * transaction commits (agentgate.terminate_revoked_sessions is on and role
 * is governed).  Called by set_status(); EXECUTE is revoked from PUBLIC.
 */
Datum
agentgate_terminate_at_commit(PG_FUNCTION_ARGS)
{
	Oid			role = PG_GETARG_OID(0);
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (!terminate_revoked || !ag_role_is_governed(role))
		PG_RETURN_BOOL(false);
	for (int i = 0; i < npending; i++)
	{
		if (pending[i].role == role)
			PG_RETURN_BOOL(true);
	}
	if (npending >= AG_MAX_PENDING_TERMINATIONS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many revocations in one transaction"),
				 errdetail("At most %d roles can be revoked or suspended per transaction.",
						   AG_MAX_PENDING_TERMINATIONS),
				 errhint("Commit the revocations in smaller transactions.")));
	pending[npending].role = role;
	pending[npending].subid = subid;
	npending++;
	PG_RETURN_BOOL(true);
}

/*
 * The superuser-only settings also refuse a governed session that a DBA
 * granted SET on them (GRANT SET ON PARAMETER): set_config() is a built-in
 * call no statement hook sees, so the check is the setting's own.
 */
static bool
check_identity_setting(bool *newval, void **extra, GucSource source)
{
	return !ag_setting_refused_for_agent(source);
}

void
ag_identity_init(void)
{
	DefineCustomStringVariable("agentgate.session_key",
							   "Secret that authenticates session stamps in application_name.",
							   "At least 32 characters; shared by nothing else.",
							   &session_key,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, session_key_assign, NULL);
	DefineCustomBoolVariable("agentgate.require_session_stamp",
							 "Refuse statements of agent sessions whose application_name lacks a valid session stamp.",
							 NULL,
							 &require_session_stamp,
							 true,
							 PGC_SUSET,
							 0,
							 check_identity_setting, NULL, NULL);
	DefineCustomBoolVariable("agentgate.auto_provision",
							 "Let agentgate.login() create a role for an identity it has not seen before.",
							 "Off: only identities registered with agentgate.register() may log in.",
							 &auto_provision,
							 true,
							 PGC_SUSET,
							 GUC_SUPERUSER_ONLY,
							 check_identity_setting, NULL, NULL);
	DefineCustomStringVariable("agentgate.groups_claim",
							   "Token claim holding the identity's groups; must match the proxy's groups_claim.",
							   "A top-level claim name, or a JSON pointer starting with \"/\".",
							   &groups_claim,
							   "groups",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("agentgate.terminate_revoked_sessions",
							 "Terminate the backends of an agent role when its revocation or suspension commits.",
							 "Statements of live sessions are refused either way.",
							 &terminate_revoked,
							 true,
							 PGC_SUSET,
							 0,
							 check_identity_setting, NULL, NULL);

	CacheRegisterSyscacheCallback(AUTHOID, identity_authid_inval, (Datum) 0);
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);

	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = ag_identity_executor_start;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = ag_identity_process_utility;
}
