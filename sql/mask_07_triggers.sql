--
-- Trigger bodies: a trigger function owned by a role that is not governed,
-- on a table owned by one, reads real values when an agent's statement
-- fires it (masking there would write masked values into real tables).
-- The same function attached by an agent to a table of its own reads
-- masked values, and so does an agent's function called from a DBA's
-- trigger.
--
\set VERBOSITY terse
CREATE ROLE regress_m7_agent LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_m7_agent;
CREATE TABLE regress_m7_people (id int PRIMARY KEY, ssn text);
INSERT INTO regress_m7_people VALUES (1, '111-11-1111');
CREATE TABLE regress_m7_orders (id int, person int);
CREATE TABLE regress_m7_copies (source text, person int, ssn text);
-- a DBA's trigger: copies the person's ssn next to each order
CREATE FUNCTION regress_m7_copy_ssn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO regress_m7_copies
    SELECT TG_TABLE_NAME, p.id, p.ssn FROM regress_m7_people p WHERE p.id = NEW.person;
  RETURN NEW;
END $$;
CREATE TRIGGER regress_m7_t AFTER INSERT ON regress_m7_orders
  FOR EACH ROW EXECUTE FUNCTION regress_m7_copy_ssn();
GRANT SELECT ON regress_m7_people TO regress_m7_agent;
GRANT INSERT ON regress_m7_orders TO regress_m7_agent;
GRANT INSERT, SELECT ON regress_m7_copies TO regress_m7_agent;
SELECT agentgate.mask('regress_m7_people', 'ssn', 'partial') > 0 AS ok;

SET SESSION AUTHORIZATION regress_m7_agent;
-- the DBA's trigger reads the real value; the agent still reads masked
INSERT INTO regress_m7_orders VALUES (10, 1);
SELECT ssn FROM regress_m7_people;
-- the same function attached by the agent to its own table: masked
CREATE TABLE regress_m7_mine (id int, person int);
CREATE TRIGGER regress_m7_mine_t AFTER INSERT ON regress_m7_mine
  FOR EACH ROW EXECUTE FUNCTION regress_m7_copy_ssn();
INSERT INTO regress_m7_mine VALUES (20, 1);
RESET SESSION AUTHORIZATION;
-- the DBA's table got the real value, the agent's table the masked one
SELECT source, person, ssn FROM regress_m7_copies ORDER BY source;
DELETE FROM regress_m7_copies;
DROP TRIGGER regress_m7_mine_t ON regress_m7_mine;

-- the DBA's trigger calling a function the agent owns: the agent's code
-- reads masked values even there
CREATE FUNCTION regress_m7_via_helper() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO regress_m7_copies VALUES ('helper', NEW.person, public.regress_m7_helper(NEW.person));
  RETURN NEW;
END $$;
SET SESSION AUTHORIZATION regress_m7_agent;
CREATE FUNCTION public.regress_m7_helper(int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT ssn FROM regress_m7_people WHERE id = $1);
END $$;
RESET SESSION AUTHORIZATION;
DROP TRIGGER regress_m7_t ON regress_m7_orders;
CREATE TRIGGER regress_m7_t2 AFTER INSERT ON regress_m7_orders
  FOR EACH ROW EXECUTE FUNCTION regress_m7_via_helper();
SET SESSION AUTHORIZATION regress_m7_agent;
INSERT INTO regress_m7_orders VALUES (11, 1);
RESET SESSION AUTHORIZATION;
SELECT source, person, ssn FROM regress_m7_copies ORDER BY source;

DELETE FROM agentgate.masks WHERE relation = 'regress_m7_people'::regclass;
DROP TABLE regress_m7_people, regress_m7_orders, regress_m7_copies, regress_m7_mine;
DROP FUNCTION regress_m7_copy_ssn(), regress_m7_via_helper(), public.regress_m7_helper(int);
REVOKE CREATE ON SCHEMA public FROM regress_m7_agent;
DROP ROLE regress_m7_agent;
