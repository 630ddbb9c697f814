--
-- What an agent may reach.  A group mapping, a registered role and an
-- agent's own role are refused when the role reaches, through any chain of
-- memberships, a predefined role (pg_monitor, pg_read_all_settings, ...,
-- pg_database_owner), an agentgate role other than agentgate_agent, another
-- agent's role, or a role with SUPERUSER, CREATEROLE, CREATEDB,
-- REPLICATION or BYPASSRLS.  The same test runs on session_user at every
-- statement of a governed session: a DBA's GRANT made after the agent
-- logged in stops its next statement.  The session key is unreadable from
-- SQL, whatever role asks.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT agentgate.login('ursula', '{}') AS ursula \gset
SELECT agentgate.login('victor', '{}') AS victor \gset

-- error: predefined and agentgate roles, mapped directly
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_monitor');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_read_all_settings');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_read_all_stats');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_read_all_data');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_write_all_data');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_checkpoint');
INSERT INTO agentgate.group_roles VALUES ('ops', 'pg_database_owner');
INSERT INTO agentgate.group_roles VALUES ('ops', 'agentgate_auditor');
INSERT INTO agentgate.group_roles VALUES ('ops', 'agentgate_pgbouncer');
-- error: another agent's role
INSERT INTO agentgate.group_roles VALUES ('ops', :'victor');

-- error: the same, reached through plain roles
CREATE ROLE regress_reach_mon;
GRANT pg_monitor TO regress_reach_mon;
CREATE ROLE regress_reach_settings;
GRANT pg_read_all_settings TO regress_reach_settings;
CREATE ROLE regress_reach_stats;
GRANT pg_read_all_stats TO regress_reach_stats;
CREATE ROLE regress_reach_rdata;
GRANT pg_read_all_data TO regress_reach_rdata;
CREATE ROLE regress_reach_wdata;
GRANT pg_write_all_data TO regress_reach_wdata;
CREATE ROLE regress_reach_ckpt;
GRANT pg_checkpoint TO regress_reach_ckpt;
CREATE ROLE regress_reach_auditor;
GRANT agentgate_auditor TO regress_reach_auditor;
CREATE ROLE regress_reach_victor;
GRANT :"victor" TO regress_reach_victor;
CREATE ROLE regress_reach_outer;
CREATE ROLE regress_reach_inner;
GRANT regress_reach_inner TO regress_reach_outer;
GRANT regress_reach_mon TO regress_reach_inner;
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_mon');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_settings');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_stats');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_rdata');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_wdata');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_ckpt');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_auditor');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_victor');
INSERT INTO agentgate.group_roles VALUES ('ops', 'regress_reach_outer');
-- error: nor may such a role become an identity's role
SELECT agentgate.register('wendy', 'regress_reach_outer');
SELECT count(*) AS no_mappings FROM agentgate.group_roles;

-- a plain role may be mapped, and is granted at login
CREATE ROLE regress_reach_plain;
CREATE TABLE regress_reach_t (id int);
GRANT SELECT ON regress_reach_t TO regress_reach_plain;
INSERT INTO agentgate.group_roles VALUES ('readers', 'regress_reach_plain');
SELECT agentgate.login('ursula', '{"groups": ["readers"]}') IS NOT NULL AS logged_in;
SET SESSION AUTHORIZATION :"ursula";
SELECT count(*) AS readable FROM regress_reach_t;
RESET SESSION AUTHORIZATION;

-- a DBA's later grant to the mapped role stops the agent's next statement
GRANT pg_monitor TO regress_reach_plain;
SET SESSION AUTHORIZATION :"ursula";
-- error: reaches pg_monitor
SELECT count(*) FROM regress_reach_t;
SHOW agentgate.session_key;
SELECT current_setting('agentgate.session_key');
SET application_name = 'x';
-- ROLLBACK still works
ROLLBACK;
RESET SESSION AUTHORIZATION;
-- and login() no longer grants it (and takes it away)
SELECT agentgate.login('ursula', '{"groups": ["readers"]}') IS NOT NULL AS logged_in;
SELECT pg_has_role(:'ursula', 'regress_reach_plain', 'MEMBER') AS still_member;
SET SESSION AUTHORIZATION :"ursula";
SELECT 1 AS runs_again;
RESET SESSION AUTHORIZATION;
-- once the DBA takes the grant back, the next login maps the group again
REVOKE pg_monitor FROM regress_reach_plain;
SELECT agentgate.login('ursula', '{"groups": ["readers"]}') IS NOT NULL AS logged_in;
SET SESSION AUTHORIZATION :"ursula";
SELECT count(*) AS readable_again FROM regress_reach_t;
RESET SESSION AUTHORIZATION;

