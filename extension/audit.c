/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  One audit row per statement of governed sessions: settings, hooks,
 *	  record building, and the SQL-callable functions.
 *
 * Where rows come from:
 *	- ExecutorEnd: every planned statement that ran to completion (top level,
 *	  each statement of a multi-statement message, and statements inside
 *	  functions and DO blocks, flagged nested);
 *	- ProcessUtility: every utility statement, on success or error;
 *	- PG_CATCH (hooks.c) in post_parse_analyze, planner,
 *	  ExecutorStart/Run/Finish and ProcessUtility: statements that fail or
 *	  are refused there.  The row is captured there and written when the
 *	  error is reported (see capture_failure), durable before the refusal
 *	  reaches the client;
 *	- emit_log_hook: errors raised outside those hooks (syntax errors,
 *	  "current transaction is aborted", ...).  Only appended, never waited
 *	  for: waiting inside error reporting is not safe in every state, and
 *	  no catalog access happens there (cached names only).
 *
 * Durability tiers: a write or DDL never commits before its row; anything
 * refused or failed at top level is reported only after its row is
 * committed and flushed; reads are asynchronous.  An autocommit write waits
 * at the end of the statement; writes inside a transaction block wait once,
 * at PRE_COMMIT (or PRE_PREPARE), for the last of their rows: until then
 * their effects are invisible to everyone else and vanish with the
 * transaction, and one wait per transaction instead of one per statement
 * is what makes write-heavy work affordable.  A nested write makes the
 * enclosing top-level statement (or its commit) wait, which also covers the
 * nested rows: the worker commits in sequence order.  The worker commits
 * asynchronously; a waiting write's own commit flushes WAL past the audit
 * rows (WAL is flushed in order), every other waiter flushes it itself.
 *
 * hooks.c calls audit last in each hook (after identity and policy) and
 * wraps them all in its PG_TRY, so audit sees what they refuse.  The
 * entry points called from PG_CATCH only capture (capture_failure).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/ip.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "catalog/objectaccess.h"
#include "commands/defrem.h"
#include "utils/regproc.h"
#include "parser/scansup.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/cmdtag.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "common/hashfn.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "access/genam.h"
#include "access/table.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "agentgate.h"
#include "audit.h"
#include "audit_scan.h"
#include "hooks.h"
#include "delegation.h"
#include "mask.h"
#include "identity.h"
#include "pgquery.h"
#include "verdict.h"

PG_FUNCTION_INFO_V1(agentgate_audit_flush);
PG_FUNCTION_INFO_V1(agentgate_audit_ring_status);
PG_FUNCTION_INFO_V1(agentgate_audit_statement_text);

/* ---- settings ---- */

typedef enum
{
	AG_OVERFLOW_BLOCK,
	AG_OVERFLOW_DROP
} AgOverflow;

static const struct config_enum_entry overflow_options[] = {
	{"block", AG_OVERFLOW_BLOCK, false},
	{"drop", AG_OVERFLOW_DROP, false},
	{NULL, 0, false}
};

static int	audit_overflow = AG_OVERFLOW_BLOCK;
static int	audit_block_timeout = 5000;
static int	audit_sync_timeout = 10000;
/*
 * agentgate.audit: off means no statement is audited at all.  Postmaster
 * context and superuser-only, so only a DBA restarting the server can turn
 * it off (used to measure the policy engine alone).
 */
static bool audit_enabled = true;
static bool audit_all_roles = false;
static bool audit_raw_statements = false;
static int	audit_max_statement = 4096;
static bool audit_local_commit = true;

typedef enum
{
	AG_NORMALIZER_LEXER,
	AG_NORMALIZER_LIBPG_QUERY
} AgNormalizer;

static const struct config_enum_entry normalizer_options[] = {
	{"lexer", AG_NORMALIZER_LEXER, false},
	{"libpg_query", AG_NORMALIZER_LIBPG_QUERY, false},
	{NULL, 0, false}
};

static int	audit_normalizer = AG_NORMALIZER_LEXER;

#define AG_MAX_ERROR_TEXT	1024
#define AG_MAX_REL_TEXT		16384

/* ---- per-backend state ---- */

static bool pending_sync = false;	/* a write's row must be waited for ... */
static uint64 pending_sync_rseq = 0;	/* ... up to this record, by the
										 * top-level statement or the commit */
static bool in_emit_log = false;

/* session facts, cached (emit_log_hook cannot look them up) */
static bool auth_governed = false;	/* decided at login */
static bool governed_cached = false;
static bool governed_known = false;
static Oid	cached_session_user = InvalidOid;
static char sess_role[AG_AUDIT_NAME_LEN];
static char sess_identity[AG_AUDIT_NAME_LEN];
static char sess_database[AG_AUDIT_NAME_LEN];
static char sess_client_addr[AG_AUDIT_ADDR_LEN];
static char sess_backend_id[AG_AUDIT_SID_LEN];
static bool sess_static_done = false;

/* last statement seen by parse analysis, for errors raised after it */
static const char *last_source = NULL;
static int	last_location = -1;
static int	last_len = 0;

/* executor statements in progress */
typedef struct StmtFrame
{
	QueryDesc  *qd;
	TimestampTz start;
	int			level;
	bool		write;
	char	   *rels;
	int			rels_len;
	char	   *masked;
	int			masked_len;
} StmtFrame;

static MemoryContext audit_cxt = NULL;	/* frames; reset at transaction end */
static List *frames = NIL;
static List *pending_failures = NIL;	/* see flush_failures() */

/*
 * Rows held for a local commit (see hold_row): records laid out as in the
 * ring, in statement order, in held_cxt (reset at transaction end).
 */
#define AG_HOLD_MAX_ROWS	64
#define AG_HOLD_MAX_BYTES	(256 * 1024)

static MemoryContext held_cxt = NULL;
static char **held = NULL;
static bool *held_stubbed = NULL;	/* its stub is in the ring */
static int	nheld = 0;
static Size held_bytes = 0;
static TimestampTz held_since = 0;
static bool held_written = false;	/* inserted at PRE_COMMIT */

/* ---------------------------------------------------------------------- */

static void wait_durable(uint64 rseq, bool may_fail, bool commit_follows);
static void flush_failures(ErrorData *edata, bool wait);
static void spill_held(bool may_fail);
static void write_held(void);
static void release_held(void);

static void
audit_xact_callback(XactEvent event, void *arg)
{
	/* rows held for a local commit: written in this transaction, or not */
	if (event == XACT_EVENT_PRE_COMMIT && nheld > 0)
		write_held();
	else if (event == XACT_EVENT_PRE_PREPARE && nheld > 0)
		spill_held(true);		/* PREPARE: waited for below, as before */
	else if ((event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) &&
			 nheld > 0)
		spill_held(false);		/* rows of a rollback survive it */
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		 event == XACT_EVENT_PREPARE) && nheld > 0)
		release_held();

	/*
	 * A write (in a transaction block, or nested: a procedure that COMMITs,
	 * a function's INSERT) must not commit before its audit row: wait here,
	 * where failing still aborts the commit.  The commit record that follows
	 * flushes WAL past the row when the transaction has an xid.
	 */
	if ((event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE) &&
		pending_failures != NIL)
		flush_failures(NULL, false);	/* of an error swallowed */
	if ((event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE) &&
		pending_sync)
	{
		wait_durable(pending_sync_rseq, true,
					 TransactionIdIsValid(GetTopTransactionIdIfAny()));
		pending_sync = false;
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		/* rows of an error swallowed, or not logged: appended, not waited */
		if (pending_failures != NIL && !in_emit_log)
		{
			bool		sync = pending_sync;

			flush_failures(NULL, false);
			pending_sync = sync;
		}
		pending_failures = NIL;
		frames = NIL;
		last_source = NULL;
		in_emit_log = false;	/* in case an error escaped the hook */
		if (audit_cxt)
			MemoryContextReset(audit_cxt);
		if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT &&
			event != XACT_EVENT_PREPARE)
			pending_sync = false;	/* the writes are gone */
	}
}

