--
-- The identity layer's superuser-only settings hold against a governed
-- session even when a DBA granted it SET on them: set_config() is not a
-- statement the baseline sees, so the settings' own check refuses agents.
-- The agent's session carries a valid stamp, so only the setting is judged.
--
\set VERBOSITY terse
CREATE ROLE regress_rt6_agent LOGIN IN ROLE agentgate_agent;
GRANT SET ON PARAMETER agentgate.require_session_stamp, agentgate.terminate_revoked_sessions
  TO regress_rt6_agent;
SET agentgate.require_session_stamp = on;
SELECT (agentgate.session_stamp('regress_rt6_agent')).stamp AS stamp \gset
SET application_name = :'stamp';
SET SESSION AUTHORIZATION regress_rt6_agent;
SELECT agentgate.session_id() IS NOT NULL AS stamped;
-- error:
SELECT set_config('agentgate.require_session_stamp', 'off', false);
-- error:
SELECT set_config('agentgate.terminate_revoked_sessions', 'off', false);
-- error: the statement form is refused by the baseline first
SET agentgate.require_session_stamp = off;
SHOW agentgate.require_session_stamp;
-- still required: the stamp cannot be dropped (a plain value keeps it)
SET application_name = 'no stamp';
SELECT agentgate.session_id() IS NOT NULL AS still_stamped;
RESET SESSION AUTHORIZATION;
RESET application_name;
RESET agentgate.require_session_stamp;
-- a DBA still may
SELECT set_config('agentgate.terminate_revoked_sessions', 'off', false);
RESET agentgate.terminate_revoked_sessions;

REVOKE SET ON PARAMETER agentgate.require_session_stamp, agentgate.terminate_revoked_sessions
  FROM regress_rt6_agent;
DROP ROLE regress_rt6_agent;
