/*-------------------------------------------------------------------------
 *
 * audit_ring.c
 *	  The shared-memory ring between backends and the audit worker.
 *
 * Positions (head, tail) count slots and only grow; a slot's index is
 * position % nslots.  Records also carry their own sequence number (rseq),
 * counted per ring incarnation ("epoch").  Reservation takes a spinlock for
 * a few instructions; the copy into the slots and the publication happen
 * outside it, with no ereport and no palloc between reservation and
 * publication, so a reserved record is always published.  The worker reads
 * only records whose header says they are complete, and in order, so one
 * slow writer delays the flush of later records by the time of a memcpy.
 *
 * committed_pos and flushed_rseq move together, under the spinlock, once
 * the worker's transaction has committed: a backend that sees
 * flushed_rseq > its rseq knows its row is committed.  The worker commits
 * without waiting for its WAL flush and publishes its commit record's end
 * (flushed_lsn, written before flushed_rseq): a waiting backend whose own
 * commit flushes WAL past that point needs nothing more, because WAL is
 * flushed in order; any other waiter flushes up to it itself
 * (audit.c, wait_durable).  The slots are freed (tail moves up to
 * committed_pos) only once WAL is flushed past the commit, by whoever
 * flushed it: usually the waiting backend's own commit, otherwise the
 * worker after a few milliseconds.  So a crash can lose only records that
 * still hold slots, and the loss stays bounded by the ring size.
 *
 * Crash accounting: the postmaster writes the epoch and the number of
 * records appended into a small file when its shared memory goes away
 * (clean shutdown, crash reinitialisation, immediate shutdown).  The next
 * incarnation reads it, and the worker compares it with the last sequence
 * number committed for that epoch (agentgate.audit_state) to write a gap
 * row with the exact count of records that never reached the table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "agentgate.h"
#include "audit.h"

#define AG_AUDIT_STATE_FILE "agentgate_audit.state"

typedef struct AgAuditRing
{
	slock_t		mutex;
	uint64		head;			/* next slot position to reserve */
	uint64		tail;			/* first slot position not yet freed */
	uint64		committed_pos;	/* first slot position not yet committed */
	uint64		next_rseq;		/* next record sequence number */
	pg_atomic_uint64 flushed_rseq;	/* every rseq below this is committed */
	pg_atomic_uint64 flushed_lsn;	/* end of the commit record that did it */
	pg_atomic_uint64 dropped;	/* records dropped, not yet reported */
	pg_atomic_uint64 held;		/* rows backends hold to write themselves
								 * (audit.c, local commit): lost with a
								 * crash, so counted as appended */
	int64		epoch;			/* identifies this incarnation of the ring */
	int			worker_pgprocno;	/* -1 when no worker runs */
	bool		prev_valid;		/* the previous incarnation left a state */
	int64		prev_epoch;
	uint64		prev_head;		/* records appended in that incarnation */
	uint32		nslots;
	ConditionVariable flushed_cv;	/* broadcast after each commit */
} AgAuditRing;

/* agentgate.audit_ring_slots (read at server start) */
int			ag_audit_ring_slots = 8192;

static AgAuditRing *ring = NULL;
static char *ring_data = NULL;