/* Facts that never change for this backend. */
static void
session_static_facts(void)
{
	if (sess_static_done)
		return;
	snprintf(sess_backend_id, sizeof(sess_backend_id), "%lx.%x",
			 (long) MyStartTime, MyProcPid);
	sess_client_addr[0] = '\0';
	if (MyProcPort && MyProcPort->raddr.addr.ss_family != AF_UNIX)
	{
		char		host[NI_MAXHOST];

		if (pg_getnameinfo_all(&MyProcPort->raddr.addr, MyProcPort->raddr.salen,
							   host, sizeof(host), NULL, 0,
							   NI_NUMERICHOST) == 0)
			strlcpy(sess_client_addr, host, sizeof(sess_client_addr));
	}
	if (MyProcPort && MyProcPort->database_name)
		strlcpy(sess_database, MyProcPort->database_name, sizeof(sess_database));
	sess_static_done = true;
}

/* identity of role from agentgate.agents in this database, or "" */
static void
lookup_identity(Oid roleid, const char *rolename)
{
	Oid			nsp = get_namespace_oid(AG_SCHEMA, true);
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	AttrNumber	att_role;
	AttrNumber	att_ident;
	NameData	name;
	Oid			index;
	List	   *indexes;
	ListCell   *lc;

	sess_identity[0] = '\0';
	if (!OidIsValid(nsp))
		return;
	relid = get_relname_relid("agents", nsp);
	if (!OidIsValid(relid))
		return;
	att_role = get_attnum(relid, "role_name");
	att_ident = get_attnum(relid, "identity");
	if (att_role == InvalidAttrNumber || att_ident == InvalidAttrNumber)
		return;
	namestrcpy(&name, rolename);
	/* no ACL check: the agent may not read this table, the audit may */
	rel = table_open(relid, AccessShareLock);

	/*
	 * By the index of role_name's UNIQUE constraint: in the shared pool a
	 * backend looks an identity up at every change of identity, among
	 * thousands of rows.
	 */
	index = InvalidOid;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (HeapTupleIsValid(itup))
		{
			Form_pg_index ind = (Form_pg_index) GETSTRUCT(itup);

			if (ind->indnkeyatts == 1 && ind->indkey.values[0] == att_role &&
				ind->indisvalid && ind->indisready)
				index = ind->indexrelid;
			ReleaseSysCache(itup);
		}
		if (OidIsValid(index))
			break;
	}
	list_free(indexes);
	ScanKeyInit(&key, att_role, BTEqualStrategyNumber, F_NAMEEQ,
				NameGetDatum(&name));
	scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, att_ident, RelationGetDescr(rel), &isnull);

		if (!isnull)
			text_to_cstring_buffer(DatumGetTextPP(d), sess_identity,
								   sizeof(sess_identity));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * Is this statement audited?  Refreshes the cached session facts when a
 * catalog lookup is possible (a live transaction).
 */
static bool
session_audited(void)
{
	if (!audit_enabled || MyBackendType != B_BACKEND || !ag_audit_ring_ready())
		return false;
	if (IsTransactionState())
	{
		Oid			su = ag_session_role();

		governed_cached = ag_session_is_governed();
		governed_known = true;
		if (su != cached_session_user && (governed_cached || audit_all_roles))
		{
			char	   *name = GetUserNameFromId(su, true);

			strlcpy(sess_role, name ? name : "", sizeof(sess_role));
			lookup_identity(su, sess_role);
			cached_session_user = su;
			if (!sess_database[0] || strcmp(sess_database, get_database_name(MyDatabaseId)) != 0)
			{
				char	   *db = get_database_name(MyDatabaseId);

				strlcpy(sess_database, db ? db : "", sizeof(sess_database));
			}
		}
	}
	else if (!governed_known)
		governed_cached = auth_governed;
	return governed_cached || audit_all_roles;
}

/* The session id identity verified for this session's stamp, or "". */
static const char *
session_id(void)
{
	const char *sid = ag_session_id(sess_role);

	return sid ? sid : "";
}

/* Slice one statement out of a (possibly multi-statement) source text. */
static void
slice_statement(const char *src, int location, int len, const char **out, int *outlen)
{
	int			srclen;

	if (src == NULL)
	{
		*out = NULL;
		*outlen = 0;
		return;
	}
	srclen = strlen(src);
	if (location >= 0 && location <= srclen)
	{
		src += location;
		srclen -= location;
		if (len > 0 && len <= srclen)
			srclen = len;
	}
	while (srclen > 0 && scanner_isspace(*src))
		src++, srclen--;
	while (srclen > 0 && (scanner_isspace(src[srclen - 1]) || src[srclen - 1] == ';'))
		srclen--;
	*out = src;
	*outlen = srclen;
}

static void
fill_session(AgAuditRecord *h)
{
	session_static_facts();
	h->pid = MyProcPid;
	strlcpy(h->role_name, sess_role[0] ? sess_role :
			(MyProcPort && MyProcPort->user_name ? MyProcPort->user_name : ""),
			sizeof(h->role_name));
	strlcpy(h->database, sess_database, sizeof(h->database));
	strlcpy(h->identity, sess_identity, sizeof(h->identity));
	strlcpy(h->backend_session, sess_backend_id, sizeof(h->backend_session));
	strlcpy(h->client_addr, sess_client_addr, sizeof(h->client_addr));
}

/*
 * Statement text for the log.  parsed: the server parsed this text, so the
 * lexer can be trusted with it; otherwise the never-failing scrubber.
 */
static char *
statement_text(const char *src, int len, bool parsed, uint16 *flags)
{
	bool		truncated = false;
	char	   *s;

	if (src == NULL)
		return NULL;
	if (audit_raw_statements)
	{
		int			n = len;

		if (n > audit_max_statement)
		{
			n = pg_mbcliplen(src, len, audit_max_statement);
			truncated = true;
		}
		s = pnstrdup(src, n);
	}
	else if (parsed)
	{
		char	   *pgq = NULL;
		char	   *err = NULL;

		/*
		 * libpg_query sees the text only when the server parsed it and it
		 * fits the cap (ag_pgq_normalize also refuses deep expressions).  Its
		 * output keeps comments, which may carry secrets too, so the lexer
		 * pass follows in every case; it also handles whatever libpg_query
		 * refused.
		 */
		if (audit_normalizer == AG_NORMALIZER_LIBPG_QUERY &&
			len <= audit_max_statement &&
			ag_pgq_normalize(src, len, &pgq, &err))
		{
			s = ag_audit_normalize(pgq, strlen(pgq), audit_max_statement, &truncated);
			pfree(pgq);
		}
		else
			s = ag_audit_normalize(src, len, audit_max_statement, &truncated);
		*flags |= AG_AUDIT_NORMALIZED;
	}
	else
		s = ag_audit_scrub(src, len, audit_max_statement, &truncated);
	if (truncated)
		*flags |= AG_AUDIT_TRUNCATED;
	return s;
}

