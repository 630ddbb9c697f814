/*-------------------------------------------------------------------------
 *
 * audit_worker.c
 *	  The background worker that moves audit records from the ring into
 *	  agentgate.audit_log.
 *
 * One worker per cluster, connected to agentgate.audit_database: rows of
 * every database go there and carry the database's name.  Each batch is
 * written in one transaction together with the update of
 * agentgate.audit_state (last sequence number committed in this ring
 * epoch): straight into the day's partition when every row belongs to it,
 * else as one INSERT ... SELECT FROM unnest(arrays) routed by the server.
 * The ring's tail moves only after the commit, so a failed batch is retried
 * by the restarted worker and never lost.
 *
 * On SIGTERM (smart or fast shutdown) backends are told to exit at the same
 * time as the worker, so the worker keeps draining until no client backend
 * is left and the ring is empty, for at most AG_DRAIN_LIMIT_MS.
 *
 * Partition maintenance (agentgate.audit_maintain) runs at start and every
 * AG_MAINTAIN_EVERY_MS: it attaches the coming days' partitions ahead of
 * time and drops the days past agentgate.audit_retention_days.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "utils/lsyscache.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "agentgate.h"
#include "audit.h"

#define AG_BATCH_MAX			2000
#define AG_DIRECT_CHUNK			128	/* rows per table_multi_insert() */
#define AG_FREE_DELAY_MS		5	/* longest wait for someone else's WAL flush */
#define AG_DRAIN_LIMIT_MS		10000
#define AG_MAINTAIN_EVERY_MS	(3600 * 1000)
#define AG_DAYS_AHEAD			3

/* the writer's settings (defined in ag_audit_worker_init) */
static char *audit_database = NULL;
static int	audit_flush_interval = 50;
static int	audit_retention_days = 0;
static bool audit_create_extension = false;

static SPIPlanPtr insert_plan = NULL;
static Datum relations_array(text *t);
static MemoryContext batch_cxt = NULL;

/*
 * The audit row as the writer builds it: one column enum and one table of
 * names and types.  The SQL insert, its parameter types and the direct
 * path's attribute map are all generated from it.  The columns are those of
 * agentgate.audit_log (30_audit.sql) except epoch, which is the batch's.
 */
typedef enum AgAuditCol
{
	COL_TS,
	COL_SEQ,
	COL_IDENTITY,
	COL_ROLE_NAME,
	COL_SESSION_ID,
	COL_BACKEND_SESSION,
	COL_PID,
	COL_DATABASE,
	COL_CLIENT_ADDR,
	COL_COMMAND_TAG,
	COL_STATEMENT,
	COL_FINGERPRINT,
	COL_RELATIONS,
	COL_DECISION,
	COL_RULE_ID,
	COL_SQLSTATE,
	COL_ERROR_MESSAGE,
	COL_ROWS,
	COL_DURATION_MS,
	COL_NESTED,
	COL_NORMALIZED,
	COL_TRUNCATED,
	COL_LOST,
	COL_MASKED_COLUMNS,
	COL_CHAIN,
	AG_NCOLS
} AgAuditCol;

/* How a column's collected value becomes the table's type */
typedef enum AgColConv
{
	CONV_NONE,					/* collected as the table's type */
	CONV_NAME,					/* text -> name */
	CONV_INET,					/* text -> inet */
	CONV_RELATIONS				/* NUL-separated names -> text[] (relations,
								 * chain) */
} AgColConv;

typedef struct AgAuditColInfo
{
	const char *name;			/* audit_log's column */
	Oid			type;			/* type of the collected values */
	AgColConv	conv;
} AgAuditColInfo;

static const AgAuditColInfo audit_cols[AG_NCOLS] = {
	[COL_TS] = {"ts", TIMESTAMPTZOID, CONV_NONE},
	[COL_SEQ] = {"seq", INT8OID, CONV_NONE},
	[COL_IDENTITY] = {"identity", TEXTOID, CONV_NONE},
	[COL_ROLE_NAME] = {"role_name", TEXTOID, CONV_NAME},
	[COL_SESSION_ID] = {"session_id", TEXTOID, CONV_NONE},
	[COL_BACKEND_SESSION] = {"backend_session", TEXTOID, CONV_NONE},
	[COL_PID] = {"pid", INT4OID, CONV_NONE},
	[COL_DATABASE] = {"database", TEXTOID, CONV_NAME},
	[COL_CLIENT_ADDR] = {"client_addr", TEXTOID, CONV_INET},
	[COL_COMMAND_TAG] = {"command_tag", TEXTOID, CONV_NONE},
	[COL_STATEMENT] = {"statement", TEXTOID, CONV_NONE},
	[COL_FINGERPRINT] = {"fingerprint", TEXTOID, CONV_NONE},
	[COL_RELATIONS] = {"relations", TEXTOID, CONV_RELATIONS},
	[COL_DECISION] = {"decision", TEXTOID, CONV_NONE},
	[COL_RULE_ID] = {"rule_id", INT8OID, CONV_NONE},
	[COL_SQLSTATE] = {"sqlstate", TEXTOID, CONV_NONE},
	[COL_ERROR_MESSAGE] = {"error_message", TEXTOID, CONV_NONE},
	[COL_ROWS] = {"rows", INT8OID, CONV_NONE},
	[COL_DURATION_MS] = {"duration_ms", FLOAT8OID, CONV_NONE},
	[COL_NESTED] = {"nested", BOOLOID, CONV_NONE},
	[COL_NORMALIZED] = {"normalized", BOOLOID, CONV_NONE},
	[COL_TRUNCATED] = {"truncated", BOOLOID, CONV_NONE},
	[COL_LOST] = {"lost", INT8OID, CONV_NONE},
	[COL_MASKED_COLUMNS] = {"masked_columns", TEXTOID, CONV_RELATIONS},
	[COL_CHAIN] = {"chain", TEXTOID, CONV_RELATIONS},
};

/* the SQL cast of a conversion (relations travel as text[] literals) */
static const char *
conv_cast(AgColConv conv)
{
	switch (conv)
	{
		case CONV_NAME:
			return "::pg_catalog.name";
		case CONV_INET:
			return "::pg_catalog.inet";
		case CONV_RELATIONS:
			return "::pg_catalog.text[]";
		case CONV_NONE:
			break;
	}
	return "";
}

/*
 * The SQL path's insert: $1 the epoch, $2 the batch's last sequence number,
 * then one array per column of audit_cols[], unnested side by side.
 */
