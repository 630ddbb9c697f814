-- Core objects: the roles every other part relies on, and the schema's
-- privileges.  Roles are cluster-wide, so a second database's CREATE
-- EXTENSION finds them already there.

DO $$
BEGIN
    -- Every governed role is a member of agentgate_agent.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_agent') THEN
        CREATE ROLE agentgate_agent NOLOGIN;
    END IF;
    -- The proxy's admin connection logs in as a member of agentgate_proxy.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_proxy') THEN
        CREATE ROLE agentgate_proxy NOLOGIN;
    END IF;
    -- PgBouncer's auth_user: looks up agent roles, nothing else.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_pgbouncer') THEN
        CREATE ROLE agentgate_pgbouncer LOGIN;
    END IF;
END
$$;

COMMENT ON ROLE agentgate_agent IS 'agentgate: every member (directly or not) is governed by agentgate policy';

-- Agents may call the schema's functions that are granted to them; they
-- read and write none of its tables.
REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
