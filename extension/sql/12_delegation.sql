-- Delegation (delegation.c): the chain and scopes of delegated sessions,
-- bound to their session stamps, and the cluster-wide list of revoked
-- identities that every database's sessions consult.
--
-- This part is also the 0.1.0 -> 0.2.0 upgrade of these objects: the
-- functions that existed in 0.1.0 (set_status, revoke, suspend, resume)
-- are written with CREATE OR REPLACE.

-- Revoked and suspended identities, whether or not they have a role or an
-- agents row: a principal that only ever appears in delegation chains is
-- revoked here.  A trigger hands each committed change to shared memory.
-- After a server start the list is read from agentgate.audit_database, so
-- revoke identities there (as the proxy's admin database, ideally).
CREATE TABLE @extschema@.revoked_identities (
    identity    text PRIMARY KEY
                CHECK (octet_length(identity) BETWEEN 1 AND 63
                       AND identity !~ '[[:cntrl:]]'),
    status      text NOT NULL CHECK (status IN ('suspended', 'revoked')),
    changed     timestamptz NOT NULL DEFAULT now(),
    reason      text
);
COMMENT ON TABLE @extschema@.revoked_identities IS
    'agentgate: identities no session may act as or for (delegation chains included)';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.revoked_identities', '');

CREATE FUNCTION @extschema@.revoked_identities_sync() RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'agentgate_revoked_identities_sync';
CREATE TRIGGER revoked_identities_sync
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.revoked_identities
    FOR EACH ROW EXECUTE FUNCTION @extschema@.revoked_identities_sync();
CREATE TRIGGER revoked_identities_truncate
    AFTER TRUNCATE ON @extschema@.revoked_identities
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.revoked_identities_sync();

-- A DBA's direct UPDATE of agents.status reaches the list too.
CREATE FUNCTION @extschema@.agents_status_listed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.status = 'active' THEN
        DELETE FROM @extschema@.revoked_identities r WHERE r.identity = NEW.identity;
    ELSE
        INSERT INTO @extschema@.revoked_identities AS r (identity, status, reason)
        VALUES (NEW.identity, NEW.status, NEW.status_reason)
        ON CONFLICT ON CONSTRAINT revoked_identities_pkey
        DO UPDATE SET status = excluded.status, changed = now(), reason = excluded.reason;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER agents_status_listed
    AFTER INSERT OR UPDATE OF status ON @extschema@.agents
    FOR EACH ROW EXECUTE FUNCTION @extschema@.agents_status_listed();

-- set_status changes an identity's status: its agents row (whose trigger
-- stops the role) and its entry in the revoked list.  Any identity may be
-- revoked or suspended, including one with no agents row (a principal that
-- never logs in itself); resuming needs one or the other.
CREATE OR REPLACE FUNCTION @extschema@.set_status(identity text, status text, reason text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    known boolean;
BEGIN
    IF status IS NULL OR status NOT IN ('active', 'suspended', 'revoked') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('invalid agent status "%s"', status),
            HINT = 'Use active, suspended or revoked.';
    END IF;
    UPDATE @extschema@.agents ag
       SET status = set_status.status, status_changed = now(), status_reason = reason
     WHERE ag.identity = set_status.identity;
    known := FOUND;
    IF status = 'active' THEN
        DELETE FROM @extschema@.revoked_identities r WHERE r.identity = set_status.identity;
        known := known OR FOUND;
    ELSE
        IF NOT known THEN
            RAISE NOTICE USING
                MESSAGE = format('identity "%s" has no agents row: it goes on the revoked list only', identity),
                DETAIL = 'Sessions whose delegation chain holds it are refused.';
        END IF;
        INSERT INTO @extschema@.revoked_identities AS r (identity, status, reason)
        VALUES (set_status.identity, set_status.status, reason)
        ON CONFLICT ON CONSTRAINT revoked_identities_pkey
        DO UPDATE SET status = excluded.status, changed = now(), reason = excluded.reason;
        known := true;
    END IF;
    IF NOT known THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('agent identity "%s" does not exist', identity),
            HINT = 'See agentgate.agents and agentgate.revoked_identities for known identities.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.revoke(identity text, reason text DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@.set_status(identity, 'revoked', reason) $$;

CREATE OR REPLACE FUNCTION @extschema@.suspend(identity text, reason text DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@.set_status(identity, 'suspended', reason) $$;

CREATE OR REPLACE FUNCTION @extschema@.resume(identity text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@.set_status(identity, 'active', NULL) $$;

-- A stamp bound to a delegation chain (current actor first, principal
-- last) and scopes, kept for the session in shared memory (identity.c).
CREATE FUNCTION @extschema@.session_stamp_bound(role name, chain text[], scopes text[],
                                                expires timestamptz,
                                                OUT stamp text, OUT session_id text)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'agentgate_session_stamp_bound';

-- session_stamp(role, claims): the proxy's call.  Reads the verified
-- token's RFC 8693 "act" chain and "scope" claim (the proxy has checked
-- their types and sizes; they are checked again here and in C) and returns
-- a stamp bound to them; a token with neither gets a plain stamp.
CREATE FUNCTION @extschema@.session_stamp(role name, claims jsonb,
                                          OUT stamp text, OUT session_id text)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    act     jsonb := claims -> 'act';
    chain   text[];
    scopes  text[];
    expires timestamptz;
BEGIN
    IF claims IS NULL OR jsonb_typeof(claims) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid token claims',
            DETAIL = 'The claims must be a JSON object.';
    END IF;
    WHILE act IS NOT NULL LOOP
        IF jsonb_typeof(act) <> 'object' OR jsonb_typeof(act -> 'sub') IS DISTINCT FROM 'string'
           OR coalesce(array_length(chain, 1), 0) >= 7 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid token claims',
                DETAIL = 'Claim "act" must nest at most 7 objects, each with "sub" as a string.';
        END IF;
        chain := chain || (act ->> 'sub');
        act := act -> 'act';
    END LOOP;
    IF chain IS NOT NULL THEN
        IF jsonb_typeof(claims -> 'sub') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid token claims',
                DETAIL = 'A delegated token needs "sub", its principal, as a string.';
        END IF;
        chain := chain || (claims ->> 'sub');
    END IF;
    IF claims ? 'scope' THEN
        IF jsonb_typeof(claims -> 'scope') <> 'string' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid token claims',
                DETAIL = 'Claim "scope" must be a string.';
        END IF;
        scopes := string_to_array(claims ->> 'scope', ' ');
    END IF;
    IF chain IS NULL AND scopes IS NULL THEN
        SELECT s.stamp, s.session_id INTO stamp, session_id
          FROM @extschema@.session_stamp(role) s;
        RETURN;
    END IF;
    IF jsonb_typeof(claims -> 'exp') IS DISTINCT FROM 'number'
       OR (claims ->> 'exp')::numeric NOT BETWEEN 0 AND 253402300799 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid token claims',
            DETAIL = 'Claim "exp" must be a number of seconds since 1970.';
    END IF;
    expires := to_timestamp((claims ->> 'exp')::double precision);
    SELECT s.stamp, s.session_id INTO stamp, session_id
      FROM @extschema@.session_stamp_bound(role, chain, scopes, expires) s;
END
$$;

-- Live delegated sessions of the cluster (shared memory): who acts, for
-- whom, with which scopes.
CREATE FUNCTION @extschema@.delegated_sessions()
RETURNS TABLE (session_id text, chain text[], scopes text[], expires timestamptz)
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'agentgate_delegated_sessions';
CREATE VIEW @extschema@.delegated_sessions AS
SELECT session_id, chain[1] AS actor, chain[array_upper(chain, 1)] AS principal,
       chain, scopes, expires
  FROM @extschema@.delegated_sessions();
COMMENT ON VIEW @extschema@.delegated_sessions IS
    'agentgate: live sessions with a delegation chain or scopes (current actor first, principal last)';

REVOKE ALL ON TABLE @extschema@.revoked_identities FROM PUBLIC;
REVOKE ALL ON TABLE @extschema@.delegated_sessions FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.revoked_identities_sync() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.agents_status_listed() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.set_status(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.revoke(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.suspend(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.resume(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_stamp_bound(name, text[], text[], timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.session_stamp(name, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.delegated_sessions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.session_stamp(name, jsonb) TO agentgate_proxy;
