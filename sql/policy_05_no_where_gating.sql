--
-- no_where: a condition restricts the rows of the modified relation only if
-- it references them.  A one-time gating filter (a sub-select, a stable
-- function, a parameter), or a scan or join filter with no Var of the
-- target, lets every row through: the statement is refused as having no
-- WHERE.  Joins on the target's rows still restrict.
--
\set VERBOSITY terse
CREATE ROLE regress_nwg_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_nwg_owner NOLOGIN;
GRANT regress_nwg_owner TO regress_nwg_agent;
CREATE TABLE regress_nwg_t (id int PRIMARY KEY, v text);
INSERT INTO regress_nwg_t SELECT g, 'v' FROM generate_series(1, 100) g;
CREATE TABLE regress_nwg_o (k int, w text);
INSERT INTO regress_nwg_o SELECT g, 'w' FROM generate_series(1, 100) g;
CREATE INDEX ON regress_nwg_o (k);
CREATE TABLE regress_nwg_p (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE regress_nwg_p1 PARTITION OF regress_nwg_p FOR VALUES FROM (0) TO (50);
CREATE TABLE regress_nwg_p2 PARTITION OF regress_nwg_p FOR VALUES FROM (50) TO (200);
INSERT INTO regress_nwg_p SELECT g, 'v' FROM generate_series(1, 100) g;
ANALYZE regress_nwg_t, regress_nwg_o, regress_nwg_p;
ALTER TABLE regress_nwg_t OWNER TO regress_nwg_owner;
ALTER TABLE regress_nwg_o OWNER TO regress_nwg_owner;
ALTER TABLE regress_nwg_p OWNER TO regress_nwg_owner;
CREATE VIEW regress_nwg_gated AS
  SELECT * FROM regress_nwg_t WHERE current_user IS NOT NULL;
ALTER VIEW regress_nwg_gated OWNER TO regress_nwg_owner;

SET SESSION AUTHORIZATION regress_nwg_agent;
\set ON_ERROR_ROLLBACK on
BEGIN;
-- error: each of these changes every row
UPDATE regress_nwg_t SET v = 'x' WHERE (SELECT true);
UPDATE regress_nwg_t SET v = 'x' WHERE EXISTS (SELECT 1);
UPDATE regress_nwg_t SET v = 'x' WHERE NOT EXISTS (SELECT 1 WHERE false);
UPDATE regress_nwg_t SET v = 'x' WHERE current_user = current_user;
UPDATE regress_nwg_t SET v = 'x' WHERE session_user IS NOT NULL;
DELETE FROM regress_nwg_t WHERE now() IS NOT NULL;
DELETE FROM regress_nwg_t WHERE random() < 2;
DELETE FROM regress_nwg_t WHERE ctid IS NOT NULL OR true;
DELETE FROM regress_nwg_t WHERE id IS NOT NULL OR random() < 2;
DELETE FROM regress_nwg_t WHERE (SELECT count(*) FROM regress_nwg_o) > 0;
DELETE FROM regress_nwg_t WHERE 1 IN (SELECT k FROM regress_nwg_o);
MERGE INTO regress_nwg_t t USING regress_nwg_o s ON (SELECT true)
  WHEN MATCHED THEN UPDATE SET v = 'm';
MERGE INTO regress_nwg_t t USING regress_nwg_o s ON current_user = current_user
  WHEN MATCHED THEN DELETE;
UPDATE regress_nwg_t SET v = 'x' FROM regress_nwg_o o WHERE o.k = 1 AND random() < 2;
UPDATE regress_nwg_gated SET v = 'x';
DELETE FROM regress_nwg_p WHERE (SELECT true);
WITH d AS (DELETE FROM regress_nwg_t WHERE (SELECT true) RETURNING 1) SELECT count(*) FROM d;
DO $$ BEGIN DELETE FROM regress_nwg_t WHERE now() IS NOT NULL; END $$;
PREPARE regress_nwg_p1(bool) AS DELETE FROM regress_nwg_t WHERE $1;
SET plan_cache_mode = force_generic_plan;
EXECUTE regress_nwg_p1(true);
SET plan_cache_mode = force_custom_plan;
EXECUTE regress_nwg_p1(true);
RESET plan_cache_mode;
-- error: a one-time filter decides nothing about rows, even one that is false
DELETE FROM regress_nwg_t WHERE (SELECT false);
-- allowed: conditions on the target's rows, joins on them, WHERE false
SELECT count(*) FROM regress_nwg_t;
DELETE FROM regress_nwg_t WHERE false;
UPDATE regress_nwg_t SET v = 'y' WHERE id = 3;
UPDATE regress_nwg_t SET v = 'y' WHERE id = 3 AND (SELECT true);
UPDATE regress_nwg_t SET v = 'y' WHERE id = 3 OR id = 4;
UPDATE regress_nwg_t SET v = 'y' WHERE id > (SELECT 90);
UPDATE regress_nwg_t SET v = 'y' FROM regress_nwg_o o WHERE o.k = regress_nwg_t.id AND o.k < 5;
MERGE INTO regress_nwg_t t USING regress_nwg_o s ON t.id = s.k AND s.k < 3
  WHEN MATCHED THEN UPDATE SET v = 'm';
UPDATE regress_nwg_p SET v = 'z' FROM regress_nwg_o o WHERE o.k = regress_nwg_p.id AND o.k < 3;
DELETE FROM regress_nwg_p WHERE id = 3;
PREPARE regress_nwg_p2(int) AS DELETE FROM regress_nwg_t WHERE id = $1;
SET plan_cache_mode = force_generic_plan;
EXECUTE regress_nwg_p2(5);
RESET plan_cache_mode;
-- a nested loop that passes the target's rows to an index scan of the other
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
EXPLAIN (COSTS OFF) UPDATE regress_nwg_t SET v = 'n' FROM regress_nwg_o o WHERE o.k = regress_nwg_t.id;
UPDATE regress_nwg_t SET v = 'n' FROM regress_nwg_o o WHERE o.k = regress_nwg_t.id;
EXPLAIN (COSTS OFF) UPDATE regress_nwg_t SET v = 'n' FROM regress_nwg_o o WHERE o.k = regress_nwg_t.id + 0;
UPDATE regress_nwg_t SET v = 'n' FROM regress_nwg_o o WHERE o.k = regress_nwg_t.id + 0;
-- ... but not one whose inner side does not filter on them
EXPLAIN (COSTS OFF) UPDATE regress_nwg_t SET v = 'n' FROM regress_nwg_o o WHERE o.k < 3 OR random() < 2;
-- error:
UPDATE regress_nwg_t SET v = 'n' FROM regress_nwg_o o WHERE o.k < 3 OR random() < 2;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;
ROLLBACK;
\set ON_ERROR_ROLLBACK off
RESET SESSION AUTHORIZATION;

-- a DBA is not governed
BEGIN;
UPDATE regress_nwg_t SET v = 'dba' WHERE (SELECT true);
ROLLBACK;

DROP VIEW regress_nwg_gated;
DROP TABLE regress_nwg_t, regress_nwg_o, regress_nwg_p;
DROP ROLE regress_nwg_agent;
DROP ROLE regress_nwg_owner;
