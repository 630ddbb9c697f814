/*-------------------------------------------------------------------------
 *
 * approval.c
 *	  Just-in-time approval of one statement: the gate a statement passes
 *	  once policy has decided all of it, the wait of 'wait' rules, and the
 *	  approver's side (separation of duties is in SQL, _approval_vote; the
 *	  wake-up after the approver's commit is here).
 *
 * Policy (policy.c) notes, for each event an 'approve' rule matched and no
 * block refused, what that rule asks; the hook layer calls
 * ag_approval_gate() once the statement is fully decided (after
 * ExecutorStart, whose permission checks decide its relations and calls;
 * before a utility statement runs).  So a statement that is also blocked
 * is refused as blocked and makes no request.  An event decided outside
 * any statement that could still be gated (a call made while a statement
 * runs) is gated at once.
 *
 * The gate binds the statement: a SHA-256 of its exact text, its bound
 * parameter values (extended protocol, EXECUTE, a PL/pgSQL statement's
 * variables), the session user and the database.  A worker
 * (approval_worker.c) then either uses an approved request of that
 * fingerprint (status executed: one execution), or finds or makes the
 * pending one.  retry: refused at once, with the request id in the
 * message.  wait: the backend sleeps on its latch until the decision, the
 * request's expiry, a cancel, a statement timeout, termination or the
 * client's disconnection; only an approval lets the statement go on.
 *
 * Waking: approve() and deny() note the decision (_approval_decided); at
 * PRE_COMMIT their audit rows are appended, and at COMMIT -- after the
 * decision is durable and visible, and never for one that rolls back --
 * the waiter's slot in shared memory is set and its latch with it.  The
 * approval of a waiting statement is used up by the approver's own
 * transaction (status executed), which wakes exactly one waiter: the
 * statement then runs with no further round trip (a worker start costs
 * tens of milliseconds), and no other session's identical statement can
 * use the same approval.  Should the waiter have left before the commit,
 * the request is marked cancelled instead.  No lock is held while waiting
 * that an approver needs (approvers touch only the queue, which the waiter
 * does not lock).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "agentgate.h"
#include "approval.h"
#include "audit.h"
#include "hooks.h"
#include "policy.h"
#include "identity.h"
#include "verdict.h"

PG_FUNCTION_INFO_V1(agentgate_approval_governed);
PG_FUNCTION_INFO_V1(agentgate_approval_member);
PG_FUNCTION_INFO_V1(agentgate_approval_waiting);
PG_FUNCTION_INFO_V1(agentgate_approval_decided);

/* A waiter's decision, in its slot */
#define DECISION_NONE		0
#define DECISION_APPROVED	1
#define DECISION_DENIED		2

/*
 * One slot per PGPROC: the request its backend's statement waits for.
 * pid guards against a slot read after its backend left.
 */
typedef struct Waiter
{
	int64		request_id;		/* 0: not waiting */
	int			pid;
	int			decision;
} Waiter;

typedef struct WaitShared
{
	LWLock	   *lock;
	Waiter		slots[FLEXIBLE_ARRAY_MEMBER];
} WaitShared;

static WaitShared *waits = NULL;
static bool exit_hook_set = false;

/* What an 'approve' rule asks of the statement being decided. */
typedef struct AgApprovalNeed
{
	AgApprovalRule rule;
	char	   *what;			/* the event, for messages */
} AgApprovalNeed;

/* Decisions of this transaction (approve/deny), acted on at commit. */
typedef struct Decided
{
	int64		id;
	AgDecision	decision;		/* APPROVED, DENIED, or APPROVAL (a vote) */
	char	   *role_name;
	char	   *identity;
	char	   *session_id;
	char	   *statement;
	char	   *note;
	int64		rule_id;
	bool		wait;			/* the request's statement waits */
	bool		woken;			/* at commit: its waiter was woken */
} Decided;

static List *decided = NIL;		/* in TopTransactionContext */

static int
nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS;
}

static Size
waits_size(void)
{
	return add_size(offsetof(WaitShared, slots), mul_size(nslots(), sizeof(Waiter)));
}

void
ag_approval_shmem_request(void)
{
	RequestAddinShmemSpace(waits_size());
	RequestNamedLWLockTranche("agentgate approvals", 1);
}

