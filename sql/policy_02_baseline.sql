--
-- The baseline guardrails installed by CREATE EXTENSION: each one refuses
-- a governed role (member of agentgate_agent, judged by session_user) with
-- 42501, a detail naming the rule and a hint; a DBA may disable each; other
-- roles are untouched.
--
\set VERBOSITY default
CREATE ROLE regress_base_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_base_owner NOLOGIN;
CREATE ROLE regress_base_human LOGIN;
GRANT regress_base_owner TO regress_base_agent;
GRANT CREATE ON SCHEMA public TO regress_base_agent;
CREATE TABLE regress_base_t (id int PRIMARY KEY, v text);
INSERT INTO regress_base_t SELECT g, 'v' || g FROM generate_series(1, 5) g;
ALTER TABLE regress_base_t OWNER TO regress_base_agent;
CREATE TABLE regress_base_group_t (id int);
ALTER TABLE regress_base_group_t OWNER TO regress_base_owner;
CREATE TABLE regress_base_src (id int, v text);
INSERT INTO regress_base_src VALUES (1, 'new1'), (9, 'new9');
GRANT SELECT ON regress_base_src TO regress_base_agent;
-- PostgreSQL's own checks would refuse these first; grant them to show ours
GRANT EXECUTE ON FUNCTION pg_read_file(text), pg_ls_dir(text), lo_import(text)
  TO regress_base_agent;
GRANT SELECT ON agentgate.rules TO regress_base_agent;
-- an agentgate function running as the extension's owner may read its tables
CREATE FUNCTION agentgate.regress_rule_count() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT count(*) FROM agentgate.rules $$;
-- a definer function elsewhere gets no such pass, even owned by the same role
CREATE FUNCTION regress_base_peek_su() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT count(*) FROM agentgate.rules $$;
-- nor does a view
CREATE VIEW regress_base_rules_v AS SELECT count(*) AS n FROM agentgate.rules;
GRANT SELECT ON regress_base_rules_v TO regress_base_agent;
-- nor one owned by someone else
CREATE FUNCTION regress_base_peek() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT count(*) FROM agentgate.rules $$;
GRANT SELECT ON agentgate.rules TO regress_base_human;
ALTER FUNCTION regress_base_peek() OWNER TO regress_base_human;
-- a superuser's definer function does not launder a DELETE without WHERE
CREATE FUNCTION regress_base_wipe() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM public.regress_base_t $$;

SET SESSION AUTHORIZATION regress_base_agent;
SELECT session_user, pg_has_role('agentgate_agent', 'MEMBER') AS governed;

-- DROP, of any object, and TRUNCATE
-- error:
DROP TABLE regress_base_t;
-- error: inside a function body too
DO $$ BEGIN EXECUTE 'DROP TABLE regress_base_t'; END $$;
CREATE VIEW regress_base_v AS SELECT 1 AS one;
-- error:
DROP VIEW regress_base_v;
-- error:
TRUNCATE regress_base_t;

-- UPDATE, DELETE and MERGE without a restricting WHERE
-- error:
DELETE FROM regress_base_t;
-- error: a constant-true WHERE restricts nothing
UPDATE regress_base_t SET v = 'x' WHERE 1 = 1;
-- error:
DELETE FROM regress_base_t WHERE true OR false;
-- error: MERGE whose ON restricts nothing
MERGE INTO regress_base_t t USING regress_base_src s ON true
  WHEN MATCHED THEN UPDATE SET v = s.v;
-- error: a filter on another table only restricts nothing of this one
UPDATE regress_base_t SET v = 'x' FROM regress_base_src s WHERE s.id = 1;
-- error:
MERGE INTO regress_base_t t USING regress_base_src s ON s.id = 1
  WHEN MATCHED THEN UPDATE SET v = s.v;
-- a join on the key restricts
UPDATE regress_base_t t SET v = t.v FROM regress_base_src s WHERE s.id = t.id;
-- a MERGE on a key, and a restricted UPDATE and DELETE, are fine
MERGE INTO regress_base_t t USING regress_base_src s ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET v = s.v
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v);
UPDATE regress_base_t SET v = 'u2' WHERE id = 2;
DELETE FROM regress_base_t WHERE id = 9;
SELECT * FROM regress_base_t ORDER BY id;
-- error: a SECURITY DEFINER function changes nothing (session_user decides)
SELECT regress_base_wipe();

-- ALTER SYSTEM, LOAD, extensions
-- error:
ALTER SYSTEM SET work_mem = '1GB';
-- error:
LOAD 'agentgate';
-- error:
CREATE EXTENSION IF NOT EXISTS pgcrypto;
-- error:
ALTER EXTENSION agentgate UPDATE;

