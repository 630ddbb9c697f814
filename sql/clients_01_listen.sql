--
-- LISTEN is refused for governed sessions: every one of them comes through
-- PgBouncer's transaction pool, where the server connection that ran
-- LISTEN serves other clients after the transaction and notifications are
-- lost (or make PgBouncer drop the connection).  The refusal must hold
-- wherever LISTEN is issued, say why, and say what to do instead.  NOTIFY
-- and UNLISTEN stay allowed; a DBA is not governed.
--
\set VERBOSITY default
CREATE ROLE regress_lsn_agent LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO regress_lsn_agent;
-- a DBA's SECURITY DEFINER function that listens
CREATE FUNCTION regress_lsn_definer(ch text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN EXECUTE format('LISTEN %I', ch); END $$;

-- the baseline rule, with a reason that says why and what to do
SELECT commands, action, applies_to, reason FROM agentgate.rules
 WHERE baseline AND commands = '{LISTEN}';

SET SESSION AUTHORIZATION regress_lsn_agent;
\set ON_ERROR_ROLLBACK on
BEGIN;
-- error: the statement, any channel, any quoting
LISTEN regress_lsn_chan;
-- error:
LISTEN "Regress Lsn Chan";
-- error: built at run time
DO $$ BEGIN EXECUTE 'LISTEN ' || quote_ident('regress_lsn_' || 'chan'); END $$;
-- error: a plpgsql function of the agent's
CREATE FUNCTION regress_lsn_fn() RETURNS void LANGUAGE plpgsql
  AS $$ BEGIN LISTEN regress_lsn_chan; END $$;
SELECT regress_lsn_fn();
-- error: an SQL function of the agent's
CREATE FUNCTION regress_lsn_sqlfn() RETURNS void LANGUAGE sql
  AS $$ LISTEN regress_lsn_chan $$;
SELECT regress_lsn_sqlfn();
-- error: a procedure
CREATE PROCEDURE regress_lsn_proc() LANGUAGE plpgsql
  AS $$ BEGIN EXECUTE 'LISTEN regress_lsn_chan'; END $$;
CALL regress_lsn_proc();
-- error: a DBA's SECURITY DEFINER function (session_user is still the agent)
SELECT regress_lsn_definer('regress_lsn_chan');
-- nothing was registered by any of them
SELECT count(*) AS listening FROM pg_listening_channels();
-- allowed: NOTIFY, pg_notify, UNLISTEN
NOTIFY regress_lsn_chan, 'hello';
SELECT pg_notify('regress_lsn_chan', 'hello');
UNLISTEN regress_lsn_chan;
UNLISTEN *;
ROLLBACK;
\set ON_ERROR_ROLLBACK off
RESET SESSION AUTHORIZATION;

-- explain() reports it
SELECT statement, command, decision, reason FROM agentgate.explain('regress_lsn_agent',
  'LISTEN a; UNLISTEN a; NOTIFY a');

-- a DBA is not governed
LISTEN regress_lsn_chan;
SELECT pg_listening_channels();
UNLISTEN *;

DROP FUNCTION regress_lsn_definer(text);
REVOKE CREATE ON SCHEMA public FROM regress_lsn_agent;
DROP ROLE regress_lsn_agent;