/*
 * A DO block's text: its body with literals, comments and anything whose
 * reading is in doubt taken out, as for text the server could not parse
 * (the body is not SQL, and it has not been compiled yet).  "DO $1" would
 * say nothing of what the block does.
 */
static char *
do_statement_text(const char *body, const char *lang, uint16 *flags)
{
	StringInfoData out;
	bool		truncated = false;
	char	   *b;

	initStringInfo(&out);
	appendStringInfoString(&out, "DO ");
	if (lang)
		appendStringInfo(&out, "LANGUAGE %s ", quote_identifier(lang));
	b = ag_audit_scrub(body, strlen(body),
					   Max(audit_max_statement - out.len - 8, 64), &truncated);
	appendStringInfo(&out, "$$ %s $$", b);
	pfree(b);
	*flags |= AG_AUDIT_NORMALIZED;
	if (truncated)
		*flags |= AG_AUDIT_TRUNCATED;
	return out.data;
}

static AgDecision
decide_verdict(AgVerdict v, bool failed)
{

	switch (v.decision)
	{
		case AG_DECISION_BLOCKED:
			return AG_DECISION_BLOCKED;
		case AG_DECISION_MONITORED:
			return failed ? AG_DECISION_ERROR : AG_DECISION_MONITORED;
		case AG_DECISION_LOGGED:
			return failed ? AG_DECISION_ERROR : AG_DECISION_LOGGED;
		case AG_DECISION_APPROVAL:
		case AG_DECISION_DENIED:
			/* refused (or ended) waiting for an approver */
			return v.decision;
		case AG_DECISION_APPROVED:
			return failed ? AG_DECISION_ERROR : AG_DECISION_APPROVED;
		default:
			break;
	}
	/*
	 * Only a verdict makes a refusal: the error's text proves nothing (an
	 * agent can RAISE a message that looks like one of ours).
	 */
	return failed ? AG_DECISION_ERROR : AG_DECISION_ALLOWED;
}

static void
fail_ring_full(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("agentgate: audit log buffer full, statement refused"),
			 errdetail("The audit writer has not freed space in the ring for %d ms.",
					   audit_block_timeout),
			 errhint("Retry later; a database administrator should check the audit writer, locks on agentgate.audit_log, and agentgate.audit_ring_slots.")));
}

/*
 * Append, applying the overflow policy.  may_fail: raise the ring-full
 * error (normal paths); otherwise a full ring counts a drop (error paths,
 * which are failing anyway).  Returns whether the record is in the ring.
 */
static bool
append_record(AgAuditEntry *e, bool may_fail, uint64 *rseq)
{
	for (;;)
	{
		AgAppendResult r = ag_audit_ring_append(e, rseq);

		if (r == AG_APPEND_OK)
			return true;
		if (r == AG_APPEND_NO_RING)
			return false;
		if (audit_overflow == AG_OVERFLOW_DROP)
			break;
		if (!ag_audit_ring_wait_space(ag_audit_slots_needed(e), audit_block_timeout))
		{
			if (may_fail)
			{
				ag_audit_ring_count_drop();
				fail_ring_full();
			}
			break;
		}
	}
	ag_audit_ring_count_drop();
	return false;
}

/*
 * Wait until record rseq is committed by the worker.  Unless a commit
 * record of this backend follows (commit_follows: it will flush WAL past
 * the worker's commit), also flush WAL up to the worker's commit, so the
 * row survives a crash from the moment the caller goes on.
 */
static void
wait_durable(uint64 rseq, bool may_fail, bool commit_follows)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;

	if (ag_audit_ring_wait_flushed(rseq, audit_sync_timeout, &lsn))
	{
		if (!commit_follows && lsn != InvalidXLogRecPtr && !RecoveryInProgress())
			XLogFlush(lsn);
		return;
	}
	if (may_fail)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("agentgate: audit row not committed in time, statement refused"),
				 errdetail("The statement's audit row was not committed within %d ms.",
						   audit_sync_timeout),
				 errhint("Retry later; a database administrator should check the audit writer and locks on agentgate.audit_log.")));
}

/* ---- local commit ----
 *
 * In agentgate.audit_database itself, a transaction that wrote does not
 * wait for the writer: its rows are held here, in statement order, and
 * inserted at PRE_COMMIT into the day's partition by the transaction
 * itself, so they commit atomically with its writes (or not at all) and
 * no process wakes another.  The guarantees stay those of the ring:
 *	- a committed write has its row: the row is in the same commit;
 *	- rows of a rollback survive it: on abort they go to the ring, as
 *	  every row did before (a failure inside PRE_COMMIT aborts too);
 *	- a crash loses no row uncounted: held rows count as appended
 *	  (ag_audit_ring_hold), so the next gap row covers them.
 * Each row's stub (its header without text, flagged AG_AUDIT_LOCAL) goes
 * through the ring at PRE_COMMIT to take its sequence number and to count
 * in the session summary, which the writer keeps.
 *
 * A row is held only while the transaction is short: beyond
 * AG_HOLD_MAX_ROWS rows, AG_HOLD_MAX_BYTES of text or the writer's flush
 * interval since the first held row, the held rows go to the ring and the
 * commit waits for them as before.  Not held: refusals (durable before the
 * error is sent), rows of parallel workers, of a standby, of serializable
 * transactions (the insert could add a serialization failure at commit),
 * and of any database but the audit database, whose transactions cannot
 * write there (they keep the one wait at commit).
 */

static bool
may_hold(void)
{
	Oid			db;

	if (!audit_local_commit || pending_sync || IsParallelWorker() ||
		RecoveryInProgress() || IsolationIsSerializable() || !IsTransactionState())
		return false;
	db = ag_audit_database_oid();
	return OidIsValid(db) && db == MyDatabaseId;
}

/* the entry a held record stands for */
static void
entry_of(AgAuditEntry *e, const char *raw)
{
	memcpy(&e->hdr, raw, sizeof(AgAuditRecord));
	e->stmt = raw + sizeof(AgAuditRecord);
	e->err = e->stmt + e->hdr.stmt_len;
	e->rels = e->err + e->hdr.err_len;
	e->masked = e->rels + e->hdr.rel_len;
	e->chain = e->masked + e->hdr.mask_len;
}

/* Hold e for the commit; false when it must take the ring instead. */
static bool
hold_row(AgAuditEntry *e)
{
	Size		len = sizeof(AgAuditRecord) + e->hdr.stmt_len + e->hdr.err_len +
		e->hdr.rel_len + e->hdr.mask_len + e->hdr.chain_len;
	char	   *raw;

	if (nheld > 0 &&
		(nheld >= AG_HOLD_MAX_ROWS || held_bytes + len > AG_HOLD_MAX_BYTES ||
		 TimestampDifferenceExceeds(held_since, GetCurrentTimestamp(),
									ag_audit_flush_interval())))
	{
		spill_held(true);		/* the commit waits, as it did before */
		return false;
	}
	if (held == NULL)
	{
		held = MemoryContextAlloc(held_cxt, sizeof(char *) * AG_HOLD_MAX_ROWS);
		held_stubbed = MemoryContextAllocZero(held_cxt, sizeof(bool) * AG_HOLD_MAX_ROWS);
		held_since = GetCurrentTimestamp();
	}
	raw = MemoryContextAlloc(held_cxt, len);
	memcpy(raw, &e->hdr, sizeof(AgAuditRecord));
	memcpy(raw + sizeof(AgAuditRecord), e->stmt, e->hdr.stmt_len);
	memcpy(raw + sizeof(AgAuditRecord) + e->hdr.stmt_len, e->err, e->hdr.err_len);
	memcpy(raw + sizeof(AgAuditRecord) + e->hdr.stmt_len + e->hdr.err_len,
		   e->rels, e->hdr.rel_len);
	memcpy(raw + sizeof(AgAuditRecord) + e->hdr.stmt_len + e->hdr.err_len +
		   e->hdr.rel_len, e->masked, e->hdr.mask_len);
	memcpy(raw + sizeof(AgAuditRecord) + e->hdr.stmt_len + e->hdr.err_len +
		   e->hdr.rel_len + e->hdr.mask_len, e->chain, e->hdr.chain_len);
	held[nheld] = raw;
	held_stubbed[nheld] = false;
	nheld++;
	held_bytes += len;
	ag_audit_ring_hold(1);
	return true;
}

