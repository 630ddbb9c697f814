--
-- What an agent writes from a masked column carries the masked value
-- (INSERT ... SELECT, CREATE TABLE AS, UPDATE ... SET x = masked column,
-- INSERT ... ON CONFLICT, MERGE), the target's masked columns read masked
-- in WHERE and RETURNING, and a column an UPDATE does not assign keeps its
-- stored value.  Triggers, RLS quals (USING and WITH CHECK) and the
-- conflict target of ON CONFLICT see real values.
--
\set VERBOSITY terse
CREATE ROLE regress_m4_agent LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_m4_agent;
CREATE TABLE regress_m4_p (id int PRIMARY KEY, ssn text, note text);
INSERT INTO regress_m4_p VALUES (1, '111-11-1111', 'a'), (2, '222-22-2222', 'b'), (3, '333-33-3333', 'c');
CREATE TABLE regress_m4_log (id int, ssn_seen text);
CREATE FUNCTION regress_m4_trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO regress_m4_log VALUES (NEW.id, NEW.ssn);
  RETURN NEW;
END $$;
CREATE TRIGGER regress_m4_t BEFORE UPDATE ON regress_m4_p FOR EACH ROW EXECUTE FUNCTION regress_m4_trig();
GRANT SELECT, INSERT, UPDATE, DELETE ON regress_m4_p TO regress_m4_agent;
GRANT INSERT ON regress_m4_log TO regress_m4_agent;
CREATE TABLE regress_m4_u (ssn text UNIQUE, note text);
INSERT INTO regress_m4_u VALUES ('111-11-1111', 'first');
ALTER TABLE regress_m4_u ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_m4_all ON regress_m4_u USING (true) WITH CHECK (ssn <> '000-00-0000');
GRANT SELECT, INSERT, UPDATE ON regress_m4_u TO regress_m4_agent;
SELECT agentgate.mask('regress_m4_p', 'ssn', 'partial') > 0 AS ok,
       agentgate.mask('regress_m4_u', 'ssn', 'partial') > 0 AS ok;

SET SESSION AUTHORIZATION regress_m4_agent;
CREATE TABLE regress_m4_copy (id int, ssn text);
INSERT INTO regress_m4_copy SELECT id, ssn FROM regress_m4_p WHERE id = 1;
CREATE TABLE regress_m4_ctas AS SELECT id, ssn FROM regress_m4_p WHERE id = 2;
SELECT * FROM regress_m4_copy UNION ALL SELECT * FROM regress_m4_ctas ORDER BY 1;
-- the target: WHERE and RETURNING read masked values
UPDATE regress_m4_p SET note = 'n1' WHERE ssn = '111-11-1111' RETURNING id;
UPDATE regress_m4_p SET note = 'n1' WHERE ssn = 'xxxxxxx1111' RETURNING id, ssn, note;
UPDATE regress_m4_p p SET note = p::text WHERE id = 3 RETURNING note;
DELETE FROM regress_m4_p WHERE ssn LIKE '222%' RETURNING id;
-- SET x = masked column writes the masked value
UPDATE regress_m4_p SET note = ssn WHERE id = 2 RETURNING id, note;
INSERT INTO regress_m4_p VALUES (2, 'new', 'x')
  ON CONFLICT (id) DO UPDATE SET note = regress_m4_p.ssn || '/' || excluded.ssn RETURNING note;
MERGE INTO regress_m4_p t USING (VALUES (1)) s(id) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET note = 'merged ' || t.ssn;
-- the conflict target names the unique index on stored values
INSERT INTO regress_m4_u VALUES ('111-11-1111', 'again')
  ON CONFLICT (ssn) DO UPDATE SET note = regress_m4_u.ssn RETURNING ssn, note;
-- RLS WITH CHECK judges the real new row: this value stays refused
-- error:
UPDATE regress_m4_u SET ssn = '000-00-0000' WHERE note IS NOT NULL;
RESET SESSION AUTHORIZATION;
SELECT * FROM regress_m4_u;
-- stored: ssn untouched where not assigned; notes carry masked values
SELECT id, ssn, note FROM regress_m4_p ORDER BY id;
-- the trigger saw the real stored ssn of NEW
SELECT * FROM regress_m4_log ORDER BY id, ssn_seen;

DROP TABLE regress_m4_copy, regress_m4_ctas;
DELETE FROM agentgate.masks WHERE relation IN ('regress_m4_p'::regclass, 'regress_m4_u'::regclass);
DROP TABLE regress_m4_p, regress_m4_log, regress_m4_u;
DROP FUNCTION regress_m4_trig();
REVOKE CREATE ON SCHEMA public FROM regress_m4_agent;
DROP ROLE regress_m4_agent;
