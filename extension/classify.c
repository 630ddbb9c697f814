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
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "event.h"

static const char *const extra_tag_names[] = {
	"FUNCTION CALL",
	"COPY PROGRAM",
	"COPY FILE",
	"SET ROLE",
	"SET SESSION AUTHORIZATION",
	"SET AGENTGATE",
	"DROP COLUMN",
	"AGENTGATE CHANNEL",
	"DROP LARGE OBJECT",
	"WRITE LARGE OBJECT"
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

static AgClass tag_class_of(int tag);

/*
 * The class of a tag; COPY is READ or WRITE by direction (see below).
 * Remembered per tag: the rules cache asks for every tag and rule whenever
 * the role it serves changes, which in the shared pool is every turn.
 */
AgClass
ag_tag_class(int tag)
{
	static int8 known[AG_NUM_TAGS];	/* 0: not yet; else class + 1 */

	if (tag < 0 || tag >= AG_NUM_TAGS)
		return tag_class_of(tag);
	if (known[tag] == 0)
		known[tag] = (int8) (tag_class_of(tag) + 1);
	return (AgClass) (known[tag] - 1);
}

static AgClass
tag_class_of(int tag)
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
		case AG_TAG_DROP_LARGE_OBJECT:	/* a large object is data */
		case AG_TAG_WRITE_LARGE_OBJECT:
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

/* The plan ag_plan_no_where is looking at. */
static List *nw_rtable = NIL;
static List *nw_appendrels = NIL;

/*
 * What references "the target's rows": Vars of the modified relation's
 * range-table entries (the scanned child and, above an Append, its
 * parents), and executor Params a nested loop sets from such Vars.
 */
typedef struct NwTarget
{
	Bitmapset  *rtis;
	Bitmapset  *params;
} NwTarget;

static bool
refs_target_walker(Node *node, NwTarget *t)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		return v->varlevelsup == 0 &&
			((!IS_SPECIAL_VARNO(v->varno) && bms_is_member((int) v->varno, t->rtis)) ||
			 (v->varnosyn > 0 && bms_is_member((int) v->varnosyn, t->rtis)));
	}
	if (IsA(node, Param))
	{
		Param	   *p = (Param *) node;

		return p->paramkind == PARAM_EXEC && bms_is_member(p->paramid, t->params);
	}
	return expression_tree_walker(node, refs_target_walker, (void *) t);
}

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

	if (qual == NULL || !IsA(qual, NullTest) || scanrelid == 0)
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

/*
 * Does one condition restrict the target's rows?  Only a condition on
 * those rows can: one that references no Var of the target (WHERE
 * random() < 2, WHERE current_user = current_user, a $1 parameter, an
 * uncorrelated sub-select) lets every row through or none, whatever the
 * rows hold.  An AND restricts when one of its arms does, an OR only when
 * all of them do (WHERE id = 1 OR random() < 2 does not).  relid and
 * scanrelid are set when the condition is the target scan's own.
 */
static bool
cond_restricts(Node *qual, NwTarget *t, Oid relid, Index scanrelid)
{
	ListCell   *lc;

	if (qual == NULL)
		return false;
	check_stack_depth();
	if (IsA(qual, List))
	{
		foreach(lc, (List *) qual)
			if (cond_restricts((Node *) lfirst(lc), t, relid, scanrelid))
				return true;
		return false;
	}
	if (IsA(qual, BoolExpr) && ((BoolExpr *) qual)->boolop == AND_EXPR)
		return cond_restricts((Node *) ((BoolExpr *) qual)->args, t, relid, scanrelid);
	if (IsA(qual, BoolExpr) && ((BoolExpr *) qual)->boolop == OR_EXPR)
	{
		foreach(lc, ((BoolExpr *) qual)->args)
			if (!cond_restricts((Node *) lfirst(lc), t, relid, scanrelid))
				return false;
		return true;
	}
	if (qual_always_true(qual, relid, scanrelid))
		return false;
	return refs_target_walker(qual, t);
}

/*
 * A one-time filter (a Result's gating qual) lets all rows through or none:
 * it restricts the target only when it is constant false or null, which is
 * what the planner leaves when it proves that nothing is modified.
 */
