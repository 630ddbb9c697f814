-- agentgate 0.1.0 -> 0.2.0, pooler: the function agentgate-proxy reads an
-- identity's status with before it acts on a revocation notice (see
-- extension/sql/10_identity.sql).

CREATE FUNCTION @extschema@.identity_status(identities text[])
RETURNS TABLE (identity text, status text)
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ag.identity, ag.status
      FROM @extschema@.agents ag
     WHERE ag.identity = ANY (identities)
$$;
REVOKE ALL ON FUNCTION @extschema@.identity_status(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.identity_status(text[]) TO agentgate_proxy;
