-- Audit, 0.1.0 -> 0.2.0: new columns masked_columns (the masked columns a
-- statement read, see masks.sql) and chain (the delegation chain of the
-- session, delegation.c); partitions get them too.  Rows written before
-- the upgrade have neither.
--
-- audit_log.relations was already text[] in 0.1.0; what changed is how the
-- backends fill it (every relation, target tables first, names never split
-- on a byte they contain, a cut list ending in a NULL element), and that
-- error_message now holds the message's template instead of the formatted
-- message.  Rows written by 0.1.0 are left as they are: their
-- error_message may hold values formatted into the message, and a
-- relation name holding byte 0x1f was split there.  A DBA who wants those
-- values gone can run, in the audit database:
--
--   UPDATE agentgate.audit_log SET error_message = NULL
--    WHERE error_message IS NOT NULL AND decision <> 'gap';
ALTER TABLE @extschema@.audit_log ADD COLUMN masked_columns text[];
ALTER TABLE @extschema@.audit_log ADD COLUMN chain text[];

-- The session summary carries the chain too.
ALTER TABLE @extschema@.audit_sessions ADD COLUMN chain text[];
CREATE OR REPLACE VIEW @extschema@.sessions AS
SELECT session_id, identity, role_name, started, ended, statements,
       allowed, blocked, errors, monitored, logged, masked, approved, denied, chain
  FROM @extschema@.audit_sessions;
