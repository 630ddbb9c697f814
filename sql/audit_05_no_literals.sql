--
-- Audit: a secret typed into SQL stays out of every column of the log --
-- statement text and error message alike, whatever the error (type error,
-- unique and check violations, RAISE, syntax errors) and however
-- standard_conforming_strings is set; relations list every table, target
-- first, whatever bytes their names hold; a DO block's row says what the
-- block does; a refusal is "blocked" only when the policy refused.
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
CREATE ROLE regress_a5_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_a5_t (id int PRIMARY KEY, v text CHECK (v <> 'checksecret9'));
INSERT INTO regress_a5_t VALUES (1, 'x');
GRANT ALL ON regress_a5_t TO regress_a5_agent;
CREATE FUNCTION regress_a5_note(t text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM t; RETURN t; END $$;
GRANT EXECUTE ON FUNCTION regress_a5_note(text) TO regress_a5_agent;
SELECT agentgate.allow(commands => '{SELECT,INSERT,UPDATE,DELETE}', relation => 'regress_a5_t', reason => 'regress') AS r1 \gset

SET SESSION AUTHORIZATION regress_a5_agent;
SELECT 1 AS governed_from_here;
-- error: type error with the secret in the message
SELECT * FROM regress_a5_t WHERE id = 'hunter2';
-- error: unique violation, the key in the detail
INSERT INTO regress_a5_t VALUES (1, 'x');
-- error: check violation, the failing row in the detail
INSERT INTO regress_a5_t VALUES (2, 'checksecret9');
-- error: RAISE with the secret
DO $$ BEGIN RAISE EXCEPTION 'raisesecret1 %', 'raisesecret2'; END $$;
-- error: an agent's RAISE that looks like a refusal is an error, not a block
DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'agentgate: fake refusal'; END $$;
-- Text psql must not read itself goes through \gexec, as the agent sent it:
-- a syntax error with the secret; with standard_conforming_strings off, \'
-- does not end a string; a SET in the same message changes how the text
-- would read after it was parsed; E'' strings, dollar quotes, U&'' and
-- continued strings; a dollar quote after a name is part of the name; an
-- unterminated string hides the rest.
\set ECHO none
SELECT s FROM (VALUES
    (1, $s$SELEC 'syntaxsecret1' FROM x$s$),
    (2, $s$SET standard_conforming_strings = off$s$),
    (3, $s$SELECT 'x\' SCSSECRET1 ' FROM FROM '$s$),
    (3.5, $s$SELECT 'x\' , 'SCSSECRET2', ' FROM FROM$s$),
    (3.7, $s$SELEC B'0''a\' BSECRET1 '$s$),
    (4, $s$RESET standard_conforming_strings$s$),
    (5, $s$SET standard_conforming_strings = off; SELECT 'a\', 'SCSSECRET3', 'b\' AS scs_flip$s$),
    (6, $s$RESET standard_conforming_strings$s$),
    (7, $s$SELEC E'esc\' ESCSECRET1 ', $q$DOLLARSECRET1$q$, U&'UNISECRET1', 'cont'
'CONTSECRET1' FROM$s$),
    (8, $s$SELEC a$b$ 'IDSECRET1\' $b$ IDSECRET2'$s$),
    (9, $s$SELEC 'rest TAILSECRET1 FROM x$s$)) v(n, s) ORDER BY n \gexec
\set ECHO all
-- a DO block: its body, without literals
DO $$ DECLARE n text; BEGIN n := regress_a5_note('dosecret1'); PERFORM regress_a5_note('dosecret2'); END $$;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset

SELECT command_tag, decision, nested, sqlstate, statement, error_message, truncated
  FROM agentgate.audit_log
 WHERE role_name = 'regress_a5_agent'
 ORDER BY ts, seq;
-- no secret in any column of any row
SELECT count(*) AS leaked FROM agentgate.audit_log a
 WHERE role_name = 'regress_a5_agent'
   AND a::text ~* '(hunter2|checksecret9|raisesecret|syntaxsecret|scssecret|escsecret|dollarsecret|unisecret|contsecret|idsecret|tailsecret|dosecret|bsecret)';

-- relations: every one, the target first, any byte in a name; a list past
-- the cap (16 kB of names) ends in a NULL element
CREATE SCHEMA regress_a5_s;
GRANT USAGE ON SCHEMA regress_a5_s TO regress_a5_agent;
DO $$
BEGIN
    FOR i IN 1..230 LOOP
        EXECUTE format('CREATE TABLE regress_a5_s.%I (id int)', rpad('t' || i || '_', 63, 'x'));
    END LOOP;
    EXECUTE format('CREATE TABLE regress_a5_s.%I (id int)', 'odd' || chr(31) || 'name');
    CREATE TABLE regress_a5_s.sep (id int);
END
$$;
GRANT SELECT ON ALL TABLES IN SCHEMA regress_a5_s TO regress_a5_agent;
SELECT agentgate.allow(commands => '{SELECT}', reason => 'regress') AS r2 \gset
SET SESSION AUTHORIZATION regress_a5_agent;
\set ECHO none
SELECT format('WITH d AS (DELETE FROM regress_a5_t WHERE id = 99 RETURNING id) SELECT count(*) FROM d, (%s) u',
              string_agg(format('SELECT 1 FROM regress_a5_s.%I', rpad('t' || i || '_', 63, 'x')), ' UNION ALL '))
  FROM generate_series(1, 16) i \gexec
SELECT format('WITH d AS (DELETE FROM regress_a5_t WHERE id = 99 RETURNING id) SELECT count(*) FROM d, (%s) u',
              string_agg(format('SELECT 1 FROM regress_a5_s.%I', rpad('t' || i || '_', 63, 'x')), ' UNION ALL '))
  FROM generate_series(1, 230) i \gexec
SELECT format('SELECT count(*) FROM regress_a5_s.%I, regress_a5_s.sep', 'odd' || chr(31) || 'name') \gexec
\set ECHO all
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush() AS agent_flush_row_too \gset
SELECT relations[1] AS first, array_length(relations, 1) AS n,
       relations[array_length(relations, 1)] IS NULL AS cut_marked,
       array_position(relations, NULL) = array_length(relations, 1) AS one_null
  FROM agentgate.audit_log
 WHERE role_name = 'regress_a5_agent' AND statement LIKE 'WITH d AS%'
 ORDER BY ts, seq;
SELECT relations = ARRAY[format('regress_a5_s.%I', 'odd' || chr(31) || 'name'), 'regress_a5_s.sep'] AS odd_name_whole
  FROM agentgate.audit_log
 WHERE role_name = 'regress_a5_agent' AND statement LIKE '%.sep';
DELETE FROM agentgate.rules WHERE id IN (:r1, :r2);
DROP SCHEMA regress_a5_s CASCADE;
DROP TABLE regress_a5_t;
DROP FUNCTION regress_a5_note(text);
DROP ROLE regress_a5_agent;
