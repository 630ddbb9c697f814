--
-- Large objects the agent does not own itself (owned by a group role it is
-- a member of, which PostgreSQL lets it change): lo_unlink is a DROP LARGE
-- OBJECT, lo_put, lo_open for writing and lo_from_bytea over an existing
-- OID a WRITE LARGE OBJECT, decided with the object's owner compared to
-- session_user.  Its own objects and DBAs are unaffected, and the checked
-- calls keep the built-ins' results and errors.
--
\set VERBOSITY default
CREATE ROLE regress_lo_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_lo_owner NOLOGIN;
GRANT regress_lo_owner TO regress_lo_agent;
GRANT CREATE ON SCHEMA public TO regress_lo_agent;
SELECT lo_from_bytea(424201, 'app data') AS app_lo;
ALTER LARGE OBJECT 424201 OWNER TO regress_lo_owner;
SELECT lo_from_bytea(424202, 'second') AS app_lo2;
ALTER LARGE OBJECT 424202 OWNER TO regress_lo_owner;
CREATE TABLE regress_lo_refs (id int PRIMARY KEY, lo oid);
INSERT INTO regress_lo_refs VALUES (1, 424201), (2, 424202);
ALTER TABLE regress_lo_refs OWNER TO regress_lo_owner;
-- a DBA's definer function that unlinks
CREATE FUNCTION regress_lo_definer(o oid) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN lo_unlink(o); END $$;

SET SESSION AUTHORIZATION regress_lo_agent;
\set ON_ERROR_ROLLBACK on
BEGIN;
-- PostgreSQL itself lets the group's member read and write it
SELECT convert_from(lo_get(424201), 'UTF8') AS app_data;
-- error: dropping it
SELECT lo_unlink(424201);
-- error:
SELECT lo_unlink(lo) FROM regress_lo_refs WHERE id = 2;
-- error:
SELECT * FROM lo_unlink(424201);
-- error:
DO $$ BEGIN PERFORM lo_unlink(424201); END $$;
-- error:
DO $$ DECLARE r int; BEGIN r := lo_unlink((SELECT lo FROM regress_lo_refs WHERE id = 1)); END $$;
-- error:
SELECT regress_lo_definer(424201);
-- error: writing it
SELECT lo_put(424201, 0, 'overwritten');
-- error:
SELECT lo_open(424201, x'20000'::int);
-- error: read-write
SELECT lo_open(424201, x'60000'::int);
-- error: lowrite and lo_truncate need a descriptor opened for writing
DO $$ DECLARE fd int := lo_open(424201, 131072);
BEGIN PERFORM lowrite(fd, 'x'); PERFORM lo_truncate(fd, 0); END $$;
-- error:
SELECT lo_from_bytea(424201, 'replaced');
-- error: an operator whose function is lo_unlink
CREATE OPERATOR ~~~~ (FUNCTION = lo_unlink, RIGHTARG = oid);
SELECT ~~~~ 424201::oid;
-- error: a prepared statement
PREPARE regress_lo_prep(oid) AS SELECT lo_unlink($1);
EXECUTE regress_lo_prep(424201);
-- error: a CHECK constraint is evaluated outside any planned statement
CREATE TABLE regress_lo_chk (o oid CHECK (lo_unlink(o) = 1));
INSERT INTO regress_lo_chk VALUES (424201);
-- allowed: reading it
SELECT lo_open(424201, x'40000'::int) >= 0 AS opened_for_reading;
DO $$ DECLARE fd int := lo_open(424201, 262144);
BEGIN RAISE NOTICE 'read %', convert_from(loread(fd, 3), 'UTF8'); END $$;
-- allowed: its own large objects
SELECT lo_from_bytea(424299, 'mine') AS own_lo;
SELECT lo_put(424299, 0, 'MINE');
DO $$ DECLARE fd int := lo_open(424299, 131072);
BEGIN PERFORM lo_lseek(fd, 0, 2); PERFORM lowrite(fd, '!'); PERFORM lo_truncate(fd, 3); END $$;
SELECT convert_from(lo_get(424299), 'UTF8') AS own_data;
-- the built-in's error: it exists already
SELECT lo_from_bytea(424299, 'again');
SELECT lo_unlink(424299);
-- the built-ins' own errors are kept
SELECT lo_put(999999999, 0, 'x');
SELECT lo_unlink(999999999);
SELECT lo_open(999999999, x'20000'::int);
SELECT lo_from_bytea(424202, 'x');
SELECT lo_unlink(NULL) IS NULL AS strict;
SELECT lo_put(424201, NULL, 'x') IS NULL AS strict;
ROLLBACK;
\set ON_ERROR_ROLLBACK off
-- error: psql's \lo_unlink is a fastpath call, whose arguments are not seen
\lo_unlink 424201
-- nothing changed
RESET SESSION AUTHORIZATION;
SELECT convert_from(lo_get(424201), 'UTF8') AS app_data,
       convert_from(lo_get(424202), 'UTF8') AS app_data2;

-- a DBA may allow an agent's direct writes of the group's objects
SELECT agentgate.allow(commands => '{WRITE LARGE OBJECT}', priority => 1100,
                       reason => 'regress: the app writes its documents') AS allow_id \gset
SET SESSION AUTHORIZATION regress_lo_agent;
BEGIN;
SELECT lo_put(424201, 0, 'APP');
-- error: still not a drop
SELECT lo_unlink(424201);
ROLLBACK;
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :allow_id;

-- the built-in's own EXECUTE privilege still applies
REVOKE EXECUTE ON FUNCTION lo_put(oid, bigint, bytea) FROM PUBLIC;
SET SESSION AUTHORIZATION regress_lo_agent;
BEGIN;
SELECT lo_from_bytea(424298, 'mine') AS own_lo;
SELECT lo_put(424298, 0, 'x');
ROLLBACK;
RESET SESSION AUTHORIZATION;
GRANT EXECUTE ON FUNCTION lo_put(oid, bigint, bytea) TO PUBLIC;

-- a DBA is not governed
BEGIN;
SELECT lo_put(424201, 0, 'dba');
SELECT lo_unlink(424202);
ROLLBACK;
\lo_unlink 424202
SELECT lo_unlink(424201);
DROP FUNCTION regress_lo_definer(oid);
DROP TABLE regress_lo_refs;
REVOKE CREATE ON SCHEMA public FROM regress_lo_agent;
DROP ROLE regress_lo_agent;
DROP ROLE regress_lo_owner;
