--
-- agentgate.login(), register() and the role derivation: the role an
-- identity gets is derived from the exact identity (never from a name the
-- client typed), fits in 63 bytes, and is handed out only when it is a
-- plain governed role.  Refusals are SQLSTATE 28000 with detail and hint.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Derivation: case, punctuation, unicode, quotes and bytes past the 40th
-- all give different roles; every name is at most 63 bytes, in [a-z0-9_],
-- and ends with 16 hex characters of the identity's hash.
CREATE TEMP TABLE ids (n int, identity text);
INSERT INTO ids VALUES
  (1, 'alice'), (2, 'Alice'), (3, 'ALICE'), (4, 'alice.'), (5, 'a.lice'),
  (6, 'alice@example.com'), (7, 'alice_example_com'), (8, 'alice-example-com'),
  (9, 'ålice'), (10, 'ａlice'), (11, '名前'), (12, '名前名'),
  (13, 'Robert''); DROP TABLE students;--'), (14, '"quoted" \ back'),
  (15, repeat('x', 40) || 'A'), (16, repeat('x', 40) || 'B'),
  (17, repeat('y', 63)), (18, repeat('y', 62) || 'z'),
  (19, repeat('é', 31)), (20, '___'), (21, '$1'), (22, '%s %I');
SELECT n, agentgate.role_for_identity(identity) AS role,
       octet_length(agentgate.role_for_identity(identity)) AS len
  FROM ids ORDER BY n;
SELECT count(*) AS identities,
       count(DISTINCT agentgate.role_for_identity(identity)) AS distinct_roles,
       bool_and(octet_length(agentgate.role_for_identity(identity)) <= 63) AS all_fit,
       bool_and(agentgate.role_for_identity(identity) ~ '^agent_([a-z0-9_]*_)?[0-9a-f]{16}$') AS all_plain
  FROM ids;
-- deterministic, and independent of the database's locale
SELECT agentgate.role_for_identity('Alice') = agentgate.role_for_identity('Alice' COLLATE "C") AS stable;

-- login provisions the derived role: LOGIN, no powers, governed
SELECT agentgate.login(identity, '{}') AS role FROM ids WHERE n IN (13, 14, 17) ORDER BY n;
SELECT a.identity, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       r.rolreplication, r.rolbypassrls,
       pg_has_role(r.oid, 'agentgate_agent', 'MEMBER') AS governed,
       shobj_description(r.oid, 'pg_authid') AS comment
  FROM agentgate.agents a JOIN pg_roles r ON r.rolname = a.role_name
 ORDER BY a.identity;
-- a second login returns the same role and counts
SELECT agentgate.login('$1', '{}') = agentgate.login('$1', '{}') AS same_role;
SELECT login_count, provisioned FROM agentgate.agents WHERE identity = '$1';

-- error: identities that can never be valid
SELECT agentgate.login('', '{}');
SELECT agentgate.login(repeat('a', 64), '{}');
SELECT agentgate.login(repeat('é', 32), '{}');
SELECT agentgate.login(E'ali\nce', '{}');
SELECT agentgate.login(NULL, '{}');
-- error: claims that are not a payload
SELECT agentgate.login('alice', '[]');
SELECT agentgate.login('alice', '{"groups": "eng", "exp": "tomorrow"}');
SELECT agentgate.login('alice', '{"groups": [1, 2]}');
SELECT agentgate.login('alice', '{"groups": {"a": 1}}');
SELECT agentgate.login('alice', '{"exp": 1e300}');
-- error: an expired token (beyond the 60 s leeway)
SELECT agentgate.login('alice', '{"exp": 1000000000}');
SELECT count(*) AS alice_rows FROM agentgate.agents WHERE identity = 'alice';
-- within the leeway: accepted, expiry recorded
SELECT agentgate.login('alice', jsonb_build_object('exp', extract(epoch FROM now()) - 30)) IS NOT NULL AS ok;
SELECT agentgate.login('alice', '{"exp": 4102444800, "groups": "solo"}') IS NOT NULL AS ok;
SELECT token_expires, groups, last_login IS NOT NULL AS has_last_login, login_count
  FROM agentgate.agents WHERE identity = 'alice';

-- auto_provision is superuser-only; off: only registered identities
SET agentgate.auto_provision = off;
-- error: unknown identity
SELECT agentgate.login('bob', '{}');
SELECT agentgate.register('bob');
SELECT role_name, provisioned, status FROM agentgate.agents WHERE identity = 'bob';
SELECT agentgate.login('bob', '{}') = agentgate.role_for_identity('bob') AS bob_ok;
-- register with a DBA-chosen existing role: made governed and able to log in
CREATE ROLE regress_carol_role NOLOGIN;
SELECT agentgate.register('carol', 'regress_carol_role');
SELECT rolcanlogin, pg_has_role('regress_carol_role', 'agentgate_agent', 'MEMBER') AS governed
  FROM pg_roles WHERE rolname = 'regress_carol_role';
