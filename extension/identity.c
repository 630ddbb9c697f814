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
 * the next statement.  Verified stamps are remembered (one cache, below), so
 * the HMAC is computed once per stamp and role.
 *
 * Identity is the one owner of the session id: the statement checks, the
 * audit log (ag_session_id) and agentgate.session_id() all read it through
 * stamp_verify, and session_stamp() hands the proxy the session id as a
 * column of its own, so no other component parses the stamp's format.
 *
 * Both checks run in ExecutorStart (every plan execution, nested ones
 * included) and ProcessUtility (every utility statement), called by
 * hooks.c before policy decides anything about the statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/makefuncs.h"
#include "port/pg_bswap.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "delegation.h"
#include "policy.h"
#include "hooks.h"
#include "identity.h"
#include "pool.h"

/*
 * agentgate.session_key_file and agentgate.session_key: where the HMAC key
 * of session stamps comes from (the file wins when both are set).  Changing
 * either on reload invalidates every stamp (and with
 * agentgate.require_session_stamp on, every live agent session).
 *
 * The key is never the value of a setting.  The check hooks put it in the
 * hook's "extra" and leave AG_KEY_MASK as the value, so SHOW,
 * current_setting(), pg_settings (setting, reset_val, boot_val) and
 * pg_read_all_settings show the mask to everyone, superusers included:
 * GUC_SUPERUSER_ONLY alone is undone by a single GRANT pg_read_all_settings.
 * Only the C code below reads the key.  The file is read by every server
 * process when it reads the configuration (start and SIGHUP); it must be a
 * regular file that neither group nor others may access.
 */
#define AG_KEY_MASK			"********"
#define AG_KEY_MIN			32
#define AG_KEY_FILE_MAX		1024

static char *session_key_setting = NULL;	/* AG_KEY_MASK or "" */
static char *session_key_file = NULL;	/* a path, or "" */
static const char *key_from_setting = NULL; /* extra of session_key */
static const char *key_from_file = NULL;	/* extra of session_key_file */

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
PG_FUNCTION_INFO_V1(agentgate_session_stamp_bound);
PG_FUNCTION_INFO_V1(agentgate_session_id);
PG_FUNCTION_INFO_V1(agentgate_terminate_at_commit);
PG_FUNCTION_INFO_V1(agentgate_role_unsafe_reason);

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

/* The key in use, or NULL. */
static const char *
session_key(void)
{
	return key_from_file ? key_from_file : key_from_setting;
}

static bool
session_key_usable(void)
{
	const char *key = session_key();

	return key != NULL && strlen(key) >= AG_KEY_MIN;
}

static void
require_session_key(void)
{
	if (!session_key_usable())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate.session_key is not set"),
				 errdetail("Session stamps need a secret of at least %d characters.", AG_KEY_MIN),
				 errhint("Write a key (for example the output of \"openssl rand -hex 32\") to a file only the server's OS user can read, set agentgate.session_key_file to its path and reload.")));
}

/*
 * MAC of "ag1.<sid>.<role>" as 16 lower-case hex characters; for a
 * delegated session (d not NULL) the MAC also covers its chain and scopes
 * (ag_delegation_binding), so the stamp verifies only together with the
 * delegation session_stamp() made for it.
 */
static bool
stamp_mac(const char *sid, const char *role, const AgDelegation *d, char *out)
{
	pg_hmac_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		bind[AG_DELEG_NAMES_LEN + 32];
	int			bindlen = 0;
	bool		ok;

	if (d && (bindlen = ag_delegation_binding(d, bind, sizeof(bind))) < 0)
		return false;
	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		return false;
	ok = pg_hmac_init(ctx, (const uint8 *) session_key(), strlen(session_key())) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) AG_STAMP_PREFIX, strlen(AG_STAMP_PREFIX)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) sid, strlen(sid)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) ".", 1) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) role, strlen(role)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) bind, bindlen) == 0 &&
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
 * compared in constant time.  This is the only cache of stamps: every
 * reader of the session id goes through stamp_verify.
 */
