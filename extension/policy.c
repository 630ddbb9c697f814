/*-------------------------------------------------------------------------
 *
 * policy.c
 *	  Statement policy for governed roles: what decides, called by the hook
 *	  layer (hooks.c) after identity and before audit.
 *
 * Every path a statement can take reaches one of these hooks, each on the
 * server's own resolved trees (never the text):
 *
 *	 ProcessUtility		 utility statements (DDL, TRUNCATE, COPY, DO, CALL,
 *						 SET, LOAD, ALTER SYSTEM, PREPARE, EXPLAIN...),
 *						 nested ones included
 *	 ExecutorStart		 the statement: SELECT/INSERT/UPDATE/DELETE/MERGE,
 *						 and whether it modifies rows without a WHERE
 *	 ExecutorCheckPerms	 every relation the statement reads or writes, on
 *						 every execution (cached plans too), after views,
 *						 rules and inheritance are expanded; COPY too
 *	 object_access		 OAT_FUNCTION_EXECUTE: every function the executor
 *						 prepares to call, built-in or not, and libpq
 *						 fastpath calls
 *	 ExecutorRun/Finish	 rows processed, for max_rows rules (policy_rows.c)
 *
 * At each of them the current role and session user are also compared with
 * the ones last approved (role-change watching, policy_role.c).
 *
 * Governance is by session_user (ag_session_is_governed), so SECURITY
 * DEFINER functions and SET ROLE change nothing.  Each decision is noted
 * for audit (verdict.h) before an error is raised.  Anything that cannot
 * be classified is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "access/transam.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/planner.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "policy.h"
#include "approval.h"
#include "hooks.h"
#include "verdict.h"

int			ag_policy_mode = AG_MODE_ENFORCE;

static const struct config_enum_entry mode_options[] = {
	{"enforce", AG_MODE_ENFORCE, false},
	{"monitor", AG_MODE_MONITOR, false},
	{NULL, 0, false}
};

static const struct config_enum_entry default_action_options[] = {
	{"allow", AG_ACTION_ALLOW, false},
	{"block", AG_ACTION_BLOCK, false},
	{NULL, 0, false}
};

/* calls of agentgate's own SECURITY DEFINER functions now running */
static int	agentgate_fn_depth = 0;

/* set while agentgate.explain() collects outcomes instead of enforcing */
typedef struct Collector
{
	AgCollectFn fn;
	void	   *arg;
	Oid			who;
} Collector;

static Collector *collector = NULL;

/*
 * The role a statement is judged for: agentgate.explain()'s role while it
 * collects, else the session user (policy_role.c).
 */
static Oid
judged_role(void)
{
	if (collector)
		return collector->who;
	return ag_policy_role_judged();
}

/* Is agentgate.explain() collecting outcomes (nothing is enforced)? */
bool
ag_policy_collecting(void)
{
	return collector != NULL;
}

/*
 * Is this session governed?  Only answerable inside a transaction.
 *
 * A parallel worker acts for its leader's session user (the worker starts
 * as that user) and is governed like it.  The part of the plan a worker
 * runs at its own top level was decided by the leader, which initialises
 * the whole plan before it starts any worker (ExecInitGather), so a worker
 * decides only what runs below it: the statements of functions it calls,
 * and what they call.
 */
static inline bool
governed(void)
{
	return IsTransactionState() && ag_session_is_governed();
}

/* In a parallel worker, at the level of the plan its leader decided? */
static inline bool
leader_decided(int level)
{
	return IsParallelWorker() && level == 0;
}

/* ----------------------------------------------------------------
 *		Outcomes
 * ----------------------------------------------------------------
 */

/*
 * A rule's reason for the primary message: its first 100 bytes, cut at a
 * character boundary (the detail has it whole).
 */
static const char *
short_reason(const char *reason)
{
	int			len = strlen(reason);
	int			cut;

	if (len <= 100)
		return reason;
	cut = pg_mbcliplen(reason, len, 97);
	return psprintf("%.*s...", cut, reason);
}

