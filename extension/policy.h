/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  The statement policy engine: events, rules, decisions.
 *
 * Every hook of policy.c turns what it sees into events (one statement, one
 * access to one relation, one call of one function) and asks
 * ag_policy_decide() about each.  Rules live in agentgate.rules and are
 * cached per backend (policy_rules.c); classify.c knows command tags and
 * their classes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_POLICY_H
#define AG_POLICY_H

#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"
#include "tcop/cmdtag.h"

#include "verdict.h"

/*
 * Tags: PostgreSQL's command tags, followed by a few finer ones of ours that
 * name forms a DBA wants to single out.
 */
#define AG_TAG_FUNCTION_CALL		(COMMAND_TAG_NEXTTAG + 0)
#define AG_TAG_COPY_PROGRAM			(COMMAND_TAG_NEXTTAG + 1)
#define AG_TAG_COPY_FILE			(COMMAND_TAG_NEXTTAG + 2)
#define AG_TAG_SET_ROLE				(COMMAND_TAG_NEXTTAG + 3)
#define AG_TAG_SET_SESSION_AUTH		(COMMAND_TAG_NEXTTAG + 4)
#define AG_TAG_SET_AGENTGATE		(COMMAND_TAG_NEXTTAG + 5)
#define AG_TAG_DROP_COLUMN			(COMMAND_TAG_NEXTTAG + 6)
#define AG_TAG_AGENTGATE_CHANNEL	(COMMAND_TAG_NEXTTAG + 7)
#define AG_TAG_DROP_LARGE_OBJECT	(COMMAND_TAG_NEXTTAG + 8)
#define AG_TAG_WRITE_LARGE_OBJECT	(COMMAND_TAG_NEXTTAG + 9)
#define AG_NUM_TAGS					(COMMAND_TAG_NEXTTAG + 10)

/* Classes; a rule's commands may name them instead of tags. */
typedef enum AgClass
{
	AG_CLASS_NONE = 0,
	AG_CLASS_READ,
	AG_CLASS_WRITE,
	AG_CLASS_DDL,
	AG_CLASS_ROLE,
	AG_CLASS_FUNCTION,
	AG_CLASS_MISC
} AgClass;

#define AG_NUM_CLASSES	7

/* Conditions a rule may carry (agentgate.rules.condition). */
typedef enum AgCondition
{
	AG_COND_NONE = 0,
	AG_COND_NO_WHERE,			/* UPDATE/DELETE/MERGE without a restricting
								 * WHERE */
	AG_COND_NOT_OWNER,			/* ALTER of a relation the agent does not own */
	AG_COND_UNTRUSTED_LANGUAGE	/* CREATE FUNCTION/PROCEDURE in an untrusted
								 * language */
} AgCondition;

typedef enum AgAction
{
	AG_ACTION_ALLOW = 0,
	AG_ACTION_BLOCK,
	AG_ACTION_LOG
} AgAction;

/* One thing to decide. */
#define AG_EVENT_MAX_TAGS 3
typedef struct AgEvent
{
	int			tags[AG_EVENT_MAX_TAGS];
	int			ntags;
	AgClass		cls;
	Oid			relid;			/* accessed relation, or InvalidOid */
	Bitmapset  *cols;			/* attnums (plain, > 0) read or written */
	bool		all_cols;		/* whole-row access: every column */
	Oid			funcid;			/* called function, or InvalidOid */
	bool		builtin_call;	/* funcid is a built-in: no default action */
	bool		no_where;
	bool		not_owner;
	bool		untrusted_language;
	bool		utility;		/* from ProcessUtility: the message names
								 * the command, the detail its object */
	/* statement text, for fingerprint rules (may be NULL) */
	const char *sql;
	int			sql_len;
	char	   *fingerprint;	/* computed lazily; "" when unavailable */
	/* looked up lazily by the matcher */
	Oid			nsp;			/* schema of relid or funcid */
	bool		nsp_done;
	List	   *ancestors;		/* inheritance/partition ancestors of relid */
	bool		ancestors_done;
} AgEvent;

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

/* classify.c */
extern const char *ag_tag_name(int tag);
extern int	ag_tag_lookup(const char *name);
extern AgClass ag_tag_class(int tag);
extern const char *ag_class_name(AgClass cls);
extern AgClass ag_class_lookup(const char *name);
extern bool ag_tag_is_decided(int tag);
extern List *ag_utility_events(PlannedStmt *pstmt, const char *sql, int sql_len,
							   bool *decide, Oid who);
extern int	ag_operation_tag(CmdType op);
extern bool ag_plan_no_where(PlannedStmt *pstmt, Bitmapset **rtis);

/* policy_rules.c */
extern void ag_rules_init(void);
extern Oid	ag_schema_oid(void);
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
extern char *ag_describe_event(AgEvent *ev);
extern void ag_event_init(AgEvent *ev, int tag, AgClass cls);
extern void ag_policy_decide_call(AgEvent *ev);

/* policy_calls.c */
extern void ag_calls_substitute(PlannedStmt *pstmt);
extern void ag_calls_function_execute(Oid *funcid);
extern List *ag_calls_utility_events(PlannedStmt *pstmt, List *events,
									 const char *sql, int sql_len);

/* not_owner.c */
extern bool ag_utility_not_owner(Node *parsetree, Oid who, Oid *relid);

/* agent_code.c */
extern void ag_agent_code_init(void);
extern Oid	ag_function_owner(Oid fn_oid);
extern Oid	ag_agent_function_owner(Oid fn_oid);
extern bool ag_agent_code_needs_hook(Oid fn_oid);
extern void ag_agent_code_check_call(Oid fn_oid, int level);
extern void ag_agent_code_check_owner(Oid fn_oid, Oid owner, int level);
extern void ag_agent_code_check_rtable(List *rtable, int level);

#endif							/* AG_POLICY_H */