void
ag_approval_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	waits = ShmemInitStruct("agentgate approval waiters", waits_size(), &found);
	if (!found)
	{
		memset(waits->slots, 0, mul_size(nslots(), sizeof(Waiter)));
		waits->lock = &(GetNamedLWLockTranche("agentgate approvals"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ----------------------------------------------------------------
 *		The waiter's slot
 * ----------------------------------------------------------------
 */

/* Called by the worker that made (or found) a waiting statement's request. */
void
ag_approval_note_request(int64 request_id, int procno, int pid)
{
	Waiter	   *w;

	if (waits == NULL || procno < 0 || procno >= nslots())
		return;
	w = &waits->slots[procno];
	LWLockAcquire(waits->lock, LW_EXCLUSIVE);
	if (w->pid == pid && w->request_id == -1)
	{
		w->request_id = request_id;
		w->decision = DECISION_NONE;
	}
	LWLockRelease(waits->lock);
}

/* This backend will wait: its slot takes the request the worker names. */
static void
slot_arm(void)
{
	Waiter	   *w = &waits->slots[MyProc->pgprocno];

	LWLockAcquire(waits->lock, LW_EXCLUSIVE);
	w->pid = MyProcPid;
	w->request_id = -1;
	w->decision = DECISION_NONE;
	LWLockRelease(waits->lock);
}

/* Leaves the slot; returns the decision that arrived, if any. */
static int
slot_clear(int64 *request_id)
{
	Waiter	   *w;
	int			d;

	if (waits == NULL || MyProc == NULL)
		return DECISION_NONE;
	w = &waits->slots[MyProc->pgprocno];
	LWLockAcquire(waits->lock, LW_EXCLUSIVE);
	d = w->pid == MyProcPid ? w->decision : DECISION_NONE;
	if (request_id)
		*request_id = w->pid == MyProcPid ? w->request_id : 0;
	w->request_id = 0;
	w->pid = 0;
	w->decision = DECISION_NONE;
	LWLockRelease(waits->lock);
	return d;
}

static int
slot_decision(void)
{
	Waiter	   *w = &waits->slots[MyProc->pgprocno];
	int			d;

	LWLockAcquire(waits->lock, LW_SHARED);
	d = w->decision;
	LWLockRelease(waits->lock);
	return d;
}

/*
 * A backend that exits while it waits (pg_terminate_backend, a FATAL, the
 * client gone): its request is cancelled, and it is no longer waited for
 * either way (the slot is cleared).
 */
static void
approval_exit(int code, Datum arg)
{
	int64		id = 0;

	(void) slot_clear(&id);
	if (id > 0)
		ag_approval_end(AG_APPROVAL_OP_CANCEL, id);
}

/* ----------------------------------------------------------------
 *		Binding: the fingerprint
 * ----------------------------------------------------------------
 */

/* The bound parameter values as text; NULL when there are none. */
static List *
param_texts(ParamListInfo params, bool **nulls_out)
{
	List	   *out = NIL;
	bool	   *nulls;
	int			i;

	*nulls_out = NULL;
	if (params == NULL || params->numParams <= 0)
		return NIL;
	nulls = palloc0(sizeof(bool) * params->numParams);
	for (i = 0; i < params->numParams; i++)
	{
		ParamExternData ws;
		ParamExternData *p;

		if (params->paramFetch != NULL)
			p = params->paramFetch(params, i + 1, false, &ws);
		else
			p = &params->params[i];
		if (p == NULL || p->isnull || !OidIsValid(p->ptype))
		{
			nulls[i] = true;
			out = lappend(out, psprintf("%u", p ? p->ptype : InvalidOid));
			continue;
		}
		{
			Oid			outfn;
			bool		varlena;

			getTypeOutputInfo(p->ptype, &outfn, &varlena);
			out = lappend(out, OidOutputFunctionCall(outfn, p->value));
		}
	}
	*nulls_out = nulls;
	return out;
}

static void
hash_add(pg_cryptohash_ctx *ctx, const void *data, uint32 len)
{
	if (pg_cryptohash_update(ctx, (const uint8 *) &len, sizeof(len)) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
		elog(ERROR, "agentgate: could not compute an approval fingerprint");
}

/*
 * The statement's fingerprint: its exact text, every parameter (type and
 * value, or NULL), the session user and the database, each with its length
 * so that no two different inputs run together.
 */
static void
fingerprint(const char *sql, int len, List *params, bool *nulls,
			char out[AG_APPROVAL_FP_LEN + 1])
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	Oid			ids[2] = {ag_session_role(), MyDatabaseId};
	ListCell   *lc;
	int			i = 0;

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "agentgate: could not compute an approval fingerprint");
	hash_add(ctx, "agentgate approval 1", 20);
	hash_add(ctx, ids, sizeof(ids));
	hash_add(ctx, sql, len);
	foreach(lc, params)
	{
		char		isnull = nulls[i++] ? 'n' : 'v';
		const char *v = lfirst(lc);

		hash_add(ctx, &isnull, 1);
		hash_add(ctx, v, strlen(v));
	}
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "agentgate: could not compute an approval fingerprint");
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), out);
	out[AG_APPROVAL_FP_LEN] = '\0';
}

