--
-- The read-only identity recipe of docs/clients.md: a client's read-only
-- transaction (the MCP server's BEGIN READ ONLY) is the client's choice and
-- an agent ends it with COMMIT; a block rule on WRITE and DDL for the
-- identity's role (or a group role it is a member of) is not.
--
\set VERBOSITY default
CREATE ROLE regress_ro_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_ro_group NOLOGIN;
CREATE ROLE regress_ro_member LOGIN IN ROLE agentgate_agent, regress_ro_group;
CREATE TABLE regress_ro_t (id int PRIMARY KEY, v text);
INSERT INTO regress_ro_t SELECT g, 'v' || g FROM generate_series(1, 5) g;
GRANT SELECT, INSERT, UPDATE, DELETE ON regress_ro_t TO agentgate_agent;
GRANT CREATE ON SCHEMA public TO agentgate_agent;
-- rule ids of the tests that run later stay as they were (restored at the end)
SELECT last_value AS rules_seq FROM agentgate.rules_id_seq \gset

-- without a rule: the escape works (a DELETE with a WHERE clause is allowed)
SET SESSION AUTHORIZATION regress_ro_agent;
BEGIN READ ONLY;
COMMIT;
DELETE FROM regress_ro_t WHERE id > 4;
RESET SESSION AUTHORIZATION;

SELECT agentgate.block(commands => '{WRITE,DDL}', applies_to => 'regress_ro_agent',
                       reason => 'regress: read-only identity') > 0 AS per_identity;
SELECT agentgate.block(commands => '{WRITE,DDL}', applies_to => 'regress_ro_group',
                       reason => 'regress: read-only group') > 0 AS per_group;

SET SESSION AUTHORIZATION regress_ro_agent;
\set ON_ERROR_ROLLBACK on
BEGIN;
-- error: the same escape
COMMIT; DELETE FROM regress_ro_t WHERE id > 0;
BEGIN;
-- error:
INSERT INTO regress_ro_t VALUES (10, 'x');
-- error:
UPDATE regress_ro_t SET v = 'y' WHERE id = 1;
-- error: a write inside a function
DO $$ BEGIN DELETE FROM regress_ro_t WHERE id = 1; END $$;
-- error: DDL
CREATE TABLE regress_ro_new (id int);
-- error:
CREATE TEMP TABLE regress_ro_tmp (id int);
-- reads work
SELECT count(*) FROM regress_ro_t;
ROLLBACK;
\set ON_ERROR_ROLLBACK off
RESET SESSION AUTHORIZATION;

-- a member of the group role is read-only too
SET SESSION AUTHORIZATION regress_ro_member;
-- error:
DELETE FROM regress_ro_t WHERE id = 1;
SELECT count(*) FROM regress_ro_t;
RESET SESSION AUTHORIZATION;

-- other agents are not affected
SELECT statement, decision FROM agentgate.explain('regress_ro_agent', 'DELETE FROM regress_ro_t WHERE id = 1');
CREATE ROLE regress_ro_other LOGIN IN ROLE agentgate_agent;
SELECT statement, decision FROM agentgate.explain('regress_ro_other', 'DELETE FROM regress_ro_t WHERE id = 1');

DELETE FROM agentgate.rules WHERE reason IN ('regress: read-only identity', 'regress: read-only group');
SELECT setval('agentgate.rules_id_seq', :rules_seq) > 0 AS restored;
REVOKE CREATE ON SCHEMA public FROM agentgate_agent;
DROP TABLE regress_ro_t;
DROP ROLE regress_ro_agent, regress_ro_member, regress_ro_other, regress_ro_group;
