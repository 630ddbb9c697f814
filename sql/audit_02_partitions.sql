--
-- Audit partitions: days are attached ahead of time without taking ACCESS
-- EXCLUSIVE on the parent (the writer's inserts never wait), rows that
-- reached the DEFAULT partition move into their day when it is attached,
-- and retention drops old days.  Runs in database postgres, where the
-- writer keeps the log.
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
-- the writer attached today and the next three days (UTC)
SELECT count(*) >= 4 AS days_ahead
  FROM pg_inherits WHERE inhparent = 'agentgate.audit_log'::regclass
   AND inhrelid::regclass::text ~ '^agentgate\.audit_log_[0-9]{8}$';

-- attaching more days takes SHARE UPDATE EXCLUSIVE on the parent, not more
BEGIN;
SELECT agentgate.audit_maintain(0, 6);
SELECT mode FROM pg_locks
 WHERE relation = 'agentgate.audit_log'::regclass AND pid = pg_backend_pid()
 ORDER BY mode;
ROLLBACK;

-- a row that landed in DEFAULT moves into its day when the day is attached
INSERT INTO agentgate.audit_log (ts, epoch, decision, statement)
VALUES (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '9 days 1 hour',
        0, 'gap', 'regress: early row');
SELECT tableoid::regclass = 'agentgate.audit_log_default'::regclass AS in_default
  FROM agentgate.audit_log WHERE statement = 'regress: early row';
SELECT agentgate.audit_maintain(0, 10);
SELECT tableoid::regclass::text ~ '^agentgate\.audit_log_[0-9]{8}$' AS moved
  FROM agentgate.audit_log WHERE statement = 'regress: early row';
SELECT count(*) AS left_in_default FROM agentgate.audit_log_default;

-- retention drops days older than N, keeps the rest
CREATE TABLE agentgate.audit_log_20200101 (LIKE agentgate.audit_log);
ALTER TABLE agentgate.audit_log ATTACH PARTITION agentgate.audit_log_20200101
    FOR VALUES FROM ('2020-01-01 00:00+00') TO ('2020-01-02 00:00+00');
SELECT agentgate.audit_maintain(30, 3);
SELECT to_regclass('agentgate.audit_log_20200101') IS NULL AS old_day_dropped,
       to_regclass('agentgate.audit_log_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')) IS NOT NULL AS today_kept;

-- only DBAs maintain partitions
CREATE ROLE regress_audit_agent2 LOGIN IN ROLE agentgate_agent;
SET SESSION AUTHORIZATION regress_audit_agent2;
-- error: permission denied
SELECT agentgate.audit_maintain(1, 0);
RESET SESSION AUTHORIZATION;

-- a DBA's trigger on the log (shipping rows elsewhere, say) fires for the
-- writer's rows: batches go through the SQL path when the day's partition
-- has triggers
SELECT agentgate.audit_flush();   -- rows from before the trigger are written
CREATE TABLE regress_shipped (role_name name, command_tag text);
CREATE FUNCTION regress_ship() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.regress_shipped VALUES (NEW.role_name, NEW.command_tag);
    RETURN NULL;
END $$;
CREATE TRIGGER regress_ship AFTER INSERT ON agentgate.audit_log
    FOR EACH ROW EXECUTE FUNCTION regress_ship();
SELECT set_config('application_name', 'psql ' || (agentgate.session_stamp('regress_audit_agent2')).stamp, false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION regress_audit_agent2;
SELECT 'shipped' AS ship;
SELECT agentgate.audit_flush();
RESET SESSION AUTHORIZATION;
SELECT agentgate.audit_flush();
SELECT command_tag, count(*) FROM regress_shipped WHERE role_name = 'regress_audit_agent2'
 GROUP BY 1 ORDER BY 1;
DROP TRIGGER regress_ship ON agentgate.audit_log;
DROP TABLE regress_shipped;
DROP FUNCTION regress_ship();

-- clean up the days attached above (beyond what the writer keeps)
DELETE FROM agentgate.audit_log WHERE statement = 'regress: early row';
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'agentgate.audit_log'::regclass
                AND c.relname ~ '^audit_log_[0-9]{8}$'
                AND to_date(substr(c.relname, 11), 'YYYYMMDD') > (now() AT TIME ZONE 'UTC')::date + 3
    LOOP
        EXECUTE format('DROP TABLE agentgate.%I', r.relname);
    END LOOP;
END
$$;
DELETE FROM agentgate.audit_log WHERE role_name = 'regress_audit_agent2';
DROP ROLE regress_audit_agent2;
\c contrib_regression
