/*-------------------------------------------------------------------------
 *
 * hookstack.c
 *	  Test-only module that installs every hook agentgate uses, chained the
 *	  way contrib modules chain them, and counts its calls, so that a test
 *	  can preload it before or after agentgate and check that both run.
 *
 * Its fmgr hook keeps its own state in its private slot (a handle, not a
 * pointer, so that a hook that reads the slot as its own cannot crash us)
 * and passes the next hook a slot of its own; a handle found changed is
 * counted as "fmgr_slot_clobbered".  Calls of functions named
 * hookstack_probe go through the fmgr hook.  A statement whose text
 * contains "hookstack_refuse_parse" is refused in post_parse_analyze.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "libpq/auth.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(hookstack_count);
PG_FUNCTION_INFO_V1(hookstack_probe);

typedef enum
{
	HS_SHMEM_REQUEST,
	HS_SHMEM_STARTUP,
	HS_CLIENT_AUTH,
	HS_POST_PARSE_ANALYZE,
	HS_PLANNER,
	HS_PROCESS_UTILITY,
	HS_EXECUTOR_START,
	HS_EXECUTOR_RUN,
	HS_EXECUTOR_FINISH,
	HS_EXECUTOR_END,
	HS_CHECK_PERMS,
	HS_OBJECT_ACCESS,
	HS_NEEDS_FMGR,
	HS_FMGR,
	HS_EMIT_LOG,
	HS_FMGR_SLOT_CLOBBERED,
	HS_COUNT
} HsHook;

static const char *const hs_names[HS_COUNT] = {
	"shmem_request", "shmem_startup", "client_auth", "post_parse_analyze",
	"planner", "process_utility", "executor_start", "executor_run",
	"executor_finish", "executor_end", "check_perms", "object_access",
	"needs_fmgr", "fmgr", "emit_log", "fmgr_slot_clobbered"
};

static int64 hs_calls[HS_COUNT];

#define HS_MAGIC	UINT64CONST(0x486f6f6b)
static uint64 *hs_shared = NULL;

/* fmgr: per call site state, found by handle */
#define HS_HANDLE_TAG	UINT64CONST(0xC0DE0000)
#define HS_MAX_SITES	1024
typedef struct HsSite
{
	Datum		next;			/* the next hook's private slot */
	int			depth;
} HsSite;
static HsSite hs_sites[HS_MAX_SITES];
static int	hs_nsites = 0;

static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;
static ClientAuthentication_hook_type prev_client_auth = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static planner_hook_type prev_planner = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;
static ExecutorCheckPerms_hook_type prev_check_perms = NULL;
static object_access_hook_type prev_object_access = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;
static fmgr_hook_type prev_fmgr = NULL;
static emit_log_hook_type prev_emit_log = NULL;

static void
hs_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	hs_calls[HS_SHMEM_REQUEST]++;
	RequestAddinShmemSpace(sizeof(uint64));
}

static void
hs_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup)
		prev_shmem_startup();
	hs_calls[HS_SHMEM_STARTUP]++;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	hs_shared = ShmemInitStruct("hookstack", sizeof(uint64), &found);
	if (!found)
		*hs_shared = HS_MAGIC;
	LWLockRelease(AddinShmemInitLock);
}

static void
hs_client_auth(Port *port, int status)
{
	if (prev_client_auth)
		prev_client_auth(port, status);
	hs_calls[HS_CLIENT_AUTH]++;
}

static void
hs_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	hs_calls[HS_POST_PARSE_ANALYZE]++;
	if (pstate->p_sourcetext &&
		strstr(pstate->p_sourcetext, "hookstack_refuse_parse") != NULL &&
		strstr(pstate->p_sourcetext, "hookstack_count") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("hookstack: statement refused in post_parse_analyze")));
}

static PlannedStmt *
hs_planner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	hs_calls[HS_PLANNER]++;
	if (prev_planner)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

