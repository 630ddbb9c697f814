--
-- Approvals, retry mode: an 'approve' rule refuses the statement with the
-- request id; the request is committed whatever the agent's transaction
-- does; a member of the approver role (never an agent, never on their own
-- behalf) approves it; the identical retry runs once.  Each binding rule
-- (text, parameter values, identity) and each separation-of-duties rule.
--
\set VERBOSITY default
CREATE ROLE regress_apv_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_apv_agent2 LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_apv_alice LOGIN IN ROLE agentgate_approver;
CREATE ROLE regress_apv_bob LOGIN IN ROLE agentgate_approver;
CREATE ROLE regress_apv_carol LOGIN;           -- not an approver
CREATE ROLE regress_apv_leads;
GRANT regress_apv_leads TO regress_apv_alice, regress_apv_bob;
CREATE TABLE regress_apv_t (id int PRIMARY KEY, v text);
INSERT INTO regress_apv_t SELECT g, 'v' || g FROM generate_series(1, 9) g;
GRANT ALL ON regress_apv_t TO regress_apv_agent, regress_apv_agent2;

-- the approver role exists after CREATE EXTENSION
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'agentgate_approver';

-- error: an unknown mode, no approvers, approval columns on another action
SELECT agentgate.require_approval(commands => '{DELETE}', mode => 'later');
SELECT agentgate.require_approval(commands => '{DELETE}', min_approvals => 0);
INSERT INTO agentgate.rules (commands, action, approval_mode) VALUES ('{DELETE}', 'block', 'wait');
SELECT agentgate.require_approval(commands => '{DELETE}', max_rows => 5);

SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'regress_apv_t',
                                  reason => 'deletes are reviewed') AS rule_id \gset
SELECT action, approval_mode, approval_timeout, approvers, min_approvals
  FROM agentgate.rules WHERE id = :rule_id;

-- explain: approval required; a block still wins
SELECT decision, reason FROM agentgate.explain('regress_apv_agent', 'DELETE FROM regress_apv_t WHERE id = 1');
SELECT decision FROM agentgate.explain('regress_apv_agent', 'SELECT * FROM regress_apv_t');
SELECT agentgate.block(commands => '{DELETE}', relation => 'regress_apv_t', columns => NULL,
                       reason => 'no deletes at all', priority => 50) AS block_id \gset
SELECT decision, rule_id = :block_id AS by_block
  FROM agentgate.explain('regress_apv_agent', 'DELETE FROM regress_apv_t WHERE id = 1');
DELETE FROM agentgate.rules WHERE id = :block_id;

-- the agent's DELETE is refused with a request id (42501) ...
SET SESSION AUTHORIZATION regress_apv_agent;
DELETE FROM regress_apv_t WHERE id = 1;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- ... in a transaction too, which aborts; the request stays
BEGIN;
SELECT count(*) FROM regress_apv_t;
DELETE FROM regress_apv_t WHERE id = 2;
ROLLBACK;
-- a retry before approval reports the same request
DELETE FROM regress_apv_t WHERE id = 1;
-- the agent sees its own requests, and nothing else of the queue
SELECT id, statement, status FROM agentgate.my_approvals() ORDER BY id;
SELECT count(*) FROM agentgate.approvals;
SELECT * FROM agentgate.pending_approvals;
-- error: agents never approve, deny or write the queue
SELECT agentgate.approve(1);
SELECT agentgate.deny(1, 'no');
SELECT agentgate._approval_vote(1, 'approve', NULL);
UPDATE agentgate.approvals SET status = 'approved' WHERE id = 1;
SELECT agentgate._approval_job('consume', 1, '', 0, '', '', NULL, 0, 'retry', 0, 0, 1);
LISTEN agentgate_approvals;
RESET SESSION AUTHORIZATION;

-- what approvers see: both requests, committed although the agent's
-- transaction rolled back
SET ROLE regress_apv_alice;
SELECT id, identity, role_name, statement, parameters, mode, approvals, min_approvals,
       expires_at > now() + interval '4 min' AS five_minutes
  FROM agentgate.pending_approvals ORDER BY id;
RESET ROLE;

-- error: not a member of the approver role; a superuser is no exception
SET SESSION AUTHORIZATION regress_apv_carol;
SELECT agentgate.approve(1);
RESET SESSION AUTHORIZATION;
SELECT agentgate.approve(1);
-- error: no such request
SET SESSION AUTHORIZATION regress_apv_alice;
SELECT agentgate.approve(999);
SELECT agentgate.approve(1, 'looks fine');
-- error: decided already
SELECT agentgate.deny(1, 'changed my mind');
RESET SESSION AUTHORIZATION;
SELECT id, status, decided_by, comment FROM agentgate.approvals ORDER BY id;

