-- Checked twins of built-in functions whose effect depends on their
-- arguments (pg_notify, and the large-object functions that drop or write
-- one).  In a governed session the planner's output calls these instead of
-- the built-ins: each decides the call with its arguments, then runs the
-- built-in's own code (same result, same errors).  Same signature,
-- volatility, strictness and parallel safety as the built-in; callable by
-- anyone (they check the built-in's own EXECUTE privilege too).
CREATE FUNCTION @extschema@.pg_notify_checked(text, text) RETURNS void
LANGUAGE C VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'agentgate_pg_notify_checked';
CREATE FUNCTION @extschema@.lo_unlink_checked(oid) RETURNS integer
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'agentgate_lo_unlink_checked';
CREATE FUNCTION @extschema@.lo_put_checked(oid, bigint, bytea) RETURNS void
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'agentgate_lo_put_checked';
CREATE FUNCTION @extschema@.lo_open_checked(oid, integer) RETURNS integer
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'agentgate_lo_open_checked';
CREATE FUNCTION @extschema@.lo_from_bytea_checked(oid, bytea) RETURNS oid
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'agentgate_lo_from_bytea_checked';
COMMENT ON FUNCTION @extschema@.pg_notify_checked(text, text) IS
    'agentgate: pg_notify() decided as a NOTIFY of its channel';
COMMENT ON FUNCTION @extschema@.lo_unlink_checked(oid) IS
    'agentgate: lo_unlink() decided as DROP LARGE OBJECT';
COMMENT ON FUNCTION @extschema@.lo_put_checked(oid, bigint, bytea) IS
    'agentgate: lo_put() decided as WRITE LARGE OBJECT';
COMMENT ON FUNCTION @extschema@.lo_open_checked(oid, integer) IS
    'agentgate: lo_open() decided as WRITE LARGE OBJECT when opened for writing';
COMMENT ON FUNCTION @extschema@.lo_from_bytea_checked(oid, bytea) IS
    'agentgate: lo_from_bytea() decided as WRITE LARGE OBJECT when the OID exists';

-- setval() on a sequence the agent does not own itself: decided as ALTER
-- SEQUENCE (not_owner)
CREATE FUNCTION @extschema@.setval_checked(regclass, bigint) RETURNS bigint
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'agentgate_setval_checked';
CREATE FUNCTION @extschema@.setval_checked(regclass, bigint, boolean) RETURNS bigint
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'agentgate_setval_checked';
COMMENT ON FUNCTION @extschema@.setval_checked(regclass, bigint) IS
    'agentgate: setval() on a sequence not the agent''s own decided as ALTER SEQUENCE';
COMMENT ON FUNCTION @extschema@.setval_checked(regclass, bigint, boolean) IS
    'agentgate: setval() on a sequence not the agent''s own decided as ALTER SEQUENCE';
