/*-------------------------------------------------------------------------
 *
 * mask.c
 *	  Column masks applied to the query trees a governed session plans.
 *
 * Where: planner_hook, before the standard planner, on the final query
 * tree (after view and rule expansion, so views are covered, a DBA's and
 * an agent's own; every cached plan and every function's statement is
 * planned through it).  Rewriting at parse analysis would miss views and
 * would store masks into the definitions of views an agent creates, so a
 * superuser reading such a view would see masked values.
 *
 * How: every relation in the tree (subqueries, CTEs, sublinks, set
 * operations and LATERAL included) that has masked columns for the
 * session's role is replaced by a subquery
 *
 *		SELECT c1, mask(c2), c3 ... FROM rel
 *
 * (the relation keeps its own inheritance flag, so ONLY stays ONLY)
 * with one output column per attribute, so every reference to the
 * relation (a column, the whole row t, t.*, row_to_json(t), t::text) reads
 * the masked value.  The relation's permission checks, row-level security
 * quals, locking clause and TABLESAMPLE move into the subquery with it, so
 * they still see real values.  The planner pulls the subquery up: a
 * constant mask (redact, null) becomes a constant of the plan and costs
 * nothing; everything computed from a masked column (predicates, joins,
 * GROUP BY, aggregates, casts and their error messages, values written by
 * INSERT ... SELECT or CREATE TABLE AS) is computed from the masked value.
 *
 * The target of INSERT/UPDATE/DELETE/MERGE cannot become a subquery: its
 * column references in the statement's expressions (WHERE, SET sources,
 * RETURNING, ON CONFLICT, MERGE actions) are replaced by the masks
 * instead.  A column an UPDATE does not assign keeps its stored value.
 *
 * Whose trees: governed sessions (session_user), except while a SECURITY
 * DEFINER function (or a restricted operation) runs as a role that is not
 * governed: that is a DBA's deliberate export; and while a DBA's trigger
 * function runs on a DBA's table (see ag_mask_fmgr).  Row-level security quals
 * (USING and WITH CHECK), views' CHECK OPTION, ON CONFLICT's conflict
 * target, constraints and defaults are never masked.  Plans that read a
 * relation with masks are marked dependsOnRole, so a cached plan made in
 * such a function, or for another role, is made again; a change to
 * agentgate.masks resets the plan cache.
 *
 * SQL functions are inlined by the standard planner after this hook has
 * seen the query: in governed sessions with masks, needs_fmgr_hook keeps
 * them from being inlined, so their statements are planned (and masked)
 * on their own.
 *
 * Other ways out: COPY rel TO becomes COPY (SELECT ...) TO, planned like
 * any query; planner statistics (pg_statistic, pg_statistic_ext_data,
 * read by pg_stats and pg_stats_ext) are refused to sessions with masks;
 * agentgate.mask_hash() called by an agent is refused (it would let the
 * agent test guesses against pseudonyms).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_statistic_ext_data.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "mask.h"
#include "policy.h"

typedef struct MaskCtx
{
	Oid			roleid;			/* whose masks */
	bool		apply;			/* rewrite (else only describe) */
	List	   *described;		/* of char *, when describing */
} MaskCtx;

static void mask_query(Query *q, MaskCtx *cx);

/*
 * The DBA's deliberate export: a SECURITY DEFINER function (or a
 * restricted operation) running as a role that is not governed.  Such a
 * call switches the current user alone; SET ROLE (a function's SET role
 * clause included) switches the outer user too, so a role an agent may
 * set never exempts it, even inside a SECURITY DEFINER function.
 */
static bool
exempt_context(void)
{
	Oid			user = GetUserId();

	if (user == ag_session_role() || user == GetOuterUserId())
		return false;
	if (!InLocalUserIdChange() && !InSecurityRestrictedOperation())
		return false;
	return !ag_owner_is_governed(user);
}

/*
 * Trigger bodies: a trigger function owned by a role that is not governed
 * reads real values even when an agent's statement fires it (masking there
 * would write masked values back into real tables: a history row, a
 * denormalised copy).  fmgr_hook (ag_mask_fmgr) keeps a stack of the
 * function calls that change this: such a trigger function pushes "real",
 * a function owned by a governed role pushes "masked" (an agent's code
 * called from a DBA's trigger is masked again).  Calls nest, and
 * FHET_ABORT unwinds them on error; the stack is emptied at transaction
 * end in any case.
 */
