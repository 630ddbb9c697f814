--
-- agentgate.masks: validated on insert and update, added with
-- agentgate.mask(), dumped with the extension's configuration, and out of
-- agents' reach (the table, the helper, the hash key).
--
\set VERBOSITY default
CREATE ROLE regress_m1_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_m1_t (id int, ssn text, n int, code char(2), tag name);
CREATE VIEW regress_m1_v AS SELECT * FROM regress_m1_t;
GRANT SELECT ON regress_m1_t TO regress_m1_agent;

SELECT agentgate.mask('regress_m1_t', 'ssn', 'partial', reason => 'regress_m1') > 0 AS ok;
SELECT agentgate.mask('regress_m1_t', 'n') > 0 AS ok;
SELECT relation, column_name, method, applies_to, enabled, reason
  FROM agentgate.masks WHERE relation = 'regress_m1_t'::regclass ORDER BY id;

-- error: no such column
SELECT agentgate.mask('regress_m1_t', 'nope');
-- error: system column
SELECT agentgate.mask('regress_m1_t', 'ctid');
-- error: a view is masked through its table
SELECT agentgate.mask('regress_m1_v', 'ssn');
-- error: unknown method
SELECT agentgate.mask('regress_m1_t', 'id', 'scramble');
-- error: partial needs a string column
SELECT agentgate.mask('regress_m1_t', 'id', 'partial');
-- error: so does hash (name is not a varlena string)
SELECT agentgate.mask('regress_m1_t', 'tag', 'hash');
-- error: one enabled mask per column and role
\set VERBOSITY terse
SELECT agentgate.mask('regress_m1_t', 'ssn', 'null');
\set VERBOSITY default
-- error: an update is validated too
UPDATE agentgate.masks SET method = 'email' WHERE relation = 'regress_m1_t'::regclass AND column_name = 'n';
-- error: agentgate's own tables
SELECT agentgate.mask('agentgate.rules', 'reason');

-- a DBA's function: checked for what makes it safe
CREATE FUNCTION regress_m1_f(text) RETURNS text LANGUAGE sql AS $$ SELECT left($1, 1) || '...' $$;
-- error: not IMMUTABLE
SELECT agentgate.mask('regress_m1_t', 'ssn', 'public.regress_m1_f(text)', applies_to => 'regress_m1_agent');
ALTER FUNCTION regress_m1_f(text) IMMUTABLE;
-- error: no search_path of its own
SELECT agentgate.mask('regress_m1_t', 'ssn', 'public.regress_m1_f(text)', applies_to => 'regress_m1_agent');
ALTER FUNCTION regress_m1_f(text) SET search_path = pg_catalog;
-- error: wrong type for an int column
SELECT agentgate.mask('regress_m1_t', 'id', 'public.regress_m1_f(text)');
CREATE ROLE regress_m1_owner;
ALTER FUNCTION regress_m1_f(text) OWNER TO regress_m1_owner;
-- error: not owned by a superuser
SELECT agentgate.mask('regress_m1_t', 'ssn', 'public.regress_m1_f(text)', applies_to => 'regress_m1_agent');
ALTER FUNCTION regress_m1_f(text) OWNER TO CURRENT_USER;
-- accepted, stored as its qualified signature
SELECT agentgate.mask('regress_m1_t', 'ssn', 'public.regress_m1_f(text)', applies_to => 'regress_m1_agent') > 0 AS ok;
SELECT method FROM agentgate.masks WHERE applies_to = 'regress_m1_agent'::regrole;

-- dumped with the extension (pg_extension_config_dump)
SELECT count(*) AS dumped FROM pg_extension e, unnest(e.extconfig) c
 WHERE e.extname = 'agentgate' AND c = 'agentgate.masks'::regclass;

-- agents: not the table, not the helper, not the key, not mask_hash
SET SESSION AUTHORIZATION regress_m1_agent;
\set VERBOSITY terse
-- error:
SELECT count(*) FROM agentgate.masks;
-- error:
SELECT agentgate.mask('regress_m1_t', 'id');
SHOW agentgate.mask_hash_key;
-- error:
SELECT agentgate.mask_hash('123-45-6789');
RESET SESSION AUTHORIZATION;
SHOW agentgate.mask_hash_key;

-- a role reached through two masked roles: the older mask wins
CREATE TABLE regress_m1_two (v text);
INSERT INTO regress_m1_two VALUES ('abcdefgh');
GRANT SELECT ON regress_m1_two TO regress_m1_agent;
CREATE ROLE regress_m1_g1;
CREATE ROLE regress_m1_g2;
GRANT regress_m1_g1, regress_m1_g2 TO regress_m1_agent;
SELECT agentgate.mask('regress_m1_two', 'v', 'partial', applies_to => 'regress_m1_g2') > 0 AS ok,
       agentgate.mask('regress_m1_two', 'v', 'null', applies_to => 'regress_m1_g1') > 0 AS ok;
SET SESSION AUTHORIZATION regress_m1_agent;
SELECT v FROM regress_m1_two;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.masks WHERE relation = 'regress_m1_two'::regclass;
DROP TABLE regress_m1_two;
DROP ROLE regress_m1_g1, regress_m1_g2;

DELETE FROM agentgate.masks WHERE relation = 'regress_m1_t'::regclass;
DROP VIEW regress_m1_v;
DROP TABLE regress_m1_t;
DROP FUNCTION regress_m1_f(text);
DROP ROLE regress_m1_agent, regress_m1_owner;
