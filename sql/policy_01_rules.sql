--
-- The rules model: agentgate.rules is validated on insert and update,
-- helpers insert readable rules, changes take effect on the next
-- statement, agentgate.explain() decides without running anything, and
-- agents cannot touch the policy or its settings.
--
\set VERBOSITY default
CREATE ROLE regress_pol_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_pol_dba LOGIN;
CREATE TABLE regress_pol_t (id int PRIMARY KEY, v text, secret text);
INSERT INTO regress_pol_t SELECT g, 'v' || g, 's' || g FROM generate_series(1, 5) g;
GRANT ALL ON regress_pol_t TO regress_pol_agent;

-- the classes and a few tags every rule may name
SELECT class, count(*) > 0 AS has_tags FROM agentgate.command_tags() GROUP BY class ORDER BY class;
SELECT tag, class, decided FROM agentgate.command_tags()
 WHERE tag IN ('SELECT', 'DELETE', 'TRUNCATE TABLE', 'DROP TABLE', 'ALTER SYSTEM', 'COMMIT',
               'FUNCTION CALL', 'COPY PROGRAM', 'SET ROLE', 'GRANT', 'CALL')
 ORDER BY tag;

-- the baseline is installed, each rule can be listed and disabled
SELECT count(*) >= 15 AS has_baseline FROM agentgate.rules WHERE baseline;

-- error: unknown command tag
INSERT INTO agentgate.rules (commands, action) VALUES ('{DELET}', 'block');
-- error: an approve rule's mode is retry or wait (docs/approvals.md)
INSERT INTO agentgate.rules (commands, action, approval_mode) VALUES ('{DELETE}', 'approve', 'later');
-- error: unknown action
INSERT INTO agentgate.rules (commands, action) VALUES ('{DELETE}', 'deny');
-- error: bad regclass (the type input refuses it)
INSERT INTO agentgate.rules (relation, action) VALUES ('regress_no_such_table', 'block');
-- error: a dangling relation OID
INSERT INTO agentgate.rules (relation, action) VALUES (4294967000::oid::regclass, 'block');
-- error: columns without a relation, and a column that does not exist
INSERT INTO agentgate.rules (columns, action) VALUES ('{secret}', 'block');
INSERT INTO agentgate.rules (relation, columns, action) VALUES ('regress_pol_t', '{nope}', 'block');
-- error: relation and schema together
INSERT INTO agentgate.rules (relation, schema, action) VALUES ('regress_pol_t', 'public', 'block');
-- error: unknown condition, and no_where on a command it cannot apply to
INSERT INTO agentgate.rules (commands, condition, action) VALUES ('{DELETE}', 'no_limit', 'block');
INSERT INTO agentgate.rules (commands, condition, action) VALUES ('{SELECT}', 'no_where', 'block');
-- error: negative max_rows, malformed fingerprint, empty commands
INSERT INTO agentgate.rules (commands, max_rows, action) VALUES ('{DELETE}', -1, 'block');
INSERT INTO agentgate.rules (fingerprint, action) VALUES ('xyz', 'block');
INSERT INTO agentgate.rules (commands, action) VALUES ('{}', 'block');
-- error: updates are validated too
UPDATE agentgate.rules SET commands = '{NOPE}' WHERE id = (SELECT min(id) FROM agentgate.rules);

-- commands are stored canonical: upper case, single spaces, TRUNCATE alias
SELECT agentgate.block(commands => ARRAY['delete', 'drop   table', 'truncate', 'write'],
                       relation => 'regress_pol_t', reason => 'regress') AS rid \gset
SELECT commands, action, priority, applies_to, baseline FROM agentgate.rules WHERE id = :rid;
DELETE FROM agentgate.rules WHERE id = :rid;

-- fingerprints are stored lower-case
SELECT agentgate.block(fingerprint => upper(agentgate.fingerprint('DELETE FROM regress_pol_t WHERE id = 1')),
                       reason => 'regress') AS rid \gset
SELECT fingerprint = agentgate.fingerprint('delete from regress_pol_t where id = 42') AS same_fingerprint
  FROM agentgate.rules WHERE id = :rid;
DELETE FROM agentgate.rules WHERE id = :rid;

-- a change takes effect on the very next statement of the session
SET SESSION AUTHORIZATION regress_pol_agent;
SELECT count(*) FROM regress_pol_t;
RESET SESSION AUTHORIZATION;
SELECT agentgate.block(commands => '{SELECT}', relation => 'regress_pol_t',
                       reason => 'regress: table closed') AS rid \gset
SET SESSION AUTHORIZATION regress_pol_agent;
-- error: blocked at once
SELECT count(*) FROM regress_pol_t;
RESET SESSION AUTHORIZATION;
UPDATE agentgate.rules SET enabled = false WHERE id = :rid;
SET SESSION AUTHORIZATION regress_pol_agent;
SELECT count(*) FROM regress_pol_t;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :rid;

