--
-- The role and session_authorization settings changed where no statement
-- hook compares before and after: set_config() in a function the planner
-- pre-evaluates, in a plpgsql simple expression (which has no executor of
-- its own) followed by a query run as the new role in the same call, in a
-- deferred trigger that runs at COMMIT.  Each is decided as SET ROLE / SET
-- SESSION AUTHORIZATION before anything runs under the new identity, and
-- refused by the baseline; the refusal undoes the change.
--
\set VERBOSITY terse
CREATE ROLE regress_rt2_agent LOGIN NOINHERIT IN ROLE agentgate_agent;
CREATE ROLE regress_rt2_group NOLOGIN;
CREATE ROLE regress_rt2_other NOLOGIN;
GRANT regress_rt2_group TO regress_rt2_agent;
GRANT CREATE ON SCHEMA public TO regress_rt2_agent;
-- only the group may read it; the agent does not inherit the group's rights
CREATE TABLE regress_rt2_secret (v text);
INSERT INTO regress_rt2_secret VALUES ('secret');
ALTER TABLE regress_rt2_secret OWNER TO regress_rt2_group;

SET SESSION AUTHORIZATION regress_rt2_agent;
-- error: PostgreSQL's own check
SELECT * FROM regress_rt2_secret;
-- error: the baseline
SELECT set_config('role', 'regress_rt2_group', false);

-- error: pre-evaluated by the planner
CREATE FUNCTION regress_rt2_plan_time() RETURNS text IMMUTABLE LANGUAGE plpgsql
AS $$ BEGIN RETURN set_config('role', 'regress_rt2_group', false); END $$;
SELECT 1 WHERE regress_rt2_plan_time() IS NOT NULL;
SELECT current_user;

-- error: a simple expression, then a query as the new role; no row is returned
CREATE FUNCTION regress_rt2_peek() RETURNS SETOF text LANGUAGE plpgsql
AS $$
DECLARE x text;
BEGIN
    x := set_config('role', 'regress_rt2_group', false);
    RETURN QUERY SELECT v FROM regress_rt2_secret;
END $$;
SELECT * FROM regress_rt2_peek();
SELECT current_user;

-- error: a deferred trigger, at COMMIT
CREATE TABLE regress_rt2_t (id int);
CREATE FUNCTION regress_rt2_trg() RETURNS trigger LANGUAGE plpgsql
AS $$
DECLARE x text;
BEGIN
    x := set_config('role', 'regress_rt2_group', false);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER regress_rt2_tr AFTER INSERT ON regress_rt2_t
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION regress_rt2_trg();
INSERT INTO regress_rt2_t VALUES (1);
SELECT current_user, count(*) AS rows_committed FROM regress_rt2_t;
BEGIN;
INSERT INTO regress_rt2_t VALUES (2);
COMMIT;
SELECT current_user, count(*) AS rows_committed FROM regress_rt2_t;

-- error: an AFTER trigger (ExecutorFinish)
CREATE TRIGGER regress_rt2_tr2 AFTER DELETE ON regress_rt2_t
  FOR EACH STATEMENT EXECUTE FUNCTION regress_rt2_trg();
DELETE FROM regress_rt2_t WHERE id = 0;
SELECT current_user;

-- error: session_authorization the same ways
SELECT set_config('session_authorization', 'regress_rt2_other', false);
CREATE FUNCTION regress_rt2_sa() RETURNS text IMMUTABLE LANGUAGE plpgsql
AS $$ BEGIN RETURN set_config('session_authorization', 'regress_rt2_other', false); END $$;
SELECT 1 WHERE regress_rt2_sa() IS NOT NULL;
SELECT session_user, current_user;
-- to itself changes nothing
SELECT set_config('session_authorization', session_user::text, false) IS NOT NULL AS same;
SELECT session_user;
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT session_user = current_user AS back;

-- a DBA's function with its own SET role clause (decided when it was
-- created) runs with that role for the call, and the role is back after
RESET SESSION AUTHORIZATION;
CREATE FUNCTION regress_rt2_as_group() RETURNS text LANGUAGE sql SET role = regress_rt2_group
AS $$ SELECT current_user || ': ' || (SELECT v FROM regress_rt2_secret) $$;
GRANT EXECUTE ON FUNCTION regress_rt2_as_group() TO regress_rt2_agent;
SET SESSION AUTHORIZATION regress_rt2_agent;
SELECT regress_rt2_as_group();
SELECT current_user;
RESET SESSION AUTHORIZATION;
DROP FUNCTION regress_rt2_as_group();

-- a DBA may allow it: the change is then approved once and stays
SELECT agentgate.allow(commands => '{SET ROLE}', applies_to => 'regress_rt2_agent',
                       priority => 2000, reason => 'regress: roles allowed') AS rule \gset
SET SESSION AUTHORIZATION regress_rt2_agent;
SELECT * FROM regress_rt2_peek();
SELECT current_user;
SELECT count(*) FROM regress_rt2_secret;
RESET ROLE;
SELECT current_user;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :rule;

DROP TABLE regress_rt2_secret, regress_rt2_t;
DROP FUNCTION regress_rt2_plan_time(), regress_rt2_peek(), regress_rt2_trg(), regress_rt2_sa();
REVOKE CREATE ON SCHEMA public FROM regress_rt2_agent;
DROP ROLE regress_rt2_agent, regress_rt2_group, regress_rt2_other;
