/*-------------------------------------------------------------------------
 *
 * classify.c
 *	  Command tags, their classes, and the events of a utility statement.
 *
 * Tags are PostgreSQL's own command tags (CreateCommandTag() names every
 * statement the server can run, so an unknown statement cannot slip past
 * as "something else"), plus a few finer tags of ours for forms a DBA wants
 * to name on their own: COPY PROGRAM, COPY FILE, SET ROLE, SET SESSION
 * AUTHORIZATION, SET AGENTGATE, DROP COLUMN and FUNCTION CALL.
 *
 * The no-WHERE test reads the finished plan, not the statement text: after
 * the rewriter and planner every view, rule action, CTE and constant-true
 * WHERE has been resolved, and a cached plan carries the same answer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "policy.h"

static const char *const extra_tag_names[] = {
	"FUNCTION CALL",
	"COPY PROGRAM",
	"COPY FILE",
	"SET ROLE",
	"SET SESSION AUTHORIZATION",
	"SET AGENTGATE",
	"DROP COLUMN"
};

static const char *const class_names[AG_NUM_CLASSES] = {
	"", "READ", "WRITE", "DDL", "ROLE", "FUNCTION", "MISC"
};

const char *
ag_tag_name(int tag)
{
	if (tag >= 0 && tag < COMMAND_TAG_NEXTTAG)
		return GetCommandTagName((CommandTag) tag);
	if (tag >= COMMAND_TAG_NEXTTAG && tag < AG_NUM_TAGS)
		return extra_tag_names[tag - COMMAND_TAG_NEXTTAG];
	return "???";
}

/*
 * ag_tag_lookup maps a tag name, already upper-cased with single spaces, to
 * a tag number, or -1.  TRUNCATE is accepted for PostgreSQL's TRUNCATE TABLE.
 */
int
ag_tag_lookup(const char *name)
{
	CommandTag	t;
	int			i;

	if (strcmp(name, "TRUNCATE") == 0)
		return CMDTAG_TRUNCATE_TABLE;
	for (i = 0; i < lengthof(extra_tag_names); i++)
		if (strcmp(name, extra_tag_names[i]) == 0)
			return COMMAND_TAG_NEXTTAG + i;
	t = GetCommandTagEnum(name);
	if (t == CMDTAG_UNKNOWN)
		return -1;
	return (int) t;
}

const char *
ag_class_name(AgClass cls)
{
	return class_names[cls];
}