-- priority: the highest wins; on a tie block beats allow
SELECT agentgate.block(commands => '{SELECT}', relation => 'regress_pol_t', priority => 10,
                       reason => 'regress: low block') AS b1 \gset
SELECT agentgate.allow(commands => '{SELECT}', relation => 'regress_pol_t', priority => 20,
                       reason => 'regress: high allow') AS a1 \gset
SET SESSION AUTHORIZATION regress_pol_agent;
SELECT count(*) FROM regress_pol_t;
RESET SESSION AUTHORIZATION;
UPDATE agentgate.rules SET priority = 20 WHERE id = :b1;
SET SESSION AUTHORIZATION regress_pol_agent;
-- error: tie, block wins
SELECT count(*) FROM regress_pol_t;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id IN (:b1, :a1);

-- applies_to: a rule for a group role applies to its members only
CREATE ROLE regress_pol_group NOLOGIN;
SELECT agentgate.block(commands => '{INSERT}', applies_to => 'regress_pol_group',
                       reason => 'regress: group may not insert') AS rid \gset
SET SESSION AUTHORIZATION regress_pol_agent;
INSERT INTO regress_pol_t VALUES (6, 'v6', 's6');
RESET SESSION AUTHORIZATION;
GRANT regress_pol_group TO regress_pol_agent;
SET SESSION AUTHORIZATION regress_pol_agent;
-- error: now a member
INSERT INTO regress_pol_t VALUES (7, 'v7', 's7');
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :rid;

-- explain: per statement, without running anything
SELECT agentgate.block(commands => '{SELECT}', relation => 'regress_pol_t', columns => '{secret}',
                       reason => 'regress: secrets') AS rid \gset
SELECT * FROM agentgate.explain('regress_pol_agent',
  'SELECT v FROM regress_pol_t WHERE id = 1; SELECT secret FROM regress_pol_t;
   DELETE FROM regress_pol_t; DELETE FROM regress_pol_t WHERE id = 1;
   DROP TABLE regress_pol_t; BEGIN; SELECT pg_read_file(''x''); COMMIT');
SELECT count(*) AS still_there FROM regress_pol_t;
-- a statement that cannot be analysed yet is reported, the others decided
SELECT statement, command, decision, reason FROM agentgate.explain('regress_pol_agent',
  'CREATE TABLE regress_pol_new (id int); INSERT INTO regress_pol_new VALUES (1); TRUNCATE regress_pol_t');
SELECT to_regclass('regress_pol_new') AS not_created;
-- a role that is not governed
SELECT statement, decision, reason FROM agentgate.explain('regress_pol_dba', 'DROP TABLE regress_pol_t');
DELETE FROM agentgate.rules WHERE id = :rid;
-- error: agents may not call it (nor read the rules)
SET SESSION AUTHORIZATION regress_pol_agent;
SELECT * FROM agentgate.explain('regress_pol_agent', 'SELECT 1');
SELECT count(*) FROM agentgate.rules;
-- error: nor change them
INSERT INTO agentgate.rules (action) VALUES ('allow');
RESET SESSION AUTHORIZATION;

-- settings: superuser-only, and refused to agents even when granted
SHOW agentgate.mode;
SHOW agentgate.default_action;
GRANT SET ON PARAMETER agentgate.mode TO regress_pol_agent;
SET SESSION AUTHORIZATION regress_pol_agent;
-- error: the SET statement (baseline rule)
SET agentgate.mode = monitor;
-- error: set_config() reaches the setting's own check
SELECT set_config('agentgate.mode', 'monitor', false);
-- error: without the grant, PostgreSQL refuses first
SELECT set_config('agentgate.default_action', 'allow', false);
-- RESET ALL and DISCARD ALL do not touch agentgate settings
RESET ALL;
DISCARD ALL;
SHOW agentgate.mode;
RESET SESSION AUTHORIZATION;
REVOKE SET ON PARAMETER agentgate.mode FROM regress_pol_agent;
SET agentgate.mode = monitor;
SET SESSION AUTHORIZATION regress_pol_agent;
RESET ALL;
DISCARD ALL;
SHOW agentgate.mode;
RESET SESSION AUTHORIZATION;
RESET agentgate.mode;

-- fail closed: when the policy cannot be read, agents' statements are refused
ALTER TABLE agentgate.rules RENAME COLUMN reason TO why;
SET SESSION AUTHORIZATION regress_pol_agent;
-- error:
SELECT 1;
RESET SESSION AUTHORIZATION;
ALTER TABLE agentgate.rules RENAME COLUMN why TO reason;
SET SESSION AUTHORIZATION regress_pol_agent;
SELECT 1 AS back;
RESET SESSION AUTHORIZATION;

DROP TABLE regress_pol_t;
DROP ROLE regress_pol_group;
DROP ROLE regress_pol_agent;
DROP ROLE regress_pol_dba;