static char *
build_insert_sql(void)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "WITH st AS ("
						   "  INSERT INTO " AG_SCHEMA ".audit_state AS s (epoch, last_seq, updated)"
						   "  VALUES ($1, $2, pg_catalog.now())"
						   "  ON CONFLICT (epoch) DO UPDATE"
						   "    SET last_seq = GREATEST(s.last_seq, excluded.last_seq),"
						   "        updated = excluded.updated)"
						   " INSERT INTO " AG_SCHEMA ".audit_log (epoch");
	for (int k = 0; k < AG_NCOLS; k++)
		appendStringInfo(&sql, ", %s", quote_identifier(audit_cols[k].name));
	appendStringInfoString(&sql, ") SELECT $1");
	for (int k = 0; k < AG_NCOLS; k++)
		appendStringInfo(&sql, ", u.%s%s", quote_identifier(audit_cols[k].name),
						 conv_cast(audit_cols[k].conv));
	appendStringInfoString(&sql, " FROM ROWS FROM (");
	for (int k = 0; k < AG_NCOLS; k++)
		appendStringInfo(&sql, "%spg_catalog.unnest($%d)", k ? ", " : "", k + 3);
	appendStringInfoString(&sql, ") AS u(");
	for (int k = 0; k < AG_NCOLS; k++)
		appendStringInfo(&sql, "%s%s", k ? ", " : "", quote_identifier(audit_cols[k].name));
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

typedef struct Columns
{
	int			n;
	Datum	   *v[AG_NCOLS];
	bool	   *isnull[AG_NCOLS];
	uint8	   *decision;		/* each row's AgDecision, for the summary */
	uint16	   *flags;			/* each record's flags (AG_AUDIT_LOCAL...) */
} Columns;

static void
col_set(Columns *c, int col, Datum v, bool isnull)
{
	c->v[col][c->n] = v;
	c->isnull[col][c->n] = isnull;
}

static void
col_text(Columns *c, int col, const char *s, int len)
{
	if (s == NULL || len == 0)
		col_set(c, col, (Datum) 0, true);
	else
		col_set(c, col, PointerGetDatum(cstring_to_text_with_len(s, len)), false);
}

static void
col_cstr(Columns *c, int col, const char *s, int maxlen)
{
	col_text(c, col, s, s ? strnlen(s, maxlen) : 0);
}

static void
add_record(Columns *c, const char *raw)
{
	const AgAuditRecord *r = (const AgAuditRecord *) raw;
	const char *text = raw + sizeof(AgAuditRecord);
	uint16		f = r->flags;

	AgDecision	d = r->decision;

	/* a record is a statement's: anything else in its decision is an error */
	if (d == AG_DECISION_NONE || d == AG_DECISION_GAP || d >= AG_DECISION_COUNT)
		d = AG_DECISION_ERROR;
	col_set(c, COL_TS, TimestampTzGetDatum(r->ts), false);
	col_set(c, COL_SEQ, Int64GetDatum((int64) r->rseq), false);
	col_cstr(c, COL_IDENTITY, r->identity, AG_AUDIT_NAME_LEN);
	col_cstr(c, COL_ROLE_NAME, r->role_name, AG_AUDIT_NAME_LEN);
	col_cstr(c, COL_SESSION_ID, r->session_id, AG_AUDIT_SID_LEN);
	col_cstr(c, COL_BACKEND_SESSION, r->backend_session, AG_AUDIT_SID_LEN);
	col_set(c, COL_PID, Int32GetDatum(r->pid), false);
	col_cstr(c, COL_DATABASE, r->database, AG_AUDIT_NAME_LEN);
	col_cstr(c, COL_CLIENT_ADDR, r->client_addr, AG_AUDIT_ADDR_LEN);
	col_cstr(c, COL_COMMAND_TAG, r->command_tag, AG_AUDIT_TAG_LEN);
	col_text(c, COL_STATEMENT, text, r->stmt_len);
	col_cstr(c, COL_FINGERPRINT, r->fingerprint, AG_AUDIT_FP_LEN);
	col_text(c, COL_RELATIONS, text + r->stmt_len + r->err_len, r->rel_len);
	col_cstr(c, COL_DECISION, ag_decision_name(d), NAMEDATALEN);
	col_set(c, COL_RULE_ID, Int64GetDatum(r->rule_id), r->rule_id == 0);
	col_cstr(c, COL_SQLSTATE, r->sqlstate, 6);
	col_text(c, COL_ERROR_MESSAGE, text + r->stmt_len, r->err_len);
	col_set(c, COL_ROWS, Int64GetDatum(r->rows), (f & AG_AUDIT_HAS_ROWS) == 0);
	col_set(c, COL_DURATION_MS, Float8GetDatum(r->duration_ms), (f & AG_AUDIT_HAS_DURATION) == 0);
	col_set(c, COL_NESTED, BoolGetDatum((f & AG_AUDIT_NESTED) != 0), false);
	col_set(c, COL_NORMALIZED, BoolGetDatum((f & AG_AUDIT_NORMALIZED) != 0), false);
	col_set(c, COL_TRUNCATED, BoolGetDatum((f & AG_AUDIT_TRUNCATED) != 0), false);
	col_set(c, COL_LOST, (Datum) 0, true);
	col_text(c, COL_MASKED_COLUMNS,
			 text + r->stmt_len + r->err_len + r->rel_len, r->mask_len);
	col_text(c, COL_CHAIN,
			 text + r->stmt_len + r->err_len + r->rel_len + r->mask_len, r->chain_len);
	c->decision[c->n] = (uint8) d;
	c->flags[c->n] = f;
	c->n++;
}

/*
 * Drop the stubs of rows their backends wrote themselves (audit.c, local
 * commit): they count in the session summary, and are not inserted.
 */
static void
drop_local_stubs(Columns *c)
{
	int			n = 0;

	for (int i = 0; i < c->n; i++)
	{
		if (c->flags[i] & AG_AUDIT_LOCAL)
			continue;
		if (n != i)
		{
			for (int k = 0; k < AG_NCOLS; k++)
			{
				c->v[k][n] = c->v[k][i];
				c->isnull[k][n] = c->isnull[k][i];
			}
			c->decision[n] = c->decision[i];
			c->flags[n] = c->flags[i];
		}
		n++;
	}
	c->n = n;
}

/* A gap row: lost < 0 means the count is unknown. */
static void
add_gap(Columns *c, int64 lost, const char *why)
{
	for (int i = 0; i < AG_NCOLS; i++)
		col_set(c, i, (Datum) 0, true);
	col_set(c, COL_TS, TimestampTzGetDatum(GetCurrentTimestamp()), false);
	col_cstr(c, COL_DATABASE, get_database_name(MyDatabaseId), AG_AUDIT_NAME_LEN);
	col_text(c, COL_STATEMENT, why, strlen(why));
	col_cstr(c, COL_DECISION, ag_decision_name(AG_DECISION_GAP), NAMEDATALEN);
	col_set(c, COL_NESTED, BoolGetDatum(false), false);
	col_set(c, COL_NORMALIZED, BoolGetDatum(false), false);
	col_set(c, COL_TRUNCATED, BoolGetDatum(false), false);
	col_set(c, COL_LOST, Int64GetDatum(lost), lost < 0);
	c->decision[c->n] = (uint8) AG_DECISION_GAP;
	c->flags[c->n] = 0;
	c->n++;
}

