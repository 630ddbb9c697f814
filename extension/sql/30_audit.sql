-- Audit: the log the background worker writes (in the database named by
-- agentgate.audit_database; the tables exist in every database that has the
-- extension, only that one's are filled), the per-session summary and the
-- replay function.  Agents get no privilege on any of it.

DO $$
BEGIN
    -- Reads the audit log (DBAs, SIEM shippers); never give it to agents.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_auditor') THEN
        CREATE ROLE agentgate_auditor NOLOGIN;
    END IF;
END
$$;

CREATE TABLE @extschema@.audit_log (
    ts              timestamptz NOT NULL,   -- statement start
    seq             bigint,                 -- record number within the epoch
    epoch           bigint NOT NULL,        -- ring incarnation (server start)
    identity        text,                   -- agent identity (agentgate.agents)
    role_name       name,                   -- session_user
    session_id      text,                   -- verified session stamp
    backend_session text,                   -- backend start time.pid, like %c
    pid             integer,
    database        name,
    client_addr     inet,
    command_tag     text,
    statement       text,                   -- literals replaced by $n
    fingerprint     text,                   -- hash of the normalised text, hex
    relations       text[],                 -- target tables first; NULL last element: list cut
    decision        text NOT NULL,          -- allowed blocked error monitored logged ... gap
    rule_id         bigint,
    sqlstate        text,
    error_message   text,
    rows            bigint,
    duration_ms     double precision,
    nested          boolean NOT NULL DEFAULT false,
    normalized      boolean NOT NULL DEFAULT false,
    truncated       boolean NOT NULL DEFAULT false,
    lost            bigint,                 -- gap rows: records lost (NULL: unknown)
    masked_columns  text[],                 -- masked columns read (schema.table.column)
    chain           text[]                  -- delegation: acting identity first, principal last
) PARTITION BY RANGE (ts);
COMMENT ON TABLE @extschema@.audit_log IS
    'agentgate: one row per statement of governed sessions; gap rows count records lost';

-- The safety net: rows whose day has no partition yet.  Kept empty by
-- audit_maintain, which attaches days ahead of time.
CREATE TABLE @extschema@.audit_log_default PARTITION OF @extschema@.audit_log DEFAULT;

CREATE INDEX audit_log_ts_brin ON @extschema@.audit_log USING brin (ts);
CREATE INDEX audit_log_role_ts ON @extschema@.audit_log (role_name, ts);

-- One row per ring epoch: the last record committed.  The worker compares
-- it with what the previous server run appended to count lost records.
CREATE TABLE @extschema@.audit_state (
    epoch       bigint PRIMARY KEY,
    last_seq    bigint NOT NULL DEFAULT -1,
    started     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz,
    closed      boolean NOT NULL DEFAULT false
);

-- audit_maintain attaches the partitions of today and the next days_ahead
-- days (UTC) and drops days older than retention_days (0: keep all).
-- CREATE TABLE ... LIKE + ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on
-- the parent, which does not conflict with the writer's inserts.  Drops
-- need ACCESS EXCLUSIVE: they give up after lock_timeout and retry on the
-- next run rather than stall the writer behind a long reader.
CREATE FUNCTION @extschema@.audit_maintain(retention_days integer DEFAULT 0,
                                           days_ahead integer DEFAULT 3)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    today   date := (now() AT TIME ZONE 'UTC')::date;
    d       date;
    pname   text;
    lo      timestamptz;
    hi      timestamptz;
    r       record;
BEGIN
    FOR i IN 0 .. greatest(days_ahead, 0) LOOP
        d := today + i;
        pname := 'audit_log_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(format('@extschema@.%I', pname)) IS NOT NULL THEN
            CONTINUE;
        END IF;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        BEGIN
            EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname);
            -- rows that reached the safety net for that day move first
            EXECUTE format('WITH m AS (DELETE FROM @extschema@.audit_log_default WHERE ts >= %L AND ts < %L RETURNING *)'
                           ' INSERT INTO @extschema@.%I SELECT * FROM m', lo, hi, pname);
            EXECUTE format('ALTER TABLE @extschema@.audit_log ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                           pname, lo, hi);
        EXCEPTION WHEN lock_not_available OR object_in_use THEN
            RAISE WARNING 'agentgate: could not attach audit partition %: %', pname, SQLERRM;
        END;
    END LOOP;

    IF retention_days > 0 THEN
        FOR r IN
            SELECT c.relname
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = '@extschema@.audit_log'::regclass
               AND c.relname ~ '^audit_log_[0-9]{8}$'
               AND to_date(substr(c.relname, 11), 'YYYYMMDD') < today - retention_days
        LOOP
            BEGIN
                EXECUTE format('ALTER TABLE @extschema@.audit_log DETACH PARTITION @extschema@.%I', r.relname);
                EXECUTE format('DROP TABLE @extschema@.%I', r.relname);
                -- sessions that ended on or before that day went with it
                DELETE FROM @extschema@.audit_sessions
                 WHERE ended < (to_date(substr(r.relname, 11), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
            EXCEPTION WHEN lock_not_available OR object_in_use THEN
                RAISE WARNING 'agentgate: could not drop audit partition %: %', r.relname, SQLERRM;
            END;
        END LOOP;
    END IF;
END
$$;

-- audit_sessions: one row per agent session, kept by the writer in the
-- same transaction as the session's rows, so that listing sessions and
-- finding one's time span never aggregates the whole log.  A session is
-- its role and its verified session id (sessions without a stamp are
-- keyed by their backend): a session id alone proves nothing about who
-- ran a statement, so rows of two roles under one id stay apart.
CREATE TABLE @extschema@.audit_sessions (
    session_id  text NOT NULL,
    identity    text,
    role_name   name NOT NULL,
    started     timestamptz NOT NULL,
    ended       timestamptz NOT NULL,
    statements  bigint NOT NULL DEFAULT 0,
    allowed     bigint NOT NULL DEFAULT 0,
    blocked     bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    monitored   bigint NOT NULL DEFAULT 0,
    logged      bigint NOT NULL DEFAULT 0,
    masked      bigint NOT NULL DEFAULT 0,
    approved    bigint NOT NULL DEFAULT 0,
    denied      bigint NOT NULL DEFAULT 0,
    chain       text[],                 -- delegation: acting identity first, principal last
    PRIMARY KEY (role_name, session_id)
);
CREATE INDEX audit_sessions_session ON @extschema@.audit_sessions (session_id);
CREATE INDEX audit_sessions_ended ON @extschema@.audit_sessions (ended);
COMMENT ON TABLE @extschema@.audit_sessions IS
    'agentgate: per-session summary of audit_log, kept by the audit writer';

CREATE VIEW @extschema@.sessions AS
SELECT session_id, identity, role_name, started, ended, statements,
       allowed, blocked, errors, monitored, logged, masked, approved, denied, chain
  FROM @extschema@.audit_sessions;
COMMENT ON VIEW @extschema@.sessions IS
    'agentgate: one row per agent session with counts by decision';

-- session_replay: what a session did, in order, with the role of every
-- row.  A session is a role and a session id: give both (as the sessions
-- view lists them); without session_role, the rows of every role that used
-- the id are returned, each with its role.  The summary gives the
-- session's time span; with it as plain values the planner prunes the
-- partitions outside it and the BRIN index on ts skips the rest.  A session
-- without a summary (rows older than the summary table) is searched for in
-- the whole log.
CREATE FUNCTION @extschema@.session_replay(session_id text, session_role name DEFAULT NULL)
RETURNS TABLE (ts timestamptz, role_name name, seq bigint, pid integer, nested boolean,
               command_tag text, statement text, relations text[],
               decision text, rule_id bigint, sqlstate text,
               error_message text, rows bigint, duration_ms double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    lo  timestamptz := '-infinity';
    hi  timestamptz := 'infinity';
BEGIN
    SELECT min(s.started), max(s.ended) INTO lo, hi
      FROM @extschema@.audit_sessions s
     WHERE s.session_id = session_replay.session_id
       AND (session_replay.session_role IS NULL OR s.role_name = session_replay.session_role);
    lo := coalesce(lo, '-infinity');
    hi := coalesce(hi, 'infinity');
    RETURN QUERY
    SELECT a.ts, a.role_name, a.seq, a.pid, a.nested, a.command_tag, a.statement,
           a.relations, a.decision, a.rule_id, a.sqlstate, a.error_message,
           a.rows, a.duration_ms
      FROM @extschema@.audit_log a
     WHERE coalesce(a.session_id, 'backend:' || a.backend_session) = session_replay.session_id
       AND (session_replay.session_role IS NULL OR a.role_name = session_replay.session_role)
       AND a.ts >= lo AND a.ts <= hi
     ORDER BY a.ts, a.epoch, a.seq, a.role_name;
END
$$;

CREATE FUNCTION @extschema@.audit_flush() RETURNS boolean
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'agentgate_audit_flush';
COMMENT ON FUNCTION @extschema@.audit_flush() IS
    'agentgate: wait until every audit record appended so far is committed';

-- What the statement column of a row would hold for this text, under the
-- current settings (normaliser, raw text, length cap): for checking that a
-- secret typed into SQL stays out of the log.  The text must lex as SQL.
CREATE FUNCTION @extschema@.audit_statement_text(sql text) RETURNS text
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'agentgate_audit_statement_text';
COMMENT ON FUNCTION @extschema@.audit_statement_text(text) IS
    'agentgate: the statement text an audit row would carry for sql';

CREATE FUNCTION @extschema@.audit_ring_status(OUT slots bigint, OUT appended bigint,
                                              OUT pending bigint, OUT epoch bigint)
RETURNS record
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'agentgate_audit_ring_status';

REVOKE ALL ON TABLE @extschema@.audit_log, @extschema@.audit_log_default,
    @extschema@.audit_state, @extschema@.audit_sessions, @extschema@.sessions FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.audit_maintain(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_replay(text, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.audit_ring_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.audit_statement_text(text) FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_log, @extschema@.audit_sessions, @extschema@.sessions TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.session_replay(text, name) TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.audit_ring_status() TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.audit_statement_text(text) TO agentgate_auditor;
-- audit_flush reveals nothing and only waits: tools acting as agents may
-- call it before they read their own results elsewhere.
GRANT EXECUTE ON FUNCTION @extschema@.audit_flush() TO PUBLIC;
