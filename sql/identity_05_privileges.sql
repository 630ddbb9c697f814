--
-- Privilege hygiene: agents (and ordinary roles) can call none of the
-- identity functions that change or reveal identities, and read none of
-- the identity tables.  A member of agentgate_proxy may call login() and
-- session_stamp() only; agentgate_pgbouncer may call pgbouncer_auth() only.
--
\set VERBOSITY terse
SELECT agentgate.login('oscar', '{}') AS oscar \gset
CREATE ROLE regress_proxy LOGIN IN ROLE agentgate_proxy;
CREATE ROLE regress_plain LOGIN;

SET SESSION AUTHORIZATION :"oscar";
-- error: each of these is refused to an agent
SELECT agentgate.login('oscar', '{}');
SELECT agentgate.register('oscar2');
SELECT agentgate.session_stamp(session_user);
SELECT agentgate.set_status('oscar', 'active');
SELECT agentgate.revoke('oscar');
SELECT agentgate.suspend('oscar');
SELECT agentgate.resume('oscar');
SELECT * FROM agentgate.pgbouncer_auth(session_user);
SELECT agentgate.terminate_at_commit(0);
SELECT agentgate.role_unsafe_reason(0);
SELECT * FROM agentgate.agents;
SELECT * FROM agentgate.group_roles;
INSERT INTO agentgate.group_roles VALUES ('x', 'agentgate_agent');
UPDATE agentgate.agents SET status = 'active';
-- allowed: its own session id, and the derivation (a pure function)
SELECT agentgate.session_id() IS NULL AS no_stamp;
SELECT agentgate.role_for_identity('oscar') = session_user AS own_role;
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_plain;
-- error: the same for a role that is not an agent
SELECT agentgate.login('oscar', '{}');
SELECT agentgate.revoke('oscar');
SELECT * FROM agentgate.agents;
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_proxy;
-- the proxy's call, exactly as it makes it
SELECT r::text = :'oscar' AS role_ok,
       s.stamp ~ '^ag1\.[0-9a-f]{16}\.[0-9a-f]{16}$' AS stamp_ok,
       s.session_id ~ '^[0-9a-f]{16}$' AS session_id_ok
  FROM agentgate.login('oscar', '{}'::jsonb) AS r, agentgate.session_stamp(r) AS s;
-- error: nothing else
SELECT agentgate.revoke('oscar');
SELECT agentgate.register('oscar2');
SELECT * FROM agentgate.agents;
SELECT * FROM agentgate.pgbouncer_auth('x');
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION agentgate_pgbouncer;
-- PgBouncer's lookup answers for login agent roles only
SELECT usename = :'oscar' AS found, passwd IS NULL AS no_password
  FROM agentgate.pgbouncer_auth(:'oscar');
SELECT count(*) AS not_an_agent FROM agentgate.pgbouncer_auth('regress_plain');
SELECT count(*) AS not_a_role FROM agentgate.pgbouncer_auth('regress_nobody');
-- error: nothing else
SELECT agentgate.login('oscar', '{}');
RESET SESSION AUTHORIZATION;
SELECT agentgate.suspend('oscar');
SET SESSION AUTHORIZATION agentgate_pgbouncer;
SELECT count(*) AS suspended_not_found FROM agentgate.pgbouncer_auth(:'oscar');
RESET SESSION AUTHORIZATION;

-- the identity settings are superuser-only
SET SESSION AUTHORIZATION regress_plain;
SHOW agentgate.session_key;
SHOW agentgate.auto_provision;
SET agentgate.auto_provision = off;
SET agentgate.terminate_revoked_sessions = off;
RESET SESSION AUTHORIZATION;

DELETE FROM agentgate.agents;
DROP ROLE :"oscar", regress_proxy, regress_plain;