#define AG_MASK_CALL_UNKNOWN	0
#define AG_MASK_CALL_REAL		1	/* a trigger function of an ungoverned owner */
#define AG_MASK_CALL_MASKED		2	/* a function owned by a governed role */
#define AG_MASK_CALL_NEUTRAL	3

static uint8 *call_stack = NULL;
static int	call_depth = 0;
static int	call_cap = 0;

/*
 * A DBA's trigger function reads real values only where the DBA attached
 * it: an agent that attaches it to a table of its own (with arguments of
 * its choosing) gets it masked.  Triggers have no owner of their own; the
 * table's owner decides.
 */
static bool
trigger_tables_ungoverned(Oid fn_oid)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		ok = true;

	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgfoid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(fn_oid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (ok && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Oid			relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
		HeapTuple	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(ctup))
			continue;
		ok = !ag_owner_is_governed(((Form_pg_class) GETSTRUCT(ctup))->relowner);
		ReleaseSysCache(ctup);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return ok;
}

static uint8
call_kind(Oid fn_oid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	uint8		kind = AG_MASK_CALL_NEUTRAL;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		return AG_MASK_CALL_NEUTRAL;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (ag_owner_is_governed(proc->proowner))
		kind = AG_MASK_CALL_MASKED;
	else if (proc->prorettype == TRIGGEROID)
		kind = trigger_tables_ungoverned(fn_oid) ? AG_MASK_CALL_REAL :
			AG_MASK_CALL_MASKED;
	ReleaseSysCache(tup);
	return kind;
}

void
ag_mask_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, uint64 *info)
{
	if (*info == AG_MASK_CALL_UNKNOWN)
		*info = call_kind(flinfo->fn_oid);
	if (*info == AG_MASK_CALL_NEUTRAL)
		return;
	if (event == FHET_START)
	{
		if (call_depth == call_cap)
		{
			call_cap = Max(16, call_cap * 2);
			call_stack = call_stack ?
				repalloc(call_stack, call_cap) :
				MemoryContextAlloc(TopMemoryContext, call_cap);
		}
		call_stack[call_depth++] = (uint8) *info;
	}
	else if (call_depth > 0)
		call_depth--;			/* FHET_END, FHET_ABORT */
}

static void
mask_xact_callback(XactEvent event, void *arg)
{
	call_depth = 0;
}

static bool
in_real_trigger(void)
{
	return call_depth > 0 && call_stack[call_depth - 1] == AG_MASK_CALL_REAL;
}

static bool
governed(void)
{
	return IsTransactionState() && ag_session_is_governed();
}

/* Are this session's statements masked now? */
static bool
masking_now(void)
{
	return governed() && !exempt_context() && !in_real_trigger() &&
		ag_masks_any_for(ag_session_role());
}

static char *
qualified_column(Oid relid, const char *col)
{
	return psprintf("%s.%s.%s",
					quote_identifier(get_namespace_name(get_rel_namespace(relid))),
					quote_identifier(get_rel_name(relid)),
					quote_identifier(col));
}

static bool
maskable_relkind(char relkind)
{
	return relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE ||
		relkind == RELKIND_MATVIEW || relkind == RELKIND_FOREIGN_TABLE;
}

static void
refuse_broken(const AgMaskRel *mr, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: relation \"%s\" has a mask that cannot be applied",
					get_rel_name(relid)),
			 errdetail("%s", mr->broken),
			 errhint("Ask a database administrator to correct agentgate.masks.")));
}

/* ---- system columns of a replaced relation ---- */

typedef struct SysColCtx
{
	Index		rti;
	int			depth;
	Query	   *sub;			/* the subquery that replaces rti */
} SysColCtx;

/*
 * A subquery has no system columns: references to the relation's (ctid,
 * tableoid...) read extra, junk output columns of the subquery instead.
 */
static bool
syscol_walker(Node *node, SysColCtx *c)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		if (v->varno == c->rti && v->varlevelsup == c->depth && v->varattno < 0)
		{
			ListCell   *lc;
			TargetEntry *te = NULL;

			foreach(lc, c->sub->targetList)
			{
				TargetEntry *t = lfirst_node(TargetEntry, lc);
				Var		   *tv = (Var *) t->expr;

				if (t->resjunk && IsA(tv, Var) && tv->varattno == v->varattno)
					te = t;
			}
			if (te == NULL)
			{
				Var		   *inner = makeVar(1, v->varattno, v->vartype, v->vartypmod,
											v->varcollid, 0);

				te = makeTargetEntry((Expr *) inner,
									 list_length(c->sub->targetList) + 1,
									 NULL, true);
				c->sub->targetList = lappend(c->sub->targetList, te);
			}
			v->varattno = te->resno;
		}
		return false;
	}
	if (IsA(node, Query))
	{
		bool		r;

		c->depth++;
		r = query_tree_walker((Query *) node, syscol_walker, c, 0);
		c->depth--;
		return r;
	}
	return expression_tree_walker(node, syscol_walker, c);
}