#define AG_STAMP_CACHE		16

typedef struct StampCacheEntry
{
	bool		valid;
	char		role[NAMEDATALEN];
	char		stamp[AG_STAMP_LEN + 1];
	bool		delegated;		/* deleg is the session's delegation */
	AgDelegation deleg;
} StampCacheEntry;

static StampCacheEntry verified_stamps[AG_STAMP_CACHE];
static int	verified_next = 0;

static void
verified_stamps_reset(void)
{
	memset(verified_stamps, 0, sizeof(verified_stamps));
	verified_next = 0;
}

static StampCacheEntry *
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
		return diff == 0 ? e : NULL;
	}
	return NULL;
}

static StampCacheEntry *
verified_stamp_add(const char *stamp, const char *role, const AgDelegation *d)
{
	StampCacheEntry *e;

	if (strlen(role) >= NAMEDATALEN)
		return NULL;
	e = &verified_stamps[verified_next];
	verified_next = (verified_next + 1) % AG_STAMP_CACHE;
	strlcpy(e->role, role, sizeof(e->role));
	memcpy(e->stamp, stamp, AG_STAMP_LEN);
	e->stamp[AG_STAMP_LEN] = '\0';
	e->delegated = d != NULL;
	if (d)
		memcpy(&e->deleg, d, sizeof(AgDelegation));
	e->valid = true;
	return e;
}

/*
 * Where the session's stamp is: the one a shared-pool backend was bound
 * with (pool.c), or the end of application_name.
 */
static const char *
stamp_source(void)
{
	const char *s = ag_pool_stamp();

	return s ? s : application_name;
}

/*
 * stamp_verify checks the stamp at the end of appname (after its last
 * space, or the whole value) for role.  On success copies the session id
 * into sid_out (AG_STAMP_SID_HEX + 1 bytes) when it is not NULL, points
 * *deleg_out (when not NULL) at the session's delegation or NULL, valid
 * until the next call, and returns true.
 */
static bool
stamp_verify(const char *appname, const char *role, char *sid_out,
			 const AgDelegation **deleg_out)
{
	const char *stamp;
	const char *p;
	char		sid[AG_STAMP_SID_HEX + 1];
	char		mac[AG_STAMP_MAC_BYTES * 2 + 1];
	size_t		plen = strlen(AG_STAMP_PREFIX);
	StampCacheEntry *e;
	AgDelegation deleg;
	bool		delegated;

	if (deleg_out)
		*deleg_out = NULL;

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
	if ((e = verified_stamp_known(stamp, role)) != NULL)
	{
		if (sid_out)
			strlcpy(sid_out, sid, AG_STAMP_SID_HEX + 1);
		if (deleg_out && e->delegated)
			*deleg_out = &e->deleg;
		return true;
	}
	/* a session id session_stamp() bound a delegation to needs it in the MAC */
	delegated = ag_delegation_find(sid, &deleg);
	if (!stamp_mac(sid, role, delegated ? &deleg : NULL, mac))
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
	e = verified_stamp_add(stamp, role, delegated ? &deleg : NULL);
	if (sid_out)
		strlcpy(sid_out, sid, AG_STAMP_SID_HEX + 1);
	if (deleg_out && delegated)
		*deleg_out = e ? &e->deleg : NULL;
	if (delegated && e == NULL)
		return false;			/* no way to hand the delegation on */
	return true;
}

/*
 * ag_session_id returns the verified session id of the stamp at the end of
 * the current application_name for role (the session's role name), or NULL
 * when there is none.  The result is valid until the next call.  Reads only
 * backend-local state, so it may run outside a transaction (audit calls it
 * when a statement ends, including after an error).
 */
const char *
ag_session_id(const char *role)
{
	static char sid[AG_STAMP_SID_HEX + 1];

	if (role == NULL || role[0] == '\0' || !stamp_verify(stamp_source(), role, sid, NULL))
		return NULL;
	return sid;
}

/*
 * The delegation of this session's verified stamp (for session_user), or
 * NULL; valid until the next stamp check.  Needs a transaction (it looks
 * the role's name up).
 */
