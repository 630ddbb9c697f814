/*-------------------------------------------------------------------------
 *
 * mask_catalog.c
 *	  agentgate.masks: the validating trigger, and the per-backend cache of
 *	  the masks that apply to a role.
 *
 * The rows are read once into their own memory context and kept until an
 * invalidation says they changed: a statement trigger on agentgate.masks
 * sends a relcache invalidation for the table (the one agentgate.rules
 * uses), which every backend receives when its next transaction starts, so
 * a change is in force from the next statement of every session, pooled
 * backends included.  Plans made under the old masks are dropped too
 * (ResetPlanCache): a cached plan holds the masks it was made with.
 *
 * For the role being planned for, the masks that apply to it (by role
 * membership) are resolved into one entry per relation: the masked
 * relation and each of its partitions and inheritance children, whose
 * columns are found by name, so that reading a partition directly masks
 * like reading the parent.  A mask that cannot be resolved any more (its
 * column renamed away, its function changed owner) marks its relation
 * broken: governed reads of it are refused rather than unmasked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "mask.h"
#include "policy.h"

PG_FUNCTION_INFO_V1(agentgate_masks_validate);

/* One enabled row of agentgate.masks. */
typedef struct MaskRow
{
	int64		id;
	Oid			relid;
	char	   *colname;
	char	   *method;
	Oid			applies_to;
} MaskRow;

static MemoryContext masks_cxt = NULL;
static MaskRow *rows = NULL;
static int	nrows = 0;
static bool rows_valid = false;
static Oid	masks_relid = InvalidOid;
static bool any_function_mask = false;
static Oid	hash_fn = InvalidOid;	/* agentgate.mask_hash(text) */

/*
 * Every relation with a mask for any role, and their partitions and
 * children, sorted: a plan that reads one depends on who runs it.
 */
static Oid *masked_rels = NULL;
static int	nmasked_rels = 0;

/* resolved for mine_for: relid -> AgMaskRel */
static MemoryContext mine_cxt = NULL;	/* child of masks_cxt */
static HTAB *mine = NULL;
static Oid	mine_for = InvalidOid;
static bool mine_valid = false;

static void
masks_relcache_cb(Datum arg, Oid relid)
{
	if (!rows_valid)
		return;
	if (!OidIsValid(relid) || relid == masks_relid)
	{
		rows_valid = false;
		mine_valid = false;
		if (OidIsValid(relid))
			ResetPlanCache();
		return;
	}
	/* a masked relation (or a child) changed: columns, children, name */
	if (nmasked_rels > 0 &&
		bsearch(&relid, masked_rels, nmasked_rels, sizeof(Oid), oid_cmp) != NULL)
	{
		rows_valid = false;
		mine_valid = false;
	}
}

static void
masks_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	if (cacheid == NAMESPACEOID)
		rows_valid = false;
	/* a mask function's owner or volatility may have changed */
	if (cacheid == PROCOID && !any_function_mask)
		return;
	mine_valid = false;

	/*
	 * Memberships decide whose statements are masked: plans made before a
	 * GRANT or REVOKE are made again.
	 */
	if (cacheid == AUTHMEMROLEMEM && rows_valid && nrows > 0)
		ResetPlanCache();
}

void
ag_mask_catalog_init(void)
{
	CacheRegisterRelcacheCallback(masks_relcache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, masks_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, masks_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, masks_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, masks_syscache_cb, (Datum) 0);
}

static int
mask_attnum(TupleDesc desc, const char *name)
{
	return ag_table_attnum(desc, "masks", name);
}

static int
maskrow_cmp(const void *a, const void *b)
{
	int64		x = ((const MaskRow *) a)->id;
	int64		y = ((const MaskRow *) b)->id;

	return x < y ? -1 : (x > y ? 1 : 0);
}

