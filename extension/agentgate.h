/*-------------------------------------------------------------------------
 *
 * agentgate.h
 *	  Private declarations of the agentgate extension, grouped by the file
 *	  that defines them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTGATE_H
#define AGENTGATE_H

#include "postgres.h"

#include "utils/guc.h"

#define AG_SCHEMA			"agentgate"
#define AG_AGENT_ROLE		"agentgate_agent"	/* every governed role is a member */
#define AG_PROXY_ROLE		"agentgate_proxy"	/* may call agentgate.login() */
#define AG_PGBOUNCER_ROLE	"agentgate_pgbouncer"	/* PgBouncer's auth_user */
#define AG_POOL_ROLE		"agentgate_pool"	/* the shared pool's login (pool.c) */

/* agentgate.c */
extern void _PG_init(void);

/* governed.c: who is governed (members of agentgate_agent, by session_user) */
extern void ag_governed_init(void);
extern bool ag_session_is_governed(void);
extern Oid	ag_session_role(void);
extern bool ag_role_is_governed(Oid roleid);
extern bool ag_owner_is_governed(Oid roleid);
extern Oid	ag_agent_role_oid(void);
extern bool ag_setting_refused_for_agent(GucSource source);

/* auth.c: agent roles may log in only through the pooler's private socket */
extern void ag_auth_init(void);

/* policy.c: statement policy (block/allow/log); more in policy.h */
extern void ag_policy_init(void);

/* identity.c: session stamps, identity state checks */
extern void ag_identity_init(void);
extern bool ag_secret_setting_check(char **newval, void **extra, GucSource source);

/* audit.c: audit log (see audit.h for the ring and the writer) */
extern void ag_audit_init(void);

#endif							/* AGENTGATE_H */