const AgDelegation *
ag_session_delegation(void)
{
	const AgDelegation *d;
	const char *role = GetUserNameFromId(ag_session_role(), true);

	if (role == NULL || !stamp_verify(stamp_source(), role, NULL, &d))
		return NULL;
	return d;
}

/*
 * ag_session_chain writes the delegation chain of the session's verified
 * stamp for role into buf, the names separated by sep and the whole cut to
 * buflen; returns its length, 0 when the session has no chain.  Like
 * ag_session_id, it reads only backend-local state.
 */
int
ag_session_chain(const char *role, char sep, char *buf, int buflen)
{
	const AgDelegation *d;
	int			len = 0;

	if (role == NULL || role[0] == '\0' || buflen <= 0 ||
		!stamp_verify(stamp_source(), role, NULL, &d) || d == NULL)
		return 0;
	for (int i = 0; i < d->nchain; i++)
	{
		const char *n = ag_delegation_name(d, i);
		int			nl = strlen(n);

		if (len + (i > 0) + nl > buflen)
			break;
		if (i > 0)
			buf[len++] = sep;
		memcpy(buf + len, n, nl);
		len += nl;
	}
	return len;
}

/*
 * agentgate.session_stamp(role name, OUT stamp text, OUT session_id text)
 * returns a fresh stamp for role and the session id it carries, so that the
 * proxy need not know the stamp's format.  EXECUTE is granted to
 * agentgate_proxy only.
 */
static Datum
session_stamp_new(FunctionCallInfo fcinfo, const char *role, AgDelegation *d)
{
	uint8		raw[AG_STAMP_SID_HEX / 2];
	char		sid[AG_STAMP_SID_HEX + 1];
	char		mac[AG_STAMP_MAC_BYTES * 2 + 1];
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("agentgate.session_stamp() must return a record"),
				 errdetail("The function's SQL definition does not match the library."),
				 errhint("Run ALTER EXTENSION agentgate UPDATE.")));
	require_session_key();
	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session id")));
	hex_encode_lower(raw, sizeof(raw), sid);
	if (!stamp_mac(sid, role, d, mac))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the session stamp")));
	if (d)
	{
		memcpy(&d->sid, raw, sizeof(d->sid));
		d->sid = pg_ntoh64(d->sid);	/* the number the hex spells */
		ag_delegation_store(d);
	}
	values[0] = CStringGetTextDatum(psprintf("%s%s.%s", AG_STAMP_PREFIX, sid, mac));
	values[1] = CStringGetTextDatum(sid);
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
agentgate_session_stamp(PG_FUNCTION_ARGS)
{
	return session_stamp_new(fcinfo, NameStr(*PG_GETARG_NAME(0)), NULL);
}

/*
 * agentgate.session_stamp_bound(role name, chain text[], scopes text[],
 * expires timestamptz, OUT stamp text, OUT session_id text): a stamp whose
 * MAC also covers a delegation chain (current actor first, principal last)
 * and scopes, kept for the new session id (delegation.c).  Called by
 * agentgate.session_stamp(role, claims), which reads them from the token's
 * claims; EXECUTE is revoked from PUBLIC.
 */
Datum
agentgate_session_stamp_bound(PG_FUNCTION_ARGS)
{
	AgDelegation d;
	bool		bind;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a delegated session stamp needs a role and an expiry")));
	bind = ag_delegation_make(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
							  PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
							  PG_GETARG_TIMESTAMPTZ(3), &d);
	return session_stamp_new(fcinfo, NameStr(*PG_GETARG_NAME(0)), bind ? &d : NULL);
}

/*
 * agentgate.session_id() returns the verified session id of this session,
 * or NULL when application_name carries no valid stamp for session_user.
 */
Datum
agentgate_session_id(PG_FUNCTION_ARGS)
{
	const char *sid = ag_session_id(GetUserNameFromId(ag_session_role(), true));

	if (sid == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(sid));
}

/* ---------- which roles an agent may hold ---------- */

