/*-------------------------------------------------------------------------
 *
 * hooks.c
 *	  The one hook layer: installs each PostgreSQL hook agentgate uses
 *	  exactly once, chains to the previous hook once, and calls the
 *	  concerns in one documented order.
 *
 * The order, in every hook that more than one concern needs:
 *
 *	 1. who		identity (identity.c, auth.c): the session may still run
 *				statements (not revoked, reaches no forbidden role) and
 *				carries its stamp;
 *	 2. what	policy (policy.c, with agent_code.c, policy_calls.c,
 *				policy_role.c and policy_rows.c): decides the
 *				statement, its relations and its calls, role changes
 *				and max_rows; then masking (mask.c: the planner's
 *				trees, COPY TO); approvals (approval.c): a statement
 *				an approve rule matched is gated once fully decided
 *				(after ExecutorStart, before a utility statement runs);
 *	 3. record	audit (audit.c): writes the statement's row, whatever 1
 *				and 2 decided, including their refusals.
 *
 * So a revoked agent's statement is refused as revoked, never first
 * decided by policy, and audit sees every refusal.
 *
 *	 hook					who			what					record
 *	 ---------------------	----------	----------------------	-----------------
 *	 shmem_request/startup	delegations	approval waiters		ring, verdict slots
 *	 ClientAuthentication	auth							governed at login
 *	 (all of the below)		shared pool: a bound backend may not change role;
 *							its carrier (CALL agentgate.assume) is pool.c's
 *							alone; DISCARD ALL drops the identity first
 *	 post_parse_analyze										statement text seen
 *	 planner							identity compared,		failure captured
 *										built-in calls replaced,
 *										columns masked
 *	 ProcessUtility			identity	decide; approval gate;	row (or failure)
 *										role compared;
 *										COPY TO masked
 *	 ExecutorStart			identity	decide statement;		frame (or failure)
 *										approval gate
 *	 ExecutorCheckPerms		scope		decide relations
 *	 ExecutorRun/Finish					max_rows, role compared	failure captured
 *	 ExecutorEnd						max_rows forgotten		row
 *	 object_access						decide calls			rows of calls in DO
 *	 needs_fmgr_hook/fmgr				agent code, identity;
 *										no SQL inlining (masks)
 *	 emit_log_hook											rows of errors
 *
 * The previous hook (another module's, or the standard function) is called
 * once per hook: in place of standard_X for ProcessUtility, the planner and
 * the executor; first for ClientAuthentication, object_access, fmgr and
 * emit_log, as they only observe.
 *
 * One statement context (AgStmt, hooks.h) per ProcessUtility and
 * ExecutorStart call, linked to its parent, and one nesting level
 * (ag_nesting_level: one more inside each ProcessUtility, ExecutorRun and
 * ExecutorFinish) replace the counters each concern used to keep; policy's
 * verdicts for audit are kept per level (verdict.c).
 *
 * One PG_TRY per hook, here.  The concerns' failure paths called from
 * PG_CATCH only copy what a row needs (audit.c, capture_failure): no
 * catalog access, no waiting.  Levels and contexts are put back before
 * the concerns hear of the failure.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "libpq/auth.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/memutils.h"

#include "approval.h"
#include "delegation.h"
#include "hooks.h"
#include "mask.h"
#include "pool.h"

int			ag_nesting_level = 0;
AgStmt	   *ag_stmt = NULL;
AgFrame		ag_frame = AG_FRAME_OTHER;

static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;
static ClientAuthentication_hook_type prev_client_auth = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static planner_hook_type prev_planner = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;
static ExecutorCheckPerms_hook_type prev_check_perms = NULL;
static object_access_hook_type prev_object_access = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;
static fmgr_hook_type prev_fmgr = NULL;
static emit_log_hook_type prev_emit_log = NULL;

/* The statement's place in its source text (a multi-statement message). */
static void
stmt_text(AgStmt *st, const char *source, PlannedStmt *pstmt)
{
	int			loc = pstmt ? pstmt->stmt_location : -1;
	int			len = pstmt ? pstmt->stmt_len : 0;

	st->source = source;
	st->sql = NULL;
	st->sql_len = 0;
	if (source == NULL)
		return;
	if (loc < 0)
	{
		loc = 0;
		len = 0;
	}
	if (len <= 0)
		len = strlen(source + loc);
	st->sql = source + loc;
	st->sql_len = len;
}

static void
stmt_init(AgStmt *st, PlannedStmt *pstmt, const char *source)
{
	memset(st, 0, sizeof(AgStmt));
	st->parent = ag_stmt;
	st->level = ag_nesting_level;
	st->pstmt = pstmt;
	st->role_before = GetCurrentRoleId();
	stmt_text(st, source, pstmt);
}

/* ---- shared memory ---- */

static void
ag_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	ag_audit_shmem_request();
	ag_approval_shmem_request();
	ag_delegation_shmem_request();
}