/*
 * Hand the held rows to the ring.  may_fail: the normal path, whose commit
 * then waits for them (pending_sync); otherwise an abort, which appends
 * what fits.  Rows whose stub was counted are flagged not to count again.
 */
static void
spill_held(bool may_fail)
{
	int			n = nheld;

	for (int i = 0; i < n; i++)
	{
		AgAuditEntry e;
		uint64		rseq;

		entry_of(&e, held[i]);
		if (held_stubbed[i])
			e.hdr.flags |= AG_AUDIT_NO_SUMMARY;
		if (append_record(&e, may_fail, &rseq) && may_fail)
		{
			pending_sync = true;
			pending_sync_rseq = rseq;
		}
	}
	release_held();
}

/* Forget the held rows (written, or handed to the ring). */
static void
release_held(void)
{
	ag_audit_ring_hold(-(int64) nheld);
	nheld = 0;
	held_bytes = 0;
	held = NULL;
	held_stubbed = NULL;
	held_written = false;
	MemoryContextReset(held_cxt);
}

/*
 * PRE_COMMIT: stubs to the ring (sequence numbers, summary), then the rows
 * into the log in this transaction.  When the direct insert cannot be done
 * here, the rows go to the ring and the commit waits for the writer.
 */
static void
write_held(void)
{
	for (int i = 0; i < nheld; i++)
	{
		AgAuditEntry e;
		uint64		rseq;

		entry_of(&e, held[i]);
		e.hdr.flags |= AG_AUDIT_LOCAL;
		e.hdr.stmt_len = e.hdr.err_len = e.hdr.rel_len = e.hdr.mask_len = e.hdr.chain_len = 0;
		if (!append_record(&e, true, &rseq))
		{
			spill_held(true);	/* no ring, or dropped: no local row either */
			return;
		}
		((AgAuditRecord *) held[i])->rseq = rseq;
		held_stubbed[i] = true;
	}
	if (ag_audit_write_local(held, nheld))
		held_written = true;	/* released at COMMIT, spilled at ABORT */
	else
		spill_held(true);
}

/*
 * Qualified names of recently audited relations, so that an agent's
 * repeated statements do not look the same names up and quote them again
 * for every row.  Direct-mapped by OID; emptied on any relcache or
 * pg_namespace invalidation (renames, drops), which is rare next to
 * statements.
 */
#define AG_RELNAME_CACHE 32

typedef struct RelNameEntry
{
	Oid			relid;			/* InvalidOid: empty */
	bool		partition;		/* relispartition */
	char		name[4 * NAMEDATALEN + 8];	/* quoted "schema.table" */
} RelNameEntry;

static RelNameEntry relname_cache[AG_RELNAME_CACHE];

static void
relname_cache_reset(Datum arg, Oid relid)
{
	if (OidIsValid(relid))
	{
		RelNameEntry *e = &relname_cache[relid % AG_RELNAME_CACHE];

		if (e->relid == relid)
			e->relid = InvalidOid;
		return;
	}
	for (int i = 0; i < AG_RELNAME_CACHE; i++)
		relname_cache[i].relid = InvalidOid;
}

static void
relname_cache_reset_nsp(Datum arg, int cacheid, uint32 hashvalue)
{
	relname_cache_reset(arg, InvalidOid);
}

/* The cache entry for relid, filled from the catalogs; NULL if it is gone. */
static RelNameEntry *
relname_lookup(Oid relid)
{
	RelNameEntry *e = &relname_cache[relid % AG_RELNAME_CACHE];
	HeapTuple	tp;
	Form_pg_class cls;
	char	   *nsp;
	const char *q;

	if (e->relid == relid)
		return e;
	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tp))
		return NULL;
	cls = (Form_pg_class) GETSTRUCT(tp);
	nsp = get_namespace_name(cls->relnamespace);
	q = quote_qualified_identifier(nsp, NameStr(cls->relname));
	e->partition = cls->relispartition;
	strlcpy(e->name, q, sizeof(e->name));
	ReleaseSysCache(tp);
	e->relid = relid;
	return e;
}

/*
 * Add one relation of the plan to the list, unless it is there already or
 * is a partition the planner added under its parent (the parent names it).
 * Returns false once the list is full: the cut is marked by an empty name.
 */
static bool
add_relation(StringInfo buf, List **seen, RangeTblEntry *rte)
{
	RelNameEntry *e;
	int			n;

	if (rte->rtekind != RTE_RELATION || list_member_oid(*seen, rte->relid))
		return true;
	e = relname_lookup(rte->relid);
	if (e == NULL || (!rte->inh && e->partition))
		return true;
	*seen = lappend_oid(*seen, rte->relid);
	n = strlen(e->name);
	if (buf->len + n + 2 > AG_MAX_REL_TEXT)
	{
		appendStringInfoChar(buf, '\0');	/* the cut: an empty name */
		return false;
	}
	appendBinaryStringInfo(buf, e->name, n + 1);	/* with its NUL */
	return true;
}

/*
 * Quoted "schema.table" names of the relations a plan reads or writes, the
 * target tables first (those of data-modifying CTEs too), each ending in a
 * NUL: a quoted name can hold any byte but NUL.  The list is capped at
 * AG_MAX_REL_TEXT bytes (hundreds of names); a cut list ends in an empty
 * name, which the writer stores as a NULL element.
 */
static char *
plan_relations(PlannedStmt *ps, int *len)
{
	StringInfoData buf;
	ListCell   *lc;
	List	   *seen = NIL;
	bool		room = true;

	*len = 0;
	if (ps == NULL || ps->rtable == NIL)
		return NULL;
	initStringInfo(&buf);
	foreach(lc, ps->resultRelations)
	{
		Index		rti = lfirst_int(lc);

		if (rti > 0 && rti <= list_length(ps->rtable) &&
			!(room = add_relation(&buf, &seen, rt_fetch(rti, ps->rtable))))
			break;
	}
	if (room)
	{
		foreach(lc, ps->rtable)
		{
			if (!add_relation(&buf, &seen, lfirst(lc)))
				break;
		}
	}
	list_free(seen);
	if (buf.len == 0)
	{
		pfree(buf.data);
		return NULL;
	}
	*len = buf.len;
	return buf.data;
}

/*
 * The masked columns (quoted schema.table.column) a plan of this session
 * reads, each ending in a NUL, as plan_relations lists relations; in
 * monitor mode, those it would have read masked.
 */
