/*-------------------------------------------------------------------------
 *
 * not_owner.c
 *	  Does a utility statement change, extend or give away an object that
 *	  the session user does not own itself?  (The not_owner condition.)
 *
 * PostgreSQL lets every member of an object's owning role change the
 * object as if it owned it.  An agent that reaches a table through a group
 * role could therefore attach its own code to it — an index or statistics
 * expression, a CHECK on a domain the table uses, a trigger on a child
 * table created under it (CREATE TABLE ... PARTITION OF / INHERITS), a
 * foreign key that puts its triggers on the referenced table — that the
 * server evaluates later in other sessions, or change what others rely
 * on: restart a sequence, empty a materialized view, rename or move an
 * object, rewrite the comment another agent reads as documentation, set a
 * database's search_path.  And an agent could build an object and then
 * give it away (OWNER TO a group), so that it no longer counts as the
 * agent's.  All of these count as not_owner here; the baseline rule refuses
 * them (a DBA can allow them with a rule of higher priority).
 *
 * Objects are resolved the way the command will resolve them (search_path,
 * schema qualification), by OID, before the command runs.  An object that
 * does not exist yet is not "not owned": the command creates it (or fails
 * on its own).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_largeobject.h"
#include "catalog/pg_largeobject_metadata.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "policy.h"

/* The owner of a relation, or InvalidOid when it does not exist. */
static Oid
rel_owner(Oid relid)
{
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	if (!OidIsValid(relid))
		return InvalidOid;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

static Oid
type_owner(Oid typid)
{
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	if (!OidIsValid(typid))
		return InvalidOid;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_type) GETSTRUCT(tup))->typowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

static Oid
lookup_rel(RangeVar *rv)
{
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelid(rv, NoLock, true);
}

static Oid
lookup_type(TypeName *tn)
{
	Type		typtup;
	Oid			typid;

	if (tn == NULL)
		return InvalidOid;
	typtup = LookupTypeName(NULL, tn, NULL, true);
	if (typtup == NULL)
		return InvalidOid;
	typid = ((Form_pg_type) GETSTRUCT(typtup))->oid;
	ReleaseSysCache(typtup);
	return typid;
}

/* Is the relation there and owned by someone other than who? */
static bool
rel_not_owned(Oid relid, Oid who)
{
	Oid			owner = rel_owner(relid);

	return OidIsValid(owner) && owner != who;
}

/*
 * The owner of any object ALTER, RENAME, COMMENT and the like can name, or
 * InvalidOid when it does not exist or has no owner.  *relid is set to the
 * relation when the object is one or belongs to one.
 */