/*
 * ag_role_unsafe_reason says why role may not be held by an agent (NULL
 * when it may): self is the agent's own role, or InvalidOid when role is a
 * role to be granted to agents (a group mapping).  Every role reachable
 * from role through pg_auth_members counts, whatever INHERIT says, since
 * SET ROLE reaches all of them.  An agent may not reach:
 *
 *	 - a role with SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS;
 *	 - a role created by initdb: the bootstrap superuser and every
 *	   predefined role (pg_monitor, pg_read_all_settings, pg_read_all_data,
 *	   pg_database_owner, ...), judged by OID, not by name: each of them
 *	   reaches past what a DBA grants on the database's objects;
 *	 - agentgate's roles other than agentgate_agent (agentgate_proxy,
 *	   agentgate_pgbouncer, agentgate_auditor, and any agentgate_* role);
 *	 - another agent's role: a direct member of agentgate_agent other than
 *	   self (for a mapping: any).  A role that reaches agentgate_agent
 *	   through others reaches such a member on the way, which is named:
 *	   agent roles are direct members (login() and register() make them
 *	   so), and a group between an agent role and agentgate_agent counts
 *	   as another agent's role.
 *
 * It reads the syscache only, so it may run at every statement.
 */
char *
ag_role_unsafe_reason(Oid role, Oid self)
{
	Oid			agent = ag_agent_role_oid();
	List	   *reach;
	ListCell   *lc;
	char	   *why = NULL;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		return pstrdup("does not exist");

	reach = list_make1_oid(role);
	foreach(lc, reach)
	{
		Oid			m = lfirst_oid(lc);
		HeapTuple	tup;
		Form_pg_authid f;
		const char *power = NULL;
		const char *kind = NULL;
		CatCList   *memlist;

		tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(m));
		if (!HeapTupleIsValid(tup))
			continue;			/* dropped concurrently */
		f = (Form_pg_authid) GETSTRUCT(tup);
		if (f->rolsuper)
			power = "SUPERUSER";
		else if (f->rolcreaterole)
			power = "CREATEROLE";
		else if (f->rolcreatedb)
			power = "CREATEDB";
		else if (f->rolreplication)
			power = "REPLICATION";
		else if (f->rolbypassrls)
			power = "BYPASSRLS";
		else if (m == agent)
			kind = NULL;
		else if (m < FirstNormalObjectId || strncmp(NameStr(f->rolname), "pg_", 3) == 0)
			kind = "predefined role";
		else if (strncmp(NameStr(f->rolname), "agentgate_", 10) == 0)
			kind = "reserved role";
		else if (m != self && OidIsValid(agent) &&
				 SearchSysCacheExists2(AUTHMEMROLEMEM, ObjectIdGetDatum(agent),
									   ObjectIdGetDatum(m)))
			kind = "agent role";

		if (power && m == role)
			why = psprintf("has %s", power);
		else if (power)
			why = psprintf("is a member of \"%s\", which has %s", NameStr(f->rolname), power);
		else if (kind && m == role)
			why = psprintf("is the %s \"%s\"", kind, NameStr(f->rolname));
		else if (kind)
			why = psprintf("is a member of the %s \"%s\"", kind, NameStr(f->rolname));
		ReleaseSysCache(tup);
		if (why)
			break;

		memlist = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(m));
		for (int i = 0; i < memlist->n_members; i++)
		{
			Form_pg_auth_members am =
				(Form_pg_auth_members) GETSTRUCT(&memlist->members[i]->tuple);

			reach = list_append_unique_oid(reach, am->roleid);
		}
		ReleaseSysCacheList(memlist);
	}
	list_free(reach);
	return why;
}

/*
 * agentgate.role_unsafe_reason(r oid, agent oid DEFAULT NULL): the same for
 * SQL (login(), register() and the group_roles trigger).
 */
Datum
agentgate_role_unsafe_reason(PG_FUNCTION_ARGS)
{
	char	   *why;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	why = ag_role_unsafe_reason(PG_GETARG_OID(0),
								PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1));
	if (why == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(why));
}