/* ---- relations read ---- */

/*
 * Replace the relation at rti of q by a subquery reading it masked.  The
 * relation's RTE itself moves into the subquery, with everything checked
 * or enforced on it.
 */
static void
replace_relation(Query *q, Index rti, ListCell *cell, const AgMaskRel *mr)
{
	RangeTblEntry *rte = (RangeTblEntry *) lfirst(cell);
	RangeTblEntry *outer = makeNode(RangeTblEntry);
	Query	   *sub = makeNode(Query);
	Relation	rel;
	TupleDesc	desc;
	int			i;
	ListCell   *lc;
	SysColCtx	sc;

	sub->commandType = CMD_SELECT;
	sub->querySource = QSRC_ORIGINAL;
	sub->canSetTag = true;

	rel = table_open(rte->relid, NoLock);	/* locked by whoever planned */
	desc = RelationGetDescr(rel);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Expr	   *e;
		const AgMaskCol *col;

		if (att->attisdropped)
			e = (Expr *) makeNullConst(INT4OID, -1, InvalidOid);
		else
		{
			e = (Expr *) makeVar(1, att->attnum, att->atttypid, att->atttypmod,
								 att->attcollation, 0);
			col = ag_mask_col(mr, att->attnum);
			if (col)
				e = ag_mask_expr(col, e);
		}
		sub->targetList = lappend(sub->targetList,
								  makeTargetEntry(e, att->attnum,
												  pstrdup(NameStr(att->attname)),
												  false));
	}
	table_close(rel, NoLock);

	/* the relation, its checks and its RLS quals, inside */
	outer->rtekind = RTE_SUBQUERY;
	outer->subquery = sub;
	outer->alias = rte->alias;
	outer->eref = rte->eref;
	outer->lateral = rte->lateral;
	outer->inFromCl = rte->inFromCl;
	rte->eref = copyObject(rte->eref);
	rte->lateral = false;
	rte->inFromCl = true;
	if (rte->securityQuals != NIL)
	{
		ChangeVarNodes((Node *) rte->securityQuals, rti, 1, 0);
		sub->hasRowSecurity = true;
	}
	sub->rtable = list_make1(rte);
	{
		RangeTblRef *ref = makeNode(RangeTblRef);

		ref->rtindex = 1;
		sub->jointree = makeFromExpr(list_make1(ref), NULL);
	}

	/* FOR UPDATE and the like: pushed down, as the parser does for subqueries */
	foreach(lc, q->rowMarks)
	{
		RowMarkClause *rc = lfirst_node(RowMarkClause, lc);

		if (rc->rti == rti)
		{
			RowMarkClause *inner = copyObject(rc);

			inner->rti = 1;
			inner->pushedDown = true;
			sub->rowMarks = lappend(sub->rowMarks, inner);
			sub->hasForUpdate = true;
		}
	}
	lfirst(cell) = outer;

	sc.rti = rti;
	sc.depth = 0;
	sc.sub = sub;
	query_tree_walker(q, syscol_walker, &sc, 0);
}

/* ---- the target of INSERT/UPDATE/DELETE/MERGE ---- */

typedef struct ResultCtx
{
	Index		rti;
	int			depth;
	const AgMaskRel *mr;
	TupleDesc	desc;
} ResultCtx;

static Node *
whole_row(ResultCtx *c, Var *v)
{
	RowExpr    *row = makeNode(RowExpr);
	int			i;

	for (i = 0; i < c->desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(c->desc, i);
		Expr	   *e;
		const AgMaskCol *col;

		if (att->attisdropped)
		{
			row->args = lappend(row->args, makeNullConst(INT4OID, -1, InvalidOid));
			row->colnames = lappend(row->colnames, makeString(pstrdup("")));
			continue;
		}
		e = (Expr *) makeVar(v->varno, att->attnum, att->atttypid, att->atttypmod,
							 att->attcollation, v->varlevelsup);
		col = ag_mask_col(c->mr, att->attnum);
		if (col)
			e = ag_mask_expr(col, e);
		row->args = lappend(row->args, e);
		row->colnames = lappend(row->colnames, makeString(pstrdup(NameStr(att->attname))));
	}
	row->row_typeid = v->vartype;
	row->row_format = COERCE_IMPLICIT_CAST;
	row->location = v->location;
	return (Node *) row;
}

