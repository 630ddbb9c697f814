# An agent's function attached to its own table (an expression index and
# extended statistics on an expression) is never run by maintenance:
# autovacuum's ANALYZE, a DBA's ANALYZE, VACUUM FULL and REINDEX all refuse
# it before its body runs, also after the agent replaced the body.  The
# agent's own ANALYZE still runs it, as the agent.  evidence records every
# run of the agent's code, with who ran it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;

my $node = AgentGate::Node::new('agentcode', q{
autovacuum_naptime = 1s
autovacuum_analyze_threshold = 10
autovacuum_analyze_scale_factor = 0
log_autovacuum_min_duration = 0
agentgate.require_session_stamp = off
});
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
GRANT CREATE ON SCHEMA public TO agent1;
CREATE TABLE evidence (who name, sess name, what text);
GRANT INSERT, SELECT ON evidence TO PUBLIC;
});
my $agent = $node->connstr('postgres') . ' user=agent1';

$node->safe_psql('postgres', q{
CREATE FUNCTION payload(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO evidence VALUES (current_user, session_user, what);
  RETURN true;
END $$;
CREATE FUNCTION mal_idx(int) RETURNS int LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN PERFORM payload('index'); RETURN $1; END $$;
CREATE TABLE own_t (id int);
ALTER TABLE own_t SET (autovacuum_enabled = off);
CREATE INDEX own_t_mal ON own_t (mal_idx(id));
CREATE STATISTICS own_t_st ON (mal_idx(id)) FROM own_t;
INSERT INTO own_t SELECT generate_series(1, 200);
ANALYZE own_t;
}, connstr => $agent);
is($node->safe_psql('postgres', q{SELECT count(*) > 0 AND bool_and(who = 'agent1' AND sess = 'agent1') FROM evidence}),
	't', "the agent's own writes and ANALYZE run its code, as the agent");
$node->safe_psql('postgres', 'TRUNCATE evidence');

# autovacuum: let it analyze the table; it must refuse the function
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'ALTER TABLE own_t SET (autovacuum_enabled = on)');
$node->safe_psql('postgres', 'UPDATE own_t SET id = id + 1000 WHERE id < 100', connstr => $agent);
ok( $node->wait_for_log(qr/function (?:public\.)?mal_idx\(integer\) belongs to agent role "agent1" and runs only in that agent's own sessions/,
		$log_offset),
	"autovacuum's ANALYZE refuses the agent's function");
$node->safe_psql('postgres', 'ALTER TABLE own_t SET (autovacuum_enabled = off)');

# a DBA's maintenance
for my $cmd ('ANALYZE own_t', 'REINDEX TABLE own_t', 'VACUUM FULL own_t', 'CLUSTER own_t USING own_t_mal')
{
	my ($rc, $out, $err) = $node->psql('postgres', $cmd);
	like($err, qr/belongs to agent role "agent1"/, "a DBA's $cmd refuses the agent's function");
}

# the body replaced after it was attached: still refused
$node->safe_psql('postgres', q{
CREATE OR REPLACE FUNCTION mal_idx(int) RETURNS int LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN PERFORM payload('replaced'); RETURN $1 + 0; END $$;
}, connstr => $agent);
my ($rc, $out, $err) = $node->psql('postgres', 'REINDEX TABLE own_t');
like($err, qr/belongs to agent role "agent1"/, 'a replaced body is refused too');

is($node->safe_psql('postgres', q{SELECT count(*) FROM evidence WHERE who <> 'agent1' OR sess <> 'agent1'}), '0',
	"the agent's code never ran outside its own sessions");

$node->stop;
done_testing();