static void
columns_init(Columns *c, int cap)
{
	c->n = 0;
	for (int i = 0; i < AG_NCOLS; i++)
	{
		c->v[i] = palloc(sizeof(Datum) * cap);
		c->isnull[i] = palloc(sizeof(bool) * cap);
	}
	c->decision = palloc(sizeof(uint8) * cap);
	c->flags = palloc(sizeof(uint16) * cap);
}

/* ---- per-session summary (agentgate.audit_sessions) ----
 *
 * One upsert per session present in the batch, in the batch's transaction,
 * so the summary always matches the rows.  Gap rows belong to no session.
 */
typedef struct SessAgg
{
	char	   *key;			/* role name, '\0', then the session id, or
								 * "backend:" || backend_session */
	int			keylen;
	int			sidoff;			/* where the session part of key starts */
	Datum		identity;		/* text, the first in the batch; 0 when NULL */
	Datum		role;			/* text, the role of every row (part of key) */
	TimestampTz started;
	TimestampTz ended;
	int64		statements;
	int64		counts[AG_DECISION_COUNT];	/* by decision */
	Datum		chain;			/* text[], the first in the batch; 0 when NULL */
} SessAgg;

/* The counters: the decisions with a summary column, in enum order. */
static int	sess_ncounts = 0;
static AgDecision sess_counted[AG_DECISION_COUNT];

/*
 * The summary's upsert: $1..$6 the session, its identity, role, first and
 * last time and statement count, then one count per summarised decision.
 */
static char *
build_sessions_sql(void)
{
	StringInfoData sql;

	sess_ncounts = 0;
	for (int d = 0; d < AG_DECISION_COUNT; d++)
		if (ag_decisions[d].summary != NULL)
			sess_counted[sess_ncounts++] = (AgDecision) d;
	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "INSERT INTO " AG_SCHEMA ".audit_sessions AS s"
						   " (session_id, identity, role_name, started, ended, statements");
	for (int k = 0; k < sess_ncounts; k++)
		appendStringInfo(&sql, ", %s", quote_identifier(ag_decisions[sess_counted[k]].summary));
	appendStringInfoString(&sql,
						   ", chain) VALUES ($1, $2, COALESCE($3::pg_catalog.name, ''), $4, $5, $6");
	for (int k = 0; k < sess_ncounts; k++)
		appendStringInfo(&sql, ", $%d", 7 + k);
	appendStringInfo(&sql, ", $%d", 7 + sess_ncounts);
	appendStringInfoString(&sql,
						   ") ON CONFLICT (role_name, session_id) DO UPDATE SET"
						   " identity = LEAST(s.identity, excluded.identity),"
						   " chain = COALESCE(s.chain, excluded.chain),"
						   " started = LEAST(s.started, excluded.started),"
						   " ended = GREATEST(s.ended, excluded.ended),"
						   " statements = s.statements + excluded.statements");
	for (int k = 0; k < sess_ncounts; k++)
	{
		const char *col = quote_identifier(ag_decisions[sess_counted[k]].summary);

		appendStringInfo(&sql, ", %s = s.%s + excluded.%s", col, col, col);
	}
	return sql.data;
}

static char *sessions_sql = NULL;
static SPIPlanPtr sessions_plan = NULL;

static SPIPlanPtr kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);

/*
 * The session key of row i into buf: its role name, a '\0', then the
 * session id, or "backend:" and the backend session for rows without a
 * stamp.  A session id is only unique with its role: rows of two roles
 * under one id are two sessions.  Returns the key's length, or -1 for
 * none; *sidoff gets where the session part starts.
 */
static int
session_key(Columns *c, int i, char *buf, int bufsize, int *sidoff)
{
	int			off = 0;

	if (!c->isnull[COL_ROLE_NAME][i])
	{
		text	   *t = DatumGetTextPP(c->v[COL_ROLE_NAME][i]);

		off = Min((int) VARSIZE_ANY_EXHDR(t), NAMEDATALEN);
		memcpy(buf, VARDATA_ANY(t), off);
	}
	buf[off++] = '\0';
	*sidoff = off;
	buf += off;
	bufsize -= off;
	if (!c->isnull[COL_SESSION_ID][i])
	{
		text	   *t = DatumGetTextPP(c->v[COL_SESSION_ID][i]);
		int			len = Min((int) VARSIZE_ANY_EXHDR(t), bufsize);

		memcpy(buf, VARDATA_ANY(t), len);
		return off + len;
	}
	if (!c->isnull[COL_BACKEND_SESSION][i])
	{
		text	   *t = DatumGetTextPP(c->v[COL_BACKEND_SESSION][i]);
		int			len = Min((int) VARSIZE_ANY_EXHDR(t), bufsize - 8);

		memcpy(buf, "backend:", 8);
		memcpy(buf + 8, VARDATA_ANY(t), len);
		return off + len + 8;
	}
	return -1;
}