static Node *
result_mutator(Node *node, ResultCtx *c)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		if (v->varno == c->rti && v->varlevelsup == c->depth)
		{
			const AgMaskCol *col;

			if (v->varattno == 0)
				return whole_row(c, v);
			if (v->varattno > 0 && (col = ag_mask_col(c->mr, v->varattno)) != NULL)
				return (Node *) ag_mask_expr(col, (Expr *) copyObject(v));
		}
		return (Node *) copyObject(v);
	}
	if (IsA(node, OnConflictExpr) && c->depth == 0)
	{
		/*
		 * The conflict target (arbiterElems, arbiterWhere) names the
		 * unique index to check, on stored values; only what DO UPDATE
		 * computes from the existing row reads masked values.
		 */
		OnConflictExpr *oc = (OnConflictExpr *) palloc(sizeof(OnConflictExpr));

		memcpy(oc, node, sizeof(OnConflictExpr));
		oc->onConflictSet = (List *) result_mutator((Node *) oc->onConflictSet, c);
		oc->onConflictWhere = result_mutator(oc->onConflictWhere, c);
		return (Node *) oc;
	}
	if (IsA(node, Query))
	{
		Query	   *r;

		c->depth++;
		r = query_tree_mutator((Query *) node, result_mutator, c, 0);
		c->depth--;
		return (Node *) r;
	}
	return expression_tree_mutator(node, result_mutator, c);
}

/*
 * The statement's expressions read the target's masked values.  Its range
 * table is left alone: RLS quals of the target see real values, and no
 * FROM item may refer to the target.
 */
static void
mask_result_relation(Query *q, const AgMaskRel *mr, Oid relid)
{
	ResultCtx	c;
	Relation	rel;
	List	   *wco = q->withCheckOptions;

	rel = table_open(relid, NoLock);
	c.rti = q->resultRelation;
	c.depth = 0;
	c.mr = mr;
	c.desc = RelationGetDescr(rel);
	/* WITH CHECK quals (RLS, views' CHECK OPTION) judge the real new row */
	q->withCheckOptions = NIL;
	query_tree_mutator(q, result_mutator, &c,
					   QTW_DONT_COPY_QUERY | QTW_IGNORE_RANGE_TABLE |
					   QTW_IGNORE_CTE_SUBQUERIES);
	q->withCheckOptions = wco;
	table_close(rel, NoLock);
}

/* ---- the walk ---- */

static bool
sublink_walker(Node *node, MaskCtx *cx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		mask_query((Query *) node, cx);
		return false;
	}
	return expression_tree_walker(node, sublink_walker, cx);
}

static void
describe(MaskCtx *cx, Oid relid, const AgMaskRel *mr, const char *target)
{
	int			i;

	for (i = 0; i < mr->ncols; i++)
		cx->described = lappend(cx->described,
								psprintf("%s: %s%s (mask %lld)",
										 qualified_column(relid, mr->cols[i].colname),
										 ag_mask_method_name(mr->cols[i].method),
										 target, (long long) mr->cols[i].id));
}