static void
refuse(AgEvent *ev, AgOutcome *out)
{
	char	   *what = ag_describe_event(ev);
	char	   *obj = "";
	char	   *reason;

	/* a utility statement's message names the command and its object */
	if (ev->utility && OidIsValid(ev->relid))
	{
		obj = psprintf(" (%s)", ag_relation_name(ev->relid));
		what = psprintf("%s on %s", what, ag_relation_name(ev->relid));
	}

	if (out->no_policy)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: agent roles may not use a database without the agentgate extension"),
				 errdetail("Database \"%s\" has no agentgate.rules, so no policy could be applied to %s.",
						   get_database_name(MyDatabaseId), what),
				 errhint("Connect to a database where agentgate is installed, or ask a database administrator to run CREATE EXTENSION agentgate here.")));

	/*
	 * Some clients (an MCP server, say) hand an LLM agent the primary
	 * message only: it names the rule and, in a few words, the fix.  The
	 * detail and hint say the same at length.
	 */
	if (out->by_default)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: %s is not allowed (no rule allows it); ask for a rule that does", what),
				 errdetail("No rule allows it%s, and agentgate.default_action is \"block\".", obj),
				 errhint("Ask a database administrator for a rule that allows it.")));
	reason = out->reason && out->reason[0] ? out->reason : "(no reason given)";
	if (out->cond == AG_COND_NO_WHERE)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: %s without a restricting WHERE is not allowed (rule %lld); add a WHERE clause",
						what, (long long) out->rule_id),
				 errdetail("Rule %lld%s: %s", (long long) out->rule_id, obj, reason),
				 errhint("Add a WHERE clause that restricts the rows, or ask a database administrator for a rule that allows it.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: %s is not allowed (rule %lld: %s)", what,
					(long long) out->rule_id, short_reason(reason)),
			 errdetail("Rule %lld%s: %s", (long long) out->rule_id, obj, reason),
			 errhint("Ask a database administrator to run it, or for a rule that allows it.")));
}

/*
 * ag_policy_apply_outcome notes the decision for audit, then enforces it: a
 * block raises an error in enforce mode and is only logged in monitor mode
 * (also for max_rows rules, policy_rows.c).
 */
void
ag_policy_apply_outcome(AgEvent *ev, AgOutcome *out, int level)
{
	if (collector)
	{
		collector->fn(ev, out, collector->arg);
		return;
	}
	if (out->decision == AG_DECISION_BLOCKED)
	{
		if (ag_policy_mode == AG_MODE_MONITOR)
		{
			ag_verdict_note(level, AG_DECISION_MONITORED, out->rule_id);
			ereport(LOG,
					(errmsg("agentgate: would block %s (monitor mode)", ag_describe_event(ev)),
					 out->by_default ? errdetail("No rule allows it.") :
					 errdetail("Rule %lld: %s", (long long) out->rule_id,
							   out->reason ? out->reason : ""),
					 errhidestmt(false)));
			return;
		}
		ag_verdict_note(level, AG_DECISION_BLOCKED, out->rule_id);
		refuse(ev, out);
	}
	if (out->decision == AG_DECISION_APPROVAL)
	{
		if (ag_policy_mode == AG_MODE_MONITOR)
		{
			ag_verdict_note(level, AG_DECISION_MONITORED, out->rule_id);
			ereport(LOG,
					(errmsg("agentgate: %s would need approval (monitor mode)",
							ag_describe_event(ev)),
					 errdetail("Rule %lld: %s", (long long) out->rule_id,
							   out->reason ? out->reason : ""),
					 errhidestmt(false)));
			return;
		}
		ag_verdict_note(level, AG_DECISION_APPROVAL, out->rule_id);
		ag_approval_needed(ev, &out->approval, level);	/* approval.c */
		return;
	}
	if (out->decision == AG_DECISION_LOGGED)
		ag_verdict_note(level, AG_DECISION_LOGGED,
						out->log_rule_id ? out->log_rule_id : out->rule_id);
	else
		ag_verdict_note(level, AG_DECISION_ALLOWED, out->rule_id);
}

/*
 * ag_policy_decide, turning any failure to decide (a catalog lookup that
 * fails, a rule the cache cannot load, out of memory...) into a refusal
 * that says so: never a pass.  A cancel is passed on as it is.
 */
static void
decide_or_refuse(AgEvent *ev, AgOutcome *out, int level)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	PG_TRY();
	{
		ag_policy_decide(judged_role(), ev, out);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			PG_RE_THROW();
		FlushErrorState();
		if (!collector)
			ag_verdict_note(level, AG_DECISION_BLOCKED, 0);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: statement refused: the policy could not decide it"),
				 errdetail("%s", edata->message),
				 errhint("Ask a database administrator to check agentgate.rules and the server log.")));
	}
	PG_END_TRY();
}

