/*-------------------------------------------------------------------------
 *
 * approval_worker.c
 *	  The worker that writes agentgate.approvals for a statement's backend.
 *
 * An approval request must be seen by approvers at once and must stay when
 * the agent's transaction aborts (a retry-mode refusal aborts it; NOTIFY
 * is sent only when the writing transaction commits).  So the backend does
 * not write the queue itself: it starts a dynamic background worker
 * connected to its own database, which runs agentgate._approval_job() in
 * a transaction of its own, commits, puts the result into the job's DSM
 * segment and sets the requester's latch.  Using a retried statement's
 * approval goes the same way, so that it is used up whatever the agent's
 * transaction does next (an approval allows one execution, not one
 * commit) and works in a read-only transaction; a waiting statement's
 * approval is used up by the approver's transaction (approval.c).  A loopback connection would need a credential
 * and a few milliseconds more; a worker needs neither.
 *
 * A worker that cannot be started, or that fails, fails the statement:
 * nothing runs on an approval that could not be checked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "agentgate.h"
#include "approval.h"

static const char *const op_names[] = {
	[AG_APPROVAL_OP_REQUEST] = "request",
	[AG_APPROVAL_OP_CANCEL] = "cancel",
	[AG_APPROVAL_OP_EXPIRE] = "expire",
};

/* bgw_extra of a job nobody waits for (CANCEL, EXPIRE) */
typedef struct AsyncJob
{
	bool		async;
	AgApprovalOp op;
	Oid			dbid;
	int64		request_id;
} AsyncJob;

static bool
start_worker(Datum arg, const AsyncJob *extra, BackgroundWorkerHandle **handle,
			 bool notify)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w.bgw_library_name, "agentgate", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "agentgate_approval_worker_main", BGW_MAXLEN);
	strlcpy(w.bgw_name, "agentgate approval worker", BGW_MAXLEN);
	strlcpy(w.bgw_type, "agentgate approval worker", BGW_MAXLEN);
	w.bgw_main_arg = arg;
	w.bgw_notify_pid = notify ? MyProcPid : 0;
	StaticAssertStmt(sizeof(AsyncJob) <= BGW_EXTRALEN, "job fits bgw_extra");
	memcpy(w.bgw_extra, extra, sizeof(AsyncJob));
	return RegisterDynamicBackgroundWorker(&w, handle);
}

/*
 * ag_approval_run hands a REQUEST job to a new worker and
 * waits for its result, servicing interrupts: a cancel ends the wait (the
 * worker still finishes its transaction).  The result is copied into
 * *proto.
 */
