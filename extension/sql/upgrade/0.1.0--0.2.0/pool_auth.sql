-- agentgate 0.1.0 -> 0.2.0, shared pool: PgBouncer's auth_query admits
-- agentgate_pool (extension/sql/50_pool.sql) as well as the agent roles.
CREATE OR REPLACE FUNCTION @extschema@.pgbouncer_auth(p_usename text, OUT usename name, OUT passwd text)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.rolname, NULL::text
      FROM pg_roles r
     WHERE r.rolname = p_usename
       AND r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolreplication
       AND (pg_has_role(r.oid, 'agentgate_agent', 'MEMBER')
            OR r.rolname = 'agentgate_pool')
$$;
