--
-- Code an agent wrote never runs outside that agent's own sessions.
--
-- An agent could otherwise get its functions run by someone else, with
-- someone else's privileges and ungoverned: an index or statistics
-- expression, a CHECK, a DEFAULT, a generated column, a domain check, a
-- trigger, a row security policy, an operator, or a function in public that
-- shadows one a DBA calls unqualified (CVE-2018-1058); the body can be
-- replaced after it was attached, and the object given away.  A function
-- owned by a governed role is refused unless session_user and current_user
-- are that role; in ungoverned sessions, reading an agent's view, writing
-- an agent's table and using an agent's table with row security are
-- refused too.  regress_rt10_evidence records every run of the agent's code.
--
\set VERBOSITY terse
CREATE ROLE regress_rt10_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_rt10_other LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_rt10_group NOLOGIN;
GRANT regress_rt10_group TO regress_rt10_agent;
GRANT CREATE ON SCHEMA public TO regress_rt10_agent, regress_rt10_group;
CREATE TABLE regress_rt10_evidence (who name, sess name, what text);
GRANT INSERT, SELECT ON regress_rt10_evidence TO PUBLIC;

SET SESSION AUTHORIZATION regress_rt10_agent;
-- the payload: records who ran it (a DBA's run would be the escalation)
CREATE FUNCTION regress_rt10_payload(what text) RETURNS boolean LANGUAGE plpgsql
AS $$ BEGIN
  INSERT INTO regress_rt10_evidence VALUES (current_user, session_user, what);
  RETURN true;
END $$;
CREATE FUNCTION regress_rt10_idx(int) RETURNS int LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN PERFORM regress_rt10_payload('index'); RETURN $1; END $$;
CREATE FUNCTION regress_rt10_trg() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN PERFORM regress_rt10_payload('trigger'); RETURN NEW; END $$;
CREATE TABLE regress_rt10_own (id int, v text DEFAULT 'x');
CREATE INDEX regress_rt10_own_idx ON regress_rt10_own (regress_rt10_idx(id));
CREATE STATISTICS regress_rt10_own_st ON (regress_rt10_idx(id)) FROM regress_rt10_own;
CREATE TRIGGER regress_rt10_own_trg BEFORE INSERT ON regress_rt10_own
  FOR EACH ROW EXECUTE FUNCTION regress_rt10_trg();
-- in its own session all of it runs, as itself
INSERT INTO regress_rt10_own VALUES (1);
ANALYZE regress_rt10_own;
-- a view, a default and a check that call only built-ins
CREATE VIEW regress_rt10_v AS SELECT current_user AS u, 1 AS one;
CREATE TABLE regress_rt10_dflt (id int, who name DEFAULT current_user,
  CHECK (id > 0));
INSERT INTO regress_rt10_dflt (id) VALUES (1);
CREATE TABLE regress_rt10_rls (id int);
ALTER TABLE regress_rt10_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_rt10_pol ON regress_rt10_rls USING (regress_rt10_payload('policy'));
-- shadows lower(text) for a varchar argument, and = for two varchars
CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql
AS $$ SELECT 'shadowed'::text $$;
CREATE FUNCTION regress_rt10_eq(varchar, varchar) RETURNS boolean LANGUAGE sql
AS $$ SELECT true $$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar,
  FUNCTION = regress_rt10_eq);
SELECT lower('ABC'::varchar);
RESET SESSION AUTHORIZATION;
SELECT who, sess, what FROM regress_rt10_evidence ORDER BY what;
TRUNCATE regress_rt10_evidence;

