--
-- Session stamps: with agentgate.require_session_stamp on, a governed
-- session runs statements only while application_name ends with a stamp
-- that (agentgate.session_stamp()).stamp issued for its session_user.  SET of a
-- value with a valid stamp installs it; SET of a plain value and RESET keep
-- the session's current stamp at the end of the new value; a value with
-- any other stamp is refused.  set_config() and function SET clauses,
-- which no hook sees, are caught at the next statement.  The settings
-- PgBouncer re-sends before application_name stay allowed.
-- agentgate.session_id() returns the stamp's session id.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT agentgate.login('trent', '{}') AS trent \gset
SELECT agentgate.login('peggy', '{}') AS peggy \gset
SELECT (agentgate.session_stamp(:'trent')).stamp AS stamp \gset
SELECT (agentgate.session_stamp(:'trent')).stamp AS stamp2 \gset
SELECT (agentgate.session_stamp(:'peggy')).stamp AS peggy_stamp \gset
SELECT :'stamp' ~ '^ag1\.[0-9a-f]{16}\.[0-9a-f]{16}$' AS well_formed,
       :'stamp' <> :'stamp2' AS fresh_each_time;
SET agentgate.require_session_stamp = on;
SELECT set_config('application_name', 'psql ' || :'stamp', false) IS NOT NULL AS stamped;

SET SESSION AUTHORIZATION :"trent";
SELECT agentgate.session_id() = split_part(:'stamp', '.', 2) AS session_id_matches;
-- the stamp alone, or after any client name, is valid
SET application_name = :'stamp2';
SELECT agentgate.session_id() = split_part(:'stamp2', '.', 2) AS switched;
SET application_name = :'stamp';
-- a plain value keeps the current stamp
SET application_name = 'forged';
SELECT current_setting('application_name') = 'forged ' || :'stamp' AS kept_stamp;
-- error: values with a stamp that is not valid for this role
SET application_name = 'psql ag1.0000000000000000.0000000000000000';
SET application_name = :'peggy_stamp';
SELECT left(:'stamp', -1) || CASE WHEN right(:'stamp', 1) = '0' THEN '1' ELSE '0' END AS tampered,
       :'stamp' || ' trailing' AS trailing \gset
SET application_name = :'tampered';
SET application_name = :'trailing';
-- RESET keeps the current stamp too (after the connection's value)
RESET application_name;
SELECT current_setting('application_name') LIKE '%' || :'stamp' AS reset_kept_stamp;
SET application_name TO DEFAULT;
SELECT agentgate.session_id() = split_part(:'stamp', '.', 2) AS default_kept_stamp;
-- error: the agent cannot turn the check off
SET agentgate.require_session_stamp = off;
SELECT agentgate.session_id() = split_part(:'stamp', '.', 2) AS still_stamped;

-- set_config() runs (it is a built-in function) but the next statement is
-- refused, and so is everything after it until a valid stamp is back
SELECT set_config('application_name', 'forged', false);
-- error: no valid stamp
SELECT 1;
SELECT agentgate.session_id();
-- PgBouncer's re-sent settings pass; then it re-stamps the connection
SET client_encoding = 'UTF8';
SET DateStyle = 'ISO, MDY';
SET application_name = :'stamp';
SELECT 1 AS restamped;

-- inside a transaction: ROLLBACK (TO SAVEPOINT) is always allowed and
-- undoes the change
BEGIN;
SAVEPOINT s;
SELECT set_config('application_name', 'forged', true);
-- error: no valid stamp
SELECT 1;
ROLLBACK TO SAVEPOINT s;
SELECT 1 AS after_rollback_to;
COMMIT;

-- a function's SET clause is caught at its first nested statement
RESET SESSION AUTHORIZATION;
CREATE FUNCTION regress_appname_fn() RETURNS bigint LANGUAGE plpgsql
  SET application_name = 'forged'
  AS $$ BEGIN RETURN (SELECT count(*) FROM pg_class WHERE false); END $$;
SET SESSION AUTHORIZATION :"trent";
-- error: no valid stamp
SELECT regress_appname_fn();
SELECT 1 AS ok_after_function;

-- the stamp is bound to the role: trent's stamp is no good for peggy
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION :"peggy";
-- error: no valid stamp
SELECT 1;
SET application_name = :'peggy_stamp';
SELECT 1 AS peggy_ok;
RESET SESSION AUTHORIZATION;

-- non-governed roles are not checked
CREATE ROLE regress_plain LOGIN;
SELECT set_config('application_name', 'anything', false) IS NOT NULL AS unstamped;
SET SESSION AUTHORIZATION regress_plain;
SELECT 1 AS plain_ok;
SELECT agentgate.session_id() IS NULL AS no_session_id;
RESET SESSION AUTHORIZATION;
-- with the check off, an agent runs unstamped (test servers only)
SET agentgate.require_session_stamp = off;
SET SESSION AUTHORIZATION :"trent";
SELECT 1 AS unchecked;
RESET SESSION AUTHORIZATION;

-- error: only the proxy may mint stamps
SET SESSION AUTHORIZATION regress_plain;
SELECT agentgate.session_stamp('regress_plain');
RESET SESSION AUTHORIZATION;

RESET agentgate.require_session_stamp;
DROP FUNCTION regress_appname_fn();
DELETE FROM agentgate.agents;
DROP ROLE :"trent", :"peggy", regress_plain;