static void
update_sessions(Columns *c)
{
	SessAgg    *agg = NULL;
	int			nagg = 0;
	int			cap = 0;
	int			last = -1;
	Oid			types[7 + AG_DECISION_COUNT] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, INT8OID};

	if (sessions_sql == NULL)
		sessions_sql = MemoryContextStrdup(TopMemoryContext, build_sessions_sql());
	for (int k = 0; k < sess_ncounts; k++)
		types[6 + k] = INT8OID;
	types[6 + sess_ncounts] = TEXTARRAYOID;

	for (int i = 0; i < c->n; i++)
	{
		char		key[NAMEDATALEN + 2 * AG_AUDIT_SID_LEN + 16];
		int			len;
		int			sidoff;
		SessAgg    *a = NULL;
		TimestampTz ts = DatumGetTimestampTz(c->v[COL_TS][i]);
		TimestampTz end = ts;

		if (c->decision[i] == AG_DECISION_GAP ||
			(c->flags[i] & AG_AUDIT_NO_SUMMARY) != 0)
			continue;
		len = session_key(c, i, key, sizeof(key), &sidoff);
		if (len < 0)
			continue;
		/* rows of one session often come together: try the last one first */
		if (last >= 0 && agg[last].keylen == len && memcmp(agg[last].key, key, len) == 0)
			a = &agg[last];
		for (int k = 0; a == NULL && k < nagg; k++)
			if (agg[k].keylen == len && memcmp(agg[k].key, key, len) == 0)
				a = &agg[k];
		if (a == NULL)
		{
			if (nagg == cap)
			{
				cap = Max(16, cap * 2);
				agg = agg ? repalloc(agg, sizeof(SessAgg) * cap) : palloc(sizeof(SessAgg) * cap);
			}
			a = &agg[nagg++];
			memset(a, 0, sizeof(SessAgg));
			a->key = palloc(len);
			memcpy(a->key, key, len);
			a->keylen = len;
			a->sidoff = sidoff;
			a->started = ts;
			a->ended = ts;
		}
		last = a - agg;
		if (!c->isnull[COL_IDENTITY][i] && a->identity == (Datum) 0)
			a->identity = c->v[COL_IDENTITY][i];
		if (!c->isnull[COL_ROLE_NAME][i] && a->role == (Datum) 0)
			a->role = c->v[COL_ROLE_NAME][i];
		/* the delegation chain: still the record's names here, not yet text[] */
		if (!c->isnull[COL_CHAIN][i] && a->chain == (Datum) 0)
			a->chain = relations_array(DatumGetTextPP(c->v[COL_CHAIN][i]));
		if (!c->isnull[COL_DURATION_MS][i])
			end = ts + (TimestampTz) (DatumGetFloat8(c->v[COL_DURATION_MS][i]) * 1000.0);
		a->started = Min(a->started, ts);
		a->ended = Max(a->ended, end);
		a->statements++;
		a->counts[c->decision[i]]++;
	}

	for (int k = 0; k < nagg; k++)
	{
		Datum		args[7 + AG_DECISION_COUNT];
		char		nulls[7 + AG_DECISION_COUNT];

		memset(nulls, ' ', sizeof(nulls));
		args[0] = PointerGetDatum(cstring_to_text_with_len(agg[k].key + agg[k].sidoff,
														   agg[k].keylen - agg[k].sidoff));
		args[1] = agg[k].identity;
		nulls[1] = agg[k].identity == (Datum) 0 ? 'n' : ' ';
		args[2] = agg[k].role;
		nulls[2] = agg[k].role == (Datum) 0 ? 'n' : ' ';
		args[3] = TimestampTzGetDatum(agg[k].started);
		args[4] = TimestampTzGetDatum(agg[k].ended);
		args[5] = Int64GetDatum(agg[k].statements);
		for (int j = 0; j < sess_ncounts; j++)
			args[6 + j] = Int64GetDatum(agg[k].counts[sess_counted[j]]);
		args[6 + sess_ncounts] = agg[k].chain;
		nulls[6 + sess_ncounts] = agg[k].chain == (Datum) 0 ? 'n' : ' ';
		if (SPI_execute_plan(kept_plan(&sessions_plan, sessions_sql, 7 + sess_ncounts, types),
							 args, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "agentgate audit worker: updating audit_sessions failed");
	}
}

/* Prepare sql once for the worker's lifetime. */
static SPIPlanPtr
kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "agentgate audit worker: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

static void
prepare_insert(void)
{
	Oid			argtypes[AG_NCOLS + 2];

	if (insert_plan != NULL)
		return;
	argtypes[0] = INT8OID;
	argtypes[1] = INT8OID;
	for (int i = 0; i < AG_NCOLS; i++)
		argtypes[i + 2] = get_array_type(audit_cols[i].type);
	kept_plan(&insert_plan, build_insert_sql(), AG_NCOLS + 2, argtypes);
}

/* Run the insert for the collected columns (inside a transaction + SPI). */
static void
execute_insert(Columns *c, int64 last_seq)
{
	Datum		args[AG_NCOLS + 2];
	int			ret;

	args[0] = Int64GetDatum(ag_audit_ring_epoch());
	args[1] = Int64GetDatum(last_seq);

	/* name lists travel as text[] literals here (a name may hold any byte but NUL) */
	for (int i = 0; i < AG_NCOLS; i++)
		if (audit_cols[i].conv == CONV_RELATIONS)
			for (int r = 0; r < c->n; r++)
				if (!c->isnull[i][r])
					c->v[i][r] = CStringGetTextDatum(
						DatumGetCString(OidFunctionCall1(F_ARRAY_OUT,
														 relations_array(DatumGetTextPP(c->v[i][r])))));
	for (int i = 0; i < AG_NCOLS; i++)
	{
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			dims[1] = {c->n};
		int			lbs[1] = {1};

		get_typlenbyvalalign(audit_cols[i].type, &typlen, &typbyval, &typalign);
		args[i + 2] = PointerGetDatum(construct_md_array(c->v[i], c->isnull[i],
														 1, dims, lbs,
														 audit_cols[i].type, typlen,
														 typbyval, typalign));
	}
	prepare_insert();
	ret = SPI_execute_plan(insert_plan, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "agentgate audit worker: insert failed: %s",
			 SPI_result_code_string(ret));
}

/* ---- direct insert into the day's partition ----
 *
 * The common batch (every row of one UTC day, whose partition exists) is
 * written straight into that partition with table_tuple_insert and
 * ExecInsertIndexTuples: no planning, no function scans, no tuple routing.
 * Anything else (a batch across midnight, a missing partition, a row the
 * partition's constraint would refuse) takes the SQL path.
 */

static const char *state_sql =
"INSERT INTO " AG_SCHEMA ".audit_state AS s (epoch, last_seq, updated)"
" VALUES ($1, $2, pg_catalog.now())"
" ON CONFLICT (epoch) DO UPDATE"
"   SET last_seq = GREATEST(s.last_seq, excluded.last_seq),"
"       updated = excluded.updated";
static SPIPlanPtr state_plan = NULL;

/* once this epoch's row exists, a plain update is half the cost */
static const char *state_update_sql =
"UPDATE " AG_SCHEMA ".audit_state"
"   SET last_seq = GREATEST(last_seq, $2), updated = pg_catalog.now()"
" WHERE epoch = $1";
static SPIPlanPtr state_update_plan = NULL;

static int64
day_of(TimestampTz ts)
{
	int64		d = ts / USECS_PER_DAY;

	if (ts < 0 && ts % USECS_PER_DAY != 0)
		d--;
	return d;
}

/* The attached partition for a UTC day, or InvalidOid. */
static Oid
partition_for_day(int64 day)
{
	Oid			nsp = get_namespace_oid(AG_SCHEMA, true);
	Oid			parent;
	Oid			relid;
	int			y,
				m,
				d;
	char		name[NAMEDATALEN];

	if (!OidIsValid(nsp))
		return InvalidOid;
	parent = get_relname_relid("audit_log", nsp);
	j2date((int) (day + POSTGRES_EPOCH_JDATE), &y, &m, &d);
	snprintf(name, sizeof(name), "audit_log_%04d%02d%02d", y, m, d);
	relid = get_relname_relid(name, nsp);
	if (!OidIsValid(parent) || !OidIsValid(relid) || !get_rel_relispartition(relid) ||
		get_partition_parent(relid, false) != parent)
		return InvalidOid;
	return relid;
}