/* The parameters as a text[] literal for the queue, or NULL. */
static char *
params_literal(List *params, bool *nulls)
{
	Datum	   *elems;
	int			n = list_length(params);
	int			dims[1];
	int			lbs[1] = {1};
	ListCell   *lc;
	int			i = 0;
	ArrayType  *arr;

	if (n == 0)
		return NULL;
	elems = palloc(sizeof(Datum) * n);
	foreach(lc, params)
	{
		elems[i] = CStringGetTextDatum((char *) lfirst(lc));
		i++;
	}
	dims[0] = n;
	arr = construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false,
							 TYPALIGN_INT);
	return OidOutputFunctionCall(F_ARRAY_OUT, PointerGetDatum(arr));
}

/* ----------------------------------------------------------------
 *		The gate
 * ----------------------------------------------------------------
 */

static void
refuse_denied(int64 id, const char *note, const char *what, int level)
{
	ag_verdict_note(level, AG_DECISION_DENIED, 0);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: %s was denied (request %lld: %s); do not run it again",
					what, (long long) id, note && note[0] ? note : "no reason given"),
			 errdetail("An approver denied approval request %lld for exactly this statement.",
					   (long long) id),
			 errhint("Do something else, or ask a person why; SELECT * FROM agentgate.my_approvals() shows the decision.")));
}

static void
refuse_pending(int64 id, AgApprovalNeed *need, bool is_new, int level)
{
	const char *reason = need->rule.reason && need->rule.reason[0] ?
		need->rule.reason : "(no reason given)";
	char	   *approvers = GetUserNameFromId(need->rule.approvers, true);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: %s needs approval (request %lld%s); once it is approved, run the identical statement again",
					need->what, (long long) id, is_new ? "" : ", still pending"),
			 errdetail("Rule %lld: %s. Request %lld waits for %d approval(s) by members of %s; it expires in %lld seconds.",
					   (long long) need->rule.rule_id, reason, (long long) id,
					   need->rule.min_approvals, approvers ? approvers : "?",
					   (long long) (need->rule.timeout_ms / 1000)),
			 errhint("Tell the user that request %lld waits for a person's approval. Check it with SELECT status FROM agentgate.my_approvals() WHERE id = %lld; when it is approved, re-run exactly the same statement with the same parameter values (any change needs a new approval; an approval allows one execution).",
					 (long long) id, (long long) id)));
}

/* A waiting statement gives up: say so in the queue, then raise. */
static void
give_up(int64 id, AgApprovalOp op)
{
	if (id > 0)
		ag_approval_end(op, id);
}

/*
 * Sleep until the request is decided, it expires, or the wait is ended
 * from outside.  Returns the decision.
 */
