-- rules.scopes (policy_rule_tuple.c, delegation.c): a rule with scopes
-- applies only to sessions whose verified token's scope names one of them
-- (NULL: every session).  Added after the approval columns, in a fresh
-- installation and in the 0.1.0 -> 0.2.0 update alike, so that both have
-- the same column order.
ALTER TABLE @extschema@.rules ADD COLUMN scopes text[];
COMMENT ON COLUMN @extschema@.rules.scopes IS
    'agentgate: NULL, or the rule applies only to sessions whose token''s scope names one of these';