AgClass
ag_class_lookup(const char *name)
{
	int			i;

	for (i = 1; i < AG_NUM_CLASSES; i++)
		if (strcmp(name, class_names[i]) == 0)
			return (AgClass) i;
	return AG_CLASS_NONE;
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The class of a tag; COPY is READ or WRITE by direction (see below). */
AgClass
ag_tag_class(int tag)
{
	const char *n;

	switch (tag)
	{
		case CMDTAG_SELECT:
		case CMDTAG_SELECT_FOR_KEY_SHARE:
		case CMDTAG_SELECT_FOR_NO_KEY_UPDATE:
		case CMDTAG_SELECT_FOR_SHARE:
		case CMDTAG_SELECT_FOR_UPDATE:
		case CMDTAG_COPY:
			return AG_CLASS_READ;
		case CMDTAG_INSERT:
		case CMDTAG_UPDATE:
		case CMDTAG_DELETE:
		case CMDTAG_MERGE:
		case CMDTAG_TRUNCATE_TABLE:
		case CMDTAG_COPY_FROM:
			return AG_CLASS_WRITE;
		case CMDTAG_CREATE_ROLE:
		case CMDTAG_ALTER_ROLE:
		case CMDTAG_DROP_ROLE:
		case CMDTAG_GRANT:
		case CMDTAG_REVOKE:
		case CMDTAG_GRANT_ROLE:
		case CMDTAG_REVOKE_ROLE:
		case CMDTAG_ALTER_DEFAULT_PRIVILEGES:
		case CMDTAG_SECURITY_LABEL:
		case CMDTAG_REASSIGN_OWNED:
		case CMDTAG_DROP_OWNED:
		case AG_TAG_SET_ROLE:
		case AG_TAG_SET_SESSION_AUTH:
			return AG_CLASS_ROLE;
		case CMDTAG_DO:
		case CMDTAG_CALL:
		case AG_TAG_FUNCTION_CALL:
			return AG_CLASS_FUNCTION;
		case CMDTAG_ALTER_SYSTEM:
		case AG_TAG_COPY_PROGRAM:
		case AG_TAG_COPY_FILE:
		case AG_TAG_SET_AGENTGATE:
			return AG_CLASS_MISC;
		default:
			break;
	}
	n = ag_tag_name(tag);
	if (starts_with(n, "CREATE ") || starts_with(n, "ALTER ") ||
		starts_with(n, "DROP ") || strcmp(n, "COMMENT") == 0 ||
		strcmp(n, "SELECT INTO") == 0 ||
		strcmp(n, "REFRESH MATERIALIZED VIEW") == 0 ||
		strcmp(n, "IMPORT FOREIGN SCHEMA") == 0)
		return AG_CLASS_DDL;
	return AG_CLASS_MISC;
}

/*
 * Statements that are never decided: ending or shaping the transaction,
 * and releasing what an earlier (decided) statement created.  Refusing
 * ROLLBACK would only leave the session stuck.
 */
bool
ag_tag_is_decided(int tag)
{
	switch (tag)
	{
		case CMDTAG_BEGIN:
		case CMDTAG_START_TRANSACTION:
		case CMDTAG_COMMIT:
		case CMDTAG_ROLLBACK:
		case CMDTAG_SAVEPOINT:
		case CMDTAG_RELEASE:
		case CMDTAG_CLOSE:
		case CMDTAG_CLOSE_CURSOR:
		case CMDTAG_CLOSE_CURSOR_ALL:
		case CMDTAG_DEALLOCATE:
		case CMDTAG_DEALLOCATE_ALL:
		case CMDTAG_FETCH:
		case CMDTAG_MOVE:
		case CMDTAG_SET_CONSTRAINTS:
			return false;
		default:
			return true;
	}
}

int
ag_operation_tag(CmdType op)
{
	switch (op)
	{
		case CMD_SELECT:
			return CMDTAG_SELECT;
		case CMD_INSERT:
			return CMDTAG_INSERT;
		case CMD_UPDATE:
			return CMDTAG_UPDATE;
		case CMD_DELETE:
			return CMDTAG_DELETE;
		case CMD_MERGE:
			return CMDTAG_MERGE;
		default:
			return CMDTAG_UNKNOWN;
	}
}

/* ----------------------------------------------------------------
 *		Utility statements
 * ----------------------------------------------------------------
 */

static AgEvent *
new_event(int tag, AgClass cls, const char *sql, int sql_len)
{
	AgEvent    *ev = palloc(sizeof(AgEvent));

	ag_event_init(ev, tag, cls);
	ev->utility = true;
	ev->sql = sql;
	ev->sql_len = sql_len;
	return ev;
}

static void
add_tag(AgEvent *ev, int tag)
{
	if (ev->ntags < AG_EVENT_MAX_TAGS)
		ev->tags[ev->ntags++] = tag;
}

/* Relation named by rv, or InvalidOid when it does not exist (yet). */
static Oid
lookup_rel(RangeVar *rv)
{
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelid(rv, NoLock, true);
}

static bool
language_untrusted(const char *lang)
{
	HeapTuple	tup;
	bool		untrusted = false;

	tup = SearchSysCache1(LANGNAME, CStringGetDatum(lang));
	if (HeapTupleIsValid(tup))
	{
		untrusted = !((Form_pg_language) GETSTRUCT(tup))->lanpltrusted;
		ReleaseSysCache(tup);
	}
	return untrusted;
}

/*
 * A function's "SET role = ..." clause is a SET ROLE that runs at every
 * call; CREATE/ALTER FUNCTION with one is decided as SET ROLE too.
 */
static bool
options_set_role(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "set") == 0 && d->arg && IsA(d->arg, VariableSetStmt))
		{
			VariableSetStmt *v = (VariableSetStmt *) d->arg;

			if (v->kind == VAR_SET_VALUE && v->name &&
				(pg_strcasecmp(v->name, "role") == 0 ||
				 pg_strcasecmp(v->name, "session_authorization") == 0))
				return true;
		}
	}
	return false;
}

static AgEvent *
set_role_event(const char *sql, int sql_len)
{
	AgEvent    *ev = new_event(CMDTAG_SET, AG_CLASS_ROLE, sql, sql_len);

	add_tag(ev, AG_TAG_SET_ROLE);
	return ev;
}

