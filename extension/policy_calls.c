/*-------------------------------------------------------------------------
 *
 * policy_calls.c
 *	  Built-in calls decided with their arguments, and agentgate's channels.
 *
 * Some built-in functions are statements in disguise: pg_notify() is a
 * NOTIFY, lo_unlink() drops a large object, lo_put() and lo_open(...,
 * INV_WRITE) write one.  What they do depends on their arguments, and no
 * hook sees those: the fmgr hook never fires for built-ins, and
 * OAT_FUNCTION_EXECUTE names the function only.  So for governed sessions
 * the planner's output is rewritten: every call of one of these built-ins
 * (a function call, an operator whose function it is, in any plan node and
 * subplan) is pointed at a checked twin in agentgate.so, an
 * agentgate.*_checked SQL function of the same signature, volatility and
 * strictness, which decides the call with its arguments and then runs the
 * built-in's own C function with the same arguments (same result, same
 * errors).  Every statement is planned through the planner hook, including
 * plpgsql expressions, SQL function bodies, triggers, views, DEFAULT
 * expressions, prepared statements and cached plans (replanned the same
 * way).
 *
 * A call that reaches the executor unsubstituted took a path the planner
 * did not see: a fastpath call, a CHECK or domain constraint, a COPY FROM
 * default, a CALL or EXECUTE argument.  Its arguments are unknown there, so
 * it is refused (fail closed) unless a rule naming the built-in allows it.
 *
 * LISTEN, UNLISTEN and NOTIFY statements are decided from here too (one
 * call in decide_utility): on a channel named agentgate_* (any case) they
 * carry the tag AGENTGATE CHANNEL, which the baseline refuses.  The proxy
 * listens on agentgate_revocations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_largeobject_metadata.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "libpq/libpq-fs.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "storage/large_object.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "catalog/pg_class.h"

#include "agentgate.h"
#include "hooks.h"
#include "policy.h"
#include "verdict.h"

/* The built-ins decided with their arguments, and their checked twins. */
typedef struct CheckedCall
{
	Oid			builtin;
	const char *wrapper;		/* agentgate.<wrapper>(same argument types) */
	int			nargs;
	Oid			argtypes[3];
} CheckedCall;

static const CheckedCall checked_calls[] = {
	{F_PG_NOTIFY, "pg_notify_checked", 2, {TEXTOID, TEXTOID}},
	{F_LO_UNLINK, "lo_unlink_checked", 1, {OIDOID}},
	{F_LO_PUT, "lo_put_checked", 3, {OIDOID, INT8OID, BYTEAOID}},
	{F_LO_OPEN, "lo_open_checked", 2, {OIDOID, INT4OID}},
	{F_LO_FROM_BYTEA, "lo_from_bytea_checked", 2, {OIDOID, BYTEAOID}},
	{F_SETVAL_REGCLASS_INT8, "setval_checked", 2, {REGCLASSOID, INT8OID}},
	{F_SETVAL_REGCLASS_INT8_BOOL, "setval_checked", 3, {REGCLASSOID, INT8OID, BOOLOID}},
};

#define NUM_CHECKED lengthof(checked_calls)

/* The twins' OIDs in this database, looked up once, reset by pg_proc changes */
static Oid	wrapper_oids[NUM_CHECKED];
static bool wrappers_known = false;
static bool callback_registered = false;

static void
wrappers_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	wrappers_known = false;
}

static void
wrappers_load(void)
{
	Oid			nsp;
	int			i;

	if (wrappers_known)
		return;
	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, wrappers_reset, (Datum) 0);
		callback_registered = true;
	}
	nsp = ag_schema_oid();
	for (i = 0; i < NUM_CHECKED; i++)
	{
		const CheckedCall *c = &checked_calls[i];
		oidvector  *args = buildoidvector(c->argtypes, c->nargs);

		wrapper_oids[i] = !OidIsValid(nsp) ? InvalidOid :
			GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
							CStringGetDatum(c->wrapper),
							PointerGetDatum(args),
							ObjectIdGetDatum(nsp));
		pfree(args);
	}
	wrappers_known = true;
}

static int
checked_index(Oid builtin)
{
	int			i;

	if (builtin >= FirstNormalObjectId)
		return -1;
	for (i = 0; i < NUM_CHECKED; i++)
		if (checked_calls[i].builtin == builtin)
			return i;
	return -1;
}