static char *
plan_masked_columns(PlannedStmt *ps, int *len)
{
	List	   *cols = ag_mask_read_columns(ps);
	StringInfoData buf;
	ListCell   *lc;

	*len = 0;
	if (cols == NIL)
		return NULL;
	initStringInfo(&buf);
	foreach(lc, cols)
	{
		const char *name = strVal(lfirst(lc));

		if (buf.len + strlen(name) + 1 > AG_MAX_REL_TEXT)
		{
			appendStringInfoChar(&buf, '\0');	/* cut: a NULL element */
			break;
		}
		appendBinaryStringInfo(&buf, name, strlen(name) + 1);
	}
	list_free_deep(cols);
	*len = buf.len;
	return buf.data;
}

typedef struct RowArgs
{
	const char *src;			/* whole source text */
	int			location;
	int			len;
	bool		parsed;
	const char *tag;
	TimestampTz start;
	int			level;
	bool		failed;
	int			sqlerrcode;		/* when failed */
	const char *message_id;		/* untranslated message template */
	const char *message;		/* formatted message (raw statements only) */
	bool		has_rows;
	uint64		rows;
	const char *rels;			/* NUL-terminated names, targets first */
	int			rels_len;
	const char *masked;			/* NUL-terminated masked columns read */
	int			masked_len;
	const char *do_body;		/* a DO block's body, its language */
	const char *do_lang;
	const char *funcname;		/* a call seen by the function hook */
} RowArgs;

static void
build_entry(AgAuditEntry *e, RowArgs *a)
{
	AgAuditRecord *h = &e->hdr;
	const char *stmt;
	int			stmtlen;
	char	   *text;
	TimestampTz now = GetCurrentTimestamp();

	memset(e, 0, sizeof(*e));
	fill_session(h);
	h->kind = AG_AUDIT_KIND_STMT;
	/* failures before execution: time from the start of the message */
	h->ts = a->start ? a->start : GetCurrentStatementStartTimestamp();
	if (h->ts == 0 || h->ts > now)
		h->ts = now;
	h->duration_ms = (double) (now - h->ts) / 1000.0;
	h->flags |= AG_AUDIT_HAS_DURATION;
	if (a->level > 0)
		h->flags |= AG_AUDIT_NESTED;
	strlcpy(h->session_id, session_id(), sizeof(h->session_id));
	{
		/* who the session acts for: from the same verified stamp */
		static char chain[AG_DELEG_NAMES_LEN + 1];
		int			n = ag_session_chain(sess_role, '\0', chain, AG_DELEG_NAMES_LEN);

		if (n > 0)
		{
			chain[n] = '\0';
			e->chain = chain;
			h->chain_len = n + 1;
		}
	}
	if (a->tag)
		strlcpy(h->command_tag, a->tag, sizeof(h->command_tag));
	if (a->funcname)
	{
		/* a call inside a DO block: the level's verdict is a statement's */
		h->decision = AG_DECISION_ALLOWED;
	}
	else
	{
		AgVerdict	v = a->failed ? ag_verdict_get_failed(a->level) :
			ag_verdict_get(a->level);

		h->decision = decide_verdict(v, a->failed);
		h->rule_id = v.rule_id;

		/*
		 * The verdict is consumed by this row.  Resetting here rather than
		 * when a statement starts keeps what policy noted while planning
		 * (before ExecutorStart) and still gives a cached plan's next run a
		 * clean slate.
		 */
		ag_verdict_reset(a->level);
	}
	if (a->has_rows)
	{
		h->rows = (int64) a->rows;
		h->flags |= AG_AUDIT_HAS_ROWS;
	}
	if (a->funcname)
	{
		/* a call seen by the function hook: its name is the statement */
		text = pstrdup(a->funcname);
		h->flags |= AG_AUDIT_NORMALIZED;
	}
	else if (a->do_body && !audit_raw_statements)
		text = do_statement_text(a->do_body, a->do_lang, &h->flags);
	else
	{
		slice_statement(a->src, a->location, a->len, &stmt, &stmtlen);
		text = statement_text(stmt, stmtlen, a->parsed, &h->flags);
	}
	e->stmt = text;
	h->stmt_len = text ? strlen(text) : 0;

	/*
	 * Fingerprint: a hash of the normalised text, so statements that differ
	 * only in their literals share it.  (The server's query identifier would
	 * need compute_query_id for every session of the cluster.)
	 */
	if (text && (h->flags & AG_AUDIT_NORMALIZED))
	{
		uint64		fp = hash_bytes_extended((const unsigned char *) text,
											 h->stmt_len, 0);

		StaticAssertStmt(sizeof(h->fingerprint) >= 17, "fingerprint holds 16 hex digits");
		/* "%016llx" without a printf: this runs for every statement */
		for (int i = 15; i >= 0; i--, fp >>= 4)
			h->fingerprint[i] = "0123456789abcdef"[fp & 0xf];
		h->fingerprint[16] = '\0';
	}
	if (a->failed)
	{
		/*
		 * The message's untranslated template, not the message: the values
		 * formatted into a message (the input that did not parse, the key
		 * that was duplicated, a RAISE's text) are where literals would leak.
		 * Errors that arrive without a template (relayed from a parallel
		 * worker) keep no message.  Raw statements keep the message itself.
		 */
		const char *msg = audit_raw_statements ? a->message : a->message_id;

		strlcpy(h->sqlstate, unpack_sql_state(a->sqlerrcode), sizeof(h->sqlstate));
		if (msg)
		{
			int			n = strlen(msg);

			if (n > AG_MAX_ERROR_TEXT)
				n = pg_mbcliplen(msg, n, AG_MAX_ERROR_TEXT);
			e->err = msg;
			h->err_len = n;
		}
	}
	if (a->rels && a->rels_len > 0)
	{
		e->rels = a->rels;
		h->rel_len = a->rels_len;
	}
	if (a->masked && a->masked_len > 0)
	{
		e->masked = a->masked;
		h->mask_len = a->masked_len;
	}
}

/*
 * ag_audit_approval_row appends a row of the approval queue's own: a
 * waiting statement's request (role NULL: this session's), or an
 * approver's decision, written in the requesting session's name (its role,
 * identity and session id) so that session_replay() shows it in order with
 * the session's statements.  The note (who decided, their comment) goes
 * into error_message; command_tag says what the row is.
 */
void
ag_audit_approval_row(AgDecision decision, const char *role, const char *identity,
					  const char *sid, const char *stmt, const char *note,
					  int64 rule_id)
{
	AgAuditEntry e;
	AgAuditRecord *h = &e.hdr;
	uint64		rseq;
	char	   *text;

	if (!audit_enabled || !ag_audit_ring_ready())
		return;
	memset(&e, 0, sizeof(e));
	fill_session(h);
	h->kind = AG_AUDIT_KIND_STMT;
	h->ts = GetCurrentTimestamp();
	h->decision = decision;
	h->rule_id = rule_id;
	if (role)
	{
		strlcpy(h->role_name, role, sizeof(h->role_name));
		strlcpy(h->identity, identity ? identity : "", sizeof(h->identity));
		strlcpy(h->session_id, sid ? sid : "", sizeof(h->session_id));
		strlcpy(h->database, get_database_name(MyDatabaseId), sizeof(h->database));
	}
	else
		strlcpy(h->session_id, session_id(), sizeof(h->session_id));
	strlcpy(h->command_tag,
			decision == AG_DECISION_APPROVED ? "APPROVE" :
			decision == AG_DECISION_DENIED ? "DENY" :
			role ? "APPROVAL VOTE" : "APPROVAL REQUEST",
			sizeof(h->command_tag));
	text = statement_text(stmt ? stmt : "", stmt ? strlen(stmt) : 0, true, &h->flags);
	e.stmt = text;
	h->stmt_len = text ? strlen(text) : 0;
	if (note)
	{
		int			n = strlen(note);

		if (n > AG_MAX_ERROR_TEXT)
			n = pg_mbcliplen(note, n, AG_MAX_ERROR_TEXT);
		e.err = note;
		h->err_len = n;
	}
	(void) append_record(&e, true, &rseq);
}