void
ag_policy_decide_event(AgEvent *ev, AgStmt *ctx, int level)
{
	AgOutcome	out;

	if (ev->tags[0] == CMDTAG_UNKNOWN)
	{
		if (!collector)
			ag_verdict_note(level, AG_DECISION_BLOCKED, 0);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: statement not allowed: its kind is not known to the policy"),
				 errdetail("agentgate refuses what it cannot classify."),
				 errhint("Ask a database administrator to run it.")));
	}
	decide_or_refuse(ev, &out, level);
	if (out.deferred != NIL && ctx != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		ListCell   *lc;

		foreach(lc, out.deferred)
		{
			AgDeferred *d = palloc(sizeof(AgDeferred));

			memcpy(d, lfirst(lc), sizeof(AgDeferred));
			d->reason = pstrdup(d->reason);
			ctx->deferred = lappend(ctx->deferred, d);
		}
		MemoryContextSwitchTo(old);
	}
	ag_policy_apply_outcome(ev, &out, level);
}

/* ----------------------------------------------------------------
 *		What a statement touches
 * ----------------------------------------------------------------
 */

/*
 * The columns of a permission bitmap as attnos of ev->relid.  When the
 * bitmap is a parent's (from valid), its columns are found in ev->relid by
 * name: a child's attribute numbers may differ.
 */
static void
cols_from(AgEvent *ev, Bitmapset *cols, Oid from)
{
	int			m = -1;

	while ((m = bms_next_member(cols, m)) >= 0)
	{
		int			attno = m + FirstLowInvalidHeapAttributeNumber;

		if (attno == InvalidAttrNumber)
			ev->all_cols = true;
		else if (attno > 0 && !OidIsValid(from))
			ev->cols = bms_add_member(ev->cols, attno);
		else if (attno > 0)
		{
			char	   *name = get_attname(from, (AttrNumber) attno, true);
			AttrNumber	child = name ? get_attnum(ev->relid, name) : InvalidAttrNumber;

			if (child > 0)
				ev->cols = bms_add_member(ev->cols, child);
			else
				ev->all_cols = true;	/* cannot tell: fail closed */
		}
	}
}

/*
 * Accesses by agentgate's own SECURITY DEFINER functions to agentgate's own
 * tables are the extension's bookkeeping, not the agent's statement.  The
 * session user is still the agent inside them, so the test is: a function
 * of the agentgate schema is running (agentgate_fn_depth, kept by the fmgr
 * hook) and the access is checked as the schema's owner (never an agent:
 * agents are never superusers).  A definer function elsewhere, or a view,
 * owned by the same role gets no pass.
 */
