--
-- A governed session computes what any other session computes: SQL
-- functions are inlined as usual, unless a rule decides their calls (an
-- inlined call is never called, so it could not be decided).  A rule added
-- later makes plans that inlined the function be made again.  And a
-- CREATE OR REPLACE FUNCTION with a %TYPE argument prints its NOTICE once.
--
\set VERBOSITY terse
CREATE ROLE regress_rt13_agent LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_rt13_agent;

SET SESSION AUTHORIZATION regress_rt13_agent;
CREATE FUNCTION regress_rt13_if(bool, int, int) RETURNS int LANGUAGE sql
AS 'SELECT CASE WHEN $1 THEN $2 ELSE $3 END';
CREATE TABLE regress_rt13_t (f1 int);
INSERT INTO regress_rt13_t VALUES (2147483647);
-- inlined: the ELSE branch is never computed
EXPLAIN (VERBOSE, COSTS OFF) SELECT regress_rt13_if(f1 > 0, f1, f1 + 1) FROM regress_rt13_t;
SELECT regress_rt13_if(f1 > 0, f1, f1 + 1) FROM regress_rt13_t;
-- a partition key on an inlinable function
CREATE TABLE regress_rt13_pk (a int) PARTITION BY RANGE (regress_rt13_if(a > 0, a, 0));
PREPARE regress_rt13_p AS SELECT regress_rt13_if(f1 > 0, f1, f1 + 1) FROM regress_rt13_t;
EXECUTE regress_rt13_p;
RESET SESSION AUTHORIZATION;

-- a rule that decides the function's calls: no longer inlined, decided
SELECT agentgate.block(functions => '{"regress_rt13_if(boolean,integer,integer)"}',
  reason => 'regress_rt13 no if') > 0 AS ok;
SET SESSION AUTHORIZATION regress_rt13_agent;
EXPLAIN (VERBOSE, COSTS OFF) SELECT regress_rt13_if(f1 > 0, f1, f1 + 1) FROM regress_rt13_t;
-- error:
SELECT regress_rt13_if(f1 > 0, f1, f1 + 1) FROM regress_rt13_t;
-- the statement prepared before the rule is planned again: refused
-- error:
EXECUTE regress_rt13_p;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE reason = 'regress_rt13 no if';
SET SESSION AUTHORIZATION regress_rt13_agent;
EXECUTE regress_rt13_p;
DEALLOCATE regress_rt13_p;

-- %TYPE: one NOTICE per statement, as on a server without agentgate
\set VERBOSITY default
CREATE OR REPLACE FUNCTION regress_rt13_pct(regress_rt13_t.f1%TYPE) RETURNS int
LANGUAGE sql AS 'SELECT 1';
CREATE OR REPLACE FUNCTION regress_rt13_pct(regress_rt13_t.f1%TYPE) RETURNS int
LANGUAGE sql AS 'SELECT 2';
\set VERBOSITY terse
SELECT regress_rt13_pct(1);
RESET SESSION AUTHORIZATION;

DROP TABLE regress_rt13_t, regress_rt13_pk;
DROP FUNCTION regress_rt13_if(bool, int, int), regress_rt13_pct(int);
REVOKE CREATE ON SCHEMA public FROM regress_rt13_agent;
DROP ROLE regress_rt13_agent;