/* Same test as policy.c's: a parallel worker runs what its leader decided */
static bool
calls_governed(void)
{
	return IsTransactionState() && !IsParallelWorker() &&
		ag_session_is_governed();
}

/* ----------------------------------------------------------------
 *		Substitution in the planner's output
 * ----------------------------------------------------------------
 */

typedef struct SubstCtx
{
	Bitmapset  *used;			/* indexes into checked_calls */
} SubstCtx;

static Oid
twin_of(Oid funcid, SubstCtx *c)
{
	int			i = checked_index(funcid);

	if (i < 0)
		return InvalidOid;
	wrappers_load();
	if (!OidIsValid(wrapper_oids[i]))
		return InvalidOid;		/* not installed: the executor refuses it */
	c->used = bms_add_member(c->used, i);
	return wrapper_oids[i];
}

static bool
subst_walker(Node *node, SubstCtx *c)
{
	Oid			twin;

	if (node == NULL)
		return false;
	check_stack_depth();
	switch (nodeTag(node))
	{
		case T_FuncExpr:
			if (OidIsValid(twin = twin_of(((FuncExpr *) node)->funcid, c)))
				((FuncExpr *) node)->funcid = twin;
			break;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			/* an operator whose function is one of them */
			if (OidIsValid(twin = twin_of(((OpExpr *) node)->opfuncid, c)))
				((OpExpr *) node)->opfuncid = twin;
			break;
		case T_MergeAction:
			{
				MergeAction *a = (MergeAction *) node;

				return subst_walker((Node *) a->targetList, c) ||
					subst_walker(a->qual, c);
			}
		case T_RangeTblFunction:
			return subst_walker(((RangeTblFunction *) node)->funcexpr, c);
		case T_TableSampleClause:
			return subst_walker((Node *) ((TableSampleClause *) node)->args, c) ||
				subst_walker((Node *) ((TableSampleClause *) node)->repeatable, c);
		default:
			break;
	}
	return expression_tree_walker(node, subst_walker, (void *) c);
}

#define SUBST(x) (void) subst_walker((Node *) (x), c)

/*
 * Every expression a plan node evaluates (setrefs.c's list).  A node kind
 * not listed here keeps its calls unsubstituted, and the executor refuses
 * those: a missed field fails closed.
 */