-- the identical retry runs, once
SET SESSION AUTHORIZATION regress_apv_agent;
-- another literal, another spelling: another statement
DELETE FROM regress_apv_t WHERE id = 3;
DELETE FROM regress_apv_t  WHERE id = 1;
DELETE FROM regress_apv_t WHERE id = 1;
SELECT count(*) FROM regress_apv_t WHERE id = 1;
-- a second execution needs a new approval
DELETE FROM regress_apv_t WHERE id = 1;
SELECT id, statement, status, comment FROM agentgate.my_approvals() ORDER BY id;
RESET SESSION AUTHORIZATION;

-- another identity: its own request, and no use of the other's approval
SET SESSION AUTHORIZATION regress_apv_alice;
SELECT agentgate.approve(4);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_agent2;
DELETE FROM regress_apv_t WHERE id = 3;
SELECT id, statement, status FROM agentgate.my_approvals() ORDER BY id;
RESET SESSION AUTHORIZATION;

-- bound parameter values: each value is its own statement
SET SESSION AUTHORIZATION regress_apv_agent;
PREPARE regress_apv_del(int) AS DELETE FROM regress_apv_t WHERE id = $1;
EXECUTE regress_apv_del(5);
RESET SESSION AUTHORIZATION;
SELECT id, statement, parameters FROM agentgate.approvals WHERE parameters IS NOT NULL;
SELECT id AS p_id FROM agentgate.approvals WHERE parameters = '{5}' \gset
SET SESSION AUTHORIZATION regress_apv_bob;
SELECT agentgate.approve(:p_id);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_agent;
EXECUTE regress_apv_del(6);
EXECUTE regress_apv_del(5);
SELECT count(*) FROM regress_apv_t WHERE id IN (5, 6);
DEALLOCATE regress_apv_del;
RESET SESSION AUTHORIZATION;

-- deny: the retry is refused as denied, and asks for nothing new
SET SESSION AUTHORIZATION regress_apv_bob;
SELECT agentgate.deny(2, 'keep row 2');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_agent;
DELETE FROM regress_apv_t WHERE id = 2;
RESET SESSION AUTHORIZATION;

-- min_approvals = 2, by members of another role: distinct approvers
UPDATE agentgate.rules SET approvers = 'regress_apv_leads', min_approvals = 2 WHERE id = :rule_id;
SET SESSION AUTHORIZATION regress_apv_agent;
DELETE FROM regress_apv_t WHERE id = 7;
RESET SESSION AUTHORIZATION;
SELECT id AS m_id FROM agentgate.approvals WHERE statement LIKE '%id = 7' \gset
SET SESSION AUTHORIZATION regress_apv_alice;
SELECT agentgate.approve(:m_id);
-- error: the same approver twice
SELECT agentgate.approve(:m_id);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_agent;
DELETE FROM regress_apv_t WHERE id = 7;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_bob;
SELECT agentgate.approve(:m_id);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_agent;
DELETE FROM regress_apv_t WHERE id = 7;
RESET SESSION AUTHORIZATION;
SELECT approver, vote FROM agentgate.approval_votes WHERE request_id = :m_id ORDER BY approver;

-- nobody decides a request made on their own behalf: an identity's own
-- approver login (same name) is refused
UPDATE agentgate.rules SET approvers = NULL, min_approvals = NULL WHERE id = :rule_id;
INSERT INTO agentgate.agents (identity, role_name, provisioned)
VALUES ('regress_apv_alice', 'regress_apv_agent2', 'registered');
SET SESSION AUTHORIZATION regress_apv_agent2;
DELETE FROM regress_apv_t WHERE id = 8;
RESET SESSION AUTHORIZATION;
SELECT id AS o_id, identity, chain FROM agentgate.approvals WHERE statement LIKE '%id = 8' \gset
SELECT :'identity' AS identity, :'chain' AS chain;
SET SESSION AUTHORIZATION regress_apv_alice;
SELECT agentgate.approve(:o_id);
RESET SESSION AUTHORIZATION;

-- another approver may; the statement then runs
SET SESSION AUTHORIZATION regress_apv_bob;
SELECT agentgate.approve(:o_id);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_apv_agent2;
DELETE FROM regress_apv_t WHERE id = 8;
RESET SESSION AUTHORIZATION;
SELECT id, status, decided_by, executed_at IS NOT NULL AS executed
  FROM agentgate.approvals WHERE id = :o_id;
DELETE FROM agentgate.agents WHERE identity = 'regress_apv_alice';

-- monitor mode only records
SET agentgate.mode = monitor;
SET SESSION AUTHORIZATION regress_apv_agent;
DELETE FROM regress_apv_t WHERE id = 9;
RESET SESSION AUTHORIZATION;
RESET agentgate.mode;

DELETE FROM agentgate.rules WHERE id = :rule_id;
DELETE FROM agentgate.approvals;
-- the rule ids later tests expect
SELECT setval(pg_get_serial_sequence('agentgate.rules', 'id'), max(id)) > 0 AS reset
  FROM agentgate.rules;
DROP TABLE regress_apv_t;
DROP ROLE regress_apv_agent, regress_apv_agent2, regress_apv_alice, regress_apv_bob,
          regress_apv_carol, regress_apv_leads;
