--
-- ALTER TABLE ... DROP COLUMN destroys stored data like a DROP does, and
-- ALTER TYPE ... DROP ATTRIBUTE CASCADE reaches the typed tables of the
-- type: both carry the DROP COLUMN tag, which the DROP baseline refuses,
-- on the agent's own tables too.  Other ALTER TABLE forms stay allowed.
--
\set VERBOSITY terse
CREATE ROLE regress_rt1_agent LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_rt1_agent;
CREATE TABLE regress_rt1_t (id int PRIMARY KEY, v text);
INSERT INTO regress_rt1_t VALUES (1, 'kept');
ALTER TABLE regress_rt1_t OWNER TO regress_rt1_agent;
SELECT 'DROP COLUMN' = ANY (commands) AS drop_rule_has_it
  FROM agentgate.rules WHERE baseline AND 'DROP TABLE' = ANY (commands);
SELECT class FROM agentgate.command_tags() WHERE tag = 'DROP COLUMN';

SET SESSION AUTHORIZATION regress_rt1_agent;
-- error:
ALTER TABLE regress_rt1_t DROP COLUMN v;
-- error: hidden among other subcommands
ALTER TABLE regress_rt1_t ADD COLUMN w int, DROP COLUMN IF EXISTS v;
-- error: a composite type's attribute, cascading to its typed tables
CREATE TYPE regress_rt1_ty AS (a int, b text);
CREATE TABLE regress_rt1_typed OF regress_rt1_ty;
INSERT INTO regress_rt1_typed VALUES (1, 'kept');
ALTER TYPE regress_rt1_ty DROP ATTRIBUTE b CASCADE;
-- error: inside a function
DO $$ BEGIN EXECUTE 'ALTER TABLE regress_rt1_t DROP COLUMN v'; END $$;
-- other ALTER TABLE forms are not drops
ALTER TABLE regress_rt1_t ADD COLUMN w int;
ALTER TABLE regress_rt1_t ALTER COLUMN w SET DEFAULT 0;
SELECT * FROM regress_rt1_t;
SELECT * FROM regress_rt1_typed;
RESET SESSION AUTHORIZATION;

-- a DBA may override it for an agent
SELECT agentgate.allow(commands => '{DROP COLUMN}', applies_to => 'regress_rt1_agent',
                       priority => 2000, reason => 'regress: column drops allowed') AS rule \gset
SET SESSION AUTHORIZATION regress_rt1_agent;
ALTER TABLE regress_rt1_t DROP COLUMN w;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :rule;

DROP TABLE regress_rt1_t, regress_rt1_typed;
DROP TYPE regress_rt1_ty;
REVOKE CREATE ON SCHEMA public FROM regress_rt1_agent;
DROP ROLE regress_rt1_agent;
