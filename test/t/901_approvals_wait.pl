# Approvals in wait mode, with real sessions: the statement sleeps on its
# latch until an approver's COMMIT and then runs; deny, pg_cancel_backend,
# statement_timeout, the rule's timeout, the client's disconnection,
# pg_terminate_backend and a server restart each end the wait and the
# request, and none leaves a statement that runs later.  Waiting holds no
# lock another agent needs.  Request, decision and execution each leave an
# audit row, in session_replay().  Retry mode's wake-up-free path
# is in sql/approvals_01_retry.sql.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use Time::HiRes qw(usleep);

my $node = AgentGate::Node::new('approvals', q{
agentgate.audit_flush_interval = 20ms
});
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
CREATE ROLE agent2 LOGIN IN ROLE agentgate_agent;
CREATE ROLE alice LOGIN IN ROLE agentgate_approver;
CREATE TABLE t (id int PRIMARY KEY);
INSERT INTO t SELECT generate_series(1, 100);
CREATE TABLE short_t (id int PRIMARY KEY);
INSERT INTO short_t VALUES (1);
GRANT ALL ON t, short_t TO agent1, agent2;
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 't', mode => 'wait',
                                  timeout => '1 min', reason => 'deletes wait for a person');
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'short_t', mode => 'wait',
                                  timeout => '1 s', reason => 'short');
});

my $sid;						# agent1's first session, for session_replay

sub agent_session
{
	my ($role) = @_;
	my ($stamp, $id) = split /\|/, $node->safe_psql('postgres',
		"SELECT stamp, session_id FROM agentgate.session_stamp('$role')");
	local $ENV{PGAPPNAME} = $stamp;
	$sid //= $id;
	return $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', $role ]);
}

# The agent's statement, sent without waiting for it to end.
sub start_statement
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->query_until(qr/sent/, "\\echo sent\n$sql;\n");
}

# What the statement said when it ended (waits for it).
sub finish_statement
{
	my ($s) = @_;
	my ($out) = $s->query('SELECT 1 AS done');
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

sub last_request
{
	return $node->safe_psql('postgres',
		'SELECT id FROM agentgate.approvals ORDER BY id DESC LIMIT 1');
}

sub waiting_request
{
	$node->poll_query_until('postgres',
		'SELECT count(*) > 0 FROM agentgate.pending_approvals')
	  or die 'no waiting request';
	return $node->safe_psql('postgres',
		'SELECT max(id) FROM agentgate.pending_approvals');
}

sub status_becomes
{
	my ($id, $status) = @_;
	return $node->poll_query_until('postgres',
		"SELECT status FROM agentgate.approvals WHERE id = $id", $status);
}

sub as_alice
{
	my ($sql) = @_;
	return $node->psql('postgres', $sql, extra_params => [ '-U', 'alice' ]);
}

my $a1 = agent_session('agent1');

# ---- approved: the statement runs once the approval commits, not before
start_statement($a1, 'DELETE FROM t WHERE id = 1');
my $id = waiting_request();
is($node->safe_psql('postgres',
		"SELECT wait_event_type FROM pg_stat_activity WHERE query = 'DELETE FROM t WHERE id = 1;'"),
	'Extension', 'the waiting statement sleeps (wait event Extension)');
{
	my $a2 = agent_session('agent2');
	my ($out) = $a2->query('SELECT count(*) FROM t');
	is($out, '100', 'another agent reads the table meanwhile');
	$a2->query("UPDATE t SET id = id WHERE id = 50");
	is($a2->{stderr}, '', '... and writes another row of it') or diag $a2->{stderr};
	$a2->quit;
}
my $approver = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
$approver->query_safe('BEGIN');
$approver->query_safe("SELECT agentgate.approve($id, 'ok')");
usleep(300_000);
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 1'), '1',
	'an approval not yet committed releases nothing');
$approver->query_safe('COMMIT');
my ($out, $err) = finish_statement($a1);
is($err, '', 'the approved statement ran') or diag $err;
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 1'), '0', '... and deleted its row');
ok(status_becomes($id, 'executed'), '... and the request is executed');

# ---- a rolled-back approval, then a deny
start_statement($a1, 'DELETE FROM t WHERE id = 3');
$id = waiting_request();
$approver->query_safe('BEGIN');
$approver->query_safe("SELECT agentgate.approve($id)");
$approver->query_safe('ROLLBACK');
as_alice("SELECT agentgate.deny($id, 'not this one')");
($out, $err) = finish_statement($a1);
like($err, qr/was denied/, 'a denied statement is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 3'), '1', '... and did not run');

