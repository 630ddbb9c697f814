# Local commit: in agentgate.audit_database, a transaction that wrote
# inserts its own audit rows at commit instead of waiting for the writer.
#
#  - with the writer stopped (SIGSTOP), writes in the audit database commit
#    at once and their rows are in the log when COMMIT returns; a write in
#    another database still waits for the writer and is refused;
#  - rows of a rolled-back transaction go through the writer and survive;
#  - the session summary and the sequence numbers match the rows;
#  - a crash while rows are held is counted in the next gap row;
#  - with agentgate.audit_local_commit = off, the commit waits as before.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use Time::HiRes qw(usleep time);

my $node = AgentGate::Node::new('local', q{
agentgate.audit_flush_interval = 20ms
agentgate.audit_sync_timeout = 2000ms
restart_after_crash = on
});
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
CREATE TABLE t (id bigserial PRIMARY KEY, v int);
CREATE TABLE t_rb (v int);
CREATE TABLE t_crash (v int);
GRANT SELECT, INSERT ON t, t_rb, t_crash TO agent1;
GRANT USAGE ON SEQUENCE t_id_seq TO agent1;
CREATE DATABASE other;
});
$node->safe_psql('other', q{
CREATE EXTENSION agentgate;
CREATE TABLE t_other (v int);
GRANT SELECT, INSERT ON t_other TO agent1;
});

# agents come with the proxy's session stamp in application_name
$ENV{PGAPPNAME} = $node->safe_psql('postgres', "SELECT (agentgate.session_stamp('agent1')).stamp");

sub writer_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentgate audit writer'");
}

sub rows
{
	my ($where) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM agentgate.audit_log WHERE role_name = 'agent1' AND $where");
}

sub agent
{
	my ($db, $sql) = @_;
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql($db, $sql,
		extra_params => [ '-U', 'agent1' ], on_error_stop => 1);
	return ($ret, $err, time - $t0);
}

# ---- the writer stopped: the audit database's writes do not wait for it
my $wpid = writer_pid();
ok($wpid =~ /^\d+$/, 'the writer runs');
kill 'STOP', $wpid;
{
	my ($ret, $err, $secs) = agent('postgres',
		'BEGIN; INSERT INTO t (v) VALUES (1); INSERT INTO t (v) VALUES (2); COMMIT;');
	is($ret, 0, 'a transaction that wrote commits while the writer is stopped');
	cmp_ok($secs, '<', 1.5, '... without waiting for the writer');
	is(rows("command_tag = 'INSERT' AND relations @> '{public.t}'"), 2,
		'... and its rows are in the log when COMMIT returns');
	is(rows("command_tag = 'COMMIT'"), 1, '... the COMMIT row too (it follows a write)');

	($ret, $err, $secs) = agent('postgres', 'INSERT INTO t (v) VALUES (3)');
	is($ret, 0, 'an autocommit write commits while the writer is stopped');
	is(rows("command_tag = 'INSERT' AND relations @> '{public.t}'"), 3,
		'... with its row');

	($ret, $err, $secs) = agent('other', 'INSERT INTO t_other VALUES (1)');
	isnt($ret, 0, 'a write in another database still waits for the writer');
	like($err, qr/audit row not committed in time/, '... and is refused when it does not come');

	($ret, $err, $secs) = agent('postgres', 'BEGIN; INSERT INTO t_rb VALUES (1); ROLLBACK;');
	is($ret, 0, 'a transaction that wrote rolls back while the writer is stopped');
	is(rows("relations @> '{public.t_rb}'"), 0, '... its row waits for the writer');
}
kill 'CONT', $wpid;
$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
is(rows("relations @> '{public.t_rb}' AND command_tag = 'INSERT'"), 1,
	'the row of the rolled-back write survives, through the writer');
is(rows("relations @> '{public.t_other}' AND command_tag = 'INSERT'"), 1,
	'the refused write in the other database has its row');

# ---- the summary and the sequence numbers match the rows
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (
  SELECT l.session_key, l.n, s.statements
    FROM (SELECT coalesce(session_id, 'backend:' || backend_session) AS session_key,
                 count(*) AS n
            FROM agentgate.audit_log WHERE role_name = 'agent1' GROUP BY 1) l
    LEFT JOIN agentgate.audit_sessions s
      ON s.role_name = 'agent1' AND s.session_id = l.session_key
   WHERE s.statements IS DISTINCT FROM l.n) mismatched}), 0,
	'every session summary counts exactly the rows of its session');
is($node->safe_psql('postgres', q{
SELECT count(*) - count(DISTINCT (epoch, seq)) FROM agentgate.audit_log WHERE decision <> 'gap'}),
	0, 'sequence numbers stay unique');

# ---- a crash while a transaction holds rows: counted in the gap row
{
	my $agent = $node->background_psql('postgres', extra_params => [ '-U', 'agent1' ]);
	$agent->query_safe('BEGIN');
	$agent->query_safe('INSERT INTO t_crash VALUES (1)');
	my $pid = $agent->query_safe('SELECT pg_backend_pid()');
	my $before = $node->safe_psql('postgres', 'SELECT now()');
	kill 'KILL', $pid;
	eval { $agent->quit };
	my $ok = 0;
	for (1 .. 600)
	{
		$ok = eval { $node->safe_psql('postgres', 'SELECT agentgate.audit_flush()') eq 't' };
		last if $ok;
		usleep(100_000);
	}
	ok($ok, 'the server and the writer are back after the crash');
	is(rows("relations @> '{public.t_crash}'"), 0, 'the crashed transaction wrote no row');
	cmp_ok($node->safe_psql('postgres',
			"SELECT coalesce(sum(lost), 0) FROM agentgate.audit_log WHERE decision = 'gap' AND ts >= '$before'"),
		'>=', 2, 'the gap row counts the rows the crashed transaction held (INSERT, SELECT)');
}

# ---- turned off: the commit waits for the writer again
$node->append_conf('postgresql.conf', 'agentgate.audit_local_commit = off');
$node->reload;
$node->poll_query_until('postgres', 'SELECT current_setting($$agentgate.audit_local_commit$$) = $$off$$');
$wpid = writer_pid();
kill 'STOP', $wpid;
{
	my ($ret, $err, $secs) = agent('postgres', 'INSERT INTO t (v) VALUES (4)');
	isnt($ret, 0, 'with audit_local_commit off, a write waits for the stopped writer');
	like($err, qr/audit row not committed in time/, '... and is refused');
}
kill 'CONT', $wpid;

$node->stop;
done_testing();
