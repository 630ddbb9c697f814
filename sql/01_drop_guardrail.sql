--
-- The first guardrail: governed roles (members of agentgate_agent, judged
-- by session_user) may not DROP TABLE; other roles are untouched.
--
\set VERBOSITY default
CREATE ROLE regress_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_human LOGIN;
CREATE TABLE regress_t1 (id int);
CREATE TABLE regress_t2 (id int);
ALTER TABLE regress_t1 OWNER TO regress_agent;
ALTER TABLE regress_t2 OWNER TO regress_human;

SET SESSION AUTHORIZATION regress_agent;
SELECT session_user, pg_has_role('agentgate_agent', 'MEMBER') AS governed;
-- error: refused with 42501, detail and hint, though the agent owns it
DROP TABLE regress_t1;
-- error: inside a function body too
DO $$ BEGIN EXECUTE 'DROP TABLE regress_t1'; END $$;
-- SET ROLE does not change session_user
RESET SESSION AUTHORIZATION;
GRANT regress_human TO regress_agent;
SET SESSION AUTHORIZATION regress_agent;
SET ROLE regress_human;
-- error: still governed
DROP TABLE regress_t2;
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- a non-agent role is untouched
SET SESSION AUTHORIZATION regress_human;
DROP TABLE regress_t2;
RESET SESSION AUTHORIZATION;

-- membership revoked: no longer governed on the next statement
REVOKE agentgate_agent FROM regress_agent;
SET SESSION AUTHORIZATION regress_agent;
DROP TABLE regress_t1;
RESET SESSION AUTHORIZATION;

DROP ROLE regress_agent;
DROP ROLE regress_human;
