--
-- Agents may not NOTIFY, LISTEN or UNLISTEN on agentgate's channels
-- (agentgate_*, any case): a NOTIFY agentgate_revocations would make the
-- proxy close another identity's connections.  pg_notify() is a NOTIFY,
-- decided with its arguments wherever it is called from.  Other channels
-- and DBAs are unaffected.
--
\set VERBOSITY default
CREATE ROLE regress_ntf_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_ntf_owner NOLOGIN;
GRANT regress_ntf_owner TO regress_ntf_agent;
GRANT CREATE ON SCHEMA public TO regress_ntf_agent;
-- a DBA's definer function and view that notify
CREATE FUNCTION regress_ntf_definer(ch text, who text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM pg_notify(ch, who); END $$;
CREATE VIEW regress_ntf_view AS
  SELECT pg_notify('agentgate_revocations', 'alice')::text AS n;
GRANT SELECT ON regress_ntf_view TO regress_ntf_agent;
-- a DBA-owned SQL function the planner inlines
CREATE FUNCTION regress_ntf_inl(ch text) RETURNS text
LANGUAGE sql AS $$ SELECT pg_notify(ch, 'x')::text $$;
EXPLAIN (VERBOSE, COSTS OFF) SELECT regress_ntf_inl('c');

SET SESSION AUTHORIZATION regress_ntf_agent;
\set ON_ERROR_ROLLBACK on
BEGIN;
-- error: the statements, any case or quoting
NOTIFY agentgate_revocations, 'alice';
-- error:
NOTIFY AgentGate_Revocations;
-- error:
NOTIFY "AGENTGATE_revocations", 'alice';
-- error:
LISTEN agentgate_revocations;
-- error:
LISTEN "Agentgate_anything";
-- error:
UNLISTEN agentgate_revocations;
-- error: built at run time
DO $$ BEGIN EXECUTE format('NOTIFY %I, %L', 'agentgate_' || 'revocations', 'alice'); END $$;
-- error:
DO $$ BEGIN EXECUTE 'LISTEN ' || quote_ident('agentgate_revocations'); END $$;
-- error: pg_notify, however it is reached
SELECT pg_notify('agentgate_revocations', 'alice');
-- error:
SELECT pg_catalog.pg_notify('AGENTGATE_REVOCATIONS', 'alice');
-- error:
SELECT pg_notify(ch, 'alice') FROM (VALUES ('x'), ('agentgate_' || 'revocations')) v(ch);
-- error:
SELECT * FROM pg_notify('agentgate_revocations', 'alice');
-- error: in plpgsql, a channel built at run time
DO $$ DECLARE ch text := 'agentgate_' || 'revocations';
BEGIN PERFORM pg_notify(ch, 'alice'); END $$;
-- error: plpgsql simple expression
DO $$ DECLARE r text; BEGIN r := pg_notify(lower('AGENTGATE_REVOCATIONS'), 'alice')::text; END $$;
-- error: an SQL function of the agent's
CREATE FUNCTION regress_ntf_fn(ch text) RETURNS void LANGUAGE sql
  AS $$ SELECT pg_notify(ch, 'alice') $$;
SELECT regress_ntf_fn('agentgate_revocations');
-- error: inlined into the caller
SELECT regress_ntf_inl('agentgate_revocations');
-- error: a DBA's SECURITY DEFINER function
SELECT regress_ntf_definer('agentgate_revocations', 'alice');
-- error: a view
SELECT * FROM regress_ntf_view;
-- error: a prepared statement
PREPARE regress_ntf_prep(text, text) AS SELECT pg_notify($1, $2);
EXECUTE regress_ntf_prep('agentgate_revocations', 'alice');
-- error: a DEFAULT
CREATE TABLE regress_ntf_def (id int,
  n text DEFAULT pg_notify('agentgate_revocations', 'alice')::text);
INSERT INTO regress_ntf_def (id) VALUES (1);
-- error: a trigger
CREATE FUNCTION regress_ntf_trg() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN PERFORM pg_notify('agentgate_revocations', NEW.id::text); RETURN NEW; END $$;
CREATE TABLE regress_ntf_tt (id int);
CREATE TRIGGER regress_ntf_trg BEFORE INSERT ON regress_ntf_tt
  FOR EACH ROW EXECUTE FUNCTION regress_ntf_trg();
INSERT INTO regress_ntf_tt VALUES (1);
-- error: an operator whose function is pg_notify
CREATE OPERATOR #>>># (FUNCTION = pg_notify, LEFTARG = text, RIGHTARG = text);
SELECT 'agentgate_revocations' #>>># 'alice';
-- error: a CHECK constraint is evaluated outside any planned statement
CREATE TABLE regress_ntf_chk (ch text CHECK (pg_notify(ch, 'alice')::text = ''));
INSERT INTO regress_ntf_chk VALUES ('other');
-- error: so is a CALL argument
CREATE PROCEDURE regress_ntf_proc(x text) LANGUAGE plpgsql AS $$ BEGIN END $$;
CALL regress_ntf_proc(pg_notify('other', 'x')::text);
-- the checked twin called directly decides the same
-- error:
SELECT agentgate.pg_notify_checked('agentgate_revocations', 'alice');
-- allowed: other channels, by statement or function, and UNLISTEN *
-- (LISTEN on any channel is refused by its own baseline rule: behind the
-- transaction pool its notifications would be lost; clients_01_listen)
NOTIFY regress_ntf_chan, 'hello';
-- error:
LISTEN regress_ntf_chan;
UNLISTEN regress_ntf_chan;
UNLISTEN *;
SELECT pg_notify('regress_ntf_chan', 'hello');
SELECT pg_notify('xagentgate_revocations', 'hello');
SELECT regress_ntf_fn('regress_ntf_chan');
SELECT regress_ntf_inl('regress_ntf_chan');
SELECT regress_ntf_definer('regress_ntf_chan', 'x');
EXECUTE regress_ntf_prep('regress_ntf_chan', 'x');
SELECT 'regress_ntf_chan' #>>># 'x';
-- the built-in's own errors are kept
SELECT pg_notify(NULL, 'x');
SELECT pg_notify('', 'x');
SELECT pg_notify(repeat('c', 100), 'x');
ROLLBACK;
\set ON_ERROR_ROLLBACK off

-- with a rule that names the built-in, the unseen paths are allowed
RESET SESSION AUTHORIZATION;
SELECT agentgate.allow(functions => ARRAY['pg_notify(text,text)'::regprocedure],
                       reason => 'regress: notify freely') AS allow_id \gset
SET SESSION AUTHORIZATION regress_ntf_agent;
BEGIN;
CREATE TABLE regress_ntf_chk2 (ch text CHECK (pg_notify(ch, 'alice')::text = ''));
INSERT INTO regress_ntf_chk2 VALUES ('other');
ROLLBACK;
-- ...but the channel is still decided where the arguments are seen
SELECT pg_notify('agentgate_revocations', 'alice');
RESET SESSION AUTHORIZATION;
DELETE FROM agentgate.rules WHERE id = :allow_id;

-- a DBA is not governed
LISTEN agentgate_revocations;
UNLISTEN agentgate_revocations;
NOTIFY agentgate_revocations, 'regress';
SELECT pg_notify('agentgate_revocations', 'regress');
EXPLAIN (VERBOSE, COSTS OFF) SELECT pg_notify('x', 'y');

-- explain() reports the statements
SELECT statement, command, decision, reason FROM agentgate.explain('regress_ntf_agent',
  'NOTIFY agentgate_revocations; LISTEN "AGENTGATE_x"; NOTIFY other');

DROP VIEW regress_ntf_view;
DROP FUNCTION regress_ntf_definer(text, text), regress_ntf_inl(text);
REVOKE CREATE ON SCHEMA public FROM regress_ntf_agent;
DROP ROLE regress_ntf_agent;
DROP ROLE regress_ntf_owner;
