/*-------------------------------------------------------------------------
 *
 * policy_rules.c
 *	  The per-backend cache of agentgate.rules, and the matcher.
 *
 * The rules are read once into their own memory context and kept until an
 * invalidation says they changed.  A statement trigger on agentgate.rules
 * sends a relcache invalidation for the table (row changes alone send
 * none); every backend receives it when its next transaction starts, so a
 * change is in force from the next statement of every session, pooled
 * backends included, and no statement ever scans the table.
 *
 * The subset of rules that applies to the session user (by role
 * membership) is cached as well and dropped when memberships change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/plancache.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "delegation.h"
#include "identity.h"
#include "pgquery.h"
#include "policy.h"

int			ag_default_action = AG_ACTION_ALLOW;

static MemoryContext rules_cxt = NULL;
static AgRule *rules = NULL;
static int	nrules = 0;
static bool rules_valid = false;
static uint64 rules_generation = 0;	/* counts invalidations of the rules */

static Oid	rules_relid = InvalidOid;
static Oid	schema_oid = InvalidOid;

static bool any_function_rule = false;	/* could match calls of non-built-ins */
static Oid *named_funcs = NULL;	/* sorted; functions named by any rule */
static int	nnamed_funcs = 0;
static Oid *rule_rels = NULL;	/* sorted; relations named by any rule */
static int	nrule_rels = 0;
static List *child_rule_rels = NIL;	/* those that are partitions or
									 * inheritance children */

/* rules that apply to mine_for, in order; applies[i]: does rules[i]? */
static AgRule **mine = NULL;
static int	nmine = 0;
static bool *applies = NULL;

/*
 * All rules, split by the tag they can match (for events whose class is
 * their tag's class: every DML statement and relation access), and the
 * rules that name functions (the only ones a built-in's call can match).
 * A statement then looks at a handful of rules, not at all of them.  Built
 * once per load of the rules, for every role: a change of role (in the
 * shared pool, every turn) only recomputes applies[].
 */
typedef struct RuleList
{
	AgRule	  **rules;
	int			n;
} RuleList;
static RuleList *all_by_tag = NULL;
static RuleList all_funcs;
static MemoryContext mine_cxt = NULL;	/* child of rules_cxt */
static Oid	mine_for = InvalidOid;
static bool mine_valid = false;

static void
rules_relcache_cb(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == rules_relid)
		rules_generation++;
	if (!rules_valid)
		return;
	if (!OidIsValid(relid) || relid == rules_relid)
	{
		rules_valid = false;
		mine_valid = false;

		/*
		 * Whether a function may be inlined depends on the rules
		 * (ag_policy_needs_fmgr): plans made under the old ones are made
		 * again.  A reset of all relations resets the plan cache anyway.
		 */
		if (OidIsValid(relid))
			ResetPlanCache();
		return;
	}
	/* a rule's relation gained children, or was dropped */
	if (nrule_rels > 0 &&
		bsearch(&relid, rule_rels, nrule_rels, sizeof(Oid), oid_cmp) != NULL)
	{
		rules_valid = false;
		mine_valid = false;
	}
}

/*
 * Did the rules change since generation gen?  After a long wait (an
 * approval) the caller first takes in the invalidations that arrived.
 */
uint64
ag_rules_generation(void)
{
	return rules_generation;
}

static void
rules_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	/* schema created or dropped: the extension may have come or gone */
	if (cacheid == NAMESPACEOID)
		rules_valid = false;
	mine_valid = false;
}

void
ag_rules_init(void)
{
	CacheRegisterRelcacheCallback(rules_relcache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, rules_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, rules_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, rules_syscache_cb, (Datum) 0);
}

static int
action_rank(AgAction a)
{
	/*
	 * 'log' and 'approve' rules are looked at first (neither ends the
	 * search); then block beats allow on a tie
	 */
	return (a == AG_ACTION_LOG || a == AG_ACTION_APPROVE) ? 0 :
		(a == AG_ACTION_BLOCK ? 1 : 2);
}

