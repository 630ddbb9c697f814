/*-------------------------------------------------------------------------
 *
 * delegation.h
 *	  Delegation chains and scopes of agent sessions, and the cluster-wide
 *	  list of revoked identities (delegation.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_DELEGATION_H
#define AG_DELEGATION_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/array.h"

#define AG_DELEG_MAX_CHAIN		8	/* identities: actors, then the principal */
#define AG_DELEG_MAX_SCOPES		32
#define AG_DELEG_NAMES_LEN		1024

/*
 * What session_stamp() bound to one session id.  names holds the chain
 * (current actor first, principal last), then the scopes, each name
 * NUL-terminated; len bytes of it are used.  nchain, nscopes and names are
 * what the stamp's MAC covers (ag_delegation_binding), so an entry cannot
 * be swapped under a stamp.  Entries never change once made.
 */
typedef struct AgDelegation
{
	uint64		sid;			/* the session id, as a number (hash key) */
	TimestampTz expires;		/* the token's exp: kept at least this long */
	int			nchain;
	int			nscopes;
	int			len;
	char		names[AG_DELEG_NAMES_LEN];
} AgDelegation;

extern void ag_delegation_init(void);
extern PGDLLEXPORT void agentgate_revoked_loader_main(Datum arg);
extern void ag_delegation_shmem_request(void);
extern void ag_delegation_shmem_startup(void);

/* the delegation bound to session id sid (16 hex), copied into *out */
extern bool ag_delegation_find(const char *sid, AgDelegation *out);
/* the bytes a delegated stamp's MAC covers besides "ag1.<sid>.<role>" */
extern int	ag_delegation_binding(const AgDelegation *d, char *buf, int buflen);
/* i-th name: 0 .. nchain-1 the chain, nchain .. nchain+nscopes-1 scopes */
extern const char *ag_delegation_name(const AgDelegation *d, int i);
/* build (false: nothing to bind) and keep the delegation of a new stamp */
extern bool ag_delegation_make(ArrayType *chain, ArrayType *scopes,
							   TimestampTz expires, AgDelegation *d);
extern void ag_delegation_store(AgDelegation *d);
/* ExecutorCheckPerms: a scoped session's rights through its scope only */
extern void ag_delegation_check_perms(List *rangeTable);
/* ERROR unless every identity of d's chain may still act */
extern void ag_delegation_check(const AgDelegation *d);

#endif							/* AG_DELEGATION_H */