/*
 * The relations a record carries -- names each ending in a NUL, a cut list
 * ending in an empty name -- as text[]; the cut becomes a NULL element.
 */
static Datum
relations_array(text *t)
{
	const char *p = VARDATA_ANY(t);
	const char *end = p + VARSIZE_ANY_EXHDR(t);
	int			cap = 8;
	int			n = 0;
	Datum	   *elems = palloc(sizeof(Datum) * cap);
	bool	   *nulls = palloc(sizeof(bool) * cap);
	int			dims[1];
	int			lbs[1] = {1};

	while (p < end)
	{
		const char *z = memchr(p, '\0', end - p);
		int			len = z ? z - p : end - p;

		if (n >= cap)
		{
			cap *= 2;
			elems = repalloc(elems, sizeof(Datum) * cap);
			nulls = repalloc(nulls, sizeof(bool) * cap);
		}
		nulls[n] = (len == 0);
		elems[n] = len ? PointerGetDatum(cstring_to_text_with_len(p, len)) : (Datum) 0;
		n++;
		p += len + 1;
	}
	dims[0] = n;
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Conversions of the text a record carries into name, inet and text[]
 * datums, remembered for the previous row: consecutive rows mostly share
 * role, database, client address and relations, and parsing them again for
 * each row was a tenth of the writer's time.  The results live in the
 * batch's context (conv_cxt), the inputs in the batch's Columns.
 */
typedef struct ConvCache
{
	text	   *in;
	Datum		out;
} ConvCache;

static ConvCache conv_cache[AG_NCOLS];
static MemoryContext conv_cxt = NULL;

static void
conv_reset(MemoryContext cxt)
{
	memset(conv_cache, 0, sizeof(conv_cache));
	conv_cxt = cxt;
}

static Datum
conv_column(int k, Datum v)
{
	text	   *t = DatumGetTextPP(v);
	ConvCache  *cc = &conv_cache[k];
	MemoryContext old;
	Datum		out;

	if (cc->in != NULL &&
		VARSIZE_ANY_EXHDR(cc->in) == VARSIZE_ANY_EXHDR(t) &&
		memcmp(VARDATA_ANY(cc->in), VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) == 0)
		return cc->out;

	old = MemoryContextSwitchTo(conv_cxt);
	switch (audit_cols[k].conv)
	{
		case CONV_NAME:
			out = DirectFunctionCall1(namein, CStringGetDatum(text_to_cstring(t)));
			break;
		case CONV_INET:
			out = DirectFunctionCall1(inet_in, CStringGetDatum(text_to_cstring(t)));
			break;
		case CONV_RELATIONS:
			out = relations_array(t);
			break;
		default:
			out = v;
			break;
	}
	MemoryContextSwitchTo(old);
	cc->in = t;
	cc->out = out;
	return out;
}

/*
 * The day's partition and its attribute map, remembered: a backend writing
 * its own rows at every commit (ag_audit_write_local) would otherwise scan
 * pg_inherits and look up two dozen attributes per transaction.  Forgotten
 * on any relcache invalidation of that partition (detach, drop, ALTER).
 */
typedef struct DayTarget
{
	bool		valid;
	int64		day;
	Oid			relid;
	AttrNumber	map[AG_NCOLS];
	AttrNumber	epoch_att;
	TimestampTz checked_lo;		/* times the partition's constraint */
	TimestampTz checked_hi;		/* accepted, lowest and highest */
} DayTarget;

static DayTarget day_cache;

static void
day_cache_reset(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == day_cache.relid)
		day_cache.valid = false;
}

static bool
day_target(int64 day, Oid *relid, AttrNumber *map, AttrNumber *epoch_att)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(day_cache_reset, (Datum) 0);
		registered = true;
	}
	if (!day_cache.valid || day_cache.day != day)
	{
		day_cache.valid = false;
		day_cache.relid = partition_for_day(day);
		if (!OidIsValid(day_cache.relid))
			return false;
		for (int k = 0; k < AG_NCOLS; k++)
		{
			day_cache.map[k] = get_attnum(day_cache.relid, audit_cols[k].name);
			if (day_cache.map[k] <= 0)
				return false;
		}
		day_cache.epoch_att = get_attnum(day_cache.relid, "epoch");
		if (day_cache.epoch_att <= 0)
			return false;
		day_cache.day = day;
		day_cache.checked_lo = DT_NOEND;	/* nothing checked yet */
		day_cache.checked_hi = DT_NOBEGIN;
		day_cache.valid = true;
	}
	*relid = day_cache.relid;
	memcpy(map, day_cache.map, sizeof(day_cache.map));
	*epoch_att = day_cache.epoch_att;
	return true;
}

static void
fill_slot(TupleTableSlot *slot, const AttrNumber *map, AttrNumber epoch_att,
		  Columns *c, int row)
{
	int			natts = slot->tts_tupleDescriptor->natts;

	ExecClearTuple(slot);
	for (int a = 0; a < natts; a++)
	{
		slot->tts_values[a] = (Datum) 0;
		slot->tts_isnull[a] = true;
	}
	for (int k = 0; k < AG_NCOLS; k++)
	{
		Datum		v = c->v[k][row];
		bool		isnull = c->isnull[k][row];

		if (!isnull && audit_cols[k].conv != CONV_NONE)
			v = conv_column(k, v);
		slot->tts_values[map[k] - 1] = v;
		slot->tts_isnull[map[k] - 1] = isnull;
	}
	slot->tts_values[epoch_att - 1] = Int64GetDatum(ag_audit_ring_epoch());
	slot->tts_isnull[epoch_att - 1] = false;
	ExecStoreVirtualTuple(slot);
}

/*
 * Insert every row straight into its day's partition.  Returns false, having
 * written nothing, when the batch needs the SQL path.
 */
