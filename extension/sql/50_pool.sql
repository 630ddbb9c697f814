-- The shared pool (extension/pool.c): every agent of a database reaches the
-- server through one login role, agentgate_pool, and each client's turn on a
-- server connection is bound to its own identity by the carrier below, which
-- the proxy sends (shared_pool = on).  The login role owns nothing, is a
-- member of no role and holds no privilege: unbound, its backends run
-- nothing; bound, they run as the agent's role.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_pool') THEN
        CREATE ROLE agentgate_pool LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$$;
COMMENT ON ROLE agentgate_pool IS
    'agentgate: the shared pool''s login role; runs statements only as the agent identity bound for each client''s turn';

-- PgBouncer's auth_query admits the login role with the agent roles
-- (extension/sql/10_identity.sql; the upgrade from 0.1.0 replaces it).

-- The carrier: CALL agentgate.assume(role, stamp), pipelined by the proxy at
-- the start of each client's turn with the stamp session_stamp() issued for
-- that client connection, as a bound parameter.
CREATE PROCEDURE @extschema@.assume(role text, stamp text)
LANGUAGE C
AS 'MODULE_PATHNAME', 'agentgate_assume';
COMMENT ON PROCEDURE @extschema@.assume(text, text) IS
    'agentgate: binds a shared-pool backend to an agent identity for the client''s turn (the proxy''s carrier)';
REVOKE ALL ON PROCEDURE @extschema@.assume(text, text) FROM PUBLIC;
-- Agents may call it too: bound to their own turn, the same carrier again
-- is nothing and any other is refused, as for the pool's own repeats.
GRANT EXECUTE ON PROCEDURE @extschema@.assume(text, text) TO agentgate_pool, agentgate_agent;
