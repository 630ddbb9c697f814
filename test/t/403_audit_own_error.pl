# An audited statement that fails keeps its own error: the audit path must
# not replace it with one of its own while it makes the row durable.
#
#  - a parallel worker's error (force_parallel_mode) reaches the agent with
#    its SQLSTATE, in fresh sessions, every time, and the row says the same;
#  - a statement_timeout or a cancel arriving while a failed statement's row
#    is being made durable (the writer held up by a lock on the log) does
#    not replace the error either.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use Time::HiRes qw(usleep);

my $node = AgentGate::Node::new('own_error', qq{
agentgate.audit_flush_interval = 20ms
agentgate.audit_sync_timeout = 4000ms
agentgate.require_session_stamp = off
max_worker_processes = 16
max_parallel_workers = 8
});
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
CREATE TABLE t AS SELECT 'BAAAAA'::text AS x;
ANALYZE t;
GRANT SELECT ON t TO agent1;
});

my $sql = q{SET force_parallel_mode = 1; SELECT (x || repeat('abcd', 5000))::int2 FROM t;};
my $runs = 30;
my $own = 0;
my @other;
for (1 .. $runs)
{
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', 'agent1', '-v', 'VERBOSITY=verbose' ]);
	if ($err =~ /ERROR:\s+22P02: invalid input syntax for type smallint/)
	{
		$own++;
	}
	else
	{
		push @other, $err;
	}
}
is($own, $runs, "a parallel worker's error reaches the agent as it is ($runs fresh sessions)")
  or diag(join("\n", @other[0 .. ($#other < 2 ? $#other : 2)]));

$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE sqlstate = '22P02') || '/' || count(*)
	  FROM agentgate.audit_log
	 WHERE role_name = 'agent1' AND command_tag = 'SELECT' AND decision = 'error'}),
	"$runs/$runs", 'every row carries the same SQLSTATE');

# The writer is held up by a lock on the log; a failing statement waits for
# its row, and a statement_timeout fires during that wait.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE agentgate.audit_log IN ACCESS EXCLUSIVE MODE;');
my ($ret, $out, $err) = $node->psql('postgres',
	q{SET statement_timeout = '500ms'; SELECT 1 / 0;},
	extra_params => [ '-U', 'agent1', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:\s+22012: division by zero/,
	'a statement_timeout during the durability wait does not replace the error');

# A cancel during the same wait.
my $bg = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'agent1', '-v', 'VERBOSITY=verbose' ]);
$bg->query_until(qr/started/, q{
\echo started
SELECT 1 / 0;
});
my $pid;
for (1 .. 100)
{
	$pid = $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE usename = 'agent1' AND query LIKE 'SELECT 1 / 0%'});
	last if $pid;
	usleep(50_000);
}
usleep(300_000);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)") if $pid;
usleep(300_000);
$locker->query_safe('COMMIT');
$locker->quit;
my $res = $bg->query(q{SELECT 'next'});
$bg->quit;
like($bg->{stderr}, qr/22012: division by zero/, 'a cancel during the durability wait does not replace the error');
unlike($bg->{stderr}, qr/canceling statement/, 'no cancel message instead');

$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM agentgate.audit_log
	 WHERE role_name = 'agent1' AND sqlstate = '22012' AND decision = 'error'}),
	'2', 'both failed statements have their row with their own SQLSTATE');

$node->stop;
done_testing();