static bool
direct_insert(Columns *c, bool conditional)
{
	int64		day;
	Oid			relid;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slots[AG_DIRECT_CHUNK];
	int			nslots;
	int			lo,
				hi;
	AttrNumber	map[AG_NCOLS];
	AttrNumber	epoch_att;
	CommandId	cid;
	bool		ok = true;

	if (c->n == 0)
		return false;
	day = day_of(DatumGetTimestampTz(c->v[COL_TS][0]));
	for (int i = 1; i < c->n; i++)
		if (day_of(DatumGetTimestampTz(c->v[COL_TS][i])) != day)
			return false;
	if (!day_target(day, &relid, map, &epoch_att))
		return false;

	/* a backend writing its own rows never queues behind a DBA's lock */
	if (conditional && !ConditionalLockRelationOid(relid, RowExclusiveLock))
		return false;
	rel = table_open(relid, conditional ? NoLock : RowExclusiveLock);

	/*
	 * Triggers (a DBA's shipping to a SIEM, say) fire only on the SQL path;
	 * so does anything that is not a plain table.
	 */
	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_insert_after_row) ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_insert_before_row) ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_insert_instead_row) ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_insert_after_statement) ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_insert_before_statement) ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_insert_new_table))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}

	conv_reset(CurrentMemoryContext);
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	nslots = Min(c->n, AG_DIRECT_CHUNK);
	for (int k = 0; k < nslots; k++)
		slots[k] = table_slot_create(rel, NULL);

	/*
	 * The partition constraint is a range on ts, so the rows with the
	 * earliest and the latest ts decide for the whole batch.
	 */
	lo = hi = 0;
	for (int i = 1; i < c->n; i++)
	{
		if (DatumGetTimestampTz(c->v[COL_TS][i]) < DatumGetTimestampTz(c->v[COL_TS][lo]))
			lo = i;
		if (DatumGetTimestampTz(c->v[COL_TS][i]) > DatumGetTimestampTz(c->v[COL_TS][hi]))
			hi = i;
	}
	/*
	 * A range partition's constraint holds for everything between two
	 * values it accepts: times within what this partition already accepted
	 * need no check.
	 */
	if (!(day_cache.valid && day_cache.relid == relid &&
		  day_cache.checked_lo <= DatumGetTimestampTz(c->v[COL_TS][lo]) &&
		  DatumGetTimestampTz(c->v[COL_TS][hi]) <= day_cache.checked_hi))
	{
		for (int k = 0; k < 2 && ok; k++)
		{
			fill_slot(slots[0], map, epoch_att, c, k == 0 ? lo : hi);
			ok = ExecPartitionCheck(rri, slots[0], estate, false);
			ResetPerTupleExprContext(estate);
		}
		if (ok && day_cache.valid && day_cache.relid == relid)
		{
			day_cache.checked_lo = Min(day_cache.checked_lo,
									   DatumGetTimestampTz(c->v[COL_TS][lo]));
			day_cache.checked_hi = Max(day_cache.checked_hi,
									   DatumGetTimestampTz(c->v[COL_TS][hi]));
		}
	}

	/*
	 * Write in chunks with table_multi_insert (one WAL record per heap page
	 * instead of one per row, as COPY does), then index each chunk.
	 */
	if (ok)
	{
		/*
		 * A bulk-insert state keeps its own buffer ring: right for the
		 * writer's batches, a cost for a backend's few rows at commit.
		 */
		BulkInsertState bistate = c->n > AG_DIRECT_CHUNK / 4 ? GetBulkInsertState() : NULL;

		cid = GetCurrentCommandId(true);
		for (int start = 0; start < c->n; start += nslots)
		{
			int			m = Min(nslots, c->n - start);
			MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));

			for (int k = 0; k < m; k++)
				fill_slot(slots[k], map, epoch_att, c, start + k);
			table_multi_insert(rel, slots, m, cid, 0, bistate);
			if (rri->ri_NumIndices > 0)
				for (int k = 0; k < m; k++)
					(void) ExecInsertIndexTuples(rri, slots[k], estate, false,
												 false, NULL, NIL);
			MemoryContextSwitchTo(old);
			ResetPerTupleExprContext(estate);
		}
		if (bistate)
			FreeBulkInsertState(bistate);
	}
	for (int k = 0; k < nslots; k++)
		ExecDropSingleTupleTableSlot(slots[k]);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	return ok;
}

/*
 * A backend connected to the audit database writes the rows of its own
 * committing transaction (audit.c, local commit): the same direct insert,
 * in the caller's transaction, never waiting for a lock.  recs are records
 * laid out as in the ring, their rseq already assigned (their stubs went
 * to the ring for the summary and the gap count).  Returns false, having
 * written nothing, when the rows need the writer (no partition for the
 * day yet, triggers on the log, a lock held by someone else).
 */
bool
ag_audit_write_local(char **recs, int n)
{
	Columns		c;
	bool		ok;

	columns_init(&c, n);
	for (int i = 0; i < n; i++)
		add_record(&c, recs[i]);
	ok = direct_insert(&c, true);
	return ok;
}

/* the writer's flush interval, which also bounds how long a row is held */
int
ag_audit_flush_interval(void)
{
	return audit_flush_interval;
}

/* OID of agentgate.audit_database, InvalidOid when it does not exist */
Oid
ag_audit_database_oid(void)
{
	static Oid	oid = InvalidOid;
	static bool looked = false;

	/* PGC_POSTMASTER: one lookup per backend */
	if (!looked && IsTransactionState())
	{
		oid = get_database_oid(audit_database, true);
		looked = true;
	}
	return oid;
}

