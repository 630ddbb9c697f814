--
-- The shared pool (extension/pool.c): a backend logged in as agentgate_pool
-- runs nothing until the carrier, CALL agentgate.assume(role, stamp), binds
-- it to an agent identity; then it runs as that role, cannot change role,
-- is governed as that role, and DISCARD ALL ends the turn.  Reached here by
-- SET SESSION AUTHORIZATION (the proxy and PgBouncer are TAP's business:
-- test/t/230_shared_pool.pl).
--
\set VERBOSITY terse
SELECT agentgate.login('pool-a', '{}') AS ra \gset
SELECT agentgate.login('pool-b', '{}') AS rb \gset
SELECT stamp AS sa, session_id AS sida FROM agentgate.session_stamp(:'ra') \gset
SELECT stamp AS sb FROM agentgate.session_stamp(:'rb') \gset
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
CALL agentgate.assume(:'ra', :'sa');

SET SESSION AUTHORIZATION agentgate_pool;
-- unbound: nothing runs, but what PgBouncer sends between turns does
SELECT 1;
SELECT * FROM pool_t;
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
CALL agentgate.assume(:'ra', :'sa');
SELECT session_user, current_user = :'ra' AS agent, agentgate.session_role() = :'ra' AS governed_as;
SELECT agentgate.session_id() = :'sida' AS own_session;
SELECT application_name = :'ra' || ' ' || :'sida' AS shows_identity
  FROM pg_stat_activity WHERE pid = pg_backend_pid();
SELECT * FROM pool_t;
-- the same carrier again is nothing; another identity over it is refused
CALL agentgate.assume(:'ra', :'sa');
CALL agentgate.assume(:'rb', :'sb');
SELECT current_user = :'ra' AS still_a;
-- no way out of the identity
SET ROLE agentgate_pool;
RESET ROLE;
SET ROLE NONE;
SELECT set_config('role', 'agentgate_pool', false);
SELECT pool_set_role();
SET SESSION AUTHORIZATION agentgate_pool;
RESET SESSION AUTHORIZATION;
BEGIN;
SET LOCAL role = 'agentgate_pool';
ROLLBACK;
SELECT current_user = :'ra' AS still_a;
-- several transactions in one message keep the identity
COMMIT; BEGIN; SELECT current_user = :'ra' AS in_second_xact; COMMIT;
-- an aborted transaction keeps it too
BEGIN;
SELECT 1/0;
ROLLBACK;
SELECT current_user = :'ra' AS after_abort;
-- state of the turn
CREATE TEMP TABLE pool_tmp (v int);
PREPARE pool_p AS SELECT 42;
SELECT pg_advisory_lock(4242);

-- DISCARD ALL ends the turn: the state goes, the identity goes
DISCARD ALL;
SELECT session_user, current_user;
SET SESSION AUTHORIZATION agentgate_pool;
SELECT 1;
-- the next client's turn
CALL agentgate.assume(:'rb', :'sb');
SELECT current_user = :'rb' AS now_b;
SELECT count(*) AS a_prepared FROM pg_prepared_statements;
SELECT count(*) AS a_temp FROM pg_class WHERE relname = 'pool_tmp';
SELECT count(*) AS a_lock FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242;
SELECT * FROM pool_t;
-- the carrier's transaction aborts: the binding goes with it
DISCARD ALL;
SET SESSION AUTHORIZATION agentgate_pool;
-- (one message, one transaction: the carrier, then a failure)
CALL agentgate.assume(:'ra', :'sa') \; SELECT 1/0;
SELECT current_user;
SELECT 1;
-- a transaction control statement is no way in either
BEGIN;
-- revocation: refused at the next statement
CALL agentgate.assume(:'ra', :'sa');
DISCARD ALL;
RESET SESSION AUTHORIZATION;
SELECT agentgate.revoke('pool-a', 'test');
SET SESSION AUTHORIZATION agentgate_pool;
CALL agentgate.assume(:'ra', :'sa');
SELECT current_user;
RESET SESSION AUTHORIZATION;
DROP FUNCTION pool_set_role();
DROP TABLE pool_t;