static Oid
object_owner(ObjectType type, Node *object, Oid *relid)
{
	ObjectAddress addr;
	Relation	rel = NULL;
	Relation	catalog;
	Oid			classid;
	AttrNumber	owner_att;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	if (object == NULL)
		return InvalidOid;
	switch (type)
	{
		case OBJECT_TABLE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_INDEX:
		case OBJECT_SEQUENCE:
		case OBJECT_FOREIGN_TABLE:
			if (!IsA(object, List))
				return InvalidOid;
			*relid = lookup_rel(makeRangeVarFromNameList((List *) object));
			return rel_owner(*relid);
		case OBJECT_COLUMN:
		case OBJECT_TABCONSTRAINT:
		case OBJECT_TRIGGER:
		case OBJECT_POLICY:
		case OBJECT_RULE:
			/* a part of a relation: the relation's owner decides */
			if (!IsA(object, List) || list_length((List *) object) < 2)
				return InvalidOid;
			*relid = lookup_rel(makeRangeVarFromNameList(list_truncate(list_copy((List *) object),
																	   list_length((List *) object) - 1)));
			return rel_owner(*relid);
		case OBJECT_DOMCONSTRAINT:
			/*
			 * COMMENT ON CONSTRAINT c ON DOMAIN d names (TypeName, c);
			 * ALTER DOMAIN d RENAME CONSTRAINT names the domain by a list
			 * of names (the constraint is elsewhere in the statement).
			 */
			if (!IsA(object, List) || list_length((List *) object) < 1)
				return InvalidOid;
			if (IsA(linitial((List *) object), TypeName))
				return type_owner(lookup_type((TypeName *) linitial((List *) object)));
			return type_owner(lookup_type(makeTypeNameFromNameList((List *) object)));
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
			if (!IsA(object, ObjectWithArgs))
				return InvalidOid;
			{
				Oid			fn = LookupFuncWithArgs(type, (ObjectWithArgs *) object, true);

				return OidIsValid(fn) ? ag_function_owner(fn) : InvalidOid;
			}
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
			/* RENAME and OWNER TO name it as a list, COMMENT as a TypeName */
			if (IsA(object, List))
				object = (Node *) makeTypeNameFromNameList((List *) object);
			if (!IsA(object, TypeName))
				return InvalidOid;
			return type_owner(lookup_type((TypeName *) object));
		case OBJECT_ROLE:
			return InvalidOid;	/* roles have no owner; ROLE rules decide */
		default:
			break;
	}

	/*
	 * Everything else, as the command itself will find it.  This takes a
	 * share lock on the object (get_object_address always locks one); the
	 * command takes its own, stronger one right after.
	 */
	addr = get_object_address(type, object, &rel, AccessShareLock, true);
	if (rel != NULL)
	{
		*relid = RelationGetRelid(rel);
		relation_close(rel, NoLock);
		return rel_owner(*relid);
	}
	if (!OidIsValid(addr.objectId))
		return InvalidOid;
	classid = addr.classId;
	if (classid == LargeObjectRelationId)
		classid = LargeObjectMetadataRelationId;
	owner_att = get_object_attnum_owner(classid);
	if (owner_att == InvalidAttrNumber)
		return InvalidOid;
	catalog = table_open(classid, AccessShareLock);
	tup = get_catalog_object_by_oid(catalog, get_object_attnum_oid(classid), addr.objectId);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, owner_att, RelationGetDescr(catalog), &isnull);

		if (!isnull)
			owner = DatumGetObjectId(d);
	}
	table_close(catalog, AccessShareLock);
	return owner;
}

static bool
object_not_owned(ObjectType type, Node *object, Oid who, Oid *relid)
{
	Oid			owner = object_owner(type, object, relid);

	return OidIsValid(owner) && owner != who;
}

/* OWNER TO someone else gives the object away. */
static bool
gives_away(RoleSpec *newowner, Oid who)
{
	Oid			to;

	if (newowner == NULL)
		return false;
	to = get_rolespec_oid(newowner, true);
	return OidIsValid(to) && to != who;
}

/*
 * The function CREATE OR REPLACE FUNCTION would replace, or InvalidOid:
 * same name, input argument types and creation schema.  An argument type
 * that does not resolve means there is nothing to replace.  %TYPE
 * references are resolved here without LookupTypeName, which would print
 * its "type reference converted" NOTICE a second time.
 */
