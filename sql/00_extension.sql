--
-- The extension installs into schema agentgate, creates its roles, and
-- exposes nothing of its tables to ordinary roles.
--
\set VERBOSITY terse
CREATE EXTENSION agentgate;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'agentgate';
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('agentgate_agent', 'agentgate_proxy', 'agentgate_pgbouncer')
 ORDER BY 1;
SELECT has_table_privilege('public', 'agentgate.agents', 'SELECT') AS public_reads_agents;
-- error: the agentgate.* prefix is reserved, so no one can invent settings
-- there that a later version would trust
SET agentgate.no_such_setting = 1;