static void
load_rows(void)
{
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	SysScanDesc scan;
	HeapTuple	tup;
	int			a_id,
				a_relation,
				a_column,
				a_method,
				a_applies,
				a_enabled;
	int			cap = 16;
	MemoryContext old;

	if (masks_cxt == NULL)
		masks_cxt = AllocSetContextCreate(CacheMemoryContext,
										  "agentgate masks",
										  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(masks_cxt);
	rows = NULL;
	nrows = 0;
	masks_relid = InvalidOid;
	any_function_mask = false;
	hash_fn = InvalidOid;
	masked_rels = NULL;
	nmasked_rels = 0;
	mine = NULL;
	mine_cxt = NULL;			/* deleted with masks_cxt's children */
	mine_valid = false;

	/* Mark valid first: an invalidation arriving while we read wins. */
	rows_valid = true;

	nsp = ag_schema_oid();
	if (!OidIsValid(nsp))
		return;
	hash_fn = ag_mask_method_func(AG_MASK_HASH);
	relid = get_relname_relid("masks", nsp);
	if (!OidIsValid(relid))
		return;
	masks_relid = relid;

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	a_id = mask_attnum(desc, "id");
	a_relation = mask_attnum(desc, "relation");
	a_column = mask_attnum(desc, "column_name");
	a_method = mask_attnum(desc, "method");
	a_applies = mask_attnum(desc, "applies_to");
	a_enabled = mask_attnum(desc, "enabled");

	old = MemoryContextSwitchTo(masks_cxt);
	rows = palloc0(sizeof(MaskRow) * cap);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *isnull = palloc(sizeof(bool) * desc->natts);
		MaskRow    *r;
		AgMaskMethod m;

		heap_deform_tuple(tup, desc, values, isnull);
		if (isnull[a_enabled] || !DatumGetBool(values[a_enabled]) ||
			isnull[a_relation] || isnull[a_column])
			continue;
		if (nrows == cap)
		{
			cap *= 2;
			rows = repalloc(rows, sizeof(MaskRow) * cap);
		}
		r = &rows[nrows++];
		r->id = DatumGetInt64(values[a_id]);
		r->relid = DatumGetObjectId(values[a_relation]);
		r->colname = pstrdup(NameStr(*DatumGetName(values[a_column])));
		/* a method that cannot be read masks with NULL (fail closed) */
		r->method = isnull[a_method] ? "null" : TextDatumGetCString(values[a_method]);
		r->applies_to = isnull[a_applies] ? ag_agent_role_oid() :
			DatumGetObjectId(values[a_applies]);
		if (!ag_mask_builtin_lookup(r->method, &m))
			any_function_mask = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	/* by id: of two masks on one column for a role, the older wins */
	if (nrows > 1)
		qsort(rows, nrows, sizeof(MaskRow), maskrow_cmp);

	/* the masked relations and their descendants, for any role */
	{
		List	   *all = NIL;
		ListCell   *lc;
		int			i;

		for (i = 0; i < nrows; i++)
			if (get_rel_relkind(rows[i].relid) != '\0')
				all = list_concat(all, find_all_inheritors(rows[i].relid, NoLock, NULL));
		masked_rels = palloc(sizeof(Oid) * Max(list_length(all), 1));
		foreach(lc, all)
			masked_rels[nmasked_rels++] = lfirst_oid(lc);
		if (nmasked_rels > 1)
			qsort(masked_rels, nmasked_rels, sizeof(Oid), oid_cmp);
	}
	MemoryContextSwitchTo(old);
}

static void
ensure_rows(void)
{
	if (rows_valid)
		return;
	PG_TRY();
	{
		load_rows();
	}
	PG_CATCH();
	{
		rows_valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* to_regprocedure(): InvalidOid when the signature names no function */
static Oid
lookup_procedure(const char *signature)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		d;

	/* not a signature at all: to_regprocedure would raise a syntax error */
	if (strchr(signature, '(') == NULL)
		return InvalidOid;
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(signature);
	fcinfo->args[0].isnull = false;
	d = to_regprocedure(fcinfo);
	return fcinfo->isnull ? InvalidOid : DatumGetObjectId(d);
}

/*
 * Resolve one row's method for a column of typid into col; returns why it
 * cannot be, or NULL.
 */
static char *
resolve_method(const char *method, Oid typid, AgMaskCol *col)
{
	AgMaskMethod m;

	if (ag_mask_builtin_lookup(method, &m))
	{
		col->method = m;
		switch (m)
		{
			case AG_MASK_REDACT:
				col->konst = ag_mask_redact_const(typid, col->typmod, col->collid);
				return NULL;
			case AG_MASK_NULL:
				col->konst = makeNullConst(typid, col->typmod, col->collid);
				return NULL;
			default:
				if (!ag_mask_type_is_string(typid))
					return psprintf("method %s needs a string column, not %s",
									method, format_type_be(typid));
				col->funcid = ag_mask_method_func(m);
				col->strict = true;
				if (!OidIsValid(col->funcid))
					return psprintf("function agentgate.mask_%s(text) does not exist", method);
				return NULL;
		}
	}
	col->method = AG_MASK_FUNCTION;
	col->funcid = lookup_procedure(method);
	if (!OidIsValid(col->funcid))
		return psprintf("\"%s\" is neither a method nor a function", method);
	{
		char	   *problem = ag_mask_function_problem(col->funcid, typid);

		if (problem)
			return psprintf("function %s: %s", method, problem);
	}
	col->strict = func_strict(col->funcid);
	return NULL;
}

/* Add row r's mask to relation relid (the masked one or a descendant). */
static void
add_mask(const MaskRow *r, Oid relid)
{
	AgMaskRel  *mr;
	bool		found;
	AttrNumber	attnum;
	AgMaskCol	col;
	char	   *problem;
	int			i;

	mr = hash_search(mine, &relid, HASH_ENTER, &found);
	if (!found)
	{
		mr->ncols = 0;
		mr->cols = NULL;
		mr->broken = NULL;
	}
	memset(&col, 0, sizeof(col));
	col.id = r->id;
	col.colname = r->colname;
	attnum = get_attnum(relid, r->colname);
	if (attnum <= 0)
	{
		mr->broken = psprintf("mask %lld names column \"%s\", which relation \"%s\" does not have",
							  (long long) r->id, r->colname, get_rel_name(relid));
		return;
	}
	col.attnum = attnum;
	get_atttypetypmodcoll(relid, attnum, &col.typid, &col.typmod, &col.collid);
	{
		HeapTuple	atup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
										   Int16GetDatum(attnum));

		if (HeapTupleIsValid(atup))
		{
			col.notnull = ((Form_pg_attribute) GETSTRUCT(atup))->attnotnull;
			ReleaseSysCache(atup);
		}
	}
	problem = resolve_method(r->method, col.typid, &col);
	if (problem)
	{
		mr->broken = psprintf("mask %lld cannot be applied: %s", (long long) r->id, problem);
		return;
	}
	/* the first of two masks on one column (two roles) wins */
	for (i = 0; i < mr->ncols; i++)
		if (mr->cols[i].attnum == attnum)
			return;
	mr->cols = mr->cols ? repalloc(mr->cols, sizeof(AgMaskCol) * (mr->ncols + 1)) :
		palloc(sizeof(AgMaskCol));
	mr->cols[mr->ncols++] = col;
}

static int
maskcol_cmp(const void *a, const void *b)
{
	return ((const AgMaskCol *) a)->attnum - ((const AgMaskCol *) b)->attnum;
}

static void
ensure_mine(Oid roleid)
{
	HASHCTL		ctl;
	MemoryContext old;
	int			i;
	HASH_SEQ_STATUS seq;
	AgMaskRel  *mr;

	ensure_rows();
	if (mine_valid && mine_for == roleid)
		return;
	if (mine_cxt == NULL)
		mine_cxt = AllocSetContextCreate(masks_cxt, "agentgate masks of a role",
										 ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(mine_cxt);
	mine = NULL;
	mine_valid = true;
	mine_for = roleid;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(AgMaskRel);
	ctl.hcxt = mine_cxt;
	old = MemoryContextSwitchTo(mine_cxt);
	mine = hash_create("agentgate masks of a role", 16, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	PG_TRY();
	{
		for (i = 0; i < nrows; i++)
		{
			MaskRow    *r = &rows[i];
			char		relkind = get_rel_relkind(r->relid);
			List	   *rels;
			ListCell   *lc;

			if (relkind == '\0')
				continue;		/* dropped with its relation */
			if (!is_member_of_role_nosuper(roleid, r->applies_to))
				continue;
			rels = find_all_inheritors(r->relid, NoLock, NULL);
			foreach(lc, rels)
				add_mask(r, lfirst_oid(lc));
		}
		hash_seq_init(&seq, mine);
		while ((mr = hash_seq_search(&seq)) != NULL)
			if (mr->ncols > 1)
				qsort(mr->cols, mr->ncols, sizeof(AgMaskCol), maskcol_cmp);
	}
	PG_CATCH();
	{
		mine_valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
}

/* Does any mask apply to roleid?  Inside a transaction only. */
bool
ag_masks_any_for(Oid roleid)
{
	ensure_mine(roleid);
	return mine != NULL && hash_get_num_entries(mine) > 0;
}

/* The masks of relid for roleid, or NULL when it has none. */
const AgMaskRel *
ag_masks_for_rel(Oid roleid, Oid relid)
{
	ensure_mine(roleid);
	if (mine == NULL || hash_get_num_entries(mine) == 0)
		return NULL;
	return hash_search(mine, &relid, HASH_FIND, NULL);
}

/*
 * Does any role have a mask on relid (or on an ancestor)?  Inside a
 * transaction only.
 */
bool
ag_mask_relation_masked(Oid relid)
{
	ensure_rows();
	return nmasked_rels > 0 &&
		bsearch(&relid, masked_rels, nmasked_rels, sizeof(Oid), oid_cmp) != NULL;
}

/* agentgate.mask_hash(text), or InvalidOid */
Oid
ag_mask_hash_func(void)
{
	ensure_rows();
	return hash_fn;
}

const AgMaskCol *
ag_mask_col(const AgMaskRel *mr, AttrNumber attnum)
{
	int			i;

	for (i = 0; i < mr->ncols; i++)
		if (mr->cols[i].attnum == attnum)
			return &mr->cols[i];
	return NULL;
}

/* ---- the table's trigger ---- */

static void
bad_mask(const char *msg, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid agentgate mask: %s", msg),
			 detail ? errdetail("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

static Datum
row_value(HeapTuple tup, TupleDesc desc, const char *name, bool *isnull)
{
	int			n = SPI_fnumber(desc, name);

	if (n <= 0)
		elog(ERROR, "agentgate.masks has no column \"%s\"", name);
	return SPI_getbinval(tup, desc, n, isnull);
}

/*
 * BEFORE INSERT OR UPDATE trigger on agentgate.masks: refuse masks that
 * could not mean what their author thinks, and store a function method as
 * its qualified signature.
 */
Datum
agentgate_masks_validate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		d;
	bool		isnull;
	Oid			relid;
	char		relkind;
	char	   *colname;
	AttrNumber	attnum;
	char	   *method;
	AgMaskCol	col;
	AgMaskMethod m;
	char	   *problem;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "agentgate_masks_validate must be a BEFORE ROW trigger");
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);

	d = row_value(tup, desc, "relation", &isnull);
	relid = isnull ? InvalidOid : DatumGetObjectId(d);
	relkind = OidIsValid(relid) ? get_rel_relkind(relid) : '\0';
	if (relkind == '\0')
		bad_mask("relation does not exist", NULL, NULL);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_MATVIEW && relkind != RELKIND_FOREIGN_TABLE)
		bad_mask(psprintf("\"%s\" is not a table", get_rel_name(relid)),
				 "Masks apply to tables, partitioned tables, materialized views and foreign tables.",
				 "Mask the column of the table the view reads: views are masked through it.");
	if (get_rel_namespace(relid) == ag_schema_oid())
		bad_mask("agentgate's own tables cannot be masked", NULL,
				 "Agents cannot read agentgate's tables at all.");

	d = row_value(tup, desc, "column_name", &isnull);
	if (isnull)
		bad_mask("column_name is NULL", NULL, NULL);
	colname = NameStr(*DatumGetName(d));
	attnum = get_attnum(relid, colname);
	if (attnum == InvalidAttrNumber)
		bad_mask(psprintf("column \"%s\" of relation \"%s\" does not exist",
						  colname, get_rel_name(relid)), NULL, NULL);
	if (attnum < 0)
		bad_mask(psprintf("\"%s\" is a system column", colname), NULL,
				 "Mask a column of the table's own.");

	d = row_value(tup, desc, "applies_to", &isnull);
	if (isnull || !SearchSysCacheExists1(AUTHOID, d))
		bad_mask("applies_to must name an existing role", NULL, NULL);

	d = row_value(tup, desc, "method", &isnull);
	if (isnull)
		bad_mask("method is NULL", NULL,
				 "A method is redact, null, partial, email, hash or a function's signature.");
	method = TextDatumGetCString(d);
	memset(&col, 0, sizeof(col));
	get_atttypetypmodcoll(relid, attnum, &col.typid, &col.typmod, &col.collid);
	if (!ag_mask_builtin_lookup(method, &m) && !OidIsValid(lookup_procedure(method)))
		bad_mask(psprintf("unknown method \"%s\"", method),
				 "A method is redact, null, partial, email, hash or the signature of a function, such as myschema.mask_ssn(text).",
				 "Name a function with its schema: agentgate.mask() looks names up in pg_catalog only.");
	problem = resolve_method(method, col.typid, &col);
	if (problem)
		bad_mask(problem,
				 col.method == AG_MASK_FUNCTION ?
				 "A mask function must be IMMUTABLE, owned by a superuser, have SET search_path, and take and return the column's type." :
				 "partial, email and hash apply to text, varchar, char and citext columns.",
				 col.method == AG_MASK_FUNCTION ?
				 "ALTER FUNCTION ... IMMUTABLE SET search_path = pg_catalog, and let a superuser own it." :
				 "Use redact or null, or a function of the column's type.");

	/* a function is stored as its qualified signature */
	if (col.method == AG_MASK_FUNCTION)
	{
		int			attnums[1];
		Datum		newvals[1];
		bool		newnulls[1] = {false};

		attnums[0] = SPI_fnumber(desc, "method");
		newvals[0] = CStringGetTextDatum(format_procedure_qualified(col.funcid));
		tup = heap_modify_tuple_by_cols(tup, desc, 1, attnums, newvals, newnulls);
	}
	return PointerGetDatum(tup);
}