static bool
is_relation_object(ObjectType t)
{
	switch (t)
	{
		case OBJECT_TABLE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_INDEX:
		case OBJECT_SEQUENCE:
		case OBJECT_FOREIGN_TABLE:
			return true;
		default:
			return false;
	}
}

/*
 * ag_utility_events returns the events to decide for a utility statement,
 * for role `who`.  *decide is set false for statements that are never
 * decided (transaction control...).  An unknown statement gets the tag
 * "???" and is refused by the caller.
 */
List *
ag_utility_events(PlannedStmt *pstmt, const char *sql, int sql_len,
				  bool *decide, Oid who)
{
	Node	   *parsetree = pstmt->utilityStmt;
	int			tag = (int) CreateCommandTag(parsetree);
	AgEvent    *ev;
	List	   *events = NIL;

	*decide = true;
	if (!ag_tag_is_decided(tag))
	{
		*decide = false;
		return NIL;
	}

	switch (nodeTag(parsetree))
	{
		case T_VariableSetStmt:
			{
				VariableSetStmt *s = (VariableSetStmt *) parsetree;
				bool		resetting = (s->kind == VAR_RESET ||
										 s->kind == VAR_SET_DEFAULT);

				ev = new_event(tag, AG_CLASS_MISC, sql, sql_len);
				if (s->name && pg_strcasecmp(s->name, "role") == 0)
				{
					/* back to the login identity: never more power */
					if (resetting)
					{
						*decide = false;
						return NIL;
					}
					add_tag(ev, AG_TAG_SET_ROLE);
					ev->cls = AG_CLASS_ROLE;
				}
				else if (s->name && pg_strcasecmp(s->name, "session_authorization") == 0)
				{
					if (resetting)
					{
						*decide = false;
						return NIL;
					}
					add_tag(ev, AG_TAG_SET_SESSION_AUTH);
					ev->cls = AG_CLASS_ROLE;
				}
				else if (s->name && pg_strncasecmp(s->name, AG_SCHEMA ".",
												   strlen(AG_SCHEMA) + 1) == 0)
					add_tag(ev, AG_TAG_SET_AGENTGATE);
				events = lappend(events, ev);
				break;
			}
		case T_CopyStmt:
			{
				CopyStmt   *s = (CopyStmt *) parsetree;

				ev = new_event(tag, s->is_from ? AG_CLASS_WRITE : AG_CLASS_READ,
							   sql, sql_len);
				if (s->is_from)
					add_tag(ev, CMDTAG_COPY_FROM);
				if (s->is_program)
					add_tag(ev, AG_TAG_COPY_PROGRAM);
				else if (s->filename != NULL)
					add_tag(ev, AG_TAG_COPY_FILE);
				ev->relid = lookup_rel(s->relation);
				events = lappend(events, ev);
				break;
			}
		case T_TruncateStmt:
			{
				TruncateStmt *s = (TruncateStmt *) parsetree;
				ListCell   *lc;

				foreach(lc, s->relations)
				{
					RangeVar   *rv = lfirst_node(RangeVar, lc);
					Oid			relid = lookup_rel(rv);
					List	   *rels;
					ListCell   *lc2;

					/* without ONLY, the children are emptied too */
					if (OidIsValid(relid) && rv->inh)
						rels = find_all_inheritors(relid, NoLock, NULL);
					else
						rels = list_make1_oid(relid);
					foreach(lc2, rels)
					{
						ev = new_event(tag, AG_CLASS_WRITE, sql, sql_len);
						ev->relid = lfirst_oid(lc2);
						events = lappend(events, ev);
					}
				}
				if (events == NIL)
					events = lappend(events, new_event(tag, AG_CLASS_WRITE, sql, sql_len));
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *s = (DropStmt *) parsetree;
				ListCell   *lc;

				if (is_relation_object(s->removeType))
				{
					foreach(lc, s->objects)
					{
						RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));

						ev = new_event(tag, AG_CLASS_DDL, sql, sql_len);
						ev->relid = lookup_rel(rv);
						events = lappend(events, ev);
					}
				}
				if (events == NIL)
					events = lappend(events, new_event(tag, AG_CLASS_DDL, sql, sql_len));
				break;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *s = (AlterTableStmt *) parsetree;

				ListCell   *lc;

				ev = new_event(tag, AG_CLASS_DDL, sql, sql_len);
				ev->relid = lookup_rel(s->relation);

				/*
				 * Dropping a column (or a composite type's attribute, which
				 * cascades to its typed tables) destroys stored data like a
				 * DROP does; name it so the DROP baseline covers it.
				 */
				foreach(lc, s->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_DropColumn)
					{
						add_tag(ev, AG_TAG_DROP_COLUMN);
						break;
					}
				}
				events = lappend(events, ev);
				break;
			}
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_AlterOwnerStmt:
		case T_IndexStmt:
		case T_CreateTrigStmt:
		case T_RuleStmt:
		case T_CreatePolicyStmt:
		case T_AlterPolicyStmt:
			{
				RangeVar   *rv = NULL;

				switch (nodeTag(parsetree))
				{
					case T_RenameStmt:
						rv = ((RenameStmt *) parsetree)->relation;
						break;
					case T_AlterObjectSchemaStmt:
						rv = ((AlterObjectSchemaStmt *) parsetree)->relation;
						break;
					case T_AlterOwnerStmt:
						rv = ((AlterOwnerStmt *) parsetree)->relation;
						break;
					case T_IndexStmt:
						rv = ((IndexStmt *) parsetree)->relation;
						break;
					case T_CreateTrigStmt:
						rv = ((CreateTrigStmt *) parsetree)->relation;
						break;
					case T_RuleStmt:
						rv = ((RuleStmt *) parsetree)->relation;
						break;
					case T_CreatePolicyStmt:
						rv = ((CreatePolicyStmt *) parsetree)->table;
						break;
					case T_AlterPolicyStmt:
						rv = ((AlterPolicyStmt *) parsetree)->table;
						break;
					default:
						break;
				}
				ev = new_event(tag, ag_tag_class(tag), sql, sql_len);
				ev->relid = lookup_rel(rv);
				events = lappend(events, ev);
				break;
			}
		case T_CreateFunctionStmt:
			{
				CreateFunctionStmt *s = (CreateFunctionStmt *) parsetree;
				ListCell   *lc;
				const char *lang = NULL;

				foreach(lc, s->options)
				{
					DefElem    *d = lfirst_node(DefElem, lc);

					if (strcmp(d->defname, "language") == 0)
						lang = defGetString(d);
				}
				if (lang == NULL && s->sql_body != NULL)
					lang = "sql";
				ev = new_event(tag, AG_CLASS_DDL, sql, sql_len);
				ev->untrusted_language = lang != NULL && language_untrusted(lang);
				events = lappend(events, ev);
				if (options_set_role(s->options))
					events = lappend(events, set_role_event(sql, sql_len));
				break;
			}
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *s = (AlterFunctionStmt *) parsetree;

				ev = new_event(tag, AG_CLASS_DDL, sql, sql_len);
				events = lappend(events, ev);
				if (options_set_role(s->actions))
					events = lappend(events, set_role_event(sql, sql_len));
				break;
			}
		case T_ViewStmt:
			{
				ViewStmt   *s = (ViewStmt *) parsetree;

				ev = new_event(tag, AG_CLASS_DDL, sql, sql_len);
				if (s->replace)
					ev->relid = lookup_rel(s->view);
				events = lappend(events, ev);
				break;
			}
		case T_ExplainStmt:
			{
				ExplainStmt *s = (ExplainStmt *) parsetree;
				Query	   *q = (Query *) s->query;
				bool		analyze = false;
				ListCell   *lc;

				events = lappend(events, new_event(tag, AG_CLASS_MISC, sql, sql_len));
				foreach(lc, s->options)
				{
					DefElem    *d = lfirst_node(DefElem, lc);

					if (strcmp(d->defname, "analyze") == 0)
						analyze = defGetBoolean(d);
				}

				/*
				 * EXPLAIN ANALYZE runs its statement.  A query is decided by
				 * the executor hooks as it runs; CREATE TABLE AS runs with no
				 * ProcessUtility call of its own, so it is decided here.
				 */
				if (analyze && IsA(q, Query) && q->commandType == CMD_UTILITY &&
					IsA(q->utilityStmt, CreateTableAsStmt))
				{
					int			inner = (int) CreateCommandTag(q->utilityStmt);

					events = lappend(events, new_event(inner, AG_CLASS_DDL, sql, sql_len));
				}
				break;
			}
		default:
			events = lappend(events, new_event(tag, ag_tag_class(tag), sql, sql_len));
			break;
	}

	/* changing, extending or giving away what the agent does not own */
	{
		AgEvent    *first = (AgEvent *) linitial(events);
		Oid			relid = InvalidOid;

		if (ag_utility_not_owner(parsetree, who, &relid))
			first->not_owner = true;
		if (!OidIsValid(first->relid) && OidIsValid(relid))
			first->relid = relid;
	}
	return events;
}

