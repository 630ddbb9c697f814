# Statement policy over real client connections: several statements in one
# Query message, extended-protocol statements prepared before the rule
# existed, libpq fastpath calls, COPY FROM STDIN, and how soon a rule change
# reaches a long-lived connection.
use strict;
use warnings;

use Config;
use AgentGate::PolicyClient;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;

# the small libpq client for the protocol paths psql cannot take
my $client = AgentGate::PolicyClient::build();

# these clients connect directly, without the proxy's session stamp
my $node = AgentGate::Node::new('policy', q{
agentgate.require_session_stamp = off
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE regress_tap_agent LOGIN IN ROLE agentgate_agent;
CREATE TABLE regress_tap_t (id int PRIMARY KEY, v text);
INSERT INTO regress_tap_t VALUES (1, 'a'), (2, 'b'), (3, 'c');
GRANT ALL ON regress_tap_t TO regress_tap_agent;
CREATE FUNCTION regress_tap_twice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2';
CREATE FUNCTION regress_tap_thrice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 3';
GRANT EXECUTE ON FUNCTION pg_read_file(text) TO regress_tap_agent;
});

my $agent_ci = $node->connstr('postgres') . ' user=regress_tap_agent';
my $dba_ci = $node->connstr('postgres');

sub agent_psql
{
	my ($sql, %opts) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql(
		'postgres', $sql,
		stdout => \$stdout,
		stderr => \$stderr,
		extra_params => [ '-U', 'regress_tap_agent' ],
		%opts);
	return ($rc, $stdout, $stderr);
}

# the agent really is governed over a real login
my ($rc, $out, $err) = agent_psql('SELECT session_user');
is($out, 'regress_tap_agent', 'agent logs in over the pooler socket');

# several statements in one Query message (psql -c sends them as one
# message): nothing of the message takes effect when one is blocked
($out, $err) = run_command(
	[ 'psql', '-X', '-d', $agent_ci, '-c',
	  "INSERT INTO regress_tap_t VALUES (10, 'x'); DELETE FROM regress_tap_t; SELECT 1" ]);
like($err, qr/DELETE( without a restricting WHERE)? is not allowed/, 'multi-statement message: the DELETE is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM regress_tap_t WHERE id = 10'),
	'0', 'multi-statement message: the INSERT before it did not take effect');

# COPY FROM STDIN, refused before any data is read
$node->safe_psql('postgres',
	"SELECT agentgate.block(commands => '{COPY FROM}', relation => 'regress_tap_t', reason => 'tap: no loads')");
($rc, $out, $err) = agent_psql('COPY regress_tap_t FROM STDIN', stdin => "20\tz\n\\.\n");
like($err, qr/COPY FROM( on \S+)? is not allowed.*\n.*Rule \d+ \(public.regress_tap_t\)/, 'COPY FROM STDIN refused');
($rc, $out, $err) = agent_psql('COPY regress_tap_t TO STDOUT');
is($rc, 0, 'COPY TO STDOUT still allowed');
$node->safe_psql('postgres', "DELETE FROM agentgate.rules WHERE reason = 'tap: no loads'");

# extended protocol: Parse before the rule, Bind/Execute after it
$out = `$client prepared '$agent_ci' '$dba_ci'`;
like($out, qr/^execute before rule: ok UPDATE 1$/m, 'prepared statement runs before the rule');
like($out, qr/^execute after rule: error 42501 agentgate: UPDATE on public.regress_tap_t is not allowed \(rule \d+: [^)]*\)$/m,
	'statement prepared before the rule is refused after it');
like($out, qr/^unnamed extended: error 42501 /m, 'unnamed extended-protocol statement refused');
like($out, qr/^execute after removal: ok UPDATE 1$/m, 'and runs again once the rule is gone');

# libpq fastpath: non-built-in and built-in functions, decided by
# OAT_FUNCTION_EXECUTE, which fastpath.c invokes for every call
my $twice = $node->safe_psql('postgres', "SELECT 'regress_tap_twice(int)'::regprocedure::oid");
my $thrice = $node->safe_psql('postgres', "SELECT 'regress_tap_thrice(int)'::regprocedure::oid");
my $readfile = $node->safe_psql('postgres', "SELECT 'pg_read_file(text)'::regprocedure::oid");
$out = `$client fastpath '$agent_ci' $twice int 21`;
like($out, qr/^fastpath: ok 42$/m, 'fastpath call of an allowed function runs');
$node->safe_psql('postgres',
	"SELECT agentgate.block(functions => '{regress_tap_twice(int)}', reason => 'tap: not this one')");
$out = `$client fastpath '$agent_ci' $twice int 21`;
like($out, qr/^fastpath: error 42501 agentgate: call of regress_tap_twice\(integer\) is not allowed \(rule \d+: [^)]*\)$/m,
	'fastpath call of a non-built-in function refused by a DBA rule');
$out = `$client fastpath '$agent_ci' $thrice int 2`;
like($out, qr/^fastpath: ok 6$/m, 'another function is still callable');
$out = `$client fastpath '$agent_ci' $readfile text postgresql.conf`;
like($out, qr/^fastpath: error 42501 agentgate: call of pg_read_file\(text\) is not allowed \(rule \d+: [^)]*\)$/m,
	'fastpath call of a built-in on the baseline deny list refused');

# default-deny covers fastpath calls of non-built-in functions too
$node->safe_psql('postgres', "ALTER SYSTEM SET agentgate.default_action = 'block'");
$node->reload;
$out = `$client fastpath '$agent_ci' $thrice int 2`;
like($out, qr/^fastpath: error 42501 /m, 'default-deny refuses fastpath calls with no rule');
$node->safe_psql('postgres', "ALTER SYSTEM RESET agentgate.default_action");
$node->reload;
$node->safe_psql('postgres', "DELETE FROM agentgate.rules WHERE reason = 'tap: not this one'");

# how soon a change reaches a long-lived connection
$out = `$client delay '$agent_ci' '$dba_ci' 50`;
like($out, qr/^delay: 50\/50 blocked on the next statement, 50\/50 allowed again on the next statement$/m,
	'every change took effect on the very next statement');
note($out);
diag($out) if $ENV{AG_VERBOSE};

# monitor mode: nothing blocked, the would-be block is logged
$node->safe_psql('postgres', "ALTER SYSTEM SET agentgate.mode = 'monitor'");
$node->reload;
my $log_offset = -s $node->logfile;
($rc, $out, $err) = agent_psql('DELETE FROM regress_tap_t WHERE true');
is($rc, 0, 'monitor mode: the statement runs');
ok($node->log_contains(qr/agentgate: would block DELETE/, $log_offset),
	'monitor mode: the block it would have made is logged');
$node->safe_psql('postgres', "ALTER SYSTEM RESET agentgate.mode");
$node->reload;

# a database without the extension has no policy: agents are refused there
$node->safe_psql('postgres', 'CREATE DATABASE regress_no_agentgate');
($out, $err) = run_command(
	[ 'psql', '-X', '-d', $node->connstr('regress_no_agentgate') . ' user=regress_tap_agent',
	  '-c', 'SELECT 1' ]);
like($err, qr/agent roles may not use a database without the agentgate extension/,
	'database without the extension: agents refused');
is($node->safe_psql('regress_no_agentgate', 'SELECT 1'), '1', 'other roles are not');

$node->stop;
done_testing();