void
ag_approval_run(AgApprovalJob *proto, const char *stmt, const char *params)
{
	Size		stmt_len = strlen(stmt);
	Size		params_len = params ? strlen(params) : 0;
	dsm_segment *seg;
	AgApprovalJob *job;
	BackgroundWorkerHandle *handle;
	AsyncJob	extra = {false};

	seg = dsm_create(offsetof(AgApprovalJob, data) + stmt_len + params_len + 2, 0);
	job = dsm_segment_address(seg);
	memcpy(job, proto, offsetof(AgApprovalJob, data));
	pg_atomic_init_u32(&job->done, 0);
	job->stmt_len = stmt_len;
	job->params_len = params_len;
	job->has_params = params != NULL;
	memcpy(job->data, stmt, stmt_len + 1);
	if (params)
		memcpy(job->data + stmt_len + 1, params, params_len + 1);
	else
		job->data[stmt_len + 1] = '\0';
	job->requester_procno = MyProc->pgprocno;
	job->requester_pid = MyProcPid;
	job->dbid = MyDatabaseId;

	if (!start_worker(UInt32GetDatum(dsm_segment_handle(seg)), &extra, &handle, true))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("agentgate: statement refused: no background worker slot to record its approval request"),
				 errdetail("The statement needs an approval, and agentgate records requests with a background worker."),
				 errhint("Retry later; a database administrator may raise max_worker_processes.")));

	for (;;)
	{
		pid_t		pid;
		BgwHandleStatus st;

		if (pg_atomic_read_u32(&job->done) != 0)
			break;
		st = GetBackgroundWorkerPid(handle, &pid);
		if ((st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED) &&
			pg_atomic_read_u32(&job->done) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("agentgate: statement refused: its approval could not be checked"),
					 errdetail("The approval worker exited before it answered."),
					 errhint("A database administrator should look at the server log.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	pg_read_barrier();
	if (pg_atomic_read_u32(&job->done) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: statement refused: its approval could not be checked"),
				 errdetail("The approval worker failed: %s", job->error),
				 errhint("A database administrator should look at the server log.")));
	proto->result_id = job->result_id;
	memcpy(proto->status, job->status, sizeof(proto->status));
	memcpy(proto->note, job->note, sizeof(proto->note));
	dsm_detach(seg);
}

/*
 * ag_approval_end marks a pending request cancelled or expired, in a worker
 * nobody waits for: called when a waiting statement gives up, also while
 * its backend exits.  Best effort: a request left pending is cancelled by
 * the next approve() or deny() of it, which sees that no statement waits.
 */
void
ag_approval_end(AgApprovalOp op, int64 request_id)
{
	AsyncJob	extra;
	BackgroundWorkerHandle *handle;

	memset(&extra, 0, sizeof(extra));
	extra.async = true;
	extra.op = op;
	extra.dbid = MyDatabaseId;
	extra.request_id = request_id;
	if (!start_worker((Datum) 0, &extra, &handle, false))
		ereport(LOG,
				(errmsg("agentgate: could not start a worker to mark approval request %lld %s",
						(long long) request_id,
						op == AG_APPROVAL_OP_CANCEL ? "cancelled" : "expired")));
}

/* Runs _approval_job() and copies its answer into the job. */
static void
run_job(AgApprovalJob *job, const char *stmt, const char *params)
{
	Oid			types[12] = {TEXTOID, INT8OID, TEXTOID, OIDOID, TEXTOID, TEXTOID,
	TEXTOID, INT8OID, TEXTOID, INT8OID, OIDOID, INT4OID};
	Datum		values[12];
	char		nulls[13] = "            ";
	int			rc;
	bool		isnull;
	Datum		d;

	values[0] = CStringGetTextDatum(op_names[job->op]);
	values[1] = Int64GetDatum(job->request_id);
	values[2] = CStringGetTextDatum(job->fingerprint);
	values[3] = ObjectIdGetDatum(job->roleid);
	values[4] = CStringGetTextDatum(job->session_id);
	values[5] = CStringGetTextDatum(stmt ? stmt : "");
	values[6] = CStringGetTextDatum(params ? params : "{}");
	if (params == NULL)
		nulls[6] = 'n';
	values[7] = Int64GetDatum(job->rule_id);
	values[8] = CStringGetTextDatum(job->mode == AG_APPROVAL_WAIT ? "wait" : "retry");
	values[9] = Int64GetDatum(job->timeout_ms);
	values[10] = ObjectIdGetDatum(job->approvers);
	values[11] = Int32GetDatum(job->min_approvals);

	rc = SPI_execute_with_args("SELECT id, status, note FROM " AG_SCHEMA "._approval_job("
							   "$1, $2, $3, $4, $5, $6, $7::text[], $8, $9, $10, $11, $12)",
							   12, types, values, nulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "agentgate._approval_job returned no row");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	job->result_id = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	strlcpy(job->status, isnull ? "" : TextDatumGetCString(d), sizeof(job->status));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	strlcpy(job->note, isnull ? "" : TextDatumGetCString(d), sizeof(job->note));

	/*
	 * A waiting statement's request must look waited for from the moment
	 * approvers can see it, so the waiter's slot is filled before commit.
	 */
	if (job->op == AG_APPROVAL_OP_REQUEST && job->mode == AG_APPROVAL_WAIT &&
		(strcmp(job->status, "requested") == 0 || strcmp(job->status, "pending") == 0))
		ag_approval_note_request(job->result_id, job->requester_procno,
								 job->requester_pid);
}

/* One transaction: the job, committed; a failure is told to the requester. */
static void
work(dsm_segment *seg, AgApprovalJob *job, const char *stmt, const char *params)
{
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		run_job(job, stmt, params);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		if (seg)
		{
			ErrorData  *edata;

			/* tell the requester first; the error is then logged as usual */
			HOLD_INTERRUPTS();
			edata = CopyErrorData();
			strlcpy(job->error, edata->message ? edata->message : "", sizeof(job->error));
			pg_write_barrier();
			pg_atomic_write_u32(&job->done, 2);
			SetLatch(&ProcGlobal->allProcs[job->requester_procno].procLatch);
			RESUME_INTERRUPTS();
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

}

void
agentgate_approval_worker_main(Datum arg)
{
	AsyncJob	extra;
	dsm_segment *seg = NULL;
	AgApprovalJob *job = NULL;
	AgApprovalJob async_job;
	const char *stmt = NULL;
	const char *params = NULL;

	BackgroundWorkerUnblockSignals();
	memcpy(&extra, MyBgworkerEntry->bgw_extra, sizeof(AsyncJob));
	if (extra.async)
	{
		memset(&async_job, 0, sizeof(async_job));
		async_job.op = extra.op;
		async_job.dbid = extra.dbid;
		async_job.request_id = extra.request_id;
		job = &async_job;
	}
	else
	{
		CurrentResourceOwner = ResourceOwnerCreate(NULL, "agentgate approval worker");
		seg = dsm_attach(DatumGetUInt32(arg));
		if (seg == NULL)
			proc_exit(0);		/* the requester gave up already */
		job = dsm_segment_address(seg);
		stmt = job->data;
		params = job->has_params ? job->data + job->stmt_len + 1 : NULL;
	}

	BackgroundWorkerInitializeConnectionByOid(job->dbid, InvalidOid, 0);
	pgstat_report_appname("agentgate approval worker");

	work(seg, job, stmt, params);

	if (seg)
	{
		pg_write_barrier();
		pg_atomic_write_u32(&job->done, 1);
		SetLatch(&ProcGlobal->allProcs[job->requester_procno].procLatch);
		dsm_detach(seg);
	}
	proc_exit(0);
}