/* ----------------------------------------------------------------
 *		UPDATE/DELETE/MERGE without a restricting WHERE
 * ----------------------------------------------------------------
 */

/*
 * Does this plan node itself filter rows?  Quals, index and TID
 * conditions, join conditions, a gating qual, a LIMIT.
 */
static bool
node_filters(Plan *plan)
{
	if (plan->qual != NIL)
		return true;
	switch (nodeTag(plan))
	{
		case T_Result:
			return ((Result *) plan)->resconstantqual != NULL;
		case T_IndexScan:
			return ((IndexScan *) plan)->indexqual != NIL;
		case T_IndexOnlyScan:
			return ((IndexOnlyScan *) plan)->indexqual != NIL;
		case T_BitmapIndexScan:
			return ((BitmapIndexScan *) plan)->indexqual != NIL;
		case T_BitmapHeapScan:
			return ((BitmapHeapScan *) plan)->bitmapqualorig != NIL;
		case T_TidScan:
			return ((TidScan *) plan)->tidquals != NIL;
		case T_TidRangeScan:
			return ((TidRangeScan *) plan)->tidrangequals != NIL;
		case T_NestLoop:
			return ((Join *) plan)->joinqual != NIL;
		case T_MergeJoin:
			return ((Join *) plan)->joinqual != NIL ||
				((MergeJoin *) plan)->mergeclauses != NIL;
		case T_HashJoin:
			return ((Join *) plan)->joinqual != NIL ||
				((HashJoin *) plan)->hashclauses != NIL;
		case T_Limit:
			return ((Limit *) plan)->limitCount != NULL;
		default:
			return false;
	}
}