static void
update_state(int64 last_seq)
{
	Datum		args[2];
	Oid			types[2] = {INT8OID, INT8OID};

	kept_plan(&state_plan, state_sql, 2, types);
	kept_plan(&state_update_plan, state_update_sql, 2, types);
	args[0] = Int64GetDatum(ag_audit_ring_epoch());
	args[1] = Int64GetDatum(last_seq);
	if (SPI_execute_plan(state_update_plan, args, NULL, false, 0) == SPI_OK_UPDATE &&
		SPI_processed == 1)
		return;
	if (SPI_execute_plan(state_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "agentgate audit worker: updating audit_state failed");
}

static void
begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/*
	 * A background worker has no idle loop that sends its statistics; without
	 * this, autovacuum and ANALYZE never hear of the rows it inserts and the
	 * summaries it updates (at most once a second unless forced).
	 */
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Move one batch from the ring to the table.  Returns the number of ring
 * records written.
 */
static int
flush_batch(void)
{
	static AgAuditBatch batch;
	MemoryContext old;
	uint64		dropped;
	int			n;
	Columns		c;
	XLogRecPtr	commit_lsn;

	MemoryContextReset(batch_cxt);
	batch.recs = NULL;
	batch.cap = 0;
	old = MemoryContextSwitchTo(batch_cxt);
	n = ag_audit_ring_take(&batch, AG_BATCH_MAX);
	dropped = ag_audit_ring_take_dropped();
	if (n == 0 && dropped == 0)
	{
		MemoryContextSwitchTo(old);
		return 0;
	}

	PG_TRY();
	{
		begin_xact("agentgate: writing audit records");
		/* the text datums must outlive SPI's own contexts: use batch_cxt */
		MemoryContextSwitchTo(batch_cxt);
		columns_init(&c, n + 1);
		for (int i = 0; i < n; i++)
			add_record(&c, batch.recs[i]);
		if (dropped > 0)
		{
			char		why[128];

			snprintf(why, sizeof(why),
					 "%llu audit records dropped: the ring was full (agentgate.audit_overflow = drop)",
					 (unsigned long long) dropped);
			add_gap(&c, (int64) dropped, why);
		}
		update_sessions(&c);
		drop_local_stubs(&c);
		if (c.n == 0 || direct_insert(&c, false))
			update_state((int64) batch.end_rseq - 1);
		else
			execute_insert(&c, (int64) batch.end_rseq - 1);
		end_xact();
	}
	PG_CATCH();
	{
		/* the worker exits and restarts; report the drops next time */
		if (dropped > 0)
			ag_audit_ring_return_dropped(dropped);
		PG_RE_THROW();
	}
	PG_END_TRY();

	MemoryContextSwitchTo(old);

	/*
	 * The commit above did not wait for its WAL flush (synchronous_commit is
	 * off in this worker): wake the waiters now, with the position to flush
	 * to.  A waiting write's own commit flushes WAL past ours (see
	 * audit_ring.c); the slots are freed by free_committed() once WAL is
	 * flushed, by anyone.
	 */
	commit_lsn = XactLastCommitEnd;
	if (n > 0)
		ag_audit_ring_committed(&batch, commit_lsn);
	return n;
}

/*
 * Records of earlier ring incarnations that never reached the table: the
 * postmaster left the count of records it appended (audit_ring.c); the
 * table knows the last one committed.  Epochs with no such count (the
 * postmaster itself was killed) get a gap row with an unknown count.
 */
static void
record_previous_gaps(void)
{
	int64		prev_epoch = 0;
	uint64		prev_head = 0;
	bool		prev_valid = ag_audit_ring_prev(&prev_epoch, &prev_head);
	bool		prev_seen = false;
	int64		cur = ag_audit_ring_epoch();
	Columns		c;
	int			ret;

	begin_xact("agentgate: checking for lost audit records");
	MemoryContextSwitchTo(batch_cxt);
	columns_init(&c, 64);
	ret = SPI_execute_with_args("SELECT epoch, last_seq FROM " AG_SCHEMA ".audit_state"
								" WHERE NOT closed AND epoch <> $1 ORDER BY epoch LIMIT 60",
								1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(cur)},
								NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "agentgate audit worker: reading audit_state failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		epoch = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 1, &isnull));
		int64		last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc, 2, &isnull));
		char		why[160];

		if (prev_valid && epoch == prev_epoch)
		{
			int64		lost = (int64) prev_head - (last + 1);

			prev_seen = true;
			if (lost <= 0)
				continue;
			snprintf(why, sizeof(why),
					 "%lld audit records lost: appended but not committed when the server stopped or crashed",
					 (long long) lost);
			add_gap(&c, lost, why);
		}
		else
		{
			snprintf(why, sizeof(why),
					 "audit records may be lost: the server stopped without saving the ring state (epoch %lld, last committed %lld)",
					 (long long) epoch, (long long) last);
			add_gap(&c, -1, why);
		}
	}
	if (prev_valid && !prev_seen && prev_head > 0)
	{
		/* nothing of that epoch was ever committed (unless it was closed) */
		ret = SPI_execute_with_args("SELECT 1 FROM " AG_SCHEMA ".audit_state WHERE epoch = $1",
									1, (Oid[]) {INT8OID},
									(Datum[]) {Int64GetDatum(prev_epoch)},
									NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 0)
		{
			char		why[160];

			snprintf(why, sizeof(why),
					 "%llu audit records lost: appended but not committed when the server stopped or crashed",
					 (unsigned long long) prev_head);
			add_gap(&c, (int64) prev_head, why);
		}
	}
	if (c.n > 0)
		execute_insert(&c, -1);
	else
	{
		ret = SPI_execute_with_args("INSERT INTO " AG_SCHEMA ".audit_state (epoch, last_seq, updated)"
									" VALUES ($1, -1, now()) ON CONFLICT (epoch) DO NOTHING",
									1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(cur)},
									NULL, false, 0);
	}
	ret = SPI_execute_with_args("UPDATE " AG_SCHEMA ".audit_state SET closed = true"
								" WHERE epoch <> $1 AND NOT closed",
								1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(cur)},
								NULL, false, 0);
	end_xact();
	ag_audit_ring_prev_done();
	MemoryContextReset(batch_cxt);
}

static void
maintain_partitions(void)
{
	char		sql[256];

	begin_xact("agentgate: audit partition maintenance");
	snprintf(sql, sizeof(sql), "SELECT " AG_SCHEMA ".audit_maintain(%d, %d)",
			 audit_retention_days, AG_DAYS_AHEAD);
	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
		elog(WARNING, "agentgate audit worker: partition maintenance failed");
	end_xact();
}

/*
 * Is the extension installed in the audit database?  Create it if asked,
 * without racing a DBA's CREATE EXTENSION:
 *	- the worker holds ACCESS EXCLUSIVE on pg_extension from before its check
 *	  until it commits.  CREATE EXTENSION's first step reads pg_extension, so
 *	  a DBA's that starts meanwhile waits, then finds the extension ("already
 *	  exists", or a notice with IF NOT EXISTS) instead of failing on a
 *	  duplicate schema;
 *	- a DBA's CREATE EXTENSION that got past that step before the lock is
 *	  already creating a schema, which holds a lock on pg_namespace until it
 *	  commits: when any other transaction holds one, the worker does not
 *	  create anything and looks again a second later;
 *	- should the two still collide (a DBA's statement between its check of
 *	  pg_extension and its schema's creation, a few microseconds), the
 *	  deadlock detector ends the transaction that waited first -- the
 *	  worker's, which runs in a subtransaction, is rolled back and tries
 *	  again later.
 */
static bool
extension_ready(void)
{
	bool		ready;

	begin_xact("agentgate: looking for the extension");
	SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'agentgate'",
				true, 1);
	ready = SPI_processed > 0;
	if (!ready && audit_create_extension)
	{
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;

		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			SPI_execute("SET LOCAL lock_timeout = '2s'", false, 0);
			SPI_execute("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE",
						false, 0);
			SPI_execute("SET LOCAL lock_timeout = 0", false, 0);
			SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'agentgate'"
						" UNION ALL"
						" SELECT 1 FROM pg_catalog.pg_locks"
						"  WHERE locktype = 'relation' AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
						"    AND relation = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
						"    AND mode = 'RowExclusiveLock' AND pid <> pg_catalog.pg_backend_pid()",
						false, 1);
			if (SPI_processed == 0)
			{
				SPI_execute("CREATE EXTENSION IF NOT EXISTS agentgate", false, 0);
				ready = true;
			}
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			elog(LOG, "agentgate audit worker: did not create the extension now: %s",
				 edata->message);
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	end_xact();
	return ready;
}

static void
worker_exit(int code, Datum arg)
{
	ag_audit_ring_set_worker(-1);
}