/* Row of a statement that completed. */
static void
audit_success(RowArgs *a, bool write)
{
	AgAuditEntry e;
	uint64		rseq;

	build_entry(&e, a);
	/* in the audit database, a writing transaction writes its own rows */
	if ((write || nheld > 0) && e.hdr.decision != AG_DECISION_BLOCKED &&
		may_hold() && hold_row(&e))
	{
		if (a->level == 0)
			last_source = NULL;
		return;
	}
	if (a->level > 0)
	{
		if (append_record(&e, true, &rseq) && write)
		{
			pending_sync = true;
			pending_sync_rseq = rseq;
		}
		return;
	}
	last_source = NULL;
	if (!append_record(&e, true, &rseq))
		return;
	if (e.hdr.decision == AG_DECISION_BLOCKED)
	{
		/* recorded as a refusal: durable before anything else happens */
		wait_durable(rseq, true, false);
		pending_sync = false;
	}
	else if ((write || pending_sync) && IsTransactionBlock())
	{
		/* one wait for the whole transaction, at its commit */
		pending_sync = true;
		pending_sync_rseq = rseq;
	}
	else if (write || pending_sync)
	{
		/* autocommit: the commit follows at once */
		wait_durable(rseq, true,
					 TransactionIdIsValid(GetTopTransactionIdIfAny()));
		pending_sync = false;
	}
}

/*
 * Statements that failed inside one of our hooks, waiting for their rows.
 *
 * Nothing is built, appended or waited for where the failure is caught
 * (PG_CATCH): that would lex, hash and wait -- and a wait services
 * interrupts, so a cancel, a statement_timeout or a parallel worker's exit
 * arriving then would raise a new error that replaces the statement's own.
 * The catch only copies what the row needs (the statement's text, the
 * error's SQLSTATE and template) and the rows are written:
 *	- when the error is reported (emit_log_hook, which PostgresMain calls with
 *	  interrupts held and timeouts disabled, before the client hears of it):
 *	  with the error exactly as reported, waiting for durability there;
 *	- when a subtransaction aborts (a PL/pgSQL EXCEPTION block caught it):
 *	  appended; when the row must be durable, the enclosing statement or the
 *	  commit waits for it, as for a nested write;
 *	- at the end of the transaction, for any left (an error swallowed
 *	  without either, or not logged because of log_min_messages): appended.
 */
typedef struct PendingFailure
{
	RowArgs		a;				/* every pointer into audit_cxt */
	SubTransactionId subxid;
} PendingFailure;


static char *
cxt_strdup(const char *s, int len)
{
	return s ? pnstrdup(s, len) : NULL;
}

static void
capture_failure(RowArgs *a)
{
	MemoryContext old = MemoryContextSwitchTo(audit_cxt);
	PendingFailure *p = palloc0(sizeof(PendingFailure));
	ErrorData  *edata = CopyErrorData();
	const char *stmt;
	int			stmtlen;

	p->a = *a;
	slice_statement(a->src, a->location, a->len, &stmt, &stmtlen);
	p->a.src = cxt_strdup(stmt, stmtlen);
	p->a.location = -1;
	p->a.len = stmtlen;
	if (a->do_body)
		p->a.do_body = pstrdup(a->do_body);
	if (a->do_lang)
		p->a.do_lang = pstrdup(a->do_lang);
	if (a->rels && a->rels_len > 0)
	{
		char	   *r = palloc(a->rels_len);

		memcpy(r, a->rels, a->rels_len);
		p->a.rels = r;
	}
	if (a->masked && a->masked_len > 0)
	{
		char	   *m = palloc(a->masked_len);

		memcpy(m, a->masked, a->masked_len);
		p->a.masked = m;
	}
	p->a.failed = true;
	p->a.sqlerrcode = edata->sqlerrcode;
	p->a.message_id = edata->message_id ? pstrdup(edata->message_id) : NULL;
	p->a.message = audit_raw_statements ? edata->message : NULL;
	p->subxid = GetCurrentSubTransactionId();
	pending_failures = lappend(pending_failures, p);
	MemoryContextSwitchTo(old);
}

/*
 * Write the pending rows.  edata: the error being reported, which every row
 * carries (NULL: each keeps what was caught).  wait: make them durable now;
 * otherwise a row that must be durable makes the enclosing statement or the
 * commit wait.
 */
static void
flush_failures(ErrorData *edata, bool wait)
{
	MemoryContext old;
	List	   *list = pending_failures;
	ListCell   *lc;
	bool		need = false;
	uint64		last = 0;

	if (list == NIL)
		return;
	pending_failures = NIL;
	old = MemoryContextSwitchTo(audit_cxt);
	foreach(lc, list)
	{
		PendingFailure *p = lfirst(lc);
		AgAuditEntry e;
		uint64		rseq;

		if (edata)
		{
			p->a.sqlerrcode = edata->sqlerrcode;
			p->a.message_id = edata->message_id;
			p->a.message = edata->message;
		}
		build_entry(&e, &p->a);
		if (append_record(&e, false, &rseq) &&
			(p->a.level == 0 || e.hdr.decision == AG_DECISION_BLOCKED || pending_sync))
		{
			need = true;
			last = rseq;
		}
	}
	if (need && wait)
		wait_durable(last, false, false);
	else if (need)
	{
		pending_sync = true;
		pending_sync_rseq = last;
	}
	MemoryContextSwitchTo(old);
}

/* Check hooks: agents may not loosen auditing (see governed.c). */
static bool
check_audit_bool(bool *newval, void **extra, GucSource source)
{
	return !ag_setting_refused_for_agent(source);
}

static bool
check_audit_int(int *newval, void **extra, GucSource source)
{
	return !ag_setting_refused_for_agent(source);
}

/* ---- hooks (called by hooks.c, after identity and policy) ---- */

void
ag_audit_shmem_request(void)
{
	ag_audit_ring_request();
	ag_verdict_shmem_request();
}

void
ag_audit_shmem_startup(void)
{
	ag_audit_ring_startup();
	ag_verdict_shmem_startup();
}

void
ag_audit_client_authentication(Port *port, int status)
{
	if (status == STATUS_OK && port->user_name)
		auth_governed = ag_role_is_governed(get_role_oid(port->user_name, true));
}

/* Parse analysis saw a statement; returns whether it is audited. */
bool
ag_audit_parse_analyzed(ParseState *pstate, Query *query)
{
	last_source = pstate->p_sourcetext;
	last_location = query->stmt_location;
	last_len = query->stmt_len;
	return session_audited();
}

void
ag_audit_parse_failed(ParseState *pstate, Query *query)
{
	RowArgs		a = {0};

	a.src = pstate->p_sourcetext;
	a.location = query->stmt_location;
	a.len = query->stmt_len;
	a.parsed = true;
	a.tag = GetCommandTagName(CreateCommandTag((Node *) query));
	a.level = ag_nesting_level;
	capture_failure(&a);
}

bool
ag_audit_planner_start(void)
{
	return session_audited();
}

