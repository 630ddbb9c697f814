--
-- Each mask method, on the types it applies to: redact is a constant of
-- the column's type (a constant of the plan), null is NULL, partial keeps
-- the last 4 characters, email keeps the domain, hash is a keyed stable
-- pseudonym (equal inputs, equal outputs, across tables), a DBA's function
-- is called (and, when not STRICT, only for values that are not NULL).
-- NULL stays NULL under every built-in method.
--
\set VERBOSITY terse
CREATE ROLE regress_m2_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_m2_t (
    id int, t text, vc varchar(3), bc char(6), i int, big bigint, num numeric(6,2),
    f float8, d date, ts timestamp, tstz timestamptz, tm time, iv interval,
    b bool, u uuid, by bytea, j jsonb, arr int[], ip inet,
    p text, e varchar(60), h text, fn text, fn2 text, nn int NOT NULL DEFAULT 7);
INSERT INTO regress_m2_t VALUES
  (1, 'secret', 'abc', 'abcdef', 42, 42, 42.5, 4.2, '2001-02-03', '2001-02-03 04:05',
   '2001-02-03 04:05+00', '04:05', '1 day', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '\x0102', '{"a": 1}', '{1,2}', '10.0.0.1',
   '4111-1111-1111-1234', 'alice@example.com', 'alice', 'abcdef', 'abcdef'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, 'ab', 'no-at-sign', 'alice', NULL, NULL),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, 'ünïcödé', 'bob@Sub.Example.org', 'bob', NULL, NULL);
CREATE TABLE regress_m2_other (h text);
INSERT INTO regress_m2_other VALUES ('alice'), ('carol');
GRANT SELECT ON regress_m2_t, regress_m2_other TO regress_m2_agent;

CREATE FUNCTION regress_m2_first(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog AS $$ SELECT left($1, 1) || '***' $$;
CREATE FUNCTION regress_m2_nonstrict(text) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog AS $$ SELECT coalesce($1, 'was null') || '!' $$;

SELECT count(agentgate.mask('regress_m2_t', c, 'redact'))
  FROM unnest('{t,vc,bc,i,big,num,f,d,ts,tstz,tm,iv,b,u,by,j,arr,ip,nn}'::name[]) c;
SELECT agentgate.mask('regress_m2_t', 'p', 'partial') > 0 AS ok,
       agentgate.mask('regress_m2_t', 'e', 'email') > 0 AS ok,
       agentgate.mask('regress_m2_t', 'h', 'hash') > 0 AS ok,
       agentgate.mask('regress_m2_other', 'h', 'hash') > 0 AS ok,
       agentgate.mask('regress_m2_t', 'fn', 'public.regress_m2_first(text)') > 0 AS ok,
       agentgate.mask('regress_m2_t', 'fn2', 'public.regress_m2_nonstrict(text)') > 0 AS ok;

SET SESSION AUTHORIZATION regress_m2_agent;
\x on
SELECT * FROM regress_m2_t ORDER BY id;
\x off
-- redact of a NOT NULL column is a constant of the plan; elsewhere NULL stays NULL
EXPLAIN (VERBOSE, COSTS OFF) SELECT nn, i FROM regress_m2_t;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_m2_t WHERE nn = 7;
-- hash: stable, equal inputs give equal outputs, across tables, so joins work
SELECT t.id, t.h = o.h AS same FROM regress_m2_t t JOIN regress_m2_other o ON o.h = t.h ORDER BY 1;
SELECT h, count(*) FROM regress_m2_t GROUP BY h ORDER BY 2 DESC, 1;
-- NULL stays NULL: count() keeps its meaning
SELECT count(t), count(p), count(e), count(fn), count(fn2) FROM regress_m2_t;
RESET SESSION AUTHORIZATION;

-- the superuser and the owner read real values; the hash is a function of the key only
SELECT id, t, p, e, h FROM regress_m2_t ORDER BY id;
SELECT agentgate.mask_hash('alice') = (SELECT h FROM regress_m2_other WHERE false) AS never;
SELECT length(agentgate.mask_hash('alice')) AS hash_len,
       agentgate.mask_partial('1234567') AS partial, agentgate.mask_email('a@b.c') AS email;

DELETE FROM agentgate.masks WHERE relation IN ('regress_m2_t'::regclass, 'regress_m2_other'::regclass);
DROP TABLE regress_m2_t, regress_m2_other;
DROP FUNCTION regress_m2_first(text), regress_m2_nonstrict(text);
DROP ROLE regress_m2_agent;