static void
ag_shmem_startup(void)
{
	if (prev_shmem_startup)
		prev_shmem_startup();
	ag_audit_shmem_startup();
	ag_approval_shmem_startup();
	ag_delegation_shmem_startup();
}

/* ---- login ---- */

static void
ag_client_authentication(Port *port, int status)
{
	if (prev_client_auth)
		prev_client_auth(port, status);
	ag_auth_client_authentication(port, status);	/* may end the session */
	ag_pool_watch_client();		/* the shared pool's turns end at idle */
	ag_audit_client_authentication(port, status);
}

/* ---- parse analysis and planning ---- */

static void
ag_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	bool		audited = ag_audit_parse_analyzed(pstate, query);

	if (!prev_post_parse_analyze)
		return;
	if (!audited)
	{
		prev_post_parse_analyze(pstate, query, jstate);
		return;
	}
	/* another module's hook may refuse the statement: record that */
	PG_TRY();
	{
		prev_post_parse_analyze(pstate, query, jstate);
	}
	PG_CATCH();
	{
		ag_audit_parse_failed(pstate, query);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static PlannedStmt *
ag_planner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	PlannedStmt *result;
	AgFrame		saved_frame = ag_frame;
	bool		audited;

	ag_pool_enter(NULL);		/* who: a bound backend may not change role */
	ag_pool_planner_check();	/* ... nor an unbound one plan */
	audited = ag_audit_planner_start();

	PG_TRY();
	{
		ag_frame = AG_FRAME_OTHER;
		ag_policy_planner_start();
		ag_mask_planner_start(parse);
		if (prev_planner)
			result = prev_planner(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
		ag_policy_planned(result);
		ag_mask_planned(result);
		ag_frame = saved_frame;
	}
	PG_CATCH();
	{
		ag_frame = saved_frame;
		if (audited)
			ag_audit_planner_failed(parse, query_string);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return result;
}

/* ---- utility statements ---- */

static void
next_process_utility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
ag_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	AgStmt		st;
	AgFrame		saved_frame = ag_frame;
	Node	   *n = pstmt->utilityStmt;

	/*
	 * The shared pool's carrier binds the backend to an identity (pool.c)
	 * and is decided there; no other concern looks at it.  Ending a turn
	 * (DISCARD ALL) drops the identity before anything else.
	 */
	ag_pool_enter(context == PROCESS_UTILITY_TOPLEVEL ? n : NULL);
	if (context == PROCESS_UTILITY_TOPLEVEL && ag_pool_session() &&
		ag_pool_is_carrier(n))
	{
		ag_pool_in_carrier = true;
		PG_TRY();
		{
			next_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		}
		PG_FINALLY();
		{
			ag_pool_in_carrier = false;
		}
		PG_END_TRY();
		return;
	}
	ag_pool_utility(n);

	stmt_init(&st, pstmt, queryString);
	st.params = params;
	ag_audit_utility(&st);		/* start time; may refuse when the log is stuck */

	PG_TRY();
	{
		ag_stmt = &st;
		ag_identity_utility(&st, &pstmt);	/* who; may replace the statement */
		ag_policy_utility(&st); /* what */
		ag_mask_utility(&st, &pstmt);	/* may replace a COPY */
		n = pstmt->utilityStmt;
		ag_approval_gate(&st);	/* what: approved, or refused or waiting */

		ag_frame = (IsA(n, DoStmt) || IsA(n, CallStmt)) ? AG_FRAME_DO : AG_FRAME_OTHER;
		ag_nesting_level++;
		next_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
		ag_nesting_level = st.level;
		ag_frame = saved_frame;
		ag_stmt = st.parent;

		ag_identity_utility_done(&st);
		ag_policy_utility_done(&st);
	}
	PG_CATCH();
	{
		ag_nesting_level = st.level;
		ag_frame = saved_frame;
		ag_stmt = st.parent;
		ag_audit_utility_failed(&st);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* record: a COMMIT may have reset the concerns' memory, not st */
	ag_audit_utility_done(&st, qc);
}

/* ---- the executor ---- */

static void
ag_executor_start(QueryDesc *queryDesc, int eflags)
{
	AgStmt		st;
	AgFrame		saved_frame = ag_frame;

	ag_pool_enter(NULL);		/* who: a bound backend may not change role */
	stmt_init(&st, queryDesc->plannedstmt, queryDesc->sourceText);
	st.qd = queryDesc;
	st.params = queryDesc->params;
	st.explain_only = (eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0;
	ag_audit_executor_start(&st, eflags);	/* may refuse when the log is stuck */

	PG_TRY();
	{
		ag_stmt = &st;
		ag_frame = AG_FRAME_OTHER;
		ag_identity_executor_start(&st);	/* who */
		ag_policy_executor_start(&st, eflags);	/* what */
		if (prev_executor_start)
			prev_executor_start(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
		ag_approval_gate(&st);	/* once its relations and calls are decided */
		ag_frame = saved_frame;
		ag_stmt = st.parent;
		ag_policy_executor_started(&st);
	}
	PG_CATCH();
	{
		ag_frame = saved_frame;
		ag_stmt = st.parent;
		ag_audit_executor_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
ag_executor_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				bool execute_once)
{
	int			level = ag_nesting_level;
	AgFrame		saved_frame = ag_frame;
	Oid			role_before = GetCurrentRoleId();

	/* policy may wrap the receiver (max_rows); it is put back here */
	DestReceiver *saved_dest = queryDesc->dest;

	PG_TRY();
	{
		ag_policy_executor_run(queryDesc);
		ag_frame = AG_FRAME_OTHER;
		ag_nesting_level++;
		if (prev_executor_run)
			prev_executor_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
		ag_nesting_level = level;
		ag_frame = saved_frame;
		queryDesc->dest = saved_dest;
		ag_policy_executor_ran(queryDesc, role_before, level);
	}
	PG_CATCH();
	{
		ag_nesting_level = level;
		ag_frame = saved_frame;
		queryDesc->dest = saved_dest;
		ag_audit_executor_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
ag_executor_finish(QueryDesc *queryDesc)
{
	int			level = ag_nesting_level;
	AgFrame		saved_frame = ag_frame;

	PG_TRY();
	{
		ag_frame = AG_FRAME_OTHER;
		ag_nesting_level++;
		if (prev_executor_finish)
			prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
		ag_nesting_level = level;
		ag_frame = saved_frame;
		ag_policy_executor_finished(queryDesc);	/* AFTER triggers ran */
	}
	PG_CATCH();
	{
		ag_nesting_level = level;
		ag_frame = saved_frame;
		ag_audit_executor_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
ag_executor_end(QueryDesc *queryDesc)
{
	ag_policy_executor_end(queryDesc);
	ag_audit_executor_end(queryDesc);	/* the statement's row */
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static bool
ag_check_perms(List *rangeTable, bool ereport_on_violation)
{
	ag_delegation_check_perms(rangeTable);
	ag_policy_check_perms(rangeTable);
	if (prev_check_perms)
		return prev_check_perms(rangeTable, ereport_on_violation);
	return true;
}

/* ---- function calls ---- */

static void
ag_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (ag_pool_in_carrier)
		return;					/* the carrier's own call */
	if (access == OAT_FUNCTION_EXECUTE)
		ag_pool_function_check();	/* who: a shared backend's identity */
	ag_policy_object_access(access, classId, objectId, subId, arg);
	ag_audit_object_access(access, classId, objectId, subId, arg);
}

static bool
ag_needs_fmgr(Oid fn_oid)
{
	if (prev_needs_fmgr && prev_needs_fmgr(fn_oid))
		return true;
	return ag_policy_needs_fmgr(fn_oid) || ag_mask_needs_fmgr(fn_oid);
}

/*
 * The fmgr hook's private slot (one Datum per call site, kept across calls)
 * is ours: it points to this struct, which keeps the next hook's slot.  A
 * hook that shared the slot with the next one would read the other's
 * state as its own.
 */
typedef struct AgFmgrPrivate
{
	uint64		policy;			/* what policy keeps about the function */
	uint64		mask;			/* what masking keeps about it */
	Datum		next;			/* the next hook's private slot */
} AgFmgrPrivate;

static void
ag_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	AgFmgrPrivate *p = (AgFmgrPrivate *) DatumGetPointer(*private);

	if (p == NULL)
	{
		/* the call site's memory: it lives as long as the slot */
		p = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(AgFmgrPrivate));
		*private = PointerGetDatum(p);
	}
	if (prev_fmgr)
		prev_fmgr(event, flinfo, &p->next);
	ag_policy_fmgr(event, flinfo, &p->policy);
	ag_mask_fmgr(event, flinfo, &p->mask);
}

/* ---- errors ---- */

static void
ag_emit_log(ErrorData *edata)
{
	ag_audit_emit_log(edata);
	if (prev_emit_log)
		prev_emit_log(edata);
}

void
ag_hooks_install(void)
{
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = ag_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = ag_shmem_startup;
	prev_client_auth = ClientAuthentication_hook;
	ClientAuthentication_hook = ag_client_authentication;
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = ag_post_parse_analyze;
	prev_planner = planner_hook;
	planner_hook = ag_planner;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = ag_process_utility;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = ag_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = ag_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = ag_executor_finish;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = ag_executor_end;
	prev_check_perms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = ag_check_perms;
	prev_object_access = object_access_hook;
	object_access_hook = ag_object_access;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = ag_needs_fmgr;
	prev_fmgr = fmgr_hook;
	fmgr_hook = ag_fmgr;
	prev_emit_log = emit_log_hook;
	emit_log_hook = ag_emit_log;
}
