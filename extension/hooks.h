/*-------------------------------------------------------------------------
 *
 * hooks.h
 *	  The one hook layer (hooks.c): the per-statement context the concerns
 *	  share, and the entry points hooks.c calls in each concern.
 *
 * Only hooks.c installs PostgreSQL hooks.  Each hook calls the concerns in
 * one order: who (identity: the session may still run statements, with its
 * stamp) before what (policy, agent code, policy calls, approvals; masking
 * goes here) before record (audit).  See hooks.c for the table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_HOOKS_H
#define AG_HOOKS_H

#include "catalog/objectaccess.h"
#include "executor/execdesc.h"
#include "fmgr.h"
#include "libpq/libpq-be.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"
#include "parser/parse_node.h"
#include "tcop/cmdtag.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

/*
 * What the backend is running, innermost: a DO block or a CALL (calls made
 * there with no statement in between get audit rows of their own), or
 * anything else (an executor, the planner, another utility statement).
 */
typedef enum AgFrame
{
	AG_FRAME_OTHER = 0,
	AG_FRAME_DO
} AgFrame;

/*
 * The statement whose hooks are running: a utility statement for the whole
 * of ProcessUtility, a planned one for the whole of ExecutorStart (where
 * its relations and function calls are checked).  Owned by hooks.c, on the
 * C stack of the hook; the concerns read and write their fields.
 */
typedef struct AgStmt
{
	struct AgStmt *parent;		/* the enclosing statement, or NULL */
	int			level;			/* 0: a statement the client sent */
	PlannedStmt *pstmt;
	QueryDesc  *qd;				/* planned statements only */
	const char *source;			/* the whole source text */
	const char *sql;			/* this statement's place in it */
	int			sql_len;
	bool		explain_only;	/* ExecutorStart for EXPLAIN without ANALYZE */
	ParamListInfo params;		/* its bound parameters, or NULL */

	/* identity */
	char	   *keep_app;		/* application_name to put back afterwards */

	/* policy */
	bool		decided;		/* policy decided it (a governed session) */
	bool		sets_role;		/* SET/RESET ROLE or SESSION AUTHORIZATION */
	Oid			role_before;	/* current role when it started */
	Bitmapset  *no_where_rtis;
	List	   *deferred;		/* max_rows rules, in TopTransactionContext */

	/* approvals */
	struct AgApprovalNeed *approval;	/* what an approve rule asks */
	bool		approval_gated; /* the gate ran: later needs are gated at once */

	/* audit */
	bool		audited;
	bool		write;			/* a utility statement that writes */
	TimestampTz start;
	const char *do_body;		/* a DO block's body and language */
	const char *do_lang;
} AgStmt;

/* hooks.c */
extern int	ag_nesting_level;	/* statements being executed around us */
extern AgStmt *ag_stmt;			/* innermost statement, or NULL */
extern AgFrame ag_frame;
extern void ag_hooks_install(void);

/*
 * The level a decision about what runs now belongs to: the statement being
 * started or run as a utility, else the nesting level (a function call
 * evaluated while the planner pre-evaluates, a trigger at commit...).
 */
static inline int
ag_stmt_level(void)
{
	return ag_stmt ? ag_stmt->level : ag_nesting_level;
}

/* auth.c */
extern void ag_auth_client_authentication(Port *port, int status);

/* identity.c */
extern void ag_identity_utility(AgStmt *st, PlannedStmt **pstmt);
extern void ag_identity_utility_done(AgStmt *st);
extern void ag_identity_executor_start(AgStmt *st);

/* policy.c */
extern void ag_policy_utility(AgStmt *st);
extern void ag_policy_utility_done(AgStmt *st);
extern void ag_policy_executor_start(AgStmt *st, int eflags);
extern void ag_policy_executor_ran(QueryDesc *qd, Oid role_before, int level);
extern void ag_policy_executor_finished(QueryDesc *qd);
extern void ag_policy_planner_start(void);
extern void ag_policy_planned(PlannedStmt *result);
extern void ag_policy_check_perms(List *rangeTable);
extern void ag_policy_object_access(ObjectAccessType access, Oid classId,
									Oid objectId, int subId, void *arg);
extern bool ag_policy_needs_fmgr(Oid fn_oid);
extern void ag_policy_fmgr(FmgrHookEventType event, FmgrInfo *flinfo,
						   uint64 *info);

/* policy_rows.c */
extern void ag_policy_executor_started(AgStmt *st);
extern void ag_policy_executor_run(QueryDesc *qd);
extern void ag_policy_executor_end(QueryDesc *qd);

/* approval.c */
extern void ag_approval_gate(AgStmt *st);

/* audit.c */
extern void ag_audit_shmem_request(void);
extern void ag_audit_shmem_startup(void);
extern void ag_audit_client_authentication(Port *port, int status);
extern bool ag_audit_parse_analyzed(ParseState *pstate, Query *query);
extern void ag_audit_parse_failed(ParseState *pstate, Query *query);
extern bool ag_audit_planner_start(void);
extern void ag_audit_planner_failed(Query *parse, const char *query_string);
extern void ag_audit_utility(AgStmt *st);
extern void ag_audit_utility_failed(AgStmt *st);
extern void ag_audit_utility_done(AgStmt *st, QueryCompletion *qc);
extern void ag_audit_executor_start(AgStmt *st, int eflags);
extern void ag_audit_executor_failed(QueryDesc *qd);
extern void ag_audit_executor_end(QueryDesc *qd);
extern void ag_audit_object_access(ObjectAccessType access, Oid classId,
								   Oid objectId, int subId, void *arg);
extern void ag_audit_emit_log(ErrorData *edata);

#endif							/* AG_HOOKS_H */
