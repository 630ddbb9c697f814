/*-------------------------------------------------------------------------
 *
 * policy.c
 *	  Statement policy for governed roles.
 *
 * The first guardrail: governed roles may not DROP TABLE.  Decided in
 * ProcessUtility on the parsed statement, so it holds however the command
 * reaches the server (simple or extended protocol, inside functions and DO
 * blocks, through EXECUTE).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "agentgate.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

static void
ag_policy_process_utility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropStmt) &&
		((DropStmt *) parsetree)->removeType == OBJECT_TABLE &&
		ag_session_is_governed())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: DROP TABLE is not allowed for agent roles"),
				 errdetail("Baseline guardrail: agents may not drop tables."),
				 errhint("Ask a database administrator to run the change.")));

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
ag_policy_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = ag_policy_process_utility;
}
