--
-- The shared pool (extension/pool.c): a backend logged in as agentgate_pool
-- runs nothing until the carrier, CALL agentgate.assume(role, stamp), binds
-- it to an agent identity for the client's turn (until the backend says it
-- is idle: ReadyForQuery 'I'); then it runs as that role, cannot change role
-- and is governed as that role; DISCARD ALL between turns ends the binding.
-- Reached here by SET SESSION AUTHORIZATION; each turn is one message
-- (the carrier, then the statements, joined with \;).  The proxy and
-- PgBouncer are TAP's business: test/t/230_shared_pool.pl.
--
\set VERBOSITY terse
SELECT agentgate.login('pool-a', '{}') AS ra \gset
SELECT agentgate.login('pool-b', '{}') AS rb \gset
SELECT stamp AS sa, session_id AS sida FROM agentgate.session_stamp(:'ra') \gset
SELECT stamp AS sb FROM agentgate.session_stamp(:'rb') \gset
\set turn_a 'CALL agentgate.assume(' :'ra' ', ' :'sa' ')'
\set turn_b 'CALL agentgate.assume(' :'rb' ', ' :'sb' ')'
CREATE TABLE pool_t (id int);
GRANT SELECT ON pool_t TO :"ra";
INSERT INTO pool_t VALUES (1);
CREATE FUNCTION pool_set_role() RETURNS text LANGUAGE sql
    SET role = 'agentgate_pool' AS $$ SELECT current_user::text $$;
GRANT EXECUTE ON FUNCTION pool_set_role() TO PUBLIC;

-- the login role holds nothing and is not an agent
SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'agentgate_pool';
SELECT count(*) AS memberships FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
 WHERE r.rolname = 'agentgate_pool';

-- outside the pool the carrier is refused
:turn_a;

SET SESSION AUTHORIZATION agentgate_pool;
-- unbound: nothing runs, but what PgBouncer sends between turns does
SELECT 1;
SELECT * FROM pool_t;
BEGIN;
SET client_encoding = 'UTF8';
SET application_name = 'pgbouncer re-set';
RESET ALL;
-- bad carriers
CALL agentgate.assume(:'ra', :'sb');
CALL agentgate.assume(:'ra', 'ag1.0000000000000000.0000000000000000');
CALL agentgate.assume('agentgate_pool', :'sa');
CALL agentgate.assume(NULL, :'sa');
DO $$ BEGIN CALL agentgate.assume('x', 'y'); END $$;
SELECT 1;

-- the carrier binds the turn
:turn_a \; SELECT session_user, current_user = :'ra' AS agent, agentgate.session_role() = :'ra' AS governed_as;
-- the turn ended (ReadyForQuery 'I'): nothing runs until the next carrier
SELECT 1;
:turn_a \; SELECT agentgate.session_id() = :'sida' AS own_session;
:turn_a \; SELECT application_name = :'ra' || ' ' || :'sida' AS shows_identity
  FROM pg_stat_activity WHERE pid = pg_backend_pid();
:turn_a \; SELECT * FROM pool_t;
-- the same carrier again is nothing; another identity over it is refused
:turn_a \; :turn_a \; SELECT 'same again' AS ok;
:turn_a \; :turn_b;
:turn_b;
:turn_a \; SELECT current_user = :'ra' AS still_a;
-- no way out of the identity
:turn_a \; SET ROLE agentgate_pool;
:turn_a \; RESET ROLE;
:turn_a \; SELECT set_config('role', 'agentgate_pool', false);
:turn_a \; SELECT pool_set_role();
:turn_a \; SET SESSION AUTHORIZATION agentgate_pool;
:turn_a \; RESET SESSION AUTHORIZATION;
:turn_a \; SET LOCAL role = 'agentgate_pool';
-- nor out of the turn: DISCARD ALL is PgBouncer's, between turns
:turn_a \; DISCARD ALL;
:turn_a \; COMMIT \; DISCARD ALL;
-- a turn may hold several transactions
:turn_a \; COMMIT \; BEGIN \; SELECT current_user = :'ra' AS in_second_xact \; COMMIT;
-- and last through an explicit transaction and its failure
:turn_a \; BEGIN;
SELECT current_user = :'ra' AS in_block;
SELECT 1/0;
ROLLBACK;
SELECT 1;
-- a parallel plan: its workers run functions for the turn's identity too
:turn_a \; SET force_parallel_mode = on \; SET parallel_setup_cost = 0 \; SELECT count(*) AS parallel_rows FROM pool_t WHERE id + 1 > 0 \; RESET ALL;
-- state a turn leaves behind
:turn_a \; CREATE TEMP TABLE pool_tmp (v int) \; PREPARE pool_p AS SELECT 42 \; SELECT pg_advisory_lock(4242);

-- DISCARD ALL between turns ends the binding and the state
DISCARD ALL;
SELECT session_user, current_user;
SET SESSION AUTHORIZATION agentgate_pool;
SELECT 1;
-- the next client's turn
:turn_b \; SELECT current_user = :'rb' AS now_b,
  (SELECT count(*) FROM pg_prepared_statements) AS a_prepared,
  (SELECT count(*) FROM pg_class WHERE relname = 'pool_tmp') AS a_temp,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242) AS a_lock;
:turn_b \; SELECT * FROM pool_t;
-- the carrier's transaction aborts: the binding goes with it
DISCARD ALL;
SET SESSION AUTHORIZATION agentgate_pool;
:turn_a \; SELECT 1/0;
SELECT current_user;
:turn_b \; SELECT current_user = :'rb' AS b_after_a_failed;
-- revocation: refused at the carrier
DISCARD ALL;
SELECT agentgate.revoke('pool-a', 'test');
SET SESSION AUTHORIZATION agentgate_pool;
:turn_a;
SELECT current_user;
RESET SESSION AUTHORIZATION;
DROP FUNCTION pool_set_role();
DROP TABLE pool_t;