static void
hs_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	hs_calls[HS_PROCESS_UTILITY]++;
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
hs_executor_start(QueryDesc *queryDesc, int eflags)
{
	hs_calls[HS_EXECUTOR_START]++;
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
hs_executor_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				bool execute_once)
{
	hs_calls[HS_EXECUTOR_RUN]++;
	if (prev_executor_run)
		prev_executor_run(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
}

static void
hs_executor_finish(QueryDesc *queryDesc)
{
	hs_calls[HS_EXECUTOR_FINISH]++;
	if (prev_executor_finish)
		prev_executor_finish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

static void
hs_executor_end(QueryDesc *queryDesc)
{
	hs_calls[HS_EXECUTOR_END]++;
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static bool
hs_check_perms(List *rangeTable, bool ereport_on_violation)
{
	hs_calls[HS_CHECK_PERMS]++;
	if (prev_check_perms)
		return prev_check_perms(rangeTable, ereport_on_violation);
	return true;
}

static void
hs_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	hs_calls[HS_OBJECT_ACCESS]++;
}

static bool
hs_needs_fmgr(Oid fn_oid)
{
	char	   *name;

	hs_calls[HS_NEEDS_FMGR]++;
	if (prev_needs_fmgr && prev_needs_fmgr(fn_oid))
		return true;
	name = get_func_name(fn_oid);
	return name != NULL && strcmp(name, "hookstack_probe") == 0;
}

static void
hs_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	uint64		handle = (uint64) *private;
	HsSite	   *site = NULL;

	hs_calls[HS_FMGR]++;
	if (handle == 0 && event == FHET_START && hs_nsites < HS_MAX_SITES)
	{
		handle = HS_HANDLE_TAG | (uint64) hs_nsites;
		hs_sites[hs_nsites].next = (Datum) 0;
		hs_sites[hs_nsites].depth = 0;
		hs_nsites++;
		*private = (Datum) handle;
	}
	if ((handle & ~UINT64CONST(0xFFFF)) == HS_HANDLE_TAG &&
		(handle & UINT64CONST(0xFFFF)) < (uint64) hs_nsites)
		site = &hs_sites[handle & UINT64CONST(0xFFFF)];
	else if (handle != 0)
	{
		hs_calls[HS_FMGR_SLOT_CLOBBERED]++;
		ereport(WARNING,
				(errmsg("hookstack: fmgr private slot changed by another hook")));
	}

	if (prev_fmgr)
	{
		if (site)
			prev_fmgr(event, flinfo, &site->next);
		else
		{
			Datum		scratch = (Datum) 0;

			prev_fmgr(event, flinfo, &scratch);
		}
	}
	if (site && event == FHET_START)
		site->depth++;
	else if (site && site->depth > 0)
		site->depth--;
}

static void
hs_emit_log(ErrorData *edata)
{
	if (edata->elevel >= ERROR)
		hs_calls[HS_EMIT_LOG]++;
	if (prev_emit_log)
		prev_emit_log(edata);
}

/* hookstack_count(hook text) returns bigint: calls seen by this backend */
Datum
hookstack_count(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (strcmp(name, "shmem") == 0)
		PG_RETURN_INT64(hs_shared != NULL && *hs_shared == HS_MAGIC ? 1 : 0);
	for (int i = 0; i < HS_COUNT; i++)
		if (strcmp(name, hs_names[i]) == 0)
			PG_RETURN_INT64(hs_calls[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("hookstack: no hook \"%s\"", name)));
	PG_RETURN_NULL();
}

/* hookstack_probe(int) returns int: its argument; its calls go through fmgr */
Datum
hookstack_probe(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PG_GETARG_INT32(0));
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = hs_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = hs_shmem_startup;
	prev_client_auth = ClientAuthentication_hook;
	ClientAuthentication_hook = hs_client_auth;
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = hs_post_parse_analyze;
	prev_planner = planner_hook;
	planner_hook = hs_planner;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = hs_process_utility;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = hs_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = hs_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = hs_executor_finish;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = hs_executor_end;
	prev_check_perms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = hs_check_perms;
	prev_object_access = object_access_hook;
	object_access_hook = hs_object_access;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = hs_needs_fmgr;
	prev_fmgr = fmgr_hook;
	fmgr_hook = hs_fmgr;
	prev_emit_log = emit_log_hook;
	emit_log_hook = hs_emit_log;
}
