/*-------------------------------------------------------------------------
 *
 * policy_role.c
 *	  Role-change watching: the current role and session user a governed
 *	  session runs as may change only as policy decided.
 *
 * SET ROLE and SET SESSION AUTHORIZATION are statements, decided as such
 * by policy.c.  But the same settings change through set_config(), a
 * function's SET clause, a trigger or a fastpath call, where no statement
 * is decided.  So the identity is compared with the one last approved at
 * every hook of a governed session, and a change nobody decided is decided
 * there, as SET ROLE or SET SESSION AUTHORIZATION, before anything else
 * runs under it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "policy.h"

/*
 * SET ROLE has a twin the utility hook never sees: set_config('role', ...),
 * a built-in function whose argument is known only as it runs.  So the
 * current role is compared before and after each statement of a governed
 * session; a change is decided like SET ROLE (and undone with the
 * transaction when refused).
 */
void
ag_policy_role_unchanged(Oid before, int level)
{
	AgEvent		ev;

	/* back to no role at all (DISCARD ALL...) is never more power */
	if (GetCurrentRoleId() == before || !OidIsValid(GetCurrentRoleId()))
		return;
	ag_event_init(&ev, CMDTAG_SET, AG_CLASS_ROLE);
	ev.tags[ev.ntags++] = AG_TAG_SET_ROLE;
	ag_policy_decide_event(&ev, NULL, level);
}

/*
 * The identity last seen approved: the current role and session user at
 * the first check of the session, or after a change was decided.  The
 * role and session_authorization settings can also be changed where no
 * statement hook wraps the change and compares before and after: by
 * set_config() in a function the planner pre-evaluates, in a plpgsql
 * simple expression (no executor of its own), in an AFTER or deferred
 * trigger (ExecutorFinish, COMMIT), or in a fastpath call.  So each hook of
 * a governed session (executor start, planning, function calls, utility
 * statements, end of run, pre-commit) compares the live identity with the
 * approved one, and decides any difference before anything else runs.
 */
static bool identity_known = false;
static Oid	approved_role = InvalidOid;
static Oid	approved_session = InvalidOid;

/* While deciding a session authorization change: judge the old user. */
static Oid	judged_override = InvalidOid;

/* Deciding may read catalogs (and reach these hooks again) */
static bool verifying_identity = false;

/*
 * The role policy judges a statement for: the session user, except while a
 * change of session authorization is decided (the user it started as).
 * agentgate.explain() judges for its own role instead (policy.c).
 */
Oid
ag_policy_role_judged(void)
{
	if (OidIsValid(judged_override))
		return judged_override;
	return ag_session_role();
}

/* Does the function carry a SET role or SET session_authorization clause? */
bool
ag_policy_role_set_by_function(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	bool		isnull;
	Datum		d;
	bool		found = false;

	if (!HeapTupleIsValid(tup))
		return false;
	d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(d);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n && !found; i++)
		{
			char	   *item;

			if (nulls[i])
				continue;
			item = TextDatumGetCString(elems[i]);
			found = pg_strncasecmp(item, "role=", 5) == 0 ||
				pg_strncasecmp(item, "session_authorization=", 22) == 0;
			pfree(item);
		}
	}
	ReleaseSysCache(tup);
	return found;
}

void
ag_policy_role_approve(void)
{
	approved_role = GetCurrentRoleId();
	approved_session = GetSessionUserId();
	identity_known = true;
}

void
ag_policy_role_verify(int level)
{
	Oid			role = GetCurrentRoleId();
	Oid			sess = GetSessionUserId();

	if (ag_policy_collecting() || verifying_identity || !IsTransactionState() || IsParallelWorker())
		return;
	if (!identity_known)
	{
		ag_policy_role_approve();
		return;
	}
	if (role == approved_role && sess == approved_session)
		return;

	if (sess != approved_session)
	{
		/*
		 * Back to the login identity (RESET, DISCARD ALL) is never more
		 * power; anything else a governed user does is SET SESSION
		 * AUTHORIZATION, decided for the user it started as.
		 */
		if (ag_role_is_governed(approved_session) &&
			sess != GetAuthenticatedUserId())
		{
			AgEvent		ev;

			ag_event_init(&ev, CMDTAG_SET, AG_CLASS_ROLE);
			ev.tags[ev.ntags++] = AG_TAG_SET_SESSION_AUTH;
			verifying_identity = true;
			judged_override = approved_session;
			PG_TRY();
			{
				ag_policy_decide_event(&ev, NULL, level);
			}
			PG_FINALLY();
			{
				judged_override = InvalidOid;
				verifying_identity = false;
			}
			PG_END_TRY();
		}
	}
	else if (OidIsValid(role) && ag_session_is_governed())
	{
		/* back to no role at all (RESET ROLE, DISCARD ALL) is never more */
		AgEvent		ev;

		ag_event_init(&ev, CMDTAG_SET, AG_CLASS_ROLE);
		ev.tags[ev.ntags++] = AG_TAG_SET_ROLE;
		verifying_identity = true;
		PG_TRY();
		{
			ag_policy_decide_event(&ev, NULL, level);
		}
		PG_FINALLY();
		{
			verifying_identity = false;
		}
		PG_END_TRY();
	}
	ag_policy_role_approve();
}