static int
rule_cmp(const void *a, const void *b)
{
	const AgRule *x = (const AgRule *) a;
	const AgRule *y = (const AgRule *) b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (action_rank(x->action) != action_rank(y->action))
		return action_rank(x->action) - action_rank(y->action);
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

/*
 * What the cache does with a rule it cannot fully understand (written past
 * the validator: a restore, a command tag a later server dropped, a row of
 * a later version).  The decoder has read it the fail-closed way; a block
 * rule keeps that wider reading and still blocks, never vanishes, while an
 * allow or log rule that cannot be understood allows nothing and is left
 * out.  Flaws the validator refuses for other reasons (an object since
 * dropped, an empty list) are read as they are, as before.
 */
static void
load_flaw(const AgRule *r, const AgRuleFlaw *f, void *arg)
{
	bool	   *skip = (bool *) arg;
	bool		blocks = r->action == AG_ACTION_BLOCK ||
		r->action == AG_ACTION_APPROVE;

	if (f->kind == AG_RULE_FLAW_REFUSED || *skip)
		return;
	if (f->kind == AG_RULE_FLAW_COMMAND && !blocks)
		ereport(WARNING,
				(errmsg("agentgate: rule %lld names unknown command \"%s\"; the rule never matches",
						(long long) r->id, f->value)));
	else if (f->kind == AG_RULE_FLAW_COMMAND)
		ereport(WARNING,
				(errmsg("agentgate: rule %lld names unknown command \"%s\"; it blocks every command in its scope",
						(long long) r->id, f->value),
				 errhint("Correct the rule's commands.")));
	else if (!blocks)
		ereport(WARNING,
				(errmsg("agentgate: rule %lld has unknown condition \"%s\"; the rule never matches",
						(long long) r->id, f->value)));
	else
		ereport(WARNING,
				(errmsg("agentgate: rule %lld has unknown condition \"%s\"; it blocks without it",
						(long long) r->id, f->value),
				 errhint("Correct the rule's condition.")));
	*skip = !blocks;
}

static void
load_rules(void)
{
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	SysScanDesc scan;
	HeapTuple	tup;
	AgRuleColumns cols;
	int			cap = 16;
	MemoryContext old;
	List	   *rels = NIL;
	List	   *funcs = NIL;
	ListCell   *lc;
	int			i;

	if (rules_cxt == NULL)
		rules_cxt = AllocSetContextCreate(CacheMemoryContext,
										  "agentgate policy rules",
										  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(rules_cxt);
	rules = NULL;
	nrules = 0;
	any_function_rule = false;
	named_funcs = NULL;
	nnamed_funcs = 0;
	rule_rels = NULL;
	nrule_rels = 0;
	child_rule_rels = NIL;
	mine = NULL;
	nmine = 0;
	applies = NULL;
	all_by_tag = NULL;
	mine_cxt = NULL;			/* deleted with rules_cxt's children */
	mine_valid = false;
	rules_relid = InvalidOid;

	/* Mark valid first: an invalidation arriving while we read wins. */
	rules_valid = true;

	nsp = get_namespace_oid(AG_SCHEMA, true);
	schema_oid = nsp;
	if (!OidIsValid(nsp))
		return;
	relid = get_relname_relid("rules", nsp);
	if (!OidIsValid(relid))
		return;
	rules_relid = relid;

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	ag_rule_columns(desc, &cols);

	old = MemoryContextSwitchTo(rules_cxt);
	rules = palloc0(sizeof(AgRule) * cap);

	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *isnull = palloc(sizeof(bool) * desc->natts);
		AgRule	   *r;
		bool		skip = false;
		int			j;

		heap_deform_tuple(tup, desc, values, isnull);
		if (isnull[cols.enabled] || !DatumGetBool(values[cols.enabled]))
			continue;
		if (nrules == cap)
		{
			cap *= 2;
			rules = repalloc(rules, sizeof(AgRule) * cap);
		}
		r = &rules[nrules];
		ag_rule_from_tuple(&cols, values, isnull, r, load_flaw, &skip);
		if (skip)
			continue;
		if (OidIsValid(r->relid))
			rels = lappend_oid(rels, r->relid);
		for (j = 0; j < r->nfuncs; j++)
			funcs = lappend_oid(funcs, r->funcs[j]);
		if (r->nfuncs > 0 ||
			(r->any_command && !OidIsValid(r->relid) && r->ncols == 0) ||
			(r->classes & (1U << AG_CLASS_FUNCTION)) ||
			bms_is_member(AG_TAG_FUNCTION_CALL, r->tags))
			any_function_rule = true;
		nrules++;
	}
	systable_endscan(scan);

	qsort(rules, nrules, sizeof(AgRule), rule_cmp);

	nnamed_funcs = list_length(funcs);
	named_funcs = palloc(sizeof(Oid) * Max(nnamed_funcs, 1));
	i = 0;
	foreach(lc, funcs)
		named_funcs[i++] = lfirst_oid(lc);
	qsort(named_funcs, nnamed_funcs, sizeof(Oid), oid_cmp);

	nrule_rels = list_length(rels);
	rule_rels = palloc(sizeof(Oid) * Max(nrule_rels, 1));
	i = 0;
	foreach(lc, rels)
		rule_rels[i++] = lfirst_oid(lc);
	qsort(rule_rels, nrule_rels, sizeof(Oid), oid_cmp);
	for (i = 0; i < nrule_rels; i++)
	{
		if (has_superclass(rule_rels[i]))
			child_rule_rels = lappend_oid(child_rule_rels, rule_rels[i]);
	}

	MemoryContextSwitchTo(old);
	table_close(rel, AccessShareLock);
}

static void
ensure_rules(void)
{
	if (!rules_valid)
	{
		PG_TRY();
		{
			load_rules();
		}
		PG_CATCH();
		{
			rules_valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
}

static bool
rule_may_match_tag(AgRule *r, int tag)
{
	return r->any_command || bms_is_member(tag, r->tags) ||
		(r->classes & (1U << ag_tag_class(tag))) != 0;
}

/* The rules by tag and the function rules: once per load of the rules. */
static void
ensure_rule_index(void)
{
	int			i,
				t;

	if (all_by_tag != NULL)
		return;
	all_by_tag = MemoryContextAllocZero(rules_cxt, sizeof(RuleList) * AG_NUM_TAGS);
	for (t = 0; t < AG_NUM_TAGS; t++)
	{
		RuleList   *l = &all_by_tag[t];

		for (i = 0; i < nrules; i++)
			if (rule_may_match_tag(&rules[i], t))
			{
				if (l->rules == NULL)
					l->rules = MemoryContextAlloc(rules_cxt, sizeof(AgRule *) * nrules);
				l->rules[l->n++] = &rules[i];
			}
	}
	all_funcs.rules = MemoryContextAlloc(rules_cxt, sizeof(AgRule *) * Max(nrules, 1));
	all_funcs.n = 0;
	for (i = 0; i < nrules; i++)
		if (rules[i].nfuncs > 0)
			all_funcs.rules[all_funcs.n++] = &rules[i];
}

static void
ensure_mine(Oid who)
{
	int			i;

	ensure_rules();
	if (mine_valid && mine_for == who)
		return;
	ensure_rule_index();
	if (mine_cxt == NULL)
		mine_cxt = AllocSetContextCreate(rules_cxt, "agentgate policy rules of a role",
										 ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(mine_cxt);
	mine = MemoryContextAlloc(mine_cxt, sizeof(AgRule *) * Max(nrules, 1));
	applies = MemoryContextAllocZero(mine_cxt, sizeof(bool) * Max(nrules, 1));
	nmine = 0;
	for (i = 0; i < nrules; i++)
	{
		Oid			r = rules[i].applies_to;

		if (r == who || is_member_of_role_nosuper(who, r))
		{
			mine[nmine++] = &rules[i];
			applies[i] = true;
		}
	}
	mine_for = who;
	mine_valid = true;
}

Oid
ag_schema_oid(void)
{
	ensure_rules();
	return schema_oid;
}

/* Could a rule (or the default) decide calls of non-built-in functions? */
bool
ag_rules_have_function_rules(void)
{
	ensure_rules();
	return any_function_rule || ag_default_action == AG_ACTION_BLOCK;
}

static void add_ancestors(Oid relid, List **out, int depth);

/*
 * ag_rules_descendants_named: the relations named by rules that are
 * partitions or inheritance children, at any depth, of relid.  A query of
 * a parent reads and writes them without a permission check of their own,
 * so their rules are decided on the parent's access too.
 */
List *
ag_rules_descendants_named(Oid relid)
{
	List	   *out = NIL;
	ListCell   *lc;

	ensure_rules();
	foreach(lc, child_rule_rels)
	{
		Oid			child = lfirst_oid(lc);
		List	   *ancestors = NIL;

		if (child == relid)
			continue;
		add_ancestors(child, &ancestors, 0);
		if (list_member_oid(ancestors, relid))
			out = lappend_oid(out, child);
		list_free(ancestors);
	}
	return out;
}

bool
ag_rules_function_named(Oid funcid)
{
	ensure_rules();
	return nnamed_funcs > 0 &&
		bsearch(&funcid, named_funcs, nnamed_funcs, sizeof(Oid), oid_cmp) != NULL;
}

/* ----------------------------------------------------------------
 *		Matching
 * ----------------------------------------------------------------
 */

static void
add_ancestors(Oid relid, List **out, int depth)
{
	Relation	inh;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	List	   *parents = NIL;
	ListCell   *lc;

	if (depth > 100)
		return;
	inh = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		parents = lappend_oid(parents, ((Form_pg_inherits) GETSTRUCT(tup))->inhparent);
	systable_endscan(scan);
	table_close(inh, AccessShareLock);

	foreach(lc, parents)
	{
		Oid			parent = lfirst_oid(lc);

		if (!list_member_oid(*out, parent))
		{
			*out = lappend_oid(*out, parent);
			add_ancestors(parent, out, depth + 1);
		}
	}
}

static bool
relation_matches(AgRule *r, AgEvent *ev)
{
	if (!OidIsValid(ev->relid))
		return false;
	if (ev->relid == r->relid)
		return true;
	if (!r->rel_has_children)
		return false;
	if (!ev->ancestors_done)
	{
		add_ancestors(ev->relid, &ev->ancestors, 0);
		ev->ancestors_done = true;
	}
	return list_member_oid(ev->ancestors, r->relid);
}

static Oid
event_namespace(AgEvent *ev)
{
	if (!ev->nsp_done)
	{
		if (OidIsValid(ev->relid))
			ev->nsp = get_rel_namespace(ev->relid);
		else if (OidIsValid(ev->funcid))
			ev->nsp = get_func_namespace(ev->funcid);
		ev->nsp_done = true;
	}
	return ev->nsp;
}

static bool
columns_match(AgRule *r, AgEvent *ev)
{
	int			attno = -1;

	if (ev->all_cols)
		return true;
	while ((attno = bms_next_member(ev->cols, attno)) >= 0)
	{
		char	   *name = get_attname(ev->relid, (AttrNumber) attno, true);
		int			i;

		if (name == NULL)
			continue;
		for (i = 0; i < r->ncols; i++)
			if (strcmp(name, r->cols[i]) == 0)
				return true;
	}
	return false;
}

/*
 * The statement's fingerprint; "" when the event has no statement text,
 * "?" when libpg_query refuses the text (longer than its input limit...).
 */
static const char *
event_fingerprint(AgEvent *ev)
{
	if (ev->fingerprint == NULL)
	{
		char		hex[AG_PGQ_FINGERPRINT_LEN + 1];
		char	   *err = NULL;

		if (ev->sql == NULL || ev->sql_len <= 0)
			ev->fingerprint = "";
		else if (ag_pgq_fingerprint(ev->sql, ev->sql_len, hex, &err))
			ev->fingerprint = pstrdup(hex);
		else
			ev->fingerprint = "?";
	}
	return ev->fingerprint;
}

/*
 * Does a fingerprint rule match?  A statement whose fingerprint cannot be
 * computed might be the one a block rule names (padding it past
 * libpg_query's input limit with a comment must not get it past the rule):
 * block and log rules match it, allow rules do not.  Fail closed.
 */
static bool
fingerprint_matches(AgRule *r, AgEvent *ev)
{
	const char *fp = event_fingerprint(ev);

	if (strcmp(fp, "?") == 0)
		return r->action != AG_ACTION_ALLOW;
	return pg_strcasecmp(fp, r->fingerprint) == 0;
}

/* Does the session's token carry one of the rule's scopes? */
static bool
scopes_match(AgRule *r)
{
	const AgDelegation *d = ag_session_delegation();

	if (d == NULL)
		return false;
	for (int i = d->nchain; i < d->nchain + d->nscopes; i++)
		for (int k = 0; k < r->nscopes; k++)
			if (strcmp(ag_delegation_name(d, i), r->scopes[k]) == 0)
				return true;
	return false;
}

static bool
rule_matches(AgRule *r, AgEvent *ev)
{
	int			i;

	if (ev->builtin_call && r->nfuncs == 0)
		return false;
	if (!r->any_command)
	{
		bool		hit = (ev->cls != AG_CLASS_NONE &&
						   (r->classes & (1U << ev->cls)) != 0);

		for (i = 0; !hit && i < ev->ntags; i++)
			hit = bms_is_member(ev->tags[i], r->tags);
		if (!hit)
			return false;
	}
	switch (r->cond)
	{
		case AG_COND_NONE:
			break;
		case AG_COND_NO_WHERE:
			if (!ev->no_where)
				return false;
			break;
		case AG_COND_NOT_OWNER:
			if (!ev->not_owner)
				return false;
			break;
		case AG_COND_UNTRUSTED_LANGUAGE:
			if (!ev->untrusted_language)
				return false;
			break;
	}
	if (OidIsValid(r->relid) && !relation_matches(r, ev))
		return false;
	if (r->nfuncs > 0)
	{
		bool		hit = false;

		for (i = 0; !hit && i < r->nfuncs; i++)
			hit = (r->funcs[i] == ev->funcid);
		if (!hit)
			return false;
	}
	if (OidIsValid(r->schema) &&
		(!(OidIsValid(ev->relid) || OidIsValid(ev->funcid)) ||
		 event_namespace(ev) != r->schema))
		return false;
	if (r->ncols > 0 && (!OidIsValid(ev->relid) || !columns_match(r, ev)))
		return false;
	if (r->fingerprint != NULL && !fingerprint_matches(r, ev))
		return false;
	if (r->nscopes > 0 && !scopes_match(r))
		return false;
	return true;
}

/*
 * An approve rule that matched turns an allowed event into one that needs
 * an approval (an allow rule does not exempt it: approval is asked for
 * where it was required, and applies_to narrows who must ask); a block
 * still wins.
 */
static void
needs_approval(AgOutcome *out)
{
	if (out->approval.rule_id == 0 || out->decision == AG_DECISION_BLOCKED)
		return;
	out->decision = AG_DECISION_APPROVAL;
	out->rule_id = out->approval.rule_id;
	out->reason = out->approval.reason;
	out->by_default = false;
	out->cond = AG_COND_NONE;
}

/*
 * ag_policy_decide finds the rule that decides ev for role `who`: the
 * first matching rule in order (priority, then block before allow, then
 * id).  'log' rules are noted and the search goes on; rules with max_rows
 * are handed back in out->deferred, to be applied once the row count is
 * known.  No match: the default action (for calls of built-in functions,
 * which only rules naming them can govern: allow).
 */
void
ag_policy_decide(Oid who, AgEvent *ev, AgOutcome *out)
{
	int			i;

	AgRule	  **list = mine;
	int			n;

	memset(out, 0, sizeof(AgOutcome));
	ensure_mine(who);

	/*
	 * A database without the extension has no policy, not an empty one: a
	 * governed role there would escape the baseline.  Refuse (fail closed).
	 */
	if (!OidIsValid(rules_relid))
	{
		out->decision = ev->builtin_call ? AG_DECISION_ALLOWED : AG_DECISION_BLOCKED;
		out->no_policy = true;
		return;
	}
	list = mine;
	n = nmine;
	if (ev->builtin_call)
	{
		list = all_funcs.rules;
		n = all_funcs.n;
	}
	else if (ev->ntags == 1 && ev->tags[0] >= 0 && ev->tags[0] < AG_NUM_TAGS &&
			 ev->cls == ag_tag_class(ev->tags[0]))
	{
		list = all_by_tag[ev->tags[0]].rules;
		n = all_by_tag[ev->tags[0]].n;
	}

	for (i = 0; i < n; i++)
	{
		AgRule	   *r = list[i];

		if (!applies[r - rules] || !rule_matches(r, ev))
			continue;
		if (r->max_rows >= 0)
		{
			AgDeferred *d = palloc(sizeof(AgDeferred));

			d->rule_id = r->id;
			d->max_rows = r->max_rows;
			d->action = r->action;
			d->reason = pstrdup(r->reason);
			out->deferred = lappend(out->deferred, d);
			continue;
		}
		if (r->action == AG_ACTION_LOG)
		{
			if (out->log_rule_id == 0)
				out->log_rule_id = r->id;
			continue;
		}
		if (r->action == AG_ACTION_APPROVE)
		{
			/* the first (strongest) one; a block found later still wins */
			if (out->approval.rule_id == 0)
			{
				out->approval = r->approval;
				out->approval.rule_id = r->id;
				out->approval.reason = pstrdup(r->reason);
			}
			continue;
		}
		out->decision = r->action == AG_ACTION_BLOCK ? AG_DECISION_BLOCKED :
			(out->log_rule_id ? AG_DECISION_LOGGED : AG_DECISION_ALLOWED);
		out->rule_id = r->id;
		out->cond = r->cond;
		out->reason = pstrdup(r->reason);
		needs_approval(out);
		return;
	}

	out->by_default = true;
	out->rule_id = 0;
	if (ev->builtin_call ||
		(OidIsValid(ev->funcid) && OidIsValid(schema_oid) &&
		 event_namespace(ev) == schema_oid) ||
		ag_default_action == AG_ACTION_ALLOW)
		out->decision = out->log_rule_id ? AG_DECISION_LOGGED : AG_DECISION_ALLOWED;
	else
		out->decision = AG_DECISION_BLOCKED;
	needs_approval(out);
}