static int
wait_for_decision(int64 id, AgApprovalNeed *need, int level)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   need->rule.timeout_ms);
	pgsocket	sock = (MyProcPort && MyProcPort->sock != PGINVALID_SOCKET) ?
		MyProcPort->sock : PGINVALID_SOCKET;
	int			d = DECISION_NONE;

	pgstat_report_activity(STATE_RUNNING, NULL);
	for (;;)
	{
		long		ms;
		int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
		int			rc;

		d = slot_decision();
		if (d != DECISION_NONE)
			break;
		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (ms <= 0)
			break;

		/*
		 * A client that went away must never have its statement run: watch
		 * its socket for closing (PgBouncer closes the server connection of
		 * a client that disconnects while it is not ready).
		 */
		if (sock != PGINVALID_SOCKET)
			events |= WL_SOCKET_CLOSED;
		rc = WaitLatchOrSocket(MyLatch, events, sock, ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (rc & WL_SOCKET_CLOSED)
		{
			give_up(id, AG_APPROVAL_OP_CANCEL);
			(void) slot_clear(NULL);
			ereport(FATAL,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("agentgate: client disconnected while its statement waited for approval request %lld",
							(long long) id),
					 errdetail("The statement did not run; the request is cancelled.")));
		}
		CHECK_FOR_INTERRUPTS();
	}
	return d;
}

/* The gate's work, once the job is ready (see gate()). */
static void
gate_run(AgApprovalJob *job, AgApprovalNeed *need, const char *stmt,
		 const char *params, int level)
{
	AgApprovalJob *res = job;
	int64		id;
	int			d;
	int			d2;
	uint64		gen;

	ag_approval_run(job, stmt, params);
	id = res->result_id;
	if (strcmp(res->status, "executed") == 0)
	{
		(void) slot_clear(NULL);
		ag_verdict_note(level, AG_DECISION_APPROVED, need->rule.rule_id);
		return;
	}
	if (strcmp(res->status, "denied") == 0)
		refuse_denied(id, res->note, need->what, level);
	if (strcmp(res->status, "requested") != 0 &&
		strcmp(res->status, "pending") != 0)
		elog(ERROR, "agentgate: unexpected approval status \"%s\"", res->status);
	if (need->rule.mode == AG_APPROVAL_RETRY)
		refuse_pending(id, need, strcmp(res->status, "requested") == 0, level);

	/* wait: the request's own audit row, then sleep */
	if (strcmp(res->status, "requested") == 0)
		ag_audit_approval_row(AG_DECISION_APPROVAL, NULL, NULL, NULL, stmt,
							  psprintf("approval request %lld: waiting", (long long) id),
							  need->rule.rule_id);
	gen = ag_rules_generation();
	d = wait_for_decision(id, need, level);
	d2 = slot_clear(NULL);		/* a decision may have come meanwhile */
	if (d == DECISION_NONE)
		d = d2;
	if (d == DECISION_NONE)
	{
		give_up(id, AG_APPROVAL_OP_EXPIRE);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: %s was not approved in time (request %lld expired); it did not run",
						need->what, (long long) id),
				 errdetail("Rule %lld waits at most %lld seconds for an approval.",
						   (long long) need->rule.rule_id,
						   (long long) (need->rule.timeout_ms / 1000)),
				 errhint("Ask a person to approve it sooner, or try again later.")));
	}
	if (d == DECISION_DENIED)
		refuse_denied(id, "see agentgate.my_approvals()", need->what, level);

	/*
	 * Policy is decided again at execution: a rule changed while the
	 * statement waited (a DBA blocked what it does, say) is not overtaken
	 * by the approval.  Deciding it again here would ask again; refuse it
	 * instead, failing closed, and let the agent run it anew under the
	 * rules as they are.
	 */
	AcceptInvalidationMessages();
	if (ag_rules_generation() != gen)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: %s was approved (request %lld), but the rules changed while it waited; it did not run",
						need->what, (long long) id),
				 errdetail("A statement runs only under the rules in force when it runs."),
				 errhint("Run the identical statement again: it is decided under the current rules.")));

	/*
	 * Approved: the approver's transaction marked the request executed for
	 * this statement alone (only this slot was woken), so it runs now.
	 */
	ag_verdict_note(level, AG_DECISION_APPROVED, need->rule.rule_id);
}