/*
 * The answer for session_user, kept until pg_authid or pg_auth_members
 * change (a DBA's GRANT pg_monitor TO a mapped role must stop the agent at
 * its next statement, not at its next login).
 */
static bool reach_valid = false;
static Oid	reach_logged_for = InvalidOid;	/* monitor mode: said once */
static Oid	reach_role = InvalidOid;
static char reach_why[256];

static void
identity_reach_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	reach_valid = false;
}

static const char *
session_reach_unsafe(Oid roleid)
{
	if (!reach_valid || reach_role != roleid)
	{
		char	   *why = ag_role_unsafe_reason(roleid, roleid);

		strlcpy(reach_why, why ? why : "", sizeof(reach_why));
		if (why)
			pfree(why);
		reach_role = roleid;
		reach_valid = true;
	}
	return reach_why[0] ? reach_why : NULL;
}

/* ---------- per-statement checks ---------- */

static void
stamp_cache_reset(void)
{
	verified_stamps_reset();
}

/* A role was altered or renamed: a stamp is bound to the role's name. */
static void
identity_authid_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	stamp_cache_reset();
}

/*
 * The GUC machinery frees values and extras with free(); PostgreSQL 15
 * exports no guc_strdup().
 */
static char *
key_strdup(const char *s)
{
	char	   *d = strdup(s);

	if (d == NULL)
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
	return d;
}

/*
 * agentgate.session_key: keep the key in extra, leave the mask as the value.
 * Other secret settings (agentgate.mask_hash_key) use it as their check
 * hook too: ag_secret_setting_check.
 */
bool
ag_secret_setting_check(char **newval, void **extra, GucSource source)
{
	char	   *key;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	/*
	 * The mask itself comes back when a parallel worker restores the
	 * leader's settings: such a worker holds no key (it checks no stamp and
	 * runs none of the stamp functions, which are parallel restricted).
	 */
	if (strcmp(*newval, AG_KEY_MASK) == 0)
		return true;
	key = key_strdup(*newval);
	if (key == NULL)
		return false;
	explicit_bzero(*newval, strlen(*newval));
	free(*newval);
	*newval = key_strdup(AG_KEY_MASK);
	if (*newval == NULL)
	{
		explicit_bzero(key, strlen(key));
		free(key);
		return false;
	}
	*extra = key;
	return true;
}

/*
 * agentgate.session_key_file: read the key (trailing white space removed)
 * into extra.  A file others may read is refused: the key would be no
 * secret.
 */
