--
-- Every route to a masked column reads the masked value: target list,
-- WHERE, JOIN, GROUP BY, ORDER BY, HAVING, aggregates, window functions,
-- whole-row references, subqueries, CTEs, set operations, LATERAL, views
-- (a DBA's and the agent's own), SQL functions (inlined or not), PL/pgSQL,
-- cursors, PREPARE/EXECUTE, partitions read directly, error messages.
-- Predicates compare masked values, so no row is selected by its real
-- value.  The superuser and the table's owner read real values.
--
\set VERBOSITY terse
CREATE ROLE regress_m3_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_m3_owner;
GRANT regress_m3_owner TO regress_m3_agent;	-- a member of the owning group
GRANT CREATE ON SCHEMA public TO regress_m3_agent;
CREATE TABLE regress_m3_p (id int PRIMARY KEY, name text, ssn text, salary int);
ALTER TABLE regress_m3_p OWNER TO regress_m3_owner;
INSERT INTO regress_m3_p VALUES (1, 'ann', '111-11-1111', 100), (2, 'bob', '222-22-2222', 200),
  (3, 'cy', NULL, 300);
CREATE TABLE regress_m3_o (pid int, ssn text);
INSERT INTO regress_m3_o VALUES (1, '111-11-1111'), (2, 'xxxxxxx2222');
GRANT SELECT ON regress_m3_o TO regress_m3_agent;
CREATE VIEW regress_m3_dba_view AS SELECT id, ssn, salary FROM regress_m3_p;
GRANT SELECT ON regress_m3_dba_view TO regress_m3_agent;
CREATE TABLE regress_m3_part (id int, ssn text) PARTITION BY RANGE (id);
CREATE TABLE regress_m3_part1 PARTITION OF regress_m3_part FOR VALUES FROM (0) TO (10);
INSERT INTO regress_m3_part VALUES (1, '111-11-1111');
GRANT SELECT ON regress_m3_part, regress_m3_part1 TO regress_m3_agent;

SELECT agentgate.mask('regress_m3_p', 'ssn', 'partial') > 0 AS ok,
       agentgate.mask('regress_m3_p', 'salary', 'redact') > 0 AS ok,
       agentgate.mask('regress_m3_part', 'ssn', 'partial') > 0 AS ok;

SET SESSION AUTHORIZATION regress_m3_agent;
-- target list, WHERE (no row is found by its real value), ORDER BY
SELECT id, ssn, salary FROM regress_m3_p ORDER BY id;
SELECT id FROM regress_m3_p WHERE ssn = '111-11-1111';
SELECT id FROM regress_m3_p WHERE ssn LIKE '1%' OR lower(ssn) = '222-22-2222' OR md5(ssn) IS NULL;
SELECT id FROM regress_m3_p WHERE salary > 150 ORDER BY id;
SELECT id FROM regress_m3_p ORDER BY salary DESC, id;
-- JOIN compares masked values
SELECT p.id, o.pid FROM regress_m3_p p JOIN regress_m3_o o ON o.ssn = p.ssn ORDER BY 1;
SELECT p.id, o.pid FROM regress_m3_p p LEFT JOIN regress_m3_o o ON o.pid = p.id ORDER BY 1;
SELECT o.pid, p.ssn FROM regress_m3_o o LEFT JOIN regress_m3_p p ON p.id = o.pid + 1 ORDER BY 1;
-- GROUP BY, HAVING, aggregates, window functions
SELECT salary, count(*) FROM regress_m3_p GROUP BY salary;
SELECT count(*) FROM regress_m3_p GROUP BY ssn HAVING max(ssn) LIKE '%1' ORDER BY 1;
SELECT max(ssn), min(ssn), sum(salary), string_agg(ssn, ',' ORDER BY id), count(ssn) FROM regress_m3_p;
SELECT id, first_value(ssn) OVER (ORDER BY id), sum(salary) OVER () FROM regress_m3_p ORDER BY id;
-- whole-row references
SELECT p FROM regress_m3_p p ORDER BY id;
SELECT p.* FROM regress_m3_p p WHERE id = 1;
SELECT row_to_json(p) FROM regress_m3_p p WHERE id = 1;
SELECT p::text FROM regress_m3_p p WHERE id = 1;
SELECT to_jsonb(p) ->> 'ssn' FROM regress_m3_p p WHERE id = 2;
-- subqueries, CTEs, set operations, LATERAL, sublinks
SELECT (SELECT ssn FROM regress_m3_p WHERE id = 1);
SELECT * FROM (SELECT ssn || '' AS s FROM regress_m3_p) x ORDER BY s;
WITH c AS (SELECT ssn FROM regress_m3_p) SELECT * FROM c ORDER BY 1;
WITH RECURSIVE r(n, s) AS (SELECT 1, (SELECT ssn FROM regress_m3_p WHERE id = 1)
  UNION ALL SELECT n + 1, s FROM r WHERE n < 2) SELECT * FROM r;
