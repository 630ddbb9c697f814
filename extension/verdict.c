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

#include "verdict.h"

static AgVerdict verdicts[AG_VERDICT_MAX_DEPTH];

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

void
ag_verdict_reset(int level)
{
	verdicts[slot(level)].decision = AG_DECISION_NONE;
	verdicts[slot(level)].rule_id = 0;
}

const char *
ag_decision_name(AgDecision d)
{
	switch (d)
	{
		case AG_DECISION_NONE:
			return "none";
		case AG_DECISION_ALLOWED:
			return "allowed";
		case AG_DECISION_LOGGED:
			return "logged";
		case AG_DECISION_MONITORED:
			return "monitored";
		case AG_DECISION_BLOCKED:
			return "blocked";
	}
	return "unknown";
}
