--
-- A fingerprint block rule must not be escaped by making the statement's
-- text unfingerprintable: whitespace that pads it past libpg_query's input
-- limit.  Such a statement matches block (and log) fingerprint rules and
-- no allow fingerprint rule.
--
\set VERBOSITY terse
CREATE ROLE regress_rt4_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_rt4_t (id int PRIMARY KEY, v text);
INSERT INTO regress_rt4_t SELECT g, 'v' || g FROM generate_series(1, 5) g;
GRANT SELECT, UPDATE, DELETE ON regress_rt4_t TO regress_rt4_agent;
SELECT agentgate.block(fingerprint => agentgate.fingerprint('DELETE FROM regress_rt4_t WHERE id = 1'),
                       applies_to => 'regress_rt4_agent',
                       reason => 'regress: deletes by id are never run') AS block_rule \gset
SELECT 'DELETE FROM' || repeat(' ', 70000) || 'regress_rt4_t WHERE id = 2' AS padded_delete,
       'UPDATE regress_rt4_t SET' || repeat(' ', 70000) || 'v = ''y'' WHERE id = 5' AS padded_update
\gset

SET SESSION AUTHORIZATION regress_rt4_agent;
-- error:
DELETE FROM regress_rt4_t WHERE id = 1;
-- error: padded past the fingerprint's input limit
\set ECHO none
:padded_delete;
\set ECHO all
-- error: the same from a function
DO $$ BEGIN EXECUTE 'DELETE FROM' || repeat(' ', 70000) || 'regress_rt4_t WHERE id = 3'; END $$;
-- statements of other shapes are fine, short or long
DELETE FROM regress_rt4_t WHERE v = 'v4';
SELECT count(*) FROM regress_rt4_t WHERE v <> repeat('y', 70000);
SELECT count(*) AS left_rows FROM regress_rt4_t;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :block_rule;

-- an allow fingerprint rule under default-deny: the padded text is not it
SELECT agentgate.allow(fingerprint => agentgate.fingerprint('UPDATE regress_rt4_t SET v = $1 WHERE id = $2'),
                       applies_to => 'regress_rt4_agent', priority => 2000,
                       reason => 'regress: the one allowed update') AS allow_rule \gset
SELECT agentgate.block(applies_to => 'regress_rt4_agent', priority => 1500,
                       reason => 'regress: default deny') AS deny_rule \gset
SET SESSION AUTHORIZATION regress_rt4_agent;
UPDATE regress_rt4_t SET v = 'x' WHERE id = 5;
-- error:
\set ECHO none
:padded_update;
\set ECHO all
RESET SESSION AUTHORIZATION;
SELECT id, v FROM regress_rt4_t ORDER BY id;
DELETE FROM agentgate.rules WHERE id IN (:allow_rule, :deny_rule);

DROP TABLE regress_rt4_t;
DROP ROLE regress_rt4_agent;
