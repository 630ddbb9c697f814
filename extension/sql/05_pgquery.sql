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
