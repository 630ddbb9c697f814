-- Identity: agents, their per-identity roles, group mappings, and the
-- functions the proxy and DBAs call.
--
-- Roles are cluster-wide while these tables are per database: the registry
-- that counts is the one in the database the proxy's admin connection uses.
-- Revocation acts on the role (NOLOGIN), so it holds in every database.

CREATE TABLE @extschema@.agents (
    identity        text PRIMARY KEY
                    CHECK (octet_length(identity) BETWEEN 1 AND 63
                           AND identity !~ '[[:cntrl:]]'),
    role_name       name NOT NULL UNIQUE,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'suspended', 'revoked')),
    provisioned     text NOT NULL DEFAULT 'auto'
                    CHECK (provisioned IN ('auto', 'registered')),
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

-- pg_dump keeps the registry and the mappings.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.agents', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.group_roles', '');

-- role_for_identity derives the per-identity role name:
--   agent_<up to 40 of [a-z0-9_] from the identity>_<16 hex of sha256(identity)>
-- at most 63 bytes, so PostgreSQL never truncates it.  The sanitised part is
-- only for people reading pg_stat_activity; the hash of the exact identity
-- (UTF-8 bytes) keeps identities that differ in case, punctuation, unicode
-- or past the 40th byte apart.  lower() under COLLATE "C" folds ASCII only,
-- so the name does not depend on the database's locale.
CREATE FUNCTION @extschema@.role_for_identity(identity text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('agent_'
            || coalesce(nullif(rtrim(left(s, 40), '_'), '') || '_', '')
            || left(encode(sha256(convert_to(identity, 'UTF8')), 'hex'), 16))::name
      FROM (SELECT trim(both '_' from
                        regexp_replace(lower(identity COLLATE "C"), '[^a-z0-9]+', '_', 'g')) AS s) AS x
$$;

-- role_unsafe_reason (identity.c) says why role r may not be held by an
-- agent (NULL when it may): agent is the agent's own role, or NULL when r is
-- a role to be granted to agents.  It judges r and every role r reaches
-- through membership (SET ROLE would get there): no SUPERUSER, CREATEROLE,
-- CREATEDB, REPLICATION or BYPASSRLS; no role created by initdb (the
-- bootstrap superuser and every predefined pg_* role, pg_monitor,
-- pg_read_all_settings and pg_database_owner included); no agentgate_* role
-- but agentgate_agent; no other agent's role.  The extension applies the
-- same test to session_user at every statement of a governed session.
CREATE FUNCTION @extschema@.role_unsafe_reason(r oid, agent oid DEFAULT NULL) RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'agentgate_role_unsafe_reason';

-- group_roles may map only to existing roles that are safe to hand out and
-- that belong to no identity.
CREATE FUNCTION @extschema@.group_roles_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       oid;
    why     text;
BEGIN
    SELECT oid INTO r FROM pg_roles WHERE rolname = NEW.role_name;
    IF r IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('role "%s" does not exist', NEW.role_name),
            HINT = 'Create the role first, then map the group to it.';
    END IF;
    why := @extschema@.role_unsafe_reason(r);
    IF why IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('group "%s" may not map to role "%s"', NEW.group_name, NEW.role_name),
            DETAIL = format('The role %s.', why),
            HINT = 'Map groups to plain roles that hold only the privileges agents should have.';
    END IF;
    IF NEW.role_name = 'agentgate_agent'
       OR EXISTS (SELECT 1 FROM @extschema@.agents ag WHERE ag.role_name = NEW.role_name) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('group "%s" may not map to role "%s"', NEW.group_name, NEW.role_name),
            DETAIL = 'The role is agentgate_agent or the role of an agent identity.',
            HINT = 'Map groups to plain roles that hold only the privileges agents should have.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER group_roles_check BEFORE INSERT OR UPDATE ON @extschema@.group_roles
    FOR EACH ROW EXECUTE FUNCTION @extschema@.group_roles_check();

-- check_identity refuses what can never be an identity.
CREATE FUNCTION @extschema@.check_identity(identity text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF identity IS NULL OR octet_length(identity) NOT BETWEEN 1 AND 63
       OR identity ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'invalid agent identity',
            DETAIL = 'An identity is 1 to 63 bytes with no control characters.',
            HINT = 'Configure the identity provider to put a short, stable subject in the identity claim.';
    END IF;
END
$$;

-- create_agent_role creates role rn for identity: LOGIN, no powers, a
-- member of agentgate_agent.
CREATE FUNCTION @extschema@.create_agent_role(rn name, identity text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT IN ROLE agentgate_agent',
                   rn);
    EXECUTE format('COMMENT ON ROLE %I IS %L', rn, 'agentgate: per-identity role of ' || identity);
END
$$;

-- register lets a DBA add an identity ahead of its first login (the only
-- way in when agentgate.auto_provision is off).  role_name defaults to the
-- derived name; an existing role must be safe to hand out, and is made a
-- member of agentgate_agent and able to log in.
CREATE FUNCTION @extschema@.register(identity text, role_name name DEFAULT NULL)
RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rn      name := coalesce(register.role_name, @extschema@.role_for_identity(identity));
    a       @extschema@.agents;
    r       oid;
    why     text;
BEGIN
    PERFORM @extschema@.check_identity(identity);
    SELECT * INTO a FROM @extschema@.agents ag WHERE ag.identity = register.identity FOR UPDATE;
    IF FOUND AND a.role_name <> rn THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('agent identity "%s" is already registered with role "%s"', identity, a.role_name),
            HINT = 'Delete the identity from agentgate.agents first to map it to another role.';
    END IF;
    IF EXISTS (SELECT 1 FROM @extschema@.agents ag
                WHERE ag.role_name = rn AND ag.identity <> register.identity) THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('role "%s" already belongs to another agent identity', rn),
            HINT = 'Give every identity a role of its own.';
    END IF;
    IF EXISTS (SELECT 1 FROM @extschema@.group_roles gr WHERE gr.role_name = rn) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('role "%s" is mapped from a group in agentgate.group_roles', rn),
            HINT = 'Give every identity a role of its own.';
    END IF;

    SELECT oid INTO r FROM pg_roles WHERE rolname = rn;
    IF r IS NULL THEN
        PERFORM @extschema@.create_agent_role(rn, identity);
    ELSE
        why := @extschema@.role_unsafe_reason(r, r);
        IF why IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = format('role "%s" may not be an agent role', rn),
                DETAIL = format('The role %s.', why),
                HINT = 'Choose a plain role, or leave role_name out to create one.';
        END IF;
        IF NOT pg_has_role(r, 'agentgate_agent', 'MEMBER') THEN
            EXECUTE format('GRANT agentgate_agent TO %I', rn);
        END IF;
        IF NOT (SELECT rolcanlogin FROM pg_roles WHERE oid = r)
           AND coalesce(a.status, 'active') = 'active' THEN
            EXECUTE format('ALTER ROLE %I LOGIN', rn);
        END IF;
    END IF;

    INSERT INTO @extschema@.agents AS ag (identity, role_name, provisioned)
         VALUES (identity, rn, 'registered')
    ON CONFLICT ON CONSTRAINT agents_pkey DO UPDATE SET provisioned = 'registered';
    RETURN rn;
END
$$;

-- login is called by the proxy (a member of agentgate_proxy) after it has
-- verified the identity token.  It returns the role the agent becomes.
-- Every refusal is SQLSTATE 28000; the proxy relays it as FATAL.
CREATE FUNCTION @extschema@.login(identity text, claims jsonb) RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a           @extschema@.agents;
    tok_groups  text[] := '{}';
    gclaim      text := current_setting('agentgate.groups_claim');
    gval        jsonb;
    exp_at      timestamptz;
    rn          name;
    r           oid;
    why         text;
    m           record;
BEGIN
    PERFORM @extschema@.check_identity(identity);
    IF claims IS NULL OR jsonb_typeof(claims) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'invalid token claims',
            DETAIL = 'The claims must be a JSON object.',
            HINT = 'Pass the verified token''s payload.';
    END IF;

    -- The groups claim: a top-level name (Auth0's namespaced URLs included)
    -- or a JSON pointer such as /realm_access/roles.
    IF left(gclaim, 1) = '/' THEN
        gval := claims #> ARRAY(SELECT replace(replace(p, '~1', '/'), '~0', '~')
                                  FROM unnest(string_to_array(substr(gclaim, 2), '/'))
                                       WITH ORDINALITY AS t(p, n)
                                 ORDER BY n);
    ELSE
        gval := claims -> gclaim;
    END IF;
    IF gval IS NULL OR jsonb_typeof(gval) = 'null' THEN
        tok_groups := '{}';
    ELSIF jsonb_typeof(gval) = 'string' THEN
        tok_groups := ARRAY[gval #>> '{}'];
    ELSIF jsonb_typeof(gval) = 'array'
          AND jsonb_array_length(gval) <= 1000
          AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(gval) e
                           WHERE jsonb_typeof(e) <> 'string') THEN
        SELECT coalesce(array_agg(DISTINCT g ORDER BY g), '{}') INTO tok_groups
          FROM jsonb_array_elements_text(gval) AS g;
    ELSE
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'invalid token claims',
            DETAIL = format('Claim "%s" must be a string or an array of at most 1000 strings.', gclaim),
            HINT = 'Check the identity provider''s groups mapper and agentgate.groups_claim.';
    END IF;

    -- exp: recorded; a token already expired (60 s leeway) is refused even
    -- if the caller did not check.
    IF claims ? 'exp' THEN
        IF jsonb_typeof(claims -> 'exp') <> 'number'
           OR (claims ->> 'exp')::numeric NOT BETWEEN 0 AND 253402300799 THEN
            RAISE EXCEPTION USING ERRCODE = '28000',
                MESSAGE = 'invalid token claims',
                DETAIL = 'Claim "exp" must be a NumericDate (seconds since 1970).',
                HINT = 'Pass the verified token''s payload.';
        END IF;
        exp_at := to_timestamp((claims ->> 'exp')::double precision);
        IF exp_at < now() - interval '60 seconds' THEN
            RAISE EXCEPTION USING ERRCODE = '28000',
                MESSAGE = 'identity token has expired',
                DETAIL = format('The token expired at %s.', to_char(exp_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                HINT = 'Get a fresh token from the identity provider.';
        END IF;
    END IF;

    SELECT * INTO a FROM @extschema@.agents ag WHERE ag.identity = login.identity FOR UPDATE;
    IF NOT FOUND THEN
        IF NOT current_setting('agentgate.auto_provision')::boolean THEN
            RAISE EXCEPTION USING ERRCODE = '28000',
                MESSAGE = format('unknown agent identity "%s"', identity),
                DETAIL = 'agentgate.auto_provision is off and the identity is not registered.',
                HINT = 'Ask a database administrator to run agentgate.register() for the identity.';
        END IF;
        rn := @extschema@.role_for_identity(identity);
        IF EXISTS (SELECT 1 FROM @extschema@.agents ag WHERE ag.role_name = rn) THEN
            RAISE EXCEPTION USING ERRCODE = '28000',
                MESSAGE = format('role name "%s" for agent identity "%s" is taken', rn, identity),
                DETAIL = 'Another identity already has that role.',
                HINT = 'Ask a database administrator to register the identity with agentgate.register(identity, role_name).';
        END IF;
        -- A concurrent first login of the same identity waits here for the
        -- other's commit, then finds its row.
        INSERT INTO @extschema@.agents (identity, role_name, provisioned)
             VALUES (identity, rn, 'auto')
        ON CONFLICT ON CONSTRAINT agents_pkey DO NOTHING;
        SELECT * INTO a FROM @extschema@.agents ag WHERE ag.identity = login.identity FOR UPDATE;
    END IF;

    IF a.status <> 'active' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = format('agent identity "%s" is %s', identity, a.status),
            DETAIL = coalesce('Reason: ' || a.status_reason, 'No reason was recorded.'),
            HINT = 'Ask a database administrator to resume the identity.';
    END IF;

    SELECT oid INTO r FROM pg_roles WHERE rolname = a.role_name;
    IF r IS NULL THEN
        IF NOT current_setting('agentgate.auto_provision')::boolean THEN
            RAISE EXCEPTION USING ERRCODE = '28000',
                MESSAGE = format('role "%s" of agent identity "%s" does not exist', a.role_name, identity),
                HINT = 'Ask a database administrator to run agentgate.register() for the identity again.';
        END IF;
        PERFORM @extschema@.create_agent_role(a.role_name, identity);
        r := a.role_name::regrole::oid;
    END IF;

    -- Sync memberships managed through group_roles: grant what the token's
    -- groups map to, revoke managed roles it no longer maps to.  A mapped
    -- role that has become unsafe is never granted (and is taken away).
    -- If the check below refuses the login, all of this is rolled back.
    FOR m IN
        SELECT gr.role_name, pr.oid AS roleid,
               bool_or(gr.group_name = ANY (tok_groups))
                 AND @extschema@.role_unsafe_reason(pr.oid) IS NULL AS wanted
          FROM @extschema@.group_roles gr
          JOIN pg_roles pr ON pr.rolname = gr.role_name
         WHERE pr.oid <> r
         GROUP BY gr.role_name, pr.oid
         ORDER BY gr.role_name
    LOOP
        IF m.wanted AND NOT EXISTS (
               SELECT 1 FROM pg_auth_members am
                WHERE am.roleid = m.roleid AND am.member = r) THEN
            EXECUTE format('GRANT %I TO %I', m.role_name, a.role_name);
        ELSIF NOT m.wanted AND EXISTS (
               SELECT 1 FROM pg_auth_members am
                WHERE am.roleid = m.roleid AND am.member = r) THEN
            EXECUTE format('REVOKE %I FROM %I', m.role_name, a.role_name);
        END IF;
    END LOOP;

    -- Never hand an agent a role that is not governed, or one with powers
    -- no agent role has (itself or through any role it can become): fail
    -- closed.
    why := @extschema@.role_unsafe_reason(r, r);
    IF why IS NULL AND NOT pg_has_role(r, 'agentgate_agent', 'MEMBER') THEN
        why := 'is not a member of agentgate_agent';
    END IF;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = format('role "%s" of agent identity "%s" is not a plain agent role', a.role_name, identity),
            DETAIL = format('The role %s.', why),
            HINT = 'Make the role a member of agentgate_agent that reaches no role with SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, no predefined or agentgate role and no other agent''s role, or register the identity with another role.';
    END IF;
    IF NOT (SELECT rolcanlogin FROM pg_roles WHERE oid = r) THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = format('role "%s" of agent identity "%s" may not log in', a.role_name, identity),
            DETAIL = 'The role is NOLOGIN though the identity is active.',
            HINT = 'Ask a database administrator to run agentgate.resume() for the identity.';
    END IF;

    UPDATE @extschema@.agents ag
       SET groups = tok_groups,
           token_expires = exp_at,
           last_login = now(),
           login_count = ag.login_count + 1
     WHERE ag.identity = login.identity;

    RETURN a.role_name;
END
$$;

-- terminate_at_commit (identity.c): terminate the role's backends once the
-- calling transaction commits, if agentgate.terminate_revoked_sessions is on.
CREATE FUNCTION @extschema@.terminate_at_commit(role oid) RETURNS boolean
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'agentgate_terminate_at_commit';

-- Whatever changes an identity's status (set_status, a DBA's UPDATE, a
-- DELETE) applies it to the role: NOLOGIN stops PgBouncer's new server
-- logins and, through the extension's per-statement check, every live
-- session; the proxy, listening on agentgate_revocations, closes the
-- identity's client connections.
CREATE FUNCTION @extschema@.agents_status_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rec     @extschema@.agents := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    active  boolean := TG_OP <> 'DELETE' AND NEW.status = 'active';
    r       oid;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
        RETURN NULL;
    END IF;
    SELECT oid INTO r FROM pg_roles WHERE rolname = rec.role_name;
    IF r IS NOT NULL AND pg_has_role(r, 'agentgate_agent', 'MEMBER')
       AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE oid = r AND rolsuper) THEN
        EXECUTE format('ALTER ROLE %I %s', rec.role_name, CASE WHEN active THEN 'LOGIN' ELSE 'NOLOGIN' END);
        IF NOT active THEN
            PERFORM @extschema@.terminate_at_commit(r);
        END IF;
    END IF;
    IF NOT active THEN
        PERFORM pg_notify('agentgate_revocations', rec.identity);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER agents_status_apply
    AFTER UPDATE OF status OR DELETE ON @extschema@.agents
    FOR EACH ROW EXECUTE FUNCTION @extschema@.agents_status_apply();

-- Session stamps (identity.c).  The session id is a column of its own: the
-- proxy takes it from here and never parses the stamp.
CREATE FUNCTION @extschema@.session_stamp(role name, OUT stamp text, OUT session_id text)
RETURNS record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'agentgate_session_stamp';

-- session_id reads this backend's application_name and key: never in a
-- parallel worker.
CREATE FUNCTION @extschema@.session_id() RETURNS text
LANGUAGE C STABLE PARALLEL RESTRICTED
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
       AND (pg_has_role(r.oid, 'agentgate_agent', 'MEMBER')
            OR r.rolname = 'agentgate_pool')
$$;

REVOKE ALL ON TABLE @extschema@.agents, @extschema@.group_roles FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.login(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.register(text, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_stamp(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pgbouncer_auth(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.terminate_at_commit(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.create_agent_role(name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.role_unsafe_reason(oid, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.agents_status_apply() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.group_roles_check() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.login(text, jsonb) TO agentgate_proxy;
GRANT EXECUTE ON FUNCTION @extschema@.session_stamp(name) TO agentgate_proxy;
GRANT EXECUTE ON FUNCTION @extschema@.pgbouncer_auth(text) TO agentgate_pgbouncer;

-- identity_status (for agentgate-proxy): the registry's status of each
-- identity named; identities not in the registry are left out.  A
-- revocation notice on agentgate_revocations can come from any role allowed
-- to NOTIFY, so the proxy treats one as a hint and closes an identity's
-- connections only when this says it is no longer active.
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
