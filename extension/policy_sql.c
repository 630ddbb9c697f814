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
#include "executor/spi.h"
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
#include "utils/syscache.h"

#include "agentgate.h"
#include "pgquery.h"
#include "mask.h"
#include "policy.h"

PG_FUNCTION_INFO_V1(agentgate_rules_validate);
PG_FUNCTION_INFO_V1(agentgate_rules_changed);
PG_FUNCTION_INFO_V1(agentgate_command_tags);
PG_FUNCTION_INFO_V1(agentgate_explain);

static void
bad_rule(const char *msg, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid agentgate rule: %s", msg),
			 detail ? errdetail("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

static int
fnum(TupleDesc desc, const char *name)
{
	int			n = SPI_fnumber(desc, name);

	if (n <= 0)
		elog(ERROR, "agentgate.rules has no column \"%s\"", name);
	return n;
}

/*
 * BEFORE INSERT OR UPDATE trigger on agentgate.rules: refuse rules that
 * could not mean what their author thinks, and store commands and
 * fingerprints in canonical form.
 */
Datum
agentgate_rules_validate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		d;
	bool		isnull;
	Oid			relid = InvalidOid;
	Bitmapset  *tags = NULL;
	uint32		classes = 0;
	bool		has_commands = false;
	AgCondition cond = AG_COND_NONE;
	int			attnums[2];
	Datum		newvals[2];
	bool		newnulls[2];
	int			nrepl = 0;
	char	   *action;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "agentgate_rules_validate must be a BEFORE ROW trigger");
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);

	/* action */
	d = SPI_getbinval(tup, desc, fnum(desc, "action"), &isnull);
	action = isnull ? "" : TextDatumGetCString(d);
	if (strcmp(action, "approve") == 0)
		bad_rule("action \"approve\" is not available yet",
				 NULL, "Use \"block\" until approvals are installed.");
	if (strcmp(action, "allow") != 0 && strcmp(action, "block") != 0 &&
		strcmp(action, "log") != 0)
		bad_rule(psprintf("unknown action \"%s\"", action), NULL,
				 "An action is one of allow, block or log.");

	/* applies_to */
	d = SPI_getbinval(tup, desc, fnum(desc, "applies_to"), &isnull);
	if (isnull)
		bad_rule("applies_to must name a role", NULL, NULL);
	if (!SearchSysCacheExists1(AUTHOID, d))
		bad_rule(psprintf("role with OID %u does not exist", DatumGetObjectId(d)), NULL, NULL);

	/* commands: tags or classes, stored upper-case and canonical */
	d = SPI_getbinval(tup, desc, fnum(desc, "commands"), &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(d);
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;
		char	   *bad;

		if (ARR_NDIM(arr) > 1)
			bad_rule("commands must be a one-dimensional array", NULL, NULL);
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		bad = ag_parse_commands(elems, nulls, n, &tags, &classes);
		if (bad != NULL)
			bad_rule(psprintf("unknown command \"%s\"", bad),
					 "A command is a command tag such as SELECT, DELETE, DROP TABLE or ALTER SYSTEM, or a class: READ, WRITE, DDL, ROLE, FUNCTION, MISC.",
					 "SELECT * FROM agentgate.command_tags() lists them all.");
		if (n == 0)
			bad_rule("commands is empty", NULL,
					 "Use NULL for a rule that applies to every command.");
		for (i = 0; i < n; i++)
		{
			char	   *name = ag_normalize_command(TextDatumGetCString(elems[i]));

			if (ag_class_lookup(name) == AG_CLASS_NONE)
				name = (char *) ag_tag_name(ag_tag_lookup(name));
			elems[i] = CStringGetTextDatum(name);
		}
		attnums[nrepl] = fnum(desc, "commands");
		newvals[nrepl] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1,
														 false, TYPALIGN_INT));
		newnulls[nrepl] = false;
		nrepl++;
		has_commands = true;
	}

	/* relation and schema */
	d = SPI_getbinval(tup, desc, fnum(desc, "relation"), &isnull);
	if (!isnull)
	{
		relid = DatumGetObjectId(d);
		if (get_rel_relkind(relid) == '\0')
			bad_rule(psprintf("relation with OID %u does not exist", relid), NULL, NULL);
	}
	d = SPI_getbinval(tup, desc, fnum(desc, "schema"), &isnull);
	if (!isnull)
	{
		if (OidIsValid(relid))
			bad_rule("a rule names a relation or a schema, not both", NULL, NULL);
		if (!SearchSysCacheExists1(NAMESPACEOID, d))
			bad_rule(psprintf("schema with OID %u does not exist", DatumGetObjectId(d)), NULL, NULL);
	}

	/* columns */
	d = SPI_getbinval(tup, desc, fnum(desc, "columns"), &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		if (!OidIsValid(relid))
			bad_rule("columns need a relation", NULL,
					 "Set relation to the table or view the columns belong to.");
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			bad_rule("columns is empty", NULL, "Use NULL for every column.");
		for (i = 0; i < n; i++)
		{
			char	   *col;

			if (nulls[i])
				bad_rule("columns contains NULL", NULL, NULL);
			col = TextDatumGetCString(elems[i]);
			if (get_attnum(relid, col) <= 0)
				bad_rule(psprintf("column \"%s\" of relation \"%s\" does not exist",
								  col, get_rel_name(relid)), NULL, NULL);
		}
	}

	/* functions */
	d = SPI_getbinval(tup, desc, fnum(desc, "functions"), &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		if (OidIsValid(relid))
			bad_rule("a rule names a relation or functions, not both", NULL, NULL);
		deconstruct_array(DatumGetArrayTypeP(d), REGPROCEDUREOID, sizeof(Oid),
						  true, TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			bad_rule("functions is empty", NULL, "Use NULL for no function.");
		for (i = 0; i < n; i++)
			if (nulls[i] || !SearchSysCacheExists1(PROCOID, elems[i]))
				bad_rule("functions names a function that does not exist", NULL, NULL);
	}

	/* condition */
	d = SPI_getbinval(tup, desc, fnum(desc, "condition"), &isnull);
	if (!isnull)
	{
		bool		ok;
		char	   *s = TextDatumGetCString(d);

		cond = ag_condition_lookup(s, &ok);
		if (!ok)
			bad_rule(psprintf("unknown condition \"%s\"", s), NULL,
					 "A condition is no_where, not_owner or untrusted_language; use max_rows for row limits.");
	}
	if (cond == AG_COND_NO_WHERE && has_commands)
	{
		Bitmapset  *allowed = NULL;

		allowed = bms_add_member(allowed, CMDTAG_UPDATE);
		allowed = bms_add_member(allowed, CMDTAG_DELETE);
		allowed = bms_add_member(allowed, CMDTAG_MERGE);
		if ((classes & ~(1U << AG_CLASS_WRITE)) != 0 || !bms_is_subset(tags, allowed))
			bad_rule("condition no_where applies only to UPDATE, DELETE, MERGE or WRITE",
					 NULL, NULL);
	}

	/* max_rows */
	d = SPI_getbinval(tup, desc, fnum(desc, "max_rows"), &isnull);
	if (!isnull && DatumGetInt64(d) < 0)
		bad_rule("max_rows must not be negative", NULL, NULL);

	/* fingerprint: 16 hex digits, stored lower-case */
	d = SPI_getbinval(tup, desc, fnum(desc, "fingerprint"), &isnull);
	if (!isnull)
	{
		char	   *s = TextDatumGetCString(d);
		int			i;

		if (strlen(s) != AG_PGQ_FINGERPRINT_LEN)
			bad_rule(psprintf("fingerprint \"%s\" is not %d hexadecimal digits",
							  s, AG_PGQ_FINGERPRINT_LEN), NULL,
					 "Use agentgate.fingerprint('<statement>') to compute it.");
		for (i = 0; s[i]; i++)
		{
			if (!isxdigit((unsigned char) s[i]))
				bad_rule(psprintf("fingerprint \"%s\" is not %d hexadecimal digits",
								  s, AG_PGQ_FINGERPRINT_LEN), NULL,
						 "Use agentgate.fingerprint('<statement>') to compute it.");
			s[i] = pg_tolower((unsigned char) s[i]);
		}
		attnums[nrepl] = fnum(desc, "fingerprint");
		newvals[nrepl] = CStringGetTextDatum(s);
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