static List *
plan_children(Plan *plan)
{
	List	   *kids = NIL;

	switch (nodeTag(plan))
	{
		case T_Append:
			kids = list_copy(((Append *) plan)->appendplans);
			break;
		case T_MergeAppend:
			kids = list_copy(((MergeAppend *) plan)->mergeplans);
			break;
		case T_BitmapAnd:
			kids = list_copy(((BitmapAnd *) plan)->bitmapplans);
			break;
		case T_BitmapOr:
			kids = list_copy(((BitmapOr *) plan)->bitmapplans);
			break;
		case T_SubqueryScan:
			kids = list_make1(((SubqueryScan *) plan)->subplan);
			break;
		default:
			break;
	}
	if (plan->lefttree)
		kids = lappend(kids, plan->lefttree);
	if (plan->righttree)
		kids = lappend(kids, plan->righttree);
	return kids;
}

/* The range table of the plan ag_plan_no_where is looking at. */
static List *nw_rtable = NIL;

/*
 * Is qual provably true for every row of relation relid scanned as
 * scanrelid, from the catalog alone: "col IS NOT NULL" on a NOT NULL or
 * system column (the planner also writes "col = col" that way)?  Such a
 * WHERE restricts nothing, like WHERE true, which the planner folds away.
 */
static bool
qual_always_true(Node *qual, Oid relid, Index scanrelid)
{
	NullTest   *nt;
	Var		   *var;
	HeapTuple	tup;
	bool		notnull;

	if (qual == NULL || !IsA(qual, NullTest))
		return false;
	nt = (NullTest *) qual;
	if (nt->nulltesttype != IS_NOT_NULL || nt->argisrow || nt->arg == NULL ||
		!IsA(nt->arg, Var))
		return false;
	var = (Var *) nt->arg;
	if (var->varno != scanrelid || var->varlevelsup != 0)
		return false;
	if (var->varattno < 0)
		return true;			/* system columns are never null */
	if (var->varattno == 0 || !OidIsValid(relid))
		return false;
	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
						  Int16GetDatum(var->varattno));
	if (!HeapTupleIsValid(tup))
		return false;
	notnull = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
	ReleaseSysCache(tup);
	return notnull;
}

/* Does this qual list (implicit AND) restrict the scan's rows at all? */
static bool
quals_restrict(List *quals, Oid relid, Index scanrelid)
{
	ListCell   *lc;

	foreach(lc, quals)
		if (!qual_always_true((Node *) lfirst(lc), relid, scanrelid))
			return true;
	return false;
}

