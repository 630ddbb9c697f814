--
-- agentgate.patterns: the built-in content patterns, enabled by default;
-- rows checked with the proxy's regex engine when written (a regex that
-- does not compile, an unsafe replacement, an unknown validator are
-- refused with their SQLSTATE); what agentgate-proxy reads
-- (patterns_for_proxy, agentgate_proxy only); agents can neither read nor
-- write the table; a change is announced on agentgate_patterns.
--
\set VERBOSITY terse
SELECT name, replacement, validator, applies_to, enabled, builtin
  FROM agentgate.patterns ORDER BY name;

-- a DBA's own pattern, and one built-in disabled
INSERT INTO agentgate.patterns (name, regex, replacement, reason)
VALUES ('order_ref', 'ORD-[0-9]{6}', '[order]', 'internal order references');
UPDATE agentgate.patterns SET enabled = false WHERE name = 'email';

-- error: a back-reference (not in Hyperscan's syntax)
INSERT INTO agentgate.patterns (name, regex) VALUES ('bad_backref', '(a)\1');
-- error: a pattern that matches the empty string
INSERT INTO agentgate.patterns (name, regex) VALUES ('bad_empty', 'x*');
-- error: a replacement with a tab (it would split a COPY line)
INSERT INTO agentgate.patterns (name, regex, replacement) VALUES ('bad_tab', 'abc', E'a\tb');
-- error: an empty replacement
INSERT INTO agentgate.patterns (name, regex, replacement) VALUES ('bad_empty_repl', 'abc', '');
-- error: an unknown validator
INSERT INTO agentgate.patterns (name, regex, validator) VALUES ('bad_validator', 'abc', 'crc');
-- error: an update is checked too
UPDATE agentgate.patterns SET regex = '(?<=a)b' WHERE name = 'order_ref';
-- error: a name that is not an identifier
INSERT INTO agentgate.patterns (name, regex) VALUES ('Bad Name', 'abc');

-- a change is announced to the proxy (test/t/215_patterns.pl sees it reload)
SELECT tgname, pg_get_triggerdef(oid) LIKE '%AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE%' AS every_change
  FROM pg_trigger WHERE tgrelid = 'agentgate.patterns'::regclass ORDER BY 1;

CREATE ROLE regress_pat_proxy LOGIN IN ROLE agentgate_proxy;
CREATE ROLE regress_pat_group NOLOGIN;
CREATE ROLE regress_pat_member LOGIN IN ROLE regress_pat_group;
INSERT INTO agentgate.patterns (name, regex, replacement, applies_to)
VALUES ('group_only', 'SECRET-[0-9]{4}', '[group]', 'regress_pat_group');

SET SESSION AUTHORIZATION regress_pat_proxy;
SELECT name, validator, members FROM agentgate.patterns_for_proxy();
-- error: the proxy does not read the table itself
SELECT count(*) FROM agentgate.patterns;
RESET SESSION AUTHORIZATION;

SELECT agentgate.login('pat_agent', '{}') AS agent \gset
SET SESSION AUTHORIZATION :"agent";
-- error: an agent may not read the patterns
SELECT count(*) FROM agentgate.patterns;
-- error: nor change them
DELETE FROM agentgate.patterns WHERE name = 'email';
-- error: nor read what the proxy reads
SELECT count(*) FROM agentgate.patterns_for_proxy();
RESET SESSION AUTHORIZATION;

-- built-ins are left out of dumps; a DBA's rows are kept
SELECT pg_catalog.array_position(extconfig, 'agentgate.patterns'::regclass) IS NOT NULL AS dumped,
       extcondition[pg_catalog.array_position(extconfig, 'agentgate.patterns'::regclass)] AS condition
  FROM pg_extension WHERE extname = 'agentgate';

DELETE FROM agentgate.patterns WHERE NOT builtin;
UPDATE agentgate.patterns SET enabled = true WHERE name = 'email';
DROP ROLE regress_pat_proxy, regress_pat_member, regress_pat_group;
