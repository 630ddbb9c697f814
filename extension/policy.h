/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  The statement policy engine: events, rules, decisions.
 *
 * Every hook of policy.c turns what it sees into events (one statement, one
 * access to one relation, one call of one function) and asks
 * ag_policy_decide() about each.  Rules live in agentgate.rules and are
 * cached per backend (policy_rules.c).  The events themselves and the
 * vocabulary of tags and classes are in event.h (classify.c), which
 * depends on nothing here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_POLICY_H
#define AG_POLICY_H

#include "access/tupdesc.h"
#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"

#include "event.h"
#include "verdict.h"

/* A rule with a max_rows limit that matched except for its row count. */
typedef struct AgDeferred
{
	int64		rule_id;
	int64		max_rows;
	AgAction	action;
	char	   *reason;
} AgDeferred;

/* The outcome for one event. */
typedef struct AgOutcome
{
	AgDecision	decision;		/* ALLOWED, LOGGED or BLOCKED (before monitor) */
	int64		rule_id;		/* deciding rule, 0 = default */
	int64		log_rule_id;	/* a 'log' rule that matched on the way */
	bool		by_default;
	bool		no_policy;		/* no agentgate.rules in this database */
	AgCondition cond;			/* the deciding rule's condition */
	char	   *reason;			/* palloc'd copy, or NULL */
	List	   *deferred;		/* of AgDeferred, for max_rows */
} AgOutcome;

/* policy_rules.c */
extern void ag_rules_init(void);
extern Oid	ag_schema_oid(void);
extern int	ag_table_attnum(TupleDesc desc, const char *table, const char *name);
extern bool ag_rules_have_function_rules(void);
extern bool ag_rules_function_named(Oid funcid);
extern List *ag_rules_descendants_named(Oid relid);
extern void ag_policy_decide(Oid who, AgEvent *ev, AgOutcome *out);
extern char *ag_normalize_command(const char *s);
extern char *ag_parse_commands(Datum *elems, bool *nulls, int n,
							   Bitmapset **tags, uint32 *classes);
extern AgCondition ag_condition_lookup(const char *s, bool *ok);
extern int	ag_default_action;	/* AG_ACTION_ALLOW or AG_ACTION_BLOCK */

/* policy.c */
typedef void (*AgCollectFn) (AgEvent *ev, AgOutcome *out, void *arg);
extern void ag_policy_collect(PlannedStmt *pstmt, const char *sql, Oid who,
							  AgCollectFn fn, void *arg);
extern void ag_policy_collect_call(Oid funcid, Oid who, AgCollectFn fn,
								   void *arg);
extern int	ag_policy_mode;		/* AG_MODE_* */
#define AG_MODE_ENFORCE 0
#define AG_MODE_MONITOR 1
extern void ag_policy_decide_call(AgEvent *ev);

/* policy_calls.c */
extern void ag_calls_substitute(PlannedStmt *pstmt);
extern void ag_calls_function_execute(Oid *funcid);
extern List *ag_calls_utility_events(PlannedStmt *pstmt, List *events,
									 const char *sql, int sql_len);

/* agent_code.c */
extern void ag_agent_code_init(void);
extern Oid	ag_function_owner(Oid fn_oid);
extern Oid	ag_agent_function_owner(Oid fn_oid);
extern bool ag_agent_code_needs_hook(Oid fn_oid);
extern void ag_agent_code_check_call(Oid fn_oid, int level);
extern void ag_agent_code_check_owner(Oid fn_oid, Oid owner, int level);
extern void ag_agent_code_check_rtable(List *rtable, int level);

#endif							/* AG_POLICY_H */
