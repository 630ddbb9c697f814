/*-------------------------------------------------------------------------
 *
 * approval.h
 *	  Just-in-time approval of one statement (approval.c, the gate and the
 *	  wait; approval_worker.c, the worker that writes the queue).
 *
 * A statement an 'approve' rule matches is bound (fingerprint: its exact
 * text, its bound parameter values, the session user, the database) to a
 * row of agentgate.approvals.  The row is written, used and ended by a
 * short-lived background worker in its own transaction, so that it commits
 * whatever becomes of the agent's transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_APPROVAL_H
#define AG_APPROVAL_H

#include "postgres.h"

#include "storage/dsm.h"

#include "policy.h"

#define AG_APPROVAL_FP_LEN	64	/* hex SHA-256 */

/* What a worker is asked to do (the op argument of _approval_job). */
typedef enum AgApprovalOp
{
	AG_APPROVAL_OP_REQUEST,		/* use an approval, or find or make a request */
	AG_APPROVAL_OP_CANCEL,		/* a pending request's statement gave up */
	AG_APPROVAL_OP_EXPIRE		/* a pending request's time ran out */
} AgApprovalOp;

/*
 * One job, in a DSM segment the requester creates and waits on (REQUEST),
 * or in the worker's bgw_extra alone (CANCEL, EXPIRE: nobody
 * waits for them).
 */
typedef struct AgApprovalJob
{
	AgApprovalOp op;
	Oid			dbid;
	Oid			roleid;
	int			requester_procno;
	int			requester_pid;
	int			mode;			/* AG_APPROVAL_RETRY or _WAIT */
	int64		rule_id;
	int64		timeout_ms;
	Oid			approvers;
	int32		min_approvals;
	int64		request_id;		/* CANCEL, EXPIRE */
	char		fingerprint[AG_APPROVAL_FP_LEN + 1];
	char		session_id[64];

	/* results, written by the worker before it sets done */
	int64		result_id;
	char		status[16];		/* requested, pending, executed, denied... */
	char		note[512];		/* who decided, and their comment */
	char		error[256];		/* the worker's error, when done = 2 */
	pg_atomic_uint32 done;		/* 0 running, 1 done, 2 failed */

	/* the statement text, then the parameters as a text[] literal */
	bool		has_params;
	Size		stmt_len;
	Size		params_len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} AgApprovalJob;

/* approval.c */
extern void ag_approval_init(void);
extern void ag_approval_shmem_request(void);
extern void ag_approval_shmem_startup(void);
extern void ag_approval_needed(AgEvent *ev, AgApprovalRule *rule, int level);
extern void ag_approval_note_request(int64 request_id, int procno, int pid);

/* approval_worker.c */
extern void ag_approval_run(AgApprovalJob *job, const char *stmt,
							const char *params);
extern void ag_approval_end(AgApprovalOp op, int64 request_id);
extern PGDLLEXPORT void agentgate_approval_worker_main(Datum arg);

#endif							/* AG_APPROVAL_H */
