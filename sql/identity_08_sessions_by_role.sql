--
-- A session is a role and a session id.  Two roles whose statements carry
-- one session id (here: a stamp computed with the key, as someone who had
-- read it could) stay two sessions in agentgate.sessions, and
-- session_replay() shows the role of every row and can be asked for one.
--
\c postgres
\set VERBOSITY terse
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'agentgate');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
-- HMAC-SHA256 in SQL, with the key of test/agentgate.conf
CREATE FUNCTION pg_temp.hmac(key bytea, msg bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
    k bytea := key || decode(repeat('00', 64 - length(key)), 'hex');
    i bytea := k;
    o bytea := k;
BEGIN
    FOR n IN 0..63 LOOP
        i := set_byte(i, n, get_byte(k, n) # 54);
        o := set_byte(o, n, get_byte(k, n) # 92);
    END LOOP;
    RETURN sha256(o || sha256(i || msg));
END $$;
CREATE FUNCTION pg_temp.forge(sid text, role text) RETURNS text LANGUAGE sql AS $$
    SELECT 'ag1.' || sid || '.' || left(encode(pg_temp.hmac(
        convert_to('regress-session-key-0123456789abcdef0123456789', 'UTF8'),
        convert_to('ag1.' || sid || '.' || role, 'UTF8')), 'hex'), 16)
$$;
CREATE ROLE regress_sess_alice LOGIN IN ROLE agentgate_agent;
CREATE ROLE regress_sess_mallory LOGIN IN ROLE agentgate_agent;
SELECT (agentgate.session_stamp('regress_sess_alice')).stamp AS alice_stamp \gset
SELECT split_part(:'alice_stamp', '.', 2) AS sid \gset
SELECT pg_temp.forge(:'sid', 'regress_sess_mallory') AS mallory_stamp \gset

SELECT set_config('application_name', :'alice_stamp', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION regress_sess_alice;
SELECT agentgate.session_id() = :'sid' AS alice_sid;
SELECT 1 AS alice_one;
RESET SESSION AUTHORIZATION;
SELECT set_config('application_name', :'mallory_stamp', false) IS NOT NULL AS stamped;
SET SESSION AUTHORIZATION regress_sess_mallory;
SELECT agentgate.session_id() = :'sid' AS mallory_sid;
SELECT 2 AS mallory_two;
SELECT 3 AS mallory_three;
RESET SESSION AUTHORIZATION;
RESET application_name;
SELECT agentgate.audit_flush();

-- two sessions, one per role
SELECT role_name, statements
  FROM agentgate.sessions WHERE session_id = :'sid' ORDER BY role_name;
-- the replay names the role of every row; with a role, only that session
SELECT role_name, count(*) AS statements
  FROM agentgate.session_replay(:'sid') GROUP BY role_name ORDER BY role_name;
SELECT role_name, statement
  FROM agentgate.session_replay(:'sid', 'regress_sess_alice') ORDER BY ts, seq;
SELECT count(*) AS nothing_for_another_role
  FROM agentgate.session_replay(:'sid', 'regress_sess_nobody');

DELETE FROM agentgate.audit_sessions WHERE session_id = :'sid';
DROP ROLE regress_sess_alice, regress_sess_mallory;
