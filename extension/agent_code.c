/*-------------------------------------------------------------------------
 *
 * agent_code.c
 *	  Code and SQL written by an agent role runs only in that agent's own
 *	  sessions, as that agent.
 *
 * An agent that may create functions could otherwise get them run by
 * someone else, with someone else's privileges and outside its own
 * governance: a function in an index expression, a statistics expression,
 * a domain or table CHECK, a DEFAULT, a generated column, a trigger, a row
 * security policy or an operator runs in the session of whoever writes or
 * analyses the table (a DBA, autovacuum, REINDEX), and a function or
 * operator in a schema on a DBA's search_path (public) can shadow what the
 * DBA's SQL calls unqualified (CVE-2018-1058).  The agent can change the
 * body after it was attached, or give the object away.
 *
 * Rather than chase every place a function can be attached, the rule is on
 * the function itself: a function owned by a governed role is refused
 * unless the session user *and* the current user are that role.  So it
 * never runs with another role's privileges, never sees another session's
 * data as arguments, and whatever it runs is decided by the policy of its
 * own author.  It is checked where calls are prepared (OAT_FUNCTION_EXECUTE:
 * executor expressions, aggregates, CALL, fastpath) and where they start
 * (the fmgr hook, which needs_fmgr_hook turns on for such functions: this
 * also keeps them from being inlined or pre-evaluated by the planner in
 * other sessions, and covers trigger functions, type I/O and operator
 * support functions).  Only the agent's own sessions keep inlining.
 *
 * An agent's SQL that is not a function also runs elsewhere: a view's or
 * rule's query, and the DEFAULT, CHECK and generated expressions and row
 * security policies of the agent's own tables, which can call built-in
 * functions.  In a governed session those calls are decided by that
 * session's policy; in a session nothing governs (a DBA's, maintenance)
 * they would run with that session's privileges, so there reading through
 * an agent's view or rule, writing an agent's table, and any access to an
 * agent's table with row security are refused.  Reading an agent's plain
 * table stays possible (nothing of the agent's runs).
 *
 * A DBA who has reviewed an agent's object adopts it (ALTER ... OWNER TO);
 * agents themselves may not give objects away (not_owner.c).  A DBA who
 * restores a dump holding agents' objects sets agentgate.trust_agent_code
 * for that session.
 * In monitor mode these refusals are logged and nothing is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "policy.h"
#include "verdict.h"

/* The owner of a function, or InvalidOid when it does not exist. */
Oid
ag_function_owner(Oid fn_oid)
{
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

/*
 * agentgate.trust_agent_code: in sessions nothing governs, run what agents
 * wrote after all.  For a DBA who restores a dump holding agents' objects
 * (pg_restore writes their tables and builds their indexes as the DBA) or
 * runs maintenance on them after review.  Superuser-only, and never in
 * effect in a governed session, so an agent gains nothing by setting it.
 */
static bool trust_agent_code = false;

static bool
trusted_here(void)
{
	return trust_agent_code && !ag_session_is_governed();
}

/* Is code owned by owner (a governed role) running as anyone else? */
static inline bool
foreign_to(Oid owner)
{
	return (ag_session_role() != owner || GetUserId() != owner) && !trusted_here();
}

void
ag_agent_code_init(void)
{
	DefineCustomBoolVariable("agentgate.trust_agent_code",
							 "Runs functions, views and table expressions written by agent roles in sessions that are not governed.",
							 "For restoring dumps that hold agents' objects, or reviewed maintenance; never in effect in a governed session.",
							 &trust_agent_code,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/*
 * ag_agent_function_owner: when fn_oid is a function owned by a governed
 * role, that role; otherwise InvalidOid.  Built-in functions never are.
 */
Oid
ag_agent_function_owner(Oid fn_oid)
{
	Oid			owner;

	if (fn_oid < FirstNormalObjectId || !IsTransactionState())
		return InvalidOid;
	owner = ag_function_owner(fn_oid);
	if (!OidIsValid(owner) || !ag_owner_is_governed(owner))
		return InvalidOid;
	return owner;
}

/*
 * For needs_fmgr_hook: should calls of this function go through the fmgr
 * hook so that they are checked (which also stops inlining)?
 */
bool
ag_agent_code_needs_hook(Oid fn_oid)
{
	Oid			owner = ag_agent_function_owner(fn_oid);

	return OidIsValid(owner) && foreign_to(owner);
}

typedef enum
{
	AGENT_FUNCTION,				/* a call of the agent's function */
	AGENT_VIEW,					/* a read through the agent's view or rule */
	AGENT_WRITE,				/* a write of the agent's table */
	AGENT_ROW_SECURITY			/* an access of the agent's table with RLS */
} AgentCodeKind;

static void
refuse(Oid owner, int level, AgentCodeKind kind, const char *name)
{
	char	   *who = GetUserNameFromId(owner, true);
	char	   *session = GetUserNameFromId(ag_session_role(), true);
	char	   *current = GetUserNameFromId(GetUserId(), true);
	char	   *msg;
	const char *why;

	who = who ? who : "?";
	switch (kind)
	{
		case AGENT_FUNCTION:
			msg = psprintf("function %s belongs to agent role \"%s\" and runs only in that agent's own sessions",
						   name, who);
			why = "An agent's function never runs with another role's privileges or on another session's data";
			break;
		case AGENT_VIEW:
			msg = psprintf("view or rule on %s belongs to agent role \"%s\" and runs only in that agent's own sessions",
						   name, who);
			why = "An agent's query would call functions with the privileges of a session nothing governs";
			break;
		case AGENT_WRITE:
			msg = psprintf("table %s belongs to agent role \"%s\" and is written only in governed sessions",
						   name, who);
			why = "Its DEFAULT, CHECK and generated expressions, written by the agent, would run with the privileges of a session nothing governs";
			break;
		default:
			msg = psprintf("table %s belongs to agent role \"%s\" and has row security: it is used only in governed sessions",
						   name, who);
			why = "Its row security policies, written by the agent, would run with the privileges of a session nothing governs";
			break;
	}
	if (ag_policy_mode == AG_MODE_MONITOR)
	{
		ereport(LOG,
				(errmsg("agentgate: would refuse: %s (monitor mode)", msg),
				 errdetail("Session user \"%s\", current user \"%s\".",
						   session ? session : "?", current ? current : "?")));
		return;
	}
	ag_verdict_note(level, AG_DECISION_BLOCKED, 0);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: %s", msg),
			 errdetail("%s (session user \"%s\", current user \"%s\").", why,
					   session ? session : "?", current ? current : "?"),
			 errhint("A database administrator who has reviewed it can take it over with ALTER ... OWNER TO, or drop it.")));
}

/*
 * ag_agent_code_check_call: refuse a call of a function owned by a governed
 * role, unless the session user and current user are that role.  Called
 * where calls are prepared and where they start.
 */
void
ag_agent_code_check_call(Oid fn_oid, int level)
{
	Oid			owner = ag_agent_function_owner(fn_oid);

	if (OidIsValid(owner) && foreign_to(owner))
		refuse(owner, level, AGENT_FUNCTION, format_procedure(fn_oid));
}

/* The same, when the owner is already known (the fmgr hook keeps it). */
void
ag_agent_code_check_owner(Oid fn_oid, Oid owner, int level)
{
	if (OidIsValid(owner) && IsTransactionState() && foreign_to(owner))
		refuse(owner, level, AGENT_FUNCTION, format_procedure(fn_oid));
}

static char *
rel_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));

	return quote_qualified_identifier(nsp, rel ? rel : "?");
}

