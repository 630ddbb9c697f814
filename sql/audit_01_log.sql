--
-- Audit log: one row per statement of a governed session, whatever becomes
-- of it (success, ROLLBACK, error, refusal, syntax error, aborted
-- transaction, nested in DO blocks and functions, each part of a
-- multi-statement message).  Literals never reach the log unless a
-- superuser asks for raw text; agents can neither read nor change the log.
-- The rows live in database postgres (agentgate.audit_database), where the
-- writer created the extension (agentgate.audit_create_extension).
--
\c postgres
\set VERBOSITY terse
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'agentgate');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
CREATE ROLE regress_audit_agent LOGIN IN ROLE agentgate_agent;
INSERT INTO agentgate.agents (identity, role_name) VALUES ('regress-audit@example.com', 'regress_audit_agent');
CREATE TABLE regress_audit_t (id int PRIMARY KEY, secret text);
GRANT ALL ON regress_audit_t TO regress_audit_agent;
CREATE FUNCTION regress_audit_f(n int) RETURNS int LANGUAGE plpgsql
AS $$ BEGIN INSERT INTO regress_audit_t VALUES (n, 'from function'); RETURN n; END $$;
-- a stamped session, as the proxy would set it up
SELECT set_config('application_name', 'psql ' || (agentgate.session_stamp('regress_audit_agent')).stamp, false) IS NOT NULL AS stamped;

SET SESSION AUTHORIZATION regress_audit_agent;
SELECT 1 AS one /* token abc123secret */;
INSERT INTO regress_audit_t VALUES (1, 'hunter2');
BEGIN;
INSERT INTO regress_audit_t VALUES (2, 'rolled back');
ROLLBACK;
-- one row per statement of a multi-statement message
SELECT id FROM regress_audit_t WHERE secret = 'hunter2' \; SELECT 2 AS two \; UPDATE regress_audit_t SET secret = 'new' WHERE id = 1;
-- error: fails in the planner
SELECT 1/0;
-- error: fails before parse analysis (emit_log_hook)
SELEC 'typo secret';
BEGIN;
-- error: fails at execution
SELECT id / 0 FROM regress_audit_t;
-- error: aborted transaction
SELECT 'ignored';
ROLLBACK;
-- error: refused by the DROP TABLE guardrail
DROP TABLE regress_audit_t;
DO $$ BEGIN PERFORM regress_audit_f(3); END $$;
DO $$ BEGIN BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN NULL; END; END $$;
-- error: agents cannot read the log
SELECT count(*) FROM agentgate.audit_log;
-- error: nor change it
DELETE FROM agentgate.audit_log;
-- error: nor change how it is written
SET agentgate.audit_raw_statements = on;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset

SELECT command_tag, decision, nested, rows, sqlstate, statement, relations,
       error_message, normalized, truncated
  FROM agentgate.audit_log
 WHERE role_name = 'regress_audit_agent'
 ORDER BY ts, seq;
-- every row carries the identity, the verified session and the database
SELECT count(*) AS rows, count(DISTINCT session_id) AS sessions,
       bool_and(identity = 'regress-audit@example.com') AS identity_ok,
       bool_and(length(session_id) = 16) AS session_ok,
       bool_and(database = 'postgres') AS database_ok,
       bool_and(duration_ms >= 0) AS duration_ok,
       bool_and(fingerprint IS NOT NULL OR command_tag IS NULL) AS fingerprint_ok
  FROM agentgate.audit_log WHERE role_name = 'regress_audit_agent';
-- the fingerprint is the 64-bit hash of the normalised text, in hex
SELECT count(*) FILTER (WHERE normalized) > 0 AS normalized_rows,
       bool_and(fingerprint = lpad(to_hex(hashtextextended(statement, 0)), 16, '0'))
           FILTER (WHERE normalized) AS fingerprint_is_hash
  FROM agentgate.audit_log WHERE role_name = 'regress_audit_agent';
-- no literal reached the log
SELECT count(*) AS leaked FROM agentgate.audit_log
 WHERE statement ~ '(hunter2|rolled back|typo secret|from function|ignored|abc123secret)';
-- the session summary and its replay
SELECT identity, role_name, statements, allowed, blocked, errors, started <= ended AS ordered
  FROM agentgate.sessions WHERE role_name = 'regress_audit_agent';
-- the writer's per-session summary matches the rows it summarises
SELECT count(*) AS sessions,
       bool_and(s.statements = l.statements AND s.allowed = l.allowed AND
                s.blocked = l.blocked AND s.errors = l.errors AND
                s.started = l.started AND
                abs(extract(epoch FROM s.ended - l.ended)) < 0.00001) AS summary_matches
  FROM agentgate.sessions s
  JOIN (SELECT coalesce(session_id, 'backend:' || backend_session) AS session_id,
               count(*) AS statements,
               count(*) FILTER (WHERE decision = 'allowed') AS allowed,
               count(*) FILTER (WHERE decision = 'blocked') AS blocked,
               count(*) FILTER (WHERE decision = 'error') AS errors,
               min(ts) AS started,
               max(ts + coalesce(duration_ms, 0) * interval '1 millisecond') AS ended
          FROM agentgate.audit_log
         WHERE decision <> 'gap' AND role_name = 'regress_audit_agent'
         GROUP BY 1) l USING (session_id);
SELECT command_tag, decision, nested
  FROM agentgate.session_replay((SELECT session_id FROM agentgate.sessions
                                  WHERE role_name = 'regress_audit_agent'))
 LIMIT 5;