# ---- the rules change while the statement waits: policy is decided again
# at execution, so the approval does not carry it past the new rules
start_statement($a1, 'DELETE FROM t WHERE id = 5');
$id = waiting_request();
$node->safe_psql('postgres',
	"SELECT agentgate.block(commands => '{TRUNCATE}', relation => 't', reason => 'a new rule')");
as_alice("SELECT agentgate.approve($id)");
($out, $err) = finish_statement($a1);
like($err, qr/rules changed while it waited; it did not run/,
	'a statement approved after the rules changed is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 5'), '1', '... and did not run');
$node->safe_psql('postgres', "DELETE FROM agentgate.rules WHERE reason = 'a new rule'");

# ---- pg_cancel_backend
start_statement($a1, 'DELETE FROM t WHERE id = 4');
$id = waiting_request();
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'DELETE FROM t WHERE id = 4;'");
($out, $err) = finish_statement($a1);
like($err, qr/canceling statement due to user request/, 'a cancel ends the wait');
ok(status_becomes($id, 'cancelled'), '... and the request is cancelled');
my ($ret, $o, $e) = as_alice("SELECT agentgate.approve($id)");
like($e, qr/is cancelled/, '... and can no longer be approved');

# ---- statement_timeout
$a1->query_safe("SET statement_timeout = '300ms'");
start_statement($a1, 'DELETE FROM t WHERE id = 5');
($out, $err) = finish_statement($a1);
like($err, qr/statement timeout/, 'statement_timeout ends the wait');
$id = last_request();
ok(status_becomes($id, 'cancelled'), '... and the request is cancelled');
$a1->query_safe('RESET statement_timeout');

# ---- the rule's timeout
start_statement($a1, 'DELETE FROM short_t WHERE id = 1');
($out, $err) = finish_statement($a1);
like($err, qr/was not approved in time/, 'the rule\'s timeout ends the wait');
$id = last_request();
ok(status_becomes($id, 'expired'), '... and the request expires');

# ---- the client disconnects: its statement never runs
{
	my $gone = agent_session('agent1');
	start_statement($gone, 'DELETE FROM t WHERE id = 6');
	$id = waiting_request();
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE query = 'DELETE FROM t WHERE id = 6;'");
	$gone->{run}->kill_kill;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
		'a disconnected client\'s backend ends');
	ok(status_becomes($id, 'cancelled'), '... and its request is cancelled');
	as_alice("SELECT agentgate.approve($id)");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 6'), '1',
		'... and its statement never runs');
}

# ---- pg_terminate_backend
{
	my $doomed = agent_session('agent1');
	start_statement($doomed, 'DELETE FROM t WHERE id = 7');
	$id = waiting_request();
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'DELETE FROM t WHERE id = 7;'");
	ok(status_becomes($id, 'cancelled'), 'pg_terminate_backend cancels the request');
	eval { $doomed->quit };
}

# ---- audit: a statement's row is ordered by its start, so a waiting
# statement comes before the request and the decision made while it waited
$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
like($node->safe_psql('postgres', qq{
SELECT string_agg(command_tag || ':' || decision, ' ' ORDER BY ts, seq)
  FROM agentgate.session_replay('$sid', 'agent1')
 WHERE command_tag IN ('APPROVAL REQUEST', 'APPROVE', 'DENY', 'DELETE')}),
	qr/^DELETE:approved APPROVAL REQUEST:approval required APPROVE:approved DELETE:denied APPROVAL REQUEST:approval required DENY:denied /,
	'session_replay shows each waiting statement (at its start), then its request and its decision')
  or diag $node->safe_psql('postgres', qq{
SELECT command_tag, decision, statement, error_message FROM agentgate.session_replay('$sid', 'agent1')});

# ---- a server restart: a waiting statement's request is not left approvable
{
	my $s = agent_session('agent1');
	start_statement($s, 'DELETE FROM t WHERE id = 8');
	$id = waiting_request();
	$node->restart(mode => 'fast');
	eval { $s->quit };
	is($node->safe_psql('postgres', 'SELECT count(*) FROM agentgate.pending_approvals'), '0',
		'after a restart nothing waits');
	($ret, $o, $e) = as_alice("SELECT agentgate.approve($id)");
	like($e, qr/is cancelled/, '... and the request left behind can no longer be approved');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 8'), '1',
		'... and its statement never ran');
}

$a1->quit;
$approver->quit;
done_testing();