-- the same inside an open transaction, and for direct grants
SET SESSION AUTHORIZATION :"ursula";
BEGIN;
SELECT 1 AS before_grant;
RESET SESSION AUTHORIZATION;
GRANT agentgate_auditor TO :"ursula";
SET SESSION AUTHORIZATION :"ursula";
-- error: reaches agentgate_auditor
SELECT 1;
ROLLBACK;
RESET SESSION AUTHORIZATION;
REVOKE agentgate_auditor FROM :"ursula";
GRANT :"victor" TO :"ursula";
SET SESSION AUTHORIZATION :"ursula";
-- error: reaches another agent's role
SELECT 1;
RESET SESSION AUTHORIZATION;
REVOKE :"victor" FROM :"ursula";
CREATE ROLE regress_reach_chain;
GRANT regress_reach_chain TO :"ursula";
GRANT pg_read_all_settings TO regress_reach_chain;
SET SESSION AUTHORIZATION :"ursula";
-- error: reaches pg_read_all_settings through a role a DBA granted by hand
SELECT 1;
RESET SESSION AUTHORIZATION;
REVOKE pg_read_all_settings FROM regress_reach_chain;
SET SESSION AUTHORIZATION :"ursula";
SELECT 1 AS clean_again;
RESET SESSION AUTHORIZATION;

-- the function says why, for DBAs
SELECT r AS role, agentgate.role_unsafe_reason(r::regrole) AS why
  FROM unnest(ARRAY['regress_reach_plain', 'regress_reach_outer', 'pg_database_owner',
                    'agentgate_agent', 'agentgate_proxy']) AS r;
SELECT agentgate.role_unsafe_reason(:'ursula'::regrole) AS as_mapping,
       agentgate.role_unsafe_reason(:'ursula'::regrole, :'ursula'::regrole) AS as_itself;

-- the session key: a mask, for every role, whatever it was granted
SHOW agentgate.session_key;
SELECT current_setting('agentgate.session_key') AS current_setting;
-- (GUC_NO_SHOW_ALL keeps it out of pg_settings and SHOW ALL altogether)
SELECT count(*) AS listed FROM pg_settings WHERE name = 'agentgate.session_key';
CREATE ROLE regress_reach_reader;
GRANT pg_read_all_settings TO regress_reach_reader;
SET SESSION AUTHORIZATION regress_reach_reader;
SHOW agentgate.session_key;
SELECT count(*) AS listed FROM pg_settings WHERE name = 'agentgate.session_key';
RESET SESSION AUTHORIZATION;
-- stamps still verify with the hidden key
SELECT (agentgate.session_stamp(:'ursula')).stamp AS stamp \gset
SELECT set_config('application_name', :'stamp', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION :"ursula";
SELECT agentgate.session_id() = split_part(:'stamp', '.', 2) AS verifies;
RESET SESSION AUTHORIZATION;
RESET application_name;

-- parallel safety of agentgate's functions
SELECT p.proname, p.proparallel
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'agentgate'
   AND p.proname IN ('check_identity', 'role_for_identity', 'session_id',
                     'session_stamp', 'role_unsafe_reason', 'terminate_at_commit')
 ORDER BY 1;

DELETE FROM agentgate.group_roles;
DELETE FROM agentgate.agents;
DROP TABLE regress_reach_t;
DROP ROLE :"ursula", :"victor", regress_reach_mon, regress_reach_settings,
  regress_reach_stats, regress_reach_rdata, regress_reach_wdata, regress_reach_ckpt,
  regress_reach_auditor, regress_reach_victor, regress_reach_outer, regress_reach_inner,
  regress_reach_plain, regress_reach_chain, regress_reach_reader;
