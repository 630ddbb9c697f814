--
-- The audit writer runs SQL as the bootstrap superuser in the audit
-- database.  Settings that database (or its owner) can set must not change
-- what that SQL runs: here a search_path that puts the owner's schema, with
-- its own "+" for bigint, in front of pg_catalog.  And the writer comes back
-- by itself after a stray pg_terminate_backend().
--
\c postgres
\set VERBOSITY terse
SET statement_timeout = '60s';
CREATE SCHEMA regress_owned;
CREATE TABLE regress_owned.ran (who name, op text);
CREATE FUNCTION regress_owned.plus(bigint, bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regress_owned.ran VALUES (current_user, 'plus');
    RETURN $1 OPERATOR(pg_catalog.+) $2;
END
$$;
CREATE OPERATOR regress_owned.+ (LEFTARG = bigint, RIGHTARG = bigint,
                                 FUNCTION = regress_owned.plus);
ALTER DATABASE postgres SET search_path = regress_owned, pg_catalog;
ALTER DATABASE postgres SET default_transaction_read_only = on;

-- the writer reads database settings when it starts: stop it, wait for the
-- postmaster to start a new one
CREATE TEMP TABLE old_writer AS
SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentgate audit writer';
SELECT count(*) AS writers FROM old_writer;
SELECT pg_terminate_backend(pid) FROM old_writer;
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity
                           WHERE backend_type = 'agentgate audit writer'
                             AND pid NOT IN (SELECT pid FROM old_writer));
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT count(*) AS new_writers FROM pg_stat_activity
 WHERE backend_type = 'agentgate audit writer'
   AND pid NOT IN (SELECT pid FROM old_writer);

-- an agent statement goes through the new writer
CREATE ROLE regress_writer_agent LOGIN IN ROLE agentgate_agent;
INSERT INTO agentgate.agents (identity, role_name)
VALUES ('regress-writer@example.com', 'regress_writer_agent');
SELECT set_config('application_name', 'psql ' || (agentgate.session_stamp('regress_writer_agent')).stamp, false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION regress_writer_agent;
SELECT 42 AS answer;
SELECT agentgate.audit_flush();
-- a second batch for the same session updates its summary (the "+")
SELECT 43 AS answer;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;

SELECT statement, count(*) AS rows_written FROM agentgate.audit_log
 WHERE role_name = 'regress_writer_agent' AND statement LIKE '%answer%'
 GROUP BY statement;
SELECT statements >= 2 AS summarised FROM agentgate.audit_sessions
 WHERE role_name = 'regress_writer_agent';
-- the owner's operator never ran
SELECT count(*) AS owner_code_ran FROM regress_owned.ran;

ALTER DATABASE postgres RESET search_path;
ALTER DATABASE postgres RESET default_transaction_read_only;
DELETE FROM agentgate.audit_log WHERE role_name = 'regress_writer_agent';
DELETE FROM agentgate.audit_sessions WHERE role_name = 'regress_writer_agent';
DELETE FROM agentgate.agents WHERE identity = 'regress-writer@example.com';
DROP ROLE regress_writer_agent;
DROP SCHEMA regress_owned CASCADE;
\c contrib_regression