static void
process_config(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * Free the slots of committed batches once WAL is flushed past their
 * commit.  Usually a waiting backend's commit has done that already; if
 * not, the worker flushes itself when asked to (force), when the records
 * have waited AG_FREE_DELAY_MS, or when the ring is half full.  Returns
 * true while slots still wait for a flush.
 */
static bool
free_committed(bool force)
{
	static TimestampTz unfreed_since = 0;
	uint64		upto;
	XLogRecPtr	lsn;

	if (!ag_audit_ring_unfreed(&upto, &lsn))
	{
		unfreed_since = 0;
		return false;
	}
	if (lsn != InvalidXLogRecPtr && GetFlushRecPtr(NULL) < lsn)
	{
		if (unfreed_since == 0)
			unfreed_since = GetCurrentTimestamp();
		if (!force && ag_audit_ring_used_pct() < 50 &&
			!TimestampDifferenceExceeds(unfreed_since, GetCurrentTimestamp(),
										AG_FREE_DELAY_MS))
			return true;
		XLogFlush(lsn);
	}
	ag_audit_ring_free(upto);
	unfreed_since = 0;
	return false;
}

/*
 * The worker runs SQL as the bootstrap superuser in a database that may be
 * owned by someone else.  Settings that database or its owner can set must
 * not change what that SQL resolves to or whether it can run: a search_path
 * with the owner's schema first would let an operator in it run as
 * superuser; read-only defaults, timeouts or SERIALIZABLE would stop the
 * log.  PGC_S_OVERRIDE wins over database, role and file settings, also
 * after a reload.
 */
static void
pin_settings(void)
{
	static const char *const pinned[][2] = {
		/*
		 * commit without waiting for the WAL flush: slots are freed only once
		 * WAL is flushed past the commit (audit_ring.c: nothing is lost)
		 */
		{"synchronous_commit", "off"},
		{"search_path", "pg_catalog, pg_temp"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
	};

	for (int i = 0; i < lengthof(pinned); i++)
		SetConfigOption(pinned[i][0], pinned[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Shutdown: drain while client backends can still append.  The exit code
 * is 1 so that the postmaster starts the worker again when this was not a
 * shutdown but a stray termination (pg_terminate_backend): without the
 * worker the ring fills and governed sessions stop.  During a shutdown the
 * postmaster starts no worker, so this costs nothing there.
 */
static void
drain_and_exit(void)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		while (flush_batch() > 0)
			(void) free_committed(false);
		(void) free_committed(true);
		if (ag_audit_ring_pending() == 0 && CountDBConnections(InvalidOid) == 0)
			break;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), AG_DRAIN_LIMIT_MS))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(1);
}

void
agentgate_audit_worker_main(Datum arg)
{
	TimestampTz last_maintain;
	TimestampTz last_batch = 0;
	bool		batch_due = true;
	int			waited = 0;
	bool		unfreed;
	int			rc;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(audit_database, NULL, 0);

	pin_settings();
	/* a large keeper block: batches reuse it instead of faulting pages in */
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "agentgate audit batch",
									  2 * 1024 * 1024, 2 * 1024 * 1024,
									  8 * 1024 * 1024);
	ag_audit_ring_set_worker(MyProc->pgprocno);
	on_shmem_exit(worker_exit, (Datum) 0);
	pgstat_report_appname("agentgate audit writer");

	while (!extension_ready())
	{
		if (waited++ % 60 == 0)
			ereport(WARNING,
					(errmsg("agentgate audit worker: extension agentgate is not installed in database \"%s\"",
							audit_database),
					 errdetail("Audit records wait in shared memory; statements that need a durable audit row wait and then fail."),
					 errhint("Run CREATE EXTENSION agentgate in database \"%s\" (agentgate.audit_database).",
							 audit_database)));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		process_config();
		if (ShutdownRequestPending)
			proc_exit(1);		/* see drain_and_exit */
	}

	/* partitions first: nothing should land in the DEFAULT safety net */
	maintain_partitions();
	record_previous_gaps();
	last_maintain = GetCurrentTimestamp();

	for (;;)
	{
		int			n = 0;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		process_config();
		if (ShutdownRequestPending)
			drain_and_exit();

		if (batch_due)
		{
			last_batch = GetCurrentTimestamp();
			n = flush_batch();
		}
		unfreed = free_committed(false);
		if (n >= AG_BATCH_MAX)
			continue;			/* more is waiting */

		if (TimestampDifferenceExceeds(last_maintain, GetCurrentTimestamp(),
									   AG_MAINTAIN_EVERY_MS))
		{
			maintain_partitions();
			last_maintain = GetCurrentTimestamp();
		}

		/*
		 * Sleep until the next batch is due (a flush interval after the last
		 * one began) or a backend wakes the worker (a quarter of the ring
		 * waits to be committed, or a statement waits for its row).  Slots
		 * waiting for a WAL flush cut the sleep to AG_FREE_DELAY_MS, and then
		 * only the flush happens: starting a batch there too made one
		 * transaction of every few milliseconds' records, a handful of rows
		 * each, with the per-batch work (session summaries, state row,
		 * commit) repeated for them.
		 */
		wait_ms = audit_flush_interval -
			TimestampDifferenceMilliseconds(last_batch, GetCurrentTimestamp());
		wait_ms = Max(wait_ms, 0);
		if (unfreed)
			wait_ms = Min(wait_ms, AG_FREE_DELAY_MS);
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (unfreed && (rc & WL_TIMEOUT))
			(void) free_committed(true);
		batch_due = (rc & WL_LATCH_SET) != 0 ||
			TimestampDifferenceExceeds(last_batch, GetCurrentTimestamp(),
									   audit_flush_interval);
	}
}

/*
 * The writer's settings, and the writer itself.  Called from _PG_init (via
 * ag_audit_init) while the library is preloaded.
 */
void
ag_audit_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("agentgate.audit_database",
							   "Database whose agentgate.audit_log receives the audit rows of the whole cluster.",
							   NULL, &audit_database, "postgres",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomBoolVariable("agentgate.audit_create_extension",
							 "Create the extension in agentgate.audit_database when it is missing.",
							 NULL, &audit_create_extension, false,
							 PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("agentgate.audit_flush_interval",
							"Longest time an audit record waits in the ring before the writer flushes.",
							"The writer also wakes when a quarter of the ring waits to be committed or a statement waits for its row.",
							&audit_flush_interval, 50, 1, 10000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("agentgate.audit_retention_days",
							"Days of audit log kept; older daily partitions are dropped (0 keeps all).",
							NULL, &audit_retention_days, 0, 0, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "agentgate");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "agentgate_audit_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentgate audit writer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentgate audit writer");
	RegisterBackgroundWorker(&worker);
}
