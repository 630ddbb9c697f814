--
-- CREATE OR REPLACE of a view or function the agent does not own itself
-- (owned by a group role it belongs to) is an ALTER of it: the not_owner
-- baseline refuses it, as it refuses ALTER VIEW.  Otherwise an agent could
-- redefine a masking view to expose the column it hides.  ALTER FUNCTION
-- of such a function too.  The agent's own objects stay replaceable.
--
\set VERBOSITY terse
CREATE ROLE regress_rt7_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_rt7_group NOLOGIN;
GRANT regress_rt7_group TO regress_rt7_agent;
GRANT CREATE ON SCHEMA public TO regress_rt7_agent, regress_rt7_group;
CREATE TABLE regress_rt7_cust (id int, name text, ssn text);
INSERT INTO regress_rt7_cust VALUES (1, 'ann', '123-45-6789');
CREATE VIEW regress_rt7_cust_v AS SELECT id, name FROM regress_rt7_cust;
CREATE FUNCTION regress_rt7_f(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
ALTER TABLE regress_rt7_cust OWNER TO regress_rt7_group;
ALTER VIEW regress_rt7_cust_v OWNER TO regress_rt7_group;
ALTER FUNCTION regress_rt7_f(int) OWNER TO regress_rt7_group;

SET SESSION AUTHORIZATION regress_rt7_agent;
-- error:
ALTER VIEW regress_rt7_cust_v RENAME TO regress_rt7_other;
-- error:
CREATE OR REPLACE VIEW regress_rt7_cust_v AS SELECT id, name, ssn FROM regress_rt7_cust;
-- error:
CREATE OR REPLACE FUNCTION regress_rt7_f(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1';
-- error:
ALTER FUNCTION regress_rt7_f(int) RENAME TO regress_rt7_g;
-- error:
ALTER FUNCTION regress_rt7_f(int) STABLE;
-- another signature is a new function of the agent's own
CREATE OR REPLACE FUNCTION regress_rt7_f(text) RETURNS text LANGUAGE sql AS 'SELECT $1';
CREATE OR REPLACE FUNCTION regress_rt7_f(text) RETURNS text LANGUAGE sql AS 'SELECT upper($1)';
ALTER FUNCTION regress_rt7_f(text) STABLE;
-- the agent's own view
CREATE VIEW regress_rt7_mine AS SELECT 1 AS one;
CREATE OR REPLACE VIEW regress_rt7_mine AS SELECT 1 AS one, 2 AS two;
SELECT * FROM regress_rt7_cust_v;
SELECT regress_rt7_f(1), regress_rt7_f('x');
RESET SESSION AUTHORIZATION;

DROP VIEW regress_rt7_mine, regress_rt7_cust_v;
DROP FUNCTION regress_rt7_f(int), regress_rt7_f(text);
DROP TABLE regress_rt7_cust;
REVOKE CREATE ON SCHEMA public FROM regress_rt7_agent, regress_rt7_group;
DROP ROLE regress_rt7_agent, regress_rt7_group;