static void
subst_plan(Plan *plan, SubstCtx *c)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	check_stack_depth();
	SUBST(plan->targetlist);
	SUBST(plan->qual);
	SUBST(plan->initPlan);
	switch (nodeTag(plan))
	{
		case T_Result:
			SUBST(((Result *) plan)->resconstantqual);
			break;
		case T_ModifyTable:
			{
				ModifyTable *mt = (ModifyTable *) plan;

				SUBST(mt->returningLists);
				SUBST(mt->onConflictSet);
				SUBST(mt->onConflictWhere);
				SUBST(mt->withCheckOptionLists);
				SUBST(mt->mergeActionLists);
				break;
			}
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				subst_plan((Plan *) lfirst(lc), c);
			break;
		case T_MergeAppend:
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				subst_plan((Plan *) lfirst(lc), c);
			break;
		case T_BitmapAnd:
			foreach(lc, ((BitmapAnd *) plan)->bitmapplans)
				subst_plan((Plan *) lfirst(lc), c);
			break;
		case T_BitmapOr:
			foreach(lc, ((BitmapOr *) plan)->bitmapplans)
				subst_plan((Plan *) lfirst(lc), c);
			break;
		case T_SampleScan:
			SUBST(((SampleScan *) plan)->tablesample);
			break;
		case T_IndexScan:
			SUBST(((IndexScan *) plan)->indexqual);
			SUBST(((IndexScan *) plan)->indexqualorig);
			SUBST(((IndexScan *) plan)->indexorderby);
			SUBST(((IndexScan *) plan)->indexorderbyorig);
			break;
		case T_IndexOnlyScan:
			SUBST(((IndexOnlyScan *) plan)->indexqual);
			SUBST(((IndexOnlyScan *) plan)->recheckqual);
			SUBST(((IndexOnlyScan *) plan)->indexorderby);
			break;
		case T_BitmapIndexScan:
			SUBST(((BitmapIndexScan *) plan)->indexqual);
			SUBST(((BitmapIndexScan *) plan)->indexqualorig);
			break;
		case T_BitmapHeapScan:
			SUBST(((BitmapHeapScan *) plan)->bitmapqualorig);
			break;
		case T_TidScan:
			SUBST(((TidScan *) plan)->tidquals);
			break;
		case T_TidRangeScan:
			SUBST(((TidRangeScan *) plan)->tidrangequals);
			break;
		case T_SubqueryScan:
			subst_plan(((SubqueryScan *) plan)->subplan, c);
			break;
		case T_FunctionScan:
			SUBST(((FunctionScan *) plan)->functions);
			break;
		case T_TableFuncScan:
			SUBST(((TableFuncScan *) plan)->tablefunc);
			break;
		case T_ValuesScan:
			SUBST(((ValuesScan *) plan)->values_lists);
			break;
		case T_ForeignScan:
			SUBST(((ForeignScan *) plan)->fdw_exprs);
			SUBST(((ForeignScan *) plan)->fdw_recheck_quals);
			break;
		case T_CustomScan:
			SUBST(((CustomScan *) plan)->custom_exprs);
			foreach(lc, ((CustomScan *) plan)->custom_plans)
				subst_plan((Plan *) lfirst(lc), c);
			break;
		case T_NestLoop:
			SUBST(((Join *) plan)->joinqual);
			break;
		case T_MergeJoin:
			SUBST(((Join *) plan)->joinqual);
			SUBST(((MergeJoin *) plan)->mergeclauses);
			break;
		case T_HashJoin:
			SUBST(((Join *) plan)->joinqual);
			SUBST(((HashJoin *) plan)->hashclauses);
			SUBST(((HashJoin *) plan)->hashkeys);
			break;
		case T_Hash:
			SUBST(((Hash *) plan)->hashkeys);
			break;
		case T_Memoize:
			SUBST(((Memoize *) plan)->param_exprs);
			break;
		case T_Limit:
			SUBST(((Limit *) plan)->limitOffset);
			SUBST(((Limit *) plan)->limitCount);
			break;
		case T_WindowAgg:
			SUBST(((WindowAgg *) plan)->startOffset);
			SUBST(((WindowAgg *) plan)->endOffset);
			SUBST(((WindowAgg *) plan)->runCondition);
			break;
		default:
			break;
	}
	subst_plan(plan->lefttree, c);
	subst_plan(plan->righttree, c);
}

/*
 * ag_calls_substitute: point the checked built-ins' calls of a governed
 * session's plan at their twins.  The plan is the planner's fresh output,
 * ours to change.  A cached plan depends on the twins it calls.
 */
void
ag_calls_substitute(PlannedStmt *pstmt)
{
	SubstCtx	ctx;
	SubstCtx   *c = &ctx;
	ListCell   *lc;
	int			i = -1;

	if (pstmt == NULL || pstmt->commandType == CMD_UTILITY)
		return;
	ctx.used = NULL;
	subst_plan(pstmt->planTree, c);
	foreach(lc, pstmt->subplans)
		subst_plan((Plan *) lfirst(lc), c);
	while ((i = bms_next_member(ctx.used, i)) >= 0)
	{
		PlanInvalItem *item = makeNode(PlanInvalItem);

		item->cacheId = PROCOID;
		item->hashValue = GetSysCacheHashValue1(PROCOID,
												ObjectIdGetDatum(wrapper_oids[i]));
		pstmt->invalItems = lappend(pstmt->invalItems, item);
	}
}

/* ----------------------------------------------------------------
 *		OAT_FUNCTION_EXECUTE
 * ----------------------------------------------------------------
 */

/*
 * ag_calls_function_execute: for the function-call check of a governed
 * session.  A twin is decided as the built-in it stands for (rules naming
 * the built-in keep matching; its arguments are decided inside it).  A
 * checked built-in reached unsubstituted is refused unless a rule naming it
 * allows it; *funcid is then InvalidOid (nothing more to decide).
 */
