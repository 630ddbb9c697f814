/*-------------------------------------------------------------------------
 *
 * decision.h
 *	  The decisions agentgate records: one enum for the verdict policy
 *	  takes (verdict.c), the audit ring's record (audit.c), the audit log's
 *	  decision column and the session summary's counters (audit_worker.c).
 *
 * Names and summary columns come from ag_decisions[] alone, so a decision
 * added here (masking) reaches the log and the summary without
 * another list to keep in step.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_DECISION_H
#define AG_DECISION_H

typedef enum AgDecision
{
	AG_DECISION_NONE = 0,		/* policy did not look at it */

	/* verdicts, weakest first: the strongest at a level wins */
	AG_DECISION_ALLOWED,		/* allowed (by a rule or the default) */
	AG_DECISION_LOGGED,			/* allowed, matched a 'log' rule */
	AG_DECISION_APPROVAL,		/* an 'approve' rule matched: not run until
								 * approved (the request's row) */
	AG_DECISION_APPROVED,		/* ran with an approval; an approver's yes */
	AG_DECISION_DENIED,			/* an approver's no; the statement refused */
	AG_DECISION_MONITORED,		/* would have been blocked; mode = monitor */
	AG_DECISION_BLOCKED,		/* refused */

	/* outcomes only audit records */
	AG_DECISION_ERROR,			/* failed, and no verdict refused it */
	AG_DECISION_MASKED,			/* reserved for masking */
	AG_DECISION_GAP,			/* a gap row, written by the audit writer */

	AG_DECISION_COUNT
} AgDecision;

#define AG_DECISION_LAST_VERDICT AG_DECISION_BLOCKED

typedef struct AgDecisionInfo
{
	const char *name;			/* as written to audit_log.decision */
	const char *summary;		/* audit_sessions counter, or NULL for none */
} AgDecisionInfo;

extern const AgDecisionInfo ag_decisions[AG_DECISION_COUNT];
extern const char *ag_decision_name(AgDecision d);

#endif							/* AG_DECISION_H */
