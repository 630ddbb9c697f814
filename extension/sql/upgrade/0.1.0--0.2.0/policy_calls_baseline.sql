-- Baseline rules of the checked built-in calls and agentgate's channels
-- (see 20_policy.sql).  DROP LARGE OBJECT is a new tag: the existing DROP
-- baseline rule does not name it, as in a fresh installation.
INSERT INTO @extschema@.rules (priority, commands, action, reason, baseline) VALUES
    (1000, '{AGENTGATE CHANNEL}', 'block',
     'baseline: agents may not notify or listen on agentgate''s channels', true);
INSERT INTO @extschema@.rules (priority, commands, condition, action, reason, baseline) VALUES
    (1000, '{DROP LARGE OBJECT,WRITE LARGE OBJECT}', 'not_owner', 'block',
     'baseline: agents may write or remove only large objects they own themselves', true);
-- The DROP baseline rule lists the DROP tags the server knew when it was
-- installed; DROP LARGE OBJECT is decided by the rule above instead (an
-- agent may remove its own large objects), as in a fresh installation.
UPDATE @extschema@.rules
   SET commands = array_remove(commands, 'DROP LARGE OBJECT')
 WHERE baseline AND reason = 'baseline: agents may not drop objects'
   AND 'DROP LARGE OBJECT' = ANY (commands);