static Oid
schema_owner(Oid nsp)
{
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

static bool
internal_access(Oid relid, Oid checkuser, Oid who)
{
	Oid			nsp;

	if (agentgate_fn_depth == 0 || checkuser == who)
		return false;
	nsp = ag_schema_oid();
	if (!OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return false;
	return checkuser == schema_owner(nsp);
}

static void
decide_rtable(List *rtable, AgStmt *ctx, int level)
{
	ListCell   *lc;
	int			rti = 0;
	Oid			who = judged_role();
	bool		same = ctx && ctx->pstmt && ctx->pstmt->rtable == rtable;

	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		AclMode		perms = rte->requiredPerms;
		Oid			checkuser;
		bool		lock_only;
		AgEvent		ev;
		List	   *targets;
		ListCell   *lc2;
		const char *sql = ctx ? ctx->sql : NULL;
		int			sql_len = ctx ? ctx->sql_len : 0;

		rti++;
		if (rte->rtekind != RTE_RELATION || perms == 0)
			continue;
		checkuser = OidIsValid(rte->checkAsUser) ? rte->checkAsUser :
			(collector ? who : GetUserId());
		if (internal_access(rte->relid, checkuser, who))
			continue;

		/* SELECT ... FOR UPDATE asks UPDATE permission but writes nothing */
		lock_only = (perms & ACL_UPDATE) && bms_is_empty(rte->updatedCols);

		/*
		 * The relation itself, then (through a parent, without ONLY) each of
		 * its partitions and inheritance children that a rule names: they
		 * are read and written with no permission check of their own.
		 */
		targets = list_make1_oid(rte->relid);
		if (rte->inh)
			targets = list_concat(targets, ag_rules_descendants_named(rte->relid));
		foreach(lc2, targets)
		{
			Oid			relid = lfirst_oid(lc2);
			Oid			from = (relid == rte->relid) ? InvalidOid : rte->relid;

			if ((perms & ACL_SELECT) || lock_only)
			{
				ag_event_init(&ev, CMDTAG_SELECT, AG_CLASS_READ);
				ev.relid = relid;
				ev.sql = sql;
				ev.sql_len = sql_len;
				cols_from(&ev, rte->selectedCols, from);
				ag_policy_decide_event(&ev, ctx, level);
			}
			if (perms & ACL_INSERT)
			{
				ag_event_init(&ev, CMDTAG_INSERT, AG_CLASS_WRITE);
				ev.relid = relid;
				ev.sql = sql;
				ev.sql_len = sql_len;
				cols_from(&ev, rte->insertedCols, from);
				ag_policy_decide_event(&ev, ctx, level);
			}
			if ((perms & ACL_UPDATE) && !lock_only)
			{
				ag_event_init(&ev, CMDTAG_UPDATE, AG_CLASS_WRITE);
				ev.relid = relid;
				ev.sql = sql;
				ev.sql_len = sql_len;
				cols_from(&ev, rte->updatedCols, from);
				ev.no_where = same && bms_is_member(rti, ctx->no_where_rtis);
				ag_policy_decide_event(&ev, ctx, level);
			}
			if (perms & ACL_DELETE)
			{
				ag_event_init(&ev, CMDTAG_DELETE, AG_CLASS_WRITE);
				ev.relid = relid;
				ev.sql = sql;
				ev.sql_len = sql_len;
				ev.no_where = same && bms_is_member(rti, ctx->no_where_rtis);
				ag_policy_decide_event(&ev, ctx, level);
			}
		}
	}
}

/* The statement-level event of a planned (non-utility) statement. */
static void
decide_planned(PlannedStmt *pstmt, AgStmt *ctx)
{
	int			tag = ag_operation_tag(pstmt->commandType);
	AgEvent		ev;

	ag_event_init(&ev, tag,
				  pstmt->commandType == CMD_SELECT ? AG_CLASS_READ : AG_CLASS_WRITE);
	ev.sql = ctx->sql;
	ev.sql_len = ctx->sql_len;
	if (pstmt->commandType != CMD_SELECT || pstmt->hasModifyingCTE)
	{
		(void) ag_plan_no_where(pstmt, &ctx->no_where_rtis);
		if (pstmt->planTree && IsA(pstmt->planTree, ModifyTable))
			ev.no_where = bms_is_member((int) ((ModifyTable *) pstmt->planTree)->nominalRelation,
										ctx->no_where_rtis);
	}
	ag_policy_decide_event(&ev, ctx, ctx->level);
}

/* An event of policy_calls.c, in the statement being run. */
void
ag_policy_decide_call(AgEvent *ev)
{
	if (ag_stmt && ev->sql == NULL)
	{
		ev->sql = ag_stmt->sql;
		ev->sql_len = ag_stmt->sql_len;
	}
	ag_policy_decide_event(ev, ag_stmt, ag_stmt_level());
}

static void
decide_utility(PlannedStmt *pstmt, AgStmt *ctx)
{
	bool		decide;
	List	   *events;
	ListCell   *lc;

	events = ag_utility_events(pstmt, ctx->sql, ctx->sql_len, &decide,
							   judged_role());
	events = ag_calls_utility_events(pstmt, events, ctx->sql, ctx->sql_len);
	if (!decide)
		return;
	if (events == NIL)
	{
		AgEvent		ev;

		ag_event_init(&ev, CMDTAG_UNKNOWN, AG_CLASS_NONE);
		events = list_make1(&ev);
		ag_policy_decide_event(&ev, ctx, ctx->level);
		return;
	}
	foreach(lc, events)
		ag_policy_decide_event((AgEvent *) lfirst(lc), ctx, ctx->level);
}

static void
slice_text(AgStmt *ctx, const char *text, PlannedStmt *pstmt)
{
	int			loc = pstmt ? pstmt->stmt_location : -1;
	int			len = pstmt ? pstmt->stmt_len : 0;

	ctx->sql = NULL;
	ctx->sql_len = 0;
	if (text == NULL)
		return;
	if (loc < 0)
	{
		loc = 0;
		len = 0;
	}
	if (len <= 0)
		len = strlen(text + loc);
	ctx->sql = text + loc;
	ctx->sql_len = len;
}

/*
 * For agentgate.explain(): decide a statement for `who` as if it ran,
 * handing each outcome to fn instead of enforcing it.
 */
void
ag_policy_collect(PlannedStmt *pstmt, const char *sql, Oid who,
				  AgCollectFn fn, void *arg)
{
	Collector	c;
	AgStmt		ctx;
	Collector  *save = collector;

	c.fn = fn;
	c.arg = arg;
	c.who = who;
	memset(&ctx, 0, sizeof(ctx));
	ctx.pstmt = pstmt;
	slice_text(&ctx, sql, pstmt);
	collector = &c;
	PG_TRY();
	{
		if (pstmt->commandType == CMD_UTILITY)
			decide_utility(pstmt, &ctx);
		else
		{
			decide_planned(pstmt, &ctx);
			decide_rtable(pstmt->rtable, &ctx, 0);
		}
	}
	PG_FINALLY();
	{
		collector = save;
	}
	PG_END_TRY();
}

/* For agentgate.explain(): decide one function call. */
void
ag_policy_collect_call(Oid funcid, Oid who, AgCollectFn fn, void *arg)
{
	Collector	c;
	Collector  *save = collector;
	AgEvent		ev;
	bool		builtin = funcid < FirstNormalObjectId;

	if (builtin && !ag_rules_function_named(funcid))
		return;
	c.fn = fn;
	c.arg = arg;
	c.who = who;
	ag_event_init(&ev, AG_TAG_FUNCTION_CALL, builtin ? AG_CLASS_NONE : AG_CLASS_FUNCTION);
	ev.funcid = funcid;
	ev.builtin_call = builtin;
	collector = &c;
	PG_TRY();
	{
		ag_policy_decide_event(&ev, NULL, 0);
	}
	PG_FINALLY();
	{
		collector = save;
	}
	PG_END_TRY();
}

/* ----------------------------------------------------------------
 *		Statement hooks (called by hooks.c, after identity)
 * ----------------------------------------------------------------
 */

void
ag_policy_utility(AgStmt *st)
{
	Node	   *n = st->pstmt->utilityStmt;

	ag_policy_role_verify(st->level);
	if (!governed())
		return;
	if (st->level == 0)
		AcceptInvalidationMessages();
	/* SET/RESET ROLE and SESSION AUTHORIZATION are decided as such */
	st->sets_role = IsA(n, VariableSetStmt) &&
		((VariableSetStmt *) n)->name != NULL &&
		(pg_strcasecmp(((VariableSetStmt *) n)->name, "role") == 0 ||
		 pg_strcasecmp(((VariableSetStmt *) n)->name, "session_authorization") == 0);
	decide_utility(st->pstmt, st);
	st->decided = true;
}

void
ag_policy_utility_done(AgStmt *st)
{
	if (st->decided && !st->sets_role && IsTransactionState())
		ag_policy_role_unchanged(st->role_before, st->level);
	/* a SET ROLE or SESSION AUTHORIZATION that ran was decided as such */
	if (st->decided && st->sets_role && IsTransactionState())
		ag_policy_role_approve();
	ag_policy_role_verify(ag_nesting_level);
}

void
ag_policy_executor_start(AgStmt *st, int eflags)
{
	ag_policy_role_verify(st->level);
	if (!governed() || leader_decided(st->level))
		return;

	/*
	 * A policy change committed while this transaction was open would
	 * otherwise wait for the next lock this backend takes; reading the queue
	 * is a single unlocked test when it is empty.
	 */
	if (st->level == 0)
		AcceptInvalidationMessages();
	ag_policy_rows_forget(st->qd);
	if (!st->explain_only)
		decide_planned(st->pstmt, st);
	st->decided = true;
}

void
ag_policy_executor_ran(QueryDesc *queryDesc, Oid role_before, int level)
{
	if (GetCurrentRoleId() != role_before && governed())
		ag_policy_role_unchanged(role_before, level);
	ag_policy_role_verify(level);
	ag_policy_rows_check(queryDesc);
}

void
ag_policy_executor_finished(QueryDesc *queryDesc)
{
	/* AFTER triggers ran in there */
	ag_policy_role_verify(ag_nesting_level);
	ag_policy_rows_check(queryDesc);
}

void
ag_policy_check_perms(List *rangeTable)
{
	int			level = ag_stmt_level();

	if (!IsTransactionState())
		return;
	if (!ag_session_is_governed())
		ag_agent_code_check_rtable(rangeTable, level);
	else if (!(ag_stmt && ag_stmt->explain_only) && !leader_decided(level))
		decide_rtable(rangeTable, ag_stmt, level);
}

void
ag_policy_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						int subId, void *arg)
{
	int			level;

	if (access != OAT_FUNCTION_EXECUTE)
		return;
	level = ag_stmt_level();
	ag_policy_role_verify(level);
	/* an agent's function, in any session (agent_code.c) */
	ag_agent_code_check_call(objectId, level);
	if (governed() && !(ag_stmt && ag_stmt->explain_only) &&
		!leader_decided(level))
	{
		bool		builtin;
		AgEvent		ev;

		/* built-ins decided with their arguments (policy_calls.c) */
		ag_calls_function_execute(&objectId);
		if (!OidIsValid(objectId))
			return;
		builtin = objectId < FirstNormalObjectId;
		if (builtin && !ag_rules_function_named(objectId))
			return;
		ag_event_init(&ev, AG_TAG_FUNCTION_CALL,
					  builtin ? AG_CLASS_NONE : AG_CLASS_FUNCTION);
		ev.funcid = objectId;
		ev.builtin_call = builtin;
		if (ag_stmt)
		{
			ev.sql = ag_stmt->sql;
			ev.sql_len = ag_stmt->sql_len;
		}
		ag_policy_decide_event(&ev, ag_stmt, level);
	}
}

