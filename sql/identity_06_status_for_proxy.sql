--
-- agentgate.identity_status(): what agentgate-proxy reads before it acts on
-- a revocation notice (anyone allowed to NOTIFY can send one).  Only
-- agentgate_proxy may call it; it returns the registry's status of the
-- identities named and leaves unknown ones out.
--
\set VERBOSITY terse
SELECT agentgate.login('stat_alive', '{}') IS NOT NULL AS alive;
SELECT agentgate.login('stat_gone', '{}') IS NOT NULL AS gone;
SELECT agentgate.login('stat_paused', '{}') IS NOT NULL AS paused;
SELECT agentgate.revoke('stat_gone', 'test');
SELECT agentgate.suspend('stat_paused');
CREATE ROLE regress_status_proxy LOGIN IN ROLE agentgate_proxy;
CREATE ROLE regress_status_plain LOGIN;

SET SESSION AUTHORIZATION regress_status_proxy;
SELECT * FROM agentgate.identity_status(
    ARRAY['stat_alive', 'stat_gone', 'stat_paused', 'nobody', 'a"b\c,{}'])
 ORDER BY 1;
-- the query the proxy sends: one row per name, in order, unknown ones too
SELECT u.i, coalesce(s.status, 'unknown')
  FROM unnest('{"stat_paused","no\"body","stat_alive"}'::text[]) WITH ORDINALITY AS u(identity, i)
  LEFT JOIN agentgate.identity_status('{"stat_paused","no\"body","stat_alive"}'::text[]) AS s
       ON s.identity = u.identity
 ORDER BY 1;
SELECT count(*) FROM agentgate.identity_status('{}');
SELECT count(*) FROM agentgate.identity_status(NULL);
-- error: the proxy still cannot read the table itself
SELECT count(*) FROM agentgate.agents;
RESET SESSION AUTHORIZATION;

SELECT agentgate.role_for_identity('stat_alive') AS agent \gset
SET SESSION AUTHORIZATION :"agent";
-- error: an agent may not read identities' status
SELECT * FROM agentgate.identity_status(ARRAY['stat_alive']);
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_status_plain;
-- error: nor may any other role
SELECT * FROM agentgate.identity_status(ARRAY['stat_alive']);
RESET SESSION AUTHORIZATION;

SELECT p.prosecdef, p.provolatile, array_to_string(p.proconfig, ',') AS config,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
       has_function_privilege('agentgate_proxy', p.oid, 'EXECUTE') AS proxy_exec,
       has_function_privilege('agentgate_agent', p.oid, 'EXECUTE') AS agent_exec,
       has_function_privilege('agentgate_pgbouncer', p.oid, 'EXECUTE') AS pgbouncer_exec
  FROM pg_proc p WHERE p.oid = 'agentgate.identity_status(text[])'::regprocedure;

DROP ROLE regress_status_proxy, regress_status_plain;
