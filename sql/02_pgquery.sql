--
-- libpg_query runs inside the backend without disturbing it: normalised
-- text and fingerprints, errors that stay errors, and inputs too large or
-- too deep for its unguarded recursion refused before it sees them.
--
\set VERBOSITY default
SELECT agentgate.normalize($q$SELECT * FROM t WHERE a = 42 AND b = 'secret' $q$);
SELECT agentgate.fingerprint('SELECT * FROM t WHERE a = 1')
     = agentgate.fingerprint('select *   from t where a = 99') AS same_shape;
SELECT agentgate.fingerprint('SELECT * FROM t WHERE a = 1')
     = agentgate.fingerprint('SELECT * FROM t WHERE b = 1') AS different_shape;
SELECT length(agentgate.fingerprint('SELECT 1'));
-- error: a syntax error is an ordinary ERROR, the session goes on
SELECT agentgate.normalize('SELEC 1');
SELECT 'still here' AS after_error;
-- error: too deep for libpg_query's normaliser: refused, no crash
SELECT agentgate.normalize('SELECT ' || repeat('1+', 30000) || '1');
-- error: too large
SELECT agentgate.fingerprint('SELECT ''' || repeat('x', 70000) || '''');
-- the server's own PL/pgSQL still works after libpg_query ran
DO $$ BEGIN RAISE NOTICE 'plpgsql ok: %', agentgate.normalize('SELECT 1'); END $$;