static bool
check_session_key_file(char **newval, void **extra, GucSource source)
{
	int			fd;
	struct stat st;
	char		buf[AG_KEY_FILE_MAX + 1];
	ssize_t		n;
	char	   *key;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	fd = open(*newval, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
	{
		GUC_check_errdetail("Could not open \"%s\": %m.", *newval);
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		GUC_check_errdetail("\"%s\" is not a regular file.", *newval);
		return false;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0 || st.st_uid != geteuid())
	{
		close(fd);
		GUC_check_errdetail("\"%s\" must belong to the server's OS user with mode 0600 or 0400.", *newval);
		return false;
	}
	n = read(fd, buf, AG_KEY_FILE_MAX + 1);
	close(fd);
	if (n < 0 || n > AG_KEY_FILE_MAX)
	{
		explicit_bzero(buf, sizeof(buf));
		GUC_check_errdetail("Could not read \"%s\", or it holds more than %d bytes.",
							*newval, AG_KEY_FILE_MAX);
		return false;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
					 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n < AG_KEY_MIN || strlen(buf) != (size_t) n)
	{
		explicit_bzero(buf, sizeof(buf));
		GUC_check_errdetail("The key in \"%s\" must be at least %d characters of text.",
							*newval, AG_KEY_MIN);
		return false;
	}
	key = key_strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (key == NULL)
		return false;
	*extra = key;
	return true;
}

/* A new key makes every earlier verification meaningless. */
static void
session_key_assign(const char *newval, void *extra)
{
	key_from_setting = extra;
	stamp_cache_reset();
}

static void
session_key_file_assign(const char *newval, void *extra)
{
	key_from_file = extra;
	stamp_cache_reset();
}

/*
 * Does the current application_name carry a valid stamp for role?  If so
 * and sid is not NULL, copies the session id into it.
 */
static bool
stamp_current_ok(const char *rolname, char *sid)
{
	return stamp_verify(stamp_source(), rolname, sid, NULL);
}

/*
 * One transaction, one session id.  PgBouncer re-stamps a server connection
 * (SET application_name) in a query of its own, outside any transaction,
 * before it forwards a client's first statement; the backend cannot tell
 * that SET from a client's.  What it can tell is that within one
 * transaction (an explicit block, a multi-statement query string, or an
 * extended-protocol pipeline up to its Sync) the session id never changes
 * legitimately.  So a SET that changes the session id makes every later
 * ordinary statement of its transaction fail (which also rolls the SET
 * back), and so does a session id that changed under the statements of a
 * transaction by set_config() or a function's SET clause.  Between
 * transactions the proxy holds each client to its own stamp (it closes a
 * client whose application_name is reported with another stamp).
 */
static char xact_sid[AG_STAMP_SID_HEX + 1];
static bool xact_switched = false;

static void
xact_stamp_reset(void)
{
	xact_sid[0] = '\0';
	xact_switched = false;
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

/* The longest client part kept in front of a stamp (as the proxy does). */
#define AG_APPNAME_BASE_MAX	(NAMEDATALEN - 1 - AG_STAMP_LEN - 1)

static void
refuse_appname(const char *rolname)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agents may not set application_name without a valid session stamp"),
			 errdetail("The new value carries a stamp agentgate did not issue for role \"%s\", or the session has no stamp to keep.",
					   rolname),
			 errhint("Set a plain name: agentgate keeps the session's stamp at its end.")));
}

/*
 * SET/RESET application_name by a governed session.  A value that ends
 * with a valid stamp for the role is left alone (that is how PgBouncer
 * re-stamps the connection; a change of session id is noted for the
 * transaction).  A value with anything else that looks like a stamp is
 * refused.  Any other value, and RESET (whose value would be whatever the
 * server connection was opened with), keeps the session's current stamp:
 * "<value> <stamp>" is installed instead, so that drivers that set their
 * own name (pgJDBC: SET application_name = 'PostgreSQL JDBC Driver') work.
 * Returns the statement to run instead, or NULL to run the original.
 */
static Node *
judge_set_appname(VariableSetStmt *vs, const char *rolname)
{
	char		cur_sid[AG_STAMP_SID_HEX + 1];
	bool		have_cur = stamp_current_ok(rolname, cur_sid);
	const char *newval;
	const char *cur;
	char	   *base;
	int			blen;
	VariableSetStmt *nvs;
	A_Const    *arg;

	if (vs->kind == VAR_SET_VALUE || vs->kind == VAR_SET_CURRENT)
	{
		char		new_sid[AG_STAMP_SID_HEX + 1];

		newval = appname_after(vs);
		if (newval && stamp_verify(newval, rolname, new_sid, NULL))
		{
			if (!have_cur || strcmp(new_sid, cur_sid) != 0)
				xact_switched = true;
			return NULL;
		}
		if (newval == NULL || strstr(newval, AG_STAMP_PREFIX) != NULL)
			refuse_appname(rolname);
	}
	else
	{
		/* RESET, SET TO DEFAULT: the connection's value, minus any stamp */
		newval = GetConfigOptionResetString("application_name");
		if (newval == NULL || strstr(newval, AG_STAMP_PREFIX) != NULL)
			newval = "";
	}
	if (!have_cur)
		refuse_appname(rolname);

	cur = strrchr(application_name, ' ');
	cur = cur ? cur + 1 : application_name;
	base = pstrdup(newval);
	blen = pg_mbcliplen(base, strlen(base), AG_APPNAME_BASE_MAX);
	while (blen > 0 && (base[blen - 1] == ' ' || base[blen - 1] == '\t'))
		blen--;
	base[blen] = '\0';

	nvs = makeNode(VariableSetStmt);
	nvs->kind = VAR_SET_VALUE;
	nvs->name = pstrdup("application_name");
	nvs->is_local = vs->is_local;
	arg = makeNode(A_Const);
	arg->val.sval.type = T_String;
	arg->val.sval.sval = blen > 0 ? psprintf("%s %s", base, cur) : pstrdup(cur);
	arg->isnull = false;
	arg->location = -1;
	nvs->args = list_make1(arg);
	return (Node *) nvs;
}