void
ag_audit_planner_failed(Query *parse, const char *query_string)
{
	RowArgs		a = {0};

	a.src = query_string;
	a.location = parse->stmt_location;
	a.len = parse->stmt_len;
	a.parsed = true;
	a.tag = GetCommandTagName(CreateCommandTag((Node *) parse));
	a.level = ag_nesting_level;
	capture_failure(&a);
}

static StmtFrame *
find_frame(QueryDesc *qd)
{
	ListCell   *lc;

	foreach(lc, frames)
	{
		StmtFrame  *f = lfirst(lc);

		if (f->qd == qd)
			return f;
	}
	return NULL;
}

static void
drop_frame(StmtFrame *f)
{
	frames = list_delete_ptr(frames, f);
	if (f->rels)
		pfree(f->rels);
	if (f->masked)
		pfree(f->masked);
	pfree(f);
}

static bool
plan_writes(QueryDesc *qd)
{
	return qd->operation != CMD_SELECT || qd->plannedstmt->hasModifyingCTE;
}

/* The fail-closed check of a statement the client sent: room in the ring. */
static void
ensure_ring_room(void)
{
	if (audit_overflow == AG_OVERFLOW_BLOCK &&
		!ag_audit_ring_has_room(8) &&
		!ag_audit_ring_wait_space(8, audit_block_timeout))
		fail_ring_full();
}

void
ag_audit_executor_start(AgStmt *st, int eflags)
{
	QueryDesc  *queryDesc = st->qd;
	MemoryContext old;
	StmtFrame  *f;

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0 || !session_audited())
		return;
	/* fail closed before running anything when the log is stuck */
	if (st->level == 0)
		ensure_ring_room();
	old = MemoryContextSwitchTo(audit_cxt);
	f = palloc0(sizeof(StmtFrame));
	f->qd = queryDesc;
	f->start = GetCurrentTimestamp();
	f->level = st->level;
	f->write = plan_writes(queryDesc);
	f->rels = plan_relations(queryDesc->plannedstmt, &f->rels_len);
	f->masked = plan_masked_columns(queryDesc->plannedstmt, &f->masked_len);
	frames = lappend(frames, f);
	MemoryContextSwitchTo(old);
	st->audited = true;
	if (st->level == 0)
		flush_failures(NULL, false);	/* of an error swallowed earlier */
}

/*
 * ExecutorStart, Run or Finish failed (called from PG_CATCH): capture the
 * statement's row; it is written when the error is reported.
 */
/* What a row of an executor statement takes from its frame. */
static void
frame_row_args(RowArgs *a, QueryDesc *qd, StmtFrame *f)
{
	a->src = qd->sourceText;
	a->location = qd->plannedstmt->stmt_location;
	a->len = qd->plannedstmt->stmt_len;
	a->parsed = true;
	a->tag = GetCommandTagName(CreateCommandTag((Node *) qd->plannedstmt));
	a->start = f->start;
	a->level = f->level;
	a->rels = f->rels;
	a->rels_len = f->rels_len;
	a->masked = f->masked;
	a->masked_len = f->masked_len;
}

void
ag_audit_executor_failed(QueryDesc *qd)
{
	StmtFrame  *f = find_frame(qd);
	RowArgs		a = {0};

	if (f == NULL)
		return;
	frame_row_args(&a, qd, f);
	capture_failure(&a);
	drop_frame(f);
}

void
ag_audit_executor_end(QueryDesc *queryDesc)
{
	StmtFrame  *f = find_frame(queryDesc);
	RowArgs		a = {0};
	StmtFrame	copy;

	if (f == NULL)
		return;
	copy = *f;
	frame_row_args(&a, queryDesc, f);
	a.has_rows = true;
	a.rows = queryDesc->estate ? queryDesc->estate->es_processed : 0;
	frames = list_delete_ptr(frames, f);
	audit_success(&a, copy.write);
	if (copy.rels)
		pfree(copy.rels);
	if (copy.masked)
		pfree(copy.masked);
	pfree(f);
}

/* Utility statements that neither write nor change the schema. */
static bool
utility_is_read(Node *n)
{
	switch (nodeTag(n))
	{
		case T_TransactionStmt:
		case T_VariableSetStmt:
		case T_VariableShowStmt:
		case T_DiscardStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_DeclareCursorStmt:
		case T_PrepareStmt:
		case T_DeallocateStmt:
		case T_ExplainStmt:
		case T_ExecuteStmt:		/* the statement it runs decides */
		case T_DoStmt:			/* likewise */
		case T_CallStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_NotifyStmt:
		case T_CheckPointStmt:
		case T_LoadStmt:
			return true;
		case T_CopyStmt:
			return !((CopyStmt *) n)->is_from;
		default:
			return false;
	}
}

/* The row of a utility statement, from what the context kept. */
static void
utility_row(AgStmt *st, RowArgs *a)
{
	memset(a, 0, sizeof(RowArgs));
	a->src = st->source;
	a->location = st->pstmt->stmt_location;
	a->len = st->pstmt->stmt_len;
	a->parsed = true;
	a->tag = GetCommandTagName(CreateCommandTag(st->pstmt->utilityStmt));
	a->start = st->start;
	a->level = st->level;
	a->do_body = st->do_body;
	a->do_lang = st->do_lang;
}

void
ag_audit_utility(AgStmt *st)
{
	Node	   *n = st->pstmt->utilityStmt;

	if (!session_audited())
		return;
	if (st->level == 0)
		ensure_ring_room();
	st->audited = true;
	st->write = !utility_is_read(n);
	st->start = GetCurrentTimestamp();
	if (st->level == 0)
		flush_failures(NULL, false);	/* of an error swallowed earlier */
	if (IsA(n, DoStmt))
	{
		ListCell   *lc;

		foreach(lc, ((DoStmt *) n)->args)
		{
			DefElem    *d = lfirst(lc);

			if (strcmp(d->defname, "as") == 0 && IsA(d->arg, String))
				st->do_body = strVal(d->arg);
			else if (strcmp(d->defname, "language") == 0 && IsA(d->arg, String))
				st->do_lang = strVal(d->arg);
		}
	}
}

/* Called from PG_CATCH: capture only. */
void
ag_audit_utility_failed(AgStmt *st)
{
	RowArgs		a;

	if (!st->audited)
		return;
	utility_row(st, &a);
	capture_failure(&a);
}

void
ag_audit_utility_done(AgStmt *st, QueryCompletion *qc)
{
	RowArgs		a;

	/*
	 * A COMMIT or ROLLBACK may have reset our memory at transaction end; the
	 * row is built only now, from values that live in the context.
	 */
	if (!st->audited)
		return;
	utility_row(st, &a);
	if (qc && qc->commandTag != CMDTAG_UNKNOWN)
	{
		a.has_rows = true;
		a.rows = qc->nprocessed;
	}
	audit_success(&a, st->write);
}

/*
 * An error is being reported.  If our hooks saw the statement fail, its rows
 * are written now, carrying this very error, and made durable before the
 * client hears of it: PostgresMain reports errors with interrupts held and
 * timeouts disabled, so nothing can raise a second error during the wait.
 * Otherwise the error was raised outside the hooks (syntax errors, "current
 * transaction is aborted", ...): one row, appended only, with no catalog
 * access (cached names).
 */
