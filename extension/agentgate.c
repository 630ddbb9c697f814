/*-------------------------------------------------------------------------
 *
 * agentgate.c
 *	  Module entry point: refuses to load unless preloaded, then lets each
 *	  concern define its settings, then installs the one hook layer.
 *
 * No concern installs a hook of its own: hooks.c installs each hook once
 * and calls the concerns in a fixed order (who, what, record).  The order
 * of the init calls below is still the order in which the concerns'
 * transaction callbacks are registered, and PostgreSQL calls the last one
 * registered first: audit's runs before policy's and identity's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "agentgate.h"
#include "approval.h"
#include "delegation.h"
#include "hooks.h"
#include "mask.h"
#include "policy.h"
#include "pool.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	/*
	 * Hooks installed by a session-level LOAD would govern only the sessions
	 * that chose to load us; that is no guardrail at all.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate must be loaded via shared_preload_libraries"),
				 errhint("Add agentgate to shared_preload_libraries in postgresql.conf and restart the server.")));

	ag_governed_init();
	ag_auth_init();
	ag_pool_init();
	ag_identity_init();
	ag_delegation_init();
	ag_policy_init();
	ag_agent_code_init();
	ag_mask_init();
	ag_approval_init();
	ag_audit_init();
	ag_hooks_install();

	MarkGUCPrefixReserved("agentgate");
}
