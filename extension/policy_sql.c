/*-------------------------------------------------------------------------
 *
 * policy_sql.c
 *	  SQL-callable side of the statement policy: the rules table's
 *	  triggers, agentgate.command_tags() and agentgate.explain().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "agentgate.h"
#include "mask.h"
#include "policy.h"

PG_FUNCTION_INFO_V1(agentgate_rules_validate);
PG_FUNCTION_INFO_V1(agentgate_rules_changed);
PG_FUNCTION_INFO_V1(agentgate_command_tags);
PG_FUNCTION_INFO_V1(agentgate_explain);

/* The decoder's flaws, each refused as it is found. */
static void
bad_rule(const AgRule *r, const AgRuleFlaw *f, void *arg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid agentgate rule: %s", f->msg),
			 f->detail ? errdetail("%s", f->detail) : 0,
			 f->hint ? errhint("%s", f->hint) : 0));
}

/*
 * BEFORE INSERT OR UPDATE trigger on agentgate.rules: refuse rules that
 * could not mean what their author thinks (the checks are the decoder's,
 * policy_rule_tuple.c, so that the cache reads what was checked), and
 * store commands and fingerprints in canonical form.
 */
Datum
agentgate_rules_validate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	AgRuleColumns cols;
	AgRule		rule;
	Datum	   *values;
	bool	   *isnull;
	int			attnums[2];
	Datum		newvals[2];
	bool		newnulls[2];
	int			nrepl = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "agentgate_rules_validate must be a BEFORE ROW trigger");
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);

	ag_rule_columns(desc, &cols);
	values = palloc(sizeof(Datum) * desc->natts);
	isnull = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tup, desc, values, isnull);
	ag_rule_from_tuple(&cols, values, isnull, &rule, bad_rule, NULL);

	if (!isnull[cols.commands])
	{
		Datum	   *elems = palloc(sizeof(Datum) * rule.ncommands);
		int			i;

		for (i = 0; i < rule.ncommands; i++)
			elems[i] = CStringGetTextDatum(rule.commands[i]);
		attnums[nrepl] = cols.commands + 1;
		newvals[nrepl] = PointerGetDatum(construct_array(elems, rule.ncommands,
														 TEXTOID, -1, false,
														 TYPALIGN_INT));
		newnulls[nrepl] = false;
		nrepl++;
	}
	if (rule.fingerprint != NULL)
	{
		attnums[nrepl] = cols.fingerprint + 1;
		newvals[nrepl] = CStringGetTextDatum(rule.fingerprint);
		newnulls[nrepl] = false;
		nrepl++;
	}

	if (nrepl > 0)
		tup = heap_modify_tuple_by_cols(tup, desc, nrepl, attnums, newvals, newnulls);
	return PointerGetDatum(tup);
}

/*
 * AFTER ... FOR EACH STATEMENT trigger on agentgate.rules.  Row changes
 * send no relcache invalidation by themselves; this one reaches every
 * backend when the change commits (and this backend at once), and their
 * caches reload on their next statement.
 */
Datum
agentgate_rules_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "agentgate_rules_changed must be a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}

/* agentgate.command_tags(): every tag a rule may name, with its class. */
Datum
agentgate_command_tags(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			t;

	InitMaterializedSRF(fcinfo, 0);
	for (t = 0; t < AG_NUM_TAGS; t++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (t == CMDTAG_UNKNOWN)
			continue;
		values[0] = CStringGetTextDatum(ag_tag_name(t));
		values[1] = CStringGetTextDatum(ag_class_name(ag_tag_class(t)));
		values[2] = BoolGetDatum(ag_tag_is_decided(t));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 *		agentgate.explain(role, sql)
 * ----------------------------------------------------------------
 */

typedef struct ExplainAcc
{
	AgDecision	decision;
	int64		rule_id;
	char	   *reason;
	bool		any;
	bool		error;			/* the statement could not be analysed */
	List	   *masks;			/* the masks it would get (mask.c) */
} ExplainAcc;

static char *
explain_what(AgEvent *ev)
{
	char	   *what = ag_describe_event(ev);

	if (ev->utility && OidIsValid(ev->relid))
		what = psprintf("%s %s", what,
						quote_qualified_identifier(get_namespace_name(get_rel_namespace(ev->relid)),
												   get_rel_name(ev->relid)));
	return what;
}

static void
explain_collect(AgEvent *ev, AgOutcome *out, void *arg)
{
	ExplainAcc *acc = (ExplainAcc *) arg;
	AgDecision	dec = out->decision;

	if (!acc->any || dec > acc->decision)
	{
		acc->any = true;
		acc->decision = dec;
		acc->rule_id = out->by_default ? 0 :
			(dec == AG_DECISION_LOGGED && out->log_rule_id ? out->log_rule_id : out->rule_id);
		if (out->by_default)
			acc->reason = psprintf("%s: no rule matches; default action %s",
								   explain_what(ev),
								   dec == AG_DECISION_BLOCKED ? "block" : "allow");
		else
			acc->reason = psprintf("%s: %s", explain_what(ev),
								   out->reason ? out->reason : "");
	}
	if (out->deferred != NIL && dec != AG_DECISION_BLOCKED)
	{
		AgDeferred *d = (AgDeferred *) linitial(out->deferred);

		acc->reason = psprintf("%s (rule %lld applies if more than " INT64_FORMAT " rows)",
							   acc->reason, (long long) d->rule_id, d->max_rows);
	}
}

static bool
collect_funcs(Node *node, List **funcs)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
		*funcs = list_append_unique_oid(*funcs, ((FuncExpr *) node)->funcid);
	else if (IsA(node, OpExpr) || IsA(node, DistinctExpr) || IsA(node, NullIfExpr))
	{
		set_opfuncid((OpExpr *) node);
		*funcs = list_append_unique_oid(*funcs, ((OpExpr *) node)->opfuncid);
	}
	else if (IsA(node, Aggref))
		*funcs = list_append_unique_oid(*funcs, ((Aggref *) node)->aggfnoid);
	else if (IsA(node, WindowFunc))
		*funcs = list_append_unique_oid(*funcs, ((WindowFunc *) node)->winfnoid);
	else if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_funcs, funcs, 0);
	return expression_tree_walker(node, collect_funcs, funcs);
}