void
ag_audit_emit_log(ErrorData *edata)
{
	if (edata->elevel == ERROR && audit_enabled && !in_emit_log &&
		MyBackendType == B_BACKEND && ag_audit_ring_ready())
	{
		in_emit_log = true;
		if (pending_failures != NIL)
			flush_failures(edata, InterruptHoldoffCount > 0);
		else if (debug_query_string != NULL &&
				 (governed_known ? (governed_cached || audit_all_roles)
				  : (auth_governed || audit_all_roles)))
		{
			AgAuditEntry e;
			RowArgs		a = {0};
			MemoryContext old = MemoryContextSwitchTo(audit_cxt);

			a.src = debug_query_string;
			/* the statement parse analysis last saw, when it is this text */
			if (last_source == debug_query_string)
			{
				a.location = last_location;
				a.len = last_len;
			}
			else
				a.location = -1;
			a.parsed = false;
			a.level = 0;
			a.failed = true;
			a.sqlerrcode = edata->sqlerrcode;
			a.message_id = edata->message_id;
			a.message = edata->message;
			build_entry(&e, &a);
			if (ag_audit_ring_append(&e, NULL) != AG_APPEND_OK)
				ag_audit_ring_count_drop();
			MemoryContextSwitchTo(old);
		}
		in_emit_log = false;
	}
	last_source = NULL;
}

/*
 * A subtransaction rolled back: an EXCEPTION block caught the error (or is
 * about to re-throw it).  The rows of what failed inside it are written
 * now, with the error as it was caught, without waiting.
 */
static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && pending_failures != NIL)
		flush_failures(NULL, false);
}

/*
 * A function is about to be run by an expression.  Inside a DO block or a
 * procedure with no statement in between (PL/pgSQL simple expressions,
 * CALL's arguments), the call gets a nested row of its own: otherwise
 * "x := lo_unlink(...)" would leave no trace.  Calls that cannot change
 * anything (stable or immutable functions of pg_catalog: casts, operators)
 * are left out.  A volatile function may write, so its row is waited for
 * like a nested write's.  Expressions are set up once per transaction, so
 * a loop gives one row per call site, not one per iteration.
 */
void
ag_audit_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					   int subId, void *arg)
{
	if (access == OAT_FUNCTION_EXECUTE && ag_frame == AG_FRAME_DO &&
		session_audited())
	{
		HeapTuple	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(objectId));
		Form_pg_proc proc;
		bool		volatile_fn;
		RowArgs		a = {0};

		if (!HeapTupleIsValid(tp))
			return;
		proc = (Form_pg_proc) GETSTRUCT(tp);
		volatile_fn = (proc->provolatile == PROVOLATILE_VOLATILE);
		if (!volatile_fn && proc->pronamespace == PG_CATALOG_NAMESPACE)
		{
			ReleaseSysCache(tp);
			return;
		}
		ReleaseSysCache(tp);
		a.funcname = format_procedure_qualified(objectId);
		a.tag = "FUNCTION CALL";
		a.start = GetCurrentTimestamp();
		a.level = ag_nesting_level;
		audit_success(&a, volatile_fn);
	}
}

/* ---- SQL functions ---- */

/*
 * agentgate.audit_statement_text(sql) is what the statement column of an
 * audit row would hold for sql, taken as a statement the server parsed.
 */
Datum
agentgate_audit_statement_text(PG_FUNCTION_ARGS)
{
	text	   *sql = PG_GETARG_TEXT_PP(0);
	uint16		flags = 0;
	char	   *s;

	s = statement_text(VARDATA_ANY(sql), VARSIZE_ANY_EXHDR(sql), true, &flags);
	PG_RETURN_TEXT_P(cstring_to_text(s));
}

/*
 * agentgate.audit_flush() waits until every record appended so far (by any
 * backend) is committed to agentgate.audit_log.
 */
Datum
agentgate_audit_flush(PG_FUNCTION_ARGS)
{
	uint64		upto = ag_audit_ring_appended();

	if (!ag_audit_ring_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate audit ring is not available")));
	if (upto > 0)
	{
		XLogRecPtr	lsn = InvalidXLogRecPtr;

		if (!ag_audit_ring_wait_flushed(upto - 1, -1, &lsn))
			PG_RETURN_BOOL(false);
		if (lsn != InvalidXLogRecPtr && !RecoveryInProgress())
			XLogFlush(lsn);
	}
	PG_RETURN_BOOL(true);
}

/* agentgate.audit_ring_status(): counters for monitoring and tests */
Datum
agentgate_audit_ring_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum(ag_audit_ring_slots);
	values[1] = Int64GetDatum((int64) ag_audit_ring_appended());
	values[2] = Int64GetDatum((int64) ag_audit_ring_pending());
	values[3] = Int64GetDatum(ag_audit_ring_ready() ? ag_audit_ring_epoch() : 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- init ---- */

void
ag_audit_init(void)
{
	DefineCustomBoolVariable("agentgate.audit",
							 "Audits the statements of governed roles.",
							 "Off audits nothing; the policy still applies.",
							 &audit_enabled, true,
							 PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomEnumVariable("agentgate.audit_overflow",
							 "What happens when the audit ring is full: block (then refuse) or drop (counted).",
							 NULL, &audit_overflow, AG_OVERFLOW_BLOCK, overflow_options,
							 PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("agentgate.audit_block_timeout",
							"How long a statement waits for room in a full audit ring before it is refused.",
							NULL, &audit_block_timeout, 5000, 0, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("agentgate.audit_sync_timeout",
							"How long a write, or the COMMIT of a transaction that wrote, waits for its audit rows to be committed before it is refused.",
							NULL, &audit_sync_timeout, 10000, 0, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("agentgate.audit_all_roles",
							 "Audit the statements of every role, not only governed ones.",
							 NULL, &audit_all_roles, false,
							 PGC_SUSET, 0, check_audit_bool, NULL, NULL);
	DefineCustomBoolVariable("agentgate.audit_raw_statements",
							 "Keep the raw statement text (literals included) in the audit log.",
							 "Off: literals are replaced by $n, so secrets typed into SQL stay out of the log.",
							 &audit_raw_statements, false,
							 PGC_SUSET, 0, check_audit_bool, NULL, NULL);
	DefineCustomEnumVariable("agentgate.audit_normalizer",
							 "How literals are taken out of audited statements: the server's lexer, or libpg_query then the lexer.",
							 "Both remove every literal and comment; libpg_query costs several microseconds more per statement.",
							 &audit_normalizer, AG_NORMALIZER_LEXER, normalizer_options,
							 PGC_SUSET, 0, check_audit_int, NULL, NULL);
	DefineCustomIntVariable("agentgate.audit_max_statement",
							"Longest statement text kept in an audit row, in bytes.",
							NULL, &audit_max_statement, 4096, 256, 32768,
							PGC_SUSET, GUC_UNIT_BYTE, check_audit_int, NULL, NULL);

	DefineCustomBoolVariable("agentgate.audit_local_commit",
							 "In agentgate.audit_database, a transaction that wrote inserts its own audit rows at commit instead of waiting for the writer.",
							 "Same guarantee, no wait: the rows commit or roll back with the transaction, and rows of a rollback go through the writer.",
							 &audit_local_commit, true,
							 PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	audit_cxt = AllocSetContextCreate(TopMemoryContext, "agentgate audit",
									  ALLOCSET_SMALL_SIZES);
	held_cxt = AllocSetContextCreate(TopMemoryContext, "agentgate audit held rows",
									 ALLOCSET_DEFAULT_SIZES);
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
	CacheRegisterRelcacheCallback(relname_cache_reset, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, relname_cache_reset_nsp, (Datum) 0);

	/* the ring's and the writer's settings live with the code that reads them */
	ag_audit_ring_init();
	ag_audit_worker_init();
}
