--
-- One hook layer: the concerns run in one order, who (identity) before
-- what (policy) before record (audit).  A revoked agent's statement is
-- refused as revoked, even when a rule would block it: policy never
-- decides the statement of an identity that may no longer run any.  The
-- audit row of that refusal is an error (28000), not a block.
--
\c postgres
\set VERBOSITY terse
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'agentgate');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
CREATE ROLE regress_h1_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_h1_t (id int);
GRANT ALL ON regress_h1_t TO regress_h1_agent;
CREATE FUNCTION regress_h1_delete() RETURNS void LANGUAGE sql
  AS $$ DELETE FROM regress_h1_t WHERE id = 1 $$;
SELECT agentgate.block(commands => '{DELETE,TRUNCATE}', relation => 'regress_h1_t',
                       reason => 'regress: no deletes') AS r1 \gset

-- while the role may log in, the rule decides
SET SESSION AUTHORIZATION regress_h1_agent;
DELETE FROM regress_h1_t WHERE id = 1;
TRUNCATE regress_h1_t;
RESET SESSION AUTHORIZATION;

ALTER ROLE regress_h1_agent NOLOGIN;
SELECT agentgate.audit_flush();
DELETE FROM agentgate.audit_log WHERE role_name = 'regress_h1_agent';
SET SESSION AUTHORIZATION regress_h1_agent;
-- error: revoked, not "not allowed" (planned, utility, nested)
DELETE FROM regress_h1_t WHERE id = 1;
TRUNCATE regress_h1_t;
SELECT regress_h1_delete();
EXPLAIN (COSTS OFF) DELETE FROM regress_h1_t;
RESET SESSION AUTHORIZATION;

SELECT agentgate.audit_flush();
SELECT command_tag, decision, sqlstate, rule_id IS NULL AS no_rule
  FROM agentgate.audit_log WHERE role_name = 'regress_h1_agent'
 ORDER BY ts, seq;

DROP FUNCTION regress_h1_delete();
DROP TABLE regress_h1_t;
DELETE FROM agentgate.rules WHERE id = :r1;
DELETE FROM agentgate.audit_log WHERE role_name = 'regress_h1_agent';
DROP ROLE regress_h1_agent;