/*
 * ag_agent_code_check_rtable: for a session that nothing governs, refuse
 * what would run an agent's SQL with that session's privileges: a relation
 * read through an agent's view or rule (its range table entry is checked
 * as the agent), a write of an agent's table (its DEFAULT, CHECK and
 * generated expressions run), any access of an agent's table with row
 * security (its policies run).
 */
void
ag_agent_code_check_rtable(List *rtable, int level)
{
	ListCell   *lc;

	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		HeapTuple	tup;
		Oid			owner;
		bool		rls;
		char		relkind;

		if (rte->rtekind != RTE_RELATION || rte->requiredPerms == 0)
			continue;
		if (trust_agent_code)
			return;				/* only called for ungoverned sessions */
		if (OidIsValid(rte->checkAsUser) && rte->checkAsUser != GetUserId() &&
			ag_owner_is_governed(rte->checkAsUser))
			refuse(rte->checkAsUser, level, AGENT_VIEW, rel_name(rte->relid));

		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rte->relid));
		if (!HeapTupleIsValid(tup))
			continue;
		owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		rls = ((Form_pg_class) GETSTRUCT(tup))->relrowsecurity;
		relkind = ((Form_pg_class) GETSTRUCT(tup))->relkind;
		ReleaseSysCache(tup);
		if (owner == GetUserId() || !ag_owner_is_governed(owner))
			continue;
		/* a view with no base relation has no entry checked as its owner */
		if (relkind == RELKIND_VIEW)
			refuse(owner, level, AGENT_VIEW, rel_name(rte->relid));
		else if (rls && check_enable_rls(rte->relid, rte->checkAsUser, true) == RLS_ENABLED)
			refuse(owner, level, AGENT_ROW_SECURITY, rel_name(rte->relid));
		else if ((rte->requiredPerms & ACL_INSERT) ||
				 ((rte->requiredPerms & ACL_UPDATE) && !bms_is_empty(rte->updatedCols)))
			refuse(owner, level, AGENT_WRITE, rel_name(rte->relid));
	}
}
