--
-- The other ways out: COPY rel TO becomes a masked query; planner
-- statistics are refused to sessions with masks; a SECURITY DEFINER
-- function owned by a role that is not governed reads real values (a
-- DBA's deliberate export) while the agent's own does not; a plan cached
-- for one role is made again for another; a mask that cannot be applied
-- any more refuses the relation; monitor mode changes no result.
--
\set VERBOSITY terse
CREATE ROLE regress_m5_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_m5_agent2 LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_m5_agent;
CREATE TABLE regress_m5_p (id int, ssn text, v int);
INSERT INTO regress_m5_p SELECT g, lpad(g::text, 3, '0') || '-11-1111', g FROM generate_series(1, 3) g;
GRANT SELECT ON regress_m5_p TO regress_m5_agent, regress_m5_agent2;
ANALYZE regress_m5_p;
SELECT agentgate.mask('regress_m5_p', 'ssn', 'partial', applies_to => 'regress_m5_agent') > 0 AS ok;
-- the baseline rule on pg_statistic is off here, to show the mask's own refusal
UPDATE agentgate.rules SET enabled = false WHERE baseline AND relation = 'pg_statistic'::regclass;
GRANT SELECT ON pg_statistic TO regress_m5_agent, regress_m5_agent2;
CREATE FUNCTION regress_m5_export() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  SET search_path = public AS 'SELECT ssn FROM regress_m5_p ORDER BY id';
GRANT EXECUTE ON FUNCTION regress_m5_export() TO regress_m5_agent;

SET SESSION AUTHORIZATION regress_m5_agent;
COPY regress_m5_p TO STDOUT;
COPY regress_m5_p (ssn) TO STDOUT WITH (FORMAT csv, HEADER);
COPY (SELECT ssn FROM regress_m5_p WHERE id = 1) TO STDOUT;
-- error: statistics hold sample values
SELECT count(*) FROM pg_stats WHERE tablename = 'regress_m5_p';
-- error:
SELECT count(*) FROM pg_statistic;
-- the DBA's SECURITY DEFINER function exports real values
SELECT * FROM regress_m5_export();
-- the agent's own SECURITY DEFINER function does not
CREATE FUNCTION regress_m5_mine() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  AS 'SELECT ssn FROM regress_m5_p ORDER BY id';
SELECT * FROM regress_m5_mine();
RESET SESSION AUTHORIZATION;
DROP FUNCTION regress_m5_mine();
-- nor a role the agent may set (here an ungoverned group it belongs to;
-- the baseline refuses SET ROLE, so that rule is off here)
CREATE ROLE regress_m5_group;
GRANT SELECT ON regress_m5_p TO regress_m5_group;
GRANT regress_m5_group TO regress_m5_agent;
UPDATE agentgate.rules SET enabled = false WHERE baseline AND commands && '{SET ROLE,ROLE}';
SET SESSION AUTHORIZATION regress_m5_agent;
CREATE FUNCTION regress_m5_setrole() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  SET role = regress_m5_group AS 'SELECT ssn FROM regress_m5_p ORDER BY id';
SELECT * FROM regress_m5_setrole();
SET ROLE regress_m5_group;
SELECT ssn FROM regress_m5_p WHERE id = 1;
RESET ROLE;
RESET SESSION AUTHORIZATION;
UPDATE agentgate.rules SET enabled = true WHERE baseline AND commands && '{SET ROLE,ROLE}';
DROP FUNCTION regress_m5_setrole();
REVOKE SELECT ON regress_m5_p FROM regress_m5_group;
DROP ROLE regress_m5_group;

-- a plan cached for the masked role is made again for a role without the mask
CREATE FUNCTION regress_m5_pl() RETURNS text LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
  SELECT ssn INTO v FROM regress_m5_p WHERE id = 1;
  RETURN v;
END $$;
SET SESSION AUTHORIZATION regress_m5_agent;
SELECT regress_m5_pl();
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_m5_agent2;
SELECT regress_m5_pl();
-- no mask for this role: statistics as the baseline allows
SELECT count(*) > 0 AS has_stats FROM pg_stats WHERE tablename = 'regress_m5_p';
RESET SESSION AUTHORIZATION;

-- a mask that cannot be applied any more refuses the relation
ALTER TABLE regress_m5_p RENAME COLUMN ssn TO ssn_renamed;
SET SESSION AUTHORIZATION regress_m5_agent;
-- error:
SELECT id FROM regress_m5_p;
RESET SESSION AUTHORIZATION;
ALTER TABLE regress_m5_p RENAME COLUMN ssn_renamed TO ssn;

-- monitor mode: results unchanged
SET agentgate.mode = monitor;
SET SESSION AUTHORIZATION regress_m5_agent;
SELECT ssn FROM regress_m5_p WHERE id = 1;
COPY regress_m5_p TO STDOUT;
RESET SESSION AUTHORIZATION;
RESET agentgate.mode;
SET SESSION AUTHORIZATION regress_m5_agent;
SELECT ssn FROM regress_m5_p WHERE id = 1;
RESET SESSION AUTHORIZATION;

UPDATE agentgate.rules SET enabled = true WHERE baseline AND relation = 'pg_statistic'::regclass;
REVOKE SELECT ON pg_statistic FROM regress_m5_agent, regress_m5_agent2;
DELETE FROM agentgate.masks WHERE relation = 'regress_m5_p'::regclass;
DROP FUNCTION regress_m5_export(), regress_m5_pl();
DROP TABLE regress_m5_p;
REVOKE CREATE ON SCHEMA public FROM regress_m5_agent;
DROP ROLE regress_m5_agent, regress_m5_agent2;