-- server files and programs
-- error:
COPY regress_base_t TO PROGRAM 'cat > /dev/null';
-- error:
COPY regress_base_t TO '/tmp/regress_base_t.out';
-- error:
COPY regress_base_t FROM '/etc/hostname';
-- error:
SELECT pg_read_file('/etc/hostname');
-- error:
SELECT count(*) FROM pg_ls_dir('.');
-- error:
SELECT lo_import('/etc/hostname');
-- COPY to and from the client is fine
COPY (SELECT id FROM regress_base_t WHERE id < 3 ORDER BY id) TO STDOUT;

-- roles and privileges, identity, agentgate settings
-- error:
CREATE ROLE regress_base_new;
-- error:
GRANT SELECT ON regress_base_t TO PUBLIC;
-- error:
REVOKE SELECT ON regress_base_t FROM regress_base_human;
-- error:
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;
-- error:
ALTER ROLE regress_base_agent SET work_mem = '64MB';
-- error:
SET ROLE regress_base_owner;
-- error: set_config() is SET ROLE too
SELECT set_config('role', 'regress_base_owner', false);
-- error: also from inside a DO block
DO $$ BEGIN PERFORM set_config('role', 'regress_base_owner', false); END $$;
SELECT current_user;
-- error: and a function that would SET ROLE at every call
CREATE FUNCTION regress_base_as_owner() RETURNS name LANGUAGE sql
  SET role = regress_base_owner AS 'SELECT current_user';
-- error:
SET SESSION AUTHORIZATION regress_base_human;
-- error:
SET agentgate.default_action = allow;
-- RESET ROLE goes back to the login identity and is always allowed
RESET ROLE;

-- the agentgate schema: no reads or writes except through its functions
-- error:
SELECT count(*) FROM agentgate.rules;
SELECT agentgate.regress_rule_count() > 0 AS through_its_function;
-- error:
SELECT regress_base_peek();
-- error:
SELECT regress_base_peek_su();
-- error:
SELECT n FROM regress_base_rules_v;

-- catalogs that leak values
-- error:
SELECT count(*) FROM pg_stats;
-- error:
SELECT count(*) FROM pg_stats_ext;
-- error:
SELECT count(*) FROM pg_catalog.pg_statistic;

-- untrusted languages, event triggers, rewrite rules
-- error:
CREATE FUNCTION regress_base_c() RETURNS int LANGUAGE c AS 'agentgate', 'nope';
CREATE FUNCTION regress_base_sql() RETURNS int LANGUAGE sql AS 'SELECT 1';
-- error:
CREATE EVENT TRIGGER regress_base_evt ON ddl_command_start EXECUTE FUNCTION pg_catalog.now();
-- error:
CREATE RULE regress_base_rule AS ON INSERT TO regress_base_t DO ALSO NOTHING;

-- ALTER of a relation the agent does not own itself (owned through a group)
-- error:
ALTER TABLE regress_base_group_t ADD COLUMN x int;
ALTER TABLE regress_base_t ADD COLUMN extra int;
-- error: dropping a column is a DROP (the baseline's DROP COLUMN tag)
ALTER TABLE regress_base_t DROP COLUMN extra;
RESET SESSION AUTHORIZATION;

-- a DBA may disable a baseline rule; it holds again when re-enabled
UPDATE agentgate.rules SET enabled = false
 WHERE baseline AND commands = '{TRUNCATE TABLE}';
SET SESSION AUTHORIZATION regress_base_agent;
CREATE TABLE regress_base_scratch (id int);
INSERT INTO regress_base_scratch VALUES (1);
TRUNCATE regress_base_scratch;
RESET SESSION AUTHORIZATION;
UPDATE agentgate.rules SET enabled = true
 WHERE baseline AND commands = '{TRUNCATE TABLE}';
SET SESSION AUTHORIZATION regress_base_agent;
-- error:
TRUNCATE regress_base_scratch;
RESET SESSION AUTHORIZATION;

-- a role that is not governed is untouched
SET SESSION AUTHORIZATION regress_base_human;
SELECT regress_base_peek() > 0 AS human_reads;
RESET SESSION AUTHORIZATION;

-- membership revoked: not governed from the next statement on
REVOKE agentgate_agent FROM regress_base_agent;
SET SESSION AUTHORIZATION regress_base_agent;
TRUNCATE regress_base_scratch;
DROP TABLE regress_base_scratch;
RESET SESSION AUTHORIZATION;

REVOKE EXECUTE ON FUNCTION pg_read_file(text), pg_ls_dir(text), lo_import(text)
  FROM regress_base_agent;
DROP FUNCTION regress_base_sql();
DROP FUNCTION regress_base_wipe();
DROP FUNCTION regress_base_peek();
DROP FUNCTION regress_base_peek_su();
DROP VIEW regress_base_rules_v;
DROP FUNCTION agentgate.regress_rule_count();
DROP VIEW regress_base_v;
DROP TABLE regress_base_t, regress_base_group_t, regress_base_src;
REVOKE ALL ON agentgate.rules FROM regress_base_agent, regress_base_human;
REVOKE CREATE ON SCHEMA public FROM regress_base_agent;
DROP ROLE regress_base_agent;
DROP ROLE regress_base_owner;
DROP ROLE regress_base_human;