/* gate_run, leaving the waiter's slot whatever happens. */
static void
gate_guarded(AgApprovalJob *job, AgApprovalNeed *need, const char *stmt,
			 const char *params, int level)
{
	PG_TRY();
	{
		gate_run(job, need, stmt, params, level);
	}
	PG_CATCH();
	{
		int64		waited = 0;

		/* a cancel, a timeout, an error: nobody waits any more */
		(void) slot_clear(&waited);
		if (waited > 0)
			give_up(waited, AG_APPROVAL_OP_CANCEL);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
gate(AgApprovalNeed *need, const char *sql, int sql_len, ParamListInfo params,
	 int level)
{
	AgApprovalJob job;
	List	   *ptexts;
	bool	   *pnulls;
	char	   *stmt;
	char	   *plit;
	const char *sid;

	if (IsParallelWorker() || MyProc == NULL || waits == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: %s needs approval, which cannot be asked for here", need->what),
				 errdetail("Approvals are asked for by the session's own backend, not a parallel worker.")));
	if (sql == NULL)
	{
		sql = debug_query_string ? debug_query_string : "";
		sql_len = strlen(sql);
	}
	stmt = pnstrdup(sql, sql_len);
	ptexts = param_texts(params, &pnulls);
	plit = params_literal(ptexts, pnulls);

	memset(&job, 0, sizeof(job));
	job.op = AG_APPROVAL_OP_REQUEST;
	job.roleid = ag_session_role();
	job.mode = need->rule.mode;
	job.rule_id = need->rule.rule_id;
	job.timeout_ms = need->rule.timeout_ms;
	job.approvers = need->rule.approvers;
	job.min_approvals = need->rule.min_approvals;
	fingerprint(stmt, strlen(stmt), ptexts, pnulls, job.fingerprint);
	sid = ag_session_id(GetUserNameFromId(job.roleid, false));
	strlcpy(job.session_id, sid ? sid : "", sizeof(job.session_id));

	if (need->rule.mode == AG_APPROVAL_WAIT)
	{
		if (!exit_hook_set)
		{
			before_shmem_exit(approval_exit, (Datum) 0);
			exit_hook_set = true;
		}
		slot_arm();
	}

	gate_guarded(&job, need, stmt, plit, level);
}

/*
 * Policy found that an event of the statement at this level needs an
 * approval.  Kept for the statement's gate when it is still to come, else
 * gated now.
 */
void
ag_approval_needed(AgEvent *ev, AgApprovalRule *rule, int level)
{
	AgApprovalNeed *need;
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

	need = palloc0(sizeof(AgApprovalNeed));
	need->rule = *rule;
	need->rule.reason = pstrdup(rule->reason ? rule->reason : "");
	MemoryContextSwitchTo(old);
	need->what = MemoryContextStrdup(TopTransactionContext, ag_describe_event(ev));

	if (ag_stmt && ag_stmt->level == level && !ag_stmt->approval_gated)
	{
		/* the first approve rule decides how the statement is asked for */
		if (ag_stmt->approval == NULL)
			ag_stmt->approval = need;
		return;
	}
	gate(need, ag_stmt ? ag_stmt->sql : NULL, ag_stmt ? ag_stmt->sql_len : 0,
		 ag_stmt ? ag_stmt->params : NULL, level);
}

/* The statement is decided: ask for, wait for or use its approval. */
void
ag_approval_gate(AgStmt *st)
{
	AgApprovalNeed *need = st->approval;

	st->approval_gated = true;
	if (need == NULL)
		return;
	st->approval = NULL;
	gate(need, st->sql, st->sql_len, st->params, st->level);
}

/* ----------------------------------------------------------------
 *		The approver's side
 * ----------------------------------------------------------------
 */

static void
approval_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (decided == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* the decision's audit row; failing here aborts the decision */
			foreach(lc, decided)
			{
				Decided    *d = lfirst(lc);

				ag_audit_approval_row(d->decision, d->role_name, d->identity,
									  d->session_id, d->statement, d->note,
									  d->rule_id);
			}
			break;
		case XACT_EVENT_COMMIT:

			/*
			 * Committed: wake the statements waiting for these decisions.
			 * Nothing here may fail; a lock and a latch only.
			 */
			if (waits != NULL)
			{
				LWLockAcquire(waits->lock, LW_EXCLUSIVE);
				foreach(lc, decided)
				{
					Decided    *d = lfirst(lc);
					int			i;

					if (d->decision != AG_DECISION_APPROVED &&
						d->decision != AG_DECISION_DENIED)
						continue;
					d->woken = false;
					for (i = 0; i < nslots() && !d->woken; i++)
					{
						Waiter	   *w = &waits->slots[i];

						if (w->request_id != d->id || w->pid == 0 ||
							w->decision != DECISION_NONE)
							continue;
						w->decision = d->decision == AG_DECISION_APPROVED ?
							DECISION_APPROVED : DECISION_DENIED;
						SetLatch(&ProcGlobal->allProcs[i].procLatch);
						d->woken = true;	/* one statement per approval */
					}
				}
				LWLockRelease(waits->lock);

				/*
				 * A waiting statement's approval whose statement left in the
				 * meantime was marked executed for nothing: cancelled.
				 */
				foreach(lc, decided)
				{
					Decided    *d = lfirst(lc);

					if (d->wait && d->decision == AG_DECISION_APPROVED && !d->woken)
						ag_approval_end(AG_APPROVAL_OP_CANCEL, d->id);
				}
			}
			decided = NIL;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			decided = NIL;		/* nothing was decided */
			break;
		default:
			break;
	}
}