/* Does the statement reset application_name with every other setting? */
static bool
resets_all_settings(Node *parsetree)
{
	if (IsA(parsetree, VariableSetStmt))
		return ((VariableSetStmt *) parsetree)->kind == VAR_RESET_ALL;
	if (IsA(parsetree, DiscardStmt))
		return ((DiscardStmt *) parsetree)->target == DISCARD_ALL;
	return false;
}

/*
 * The checks of a governed session's statement.  For SET/RESET of
 * application_name, *replace may get the statement to run instead; for
 * RESET ALL and DISCARD ALL, *keep_app the value to put back afterwards
 * (they would install the server connection's initial application_name,
 * which is another client's stamp, or none).
 */
static void
identity_check(AgStmtKind kind, Node *parsetree, Node **replace, char **keep_app)
{
	Oid			roleid;
	HeapTuple	tup;
	bool		canlogin;
	NameData	rolname;
	const char *why;
	char		sid[AG_STAMP_SID_HEX + 1];

	/*
	 * Outside a valid transaction (an aborted block) only ROLLBACK or COMMIT
	 * can run, and both only end the transaction.  A parallel worker runs
	 * part of a plan its leader has checked.
	 */
	if (kind == AG_STMT_EXIT || !IsTransactionState() || IsParallelWorker())
		return;

	/*
	 * Read pending catalog invalidations now: a statement inside an open
	 * transaction takes no new snapshot and maybe no lock, and would
	 * otherwise see a revocation only at its transaction's end.  Cheap when
	 * the queue holds nothing for us.
	 */
	AcceptInvalidationMessages();

	/*
	 * A shared-pool backend between two clients' turns holds no identity:
	 * it runs the carrier that binds one (pool.c), and what PgBouncer sends
	 * between turns (DISCARD ALL, RESET ALL, its tracked settings), which
	 * run nothing; everything else is refused.  Once bound, application_name
	 * carries nothing (the stamp came with the carrier): PgBouncer's SETs are
	 * let through, and the checks below are the bound identity's.
	 */
	if (ag_pool_session())
	{
		if (kind == AG_STMT_NO_STAMP || kind == AG_STMT_SET_APPNAME)
			return;
		if (ag_pool_unserved() && !ag_pool_is_carrier(parsetree))
			ag_pool_refuse("runs statements");
	}

	roleid = ag_session_role();
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

	/*
	 * What the session can reach now, not what login() saw: a GRANT made
	 * since (pg_monitor to a mapped role, another agent's role to this one)
	 * stops the session at its next statement.
	 */
	why = session_reach_unsafe(roleid);
	if (why && ag_policy_mode == AG_MODE_MONITOR)
	{
		/*
		 * Monitor mode refuses nothing: say so once per backend and role
		 * (every statement would repeat it).
		 */
		if (reach_logged_for != roleid)
			ereport(LOG,
					(errmsg("agentgate: would refuse the session: agent role reaches a role agents may not hold (monitor mode)"),
					 errdetail("Role \"%s\" %s.", NameStr(rolname), why)));
		reach_logged_for = roleid;
		why = NULL;
	}
	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("agent role reaches a role agents may not hold"),
				 errdetail("Role \"%s\" %s.", NameStr(rolname), why),
				 errhint("Take that membership or attribute away (from the agent role or from the role mapped to its group); agentgate refuses the session's statements until then.")));

	/*
	 * A delegated session: every identity it acts for must still be off the
	 * cluster-wide revoked list.  Checked whatever require_session_stamp
	 * says, since the chain comes only with a verified stamp.  Not for
	 * PgBouncer's re-stamping and the settings it sends before it: they run
	 * nothing, and the stamp they replace may be another client's, whose
	 * chain says nothing about the client being served next.
	 */
	if (kind == AG_STMT_ORDINARY)
	{
		const AgDelegation *d;

		if (stamp_verify(stamp_source(), NameStr(rolname), NULL, &d) && d)
			ag_delegation_check(d);
	}

	if (!require_session_stamp)
		return;

	if (kind == AG_STMT_NO_STAMP)
	{
		if (resets_all_settings(parsetree) && stamp_current_ok(NameStr(rolname), NULL))
			*keep_app = pstrdup(application_name);
		return;
	}

	if (kind == AG_STMT_SET_APPNAME)
	{
		*replace = judge_set_appname((VariableSetStmt *) parsetree, NameStr(rolname));
		return;
	}

	if (!stamp_current_ok(NameStr(rolname), sid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agent session has no valid session stamp"),
				 errdetail("application_name does not end with a stamp issued by agentgate for role \"%s\".",
						   NameStr(rolname)),
				 errhint("Connect through the agentgate proxy and do not change application_name.")));

	if (xact_switched || (xact_sid[0] != '\0' && strcmp(xact_sid, sid) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agent session changed its session stamp inside a transaction"),
				 errdetail("application_name now carries session id %s, but this transaction began under another.",
						   sid),
				 errhint("Do not change application_name: agentgate attributes each connection's statements to its own session.")));
	memcpy(xact_sid, sid, sizeof(xact_sid));
}

