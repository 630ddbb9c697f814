--
-- The baseline holds on every path too (policy_03 shows the same paths
-- with DBA rules): a DELETE without WHERE, DROP, TRUNCATE and pg_stats,
-- reached through one Query message, disguised text, CTEs, MERGE, views,
-- rewrite rules, triggers, functions, DO and CALL, prepared statements,
-- cursors, EXPLAIN ANALYZE, CREATE TABLE AS and COPY.
--
\set VERBOSITY terse
CREATE ROLE regress_bp_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_bp_t (id int PRIMARY KEY, v text);
INSERT INTO regress_bp_t SELECT g, 'v' || g FROM generate_series(1, 3) g;
CREATE VIEW regress_bp_v AS SELECT id, v FROM regress_bp_t;
CREATE TABLE regress_bp_r (id int);
CREATE RULE regress_bp_r_ins AS ON INSERT TO regress_bp_r DO ALSO DELETE FROM regress_bp_t;
CREATE TABLE regress_bp_log (id int);
CREATE FUNCTION regress_bp_trg() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN DELETE FROM regress_bp_t; RETURN NEW; END $$;
CREATE TRIGGER regress_bp_trg AFTER INSERT ON regress_bp_log
  FOR EACH ROW EXECUTE FUNCTION regress_bp_trg();
CREATE FUNCTION regress_bp_sqlf() RETURNS void LANGUAGE sql AS $$ DELETE FROM regress_bp_t $$;
CREATE FUNCTION regress_bp_plf(tab text) RETURNS void LANGUAGE plpgsql
  AS $$ BEGIN EXECUTE format('TRUNCATE %I', tab); END $$;
CREATE PROCEDURE regress_bp_proc() LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO regress_bp_t VALUES (50, 'kept'); COMMIT; DELETE FROM regress_bp_t; END $$;
GRANT ALL ON regress_bp_t, regress_bp_v, regress_bp_r, regress_bp_log TO regress_bp_agent;
GRANT CREATE ON SCHEMA public TO regress_bp_agent;

-- a statement prepared while the baseline row was disabled
UPDATE agentgate.rules SET enabled = false WHERE baseline AND condition = 'no_where';
SET SESSION AUTHORIZATION regress_bp_agent;
PREPARE regress_bp_wipe AS DELETE FROM regress_bp_t;
RESET SESSION AUTHORIZATION;
UPDATE agentgate.rules SET enabled = true WHERE baseline AND condition = 'no_where';

SET SESSION AUTHORIZATION regress_bp_agent;
-- error: one Query message
INSERT INTO regress_bp_t VALUES (10, 'x') \; TRUNCATE regress_bp_t \; SELECT 1;
-- error: disguised text
/**/ tRuNcAtE /* x */ ONLY public.U&"regress\005fbp\005ft";
-- error: CTE
WITH d AS (DELETE FROM regress_bp_t RETURNING 1) SELECT count(*) FROM d;
-- error: MERGE
MERGE INTO regress_bp_t t USING (SELECT 1 AS id) s ON true WHEN MATCHED THEN DELETE;
-- error: view
DELETE FROM regress_bp_v;
-- error: rewrite rule action
INSERT INTO regress_bp_r VALUES (1);
-- error: trigger
INSERT INTO regress_bp_log VALUES (1);
-- error: SQL function
SELECT regress_bp_sqlf();
-- error: plpgsql EXECUTE format()
SELECT regress_bp_plf('regress_bp_t');
-- error: DO with COMMIT inside
DO $$ BEGIN UPDATE regress_bp_t SET v = 'do' WHERE id = 1; COMMIT; DELETE FROM regress_bp_t; END $$;
-- error: CALL with COMMIT inside (the INSERT before COMMIT stays)
CALL regress_bp_proc();
-- error: prepared before the rule was enabled
EXECUTE regress_bp_wipe;
-- error: cursor
BEGIN;
DECLARE regress_bp_c CURSOR FOR SELECT * FROM pg_stats;
ROLLBACK;
-- plain EXPLAIN is allowed; EXPLAIN ANALYZE is not
EXPLAIN (COSTS OFF) DELETE FROM regress_bp_t;
-- error:
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) DELETE FROM regress_bp_t;
-- error: CREATE TABLE AS, SELECT INTO
CREATE TABLE regress_bp_stats AS SELECT * FROM pg_stats;
-- error:
SELECT * INTO regress_bp_stats FROM pg_stats;
-- error: COPY (query) TO
COPY (SELECT * FROM pg_stats) TO STDOUT;
-- error: DROP through EXECUTE
DO $$ BEGIN EXECUTE 'DROP VIEW regress_bp_v'; END $$;
SELECT id, v FROM regress_bp_t ORDER BY id;
RESET SESSION AUTHORIZATION;

DEALLOCATE regress_bp_wipe;
DROP PROCEDURE regress_bp_proc();
DROP FUNCTION regress_bp_sqlf(), regress_bp_plf(text);
DROP TABLE regress_bp_log, regress_bp_r;
DROP FUNCTION regress_bp_trg();
DROP VIEW regress_bp_v;
DROP TABLE regress_bp_t;
REVOKE CREATE ON SCHEMA public FROM regress_bp_agent;
DROP ROLE regress_bp_agent;
