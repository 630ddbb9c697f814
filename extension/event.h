/*-------------------------------------------------------------------------
 *
 * event.h
 *	  What policy decides about: events, and the vocabulary of command tags,
 *	  classes, conditions and actions that events and rules are written in
 *	  (classify.c, not_owner.c).
 *
 * Kept apart from policy.h so that the classifier, the rules cache
 * (policy_rules.c) and the hooks' side of policy (policy.c) depend on this
 * file and not on each other: classify.c needs nothing from either.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_EVENT_H
#define AG_EVENT_H

#include "nodes/bitmapset.h"
#include "nodes/nodes.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"
#include "tcop/cmdtag.h"

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
	AG_ACTION_LOG,
	AG_ACTION_APPROVE			/* run only once approved (approval.c) */
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

extern void ag_event_init(AgEvent *ev, int tag, AgClass cls);
extern char *ag_describe_event(AgEvent *ev);
extern char *ag_relation_name(Oid relid);

/* not_owner.c: the not_owner condition of a utility statement */
extern bool ag_utility_not_owner(Node *parsetree, Oid who, Oid *relid);

#endif							/* AG_EVENT_H */