static bool
gating_qual_is_false(List *quals)
{
	ListCell   *lc;

	foreach(lc, quals)
	{
		Node	   *q = (Node *) lfirst(lc);

		if (IsA(q, Const) &&
			(((Const *) q)->constisnull || !DatumGetBool(((Const *) q)->constvalue)))
			return true;
	}
	return false;
}

static bool node_restricts(Plan *plan, NwTarget *t);

/*
 * Does some node of this subtree filter on a Param of t->params (the inner
 * side of a nested loop parameterized by the target's rows)?
 */
static bool
subtree_restricts(Plan *plan, NwTarget *t)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	check_stack_depth();
	if (node_restricts(plan, t))
		return true;
	foreach(lc, plan_children(plan))
		if (subtree_restricts((Plan *) lfirst(lc), t))
			return true;
	return false;
}

/*
 * Does this node (one on the way from the target's scan up, or inside the
 * inner side of a nested loop driven by it) restrict the target's rows?
 * Its conditions count only when they reference those rows.
 */
static bool
node_restricts(Plan *plan, NwTarget *t)
{
	if (cond_restricts((Node *) plan->qual, t, InvalidOid, 0))
		return true;
	switch (nodeTag(plan))
	{
		case T_Result:
			return gating_qual_is_false((List *) ((Result *) plan)->resconstantqual);
		case T_IndexScan:
			return cond_restricts((Node *) ((IndexScan *) plan)->indexqualorig, t, InvalidOid, 0);
		case T_IndexOnlyScan:
			return cond_restricts((Node *) ((IndexOnlyScan *) plan)->indexqual, t, InvalidOid, 0);
		case T_BitmapIndexScan:
			return cond_restricts((Node *) ((BitmapIndexScan *) plan)->indexqualorig, t, InvalidOid, 0);
		case T_BitmapHeapScan:
			return cond_restricts((Node *) ((BitmapHeapScan *) plan)->bitmapqualorig, t, InvalidOid, 0);
		case T_TidScan:
			return cond_restricts((Node *) ((TidScan *) plan)->tidquals, t, InvalidOid, 0);
		case T_TidRangeScan:
			return cond_restricts((Node *) ((TidRangeScan *) plan)->tidrangequals, t, InvalidOid, 0);
		case T_NestLoop:
			{
				NestLoop   *nl = (NestLoop *) plan;
				NwTarget	inner;
				ListCell   *lc;

				if (cond_restricts((Node *) nl->join.joinqual, t, InvalidOid, 0))
					return true;

				/*
				 * A join on the target's rows done by passing them to the
				 * inner side: restricts if a condition there uses them.
				 */
				inner.rtis = NULL;
				inner.params = NULL;
				foreach(lc, nl->nestParams)
				{
					NestLoopParam *np = (NestLoopParam *) lfirst(lc);

					if (refs_target_walker((Node *) np->paramval, t))
						inner.params = bms_add_member(inner.params, np->paramno);
				}
				return inner.params != NULL &&
					subtree_restricts(plan->righttree, &inner);
			}
		case T_MergeJoin:
			return cond_restricts((Node *) ((Join *) plan)->joinqual, t, InvalidOid, 0) ||
				cond_restricts((Node *) ((MergeJoin *) plan)->mergeclauses, t, InvalidOid, 0);
		case T_HashJoin:
			return cond_restricts((Node *) ((Join *) plan)->joinqual, t, InvalidOid, 0) ||
				cond_restricts((Node *) ((HashJoin *) plan)->hashclauses, t, InvalidOid, 0);
		case T_Limit:
			return ((Limit *) plan)->limitCount != NULL;
		default:
			return false;
	}
}

/*
 * Does this scan of a modified relation filter its rows?  Its own
 * conditions count when they reference its rows and are not always true.
 */
