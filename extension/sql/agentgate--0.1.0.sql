-- agentgate 0.1.0, as released (the fragments of extension/sql/ at 0.1.0); kept to test upgrades
\echo Use "CREATE EXTENSION agentgate" to load this file. \quit

-- extension/sql/00_core.sql
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

-- extension/sql/05_pgquery.sql
-- Statement fingerprints and normalised text (pgquery.c, libpg_query).

CREATE FUNCTION @extschema@.normalize(sql text) RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'agentgate_normalize';
COMMENT ON FUNCTION @extschema@.normalize(text) IS
    'agentgate: sql with literals replaced by $n, as the audit log stores it';

CREATE FUNCTION @extschema@.fingerprint(sql text) RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'agentgate_fingerprint';
COMMENT ON FUNCTION @extschema@.fingerprint(text) IS
    'agentgate: libpg_query fingerprint of sql; statements that differ only in literals share it';

-- extension/sql/10_identity.sql
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

-- role_unsafe_reason says why a role may not be handed to an agent (NULL
-- when it may): a role with powers no agent role has, or one that can
-- reach such a role through membership (SET ROLE would get there), or
-- agentgate's own roles and the predefined roles that escape the database.
CREATE FUNCTION @extschema@.role_unsafe_reason(r oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE oid = r) THEN 'does not exist'
        ELSE (
            SELECT CASE
                WHEN m.oid = r AND power IS NOT NULL THEN 'has ' || power
                WHEN m.oid = r THEN 'is the reserved role ' || m.rolname
                WHEN power IS NOT NULL THEN format('is a member of "%s", which has %s', m.rolname, power)
                ELSE 'is a member of ' || m.rolname
                END
              FROM pg_roles m,
                   LATERAL (SELECT CASE
                                WHEN m.rolsuper THEN 'SUPERUSER'
                                WHEN m.rolcreaterole THEN 'CREATEROLE'
                                WHEN m.rolcreatedb THEN 'CREATEDB'
                                WHEN m.rolreplication THEN 'REPLICATION'
                                WHEN m.rolbypassrls THEN 'BYPASSRLS'
                                END AS power) AS p
             WHERE (m.oid = r OR pg_has_role(r, m.oid, 'MEMBER'))
               AND (power IS NOT NULL
                    OR m.rolname IN ('agentgate_proxy', 'agentgate_pgbouncer',
                                     'pg_execute_server_program', 'pg_read_server_files',
                                     'pg_write_server_files', 'pg_signal_backend'))
             ORDER BY m.oid = r DESC, m.rolname
             LIMIT 1)
        END
$$;

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
LANGUAGE plpgsql IMMUTABLE
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
        why := @extschema@.role_unsafe_reason(r);
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
    why := @extschema@.role_unsafe_reason(r);
    IF why IS NULL AND NOT pg_has_role(r, 'agentgate_agent', 'MEMBER') THEN
        why := 'is not a member of agentgate_agent';
    END IF;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = format('role "%s" of agent identity "%s" is not a plain agent role', a.role_name, identity),
            DETAIL = format('The role %s.', why),
            HINT = 'Make the role a member of agentgate_agent without SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, or register the identity with another role.';
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

