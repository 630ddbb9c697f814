--
-- The session id has one owner.  session_stamp() returns it as a column of
-- its own (the proxy takes it from there and never parses the stamp), and
-- every reader in the server (the statement checks, agentgate.session_id(),
-- the audit log) gets the same value from identity's one verification.
--
\set VERBOSITY terse
SELECT pg_get_function_arguments('agentgate.session_stamp(name)'::regprocedure) AS signature;
SELECT agentgate.login('yvonne', '{}') AS yvonne \gset
SELECT * FROM agentgate.session_stamp(:'yvonne') \gset s_
SELECT :'s_session_id' ~ '^[0-9a-f]{16}$' AS well_formed,
       :'s_stamp' = 'ag1.' || :'s_session_id' || '.' || split_part(:'s_stamp', '.', 3) AS carried_by_stamp;
-- the proxy's call: one row, three columns
SELECT count(*) AS rows, bool_and(s.session_id IS NOT NULL) AS has_id
  FROM agentgate.login('yvonne', '{}'::jsonb) AS r, agentgate.session_stamp(r) AS s;

SET agentgate.require_session_stamp = on;
SELECT set_config('application_name', 'psql ' || :'s_stamp', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION :"yvonne";
SELECT agentgate.session_id() = :'s_session_id' AS same_id;
-- a plain SET keeps the stamp, and with it the session id
SET application_name = 'a driver';
SELECT agentgate.session_id() = :'s_session_id' AS same_id_after_set;
RESET SESSION AUTHORIZATION;

-- a stamp issued for another role carries no session id for this one
SELECT (agentgate.session_stamp('regress_someone_else')).stamp AS foreign_stamp \gset
SET agentgate.require_session_stamp = off;
SELECT set_config('application_name', 'psql ' || :'foreign_stamp', false) IS NOT NULL AS restamped;
SET SESSION AUTHORIZATION :"yvonne";
SELECT agentgate.session_id() IS NULL AS no_id;
RESET SESSION AUTHORIZATION;

RESET agentgate.require_session_stamp;
RESET application_name;
DELETE FROM agentgate.agents;
DROP ROLE :"yvonne";
