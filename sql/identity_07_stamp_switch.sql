--
-- One transaction, one session id.  PgBouncer re-stamps a server connection
-- in a query of its own, between transactions; a client that adopts
-- another stamp of its own role (which it can read in pg_stat_activity)
-- inside a transaction, a multi-statement query or through set_config() or
-- a function's SET clause has the rest of that transaction refused (the
-- proxy closes a client that does it between transactions: see
-- test/t/202_proxy_sessions.pl).  A plain SET application_name, RESET,
-- RESET ALL and DISCARD ALL keep the session's own stamp.
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT agentgate.login('xavier', '{}') AS xavier \gset
SELECT (agentgate.session_stamp(:'xavier')).stamp AS mine \gset
SELECT (agentgate.session_stamp(:'xavier')).stamp AS other \gset
SET agentgate.require_session_stamp = on;
SELECT set_config('application_name', 'psql ' || :'mine', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION :"xavier";

-- error: adopting the other stamp inside a transaction block
BEGIN;
SET application_name = :'other';
SELECT 1;
ROLLBACK;
SELECT agentgate.session_id() = split_part(:'mine', '.', 2) AS still_mine;
-- error: or after statements of the transaction ran under the first
BEGIN;
SELECT 1 AS first;
SET application_name = :'other';
SELECT 2;
ROLLBACK;
-- error: in one multi-statement query (the SET is rolled back with it)
SET application_name = :'other' \; SELECT 3;
SELECT agentgate.session_id() = split_part(:'mine', '.', 2) AS still_mine;
-- error: through set_config() within a transaction
SELECT set_config('application_name', 'x ' || :'other', false) IS NOT NULL AS adopted \; SELECT 4;
SELECT agentgate.session_id() = split_part(:'mine', '.', 2) AS still_mine;
-- error: through a function's SET clause
RESET SESSION AUTHORIZATION;
SELECT format('CREATE FUNCTION regress_adopt() RETURNS int LANGUAGE sql SET application_name = %L AS ''SELECT 5''',
              'x ' || :'other') AS ddl \gset
:ddl;
SET SESSION AUTHORIZATION :"xavier";
SELECT regress_adopt();

-- a plain value keeps this session's stamp (pgJDBC sets its own name)
SET application_name = 'PostgreSQL JDBC Driver';
SELECT current_setting('application_name') = 'PostgreSQL JDBC Driver ' || :'mine' AS jdbc_kept;
-- a long value is cut so that the stamp stays within 63 bytes
SET application_name = 'an application name far longer than sixty-three bytes in all';
SELECT octet_length(current_setting('application_name')) <= 63 AS fits,
       agentgate.session_id() = split_part(:'mine', '.', 2) AS long_kept;
-- RESET, RESET ALL and DISCARD ALL keep it as well
RESET application_name;
SELECT agentgate.session_id() = split_part(:'mine', '.', 2) AS reset_kept;
RESET ALL;
SELECT current_setting('application_name') LIKE '% ' || :'mine' AS reset_all_kept;
-- (here RESET ALL also turned the stamp check off: this test set it with SET)
RESET SESSION AUTHORIZATION;
SET agentgate.require_session_stamp = on;
SET SESSION AUTHORIZATION :"xavier";
-- DISCARD ALL ends the session authorization too
DISCARD ALL;
SELECT current_setting('application_name') LIKE '% ' || :'mine' AS discard_kept;
SET agentgate.require_session_stamp = on;
SET SESSION AUTHORIZATION :"xavier";

-- a stamp change between transactions is what PgBouncer does: allowed here
SET application_name = :'other';
SELECT agentgate.session_id() = split_part(:'other', '.', 2) AS restamped;
RESET SESSION AUTHORIZATION;

RESET agentgate.require_session_stamp;
RESET application_name;
DROP FUNCTION regress_adopt();
DELETE FROM agentgate.agents;
DROP ROLE :"xavier";
