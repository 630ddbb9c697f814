-- The role agentgate governs this session as: the identity a shared-pool
-- backend is bound to for the client's turn (extension/pool.c; session_user
-- is agentgate_pool there), session_user elsewhere.  What an agent's own
-- views of its requests and sessions filter on.
CREATE FUNCTION @extschema@.session_role()
RETURNS name
LANGUAGE C STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'agentgate_session_role';
COMMENT ON FUNCTION @extschema@.session_role() IS
    'agentgate: the role this session is governed as (the bound identity in the shared pool)';
