--
-- The session summary counts each decision exactly as the log records it:
-- one decision enum feeds the verdict, the ring record, the log's decision
-- column and the summary's counters, so the two tables cannot disagree.
--
\c postgres
\set VERBOSITY sqlstate
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'agentgate');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
CREATE ROLE regress_sum_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_sum_t (id int PRIMARY KEY, v text);
GRANT ALL ON regress_sum_t TO regress_sum_agent;
SELECT agentgate.block(commands => '{UPDATE}', relation => 'regress_sum_t', reason => 'regress') AS block_rule \gset
SELECT agentgate.log(commands => '{SELECT}', relation => 'regress_sum_t', reason => 'regress') AS log_rule \gset
SELECT * FROM agentgate.session_stamp('regress_sum_agent') \gset s_
SELECT set_config('application_name', 'psql ' || :'s_stamp', false) IS NOT NULL AS stamped;

SET SESSION AUTHORIZATION regress_sum_agent;
INSERT INTO regress_sum_t VALUES (1, 'a');
SELECT 1 AS allowed;
-- logged (a log rule)
SELECT count(*) AS logged FROM regress_sum_t;
-- error: blocked by the rule
UPDATE regress_sum_t SET v = 'b' WHERE id = 1;
-- error: an error no verdict made, even when it says "agentgate"
DO $$ BEGIN RAISE EXCEPTION 'agentgate: not a refusal'; END $$;
RESET SESSION AUTHORIZATION;
SET agentgate.mode = monitor;
SET SESSION AUTHORIZATION regress_sum_agent;
UPDATE regress_sum_t SET v = 'monitored' WHERE id = 1;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
RESET agentgate.mode;
-- the agent's own audit_flush() row is written after it returns
SELECT agentgate.audit_flush() AS flushed;

SELECT decision, count(*) FROM agentgate.audit_log
 WHERE role_name = 'regress_sum_agent' AND session_id = :'s_session_id'
 GROUP BY decision ORDER BY decision;
SELECT s.statements = l.n AS statements_match,
       s.allowed = l.allowed AS allowed_match,
       s.blocked = l.blocked AS blocked_match,
       s.errors = l.errors AS errors_match,
       s.monitored = l.monitored AS monitored_match,
       s.logged = l.logged AS logged_match,
       s.masked + s.approved + s.denied AS reserved
  FROM agentgate.audit_sessions s,
       (SELECT count(*) AS n,
               count(*) FILTER (WHERE decision = 'allowed') AS allowed,
               count(*) FILTER (WHERE decision = 'blocked') AS blocked,
               count(*) FILTER (WHERE decision = 'error') AS errors,
               count(*) FILTER (WHERE decision = 'monitored') AS monitored,
               count(*) FILTER (WHERE decision = 'logged') AS logged
          FROM agentgate.audit_log
         WHERE role_name = 'regress_sum_agent' AND session_id = :'s_session_id') l
 WHERE s.role_name = 'regress_sum_agent' AND s.session_id = :'s_session_id';

DELETE FROM agentgate.rules WHERE id IN (:block_rule, :log_rule);
RESET application_name;
DELETE FROM agentgate.audit_log WHERE role_name = 'regress_sum_agent';
DELETE FROM agentgate.audit_sessions WHERE role_name = 'regress_sum_agent';
DROP TABLE regress_sum_t;
DROP ROLE regress_sum_agent;
