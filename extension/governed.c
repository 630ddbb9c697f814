/*-------------------------------------------------------------------------
 *
 * governed.c
 *	  Who is governed: every role that is a member, directly or through other
 *	  roles, of agentgate_agent, judged by session_user (in the shared pool:
 *	  by the identity bound for the client's turn, see pool.c).
 *
 * session_user is what the pooler logged in as; SECURITY DEFINER functions,
 * SET ROLE and whatever an earlier client of a pooled backend did cannot
 * change it.  The answer is cached per backend and the cache is dropped by
 * syscache callbacks on pg_authid and pg_auth_members, so a DBA's GRANT or
 * REVOKE takes effect on the next statement of every session.
 *
 * Superusers are governed too when they are members: membership is tested
 * with is_member_of_role_nosuper, which does not treat superuser as a member
 * of everything.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "pool.h"

static Oid	agent_role_oid = InvalidOid;
static bool agent_role_valid = false;

static Oid	cached_session_user = InvalidOid;
static bool cached_governed = false;
static bool cached_valid = false;

/*
 * Owners of functions, views and tables asked about by ag_owner_is_governed:
 * a handful of roles per backend, looked up on every call of a non-built-in
 * function in every session, so remembered until the next change to roles.
 */
#define OWNER_CACHE_SIZE 16
static struct
{
	Oid			roleid;
	bool		governed;
}			owner_cache[OWNER_CACHE_SIZE];
static int	owner_cache_n = 0;
static int	owner_cache_next = 0;

static void
ag_governed_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	agent_role_valid = false;
	cached_valid = false;
	owner_cache_n = 0;
	owner_cache_next = 0;
}

void
ag_governed_init(void)
{
	CacheRegisterSyscacheCallback(AUTHOID, ag_governed_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, ag_governed_inval, (Datum) 0);
}

/*
 * ag_agent_role_oid returns the OID of agentgate_agent, or InvalidOid when
 * the role does not exist (extension never created in this cluster).
 */
Oid
ag_agent_role_oid(void)
{
	if (!agent_role_valid)
	{
		agent_role_oid = get_role_oid(AG_AGENT_ROLE, true);
		agent_role_valid = true;
	}
	return agent_role_oid;
}

bool
ag_role_is_governed(Oid roleid)
{
	Oid			agent = ag_agent_role_oid();

	if (!OidIsValid(agent) || !OidIsValid(roleid))
		return false;
	if (roleid == agent)
		return true;
	return is_member_of_role_nosuper(roleid, agent);
}

/*
 * ag_owner_is_governed: is the owner of some object a governed role?  Like
 * ag_role_is_governed, cached per backend for a few roles.  Must be called
 * inside a transaction.
 */
bool
ag_owner_is_governed(Oid roleid)
{
	bool		governed;
	int			i;

	if (!OidIsValid(roleid))
		return false;
	for (i = 0; i < owner_cache_n; i++)
		if (owner_cache[i].roleid == roleid)
			return owner_cache[i].governed;
	governed = ag_role_is_governed(roleid);
	/* the callbacks may have fired while we read the catalogs: still fine */
	owner_cache[owner_cache_next].roleid = roleid;
	owner_cache[owner_cache_next].governed = governed;
	owner_cache_next = (owner_cache_next + 1) % OWNER_CACHE_SIZE;
	if (owner_cache_n < OWNER_CACHE_SIZE)
		owner_cache_n++;
	return governed;
}

/*
 * ag_session_role: the role agentgate governs the session as.  That is
 * session_user, except in a shared-pool backend (pool.c), where it is the
 * agent identity bound for the client's turn (session_user is the pool's
 * login role there).  Unbound, the login role: it holds no privilege, and
 * identity refuses its statements.
 */
Oid
ag_session_role(void)
{
	Oid			bound = ag_pool_bound_role();

	return OidIsValid(bound) ? bound : GetSessionUserId();
}

/*
 * ag_session_is_governed answers for the current session_user.  It must be
 * called inside a transaction (it may read pg_auth_members).
 */
bool
ag_session_is_governed(void)
{
	Oid			session = GetSessionUserId();

	/*
	 * A shared-pool backend is governed while it serves an identity.  With
	 * none it runs only what identity lets through (PgBouncer's reset and
	 * settings, the carrier), which are nobody's statements: not decided,
	 * not audited.
	 */
	if (ag_pool_session())
		return OidIsValid(ag_pool_bound_role());

	if (!cached_valid || cached_session_user != session)
	{
		cached_governed = ag_role_is_governed(session);
		cached_session_user = session;
		cached_valid = true;
	}
	return cached_governed;
}

/*
 * ag_setting_refused_for_agent is for the check hooks of agentgate's own
 * settings: a governed session may not change them, even when a DBA has
 * granted it SET on the parameter (PostgreSQL 15's GRANT SET ON PARAMETER)
 * or it reaches them through set_config().  Returns true (and sets the
 * error the GUC machinery will report) when the change must be refused.
 */
bool
ag_setting_refused_for_agent(GucSource source)
{
	if (source >= PGC_S_INTERACTIVE && IsNormalProcessingMode() &&
		IsTransactionState() && ag_session_is_governed())
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("agent roles may not change agentgate settings");
		return true;
	}
	return false;
}