/*
 * Saying "needs the fmgr hook" for a function routes its calls through
 * ag_policy_fmgr below, and keeps the planner from inlining it or
 * pre-evaluating it (inline_function and evaluate_function check
 * FmgrHookIsNeeded).  Asked for:
 *
 *	- a function owned by an agent role, in any session but that agent's
 *	  own: its calls are refused there (agent_code.c);
 *	- agentgate's own functions in governed sessions: ag_policy_fmgr counts
 *	  them (see internal_access);
 *	- in governed sessions, a function whose call the policy would not
 *	  simply allow (a rule blocks or logs it, a max_rows rule, default-deny):
 *	  an inlined call never reaches OAT_FUNCTION_EXECUTE, where calls are
 *	  decided.  Every other function keeps inlining, so an agent's SQL
 *	  computes what it computes elsewhere.  A rule change resets the plan
 *	  cache (policy_rules.c), so plans that inlined a function a new rule
 *	  decides are made again.
 */
bool
ag_policy_needs_fmgr(Oid fn_oid)
{
	Oid			nsp;
	AgEvent		ev;
	AgOutcome	out;

	if (fn_oid < FirstNormalObjectId || !IsTransactionState())
		return false;
	if (ag_agent_code_needs_hook(fn_oid))
		return true;
	if (!governed())
		return false;
	nsp = ag_schema_oid();
	if (OidIsValid(nsp) && get_func_namespace(fn_oid) == nsp)
		return true;
	if (ag_rules_function_named(fn_oid))
		return true;
	if (!ag_rules_have_function_rules())
		return false;
	ag_event_init(&ev, AG_TAG_FUNCTION_CALL, AG_CLASS_FUNCTION);
	ev.funcid = fn_oid;
	ag_policy_decide(judged_role(), &ev, &out);
	return out.decision != AG_DECISION_ALLOWED || out.log_rule_id != 0 ||
		out.deferred != NIL;
}