static Oid
replaced_function(CreateFunctionStmt *s)
{
	char	   *name;
	Oid			nsp;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			nargs = 0;
	ListCell   *lc;
	oidvector  *args;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	nsp = QualifiedNameGetCreationNamespace(s->funcname, &name);
	foreach(lc, s->parameters)
	{
		FunctionParameter *fp = lfirst_node(FunctionParameter, lc);
		TypeName   *tn = fp->argType;
		Oid			typid;

		if (fp->mode == FUNC_PARAM_OUT || fp->mode == FUNC_PARAM_TABLE)
			continue;
		if (nargs >= FUNC_MAX_ARGS)
			return InvalidOid;
		if (tn->pct_type)
		{
			/* table.column%TYPE: the column's type, arrays as written */
			List	   *names = tn->names;
			Oid			relid;
			AttrNumber	attnum;

			if (list_length(names) < 2)
				return InvalidOid;
			relid = lookup_rel(makeRangeVarFromNameList(list_truncate(list_copy(names),
																	  list_length(names) - 1)));
			if (!OidIsValid(relid))
				return InvalidOid;
			attnum = get_attnum(relid, strVal(llast(names)));
			if (attnum == InvalidAttrNumber)
				return InvalidOid;
			typid = get_atttype(relid, attnum);
			if (tn->arrayBounds != NIL)
				typid = get_array_type(typid);
		}
		else
			typid = lookup_type(tn);
		if (!OidIsValid(typid))
			return InvalidOid;
		argtypes[nargs++] = typid;
	}
	args = buildoidvector(argtypes, nargs);
	tup = SearchSysCache3(PROCNAMEARGSNSP, CStringGetDatum(name),
						  PointerGetDatum(args), ObjectIdGetDatum(nsp));
	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_proc) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}
	return result;
}

static bool
func_not_owned(Oid funcid, Oid who)
{
	Oid			owner = OidIsValid(funcid) ? ag_function_owner(funcid) : InvalidOid;

	return OidIsValid(owner) && owner != who;
}

/*
 * A foreign key puts triggers on the table it references: the referenced
 * table's owner then cannot delete or update rows the agent's table points
 * at (RESTRICT), or the agent's table is changed by the referenced table's
 * writes (CASCADE, SET NULL/DEFAULT).  Referencing a table one does not
 * own is attaching to it.
 */
static bool
references_not_owned(Node *n, Oid who, Oid *relid)
{
	Constraint *c;
	Oid			pk;

	if (n == NULL || !IsA(n, Constraint))
		return false;
	c = (Constraint *) n;
	if (c->contype != CONSTR_FOREIGN || c->pktable == NULL)
		return false;
	pk = lookup_rel(c->pktable);
	if (!rel_not_owned(pk, who))
		return false;
	*relid = pk;
	return true;
}

/* Any foreign key among a CREATE TABLE's elements to a table not owned? */
static bool
elements_reference_not_owned(List *elts, Oid who, Oid *relid)
{
	ListCell   *lc;

	foreach(lc, elts)
	{
		Node	   *n = lfirst(lc);

		if (IsA(n, ColumnDef))
		{
			ListCell   *lc2;

			foreach(lc2, ((ColumnDef *) n)->constraints)
				if (references_not_owned(lfirst(lc2), who, relid))
					return true;
		}
		else if (references_not_owned(n, who, relid))
			return true;
	}
	return false;
}

/* Any parent in a CREATE TABLE's INHERITS or PARTITION OF not owned? */
static bool
parents_not_owned(List *parents, Oid who, Oid *relid)
{
	ListCell   *lc;

	foreach(lc, parents)
	{
		Oid			parent = lookup_rel(lfirst_node(RangeVar, lc));

		if (rel_not_owned(parent, who))
		{
			*relid = parent;
			return true;
		}
	}
	return false;
}

/*
 * ag_utility_not_owner: does this utility statement change, extend or give
 * away an object that `who` does not own itself?  *relid is set to the
 * relation concerned when there is one (and left alone otherwise).
 */