-- set_status changes an identity's status (the trigger above applies it).
CREATE FUNCTION @extschema@.set_status(identity text, status text, reason text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF status IS NULL OR status NOT IN ('active', 'suspended', 'revoked') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('invalid agent status "%s"', status),
            HINT = 'Use active, suspended or revoked.';
    END IF;
    UPDATE @extschema@.agents ag
       SET status = set_status.status, status_changed = now(), status_reason = reason
     WHERE ag.identity = set_status.identity;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('agent identity "%s" does not exist', identity),
            HINT = 'See agentgate.agents for known identities.';
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

REVOKE ALL ON TABLE @extschema@.agents, @extschema@.group_roles FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.login(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.register(text, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.set_status(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.revoke(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.suspend(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.resume(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_stamp(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pgbouncer_auth(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.terminate_at_commit(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.create_agent_role(name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.role_unsafe_reason(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.agents_status_apply() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.group_roles_check() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.login(text, jsonb) TO agentgate_proxy;
GRANT EXECUTE ON FUNCTION @extschema@.session_stamp(name) TO agentgate_proxy;
GRANT EXECUTE ON FUNCTION @extschema@.pgbouncer_auth(text) TO agentgate_pgbouncer;

-- extension/sql/20_policy.sql
-- Statement policy: the rules table, its helpers, explain(), and the
-- baseline guardrails (rows with baseline = true; a DBA may disable any of
-- them with UPDATE agentgate.rules SET enabled = false WHERE id = ...).

CREATE FUNCTION @extschema@.command_tags(OUT tag text, OUT class text, OUT decided boolean)
RETURNS SETOF record
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'agentgate_command_tags';
COMMENT ON FUNCTION @extschema@.command_tags() IS
    'agentgate: every command tag a rule may name, its class, and whether statements with it are decided at all';

CREATE TABLE @extschema@.rules (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    priority    integer NOT NULL DEFAULT 100,
    enabled     boolean NOT NULL DEFAULT true,
    applies_to  regrole NOT NULL DEFAULT 'agentgate_agent'::text::regrole,
    commands    text[],
    relation    regclass,
    schema      regnamespace,
    columns     text[],
    functions   regprocedure[],
    condition   text,
    max_rows    bigint,
    fingerprint text,
    action      text NOT NULL CHECK (action IN ('allow', 'block', 'log')),
    reason      text NOT NULL DEFAULT '',
    baseline    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.rules IS
    'agentgate: statement policy; the highest-priority matching rule decides (block wins a tie), else agentgate.default_action';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rules', 'WHERE NOT baseline');

CREATE FUNCTION @extschema@._rules_validate() RETURNS trigger
LANGUAGE C AS 'MODULE_PATHNAME', 'agentgate_rules_validate';
CREATE FUNCTION @extschema@._rules_changed() RETURNS trigger
LANGUAGE C AS 'MODULE_PATHNAME', 'agentgate_rules_changed';
REVOKE ALL ON FUNCTION @extschema@._rules_validate() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._rules_changed() FROM PUBLIC;

CREATE TRIGGER rules_validate BEFORE INSERT OR UPDATE ON @extschema@.rules
    FOR EACH ROW EXECUTE FUNCTION @extschema@._rules_validate();
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.rules
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._rules_changed();

-- Helpers: agentgate.block(commands => ARRAY['DELETE'], relation => 'orders',
-- reason => '...'), and likewise allow() and log().  Each returns the new
-- rule's id.  The three differ only in the action they insert, so they are
-- made from one definition.
DO $helpers$
DECLARE
    act text;
BEGIN
    FOREACH act IN ARRAY ARRAY['block', 'allow', 'log']
    LOOP
        EXECUTE format($def$
            CREATE FUNCTION @extschema@.%I(
                commands    text[] DEFAULT NULL,
                relation    regclass DEFAULT NULL,
                columns     text[] DEFAULT NULL,
                condition   text DEFAULT NULL,
                max_rows    bigint DEFAULT NULL,
                fingerprint text DEFAULT NULL,
                functions   regprocedure[] DEFAULT NULL,
                schema      regnamespace DEFAULT NULL,
                reason      text DEFAULT '',
                applies_to  regrole DEFAULT 'agentgate_agent'::text::regrole,
                priority    integer DEFAULT 100)
            RETURNS bigint
            LANGUAGE sql
            SET search_path = pg_catalog, pg_temp
            AS $body$
                INSERT INTO @extschema@.rules (commands, relation, columns, condition, max_rows,
                                               fingerprint, functions, schema, reason, applies_to,
                                               priority, action)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, ''), $10, $11, %L)
                RETURNING id
            $body$$def$, act, act);
    END LOOP;
END
$helpers$;

-- The helpers run with the caller's rights: only whoever may write
-- agentgate.rules (a DBA) gets anything from them.
REVOKE ALL ON FUNCTION @extschema@.block(text[], regclass, text[], text, bigint, text, regprocedure[], regnamespace, text, regrole, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.allow(text[], regclass, text[], text, bigint, text, regprocedure[], regnamespace, text, regrole, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.log(text[], regclass, text[], text, bigint, text, regprocedure[], regnamespace, text, regrole, integer) FROM PUBLIC;

CREATE FUNCTION @extschema@.explain(role name, sql text,
    OUT statement integer, OUT command text, OUT decision text,
    OUT rule_id bigint, OUT reason text)
RETURNS SETOF record
LANGUAGE C
AS 'MODULE_PATHNAME', 'agentgate_explain';
COMMENT ON FUNCTION @extschema@.explain(name, text) IS
    'agentgate: the policy decision for each statement of sql if role ran it; runs nothing';
REVOKE ALL ON FUNCTION @extschema@.explain(name, text) FROM PUBLIC;

-- Baseline guardrails.
INSERT INTO @extschema@.rules (priority, commands, action, reason, baseline)
SELECT 1000, array_agg(tag ORDER BY tag), 'block',
       'baseline: agents may not drop objects', true
  FROM @extschema@.command_tags() WHERE tag LIKE 'DROP %';

INSERT INTO @extschema@.rules (priority, commands, action, reason, baseline) VALUES
    (1000, '{TRUNCATE}', 'block', 'baseline: agents may not truncate tables', true),
    (1000, '{ALTER SYSTEM}', 'block', 'baseline: agents may not change the server configuration', true),
    (1000, '{COPY PROGRAM,COPY FILE}', 'block',
     'baseline: agents may not run programs or read and write server files through COPY', true),
    (1000, '{LOAD}', 'block', 'baseline: agents may not load libraries', true),
    (1000, '{CREATE EXTENSION,ALTER EXTENSION,DROP EXTENSION}', 'block',
     'baseline: agents may not install, change or remove extensions', true),
    (1000, '{ROLE}', 'block',
     'baseline: agents may not manage roles or privileges', true),
    (1000, '{SET ROLE,SET SESSION AUTHORIZATION,SET AGENTGATE}', 'block',
     'baseline: agents may not change their identity or agentgate settings', true),
    (1000, '{CREATE EVENT TRIGGER,ALTER EVENT TRIGGER}', 'block',
     'baseline: agents may not create event triggers', true),
    (1000, '{CREATE RULE,ALTER RULE}', 'block',
     'baseline: agents may not create rewrite rules', true);

INSERT INTO @extschema@.rules (priority, commands, condition, action, reason, baseline) VALUES
    (1000, '{UPDATE,DELETE,MERGE}', 'no_where', 'block',
     'baseline: agents may not update, delete or merge without a restricting WHERE clause', true),
    (1000, '{CREATE FUNCTION,CREATE PROCEDURE}', 'untrusted_language', 'block',
     'baseline: agents may not create functions in untrusted languages', true),
    (1000, '{DDL}', 'not_owner', 'block',
     'baseline: agents may alter only relations they own themselves', true);

INSERT INTO @extschema@.rules (priority, commands, schema, action, reason, baseline) VALUES
    (1000, '{READ,WRITE,DDL}', '@extschema@', 'block',
     'baseline: agents may use agentgate''s tables only through its functions', true);

INSERT INTO @extschema@.rules (priority, commands, relation, action, reason, baseline) VALUES
    (1000, '{READ}', 'pg_catalog.pg_statistic', 'block',
     'baseline: column statistics reveal stored values', true),
    (1000, '{READ}', 'pg_catalog.pg_statistic_ext_data', 'block',
     'baseline: extended statistics reveal stored values', true);

INSERT INTO @extschema@.rules (priority, functions, action, reason, baseline)
SELECT 1000, array_agg(p.oid::regprocedure ORDER BY p.oid), 'block',
       'baseline: agents may not read server files or directories', true
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'pg_catalog'::regnamespace
   AND p.proname IN ('pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file',
                     'lo_import', 'lo_export', 'pg_ls_logdir', 'pg_ls_waldir',
                     'pg_ls_tmpdir', 'pg_ls_archive_statusdir', 'pg_ls_logicalsnapdir',
                     'pg_ls_logicalmapdir', 'pg_ls_replslotdir');

-- extension/sql/30_audit.sql
-- Audit: the log the background worker writes (in the database named by
-- agentgate.audit_database; the tables exist in every database that has the
-- extension, only that one's are filled), the per-session summary and the
-- replay function.  Agents get no privilege on any of it.

DO $$
BEGIN
    -- Reads the audit log (DBAs, SIEM shippers); never give it to agents.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_auditor') THEN
        CREATE ROLE agentgate_auditor NOLOGIN;
    END IF;
END
$$;

CREATE TABLE @extschema@.audit_log (
    ts              timestamptz NOT NULL,   -- statement start
    seq             bigint,                 -- record number within the epoch
    epoch           bigint NOT NULL,        -- ring incarnation (server start)
    identity        text,                   -- agent identity (agentgate.agents)
    role_name       name,                   -- session_user
    session_id      text,                   -- verified session stamp
    backend_session text,                   -- backend start time.pid, like %c
    pid             integer,
    database        name,
    client_addr     inet,
    command_tag     text,
    statement       text,                   -- literals replaced by $n
    fingerprint     text,                   -- hash of the normalised text, hex
    relations       text[],
    decision        text NOT NULL,          -- allowed blocked error monitored logged ... gap
    rule_id         bigint,
    sqlstate        text,
    error_message   text,
    rows            bigint,
    duration_ms     double precision,
    nested          boolean NOT NULL DEFAULT false,
    normalized      boolean NOT NULL DEFAULT false,
    truncated       boolean NOT NULL DEFAULT false,
    lost            bigint                  -- gap rows: records lost (NULL: unknown)
) PARTITION BY RANGE (ts);
COMMENT ON TABLE @extschema@.audit_log IS
    'agentgate: one row per statement of governed sessions; gap rows count records lost';

-- The safety net: rows whose day has no partition yet.  Kept empty by
-- audit_maintain, which attaches days ahead of time.
CREATE TABLE @extschema@.audit_log_default PARTITION OF @extschema@.audit_log DEFAULT;

CREATE INDEX audit_log_ts_brin ON @extschema@.audit_log USING brin (ts);
CREATE INDEX audit_log_role_ts ON @extschema@.audit_log (role_name, ts);

-- One row per ring epoch: the last record committed.  The worker compares
-- it with what the previous server run appended to count lost records.
CREATE TABLE @extschema@.audit_state (
    epoch       bigint PRIMARY KEY,
    last_seq    bigint NOT NULL DEFAULT -1,
    started     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz,
    closed      boolean NOT NULL DEFAULT false
);

-- audit_maintain attaches the partitions of today and the next days_ahead
-- days (UTC) and drops days older than retention_days (0: keep all).
-- CREATE TABLE ... LIKE + ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on
-- the parent, which does not conflict with the writer's inserts.  Drops
-- need ACCESS EXCLUSIVE: they give up after lock_timeout and retry on the
-- next run rather than stall the writer behind a long reader.
CREATE FUNCTION @extschema@.audit_maintain(retention_days integer DEFAULT 0,
                                           days_ahead integer DEFAULT 3)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    today   date := (now() AT TIME ZONE 'UTC')::date;
    d       date;
    pname   text;
    lo      timestamptz;
    hi      timestamptz;
    r       record;
BEGIN
    FOR i IN 0 .. greatest(days_ahead, 0) LOOP
        d := today + i;
        pname := 'audit_log_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(format('@extschema@.%I', pname)) IS NOT NULL THEN
            CONTINUE;
        END IF;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        BEGIN
            EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname);
            -- rows that reached the safety net for that day move first
            EXECUTE format('WITH m AS (DELETE FROM @extschema@.audit_log_default WHERE ts >= %L AND ts < %L RETURNING *)'
                           ' INSERT INTO @extschema@.%I SELECT * FROM m', lo, hi, pname);
            EXECUTE format('ALTER TABLE @extschema@.audit_log ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                           pname, lo, hi);
        EXCEPTION WHEN lock_not_available OR object_in_use THEN
            RAISE WARNING 'agentgate: could not attach audit partition %: %', pname, SQLERRM;
        END;
    END LOOP;

    IF retention_days > 0 THEN
        FOR r IN
            SELECT c.relname
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = '@extschema@.audit_log'::regclass
               AND c.relname ~ '^audit_log_[0-9]{8}$'
               AND to_date(substr(c.relname, 11), 'YYYYMMDD') < today - retention_days
        LOOP
            BEGIN
                EXECUTE format('ALTER TABLE @extschema@.audit_log DETACH PARTITION @extschema@.%I', r.relname);
                EXECUTE format('DROP TABLE @extschema@.%I', r.relname);
                -- sessions that ended on or before that day went with it
                DELETE FROM @extschema@.audit_sessions
                 WHERE ended < (to_date(substr(r.relname, 11), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
            EXCEPTION WHEN lock_not_available OR object_in_use THEN
                RAISE WARNING 'agentgate: could not drop audit partition %: %', r.relname, SQLERRM;
            END;
        END LOOP;
    END IF;
END
$$;

-- audit_sessions: one row per agent session (the verified session id;
-- sessions without a stamp are keyed by their backend), kept by the writer
-- in the same transaction as the session's rows, so that listing sessions
-- and finding one's time span never aggregates the whole log.
CREATE TABLE @extschema@.audit_sessions (
    session_id  text PRIMARY KEY,
    identity    text,
    role_name   name,
    started     timestamptz NOT NULL,
    ended       timestamptz NOT NULL,
    statements  bigint NOT NULL DEFAULT 0,
    allowed     bigint NOT NULL DEFAULT 0,
    blocked     bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    monitored   bigint NOT NULL DEFAULT 0,
    logged      bigint NOT NULL DEFAULT 0,
    masked      bigint NOT NULL DEFAULT 0,
    approved    bigint NOT NULL DEFAULT 0,
    denied      bigint NOT NULL DEFAULT 0
);
CREATE INDEX audit_sessions_ended ON @extschema@.audit_sessions (ended);
COMMENT ON TABLE @extschema@.audit_sessions IS
    'agentgate: per-session summary of audit_log, kept by the audit writer';

CREATE VIEW @extschema@.sessions AS
SELECT session_id, identity, role_name, started, ended, statements,
       allowed, blocked, errors, monitored, logged, masked, approved, denied
  FROM @extschema@.audit_sessions;
COMMENT ON VIEW @extschema@.sessions IS
    'agentgate: one row per agent session with counts by decision';

-- session_replay: what a session did, in order.  The summary gives the
-- session's time span; with it as plain values the planner prunes the
-- partitions outside it and the BRIN index on ts skips the rest.  A session
-- without a summary (rows older than the summary table) is searched for in
-- the whole log.
CREATE FUNCTION @extschema@.session_replay(session_id text)
RETURNS TABLE (ts timestamptz, seq bigint, pid integer, nested boolean,
               command_tag text, statement text, relations text[],
               decision text, rule_id bigint, sqlstate text,
               error_message text, rows bigint, duration_ms double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    lo  timestamptz := '-infinity';
    hi  timestamptz := 'infinity';
BEGIN
    SELECT s.started, s.ended INTO lo, hi
      FROM @extschema@.audit_sessions s
     WHERE s.session_id = session_replay.session_id;
    IF NOT FOUND THEN
        lo := '-infinity';
        hi := 'infinity';
    END IF;
    RETURN QUERY
    SELECT a.ts, a.seq, a.pid, a.nested, a.command_tag, a.statement,
           a.relations, a.decision, a.rule_id, a.sqlstate, a.error_message,
           a.rows, a.duration_ms
      FROM @extschema@.audit_log a
     WHERE coalesce(a.session_id, 'backend:' || a.backend_session) = session_replay.session_id
       AND a.ts >= lo AND a.ts <= hi
     ORDER BY a.ts, a.epoch, a.seq;
END
$$;

CREATE FUNCTION @extschema@.audit_flush() RETURNS boolean
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'agentgate_audit_flush';
COMMENT ON FUNCTION @extschema@.audit_flush() IS
    'agentgate: wait until every audit record appended so far is committed';

-- What the statement column of a row would hold for this text, under the
-- current settings (normaliser, raw text, length cap): for checking that a
-- secret typed into SQL stays out of the log.  The text must lex as SQL.
CREATE FUNCTION @extschema@.audit_statement_text(sql text) RETURNS text
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'agentgate_audit_statement_text';
COMMENT ON FUNCTION @extschema@.audit_statement_text(text) IS
    'agentgate: the statement text an audit row would carry for sql';

CREATE FUNCTION @extschema@.audit_ring_status(OUT slots bigint, OUT appended bigint,
                                              OUT pending bigint, OUT epoch bigint)
RETURNS record
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'agentgate_audit_ring_status';

REVOKE ALL ON TABLE @extschema@.audit_log, @extschema@.audit_log_default,
    @extschema@.audit_state, @extschema@.audit_sessions, @extschema@.sessions FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.audit_maintain(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_replay(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.audit_ring_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.audit_statement_text(text) FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_log, @extschema@.audit_sessions, @extschema@.sessions TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.session_replay(text) TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.audit_ring_status() TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.audit_statement_text(text) TO agentgate_auditor;
-- audit_flush reveals nothing and only waits: tools acting as agents may
-- call it before they read their own results elsewhere.
GRANT EXECUTE ON FUNCTION @extschema@.audit_flush() TO PUBLIC;
