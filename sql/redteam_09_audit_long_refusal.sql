--
-- A refused statement longer than the audit row's cap, cut inside a
-- comment: the agent still gets the policy's 42501 (the audit normaliser
-- must not raise a second error while the refusal is in flight), and the
-- row is written, truncated at a token boundary.  And an agent granted SET
-- on an audit setting still cannot loosen auditing.
--
\set VERBOSITY terse
CREATE ROLE regress_rt9_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_rt9_t (id int);
ALTER TABLE regress_rt9_t OWNER TO regress_rt9_agent;
SET SESSION AUTHORIZATION regress_rt9_agent;
-- error: refused by the DROP baseline, not an internal error
DO $$ BEGIN EXECUTE '/*' || repeat('x', 70000) || '*/ DROP TABLE regress_rt9_t'; END $$;
-- error: the same at top level, padded past the cap with a literal
SELECT 1 FROM regress_rt9_t WHERE 'x' = ' ' || repeat('y', 70000) AND id IS NULL; DROP TABLE regress_rt9_t;
RESET SESSION AUTHORIZATION;
GRANT SET ON PARAMETER agentgate.audit_raw_statements, agentgate.audit_max_statement TO regress_rt9_agent;
SET SESSION AUTHORIZATION regress_rt9_agent;
-- error: granted or not, agents may not change agentgate settings
SELECT set_config('agentgate.audit_raw_statements', 'on', false);
-- error:
SELECT set_config('agentgate.audit_max_statement', '300', false);
SHOW agentgate.audit_raw_statements;
RESET SESSION AUTHORIZATION;
REVOKE SET ON PARAMETER agentgate.audit_raw_statements, agentgate.audit_max_statement FROM regress_rt9_agent;
SELECT count(*) AS still_there FROM pg_tables WHERE tablename = 'regress_rt9_t';
DROP TABLE regress_rt9_t;
DROP ROLE regress_rt9_agent;