/* The ring's setting; called from _PG_init (via ag_audit_init). */
void
ag_audit_ring_init(void)
{
	DefineCustomIntVariable("agentgate.audit_ring_slots",
							"Slots of the shared-memory audit ring (512 bytes each).",
							"Bounds the records that a crash can lose.",
							&ag_audit_ring_slots, 8192, 64, 1024 * 1024,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

static Size
ring_header_size(void)
{
	return BUFFERALIGN(sizeof(AgAuditRing));
}

static Size
ring_size(void)
{
	return add_size(ring_header_size(),
					mul_size(ag_audit_ring_slots, AG_AUDIT_SLOT_SIZE));
}

/* Called from the shmem_request_hook (PG15: not from _PG_init). */
void
ag_audit_ring_request(void)
{
	RequestAddinShmemSpace(ring_size());
}

/* Postmaster only: leave the incarnation's counters for the next one. */
static void
ring_shmem_exit(int code, Datum arg)
{
	FILE	   *f;

	if (ring == NULL)
		return;

	/*
	 * No spinlock: after a crash the lock may be held by a dead process, and
	 * no process that could append is alive any more.
	 */
	f = fopen(AG_AUDIT_STATE_FILE ".tmp", "w");
	if (f == NULL)
		return;
	fprintf(f, "%lld %llu\n", (long long) ring->epoch,
			(unsigned long long) (ring->next_rseq +
								  pg_atomic_read_u64(&ring->held)));
	if (fclose(f) == 0)
		(void) rename(AG_AUDIT_STATE_FILE ".tmp", AG_AUDIT_STATE_FILE);
	ring = NULL;
	ring_data = NULL;
}

static void
ring_read_prev(void)
{
	FILE	   *f = fopen(AG_AUDIT_STATE_FILE, "r");
	long long	epoch;
	unsigned long long head;

	if (f == NULL)
		return;
	if (fscanf(f, "%lld %llu", &epoch, &head) == 2)
	{
		ring->prev_valid = true;
		ring->prev_epoch = epoch;
		ring->prev_head = head;
	}
	fclose(f);
}

/* Called from the shmem_startup_hook. */
void
ag_audit_ring_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ring = ShmemInitStruct("agentgate audit ring", ring_size(), &found);
	ring_data = (char *) ring + ring_header_size();
	if (!found)
	{
		SpinLockInit(&ring->mutex);
		ring->head = 0;
		ring->tail = 0;
		ring->committed_pos = 0;
		ring->next_rseq = 0;
		pg_atomic_init_u64(&ring->flushed_rseq, 0);
		pg_atomic_init_u64(&ring->flushed_lsn, 0);
		pg_atomic_init_u64(&ring->dropped, 0);
		pg_atomic_init_u64(&ring->held, 0);
		/* microseconds since 2000: distinct for every incarnation */
		ring->epoch = GetCurrentTimestamp();
		ring->worker_pgprocno = -1;
		ring->prev_valid = false;
		ring->nslots = ag_audit_ring_slots;
		ConditionVariableInit(&ring->flushed_cv);
		/* the slots' ready words must not look published */
		memset(ring_data, 0, (Size) ag_audit_ring_slots * AG_AUDIT_SLOT_SIZE);
		if (!IsUnderPostmaster)
			ring_read_prev();
	}
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
		on_shmem_exit(ring_shmem_exit, (Datum) 0);
}

bool
ag_audit_ring_ready(void)
{
	return ring != NULL;
}

static inline AgAuditRecord *
slot_at(uint64 pos)
{
	return (AgAuditRecord *) (ring_data + (pos % ring->nslots) * AG_AUDIT_SLOT_SIZE);
}

/* Copy len bytes into the ring at byte offset off (mod ring bytes). */
static void
ring_copy_in(Size off, const char *src, Size len)
{
	Size		total = (Size) ring->nslots * AG_AUDIT_SLOT_SIZE;

	off %= total;
	while (len > 0)
	{
		Size		n = Min(len, total - off);

		memcpy(ring_data + off, src, n);
		src += n;
		len -= n;
		off = 0;
	}
}

static void
ring_copy_out(Size off, char *dst, Size len)
{
	Size		total = (Size) ring->nslots * AG_AUDIT_SLOT_SIZE;

	off %= total;
	while (len > 0)
	{
		Size		n = Min(len, total - off);

		memcpy(dst, ring_data + off, n);
		dst += n;
		len -= n;
		off = 0;
	}
}

uint32
ag_audit_slots_needed(AgAuditEntry *e)
{
	Size		total = sizeof(AgAuditRecord) + e->hdr.stmt_len +
		e->hdr.err_len + e->hdr.rel_len + e->hdr.mask_len + e->hdr.chain_len;

	return (uint32) ((total + AG_AUDIT_SLOT_SIZE - 1) / AG_AUDIT_SLOT_SIZE);
}

static void
wake_worker(void)
{
	int			procno = ring->worker_pgprocno;

	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * Append one record.  Never raises an error: the caller decides what a full
 * ring means.  The caller has already clipped the text so the record fits
 * in a quarter of the ring.
 */
AgAppendResult
ag_audit_ring_append(AgAuditEntry *e, uint64 *rseq_out)
{
	uint32		nslots;
	uint64		pos;
	uint64		rseq;
	uint64		used;
	uint64		uncommitted;
	AgAuditRecord *rec;
	Size		off;

	if (ring == NULL)
		return AG_APPEND_NO_RING;
	nslots = ag_audit_slots_needed(e);

	SpinLockAcquire(&ring->mutex);
	if (ring->head + nslots - ring->tail > ring->nslots)
	{
		SpinLockRelease(&ring->mutex);
		return AG_APPEND_FULL;
	}
	pos = ring->head;
	ring->head += nslots;
	rseq = ring->next_rseq++;
	used = ring->head - ring->tail;
	uncommitted = ring->head - ring->committed_pos;
	SpinLockRelease(&ring->mutex);

	/* From here to the publication: no ereport, no palloc. */
	rec = slot_at(pos);
	e->hdr.rseq = rseq;
	e->hdr.nslots = nslots;
	e->hdr.ready = 0;
	memcpy((char *) rec + sizeof(rec->ready),
		   (char *) &e->hdr + sizeof(rec->ready),
		   sizeof(AgAuditRecord) - sizeof(rec->ready));
	off = (pos % ring->nslots) * AG_AUDIT_SLOT_SIZE + sizeof(AgAuditRecord);
	if (e->hdr.stmt_len)
		ring_copy_in(off, e->stmt, e->hdr.stmt_len);
	off += e->hdr.stmt_len;
	if (e->hdr.err_len)
		ring_copy_in(off, e->err, e->hdr.err_len);
	off += e->hdr.err_len;
	if (e->hdr.rel_len)
		ring_copy_in(off, e->rels, e->hdr.rel_len);
	off += e->hdr.rel_len;
	if (e->hdr.mask_len)
		ring_copy_in(off, e->masked, e->hdr.mask_len);
	off += e->hdr.mask_len;
	if (e->hdr.chain_len)
		ring_copy_in(off, e->chain, e->hdr.chain_len);
	pg_write_barrier();
	rec->ready = rseq + 1;

	/*
	 * Wake the worker when a quarter of the ring waits to be committed, not
	 * when a quarter is merely in use: committed slots stay in use until WAL
	 * is flushed past them (a few milliseconds), and counting them woke the
	 * worker for every single record appended meanwhile -- a signal per
	 * statement and batches of a few rows, each its own transaction.  Near
	 * full, wake it anyway: it then flushes WAL and frees them at once.
	 */
	if (uncommitted >= ring->nslots / 4 || used >= ring->nslots / 4 * 3)
		wake_worker();
	if (rseq_out)
		*rseq_out = rseq;
	return AG_APPEND_OK;
}

/*
 * Rows a backend holds in its own memory until its transaction commits them
 * (delta > 0) or hands them on (delta < 0).  A crash loses them like
 * unwritten records, so the state file counts them as appended and the gap
 * row covers them.
 */
void
ag_audit_ring_hold(int64 delta)
{
	if (ring == NULL)
		return;
	if (delta >= 0)
		pg_atomic_fetch_add_u64(&ring->held, (uint64) delta);
	else
		pg_atomic_fetch_sub_u64(&ring->held, (uint64) -delta);
}

bool
ag_audit_ring_has_room(uint32 nslots)
{
	bool		room;

	if (ring == NULL)
		return true;
	SpinLockAcquire(&ring->mutex);
	room = ring->head + nslots - ring->tail <= ring->nslots;
	SpinLockRelease(&ring->mutex);
	return room;
}

void
ag_audit_ring_count_drop(void)
{
	if (ring != NULL)
		pg_atomic_fetch_add_u64(&ring->dropped, 1);
}

/* Records appended so far (the next rseq). */
uint64
ag_audit_ring_appended(void)
{
	uint64		r;

	if (ring == NULL)
		return 0;
	SpinLockAcquire(&ring->mutex);
	r = ring->next_rseq;
	SpinLockRelease(&ring->mutex);
	return r;
}

/* Records appended but not yet committed. */
uint64
ag_audit_ring_pending(void)
{
	uint64		r;

	if (ring == NULL)
		return 0;
	SpinLockAcquire(&ring->mutex);
	r = ring->next_rseq - pg_atomic_read_u64(&ring->flushed_rseq);
	SpinLockRelease(&ring->mutex);
	return r;
}

/*
 * Wait on the flush condition variable until cond(arg) holds or timeout_ms
 * passes (timeout_ms < 0: no limit).  Interruptible: a cancel or
 * statement_timeout ends the wait with the usual error.
 */
static bool
wait_until(bool (*cond) (uint64, uint64), uint64 a, uint64 b, int timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		ok = true;

	if (cond(a, b))
		return true;
	wake_worker();
	ConditionVariablePrepareToSleep(&ring->flushed_cv);
	while (!cond(a, b))
	{
		long		left = 1000;

		if (timeout_ms >= 0)
		{
			long		elapsed = (long) ((GetCurrentTimestamp() - start) / 1000);

			if (elapsed >= timeout_ms)
			{
				ok = false;
				break;
			}
			left = Min(left, timeout_ms - elapsed);
		}
		wake_worker();
		(void) ConditionVariableTimedSleep(&ring->flushed_cv, left,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return ok;
}

static bool
cond_flushed(uint64 rseq, uint64 unused)
{
	return pg_atomic_read_u64(&ring->flushed_rseq) > rseq;
}

static bool
cond_room(uint64 nslots, uint64 unused)
{
	return ag_audit_ring_has_room((uint32) nslots);
}

/*
 * Wait until record rseq is committed.  *commit_lsn (if not NULL) gets a
 * WAL position at or after the end of the commit record that wrote it:
 * flushing WAL up to there makes the row durable.
 */
bool
ag_audit_ring_wait_flushed(uint64 rseq, int timeout_ms, XLogRecPtr *commit_lsn)
{
	if (ring == NULL)
		return false;
	if (!wait_until(cond_flushed, rseq, 0, timeout_ms))
		return false;
	if (commit_lsn)
	{
		/* pairs with the write barrier in ag_audit_ring_committed() */
		pg_read_barrier();
		*commit_lsn = (XLogRecPtr) pg_atomic_read_u64(&ring->flushed_lsn);
	}
	return true;
}

bool
ag_audit_ring_wait_space(uint32 nslots, int timeout_ms)
{
	if (ring == NULL)
		return false;
	return wait_until(cond_room, nslots, 0, timeout_ms);
}

/* ---- worker side ---- */

void
ag_audit_ring_set_worker(int pgprocno)
{
	SpinLockAcquire(&ring->mutex);
	ring->worker_pgprocno = pgprocno;
	SpinLockRelease(&ring->mutex);
}

/*
 * Take up to max published records, in order, after the last committed
 * one.  The slots stay reserved until ag_audit_ring_free(), and no
 * backend writes a reserved slot, so a record that does not wrap around
 * the end of the ring is read in place; one that wraps is copied out.
 * b->recs must not be used after the commit.
 */
int
ag_audit_ring_take(AgAuditBatch *b, int max)
{
	uint64		pos;
	uint64		rseq;
	uint64		head;

	SpinLockAcquire(&ring->mutex);
	pos = ring->committed_pos;
	rseq = pg_atomic_read_u64(&ring->flushed_rseq);
	head = ring->head;
	SpinLockRelease(&ring->mutex);

	b->n = 0;
	while (b->n < max && pos < head)
	{
		AgAuditRecord *rec = slot_at(pos);
		AgAuditRecord hdr;
		Size		len;
		char	   *copy;

		if (rec->ready != rseq + 1)
			break;				/* reserved, not yet published */
		pg_read_barrier();
		memcpy(&hdr, rec, sizeof(hdr));
		len = sizeof(AgAuditRecord) + hdr.stmt_len + hdr.err_len + hdr.rel_len +
			hdr.mask_len + hdr.chain_len;
		if (hdr.nslots == 0 || hdr.nslots > ring->nslots ||
			len > (Size) hdr.nslots * AG_AUDIT_SLOT_SIZE)
			elog(PANIC, "agentgate audit ring corrupted at position " UINT64_FORMAT,
				 pos);
		if (b->n >= b->cap)
		{
			b->cap = Max(64, b->cap * 2);
			b->recs = b->recs ? repalloc(b->recs, sizeof(char *) * b->cap)
				: palloc(sizeof(char *) * b->cap);
		}
		if ((pos % ring->nslots) + hdr.nslots <= ring->nslots)
			copy = (char *) rec;	/* contiguous: read in place until release */
		else
		{
			copy = palloc(len);
			ring_copy_out((pos % ring->nslots) * AG_AUDIT_SLOT_SIZE, copy, len);
		}
		b->recs[b->n++] = copy;
		pos += hdr.nslots;
		rseq++;
	}
	b->end_pos = pos;
	b->end_rseq = rseq;
	return b->n;
}

/*
 * After the commit: publish it and wake whoever waits for it.  commit_lsn
 * is the end of the worker's commit record.  The slots stay taken until
 * ag_audit_ring_free() (WAL flushed past commit_lsn).
 */
void
ag_audit_ring_committed(AgAuditBatch *b, XLogRecPtr commit_lsn)
{
	if ((uint64) commit_lsn > pg_atomic_read_u64(&ring->flushed_lsn))
		pg_atomic_write_u64(&ring->flushed_lsn, (uint64) commit_lsn);
	pg_write_barrier();
	SpinLockAcquire(&ring->mutex);
	ring->committed_pos = b->end_pos;
	pg_atomic_write_u64(&ring->flushed_rseq, b->end_rseq);
	SpinLockRelease(&ring->mutex);
	ConditionVariableBroadcast(&ring->flushed_cv);
}

/*
 * Committed records not yet freed: *upto is the position to free up to,
 * *lsn the WAL position that must be flushed first.  False if none.
 */
bool
ag_audit_ring_unfreed(uint64 *upto, XLogRecPtr *lsn)
{
	bool		any;

	SpinLockAcquire(&ring->mutex);
	*upto = ring->committed_pos;
	any = ring->committed_pos > ring->tail;
	SpinLockRelease(&ring->mutex);
	pg_read_barrier();
	*lsn = (XLogRecPtr) pg_atomic_read_u64(&ring->flushed_lsn);
	return any;
}

/* WAL is flushed past the commit of everything below upto: free it. */
void
ag_audit_ring_free(uint64 upto)
{
	SpinLockAcquire(&ring->mutex);
	if (upto > ring->tail && upto <= ring->committed_pos)
		ring->tail = upto;
	SpinLockRelease(&ring->mutex);
	ConditionVariableBroadcast(&ring->flushed_cv);
}

/* Share of the slots in use, in percent (committed or not). */
int
ag_audit_ring_used_pct(void)
{
	uint64		used;

	SpinLockAcquire(&ring->mutex);
	used = ring->head - ring->tail;
	SpinLockRelease(&ring->mutex);
	return (int) (used * 100 / ring->nslots);
}

uint64
ag_audit_ring_take_dropped(void)
{
	return pg_atomic_exchange_u64(&ring->dropped, 0);
}

/* The gap row could not be written: report the count next time. */
void
ag_audit_ring_return_dropped(uint64 n)
{
	pg_atomic_fetch_add_u64(&ring->dropped, n);
}

int64
ag_audit_ring_epoch(void)
{
	return ring->epoch;
}

bool
ag_audit_ring_prev(int64 *epoch, uint64 *head)
{
	bool		valid;

	SpinLockAcquire(&ring->mutex);
	valid = ring->prev_valid;
	*epoch = ring->prev_epoch;
	*head = ring->prev_head;
	SpinLockRelease(&ring->mutex);
	return valid;
}

void
ag_audit_ring_prev_done(void)
{
	SpinLockAcquire(&ring->mutex);
	ring->prev_valid = false;
	SpinLockRelease(&ring->mutex);
}
