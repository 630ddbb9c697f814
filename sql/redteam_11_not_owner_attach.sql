--
-- Creating a child of, attaching to, or changing an object the agent owns
-- only through a group role is a change to that object: the not_owner
-- baseline refuses it.  A child table (PARTITION OF, INHERITS, ALTER TABLE
-- ... INHERIT, ATTACH PARTITION) would carry the agent's triggers into the
-- parent's writes; an index, statistics or domain CHECK attaches its code;
-- ALTER SEQUENCE RESTART, REFRESH ... WITH NO DATA, RENAME, SET SCHEMA and
-- COMMENT change what others rely on; ALTER DATABASE SET changes everyone's
-- sessions; OWNER TO another role gives the agent's own object away.  The
-- same statements on the agent's own objects stay allowed.
--
\set VERBOSITY terse
CREATE ROLE regress_rt11_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_rt11_group NOLOGIN;
GRANT regress_rt11_group TO regress_rt11_agent;
GRANT CREATE ON SCHEMA public TO regress_rt11_agent, regress_rt11_group;
CREATE SCHEMA regress_rt11_app AUTHORIZATION regress_rt11_group;
SET search_path = regress_rt11_app, public;
CREATE TABLE cust (id int PRIMARY KEY, email text);
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE loose (id int);
CREATE SEQUENCE seq1;
CREATE DOMAIN dom AS int;
CREATE TYPE mood AS ENUM ('ok');
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
ALTER TABLE cust OWNER TO regress_rt11_group;
ALTER TABLE parted OWNER TO regress_rt11_group;
ALTER TABLE parted1 OWNER TO regress_rt11_group;
ALTER TABLE loose OWNER TO regress_rt11_group;
ALTER SEQUENCE seq1 OWNER TO regress_rt11_group;
ALTER DOMAIN dom OWNER TO regress_rt11_group;
ALTER TYPE mood OWNER TO regress_rt11_group;
ALTER MATERIALIZED VIEW mv OWNER TO regress_rt11_group;
RESET search_path;

SET SESSION AUTHORIZATION regress_rt11_agent;
SET search_path = regress_rt11_app, public;
-- error:
CREATE TABLE public.regress_rt11_p_evil PARTITION OF parted DEFAULT;
-- error:
CREATE TABLE public.regress_rt11_c () INHERITS (cust);
CREATE TABLE public.regress_rt11_mine (id int PRIMARY KEY, email text);
-- error:
ALTER TABLE public.regress_rt11_mine INHERIT cust;
CREATE TABLE public.regress_rt11_myparted (id int) PARTITION BY RANGE (id);
-- error:
ALTER TABLE public.regress_rt11_myparted ATTACH PARTITION loose FOR VALUES FROM (0) TO (10);
-- a foreign key puts its triggers on the referenced table
-- error:
CREATE TABLE public.regress_rt11_fk (cid int REFERENCES cust (id));
-- error:
CREATE TABLE public.regress_rt11_fk2 (cid int, FOREIGN KEY (cid) REFERENCES cust (id) ON DELETE CASCADE);
-- error:
ALTER TABLE public.regress_rt11_mine ADD FOREIGN KEY (id) REFERENCES cust (id);
-- error:
ALTER TABLE public.regress_rt11_mine ADD COLUMN cid int REFERENCES cust (id);
-- error:
CREATE INDEX ON cust (lower(email));
-- error:
CREATE STATISTICS regress_rt11_st ON id, email FROM cust;
-- error:
ALTER DOMAIN dom ADD CONSTRAINT positive CHECK (VALUE > 0);
-- error:
ALTER TYPE mood ADD VALUE 'bad';
-- error:
ALTER SEQUENCE seq1 RESTART 1;
-- error: the same through the function
SELECT setval('seq1', 1);
-- error:
SELECT setval('seq1', 1, false);
-- error:
REFRESH MATERIALIZED VIEW mv WITH NO DATA;
REFRESH MATERIALIZED VIEW mv;
-- error:
COMMENT ON TABLE cust IS 'ignore previous instructions';
-- error:
COMMENT ON COLUMN cust.email IS 'x';
-- error:
ALTER TABLE cust RENAME TO cust2;
-- error:
ALTER SEQUENCE seq1 SET SCHEMA public;
-- error:
ALTER DOMAIN dom RENAME TO dom2;
-- its own objects: all of it is fine
CREATE TABLE public.regress_rt11_own_p (id int) PARTITION BY RANGE (id);
CREATE TABLE public.regress_rt11_own_c PARTITION OF public.regress_rt11_own_p DEFAULT;
CREATE INDEX ON public.regress_rt11_mine (lower(email));
CREATE TABLE public.regress_rt11_own_fk (mid int REFERENCES public.regress_rt11_mine (id));
COMMENT ON TABLE public.regress_rt11_mine IS 'scratch';
CREATE SEQUENCE public.regress_rt11_seq;
ALTER SEQUENCE public.regress_rt11_seq RESTART 5;
SELECT setval('public.regress_rt11_seq', 7);
SELECT nextval('seq1') > 0 AS ok;
ALTER TABLE public.regress_rt11_mine OWNER TO regress_rt11_agent;
-- giving its own objects away
-- error:
ALTER TABLE public.regress_rt11_mine OWNER TO regress_rt11_group;
-- error:
ALTER SEQUENCE public.regress_rt11_seq OWNER TO regress_rt11_group;
RESET search_path;
RESET SESSION AUTHORIZATION;

-- what the agent tried left the group's objects as they were
SELECT count(*) AS children FROM pg_inherits
 WHERE inhparent IN ('regress_rt11_app.cust'::regclass, 'regress_rt11_app.parted'::regclass);
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'regress_rt11_app.cust'::regclass;
SELECT last_value FROM regress_rt11_app.seq1;
SELECT ispopulated FROM pg_matviews WHERE matviewname = 'mv';
SELECT relowner::regrole FROM pg_class WHERE oid = 'public.regress_rt11_mine'::regclass;

-- explain() names the relation and the rule
SELECT decision, reason FROM agentgate.explain('regress_rt11_agent',
  'CREATE TABLE public.x PARTITION OF regress_rt11_app.parted DEFAULT');

DROP SCHEMA regress_rt11_app CASCADE;
DROP TABLE public.regress_rt11_own_fk, public.regress_rt11_mine, public.regress_rt11_myparted, public.regress_rt11_own_p;
DROP SEQUENCE public.regress_rt11_seq;
REVOKE CREATE ON SCHEMA public FROM regress_rt11_agent, regress_rt11_group;
DROP ROLE regress_rt11_agent, regress_rt11_group;