/*
 * Does this scan of a modified relation filter rows?  As node_filters, but
 * quals that are always true do not count.
 */
static bool
scan_filters(Plan *plan)
{
	Index		scanrelid = ((Scan *) plan)->scanrelid;
	Oid			relid = InvalidOid;

	if (scanrelid > 0 && scanrelid <= list_length(nw_rtable))
		relid = rt_fetch(scanrelid, nw_rtable)->relid;
	if (quals_restrict(plan->qual, relid, scanrelid))
		return true;
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
			return false;
		case T_IndexScan:
			return ((IndexScan *) plan)->indexqual != NIL &&
				quals_restrict(((IndexScan *) plan)->indexqualorig, relid, scanrelid);
		case T_BitmapHeapScan:
			return ((BitmapHeapScan *) plan)->bitmapqualorig != NIL &&
				quals_restrict(((BitmapHeapScan *) plan)->bitmapqualorig, relid, scanrelid);
		default:
			return node_filters(plan);
	}
}

/* Does any node of this plan filter rows? */
static bool
plan_filters(Plan *plan)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	check_stack_depth();
	if (node_filters(plan))
		return true;
	foreach(lc, plan_children(plan))
		if (plan_filters((Plan *) lfirst(lc)))
			return true;
	return false;
}

/*
 * Is the scan of range-table entry rti restricted: does it, or a node
 * between it and the top of this plan, filter rows?  -1 when the plan has
 * no scan of rti.  A filter on another relation only (UPDATE t ... FROM o
 * WHERE o.id = 1, MERGE ... ON s.id = 1) does not restrict t.
 */
static int
scan_restricted(Plan *plan, Index rti)
{
	ListCell   *lc;

	if (plan == NULL)
		return -1;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_ForeignScan:
		case T_CustomScan:
			if (((Scan *) plan)->scanrelid == rti)
				return scan_filters(plan) ? 1 : 0;
			break;
		default:
			break;
	}
	foreach(lc, plan_children(plan))
	{
		int			r = scan_restricted((Plan *) lfirst(lc), rti);

		if (r >= 0)
			return (r == 1 || node_filters(plan)) ? 1 : 0;
	}
	return -1;
}

/*
 * Does this ModifyTable change rows of some result relation without a
 * restriction?  When no scan of a result relation is found (everything
 * pruned away, a foreign direct modify...), any filter in the plan counts.
 */
static bool
modify_unrestricted(ModifyTable *mt)
{
	ListCell   *lc;
	bool		found = false;

	foreach(lc, mt->resultRelations)
	{
		int			r = scan_restricted(mt->plan.lefttree, (Index) lfirst_int(lc));

		if (r == 0)
			return true;
		if (r == 1)
			found = true;
	}
	return !found && !plan_filters(mt->plan.lefttree);
}

static void
find_modify_tables(Plan *plan, bool *any, Bitmapset **rtis)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	check_stack_depth();
	if (IsA(plan, ModifyTable))
	{
		ModifyTable *mt = (ModifyTable *) plan;

		if ((mt->operation == CMD_UPDATE || mt->operation == CMD_DELETE ||
			 mt->operation == CMD_MERGE) && modify_unrestricted(mt))
		{
			*any = true;
			foreach(lc, mt->resultRelations)
				*rtis = bms_add_member(*rtis, lfirst_int(lc));
			if (mt->rootRelation > 0)
				*rtis = bms_add_member(*rtis, (int) mt->rootRelation);
			*rtis = bms_add_member(*rtis, (int) mt->nominalRelation);
		}
	}
	foreach(lc, plan_children(plan))
		find_modify_tables((Plan *) lfirst(lc), any, rtis);
}

/*
 * ag_plan_no_where: true when some UPDATE, DELETE or MERGE of the statement
 * (the main one or one in a WITH clause) has no restricting condition;
 * *rtis collects the range-table indexes of the relations it modifies.
 */
bool
ag_plan_no_where(PlannedStmt *pstmt, Bitmapset **rtis)
{
	bool		any = false;
	ListCell   *lc;

	nw_rtable = pstmt->rtable;
	find_modify_tables(pstmt->planTree, &any, rtis);
	/* data-modifying CTEs are subplans */
	foreach(lc, pstmt->subplans)
		find_modify_tables((Plan *) lfirst(lc), &any, rtis);
	nw_rtable = NIL;
	return any;
}