-- libpg_query as the normaliser (then the lexer, which drops its comments)
SET agentgate.audit_normalizer = libpg_query;
SET SESSION AUTHORIZATION regress_audit_agent;
SELECT id FROM regress_audit_t /* key sk-live-123 */ WHERE secret IN ('a', 'b') AND id > 0;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset
RESET agentgate.audit_normalizer;
SELECT statement, normalized, truncated FROM agentgate.audit_log
 WHERE role_name = 'regress_audit_agent' AND statement LIKE '%IN (%';

-- a superuser may keep the raw text
SET agentgate.audit_raw_statements = on;
SET SESSION AUTHORIZATION regress_audit_agent;
SELECT 'raw text kept' AS raw;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset
RESET agentgate.audit_raw_statements;
SELECT statement, normalized FROM agentgate.audit_log
 WHERE role_name = 'regress_audit_agent' AND statement LIKE '%raw text kept%';

-- the statement text is capped; a cut literal never shows half of itself
SET SESSION AUTHORIZATION regress_audit_agent;
\set ECHO none
SELECT format('SELECT length(%L) AS long_one', 'abcdefghij' || repeat('y', 5000)) \gexec
\set ECHO all
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset
SELECT statement, truncated, normalized
  FROM agentgate.audit_log
 WHERE role_name = 'regress_audit_agent' AND command_tag = 'SELECT'
   AND statement NOT LIKE '%audit_flush%'
 ORDER BY ts DESC, seq DESC LIMIT 2;

-- policy verdicts reach the log with the rule that decided
SELECT agentgate.block(commands => '{UPDATE}', relation => 'regress_audit_t', reason => 'regress') AS block_rule \gset
SELECT agentgate.log(commands => '{SELECT}', relation => 'regress_audit_t', reason => 'regress') AS log_rule \gset
SET SESSION AUTHORIZATION regress_audit_agent;
-- error: blocked by the rule
UPDATE regress_audit_t SET secret = 'blocked' WHERE id = 1;
SELECT count(*) AS logged_read FROM regress_audit_t;
RESET SESSION AUTHORIZATION;
SET agentgate.mode = monitor;
SET SESSION AUTHORIZATION regress_audit_agent;
UPDATE regress_audit_t SET secret = 'monitored' WHERE id = 1;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset
RESET agentgate.mode;
SELECT command_tag, decision, rule_id = :block_rule AS block_rule, rule_id = :log_rule AS log_rule, sqlstate
  FROM agentgate.audit_log
 WHERE role_name = 'regress_audit_agent' AND command_tag IN ('UPDATE', 'SELECT')
   AND decision IN ('blocked', 'logged', 'monitored')
 ORDER BY ts, seq;
DELETE FROM agentgate.rules WHERE id IN (:block_rule, :log_rule);

-- relation names follow renames of the table and of its schema
CREATE SCHEMA regress_audit_s;
CREATE TABLE regress_audit_s.moved (id int);
GRANT USAGE ON SCHEMA regress_audit_s TO regress_audit_agent;
GRANT SELECT ON regress_audit_s.moved TO regress_audit_agent;
SET SESSION AUTHORIZATION regress_audit_agent;
SELECT count(*) AS before_rename FROM regress_audit_s.moved;
RESET SESSION AUTHORIZATION;
ALTER TABLE regress_audit_s.moved RENAME TO "Renamed";
SET SESSION AUTHORIZATION regress_audit_agent;
SELECT count(*) AS after_table_rename FROM regress_audit_s."Renamed";
RESET SESSION AUTHORIZATION;
ALTER SCHEMA regress_audit_s RENAME TO regress_audit_s2;
SET SESSION AUTHORIZATION regress_audit_agent;
SELECT count(*) AS after_schema_rename FROM regress_audit_s2."Renamed";
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset
SELECT relations FROM agentgate.audit_log
 WHERE role_name = 'regress_audit_agent' AND relations::text LIKE '%regress_audit_s%'
 ORDER BY ts, seq;
DROP SCHEMA regress_audit_s2 CASCADE;

-- non-governed roles are not audited (agentgate.audit_all_roles is off)
SELECT count(*) AS superuser_rows FROM agentgate.audit_log WHERE role_name = current_user;

-- the writer reports its statistics, so autovacuum and ANALYZE know of the
-- rows it inserts and the summaries it updates (sent at most once a second)
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN (SELECT sum(n_tup_ins) FROM pg_stat_user_tables
                    WHERE schemaname = 'agentgate' AND relname LIKE 'audit_log_%') > 0
              AND (SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables
                    WHERE schemaname = 'agentgate' AND relname = 'audit_sessions') > 0;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT sum(n_tup_ins) > 0 AS log_inserts_counted FROM pg_stat_user_tables
 WHERE schemaname = 'agentgate' AND relname LIKE 'audit_log_%';
SELECT n_tup_ins + n_tup_upd > 0 AS summaries_counted FROM pg_stat_user_tables
 WHERE schemaname = 'agentgate' AND relname = 'audit_sessions';

DELETE FROM agentgate.audit_log WHERE role_name = 'regress_audit_agent';
DELETE FROM agentgate.agents WHERE identity = 'regress-audit@example.com';
DROP FUNCTION regress_audit_f(int);
DROP TABLE regress_audit_t;
DROP ROLE regress_audit_agent;
\c contrib_regression