static bool
scan_filters(Plan *plan, NwTarget *t)
{
	Index		scanrelid = ((Scan *) plan)->scanrelid;
	Oid			relid = InvalidOid;

	if (scanrelid > 0 && scanrelid <= list_length(nw_rtable))
		relid = rt_fetch(scanrelid, nw_rtable)->relid;
	if (cond_restricts((Node *) plan->qual, t, relid, scanrelid))
		return true;
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
			return false;
		case T_IndexScan:
			return cond_restricts((Node *) ((IndexScan *) plan)->indexqualorig, t, relid, scanrelid);
		case T_BitmapHeapScan:
			return cond_restricts((Node *) ((BitmapHeapScan *) plan)->bitmapqualorig, t, relid, scanrelid);
		case T_ForeignScan:
		case T_CustomScan:
			/* conditions pushed to elsewhere: any counts (as before) */
			return node_filters(plan);
		default:
			return node_restricts(plan, t);
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
 * Is the scan of range-table entry t's rti restricted: does it, or a node
 * between it and the top of this plan, filter its rows?  -1 when the plan
 * has no scan of it.  A filter on another relation only (UPDATE t ... FROM
 * o WHERE o.id = 1, MERGE ... ON s.id = 1) or on no relation at all does
 * not restrict t.
 */
static int
scan_restricted(Plan *plan, Index rti, NwTarget *t)
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
				return scan_filters(plan, t) ? 1 : 0;
			break;
		default:
			break;
	}
	foreach(lc, plan_children(plan))
	{
		int			r = scan_restricted((Plan *) lfirst(lc), rti, t);

		if (r >= 0)
			return (r == 1 || node_restricts(plan, t)) ? 1 : 0;
	}
	return -1;
}

/*
 * The range-table entries whose Vars are the rows of result relation rti:
 * itself, the ModifyTable's named and root relations, and the parents it
 * was expanded from (Vars above an Append name the parent).
 */
static Bitmapset *
target_rtis(ModifyTable *mt, Index rti)
{
	Bitmapset  *rtis = bms_make_singleton((int) rti);
	bool		more = true;

	if (mt->nominalRelation > 0)
		rtis = bms_add_member(rtis, (int) mt->nominalRelation);
	if (mt->rootRelation > 0)
		rtis = bms_add_member(rtis, (int) mt->rootRelation);
	while (more)
	{
		ListCell   *lc;

		more = false;
		foreach(lc, nw_appendrels)
		{
			AppendRelInfo *ai = (AppendRelInfo *) lfirst(lc);

			if (bms_is_member((int) ai->child_relid, rtis) &&
				!bms_is_member((int) ai->parent_relid, rtis))
			{
				rtis = bms_add_member(rtis, (int) ai->parent_relid);
				more = true;
			}
		}
	}
	return rtis;
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
		NwTarget	t;
		int			r;

		t.rtis = target_rtis(mt, (Index) lfirst_int(lc));
		t.params = NULL;
		r = scan_restricted(mt->plan.lefttree, (Index) lfirst_int(lc), &t);

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
	nw_appendrels = pstmt->appendRelations;
	find_modify_tables(pstmt->planTree, &any, rtis);
	/* data-modifying CTEs are subplans */
	foreach(lc, pstmt->subplans)
		find_modify_tables((Plan *) lfirst(lc), &any, rtis);
	nw_rtable = NIL;
	nw_appendrels = NIL;
	return any;
}

/* ---------- events ---------- */

void
ag_event_init(AgEvent *ev, int tag, AgClass cls)
{
	memset(ev, 0, sizeof(AgEvent));
	ev->tags[0] = tag;
	ev->ntags = 1;
	ev->cls = cls;
}

/* A relation's qualified name for messages (never NULL). */
char *
ag_relation_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));

	if (rel != NULL && nsp != NULL)
		return quote_qualified_identifier(nsp, rel);
	return psprintf("relation %u", relid);
}

/* What the event is about, for messages: "DELETE on public.t", "DROP TABLE" */
char *
ag_describe_event(AgEvent *ev)
{
	const char *tag = ag_tag_name(ev->tags[ev->ntags > 0 ? ev->ntags - 1 : 0]);

	if (OidIsValid(ev->relid) && !ev->utility)
		return psprintf("%s on %s", tag, ag_relation_name(ev->relid));
	if (OidIsValid(ev->funcid))
		return psprintf("call of %s", format_procedure(ev->funcid));
	return pstrdup(tag);
}
