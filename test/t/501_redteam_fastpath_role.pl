# A role change made where no statement hook runs: a libpq fastpath call
# of a function that calls set_config('role', ...).  The change is decided
# as SET ROLE before the call's transaction commits (and before any
# statement runs under it), so the baseline refuses it and it is undone.
use strict;
use warnings;

use AgentGate::PolicyClient;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;

my $client = AgentGate::PolicyClient::build();

my $node = AgentGate::Node::new('redteam_fastpath', q{
agentgate.require_session_stamp = off
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE regress_rt_agent LOGIN NOINHERIT IN ROLE agentgate_agent;
CREATE ROLE regress_rt_group NOLOGIN;
GRANT regress_rt_group TO regress_rt_agent;
CREATE TABLE regress_rt_secret (v text);
INSERT INTO regress_rt_secret VALUES ('secret');
ALTER TABLE regress_rt_secret OWNER TO regress_rt_group;
CREATE FUNCTION regress_rt_become(text) RETURNS text LANGUAGE plpgsql
AS $$ BEGIN RETURN set_config('role', $1, false); END $$;
CREATE FUNCTION regress_rt_become_and_read(text) RETURNS text LANGUAGE plpgsql
AS $$
DECLARE x text;
BEGIN
    x := set_config('role', $1, false);
    RETURN (SELECT v FROM regress_rt_secret);
END $$;
});

my $agent_ci = $node->connstr('postgres') . ' user=regress_rt_agent';
my $become = $node->safe_psql('postgres',
	"SELECT 'regress_rt_become(text)'::regprocedure::oid");
my $become_read = $node->safe_psql('postgres',
	"SELECT 'regress_rt_become_and_read(text)'::regprocedure::oid");

my $out = `$client fastpath '$agent_ci' $become text regress_rt_group`;
like($out, qr/^fastpath: error 42501 agentgate: SET ROLE is not allowed \(rule \d+: [^)]*\)$/m,
	'fastpath role change refused before its transaction commits');

$out = `$client fastpath '$agent_ci' $become_read text regress_rt_group`;
like($out, qr/^fastpath: error 42501 agentgate: SET ROLE is not allowed \(rule \d+: [^)]*\)$/m,
	'no statement runs under a role changed in a fastpath call');
unlike($out, qr/secret/, 'the group\'s table was not read');

# a DBA's rule allowing SET ROLE lets the same call through
$node->safe_psql('postgres',
	"SELECT agentgate.allow(commands => '{SET ROLE}', applies_to => 'regress_rt_agent', priority => 2000)");
$out = `$client fastpath '$agent_ci' $become_read text regress_rt_group`;
like($out, qr/^fastpath: ok 6 bytes$/m, 'allowed by a rule, the call runs');

done_testing();
