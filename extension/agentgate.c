/*-------------------------------------------------------------------------
 *
 * agentgate.c
 *	  Module entry point: refuses to load unless preloaded, then lets each
 *	  concern define its settings and install its hooks.
 *
 * Each concern chains its own hooks.  The order of the init calls below is
 * the order of installation, so the LAST one installed is the OUTERMOST
 * hook and runs first: audit goes last so that it wraps policy and
 * identity checks and sees every statement they refuse.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "agentgate.h"
#include "policy.h"

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
	ag_identity_init();
	ag_policy_init();
	ag_agent_code_init();
	ag_audit_init();

	MarkGUCPrefixReserved("agentgate");
}
