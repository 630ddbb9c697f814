/*-------------------------------------------------------------------------
 *
 * identity.h
 *	  Session stamps (identity.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_IDENTITY_H
#define AG_IDENTITY_H

#define AG_STAMP_PREFIX		"ag1."
#define AG_STAMP_SID_HEX	16
#define AG_STAMP_MAC_BYTES	8
/* "ag1." + sid + "." + mac */
#define AG_STAMP_LEN		(4 + AG_STAMP_SID_HEX + 1 + AG_STAMP_MAC_BYTES * 2)

extern const char *ag_session_id(const char *role);
extern int	ag_session_chain(const char *role, char sep, char *buf, int buflen);
struct AgDelegation;
extern const struct AgDelegation *ag_session_delegation(void);
extern char *ag_role_unsafe_reason(Oid role, Oid self);
extern bool ag_identity_stamp_ok(const char *stamp, const char *role);
extern void ag_identity_check_now(void);

#endif							/* AG_IDENTITY_H */