SELECT ssn FROM regress_m3_p UNION SELECT ssn FROM regress_m3_o ORDER BY 1;
SELECT o.pid, l.ssn FROM regress_m3_o o, LATERAL (SELECT ssn FROM regress_m3_p p WHERE p.id = o.pid) l ORDER BY 1;
SELECT id FROM regress_m3_p WHERE EXISTS (SELECT 1 FROM regress_m3_o o WHERE o.ssn = regress_m3_p.ssn);
SELECT id FROM regress_m3_p WHERE ssn IN (SELECT ssn FROM regress_m3_o);
SELECT array(SELECT ssn FROM regress_m3_p ORDER BY id);
-- a DBA's view, the agent's own view
SELECT * FROM regress_m3_dba_view ORDER BY id;
CREATE VIEW regress_m3_agent_view AS SELECT id, ssn, salary * 2 AS s2 FROM regress_m3_p;
SELECT * FROM regress_m3_agent_view ORDER BY id;
-- SQL functions: inlined or not, set-returning or scalar
CREATE FUNCTION regress_m3_srf() RETURNS SETOF regress_m3_p LANGUAGE sql STABLE
  AS 'SELECT * FROM regress_m3_p';
SELECT id, ssn FROM regress_m3_srf() ORDER BY id;
CREATE FUNCTION regress_m3_scalar(int) RETURNS text LANGUAGE sql STABLE
  AS 'SELECT ssn FROM regress_m3_p WHERE id = $1';
SELECT regress_m3_scalar(1);
CREATE FUNCTION regress_m3_wrap(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1';
SELECT regress_m3_wrap(ssn) FROM regress_m3_p WHERE id = 1;
-- PL/pgSQL: queries, RETURN QUERY, RAISE
CREATE FUNCTION regress_m3_pl() RETURNS TABLE (s text) LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
  SELECT ssn INTO v FROM regress_m3_p WHERE id = 1;
  RAISE NOTICE 'ssn is %', v;
  RETURN QUERY SELECT ssn FROM regress_m3_p WHERE id = 2;
END $$;
SELECT * FROM regress_m3_pl();
DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM regress_m3_p WHERE id = 1); END $$;
-- cursors, PREPARE/EXECUTE
BEGIN;
DECLARE c CURSOR FOR SELECT id, ssn FROM regress_m3_p ORDER BY id;
FETCH 2 FROM c;
COMMIT;
PREPARE regress_m3_q(int) AS SELECT ssn FROM regress_m3_p WHERE id = $1;
EXECUTE regress_m3_q(1);
-- partitions, read through the parent or directly
SELECT ssn FROM regress_m3_part;
SELECT ssn FROM regress_m3_part1;
SELECT ssn FROM ONLY regress_m3_part1;
-- system columns still read
SELECT ctid, tableoid::regclass, ssn FROM regress_m3_p WHERE id = 1;
-- FOR UPDATE locks the rows it reads, masked
BEGIN;
SELECT id, ssn FROM regress_m3_p WHERE id = 1 FOR UPDATE;
ROLLBACK;
-- error messages are computed from masked values
SELECT ssn::int FROM regress_m3_p WHERE id = 1;
SELECT id FROM regress_m3_p WHERE ssn::int = 0;
SELECT id FROM regress_m3_p WHERE 1 / (salary - 100) = 0;
RESET SESSION AUTHORIZATION;

-- the statement prepared before a mask change is made again
SELECT agentgate.mask('regress_m3_p', 'name', 'null') > 0 AS ok;
SET SESSION AUTHORIZATION regress_m3_agent;
PREPARE regress_m3_n AS SELECT name FROM regress_m3_p WHERE id = 1;
EXECUTE regress_m3_n;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.masks WHERE relation = 'regress_m3_p'::regclass AND column_name = 'name';
SET SESSION AUTHORIZATION regress_m3_agent;
EXECUTE regress_m3_n;
RESET SESSION AUTHORIZATION;

-- the agent's view is stored as written, without masks: read by anyone
-- else (where policy lets its owner's code run) it reads real values
SELECT pg_get_viewdef('regress_m3_agent_view'::regclass);
-- the superuser, and the owner (not governed), read real values
SET ROLE regress_m3_owner;
SELECT id, ssn, salary FROM regress_m3_p ORDER BY id;
RESET ROLE;

DROP FUNCTION regress_m3_srf(), regress_m3_scalar(int), regress_m3_wrap(text), regress_m3_pl();
DROP VIEW regress_m3_agent_view, regress_m3_dba_view;
DELETE FROM agentgate.masks WHERE relation IN ('regress_m3_p'::regclass, 'regress_m3_part'::regclass);
DROP TABLE regress_m3_p, regress_m3_o, regress_m3_part;
REVOKE CREATE ON SCHEMA public FROM regress_m3_agent;
DROP ROLE regress_m3_agent, regress_m3_owner;