bool
ag_utility_not_owner(Node *parsetree, Oid who, Oid *relid)
{
	Oid			rel = InvalidOid;
	bool		result = false;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *s = (AlterTableStmt *) parsetree;
				ListCell   *lc;

				rel = lookup_rel(s->relation);
				result = rel_not_owned(rel, who);
				foreach(lc, s->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_ChangeOwner)
						result |= gives_away(cmd->newowner, who);
					else if (cmd->subtype == AT_AddInherit && cmd->def &&
							 IsA(cmd->def, RangeVar))
						result |= rel_not_owned(lookup_rel((RangeVar *) cmd->def), who);
					else if (cmd->subtype == AT_AttachPartition && cmd->def &&
							 IsA(cmd->def, PartitionCmd))
						result |= rel_not_owned(lookup_rel(((PartitionCmd *) cmd->def)->name), who);
					else if (cmd->subtype == AT_AddConstraint)
					{
						Oid			pk = InvalidOid;

						result |= references_not_owned(cmd->def, who, &pk);
					}
					else if (cmd->subtype == AT_AddColumn && cmd->def &&
							 IsA(cmd->def, ColumnDef))
					{
						Oid			pk = InvalidOid;

						result |= elements_reference_not_owned(list_make1(cmd->def), who, &pk);
					}
				}
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *s = (RenameStmt *) parsetree;

				if (s->relation)
				{
					rel = lookup_rel(s->relation);
					result = rel_not_owned(rel, who);
				}
				else
					result = object_not_owned(s->renameType, s->object, who, &rel);
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *s = (AlterObjectSchemaStmt *) parsetree;

				if (s->relation)
				{
					rel = lookup_rel(s->relation);
					result = rel_not_owned(rel, who);
				}
				else
					result = object_not_owned(s->objectType, s->object, who, &rel);
				break;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *s = (AlterOwnerStmt *) parsetree;

				if (s->relation)
				{
					rel = lookup_rel(s->relation);
					result = rel_not_owned(rel, who);
				}
				else
					result = object_not_owned(s->objectType, s->object, who, &rel);
				result |= gives_away(s->newowner, who);
				break;
			}
		case T_CommentStmt:
			{
				CommentStmt *s = (CommentStmt *) parsetree;

				result = object_not_owned(s->objtype, s->object, who, &rel);
				break;
			}
		case T_IndexStmt:
			rel = lookup_rel(((IndexStmt *) parsetree)->relation);
			result = rel_not_owned(rel, who);
			break;
		case T_CreateTrigStmt:
			rel = lookup_rel(((CreateTrigStmt *) parsetree)->relation);
			result = rel_not_owned(rel, who);
			break;
		case T_RuleStmt:
			rel = lookup_rel(((RuleStmt *) parsetree)->relation);
			result = rel_not_owned(rel, who);
			break;
		case T_CreatePolicyStmt:
			rel = lookup_rel(((CreatePolicyStmt *) parsetree)->table);
			result = rel_not_owned(rel, who);
			break;
		case T_AlterPolicyStmt:
			rel = lookup_rel(((AlterPolicyStmt *) parsetree)->table);
			result = rel_not_owned(rel, who);
			break;
		case T_CreateStatsStmt:
			{
				ListCell   *lc;

				foreach(lc, ((CreateStatsStmt *) parsetree)->relations)
				{
					Node	   *n = lfirst(lc);

					if (IsA(n, RangeVar) && rel_not_owned(lookup_rel((RangeVar *) n), who))
					{
						rel = lookup_rel((RangeVar *) n);
						result = true;
					}
				}
				break;
			}
		case T_AlterStatsStmt:
			result = object_not_owned(OBJECT_STATISTIC_EXT,
									  (Node *) ((AlterStatsStmt *) parsetree)->defnames,
									  who, &rel);
			break;
		case T_CreateStmt:
			result = parents_not_owned(((CreateStmt *) parsetree)->inhRelations, who, &rel) ||
				elements_reference_not_owned(((CreateStmt *) parsetree)->tableElts, who, &rel);
			break;
		case T_CreateForeignTableStmt:
			result = parents_not_owned(((CreateForeignTableStmt *) parsetree)->base.inhRelations,
									   who, &rel);
			break;
		case T_CreateFunctionStmt:
			{
				CreateFunctionStmt *s = (CreateFunctionStmt *) parsetree;

				/* OR REPLACE of someone else's function is an ALTER of it */
				if (s->replace)
					result = func_not_owned(replaced_function(s), who);
				break;
			}
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *s = (AlterFunctionStmt *) parsetree;

				result = func_not_owned(LookupFuncWithArgs(s->objtype, s->func, true), who);
				break;
			}
		case T_ViewStmt:
			{
				ViewStmt   *s = (ViewStmt *) parsetree;

				/* OR REPLACE of someone else's view is an ALTER of it */
				if (s->replace)
				{
					rel = lookup_rel(s->view);
					result = rel_not_owned(rel, who);
				}
				break;
			}
		case T_RefreshMatViewStmt:
			{
				RefreshMatViewStmt *s = (RefreshMatViewStmt *) parsetree;

				/* WITH NO DATA empties it for everyone who reads it */
				rel = lookup_rel(s->relation);
				result = s->skipData && rel_not_owned(rel, who);
				break;
			}
		case T_AlterSeqStmt:
			rel = lookup_rel(((AlterSeqStmt *) parsetree)->sequence);
			result = rel_not_owned(rel, who);
			break;
		case T_AlterDomainStmt:
			{
				AlterDomainStmt *s = (AlterDomainStmt *) parsetree;
				Oid			owner = type_owner(lookup_type(makeTypeNameFromNameList(s->typeName)));

				result = OidIsValid(owner) && owner != who;
				break;
			}
		case T_AlterTypeStmt:
			{
				Oid			owner = type_owner(lookup_type(makeTypeNameFromNameList(((AlterTypeStmt *) parsetree)->typeName)));

				result = OidIsValid(owner) && owner != who;
				break;
			}
		case T_AlterEnumStmt:
			{
				Oid			owner = type_owner(lookup_type(makeTypeNameFromNameList(((AlterEnumStmt *) parsetree)->typeName)));

				result = OidIsValid(owner) && owner != who;
				break;
			}
		case T_CreateCastStmt:
			{
				/* a cast attaches a function to both types' conversions */
				CreateCastStmt *s = (CreateCastStmt *) parsetree;
				Oid			src = lookup_type(s->sourcetype);
				Oid			dst = lookup_type(s->targettype);

				/* built-in types are the other end of most casts: not them */
				result = (src >= FirstNormalObjectId && type_owner(src) != who) ||
					(dst >= FirstNormalObjectId && type_owner(dst) != who);
				break;
			}
		case T_AlterOperatorStmt:
			result = object_not_owned(OBJECT_OPERATOR,
									  (Node *) ((AlterOperatorStmt *) parsetree)->opername,
									  who, &rel);
			break;
		case T_AlterCollationStmt:
			result = object_not_owned(OBJECT_COLLATION,
									  (Node *) ((AlterCollationStmt *) parsetree)->collname,
									  who, &rel);
			break;
		case T_AlterTSDictionaryStmt:
			result = object_not_owned(OBJECT_TSDICTIONARY,
									  (Node *) ((AlterTSDictionaryStmt *) parsetree)->dictname,
									  who, &rel);
			break;
		case T_AlterTSConfigurationStmt:
			result = object_not_owned(OBJECT_TSCONFIGURATION,
									  (Node *) ((AlterTSConfigurationStmt *) parsetree)->cfgname,
									  who, &rel);
			break;
		case T_AlterDatabaseStmt:
			{
				Oid			db = get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true);

				result = OidIsValid(db) &&
					object_not_owned(OBJECT_DATABASE,
									 (Node *) makeString(((AlterDatabaseStmt *) parsetree)->dbname),
									 who, &rel);
				break;
			}
		case T_AlterDatabaseSetStmt:
			{
				/* a database's search_path applies to everyone's sessions */
				Oid			db = get_database_oid(((AlterDatabaseSetStmt *) parsetree)->dbname, true);

				result = OidIsValid(db) &&
					object_not_owned(OBJECT_DATABASE,
									 (Node *) makeString(((AlterDatabaseSetStmt *) parsetree)->dbname),
									 who, &rel);
				break;
			}
		default:
			break;
	}
	if (OidIsValid(rel))
		*relid = rel;
	return result;
}