static void
mask_query(Query *q, MaskCtx *cx)
{
	ListCell   *lc;
	Index		rti = 0;
	Index		excl = q->onConflict ? q->onConflict->exclRelIndex : 0;

	check_stack_depth();

	foreach(lc, q->cteList)
		mask_query(castNode(Query, lfirst_node(CommonTableExpr, lc)->ctequery), cx);

	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		const AgMaskRel *mr;

		rti++;
		switch (rte->rtekind)
		{
			case RTE_SUBQUERY:
				mask_query(rte->subquery, cx);
				break;
			case RTE_FUNCTION:
				expression_tree_walker((Node *) rte->functions, sublink_walker, cx);
				break;
			case RTE_TABLEFUNC:
				expression_tree_walker((Node *) rte->tablefunc, sublink_walker, cx);
				break;
			case RTE_VALUES:
				expression_tree_walker((Node *) rte->values_lists, sublink_walker, cx);
				break;
			case RTE_RELATION:
				if ((rte->relid == StatisticRelationId ||
					 rte->relid == StatisticExtDataRelationId) && cx->apply)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("agentgate: planner statistics are not available to roles with column masks"),
							 errdetail("%s holds sample values of columns, masked ones included.",
									   get_rel_name(rte->relid)),
							 errhint("Ask a database administrator for the statistics you need.")));
				if (rti == excl || !maskable_relkind(rte->relkind))
					break;
				mr = ag_masks_for_rel(cx->roleid, rte->relid);
				if (mr == NULL)
					break;
				if (mr->broken && cx->apply)
					refuse_broken(mr, rte->relid);
				if (!cx->apply)
				{
					describe(cx, rte->relid, mr, rti == q->resultRelation ? " (target)" : "");
					break;
				}
				if (rti == q->resultRelation)
					break;		/* below */
				replace_relation(q, rti, lc, mr);
				break;
			default:
				break;
		}
	}

	/*
	 * Sublinks anywhere in the statement's own expressions; not in its
	 * WITH CHECK quals (RLS and views' CHECK OPTION judge real values).
	 */
	{
		List	   *wco = q->withCheckOptions;

		q->withCheckOptions = NIL;
		query_tree_walker(q, sublink_walker, cx,
						  QTW_IGNORE_RANGE_TABLE | QTW_IGNORE_CTE_SUBQUERIES);
		q->withCheckOptions = wco;
	}

	if (cx->apply && q->resultRelation > 0)
	{
		RangeTblEntry *rte = rt_fetch(q->resultRelation, q->rtable);
		const AgMaskRel *mr;

		if (rte->rtekind == RTE_RELATION && maskable_relkind(rte->relkind) &&
			(mr = ag_masks_for_rel(cx->roleid, rte->relid)) != NULL)
			mask_result_relation(q, mr, rte->relid);
	}
}

/* ---- agent-written calls of mask_hash ---- */

static bool
hash_call_walker(Node *node, Oid *hashfn)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == *hashfn)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: agent roles may not call agentgate.mask_hash"),
				 errdetail("It would let an agent test guesses against the pseudonyms of masked columns.")));
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, hash_call_walker, hashfn, 0);
	return expression_tree_walker(node, hash_call_walker, hashfn);
}

/* ---- hooks ---- */

/*
 * planner_hook, before the standard planner: the tree of a governed
 * session is rewritten to read masked values.
 */
void
ag_mask_planner_start(Query *parse)
{
	MaskCtx		cx;
	Oid			hashfn;

	if (ag_policy_mode == AG_MODE_MONITOR || !governed() || exempt_context() ||
		in_real_trigger())
		return;
	hashfn = ag_mask_hash_func();
	if (OidIsValid(hashfn))
		hash_call_walker((Node *) parse, &hashfn);
	if (!ag_masks_any_for(ag_session_role()))
		return;
	cx.roleid = ag_session_role();
	cx.apply = true;
	cx.described = NIL;
	mask_query(parse, &cx);
}

/*
 * A plan that reads a relation some role has masks on (or planner
 * statistics) depends on who runs it, in any session: made again for
 * another role (SET SESSION AUTHORIZATION, a SECURITY DEFINER function).
 * Other plans do not, and keep PL/pgSQL's fast path for simple
 * expressions, which a role-dependent plan loses.
 */
void
ag_mask_planned(PlannedStmt *result)
{
	ListCell   *lc;

	if (!IsTransactionState())
		return;
	foreach(lc, result->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);

		if (rte->rtekind == RTE_RELATION &&
			(rte->relid == StatisticRelationId ||
			 rte->relid == StatisticExtDataRelationId ||
			 ag_mask_relation_masked(rte->relid)))
		{
			result->dependsOnRole = true;
			return;
		}
	}
}

/*
 * needs_fmgr_hook: keeps SQL functions from being inlined in governed
 * sessions with masks, so that their statements reach the planner hook.
 */
bool
ag_mask_needs_fmgr(Oid fn_oid)
{
	HeapTuple	tup;
	bool		sql;

	if (fn_oid < FirstNormalObjectId || !governed() ||
		!ag_masks_any_for(ag_session_role()))
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		return false;
	/* SQL functions: not inlined; trigger functions: see ag_mask_fmgr */
	sql = ((Form_pg_proc) GETSTRUCT(tup))->prolang == SQLlanguageId ||
		((Form_pg_proc) GETSTRUCT(tup))->prorettype == TRIGGEROID ||
		ag_owner_is_governed(((Form_pg_proc) GETSTRUCT(tup))->proowner);
	ReleaseSysCache(tup);
	return sql;
}

