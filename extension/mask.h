/*-------------------------------------------------------------------------
 *
 * mask.h
 *	  Column masks: what a governed session reads from a column instead of
 *	  its stored value (docs/masking.md).
 *
 *	  mask_catalog.c	agentgate.masks: its triggers and the per-backend
 *						cache of the masks that apply to a role
 *	  mask_methods.c	the methods: constants, C functions, the hash key
 *	  mask.c			the planner's side: every query tree a governed
 *						session plans reads masked columns; COPY; explain
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_MASK_H
#define AG_MASK_H

#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "nodes/primnodes.h"

#include "hooks.h"

typedef enum AgMaskMethod
{
	AG_MASK_REDACT,				/* a constant of the column's type */
	AG_MASK_NULL,
	AG_MASK_PARTIAL,			/* agentgate.mask_partial(text) */
	AG_MASK_EMAIL,				/* agentgate.mask_email(text) */
	AG_MASK_HASH,				/* agentgate.mask_hash(text) */
	AG_MASK_FUNCTION			/* a DBA's function of the column's type */
} AgMaskMethod;

/* One masked column of one relation, for one role. */
typedef struct AgMaskCol
{
	int64		id;				/* agentgate.masks.id */
	AttrNumber	attnum;
	char	   *colname;
	AgMaskMethod method;
	Oid			funcid;			/* per-row methods */
	bool		strict;			/* funcid is STRICT */
	Oid			typid;			/* the column's */
	int32		typmod;
	Oid			collid;
	bool		notnull;		/* attnotnull: redact needs no NULL test */
	Const	   *konst;			/* redact and null */
} AgMaskCol;

/* The masked columns of one relation (a masked one, or a descendant). */
typedef struct AgMaskRel
{
	Oid			relid;
	int			ncols;
	AgMaskCol  *cols;			/* by attnum */
	char	   *broken;			/* a mask could not be resolved: refuse */
} AgMaskRel;

/* mask_catalog.c */
extern void ag_mask_catalog_init(void);
extern bool ag_masks_any_for(Oid roleid);
extern const AgMaskRel *ag_masks_for_rel(Oid roleid, Oid relid);
extern const AgMaskCol *ag_mask_col(const AgMaskRel *mr, AttrNumber attnum);
extern const char *ag_mask_method_name(AgMaskMethod m);
extern Oid	ag_mask_hash_func(void);
extern bool ag_mask_relation_masked(Oid relid);

/* mask_methods.c */
extern void ag_mask_methods_init(void);
extern bool ag_mask_builtin_lookup(const char *name, AgMaskMethod *m);
extern Oid	ag_mask_method_func(AgMaskMethod m);
extern bool ag_mask_type_is_string(Oid typid);
extern Const *ag_mask_redact_const(Oid typid, int32 typmod, Oid collid);
extern Expr *ag_mask_expr(const AgMaskCol *col, Expr *arg);
extern char *ag_mask_function_problem(Oid funcid, Oid typid);

/* mask.c */
extern void ag_mask_init(void);
extern void ag_mask_planner_start(Query *parse);
extern void ag_mask_planned(PlannedStmt *result);
extern void ag_mask_fmgr(FmgrHookEventType event, FmgrInfo *flinfo,
						 uint64 *info);
extern bool ag_mask_needs_fmgr(Oid fn_oid);
extern void ag_mask_utility(AgStmt *st, PlannedStmt **pstmt);
extern List *ag_mask_describe(Query *q, Oid roleid);
extern List *ag_mask_read_columns(PlannedStmt *pstmt);

#endif							/* AG_MASK_H */
