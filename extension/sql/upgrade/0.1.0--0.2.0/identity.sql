-- Identity and session attribution, 0.1.0 -> 0.2.0.

-- role_unsafe_reason moves into the extension (identity.c), so that the
-- per-statement check and login() judge a role by one definition, which now
-- also refuses predefined roles, agentgate's other roles and other agents'
-- roles.  A second argument names the agent's own role.
DROP FUNCTION @extschema@.role_unsafe_reason(oid);
CREATE FUNCTION @extschema@.role_unsafe_reason(r oid, agent oid DEFAULT NULL) RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'agentgate_role_unsafe_reason';
REVOKE ALL ON FUNCTION @extschema@.role_unsafe_reason(oid, oid) FROM PUBLIC;

-- register() and login() judge the agent's own role with itself as the agent.
CREATE OR REPLACE FUNCTION @extschema@.register(identity text, role_name name DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION @extschema@.login(identity text, claims jsonb) RETURNS name
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

-- Parallel safety: check_identity is pure; session_id reads backend state.
ALTER FUNCTION @extschema@.check_identity(text) PARALLEL SAFE;
ALTER FUNCTION @extschema@.session_id() PARALLEL RESTRICTED;

-- Sessions are keyed by (role, session id).  Summary rows that 0.1.0
-- merged across roles (one session id used by two roles) are rebuilt from
-- the log; the others are kept as they are.
UPDATE @extschema@.audit_sessions SET role_name = '' WHERE role_name IS NULL;
ALTER TABLE @extschema@.audit_sessions DROP CONSTRAINT audit_sessions_pkey;
ALTER TABLE @extschema@.audit_sessions ALTER COLUMN role_name SET NOT NULL;

CREATE TEMPORARY TABLE agentgate_upgrade_merged AS
SELECT coalesce(session_id, 'backend:' || backend_session) AS session_id
  FROM @extschema@.audit_log
 WHERE decision <> 'gap' AND coalesce(session_id, backend_session) IS NOT NULL
 GROUP BY 1
HAVING count(DISTINCT coalesce(role_name, '')) > 1;

DELETE FROM @extschema@.audit_sessions s
 USING agentgate_upgrade_merged m WHERE s.session_id = m.session_id;

INSERT INTO @extschema@.audit_sessions
    (session_id, identity, role_name, started, ended, statements, allowed,
     blocked, errors, monitored, logged, masked, approved, denied)
SELECT k.session_id, min(a.identity), coalesce(a.role_name, ''), min(a.ts),
       max(a.ts + coalesce(a.duration_ms, 0) * interval '1 millisecond'),
       count(*),
       count(*) FILTER (WHERE a.decision = 'allowed'),
       count(*) FILTER (WHERE a.decision = 'blocked'),
       count(*) FILTER (WHERE a.decision = 'error'),
       count(*) FILTER (WHERE a.decision = 'monitored'),
       count(*) FILTER (WHERE a.decision = 'logged'),
       count(*) FILTER (WHERE a.decision = 'masked'),
       count(*) FILTER (WHERE a.decision = 'approved'),
       count(*) FILTER (WHERE a.decision = 'denied')
  FROM @extschema@.audit_log a
  CROSS JOIN LATERAL (SELECT coalesce(a.session_id, 'backend:' || a.backend_session) AS session_id) k
  JOIN agentgate_upgrade_merged m ON m.session_id = k.session_id
 WHERE a.decision <> 'gap'
 GROUP BY k.session_id, coalesce(a.role_name, '');

DROP TABLE agentgate_upgrade_merged;

ALTER TABLE @extschema@.audit_sessions ADD PRIMARY KEY (role_name, session_id);
CREATE INDEX audit_sessions_session ON @extschema@.audit_sessions (session_id);

-- session_replay shows the role of every row and takes the role as a
-- second key.
DROP FUNCTION @extschema@.session_replay(text);
CREATE FUNCTION @extschema@.session_replay(session_id text, session_role name DEFAULT NULL)
RETURNS TABLE (ts timestamptz, role_name name, seq bigint, pid integer, nested boolean,
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
    SELECT min(s.started), max(s.ended) INTO lo, hi
      FROM @extschema@.audit_sessions s
     WHERE s.session_id = session_replay.session_id
       AND (session_replay.session_role IS NULL OR s.role_name = session_replay.session_role);
    lo := coalesce(lo, '-infinity');
    hi := coalesce(hi, 'infinity');
    RETURN QUERY
    SELECT a.ts, a.role_name, a.seq, a.pid, a.nested, a.command_tag, a.statement,
           a.relations, a.decision, a.rule_id, a.sqlstate, a.error_message,
           a.rows, a.duration_ms
      FROM @extschema@.audit_log a
     WHERE coalesce(a.session_id, 'backend:' || a.backend_session) = session_replay.session_id
       AND (session_replay.session_role IS NULL OR a.role_name = session_replay.session_role)
       AND a.ts >= lo AND a.ts <= hi
     ORDER BY a.ts, a.epoch, a.seq, a.role_name;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.session_replay(text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.session_replay(text, name) TO agentgate_auditor;

-- session_stamp() returns the session id as a column of its own, so the
-- proxy no longer parses the stamp's format (a result type change needs
-- DROP and CREATE; the grants are those of 10_identity.sql).
DROP FUNCTION @extschema@.session_stamp(name);
CREATE FUNCTION @extschema@.session_stamp(role name, OUT stamp text, OUT session_id text)
RETURNS record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'agentgate_session_stamp';
REVOKE ALL ON FUNCTION @extschema@.session_stamp(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.session_stamp(name) TO agentgate_proxy;
