-- Identity: agents, their per-identity roles, group mappings, and the
-- functions the proxy and DBAs call.

CREATE TABLE @extschema@.agents (
    identity        text PRIMARY KEY
                    CHECK (octet_length(identity) BETWEEN 1 AND 63
                           AND identity !~ '[[:cntrl:]]'),
    role_name       name NOT NULL UNIQUE,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'suspended', 'revoked')),
    groups          text[] NOT NULL DEFAULT '{}',
    token_expires   timestamptz,
    last_login      timestamptz,
    login_count     bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status_changed  timestamptz,
    status_reason   text
);
COMMENT ON TABLE @extschema@.agents IS
    'agentgate: one row per agent identity and its per-identity role';

CREATE TABLE @extschema@.group_roles (
    group_name      text NOT NULL CHECK (octet_length(group_name) BETWEEN 1 AND 255),
    role_name       name NOT NULL,
    PRIMARY KEY (group_name, role_name)
);
COMMENT ON TABLE @extschema@.group_roles IS
    'agentgate: IdP group claim -> PostgreSQL role granted at login (and revoked when the claim goes away)';

-- role_for_identity derives the per-identity role name: readable, within
-- 63 bytes, and collision-proof because the hash of the exact identity is
-- part of it (two identities that differ only in case or punctuation get
-- different roles).
CREATE FUNCTION @extschema@.role_for_identity(identity text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('agent_'
            || left(trim(both '_' from regexp_replace(lower(identity COLLATE "C"), '[^a-z0-9]+', '_', 'g')), 40)
            || '_'
            || left(encode(sha256(convert_to(identity, 'UTF8')), 'hex'), 12))::name
$$;

-- login is called by the proxy (a member of agentgate_proxy) after it has
-- verified the identity token.  It returns the role the agent becomes.
CREATE FUNCTION @extschema@.login(identity text, claims jsonb) RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a           @extschema@.agents;
    created     boolean := false;
    tok_groups  text[] := '{}';
    gclaim      text := coalesce(nullif(current_setting('agentgate.groups_claim', true), ''), 'groups');
    m           record;
BEGIN
    IF identity IS NULL OR octet_length(identity) NOT BETWEEN 1 AND 63
       OR identity ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'invalid agent identity',
            DETAIL = 'An identity is 1 to 63 bytes with no control characters.';
    END IF;
    IF claims IS NULL OR jsonb_typeof(claims) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'invalid token claims',
            DETAIL = 'The claims must be a JSON object.';
    END IF;
    IF jsonb_typeof(claims -> gclaim) = 'array' THEN
        SELECT coalesce(array_agg(DISTINCT g ORDER BY g), '{}') INTO tok_groups
          FROM jsonb_array_elements_text(
                 (SELECT jsonb_agg(e) FROM jsonb_array_elements(claims -> gclaim) e
                   WHERE jsonb_typeof(e) = 'string')) AS g;
    END IF;

    SELECT * INTO a FROM @extschema@.agents ag WHERE ag.identity = login.identity FOR UPDATE;
    IF NOT FOUND THEN
        IF NOT coalesce(current_setting('agentgate.auto_provision', true), 'on')::boolean THEN
            RAISE EXCEPTION USING ERRCODE = '28000',
                MESSAGE = format('unknown agent identity "%s"', identity),
                HINT = 'Ask a database administrator to add the identity to agentgate.agents, or turn on agentgate.auto_provision.';
        END IF;
        INSERT INTO @extschema@.agents (identity, role_name)
             VALUES (identity, @extschema@.role_for_identity(identity))
        ON CONFLICT DO NOTHING;
        SELECT * INTO a FROM @extschema@.agents ag WHERE ag.identity = login.identity FOR UPDATE;
    END IF;

    IF a.status <> 'active' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = format('agent identity "%s" is %s', identity, a.status),
            DETAIL = coalesce('Reason: ' || a.status_reason, 'No reason was recorded.'),
            HINT = 'Ask a database administrator to resume the identity.';
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = a.role_name) THEN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS IN ROLE agentgate_agent',
                       a.role_name);
        EXECUTE format('COMMENT ON ROLE %I IS %L', a.role_name,
                       'agentgate: per-identity role of ' || identity);
        created := true;
    ELSIF NOT pg_has_role(a.role_name, 'agentgate_agent', 'MEMBER')
          OR (SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = a.role_name) THEN
        -- Never hand an agent a role that is not governed, or one with
        -- powers no agent role has: fail closed.
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = format('role "%s" of agent identity "%s" is not a plain member of agentgate_agent', a.role_name, identity),
            HINT = 'Grant agentgate_agent to the role and remove SUPERUSER, REPLICATION and BYPASSRLS, or map the identity to another role.';
    END IF;

    -- Sync memberships managed through group_roles: grant what the token's
    -- groups map to, revoke managed roles it no longer maps to.
    FOR m IN
        SELECT gr.role_name, bool_or(gr.group_name = ANY (tok_groups)) AS wanted
          FROM @extschema@.group_roles gr
         WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = gr.role_name)
         GROUP BY gr.role_name
    LOOP
        IF m.wanted AND NOT EXISTS (
               SELECT 1 FROM pg_auth_members am
                WHERE am.roleid = m.role_name::regrole AND am.member = a.role_name::regrole) THEN
            EXECUTE format('GRANT %I TO %I', m.role_name, a.role_name);
        ELSIF NOT m.wanted AND EXISTS (
               SELECT 1 FROM pg_auth_members am
                WHERE am.roleid = m.role_name::regrole AND am.member = a.role_name::regrole) THEN
            EXECUTE format('REVOKE %I FROM %I', m.role_name, a.role_name);
        END IF;
    END LOOP;

    UPDATE @extschema@.agents ag
       SET groups = tok_groups,
           token_expires = CASE WHEN jsonb_typeof(claims -> 'exp') = 'number'
                                THEN to_timestamp((claims ->> 'exp')::double precision) END,
           last_login = now(),
           login_count = ag.login_count + 1
     WHERE ag.identity = login.identity;

    RETURN a.role_name;
