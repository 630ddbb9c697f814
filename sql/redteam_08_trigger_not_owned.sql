--
-- A trigger the agent attaches to a table it owns only through a group role
-- would run the agent's function in every session that writes the table,
-- a DBA's or an application's, where agentgate does not govern it (here:
-- turning off a baseline rule when a DBA inserts a row).  CREATE TRIGGER
-- and CREATE/ALTER POLICY on such a table are decided as altering it, and
-- the not_owner baseline refuses them.  On its own tables they stay allowed.
--
\set VERBOSITY terse
CREATE ROLE regress_rt8_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_rt8_group NOLOGIN;
GRANT regress_rt8_group TO regress_rt8_agent;
GRANT CREATE ON SCHEMA public TO regress_rt8_agent;
CREATE TABLE regress_rt8_shared (id int);
ALTER TABLE regress_rt8_shared OWNER TO regress_rt8_group;
CREATE TABLE regress_rt8_own (id int);
ALTER TABLE regress_rt8_own OWNER TO regress_rt8_agent;

SET SESSION AUTHORIZATION regress_rt8_agent;
CREATE FUNCTION regress_rt8_evil() RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE agentgate.rules SET enabled = false WHERE baseline AND 'DROP TABLE' = ANY (commands);
    RETURN NULL;
END $$;
-- error:
CREATE TRIGGER regress_rt8_trg AFTER INSERT ON regress_rt8_shared
  FOR EACH STATEMENT EXECUTE FUNCTION regress_rt8_evil();
-- error:
CREATE POLICY regress_rt8_pol ON regress_rt8_shared USING (true);
-- its own table: fine
CREATE TRIGGER regress_rt8_trg2 BEFORE INSERT ON regress_rt8_own
  FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE POLICY regress_rt8_pol2 ON regress_rt8_own USING (true);
ALTER POLICY regress_rt8_pol2 ON regress_rt8_own USING (id > 0);
-- an index attaches to the shared table too (redteam_11)
-- error:
CREATE INDEX ON regress_rt8_shared (id);
RESET SESSION AUTHORIZATION;

-- a DBA writing the shared table runs nothing of the agent's
INSERT INTO regress_rt8_shared VALUES (1);
SELECT enabled FROM agentgate.rules WHERE baseline AND 'DROP TABLE' = ANY (commands);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'regress_rt8_shared'::regclass;

DROP TABLE regress_rt8_shared, regress_rt8_own;
DROP FUNCTION regress_rt8_evil();
REVOKE CREATE ON SCHEMA public FROM regress_rt8_agent;
DROP ROLE regress_rt8_agent, regress_rt8_group;
