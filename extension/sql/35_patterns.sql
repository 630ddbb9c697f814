-- Content patterns: regexes agentgate-proxy applies to every text an agent
-- receives (result values of any protocol and format, COPY ... TO STDOUT,
-- NOTICE and error texts), each match replaced.  A net for secrets in free
-- text; column masks are the guarantee (docs/masking.md).  Built-in rows
-- (builtin = true) are enabled by default; a DBA may disable any of them
-- with UPDATE agentgate.patterns SET enabled = false WHERE name = '...',
-- and add their own.  Every change is announced on agentgate_patterns and
-- agentgate-proxy reloads the set.

CREATE FUNCTION @extschema@._pattern_check(regex text, replacement text, validator text)
RETURNS void
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'agentgate_pattern_check';
CREATE FUNCTION @extschema@._builtin_patterns(
    OUT name text, OUT regex text, OUT replacement text, OUT validator text, OUT reason text)
RETURNS SETOF record
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'agentgate_builtin_patterns';
REVOKE ALL ON FUNCTION @extschema@._pattern_check(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._builtin_patterns() FROM PUBLIC;

CREATE TABLE @extschema@.patterns (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    regex       text NOT NULL,
    replacement text NOT NULL DEFAULT '[redacted]',
    validator   text,
    applies_to  regrole NOT NULL DEFAULT 'agentgate_agent'::text::regrole,
    enabled     boolean NOT NULL DEFAULT true,
    builtin     boolean NOT NULL DEFAULT false,
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.patterns IS
    'agentgate: content patterns agentgate-proxy replaces in every text an agent receives';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.patterns', 'WHERE NOT builtin');
REVOKE ALL ON TABLE @extschema@.patterns FROM PUBLIC;

-- Each row is checked with the proxy's own regex engine and rules.
CREATE FUNCTION @extschema@._patterns_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM @extschema@._pattern_check(NEW.regex, NEW.replacement, NEW.validator);
    RETURN NEW;
END
$$;
-- NOTIFY is sent at commit, so the proxy reads the committed set.
CREATE FUNCTION @extschema@._patterns_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('agentgate_patterns', '');
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._patterns_validate() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._patterns_changed() FROM PUBLIC;
CREATE TRIGGER patterns_validate BEFORE INSERT OR UPDATE ON @extschema@.patterns
    FOR EACH ROW EXECUTE FUNCTION @extschema@._patterns_validate();
CREATE TRIGGER patterns_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.patterns
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._patterns_changed();

INSERT INTO @extschema@.patterns (name, regex, replacement, validator, reason, builtin)
SELECT b.name, b.regex, b.replacement, b.validator, 'built-in: ' || b.reason, true
  FROM @extschema@._builtin_patterns() AS b;

-- patterns_for_proxy (for agentgate-proxy): the enabled patterns, and for
-- each whose applies_to is not agentgate_agent (which every agent is a
-- member of) the roles it applies to (superusers are never agents),
-- resolved now: a GRANT into such a group takes effect at the proxy's next
-- reload of the set.
CREATE FUNCTION @extschema@.patterns_for_proxy()
RETURNS TABLE (name text, regex text, replacement text, validator text, members name[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.name, p.regex, p.replacement, p.validator,
           CASE WHEN p.applies_to = 'agentgate_agent'::regrole THEN NULL
                ELSE ARRAY(SELECT r.rolname FROM pg_roles r
                            WHERE NOT r.rolsuper
                              AND pg_has_role(r.oid, p.applies_to, 'MEMBER')
                            ORDER BY r.rolname) END
      FROM @extschema@.patterns p
     WHERE p.enabled
     ORDER BY p.name
$$;
REVOKE ALL ON FUNCTION @extschema@.patterns_for_proxy() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.patterns_for_proxy() TO agentgate_proxy;
