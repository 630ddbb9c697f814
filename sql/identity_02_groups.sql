--
-- Group claims -> roles: login grants the roles agentgate.group_roles maps
-- the token's groups to, and revokes the managed roles (those listed in
-- group_roles) the token no longer maps to.  Roles not listed there are
-- never touched.  Mappings to roles no agent may hold are refused when
-- they are made, and a mapped role that later gains powers is not granted.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE ROLE regress_readers;
CREATE ROLE regress_writers;
CREATE ROLE regress_unmanaged;
CREATE ROLE regress_later;
CREATE ROLE regress_su SUPERUSER;
CREATE ROLE regress_admins CREATEROLE;
CREATE ROLE regress_wrapper;
GRANT regress_admins TO regress_wrapper;

-- error: mappings to roles no agent may hold
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_su');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_admins');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_wrapper');
INSERT INTO agentgate.group_roles VALUES ('ops', 'agentgate_proxy');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_execute_server_program');
INSERT INTO agentgate.group_roles VALUES ('ops', 'agentgate_agent');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_no_such_role');
INSERT INTO agentgate.group_roles VALUES ('', 'regress_readers');

-- plain roles may be mapped; group names are matched exactly (Auth0-style
-- URLs and Entra ID object ids are just strings)
INSERT INTO agentgate.group_roles VALUES
  ('eng', 'regress_readers'),
  ('eng-leads', 'regress_writers'),
  ('https://example.com/claims/ops', 'regress_writers'),
  ('8d3f1c2a-5b6e-4f70-9a1b-2c3d4e5f6a7b', 'regress_later');
-- error: an UPDATE is checked too
UPDATE agentgate.group_roles SET role_name = 'regress_su' WHERE group_name = 'eng';
-- error: a mapped role cannot become an identity's role
SELECT agentgate.register('judy', 'regress_readers');

CREATE FUNCTION pg_temp.roles_of(r name) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(g.rolname::text, ',' ORDER BY g.rolname), '')
    FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid
   WHERE am.member = r::regrole
$$;

SELECT agentgate.login('ivan', '{"groups": ["eng", "eng-leads", "unmapped"]}') AS ivan \gset
SELECT pg_temp.roles_of(:'ivan');
SELECT groups FROM agentgate.agents WHERE identity = 'ivan';
-- a role a DBA granted directly, not listed in group_roles, is left alone
GRANT regress_unmanaged TO :"ivan";
-- fewer groups: the managed role no group maps to any more is revoked
SELECT agentgate.login('ivan', '{"groups": ["eng"]}') IS NOT NULL AS ok;
SELECT pg_temp.roles_of(:'ivan');
-- another group mapping to the same role keeps it
SELECT agentgate.login('ivan', '{"groups": ["https://example.com/claims/ops"]}') IS NOT NULL AS ok;
SELECT pg_temp.roles_of(:'ivan');
-- a single string counts as one group
SELECT agentgate.login('ivan', '{"groups": "eng-leads"}') IS NOT NULL AS ok;
SELECT pg_temp.roles_of(:'ivan');
-- no groups claim at all: every managed role goes
SELECT agentgate.login('ivan', '{"roles": ["eng"]}') IS NOT NULL AS ok;
SELECT pg_temp.roles_of(:'ivan');
SELECT groups FROM agentgate.agents WHERE identity = 'ivan';

-- a mapped role that gained a power after it was mapped is not granted,
-- and is taken away from agents that have it
SELECT agentgate.login('ivan', '{"groups": ["8d3f1c2a-5b6e-4f70-9a1b-2c3d4e5f6a7b", "eng"]}') IS NOT NULL AS ok;
SELECT pg_temp.roles_of(:'ivan');
ALTER ROLE regress_later CREATEDB;
SELECT agentgate.login('ivan', '{"groups": ["8d3f1c2a-5b6e-4f70-9a1b-2c3d4e5f6a7b", "eng"]}') IS NOT NULL AS ok;
SELECT pg_temp.roles_of(:'ivan');

-- error: the claim name is set in the server configuration only
SET agentgate.groups_claim = 'roles';
SHOW agentgate.groups_claim;

-- clean up
DELETE FROM agentgate.group_roles;
DELETE FROM agentgate.agents;
DROP ROLE :"ivan";
DROP ROLE regress_readers, regress_writers, regress_unmanaged, regress_later,
          regress_su, regress_wrapper, regress_admins;
