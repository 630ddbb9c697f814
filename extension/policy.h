/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  The statement policy engine: events, rules, decisions.
 *
 * Every hook of policy.c turns what it sees into events (one statement, one
 * access to one relation, one call of one function) and asks
 * ag_policy_decide() about each.  Rules live in agentgate.rules, are read
 * from its rows by one decoder (policy_rule_tuple.c) and cached per backend
 * (policy_rules.c).  The events themselves and the
 * vocabulary of tags and classes are in event.h (classify.c), which
 * depends on nothing here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_POLICY_H
#define AG_POLICY_H

#include "access/tupdesc.h"
#include "executor/execdesc.h"
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

/* How an 'approve' rule asks for its approval (approval.c). */
#define AG_APPROVAL_RETRY	0	/* refuse now; the identical retry runs */
#define AG_APPROVAL_WAIT	1	/* the statement waits for the decision */

typedef struct AgApprovalRule
{
	int64		rule_id;
	int			mode;			/* AG_APPROVAL_* */
	int64		timeout_ms;
	Oid			approvers;
	int32		min_approvals;
	char	   *reason;
} AgApprovalRule;

/* The outcome for one event. */
typedef struct AgOutcome
{
	AgDecision	decision;		/* ALLOWED, LOGGED, APPROVAL or BLOCKED
								 * (before monitor) */
	int64		rule_id;		/* deciding rule, 0 = default */
	int64		log_rule_id;	/* a 'log' rule that matched on the way */
	bool		by_default;
	bool		no_policy;		/* no agentgate.rules in this database */
	AgCondition cond;			/* the deciding rule's condition */
	char	   *reason;			/* palloc'd copy, or NULL */
	List	   *deferred;		/* of AgDeferred, for max_rows */
	AgApprovalRule approval;	/* decision APPROVAL: the approve rule */
} AgOutcome;

/*
 * One row of agentgate.rules as the policy reads it (policy_rule_tuple.c).
 * The rules cache keeps these; the validator trigger decodes a new row
 * into one to check it.
 */
typedef struct AgRule
{
	int64		id;
	int32		priority;
	Oid			applies_to;
	bool		any_command;
	Bitmapset  *tags;
	uint32		classes;		/* bit per AgClass */
	int			ncommands;		/* the commands in canonical spelling, */
	const char **commands;		/* as the validator stores them */
	Oid			relid;
	bool		rel_has_children;
	Oid			schema;
	int			ncols;
	char	  **cols;
	int			nfuncs;
	Oid		   *funcs;
	AgCondition cond;
	int64		max_rows;		/* -1: none */
	char	   *fingerprint;	/* NULL: none; lower-case */
	int			nscopes;		/* 0: every session; else only sessions */
	char	  **scopes;			/* whose token's scope names one of these */
	AgAction	action;
	char	   *reason;
	AgApprovalRule approval;	/* action approve: how (rule_id unset) */
} AgRule;

/* Where the columns a rule is decoded from are, in a deformed row. */
typedef struct AgRuleColumns
{
	int			id,
				priority,
				enabled,
				applies_to,
				commands,
				relation,
				schema,
				columns,
				functions,
				condition,
				max_rows,
				fingerprint,
				action,
				reason,
				approval_mode,
				approval_timeout,
				approvers,
				min_approvals,
				scopes;
} AgRuleColumns;

/*
 * What is wrong with a row, as the decoder finds it.  Every flaw is one the
 * validator refuses; the two the cache must act on are told apart, and the
 * rule handed with them is already read the fail-closed way (every
 * command, no condition).  An unknown action is read as block.
 */
typedef enum AgRuleFlawKind
{
	AG_RULE_FLAW_REFUSED,		/* refused on insert; read as it is */
	AG_RULE_FLAW_COMMAND,		/* a command not known: every command */
	AG_RULE_FLAW_CONDITION		/* a condition not known: none */
} AgRuleFlawKind;

typedef struct AgRuleFlaw
{
	AgRuleFlawKind kind;
	const char *value;			/* the command or condition not known */
	const char *msg;			/* the validator's message, detail, hint */
	const char *detail;
	const char *hint;
} AgRuleFlaw;

typedef void (*AgRuleFlawFn) (const AgRule *rule, const AgRuleFlaw *flaw,
							  void *arg);

/* policy_rule_tuple.c */
extern int	ag_table_attnum(TupleDesc desc, const char *table, const char *name);
extern void ag_rule_columns(TupleDesc desc, AgRuleColumns *cols);
extern void ag_rule_from_tuple(const AgRuleColumns *cols, Datum *values,
							   bool *isnull, AgRule *rule,
							   AgRuleFlawFn flaw, void *arg);

/* policy_rules.c */
extern void ag_rules_init(void);
extern Oid	ag_schema_oid(void);
extern bool ag_rules_have_function_rules(void);
extern bool ag_rules_function_named(Oid funcid);
extern uint64 ag_rules_generation(void);
extern List *ag_rules_descendants_named(Oid relid);
extern void ag_policy_decide(Oid who, AgEvent *ev, AgOutcome *out);
extern int	ag_default_action;	/* AG_ACTION_ALLOW or AG_ACTION_BLOCK */

/* policy.c */
struct AgStmt;
extern void ag_policy_decide_event(AgEvent *ev, struct AgStmt *ctx, int level);
extern void ag_policy_apply_outcome(AgEvent *ev, AgOutcome *out, int level);
extern bool ag_policy_collecting(void);
typedef void (*AgCollectFn) (AgEvent *ev, AgOutcome *out, void *arg);
extern void ag_policy_collect(PlannedStmt *pstmt, const char *sql, Oid who,
							  AgCollectFn fn, void *arg);
extern void ag_policy_collect_call(Oid funcid, Oid who, AgCollectFn fn,
								   void *arg);
extern int	ag_policy_mode;		/* AG_MODE_* */
#define AG_MODE_ENFORCE 0
#define AG_MODE_MONITOR 1
extern void ag_policy_decide_call(AgEvent *ev);

/* policy_role.c */
extern void ag_policy_role_verify(int level);
extern void ag_policy_role_approve(void);
extern void ag_policy_role_unchanged(Oid before, int level);
extern Oid	ag_policy_role_judged(void);
extern bool ag_policy_role_set_by_function(Oid fn);

/* policy_rows.c */
extern void ag_policy_rows_forget(QueryDesc *qd);
extern void ag_policy_rows_check(QueryDesc *qd);
extern void ag_policy_rows_reset(void);

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
