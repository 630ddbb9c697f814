--
-- Approvals of a delegated session: the request records the session's
-- whole delegation chain, and nobody in it (the principal a subagent acts
-- for, an earlier actor) may approve it; another approver may.
--
\set VERBOSITY terse
SELECT agentgate.login('regress-apd-actor', '{}') AS actor \gset
\i sql/include/wait_revoked_list.sql
-- request ids in messages: start where the queue is
SELECT setval(pg_get_serial_sequence('agentgate.approvals', 'id'), coalesce(max(id), 0) + 1, false) > 0 AS ids
  FROM agentgate.approvals;
CREATE ROLE "regress-apd-boss" LOGIN IN ROLE agentgate_approver;   -- the principal, a person
CREATE ROLE "regress-apd-mid" LOGIN IN ROLE agentgate_approver;    -- an earlier actor
CREATE ROLE regress_apd_other LOGIN IN ROLE agentgate_approver;
CREATE TABLE regress_apd_t (id int);
INSERT INTO regress_apd_t VALUES (1), (2);
SELECT format('GRANT ALL ON regress_apd_t TO %I', :'actor') \gexec
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'regress_apd_t',
                                  reason => 'deletes are reviewed') AS rule_id \gset

SELECT s.stamp AS dstamp
  FROM agentgate.session_stamp(:'actor',
       '{"sub":"regress-apd-boss","act":{"sub":"regress-apd-actor","act":{"sub":"regress-apd-mid"}},"exp":4102444800}') s \gset
SET agentgate.require_session_stamp = on;
SELECT set_config('application_name', 'psql ' || :'dstamp', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION :"actor";
DELETE FROM regress_apd_t WHERE id = 1;
RESET SESSION AUTHORIZATION;
RESET agentgate.require_session_stamp;
SELECT max(id) AS req FROM agentgate.approvals WHERE rule_id = :rule_id \gset
SELECT identity, chain, status FROM agentgate.approvals WHERE id = :req;

-- error: the principal, and an earlier actor, may not approve it
SET SESSION AUTHORIZATION "regress-apd-boss";
SELECT agentgate.approve(:req);
SET SESSION AUTHORIZATION "regress-apd-mid";
SELECT agentgate.approve(:req);
-- another approver may
SET SESSION AUTHORIZATION regress_apd_other;
SELECT agentgate.approve(:req, 'fine') IS NOT NULL AS approved;
RESET SESSION AUTHORIZATION;
SELECT status, decided_by FROM agentgate.approvals WHERE id = :req;

RESET application_name;
DELETE FROM agentgate.approvals WHERE rule_id = :rule_id;
DELETE FROM agentgate.rules WHERE id = :rule_id;
-- the rule ids later tests expect
SELECT setval(pg_get_serial_sequence('agentgate.rules', 'id'), max(id)) > 0 AS reset
  FROM agentgate.rules;
DROP TABLE regress_apd_t;
DROP ROLE "regress-apd-boss", "regress-apd-mid", regress_apd_other;
DELETE FROM agentgate.agents WHERE identity = 'regress-apd-actor';
DROP ROLE :"actor";