/*
 * ProcessUtility: COPY rel TO reads the table without the planner; for a
 * relation with masks it becomes COPY (SELECT ... FROM ONLY rel) TO, which
 * is planned (and masked) like any query.  DoCopy does the same for
 * row-level security.
 */
void
ag_mask_utility(AgStmt *st, PlannedStmt **pstmt)
{
	CopyStmt   *cs;
	CopyStmt   *ncs;
	Oid			relid;
	char		relkind;
	SelectStmt *sel;
	RangeVar   *from;
	ListCell   *lc;
	PlannedStmt *np;

	if (!IsA((*pstmt)->utilityStmt, CopyStmt))
		return;
	cs = (CopyStmt *) (*pstmt)->utilityStmt;
	if (cs->is_from || cs->relation == NULL || cs->query != NULL)
		return;
	if (ag_policy_mode == AG_MODE_MONITOR || !masking_now())
		return;
	relid = RangeVarGetRelid(cs->relation, AccessShareLock, true);
	if (!OidIsValid(relid) ||
		ag_masks_for_rel(ag_session_role(), relid) == NULL)
		return;
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW)
		return;					/* COPY refuses the others itself */

	sel = makeNode(SelectStmt);
	if (cs->attlist == NIL)
	{
		ColumnRef  *cr = makeNode(ColumnRef);
		ResTarget  *rt = makeNode(ResTarget);

		cr->fields = list_make1(makeNode(A_Star));
		cr->location = -1;
		rt->val = (Node *) cr;
		rt->location = -1;
		sel->targetList = list_make1(rt);
	}
	else
		foreach(lc, cs->attlist)
		{
			ColumnRef  *cr = makeNode(ColumnRef);
			ResTarget  *rt = makeNode(ResTarget);

			cr->fields = list_make1(makeString(pstrdup(strVal(lfirst(lc)))));
			cr->location = -1;
			rt->val = (Node *) cr;
			rt->location = -1;
			sel->targetList = lappend(sel->targetList, rt);
		}
	from = makeRangeVar(get_namespace_name(get_rel_namespace(relid)),
						get_rel_name(relid), -1);
	from->inh = false;			/* COPY TO reads no children */
	sel->fromClause = list_make1(from);

	ncs = makeNode(CopyStmt);
	ncs->query = (Node *) sel;
	ncs->is_from = false;
	ncs->is_program = cs->is_program;
	ncs->filename = cs->filename;
	ncs->options = cs->options;
	np = makeNode(PlannedStmt);
	memcpy(np, *pstmt, sizeof(PlannedStmt));
	np->utilityStmt = (Node *) ncs;
	*pstmt = np;
	st->pstmt = np;
}

/*
 * For agentgate.explain(): the masks roleid's statement q would get, as
 * "schema.table.column: method (mask id)".
 */
List *
ag_mask_describe(Query *q, Oid roleid)
{
	MaskCtx		cx;

	if (!ag_masks_any_for(roleid))
		return NIL;
	cx.roleid = roleid;
	cx.apply = false;
	cx.described = NIL;
	mask_query(q, &cx);
	return cx.described;
}

/*
 * For the audit row: the masked columns (as schema.table.column) a
 * planned statement of this session reads, or would read in monitor mode.
 */
List *
ag_mask_read_columns(PlannedStmt *pstmt)
{
	List	   *out = NIL;
	ListCell   *lc;

	if (pstmt == NULL || !masking_now())
		return NIL;
	foreach(lc, pstmt->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		const AgMaskRel *mr;
		bool		whole;
		int			i;

		if (rte->rtekind != RTE_RELATION || !(rte->requiredPerms & ACL_SELECT))
			continue;
		mr = ag_masks_for_rel(ag_session_role(), rte->relid);
		if (mr == NULL)
			continue;
		whole = bms_is_member(InvalidAttrNumber - FirstLowInvalidHeapAttributeNumber,
							  rte->selectedCols);
		for (i = 0; i < mr->ncols; i++)
		{
			char	   *name;

			if (!whole &&
				!bms_is_member(mr->cols[i].attnum - FirstLowInvalidHeapAttributeNumber,
							   rte->selectedCols))
				continue;
			name = qualified_column(rte->relid, mr->cols[i].colname);
			if (!list_member(out, makeString(name)))
				out = lappend(out, makeString(name));
		}
	}
	return out;
}

void
ag_mask_init(void)
{
	RegisterXactCallback(mask_xact_callback, NULL);
	ag_mask_methods_init();
	ag_mask_catalog_init();
}
