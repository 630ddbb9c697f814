--
-- Delegation: agentgate.session_stamp(role, claims) reads a token's RFC 8693
-- act chain and scope, binds them into the stamp and keeps them for the
-- session id (agentgate.delegated_sessions).  agentgate.revoked_identities
-- reaches the cluster-wide list when its transaction commits (savepoints
-- and rollbacks undo what they undo); a session whose chain holds a
-- revoked identity is refused at its next statement, and so is a new stamp.
--
\set VERBOSITY terse
SELECT agentgate.login('deleg-actor', '{}') AS actor \gset
\i sql/include/wait_revoked_list.sql

-- a token without act or scope gets a plain stamp, kept nowhere
SELECT s.session_id AS psid
  FROM agentgate.session_stamp(:'actor', '{"sub":"deleg-actor","exp":4102444800}') s \gset
SELECT count(*) AS kept FROM agentgate.delegated_sessions WHERE session_id = :'psid';

-- a chain of three and a scope: current actor first, principal last
SELECT s.stamp AS dstamp, s.session_id AS dsid
  FROM agentgate.session_stamp(:'actor',
       '{"sub":"deleg-boss","act":{"sub":"deleg-actor","act":{"sub":"deleg-mid"}},"scope":"read audit","exp":4102444800}') s \gset
SELECT actor, principal, chain, scopes, expires = '2100-01-01 00:00:00+00' AS expires_at_exp
  FROM agentgate.delegated_sessions WHERE session_id = :'dsid';

-- error: malformed claims
SELECT agentgate.session_stamp(:'actor', '{"sub":"x","act":"y","exp":4102444800}');
SELECT agentgate.session_stamp(:'actor', '{"sub":"x","act":{"iss":"y"},"exp":4102444800}');
SELECT agentgate.session_stamp(:'actor', '{"act":{"sub":"y"},"exp":4102444800}');
SELECT agentgate.session_stamp(:'actor', '{"sub":"x","scope":["read"],"exp":4102444800}');
SELECT agentgate.session_stamp(:'actor', '{"sub":"x","act":{"sub":"y"}}');
SELECT agentgate.session_stamp(:'actor', '{"sub":"x","act":{"sub":"x"},"exp":4102444800}');
-- seven actors and the principal are the most
SELECT (agentgate.session_stamp(:'actor', '{"sub":"p","exp":4102444800,"act":{"sub":"a1","act":{"sub":"a2","act":{"sub":"a3","act":{"sub":"a4","act":{"sub":"a5","act":{"sub":"a6","act":{"sub":"a7"}}}}}}}}')).session_id IS NOT NULL AS eight;
SELECT agentgate.session_stamp(:'actor', '{"sub":"p","exp":4102444800,"act":{"sub":"a1","act":{"sub":"a2","act":{"sub":"a3","act":{"sub":"a4","act":{"sub":"a5","act":{"sub":"a6","act":{"sub":"a7","act":{"sub":"a8"}}}}}}}}}');
SELECT agentgate.session_stamp_bound(:'actor', '{a}', NULL, now());
SELECT agentgate.session_stamp_bound(:'actor', '{a,NULL}', NULL, now());
SELECT agentgate.session_stamp_bound(:'actor', '{a,""}', NULL, now());
SELECT agentgate.session_stamp_bound(:'actor', '{a,b}', NULL, NULL);

-- the delegated session
SET agentgate.require_session_stamp = on;
SELECT set_config('application_name', 'psql ' || :'dstamp', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION :"actor";
SELECT agentgate.session_id() = :'dsid' AS delegated_session_id;
RESET SESSION AUTHORIZATION;

-- revoking the middle identity (no agents row); a savepoint's rollback
-- takes back the principal's revocation
BEGIN;
SELECT agentgate.revoke('deleg-mid', 'pipeline retired');
SAVEPOINT s;
SELECT agentgate.revoke('deleg-boss');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT identity, status, reason FROM agentgate.revoked_identities
 WHERE identity LIKE 'deleg-%' ORDER BY identity;
SET SESSION AUTHORIZATION :"actor";
-- error: an identity of the chain is revoked
SELECT 1 AS refused;
RESET SESSION AUTHORIZATION;
-- error: no new stamp for that chain
SELECT agentgate.session_stamp(:'actor',
       '{"sub":"deleg-boss","act":{"sub":"deleg-actor","act":{"sub":"deleg-mid"}},"exp":4102444800}');
SELECT agentgate.resume('deleg-mid');
SET SESSION AUTHORIZATION :"actor";
SELECT 2 AS resumed;
RESET SESSION AUTHORIZATION;

-- a rolled back revocation never acts; TRUNCATE empties the list
BEGIN;
SELECT agentgate.revoke('deleg-boss');
ROLLBACK;
SET SESSION AUTHORIZATION :"actor";
SELECT 3 AS after_rollback;
RESET SESSION AUTHORIZATION;
SELECT agentgate.suspend('deleg-boss');
SET SESSION AUTHORIZATION :"actor";
-- error: the principal is suspended
SELECT 4;
RESET SESSION AUTHORIZATION;
TRUNCATE agentgate.revoked_identities;
SET SESSION AUTHORIZATION :"actor";
SELECT 5 AS after_truncate;
RESET SESSION AUTHORIZATION;

-- error: agents can neither read the chains nor bind one
SET SESSION AUTHORIZATION :"actor";
SELECT * FROM agentgate.delegated_sessions;
SELECT agentgate.session_stamp_bound(:'actor', '{a,b}', NULL, now());
SELECT * FROM agentgate.revoked_identities;
RESET SESSION AUTHORIZATION;

RESET agentgate.require_session_stamp;
RESET application_name;
DELETE FROM agentgate.agents;
DROP ROLE :"actor";