void
ag_calls_function_execute(Oid *funcid)
{
	int			i;
	AgEvent		ev;
	AgOutcome	out;
	int			level;

	if (*funcid >= FirstNormalObjectId)
	{
		wrappers_load();
		for (i = 0; i < NUM_CHECKED; i++)
			if (wrapper_oids[i] == *funcid)
			{
				*funcid = checked_calls[i].builtin;
				return;
			}
		return;
	}
	if (checked_index(*funcid) < 0)
		return;

	ag_event_init(&ev, AG_TAG_FUNCTION_CALL, AG_CLASS_NONE);
	ev.funcid = *funcid;
	ev.builtin_call = true;
	ag_policy_decide(ag_session_role(), &ev, &out);
	level = ag_stmt_level();
	/* an approval cannot be bound to arguments not seen: refused */
	if (out.rule_id != 0 && out.decision != AG_DECISION_BLOCKED &&
		out.decision != AG_DECISION_APPROVAL)
	{
		ag_verdict_note(level, out.decision, out.rule_id);
		*funcid = InvalidOid;
		return;
	}
	if (ag_policy_mode == AG_MODE_MONITOR)
	{
		ag_verdict_note(level, AG_DECISION_MONITORED, out.rule_id);
		ereport(LOG,
				(errmsg("agentgate: would block call of %s (monitor mode)",
						format_procedure(*funcid)),
				 errdetail("Its arguments cannot be seen on this path.")));
		*funcid = InvalidOid;
		return;
	}
	ag_verdict_note(level, AG_DECISION_BLOCKED, out.rule_id);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: call of %s is not allowed here", format_procedure(*funcid)),
			 errdetail("agentgate decides calls of this function with their arguments, which it cannot see on this path "
					   "(a fastpath call, or an expression evaluated outside a planned statement: a CHECK or domain constraint, a COPY default, a CALL or EXECUTE argument)."),
			 errhint("Call it in a SQL statement, or ask a database administrator for a rule that allows it.")));
}

/* ----------------------------------------------------------------
 *		Channels
 * ----------------------------------------------------------------
 */

/* agentgate's channels: agentgate_*, in any case (refuse the near misses) */
static bool
agentgate_channel(const char *channel)
{
	return channel != NULL && pg_strncasecmp(channel, "agentgate_", 10) == 0;
}

/*
 * ag_calls_utility_events: NOTIFY, LISTEN and UNLISTEN of one of
 * agentgate's channels are also an AGENTGATE CHANNEL event (UNLISTEN *
 * names none).
 */
List *
ag_calls_utility_events(PlannedStmt *pstmt, List *events,
						const char *sql, int sql_len)
{
	Node	   *stmt = pstmt->utilityStmt;
	const char *channel = NULL;
	int			tag;
	AgEvent    *ev;

	if (stmt == NULL)
		return events;
	switch (nodeTag(stmt))
	{
		case T_NotifyStmt:
			channel = ((NotifyStmt *) stmt)->conditionname;
			tag = CMDTAG_NOTIFY;
			break;
		case T_ListenStmt:
			channel = ((ListenStmt *) stmt)->conditionname;
			tag = CMDTAG_LISTEN;
			break;
		case T_UnlistenStmt:
			channel = ((UnlistenStmt *) stmt)->conditionname;
			tag = CMDTAG_UNLISTEN;
			break;
		default:
			return events;
	}
	if (!agentgate_channel(channel))
		return events;
	/* the command's own tag last: the refusal names it */
	ev = palloc(sizeof(AgEvent));
	ag_event_init(ev, AG_TAG_AGENTGATE_CHANNEL, ag_tag_class(tag));
	ev->tags[ev->ntags++] = tag;
	ev->utility = true;
	ev->sql = sql;
	ev->sql_len = sql_len;
	return lappend(events, ev);
}

/* ----------------------------------------------------------------
 *		The checked twins
 * ----------------------------------------------------------------
 */

/* The built-in's own EXECUTE privilege still applies to its twin. */
static void
check_builtin_acl(Oid builtin)
{
	AclResult	aclresult = pg_proc_aclcheck(builtin, GetUserId(), ACL_EXECUTE);

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(builtin));
}