/*
 * Per call site, *info (in agentgate's own private slot of the call site,
 * hooks.c) keeps what the catalog says about the function, so that it is
 * looked at once: FMGR_KNOWN, whether it is one of agentgate's
 * (FMGR_AGENTGATE), whether it carries a SET role clause (FMGR_SETS_ROLE),
 * and in the low 32 bits the agent role that owns it, if any.
 */
#define FMGR_KNOWN		(UINT64CONST(1) << 32)
#define FMGR_AGENTGATE	(UINT64CONST(1) << 33)
#define FMGR_SETS_ROLE	(UINT64CONST(1) << 34)
#define FMGR_OWNER(d)	((Oid) ((uint64) (d) & UINT64CONST(0xFFFFFFFF)))

/*
 * Refuses calls of an agent's function outside its own sessions, approves
 * the identity a function's SET role clause installs, and counts the calls
 * of agentgate-schema functions in progress.
 */
void
ag_policy_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, uint64 *infop)
{
	uint64		info = *infop;

	if (event == FHET_START && !(info & FMGR_KNOWN))
	{
		Oid			nsp = ag_schema_oid();

		info = FMGR_KNOWN;
		if (OidIsValid(nsp) && get_func_namespace(flinfo->fn_oid) == nsp)
			info |= FMGR_AGENTGATE;
		else
		{
			if (ag_policy_role_set_by_function(flinfo->fn_oid))
				info |= FMGR_SETS_ROLE;
			info |= (uint64) ag_agent_function_owner(flinfo->fn_oid);
		}
		*infop = info;
	}

	/*
	 * At FHET_START a SECURITY DEFINER function already runs as its owner:
	 * what is compared is who calls it and whose session it is.
	 */
	if (event == FHET_START && OidIsValid(FMGR_OWNER(info)))
		ag_agent_code_check_owner(flinfo->fn_oid, FMGR_OWNER(info),
								  ag_stmt_level());

	/*
	 * A function's own SET role clause has been applied when its call
	 * starts: it was decided when the function was created or altered (as
	 * SET ROLE), so the identity it installs is approved for the call.
	 * Once the call returns the old identity is back and is seen as such.
	 */
	if ((info & FMGR_SETS_ROLE) && event == FHET_START)
		ag_policy_role_approve();
	if (!(info & FMGR_AGENTGATE))
		return;
	if (event == FHET_START)
		agentgate_fn_depth++;
	else if (agentgate_fn_depth > 0)
		agentgate_fn_depth--;
}