END
$$;

-- set_status changes an identity's status.  A role that may not log in is
-- refused by PgBouncer's lookup at once, and the extension refuses the next
-- statement of sessions already open; the proxy, listening on
-- agentgate_revocations, closes their client connections.
CREATE FUNCTION @extschema@.set_status(identity text, status text, reason text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r name;
BEGIN
    UPDATE @extschema@.agents ag
       SET status = set_status.status, status_changed = now(), status_reason = reason
     WHERE ag.identity = set_status.identity
    RETURNING ag.role_name INTO r;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('agent identity "%s" does not exist', identity),
            HINT = 'See agentgate.agents for known identities.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('ALTER ROLE %I %s', r, CASE WHEN status = 'active' THEN 'LOGIN' ELSE 'NOLOGIN' END);
    END IF;
    IF status <> 'active' THEN
        PERFORM pg_notify('agentgate_revocations', identity);
    END IF;
END
$$;

CREATE FUNCTION @extschema@.revoke(identity text, reason text DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@.set_status(identity, 'revoked', reason) $$;

CREATE FUNCTION @extschema@.suspend(identity text, reason text DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@.set_status(identity, 'suspended', reason) $$;

CREATE FUNCTION @extschema@.resume(identity text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@.set_status(identity, 'active', NULL) $$;

-- Session stamps (identity.c).
CREATE FUNCTION @extschema@.session_stamp(role name) RETURNS text
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'agentgate_session_stamp';

CREATE FUNCTION @extschema@.session_id() RETURNS text
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'agentgate_session_id';

-- PgBouncer's auth_query: answers only for login roles that are governed
-- and not superusers, so PgBouncer can reach no other role through this path.
CREATE FUNCTION @extschema@.pgbouncer_auth(p_usename text, OUT usename name, OUT passwd text)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.rolname, NULL::text
      FROM pg_roles r
     WHERE r.rolname = p_usename
       AND r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolreplication
       AND pg_has_role(r.oid, 'agentgate_agent', 'MEMBER')
$$;

REVOKE ALL ON FUNCTION @extschema@.login(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.set_status(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.revoke(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.suspend(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.resume(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_stamp(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pgbouncer_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.login(text, jsonb) TO agentgate_proxy;
GRANT EXECUTE ON FUNCTION @extschema@.session_stamp(name) TO agentgate_proxy;
GRANT EXECUTE ON FUNCTION @extschema@.pgbouncer_auth(text) TO agentgate_pgbouncer;