SELECT agentgate.login('carol', '{}');
-- registering again is harmless; another role for it is refused
SELECT agentgate.register('carol', 'regress_carol_role');
-- error: already registered with another role
SELECT agentgate.register('carol', 'regress_other');
-- error: the role already belongs to another identity
SELECT agentgate.register('dave', 'regress_carol_role');
-- error: a role with powers no agent has
CREATE ROLE regress_powerful CREATEROLE;
SELECT agentgate.register('erin', 'regress_powerful');
CREATE ROLE regress_super SUPERUSER;
CREATE ROLE regress_reaches_super;
GRANT regress_super TO regress_reaches_super;
SELECT agentgate.register('erin', 'regress_reaches_super');
SELECT agentgate.register('erin', 'agentgate_proxy');
SELECT count(*) AS erin_rows FROM agentgate.agents WHERE identity = 'erin';
-- a pre-existing role is re-checked at every login
ALTER ROLE regress_carol_role CREATEDB;
SELECT agentgate.login('carol', '{}');
ALTER ROLE regress_carol_role NOCREATEDB;
GRANT pg_read_server_files TO regress_carol_role;
SELECT agentgate.login('carol', '{}');
REVOKE pg_read_server_files FROM regress_carol_role;
REVOKE agentgate_agent FROM regress_carol_role;
SELECT agentgate.login('carol', '{}');
GRANT agentgate_agent TO regress_carol_role;
ALTER ROLE regress_carol_role NOLOGIN;
SELECT agentgate.login('carol', '{}');
ALTER ROLE regress_carol_role LOGIN;
SELECT agentgate.login('carol', '{}');
-- off: a registered identity whose role was dropped is not re-created
SELECT agentgate.register('frank');
DROP ROLE agent_frank_77646f5a4f316663;
SELECT agentgate.login('frank', '{}');
RESET agentgate.auto_provision;
-- on: it is
SELECT agentgate.login('frank', '{}');

-- a derived name already held by another identity is never shared
INSERT INTO agentgate.agents (identity, role_name)
     VALUES ('squatter', agentgate.role_for_identity('grace'));
SELECT agentgate.login('grace', '{}');
DELETE FROM agentgate.agents WHERE identity = 'squatter';
-- a pre-existing plain governed role with the derived name is adopted;
-- one that is not governed is refused
CREATE ROLE agent_heidi_05a331a7f4f1929f LOGIN;
SELECT agentgate.role_for_identity('heidi');
SELECT agentgate.login('heidi', '{}');

-- status: suspended and revoked identities are refused with the reason
SELECT agentgate.suspend('bob', 'incident 42');
SELECT agentgate.login('bob', '{}');
SELECT rolcanlogin FROM pg_roles WHERE rolname = agentgate.role_for_identity('bob');
SELECT agentgate.resume('bob');
SELECT agentgate.login('bob', '{}') IS NOT NULL AS bob_back;
SELECT agentgate.revoke('bob');
SELECT agentgate.login('bob', '{}');
SELECT status, status_reason, status_changed IS NOT NULL AS changed
  FROM agentgate.agents WHERE identity = 'bob';
-- an identity without an agents row (a principal of delegation chains)
-- goes on the revoked list only; revoking and resuming keep the list
SELECT agentgate.revoke('nobody');
SELECT identity, status FROM agentgate.revoked_identities ORDER BY identity;
SELECT agentgate.resume('nobody');
SELECT identity, status FROM agentgate.revoked_identities ORDER BY identity;
-- error: unknown identity, bad status
SELECT agentgate.resume('nobody');
SELECT agentgate.set_status('bob', 'paused');
-- a DBA's direct UPDATE or DELETE is applied to the role too
SELECT agentgate.resume('bob');
UPDATE agentgate.agents SET status = 'suspended' WHERE identity = 'bob';
SELECT rolcanlogin FROM pg_roles WHERE rolname = agentgate.role_for_identity('bob');
UPDATE agentgate.agents SET status = 'active' WHERE identity = 'bob';
SELECT rolcanlogin FROM pg_roles WHERE rolname = agentgate.role_for_identity('bob');
DELETE FROM agentgate.agents WHERE identity = 'bob';
SELECT rolcanlogin FROM pg_roles WHERE rolname = agentgate.role_for_identity('bob');

-- clean up: every role the agents table names, and the rest
SELECT format('DROP ROLE %I', role_name) FROM agentgate.agents
 WHERE role_name <> 'regress_carol_role' ORDER BY 1 \gexec
DELETE FROM agentgate.agents;
DROP ROLE agent_bob_81b637d8fcd2c6da, agent_heidi_05a331a7f4f1929f;
DROP ROLE regress_carol_role, regress_powerful, regress_reaches_super, regress_super;
DROP TABLE ids;