/* Analyse, rewrite and plan one statement, and decide it for roleid. */
static void
explain_one(RawStmt *rs, const char *sql, Oid roleid, ExplainAcc *acc)
{
	List	   *queries;
	ListCell   *lc2;

	queries = pg_analyze_and_rewrite_fixedparams(rs, sql, NULL, 0, NULL);
	foreach(lc2, queries)
	{
		Query	   *q = lfirst_node(Query, lc2);
		PlannedStmt *pstmt;

		if (q->commandType == CMD_UTILITY)
		{
			pstmt = makeNode(PlannedStmt);
			pstmt->commandType = CMD_UTILITY;
			pstmt->canSetTag = q->canSetTag;
			pstmt->utilityStmt = q->utilityStmt;
			pstmt->stmt_location = rs->stmt_location;
			pstmt->stmt_len = rs->stmt_len;
		}
		else
		{
			List	   *funcs = NIL;
			ListCell   *lc3;

			collect_funcs((Node *) q, &funcs);
			acc->masks = list_concat(acc->masks, ag_mask_describe(q, roleid));
			pstmt = pg_plan_query(q, sql, CURSOR_OPT_PARALLEL_OK, NULL);
			foreach(lc3, funcs)
				ag_policy_collect_call(lfirst_oid(lc3), roleid,
									   explain_collect, acc);
		}
		ag_policy_collect(pstmt, sql, roleid, explain_collect, acc);
	}
}

/*
 * Each statement in a subtransaction: one that cannot be analysed (a table
 * an earlier statement of the text would create...) is reported, and the
 * others are still explained.  A function of its own so that nothing the
 * caller's loop changes lives across the PG_TRY.
 */
static void
explain_in_subxact(RawStmt *rs, const char *sql, Oid roleid, ExplainAcc *acc)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		explain_one(rs, sql, roleid, acc);
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		acc->any = true;
		acc->decision = AG_DECISION_NONE;
		acc->rule_id = 0;
		acc->reason = psprintf("cannot be decided in advance: %s", edata->message);
		acc->error = true;
	}
	PG_END_TRY();
}

Datum
agentgate_explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Name		role;
	char	   *sql;
	Oid			roleid;
	List	   *raw;
	ListCell   *lc;
	int			stmtno = 0;
	bool		is_governed;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("agentgate.explain needs a role and a statement")));
	if (ag_session_is_governed())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: agent roles may not call agentgate.explain"),
				 errhint("Ask a database administrator to explain the policy for you.")));
	role = PG_GETARG_NAME(0);
	sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	roleid = get_role_oid(NameStr(*role), false);
	is_governed = ag_role_is_governed(roleid);

	InitMaterializedSRF(fcinfo, 0);
	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		ExplainAcc	acc;
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		stmtno++;
		memset(&acc, 0, sizeof(acc));
		if (!is_governed)
		{
			acc.decision = AG_DECISION_NONE;
			acc.reason = psprintf("role \"%s\" is not governed (not a member of %s)",
								  NameStr(*role), AG_AGENT_ROLE);
		}
		else
		{
			explain_in_subxact(rs, sql, roleid, &acc);
			if (!acc.any)
			{
				acc.decision = AG_DECISION_NONE;
				acc.reason = "not decided (transaction control is always allowed)";
			}
		}
		values[0] = Int32GetDatum(stmtno);
		values[1] = CStringGetTextDatum(GetCommandTagName(CreateCommandTag(rs->stmt)));
		values[2] = CStringGetTextDatum(acc.error ? "unknown" :
										acc.decision == AG_DECISION_NONE ? "allowed" :
										ag_decision_name(acc.decision));
		if (acc.rule_id != 0)
			values[3] = Int64GetDatum(acc.rule_id);
		else
			nulls[3] = true;
		if (acc.reason)
			values[4] = CStringGetTextDatum(acc.reason);
		else
			nulls[4] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

		/* then one row per masked column the statement reads */
		if (!acc.error)
		{
			ListCell   *lc2;

			foreach(lc2, acc.masks)
			{
				values[2] = CStringGetTextDatum("masked");
				nulls[3] = true;
				values[4] = CStringGetTextDatum((char *) lfirst(lc2));
				nulls[4] = false;
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
		}
	}
	return (Datum) 0;
}