/* The owner of a large object; false when there is none by that OID. */
static bool
large_object_owner(Oid loid, Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_largeobject_metadata_oid,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(loid));
	rel = table_open(LargeObjectMetadataRelationId, AccessShareLock);
	scan = systable_beginscan(rel, LargeObjectMetadataOidIndexId, true,
							  NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		*owner = ((Form_pg_largeobject_metadata) GETSTRUCT(tup))->lomowner;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Dropping or writing a large object: an event of its own, not_owner when
 * the object's owner is not the session user itself (a group role the
 * agent belongs to passes PostgreSQL's check, not this one).  An object
 * that does not exist is left to the built-in's own error.
 */
static void
decide_large_object(int tag, Oid loid)
{
	Oid			owner;
	AgEvent		ev;

	if (!calls_governed() || !large_object_owner(loid, &owner))
		return;
	ag_event_init(&ev, tag, ag_tag_class(tag));
	ev.not_owner = (owner != ag_session_role());
	ag_policy_decide_call(&ev);
}

PG_FUNCTION_INFO_V1(agentgate_pg_notify_checked);
Datum
agentgate_pg_notify_checked(PG_FUNCTION_ARGS)
{
	check_builtin_acl(F_PG_NOTIFY);
	if (calls_governed())
	{
		AgEvent		ev;
		char	   *channel = PG_ARGISNULL(0) ? "" :
			text_to_cstring(PG_GETARG_TEXT_PP(0));

		/* pg_notify() is a NOTIFY */
		ag_event_init(&ev, CMDTAG_NOTIFY, ag_tag_class(CMDTAG_NOTIFY));
		if (agentgate_channel(channel))
		{
			ev.tags[0] = AG_TAG_AGENTGATE_CHANNEL;
			ev.tags[ev.ntags++] = CMDTAG_NOTIFY;
		}
		ag_policy_decide_call(&ev);
	}
	return pg_notify(fcinfo);
}

PG_FUNCTION_INFO_V1(agentgate_lo_unlink_checked);
Datum
agentgate_lo_unlink_checked(PG_FUNCTION_ARGS)
{
	check_builtin_acl(F_LO_UNLINK);
	decide_large_object(AG_TAG_DROP_LARGE_OBJECT, PG_GETARG_OID(0));
	return be_lo_unlink(fcinfo);
}

PG_FUNCTION_INFO_V1(agentgate_lo_put_checked);
Datum
agentgate_lo_put_checked(PG_FUNCTION_ARGS)
{
	check_builtin_acl(F_LO_PUT);
	decide_large_object(AG_TAG_WRITE_LARGE_OBJECT, PG_GETARG_OID(0));
	return be_lo_put(fcinfo);
}

/*
 * lowrite(), lo_truncate() and lo_truncate64() work on a descriptor, which
 * writes only if lo_open() opened it with INV_WRITE: the write is decided
 * there.
 */
PG_FUNCTION_INFO_V1(agentgate_lo_open_checked);
Datum
agentgate_lo_open_checked(PG_FUNCTION_ARGS)
{
	check_builtin_acl(F_LO_OPEN);
	if ((PG_GETARG_INT32(1) & INV_WRITE) != 0)
		decide_large_object(AG_TAG_WRITE_LARGE_OBJECT, PG_GETARG_OID(0));
	return be_lo_open(fcinfo);
}

PG_FUNCTION_INFO_V1(agentgate_lo_from_bytea_checked);
Datum
agentgate_lo_from_bytea_checked(PG_FUNCTION_ARGS)
{
	check_builtin_acl(F_LO_FROM_BYTEA);
	if (OidIsValid(PG_GETARG_OID(0)))
		decide_large_object(AG_TAG_WRITE_LARGE_OBJECT, PG_GETARG_OID(0));
	return be_lo_from_bytea(fcinfo);
}

/*
 * setval() on a sequence the agent does not own itself is what ALTER
 * SEQUENCE ... RESTART does: decided as that statement, not_owner (so the
 * baseline refuses it as it refuses the statement).  On its own sequences
 * it is the agent's business.
 */
static void
decide_setval(Oid seqid)
{
	AgEvent		ev;
	Oid			owner;
	HeapTuple	tup;

	if (!calls_governed())
		return;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(seqid));
	if (!HeapTupleIsValid(tup))
		return;					/* the built-in reports it */
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	if (owner == ag_session_role())
		return;
	ag_event_init(&ev, CMDTAG_ALTER_SEQUENCE, ag_tag_class(CMDTAG_ALTER_SEQUENCE));
	ev.relid = seqid;
	ev.not_owner = true;
	ag_policy_decide_call(&ev);
}

PG_FUNCTION_INFO_V1(agentgate_setval_checked);
Datum
agentgate_setval_checked(PG_FUNCTION_ARGS)
{
	bool		three = PG_NARGS() == 3;

	check_builtin_acl(three ? F_SETVAL_REGCLASS_INT8_BOOL : F_SETVAL_REGCLASS_INT8);
	decide_setval(PG_GETARG_OID(0));
	return three ? setval3_oid(fcinfo) : setval_oid(fcinfo);
}