/*
 * Called by hooks.c before policy decides: a revoked identity's statement
 * is refused as revoked.
 */
/*
 * The statement checks of the session's identity, now (pool.c, right after
 * binding a shared-pool backend to an identity).
 */
void
ag_identity_check_now(void)
{
	identity_check(AG_STMT_ORDINARY, NULL, NULL, NULL);
}

/* Is stamp a valid stamp of agentgate's for role?  (pool.c's carrier) */
bool
ag_identity_stamp_ok(const char *stamp, const char *role)
{
	return stamp_verify(stamp, role, NULL, NULL);
}

void
ag_identity_executor_start(AgStmt *st)
{
	identity_check(AG_STMT_ORDINARY, NULL, NULL, NULL);
}

void
ag_identity_utility(AgStmt *st, PlannedStmt **pstmt)
{
	Node	   *parsetree = (*pstmt)->utilityStmt;
	Node	   *replace = NULL;

	identity_check(classify_utility(parsetree), parsetree, &replace, &st->keep_app);
	if (replace)
	{
		PlannedStmt *np = makeNode(PlannedStmt);

		memcpy(np, *pstmt, sizeof(PlannedStmt));
		np->utilityStmt = replace;
		*pstmt = np;
		st->pstmt = np;
	}
}

void
ag_identity_utility_done(AgStmt *st)
{
	if (st->keep_app &&
		strcmp(application_name ? application_name : "", st->keep_app) != 0)
		SetConfigOption("application_name", st->keep_app, PGC_USERSET, PGC_S_SESSION);
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
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			xact_stamp_reset();
			break;
		default:
			break;
	}

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
							   "At least 32 characters; shared by nothing else.  Shown as a mask; "
							   "prefer agentgate.session_key_file.",
							   &session_key_setting,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   ag_secret_setting_check, session_key_assign, NULL);
	DefineCustomStringVariable("agentgate.session_key_file",
							   "File holding the secret that authenticates session stamps.",
							   "Read when the server reads its configuration; mode 0600, owned by the server's OS user.  "
							   "Takes precedence over agentgate.session_key.",
							   &session_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_session_key_file, session_key_file_assign, NULL);
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
	CacheRegisterSyscacheCallback(AUTHOID, identity_reach_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, identity_reach_inval, (Datum) 0);
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
}
