/*-------------------------------------------------------------------------
 *
 * verdict.h
 *	  What policy decided about the statement being run, for audit to record.
 *
 * Policy (the writer) notes each decision it takes; audit (the reader)
 * picks it up when it writes the statement's row.  Decisions are kept per
 * nesting level so that a statement inside a function does not overwrite
 * the verdict of the statement that called it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_VERDICT_H
#define AG_VERDICT_H

#include "decision.h"

typedef struct AgVerdict
{
	AgDecision	decision;
	int64		rule_id;		/* 0 when no rule matched */
} AgVerdict;

#define AG_VERDICT_MAX_DEPTH 64

/* The strongest decision at this level wins (blocked > monitored > ...). */
extern void ag_verdict_note(int level, AgDecision decision, int64 rule_id);
extern AgVerdict ag_verdict_get(int level);
extern AgVerdict ag_verdict_get_failed(int level);
extern void ag_verdict_shmem_request(void);
extern void ag_verdict_shmem_startup(void);
extern void ag_verdict_reset(int level);

#endif							/* AG_VERDICT_H */
