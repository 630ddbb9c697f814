--
-- Revocation reaches live sessions: once agentgate.revoke() or suspend()
-- commits, every statement of a session logged in as the identity's role
-- is refused (28000), utility statements and statements nested in
-- functions included, though the session stays connected.  ROLLBACK is
-- still allowed, so a session can leave its transaction.  resume() lets
-- the same session go on.  (Backends that really logged in as the role
-- are also terminated; that is tested with real logins elsewhere.)
--
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT agentgate.login('mallory', '{}') AS mallory \gset
CREATE TABLE regress_rev (id int);
GRANT SELECT, INSERT ON regress_rev TO agentgate_agent;
CREATE FUNCTION regress_rev_count() RETURNS bigint LANGUAGE plpgsql
  AS $$ BEGIN RETURN (SELECT count(*) FROM regress_rev); END $$;

SET SESSION AUTHORIZATION :"mallory";
INSERT INTO regress_rev VALUES (1);
SELECT regress_rev_count();
RESET SESSION AUTHORIZATION;

SELECT agentgate.revoke('mallory', 'token leaked in CI logs');
SELECT rolcanlogin FROM pg_roles WHERE rolname = :'mallory';
SET SESSION AUTHORIZATION :"mallory";
-- error: every kind of statement is refused
SELECT 1;
SELECT count(*) FROM regress_rev;
INSERT INTO regress_rev VALUES (2);
COPY regress_rev TO STDOUT;
CREATE TEMP TABLE regress_tmp (x int);
SET search_path = public;
PREPARE p AS SELECT 1;
EXPLAIN SELECT 1;
DO $$ BEGIN PERFORM 1; END $$;
BEGIN;
-- ROLLBACK is allowed (there is no transaction to end here)
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- resume: the same session may go on
SELECT agentgate.resume('mallory');
SET SESSION AUTHORIZATION :"mallory";
SELECT count(*) FROM regress_rev;
-- a revocation in the middle of the agent's transaction stops its next
-- statement in that transaction
BEGIN;
SELECT count(*) FROM regress_rev;
SAVEPOINT s;
RESET SESSION AUTHORIZATION;
SELECT agentgate.suspend('mallory', 'under review');
SET SESSION AUTHORIZATION :"mallory";
-- error: refused
SELECT count(*) FROM regress_rev;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- an agent cannot revoke (or otherwise manage roles) even through a DBA's
-- SECURITY DEFINER function: the baseline refuses ALTER ROLE for a
-- governed session_user, whatever the current user is
SELECT agentgate.resume('mallory');
CREATE FUNCTION regress_revoke_then_count() RETURNS bigint LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ BEGIN
    PERFORM agentgate.revoke('mallory', 'revoked mid-statement');
    RETURN (SELECT count(*) FROM regress_rev);
  END $$;
GRANT EXECUTE ON FUNCTION regress_revoke_then_count() TO agentgate_agent;
SET SESSION AUTHORIZATION :"mallory";
-- error: the nested ALTER ROLE is refused, so nothing is revoked
SELECT regress_revoke_then_count();
RESET SESSION AUTHORIZATION;
SELECT status, status_reason FROM agentgate.agents WHERE identity = 'mallory';
SELECT agentgate.resume('mallory');
DROP FUNCTION regress_revoke_then_count();

-- the check follows the role, whoever changed it
SELECT agentgate.resume('mallory');
ALTER ROLE :"mallory" NOLOGIN;
SET SESSION AUTHORIZATION :"mallory";
-- error: refused
SELECT 1;
RESET SESSION AUTHORIZATION;
ALTER ROLE :"mallory" LOGIN;

-- roles that are not governed are not affected by NOLOGIN
CREATE ROLE regress_human NOLOGIN;
SET SESSION AUTHORIZATION regress_human;
SELECT 1 AS human_ok;
RESET SESSION AUTHORIZATION;

-- revocation in a rolled-back transaction or subtransaction changes nothing
BEGIN;
SELECT agentgate.revoke('mallory');
ROLLBACK;
SELECT rolcanlogin FROM pg_roles WHERE rolname = :'mallory';
BEGIN;
SAVEPOINT a;
SELECT agentgate.revoke('mallory');
ROLLBACK TO a;
COMMIT;
SELECT status, rolcanlogin FROM agentgate.agents JOIN pg_roles ON rolname = role_name
 WHERE identity = 'mallory';
-- the terminating setting is superuser-only and on by default
SHOW agentgate.terminate_revoked_sessions;

DROP FUNCTION regress_rev_count();
DROP TABLE regress_rev;
DELETE FROM agentgate.agents;
DROP ROLE :"mallory";
DROP ROLE regress_human;