static char *
text_field(HeapTupleHeader row, const char *name)
{
	bool		isnull;
	Datum		d = GetAttributeByName(row, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * _approval_decided(request row, status, note): called by _approval_vote
 * for each vote; acted on when the transaction commits.
 */
Datum
agentgate_approval_decided(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row;
	char	   *status;
	MemoryContext old;
	Decided    *d;
	bool		isnull;
	Datum		v;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_VOID();
	if (ag_session_is_governed())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: agent roles may not approve or deny requests")));
	row = PG_GETARG_HEAPTUPLEHEADER(0);
	status = text_to_cstring(PG_GETARG_TEXT_PP(1));

	old = MemoryContextSwitchTo(TopTransactionContext);
	d = palloc0(sizeof(Decided));
	v = GetAttributeByName(row, "id", &isnull);
	d->id = isnull ? 0 : DatumGetInt64(v);
	v = GetAttributeByName(row, "rule_id", &isnull);
	d->rule_id = isnull ? 0 : DatumGetInt64(v);
	v = GetAttributeByName(row, "role_name", &isnull);
	d->role_name = isnull ? pstrdup("") : pstrdup(NameStr(*DatumGetName(v)));
	d->identity = text_field(row, "identity");
	d->session_id = text_field(row, "session_id");
	d->statement = text_field(row, "statement");
	{
		char	   *mode = text_field(row, "mode");

		d->wait = mode && strcmp(mode, "wait") == 0;
	}
	d->note = PG_ARGISNULL(2) ? pstrdup(status) :
		text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(status, "approved") == 0)
		d->decision = AG_DECISION_APPROVED;
	else if (strcmp(status, "denied") == 0)
		d->decision = AG_DECISION_DENIED;
	else
		d->decision = AG_DECISION_APPROVAL;
	decided = lappend(decided, d);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

/* _approval_governed(): is session_user an agent? */
Datum
agentgate_approval_governed(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ag_session_is_governed());
}

/*
 * _approval_member(role, group): is role a member of group, superuser or
 * not?  A superuser approves only as a member, like anyone else: the
 * approver role is who the DBA chose.
 */
Datum
agentgate_approval_member(PG_FUNCTION_ARGS)
{
	Oid			role = PG_GETARG_OID(0);
	Oid			grp = PG_GETARG_OID(1);

	PG_RETURN_BOOL(OidIsValid(role) && OidIsValid(grp) &&
				   is_member_of_role_nosuper(role, grp));
}

/* _approval_waiting(id): does a live statement wait for this request? */
Datum
agentgate_approval_waiting(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	bool		found = false;
	int			i;

	if (waits == NULL)
		PG_RETURN_BOOL(false);
	LWLockAcquire(waits->lock, LW_SHARED);
	for (i = 0; i < nslots() && !found; i++)
		found = waits->slots[i].request_id == id && waits->slots[i].pid != 0;
	LWLockRelease(waits->lock);
	PG_RETURN_BOOL(found);
}

void
ag_approval_init(void)
{
	RegisterXactCallback(approval_xact_callback, NULL);
}