/*
 * The planner pre-evaluates immutable and stable calls with constant
 * arguments, outside any executor: compare the identity before and after
 * planning.
 */
void
ag_policy_planner_start(void)
{
	ag_policy_role_verify(ag_nesting_level);
}

void
ag_policy_planned(PlannedStmt *result)
{
	ag_policy_role_verify(ag_nesting_level);
	if (governed())
		ag_calls_substitute(result);	/* policy_calls.c */
}

static void
ag_policy_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* deferred triggers have run; refusing here aborts the commit */
			ag_policy_role_verify(0);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ag_policy_rows_reset();
			agentgate_fn_depth = 0;

			/*
			 * Verdicts describe statements of this transaction; a statement
			 * that never reaches a hook (a syntax error) must not inherit
			 * the last one.  Audit's callback, installed later, runs first.
			 */
			{
				int			i;

				for (i = 0; i < AG_VERDICT_MAX_DEPTH; i++)
					ag_verdict_reset(i);
			}
			break;
		default:
			break;
	}
}

/*
 * The settings are superuser-only (PGC_SUSET); this check also refuses a
 * governed session that was granted SET on them, and covers set_config().
 */
static bool
check_not_agent(int *newval, void **extra, GucSource source)
{
	if (source >= PGC_S_INTERACTIVE && IsNormalProcessingMode() &&
		IsTransactionState() && ag_session_is_governed())
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("agent roles may not change agentgate settings");
		return false;
	}
	return true;
}

/*
 * Plans made in monitor mode read unmasked columns (mask.c): a change of
 * mode makes every cached plan again.
 */
static void
assign_mode(int newval, void *extra)
{
	if (newval != ag_policy_mode)
		ResetPlanCache();
}

void
ag_policy_init(void)
{
	DefineCustomEnumVariable("agentgate.mode",
							 "enforce: refuse what policy blocks; monitor: only record it.",
							 NULL,
							 &ag_policy_mode,
							 AG_MODE_ENFORCE,
							 mode_options,
							 PGC_SUSET,
							 GUC_NO_RESET_ALL,
							 check_not_agent, assign_mode, NULL);
	DefineCustomEnumVariable("agentgate.default_action",
							 "What happens to a statement of an agent role that no rule matches.",
							 "allow, or block for default-deny.",
							 &ag_default_action,
							 AG_ACTION_ALLOW,
							 default_action_options,
							 PGC_SUSET,
							 GUC_NO_RESET_ALL,
							 check_not_agent, NULL, NULL);

	ag_rules_init();
	RegisterXactCallback(ag_policy_xact_callback, NULL);
}
