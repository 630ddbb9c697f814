-- (included) the cluster-wide revoked list is read from the audit database
-- at start: wait until this backend can bind delegated stamps
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        BEGIN
            PERFORM agentgate.session_stamp_bound('x', '{a,b}', NULL, now());
            EXIT;
        EXCEPTION WHEN cannot_connect_now THEN
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
END
$$;
