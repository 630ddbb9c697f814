/*-------------------------------------------------------------------------
 *
 * policy_rows.c
 *	  max_rows: rules that apply once a statement's row count is known.
 *
 * A rule with max_rows cannot be decided when the statement starts: it
 * matches only past its row count.  The decision hands such rules back
 * (AgOutcome.deferred); they are kept per running query until it ends.  A
 * blocking one wraps the query's receiver, so that the row past the limit
 * is refused before the client gets it (a cursor's FETCHes add up); the
 * rows a statement changed are counted when its executor has run and
 * finished.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "tcop/dest.h"
#include "utils/memutils.h"

#include "agentgate.h"
#include "hooks.h"
#include "policy.h"

/* max_rows rules waiting for the row count of a running query */
typedef struct Pending
{
	QueryDesc  *qd;
	int			level;
	List	   *deferred;
	uint64		sent;			/* rows handed to the client so far */
} Pending;

/*
 * For a query with a blocking max_rows rule, the receiver is wrapped so that
 * the row past the limit is refused before it is sent (a cursor's FETCHes
 * add up).
 */
typedef struct RowLimitDest
{
	DestReceiver pub;
	DestReceiver *inner;
	Pending    *p;
	AgDeferred *d;
} RowLimitDest;

static List *pending = NIL;		/* in TopTransactionContext */

/* Forgets the max_rows rules of a query (it ended, or starts again). */
void
ag_policy_rows_forget(QueryDesc *qd)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		Pending    *p = (Pending *) lfirst(lc);

		if (p->qd == qd)
		{
			pending = foreach_delete_current(pending, lc);
			break;
		}
	}
}

/*
 * Applies the max_rows rules of a query that has run (or finished: AFTER
 * triggers count too) to the rows it processed; each rule once.
 */
void
ag_policy_rows_check(QueryDesc *qd)
{
	ListCell   *lc;
	Pending    *p = NULL;
	uint64		rows;

	if (pending == NIL)
		return;
	foreach(lc, pending)
		if (((Pending *) lfirst(lc))->qd == qd)
			p = (Pending *) lfirst(lc);
	if (p == NULL || qd->estate == NULL)
		return;
	rows = qd->estate->es_processed;
	foreach(lc, p->deferred)
	{
		AgDeferred *d = (AgDeferred *) lfirst(lc);
		AgOutcome	out;
		AgEvent		ev;
		int64		limit = d->max_rows;

		if (limit < 0 || rows <= (uint64) limit)
			continue;
		memset(&out, 0, sizeof(out));
		out.rule_id = d->rule_id;
		out.reason = d->reason;
		d->max_rows = -1;		/* once */
		if (d->action == AG_ACTION_ALLOW)
			continue;
		if (d->action == AG_ACTION_LOG)
		{
			ag_verdict_note(p->level, AG_DECISION_LOGGED, d->rule_id);
			continue;
		}
		out.decision = AG_DECISION_BLOCKED;
		ag_event_init(&ev, ag_operation_tag(qd->operation), AG_CLASS_NONE);
		if (ag_policy_mode == AG_MODE_MONITOR)
		{
			ag_policy_apply_outcome(&ev, &out, p->level);
			continue;
		}
		ag_verdict_note(p->level, AG_DECISION_BLOCKED, d->rule_id);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentgate: %s of more than " INT64_FORMAT " rows is not allowed (rule %lld); change fewer rows",
						ag_tag_name(ev.tags[0]), limit, (long long) d->rule_id),
				 errdetail("Rule %lld: %s (the statement processed " UINT64_FORMAT " rows).",
						   (long long) d->rule_id,
						   d->reason && d->reason[0] ? d->reason : "(no reason given)",
						   rows),
				 errhint("Restrict the statement to fewer rows, or ask a database administrator to run it.")));
	}
}

/* A query started: its max_rows rules are kept until it ends. */
void
ag_policy_executor_started(AgStmt *st)
{
	if (st->decided && st->deferred != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		Pending    *p = palloc(sizeof(Pending));

		p->qd = st->qd;
		p->level = st->level;
		p->deferred = st->deferred;
		p->sent = 0;
		pending = lappend(pending, p);
		MemoryContextSwitchTo(old);
	}
}

static void
refuse_rows(AgDeferred *d, uint64 rows, int level)
{
	ag_verdict_note(level, AG_DECISION_BLOCKED, d->rule_id);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("agentgate: more than " INT64_FORMAT " rows is not allowed (rule %lld); fetch fewer rows",
					d->max_rows, (long long) d->rule_id),
			 errdetail("Rule %lld: %s (the statement reached " UINT64_FORMAT " rows).",
					   (long long) d->rule_id,
					   d->reason && d->reason[0] ? d->reason : "(no reason given)",
					   rows),
			 errhint("Restrict the statement to fewer rows, or ask a database administrator to run it.")));
}

static bool
rowlimit_receive(TupleTableSlot *slot, DestReceiver *self)
{
	RowLimitDest *r = (RowLimitDest *) self;

	if (++r->p->sent > (uint64) r->d->max_rows && r->d->max_rows >= 0 &&
		ag_policy_mode == AG_MODE_ENFORCE)
		refuse_rows(r->d, r->p->sent, r->p->level);
	return r->inner->receiveSlot(slot, r->inner);
}

static void
rowlimit_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	RowLimitDest *r = (RowLimitDest *) self;

	r->inner->rStartup(r->inner, operation, typeinfo);
}

static void
rowlimit_shutdown(DestReceiver *self)
{
	RowLimitDest *r = (RowLimitDest *) self;

	r->inner->rShutdown(r->inner);
}

static void
rowlimit_destroy(DestReceiver *self)
{
	/* the wrapped receiver belongs to whoever made it */
}

/* The strictest blocking max_rows rule of a pending query, or NULL. */
static AgDeferred *
blocking_limit(Pending *p)
{
	ListCell   *lc;
	AgDeferred *best = NULL;

	foreach(lc, p->deferred)
	{
		AgDeferred *d = (AgDeferred *) lfirst(lc);

		if (d->action == AG_ACTION_BLOCK && d->max_rows >= 0 &&
			(best == NULL || d->max_rows < best->max_rows))
			best = d;
	}
	return best;
}

/* Wraps the receiver of a query with a blocking max_rows rule. */
void
ag_policy_executor_run(QueryDesc *queryDesc)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		Pending    *p = (Pending *) lfirst(lc);
		AgDeferred *d;
		RowLimitDest *wrap;

		if (p->qd != queryDesc || (d = blocking_limit(p)) == NULL)
			continue;
		wrap = palloc0(sizeof(RowLimitDest));
		wrap->pub.receiveSlot = rowlimit_receive;
		wrap->pub.rStartup = rowlimit_startup;
		wrap->pub.rShutdown = rowlimit_shutdown;
		wrap->pub.rDestroy = rowlimit_destroy;
		wrap->pub.mydest = queryDesc->dest->mydest;
		wrap->inner = queryDesc->dest;
		wrap->p = p;
		wrap->d = d;
		queryDesc->dest = (DestReceiver *) wrap;
		break;
	}
}

void
ag_policy_executor_end(QueryDesc *queryDesc)
{
	if (pending != NIL)
		ag_policy_rows_forget(queryDesc);
}

/* The transaction ended: its queries' rules went with its memory. */
void
ag_policy_rows_reset(void)
{
	pending = NIL;
}
