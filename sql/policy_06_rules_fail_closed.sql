--
-- Loading rules fails closed: a block rule whose command or condition the
-- loader does not understand (written past the validator, or by a later
-- version) still blocks, more widely rather than not at all; an allow
-- rule the loader does not understand allows nothing.
--
\set VERBOSITY terse
CREATE ROLE regress_p6_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_p6_t (id int);
INSERT INTO regress_p6_t VALUES (1), (2);
GRANT ALL ON regress_p6_t TO regress_p6_agent;
SET agentgate.default_action = allow;

-- rows the validator would refuse, as a restore or a later version may leave
ALTER TABLE agentgate.rules DISABLE TRIGGER rules_validate;
INSERT INTO agentgate.rules (id, commands, relation, action, reason)
VALUES (906001, '{DELETE,FROBNICATE}', 'regress_p6_t', 'block', 'regress: unknown command');
ALTER TABLE agentgate.rules ENABLE TRIGGER rules_validate;

SET SESSION AUTHORIZATION regress_p6_agent;
-- error: the block rule with a command nobody knows blocks every command on
-- its relation (warning: the rule is not understood)
SELECT count(*) FROM regress_p6_t;
INSERT INTO regress_p6_t VALUES (3);
RESET SESSION AUTHORIZATION;

DELETE FROM agentgate.rules WHERE reason LIKE 'regress: unknown%';
ALTER TABLE agentgate.rules DISABLE TRIGGER rules_validate;
INSERT INTO agentgate.rules (id, commands, relation, condition, action, reason)
VALUES (906002, '{UPDATE}', 'regress_p6_t', 'on_full_moon', 'block', 'regress: unknown condition');
ALTER TABLE agentgate.rules ENABLE TRIGGER rules_validate;
SET SESSION AUTHORIZATION regress_p6_agent;
-- error: the block rule with an unknown condition blocks without it
UPDATE regress_p6_t SET id = id WHERE id = 1;
-- other commands are not its business
SELECT count(*) FROM regress_p6_t;
RESET SESSION AUTHORIZATION;

-- an allow rule the loader does not understand allows nothing
DELETE FROM agentgate.rules WHERE reason LIKE 'regress: unknown%';
SET agentgate.default_action = block;
ALTER TABLE agentgate.rules DISABLE TRIGGER rules_validate;
INSERT INTO agentgate.rules (id, commands, relation, action, reason)
VALUES (906003, '{SELECT,FROBNICATE}', 'regress_p6_t', 'allow', 'regress: unknown command');
INSERT INTO agentgate.rules (id, commands, relation, condition, action, reason)
VALUES (906004, '{SELECT}', 'regress_p6_t', 'on_full_moon', 'allow', 'regress: unknown condition');
ALTER TABLE agentgate.rules ENABLE TRIGGER rules_validate;
SET SESSION AUTHORIZATION regress_p6_agent;
-- error: not allowed by default
SELECT count(*) FROM regress_p6_t;
RESET SESSION AUTHORIZATION;

RESET agentgate.default_action;
DELETE FROM agentgate.rules WHERE reason LIKE 'regress: unknown%';
DROP TABLE regress_p6_t;
DROP ROLE regress_p6_agent;
