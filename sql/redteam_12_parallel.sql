--
-- Parallel workers act for their leader's session user and are governed
-- like it.  The part of the plan a worker runs was decided by its leader;
-- what a function runs inside a worker is decided in the worker, as it
-- would be in the leader (here a PARALLEL SAFE function reading a column a
-- rule blocks, and a built-in a rule names).  agentgate's own functions
-- that read session state are not PARALLEL SAFE, so they run in the leader.
--
\set VERBOSITY terse
CREATE ROLE regress_rt12_agent LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_rt12_agent;
CREATE TABLE regress_rt12_secret (id int, ssn text);
INSERT INTO regress_rt12_secret VALUES (1, '123-45-6789');
GRANT SELECT ON regress_rt12_secret TO regress_rt12_agent;
SELECT agentgate.block(commands => '{READ}', relation => 'regress_rt12_secret',
  columns => '{ssn}', applies_to => 'regress_rt12_agent', reason => 'regress_rt12 pii') > 0 AS ok;
SELECT agentgate.block(functions => '{pg_backend_pid()}',
  applies_to => 'regress_rt12_agent', reason => 'regress_rt12 no pid') > 0 AS ok;
GRANT EXECUTE ON FUNCTION pg_backend_pid() TO regress_rt12_agent;

SET SESSION AUTHORIZATION regress_rt12_agent;
CREATE FUNCTION regress_rt12_peek() RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$ DECLARE r text; BEGIN SELECT ssn INTO r FROM regress_rt12_secret LIMIT 1; RETURN r; END $$;
CREATE FUNCTION regress_rt12_pid() RETURNS int LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$ BEGIN RETURN pg_backend_pid(); END $$;
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET max_parallel_workers_per_gather = 2;
-- the function runs in a worker
EXPLAIN (COSTS OFF) SELECT regress_rt12_peek();
-- error:
SELECT regress_rt12_peek();
-- error:
SELECT regress_rt12_peek() FROM generate_series(1, 3);
-- error:
SELECT regress_rt12_pid();
-- allowed reads still work in workers
SELECT id FROM regress_rt12_secret;
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET max_parallel_workers_per_gather;
RESET SESSION AUTHORIZATION;

-- agentgate's functions that read backend state are not PARALLEL SAFE
SELECT p.proname, p.proparallel FROM pg_proc p
 WHERE p.pronamespace = 'agentgate'::regnamespace
   AND p.proname IN ('session_id', 'session_stamp')
 ORDER BY 1;

-- the leader's audit rows say what its workers refused
SELECT current_database() AS regress_db \gset
\c postgres
SELECT agentgate.audit_flush() IS NOT NULL AS flushed;
SELECT statement, decision, rule_id > 0 AS by_rule, sqlstate
  FROM agentgate.audit_log
 WHERE role_name = 'regress_rt12_agent' AND statement LIKE 'SELECT regress_rt12_p%'
 ORDER BY ts, statement;
\c :regress_db
\set VERBOSITY terse
DELETE FROM agentgate.rules WHERE reason LIKE 'regress_rt12%';
DROP FUNCTION regress_rt12_peek(), regress_rt12_pid();
DROP TABLE regress_rt12_secret;
REVOKE EXECUTE ON FUNCTION pg_backend_pid() FROM regress_rt12_agent;
REVOKE CREATE ON SCHEMA public FROM regress_rt12_agent;
DROP ROLE regress_rt12_agent;
