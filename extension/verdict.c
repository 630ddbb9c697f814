/*-------------------------------------------------------------------------
 *
 * verdict.c
 *	  Per-statement decisions, handed from policy to audit (see verdict.h).
 *
 * Levels deeper than AG_VERDICT_MAX_DEPTH share the last slot: recursion
 * that deep is rare, and sharing can only make a verdict stricter.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/twophase.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "verdict.h"

static AgVerdict verdicts[AG_VERDICT_MAX_DEPTH];

/*
 * A parallel worker's refusal, for its leader.  The statements a worker
 * decides (those of a function it runs) are the leader's statement's; the
 * worker's error reaches the leader, but its verdict, a backend-local
 * note, would not, and the leader's audit row would say "error" where the
 * policy refused.  So a worker that refuses writes the rule into its
 * leader's slot here (one per PGPROC), and the leader takes it up when it
 * reads the verdict of its failed statement.  rule_id + 1; 0 = nothing.
 */
static pg_atomic_uint64 *worker_blocks = NULL;

static Size
worker_blocks_size(void)
{
	return mul_size(MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts,
					sizeof(pg_atomic_uint64));
}

void
ag_verdict_shmem_request(void)
{
	RequestAddinShmemSpace(worker_blocks_size());
}

void
ag_verdict_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	worker_blocks = ShmemInitStruct("agentgate parallel worker verdicts",
									worker_blocks_size(), &found);
	if (!found)
	{
		int			n = MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;

		for (int i = 0; i < n; i++)
			pg_atomic_init_u64(&worker_blocks[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* A worker's refusal, to its leader's slot. */
static void
tell_leader(int64 rule_id)
{
	PGPROC	   *leader = MyProc ? MyProc->lockGroupLeader : NULL;

	if (worker_blocks == NULL || leader == NULL || leader == MyProc)
		return;
	pg_atomic_write_u64(&worker_blocks[leader->pgprocno], (uint64) rule_id + 1);
}

/* The leader takes up (and clears) what its workers refused. */
static bool
take_worker_block(int64 *rule_id)
{
	uint64		v;

	if (worker_blocks == NULL || MyProc == NULL || IsParallelWorker())
		return false;
	v = pg_atomic_exchange_u64(&worker_blocks[MyProc->pgprocno], 0);
	if (v == 0)
		return false;
	*rule_id = (int64) (v - 1);
	return true;
}

static inline int
slot(int level)
{
	if (level < 0)
		return 0;
	return level < AG_VERDICT_MAX_DEPTH ? level : AG_VERDICT_MAX_DEPTH - 1;
}

void
ag_verdict_note(int level, AgDecision decision, int64 rule_id)
{
	AgVerdict  *v = &verdicts[slot(level)];

	Assert(decision <= AG_DECISION_LAST_VERDICT);
	if (decision == AG_DECISION_BLOCKED && IsParallelWorker())
		tell_leader(rule_id);
	if (decision >= v->decision)
	{
		v->decision = decision;
		v->rule_id = rule_id;
	}
}

AgVerdict
ag_verdict_get(int level)
{
	return verdicts[slot(level)];
}

/*
 * The verdict of a statement that failed: its own, or a refusal one of its
 * parallel workers made below it.
 */
AgVerdict
ag_verdict_get_failed(int level)
{
	AgVerdict	v = verdicts[slot(level)];
	int64		rule_id;

	if (take_worker_block(&rule_id) && v.decision < AG_DECISION_BLOCKED)
	{
		v.decision = AG_DECISION_BLOCKED;
		v.rule_id = rule_id;
	}
	return v;
}

void
ag_verdict_reset(int level)
{
	verdicts[slot(level)].decision = AG_DECISION_NONE;
	verdicts[slot(level)].rule_id = 0;
	/* a worker's refusal belongs to the statement that just ended */
	if (level == 0)
	{
		int64		unused;

		(void) take_worker_block(&unused);
	}
}

/* The one list of decision names (see decision.h). */
const AgDecisionInfo ag_decisions[AG_DECISION_COUNT] = {
	[AG_DECISION_NONE] = {"none", NULL},
	[AG_DECISION_ALLOWED] = {"allowed", "allowed"},
	[AG_DECISION_LOGGED] = {"logged", "logged"},
	[AG_DECISION_APPROVAL] = {"approval required", NULL},
	[AG_DECISION_MONITORED] = {"monitored", "monitored"},
	[AG_DECISION_BLOCKED] = {"blocked", "blocked"},
	[AG_DECISION_ERROR] = {"error", "errors"},
	[AG_DECISION_MASKED] = {"masked", "masked"},
	[AG_DECISION_APPROVED] = {"approved", "approved"},
	[AG_DECISION_DENIED] = {"denied", "denied"},
	[AG_DECISION_GAP] = {"gap", NULL},
};

const char *
ag_decision_name(AgDecision d)
{
	if ((int) d < 0 || d >= AG_DECISION_COUNT)
		return "unknown";
	return ag_decisions[d].name;
}
