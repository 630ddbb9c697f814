--
-- agentgate.explain() lists the masks a statement would read through, and
-- the audit row of a statement that read masked columns names them
-- (masked_columns), in enforce and in monitor mode, where results are
-- unchanged.  The rows live in database postgres (agentgate.audit_database).
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
CREATE ROLE regress_m6_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_m6_t (id int, ssn text, card text);
INSERT INTO regress_m6_t VALUES (1, '111-11-1111', '4111111111111111');
GRANT SELECT ON regress_m6_t TO regress_m6_agent;
SELECT agentgate.mask('regress_m6_t', 'ssn', 'partial') > 0 AS ok,
       agentgate.mask('regress_m6_t', 'card', 'redact') > 0 AS ok;

SELECT statement, command, decision, rule_id,
       regexp_replace(reason, 'mask [0-9]+', 'mask N') AS reason
  FROM agentgate.explain('regress_m6_agent',
                         'SELECT id FROM regress_m6_t; SELECT 1; UPDATE regress_m6_t SET id = 2 WHERE ssn = $$x$$');
-- not governed: nothing masked
SELECT decision, reason FROM agentgate.explain(current_user, 'SELECT ssn FROM regress_m6_t');

SET SESSION AUTHORIZATION regress_m6_agent;
SELECT id FROM regress_m6_t;
SELECT ssn FROM regress_m6_t;
SELECT t FROM regress_m6_t t;
RESET SESSION AUTHORIZATION;
SET agentgate.mode = monitor;
SET SESSION AUTHORIZATION regress_m6_agent;
SELECT card FROM regress_m6_t;
RESET SESSION AUTHORIZATION;
RESET agentgate.mode;
SELECT agentgate.audit_flush();
SELECT statement, decision, masked_columns FROM agentgate.audit_log
 WHERE role_name = 'regress_m6_agent' AND command_tag = 'SELECT'
 ORDER BY ts, seq;

DELETE FROM agentgate.masks WHERE relation = 'regress_m6_t'::regclass;
DROP TABLE regress_m6_t;
DROP ROLE regress_m6_agent;
