/*-------------------------------------------------------------------------
 *
 * audit_scan.h
 *	  Statement-text scanners that need no backend state (audit_scan.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_AUDIT_SCAN_H
#define AG_AUDIT_SCAN_H

#include "lib/stringinfo.h"

/* One token of a statement: where it is, and whether it is a literal. */
typedef struct AgAuditToken
{
	int			loc;
	int			len;
	bool		literal;
	bool		gap_before;		/* white space or comment before it */
} AgAuditToken;

typedef struct AgAuditTokens
{
	AgAuditToken *toks;			/* palloc'd, maxtoks entries */
	int			ntoks;
	int			maxtoks;
	int			highest_param;	/* highest $n already in the statement */
} AgAuditTokens;

extern void ag_audit_append_param(StringInfo out, int n);
extern bool ag_audit_fast_tokens(const char *buf, int len, AgAuditTokens *tl);
extern int	ag_audit_scan_tokens(const char *buf, int len, bool scs,
								 AgAuditTokens *tl);
#define AG_SCAN_ON_WHOLE	0x01
#define AG_SCAN_OFF_WHOLE	0x02
#define AG_SCAN_SAME		0x04
#define AG_SCAN_ALL			0x07
extern int	ag_audit_scan_both(const char *buf, int len, AgAuditTokens *tl);
extern char *ag_audit_scrub(const char *sql, int len, int maxlen,
							bool *truncated);

#endif							/* AG_AUDIT_SCAN_H */