-- A DBA's session: each path is refused before the agent's code runs.
-- error:
INSERT INTO regress_rt10_own VALUES (2);
-- error:
REINDEX TABLE regress_rt10_own;
-- error:
ANALYZE regress_rt10_own;
-- error:
SELECT regress_rt10_idx(1);
-- error:
SELECT * FROM regress_rt10_v;
-- error:
INSERT INTO regress_rt10_dflt (id) VALUES (2);
-- error:
UPDATE regress_rt10_dflt SET id = 3;
-- row security: its policies run for a role subject to them (not a superuser)
SELECT count(*) FROM regress_rt10_rls;
CREATE ROLE regress_rt10_app LOGIN;
GRANT SELECT ON regress_rt10_rls TO regress_rt10_app;
SET SESSION AUTHORIZATION regress_rt10_app;
-- error:
SELECT * FROM regress_rt10_rls;
RESET SESSION AUTHORIZATION;
-- the shadowing function and operator: refused, not silently used
-- error:
SELECT lower('ABC'::varchar);
-- error:
SELECT 'a'::varchar = 'b'::varchar;
-- reading and deleting an agent's plain table runs nothing of the agent's
SELECT id FROM regress_rt10_dflt;
DELETE FROM regress_rt10_dflt WHERE id = 1;
-- a SECURITY DEFINER function of the DBA calls the agent's function: no
CREATE FUNCTION regress_rt10_dba_fn() RETURNS boolean LANGUAGE sql SECURITY DEFINER
AS $$ SELECT regress_rt10_payload('definer') $$;
GRANT EXECUTE ON FUNCTION regress_rt10_dba_fn() TO PUBLIC;

-- Another agent's session: the first agent's function does not run as it.
SET SESSION AUTHORIZATION regress_rt10_other;
-- error:
SELECT regress_rt10_payload('other agent');
-- error:
SELECT regress_rt10_dba_fn();
RESET SESSION AUTHORIZATION;

-- The agent replaces the body after attaching it: still its own function.
SET SESSION AUTHORIZATION regress_rt10_agent;
CREATE OR REPLACE FUNCTION regress_rt10_idx(int) RETURNS int LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN PERFORM regress_rt10_payload('replaced'); RETURN $1; END $$;
-- inside the DBA's SECURITY DEFINER function its own code is refused too
-- error:
SELECT regress_rt10_dba_fn();
-- giving an object away would make it not the agent's: not_owner
-- error:
ALTER TABLE regress_rt10_own OWNER TO regress_rt10_group;
-- error:
ALTER FUNCTION regress_rt10_trg() OWNER TO regress_rt10_group;
-- error:
ALTER VIEW regress_rt10_v OWNER TO regress_rt10_group;
RESET SESSION AUTHORIZATION;
-- error:
INSERT INTO regress_rt10_own VALUES (3);
SELECT count(*) AS runs_elsewhere FROM regress_rt10_evidence;

-- Monitor mode records and refuses nothing.
SET agentgate.mode = monitor;
SELECT lower('ABC'::varchar);
RESET agentgate.mode;
TRUNCATE regress_rt10_evidence;

-- A DBA restoring a dump of the agent's objects trusts them for the session;
-- an agent cannot.
SET agentgate.trust_agent_code = on;
INSERT INTO regress_rt10_dflt (id) VALUES (4);
SELECT count(*) FROM regress_rt10_v;
RESET agentgate.trust_agent_code;
SET SESSION AUTHORIZATION regress_rt10_other;
-- error:
SET agentgate.trust_agent_code = on;
RESET SESSION AUTHORIZATION;

-- A DBA who reviewed the function adopts it; then it runs anywhere.
ALTER FUNCTION regress_rt10_payload(text) OWNER TO CURRENT_USER;
SELECT regress_rt10_payload('adopted');
SELECT who = current_user AS by_dba, what FROM regress_rt10_evidence;

DROP TABLE regress_rt10_own, regress_rt10_dflt, regress_rt10_rls, regress_rt10_evidence;
DROP VIEW regress_rt10_v;
DROP OPERATOR public.= (varchar, varchar);
DROP FUNCTION regress_rt10_eq(varchar, varchar), public.lower(varchar),
  regress_rt10_idx(int), regress_rt10_trg(), regress_rt10_dba_fn(),
  regress_rt10_payload(text);
REVOKE CREATE ON SCHEMA public FROM regress_rt10_agent, regress_rt10_group;
DROP ROLE regress_rt10_agent, regress_rt10_other, regress_rt10_group, regress_rt10_app;
