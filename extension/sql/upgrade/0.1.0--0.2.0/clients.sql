-- Agents may not LISTEN: behind PgBouncer's transaction pool the
-- notifications would be lost silently (see 20_policy.sql).
INSERT INTO @extschema@.rules (priority, commands, action, reason, baseline) VALUES
    (1000, '{LISTEN}', 'block',
     'baseline: LISTEN would lose notifications behind the transaction pool; poll a table instead', true);
