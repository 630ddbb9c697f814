--
-- A WHERE that the catalog alone proves true for every row restricts no
-- more than WHERE true: "col IS NOT NULL" on a NOT NULL column or a system
-- column, and "col = col" (which the planner rewrites to IS NOT NULL).  The
-- no_where baseline refuses them; IS NOT NULL on a nullable column, or
-- together with a real condition, still restricts.
--
\set VERBOSITY terse
CREATE ROLE regress_rt3_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_rt3_t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0);
INSERT INTO regress_rt3_t SELECT g, CASE WHEN g > 3 THEN 'v' END, g FROM generate_series(1, 5) g;
GRANT SELECT, UPDATE, DELETE ON regress_rt3_t TO regress_rt3_agent;
CREATE TABLE regress_rt3_src (id int PRIMARY KEY, v text);
INSERT INTO regress_rt3_src VALUES (1, 's');
GRANT SELECT ON regress_rt3_src TO regress_rt3_agent;

SET SESSION AUTHORIZATION regress_rt3_agent;
-- error:
DELETE FROM regress_rt3_t WHERE id IS NOT NULL;
-- error:
UPDATE regress_rt3_t SET v = 'x' WHERE n IS NOT NULL AND id IS NOT NULL;
-- error:
DELETE FROM regress_rt3_t WHERE ctid IS NOT NULL;
-- error:
DELETE FROM regress_rt3_t WHERE id = id;
-- error: through an index scan
SET enable_seqscan = off;
DELETE FROM regress_rt3_t WHERE id IS NOT NULL;
RESET enable_seqscan;
-- error: MERGE
MERGE INTO regress_rt3_t t USING regress_rt3_src s ON t.id IS NOT NULL
  WHEN MATCHED THEN DELETE;
SELECT count(*) AS still_there FROM regress_rt3_t;
-- a nullable column: restricts
UPDATE regress_rt3_t SET v = 'w' WHERE v IS NOT NULL;
-- together with a real condition: restricts
DELETE FROM regress_rt3_t WHERE id IS NOT NULL AND id = 5;
SELECT id, v FROM regress_rt3_t ORDER BY id;
RESET SESSION AUTHORIZATION;

DROP TABLE regress_rt3_t, regress_rt3_src;
DROP ROLE regress_rt3_agent;
