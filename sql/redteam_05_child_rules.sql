--
-- A rule on a partition or an inheritance child holds when the child is
-- reached through its parent: PostgreSQL checks permissions on the parent
-- only, so the parent's access is decided for each child a rule names too
-- (whatever the planner would prune: fail closed).  Column rules follow
-- the column by name into a child whose column numbers differ.
--
\set VERBOSITY terse
CREATE ROLE regress_rt5_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_rt5_p (id int, v text, w text) PARTITION BY LIST (id);
CREATE TABLE regress_rt5_p1 PARTITION OF regress_rt5_p FOR VALUES IN (1);
CREATE TABLE regress_rt5_p2 PARTITION OF regress_rt5_p FOR VALUES IN (2);
-- a partition whose columns are numbered differently
CREATE TABLE regress_rt5_p3 (w text, v text, id int);
ALTER TABLE regress_rt5_p ATTACH PARTITION regress_rt5_p3 FOR VALUES IN (3);
INSERT INTO regress_rt5_p VALUES (1, 'secret', 'w1'), (2, 'ok', 'w2'), (3, 'pii', 'w3');
GRANT SELECT, UPDATE, DELETE ON regress_rt5_p, regress_rt5_p1, regress_rt5_p2, regress_rt5_p3
  TO regress_rt5_agent;
CREATE TABLE regress_rt5_ip (id int, v text);
CREATE TABLE regress_rt5_ic () INHERITS (regress_rt5_ip);
INSERT INTO regress_rt5_ic VALUES (1, 'child secret');
GRANT SELECT ON regress_rt5_ip, regress_rt5_ic TO regress_rt5_agent;
SELECT agentgate.block(commands => '{READ,WRITE}', relation => 'regress_rt5_p1',
                       reason => 'regress: partition 1 is off limits') AS r1 \gset
SELECT agentgate.block(commands => '{READ}', relation => 'regress_rt5_p3', columns => '{v}',
                       reason => 'regress: v of partition 3 is PII') AS r2 \gset
SELECT agentgate.block(commands => '{READ}', relation => 'regress_rt5_ic',
                       reason => 'regress: the child is off limits') AS r3 \gset

SET SESSION AUTHORIZATION regress_rt5_agent;
-- error:
SELECT * FROM regress_rt5_p1;
-- error: through the parent
SELECT * FROM regress_rt5_p;
-- error: the parent's access is decided whatever the pruning
SELECT v FROM regress_rt5_p WHERE id = 2;
-- error: writes through the parent
DELETE FROM regress_rt5_p WHERE id = 1;
UPDATE regress_rt5_p SET w = 'x' WHERE id = 1;
-- ONLY the parent reaches no partition
SELECT count(*) FROM ONLY regress_rt5_p;
-- the other partitions directly
SELECT id, v FROM regress_rt5_p2;
SELECT id, w FROM regress_rt5_p3;
-- error: the column rule, by name, in a child numbered differently
SELECT v FROM regress_rt5_p3;
-- error: inheritance child through its parent
SELECT * FROM regress_rt5_ip;
SELECT count(*) FROM ONLY regress_rt5_ip;
RESET SESSION AUTHORIZATION;
SELECT id, v, w FROM regress_rt5_p ORDER BY id;

-- without the partition rule, a column rule on a child: the parent's
-- columns are matched by name
DELETE FROM agentgate.rules WHERE id = :r1;
SET SESSION AUTHORIZATION regress_rt5_agent;
SELECT id, w FROM regress_rt5_p ORDER BY id;
-- error:
SELECT id, v FROM regress_rt5_p ORDER BY id;
RESET SESSION AUTHORIZATION;

DELETE FROM agentgate.rules WHERE id IN (:r2, :r3);
DROP TABLE regress_rt5_p, regress_rt5_ip CASCADE;
DROP ROLE regress_rt5_agent;
