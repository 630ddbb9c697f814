# Audit durability: count acknowledged statements against audit rows.
#
#  - ROLLBACK, errors, refused statements: every one has its row;
#  - 8 concurrent clients: rows = statements, exactly;
#  - kill -9 of a backend, kill -9 of the writer, immediate shutdown: every
#    acknowledged write has its row; lost reads are counted in a gap row and
#    stay within the ring size; the writer comes back by itself;
#  - clean shutdown: nothing lost, no gap;
#  - audit table locked: statements wait, then are refused (block), or run
#    with counted gap rows (drop); nothing acknowledged is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use IPC::Run;
use Time::HiRes qw(usleep);

my $slots = 1024;
my $node = AgentGate::Node::new('audit', qq{
agentgate.audit_ring_slots = $slots
agentgate.audit_flush_interval = 20ms
agentgate.audit_block_timeout = 1000ms
agentgate.audit_sync_timeout = 3000ms
max_connections = 40
restart_after_crash = on
});
my $sockdir = $node->host;
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
CREATE TABLE t (id bigserial PRIMARY KEY, v int);
GRANT SELECT, INSERT ON t TO agent1;
GRANT USAGE ON SEQUENCE t_id_seq TO agent1;
});

# agents come with the proxy's session stamp in application_name
my $stamp = $node->safe_psql('postgres', "SELECT (agentgate.session_stamp('agent1')).stamp");
$ENV{PGAPPNAME} = $stamp;
my $agent_connstr = $node->connstr('postgres') . " user=agent1 application_name=$stamp";

sub count_rows
{
	my ($where) = @_;
	$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM agentgate.audit_log WHERE role_name = 'agent1' AND $where");
}

sub lost_since
{
	my ($ts) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(lost), 0) || ':' || count(*) || ':' || count(*) FILTER (WHERE lost IS NULL)"
		  . " FROM agentgate.audit_log WHERE decision = 'gap' AND ts >= '$ts'");
}

sub wait_ready
{
	# While the server restarts, psql may exit before it has read its
	# query, and IPC::Run dies writing into the closed pipe: retry instead
	# of poll_query_until.
	for my $what ([ 'SELECT true', 'server not back' ],
		[ 'SELECT agentgate.audit_flush()', 'writer not back' ])
	{
		my ($sql, $fail) = @$what;
		my $ok = 0;
		for (1 .. 600)
		{
			$ok = eval { $node->safe_psql('postgres', $sql) eq 't' };
			last if $ok;
			Time::HiRes::usleep(100_000);
		}
		die $fail unless $ok;
	}
}

sub pgbench_run
{
	my ($script, $clients, $opt, $secs) = @_;
	my $f = $node->basedir . "/bench_$clients.sql";
	open my $fh, '>', $f or die $!;
	print $fh $script;
	close $fh;
	my ($out, $err);
	my @cmd = (
		'pgbench', '-n', '-c', $clients, '-j', 2, @$opt,
		'-f', $f, '-h', $sockdir, '-p', $node->port, '-U', 'agent1', 'postgres');
	return IPC::Run::start(\@cmd, '>', \$out, '2>', \$err), \$out, \$err;
}

sub processed
{
	my ($out) = @_;
	return $$out =~ /number of transactions actually processed: (\d+)/ ? $1 : 0;
}

# ---- every statement of a session, whatever becomes of it
{
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
SELECT 1;
BEGIN; INSERT INTO t (v) VALUES (1); ROLLBACK;
BEGIN; INSERT INTO t (v) VALUES (2); SELECT 1/0; COMMIT;
DROP TABLE t;
SELEC 1;
SELECT count(*) FROM t;
},
		connstr => $agent_connstr, on_error_stop => 0);
	# SELECT, BEGIN, INSERT, ROLLBACK, BEGIN, INSERT, SELECT 1/0,
	# COMMIT (in an aborted transaction it is a ROLLBACK: still a row),
	# DROP (refused), SELEC (syntax), SELECT count
	is(count_rows('true'), 11, 'one row per statement: rollback, error, refusal, syntax error');
	is(count_rows('session_id = ' . "'" . substr($stamp, 4, 16) . "'"), 11,
		'every row carries the verified session id');
	is(count_rows("decision = 'blocked'"), 1, 'the refused DROP TABLE is recorded as blocked');
	is(count_rows("decision = 'error'"), 2, 'errors are recorded');
	is(count_rows("command_tag = 'INSERT' AND decision = 'allowed'"),
		2, 'rolled-back inserts keep their rows');
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
}

# ---- a write never commits before its row: an autocommit write waits at
# its end, a transaction block once, at COMMIT; the row of a rolled-back
# write is kept
{
	my $agent = $node->background_psql('postgres',
		extra_params => [ '-U', 'agent1' ]);
	$agent->query_safe('BEGIN');
	$agent->query_safe('INSERT INTO t (v) VALUES (7)');
	$agent->query_safe('COMMIT');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM agentgate.audit_log WHERE role_name = 'agent1' AND command_tag = 'INSERT'"),
		1, 'the row of a write in a transaction block is committed when COMMIT returns');
	$agent->query_safe('BEGIN');
	$agent->query_safe('INSERT INTO t (v) VALUES (8)');
	$agent->query_safe('ROLLBACK');
	$agent->quit;
	is(count_rows("command_tag = 'INSERT'"), 2, 'the row of a rolled-back write is kept');
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
}

# ---- 8 concurrent clients
{
	my ($h, $out, $err) = pgbench_run(
		"SELECT v FROM t WHERE id = 1;\nINSERT INTO t (v) VALUES (1);\n",
		8, [ '-t', 300 ]);
	$h->finish;
	my $tx = processed($out);
	is($tx, 2400, '8 clients ran their transactions') or diag $$err;
	is(count_rows("command_tag IN ('SELECT','INSERT')"),
		2 * $tx, '8 concurrent clients: one row per statement, none lost');
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
}

# ---- crash cases: acknowledged writes are never lost, lost reads are
# counted and bounded by the ring
sub crash_case
{
	my ($name, $crash) = @_;
	$node->safe_psql('postgres', 'TRUNCATE t');
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
	my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	my ($hr, $outr, $errr) = pgbench_run("SELECT 1;\n", 4, [ '-T', 6 ]);
	my ($hw, $outw, $errw) = pgbench_run("INSERT INTO t (v) VALUES (1);\n", 2, [ '-T', 6 ]);
	sleep 2;
	$crash->();
	$hr->finish;
	$hw->finish;
	wait_ready();
	my $acked_reads = processed($outr);
	my $inserted = $node->safe_psql('postgres', 'SELECT count(*) FROM t');
	my $insert_rows = count_rows("command_tag = 'INSERT' AND decision = 'allowed'");
	my $read_rows = count_rows("command_tag = 'SELECT'");
	my ($lost, $gaps, $unknown) = split /:/, lost_since($t0);
	note "$name: acked reads $acked_reads, read rows $read_rows, inserted $inserted, insert rows $insert_rows, lost $lost in $gaps gap rows";
	ok($acked_reads > 0 && $inserted > 0, "$name: load ran");
	cmp_ok($insert_rows, '>=', $inserted, "$name: every committed write has its audit row");
	cmp_ok($read_rows + $lost, '>=', $acked_reads, "$name: reads missing from the log are counted in gap rows");
	cmp_ok($lost, '<=', $slots, "$name: loss bounded by the ring size");
	is($unknown, 0, "$name: the loss count is known");
	return $lost;
}

crash_case('kill -9 of a backend', sub {
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE usename = 'agent1' LIMIT 1");
	kill 'KILL', $pid;
});

crash_case('kill -9 of the audit writer', sub {
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentgate audit writer'");
	kill 'KILL', $pid;
});

crash_case('immediate shutdown', sub {
	$node->stop('immediate');
	$node->start;
});

# the writer restarts by itself after a crash (checked by wait_ready above);
# it is running now
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentgate audit writer'"),
	1, 'the audit writer is running again');

# ---- clean shutdown drains the ring
{
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
	my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	my ($h, $out, $err) = pgbench_run("SELECT 1;\n", 4, [ '-T', 3 ]);
	$h->finish;
	$node->stop('fast');
	$node->start;
	wait_ready();
	my $acked = processed($out);
	is(count_rows("command_tag = 'SELECT'"), $acked, 'clean shutdown: every acknowledged read is in the log');
	is((split /:/, lost_since($t0))[1], 0, 'clean shutdown: no gap row');
}

# ---- the audit table is locked: block, then refuse; drop counts
{
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE agentgate.audit_log IN ACCESS EXCLUSIVE MODE;');

	my ($ret, $out, $err) = $node->psql('postgres', 'INSERT INTO t (v) VALUES (42)',
		connstr => $agent_connstr, on_error_stop => 0);
	like($err, qr/audit row not committed in time|audit log buffer full/,
		'a write is refused when its audit row cannot be committed');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE v = 42'), 0,
		'the refused write did not happen');

	# in a transaction block the write returns; its COMMIT waits for the
	# row and is refused, and the write is rolled back
	($ret, $out, $err) = $node->psql('postgres',
		"BEGIN;\nINSERT INTO t (v) VALUES (43) RETURNING 'inserted';\nCOMMIT;",
		connstr => $agent_connstr, on_error_stop => 0);
	like($out, qr/inserted/, 'in a transaction block the write itself does not wait');
	like($err, qr/audit row not committed in time/,
		'its COMMIT waits for the row and is refused when the row cannot be committed');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE v = 43'), 0,
		'that write did not commit');

	# reads fill the ring, then wait and are refused
	my ($h, $pout, $perr) = pgbench_run("SELECT 1;\n", 4, [ '-T', 4 ]);
	$h->finish;
	my $acked = processed($pout);
	like($$perr . $$pout, qr/audit log buffer full/, 'reads are refused once the ring is full (fail closed)');
	$locker->query_safe('COMMIT');
	is(count_rows("command_tag = 'SELECT'"), $acked,
		'block: every acknowledged read is in the log once the lock is gone');

	# drop: statements run on, the loss is counted
	$node->append_conf('postgresql.conf', "agentgate.audit_overflow = drop\n");
	$node->reload;
	$node->safe_psql('postgres', "DELETE FROM agentgate.audit_log WHERE role_name = 'agent1'");
	my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	$locker->query_safe('BEGIN; LOCK TABLE agentgate.audit_log IN ACCESS EXCLUSIVE MODE;');
	($h, $pout, $perr) = pgbench_run("SELECT 1;\n", 4, [ '-T', 3 ]);
	$h->finish;
	$locker->query_safe('COMMIT');
	$locker->quit;
	$acked = processed($pout);
	my $rows = count_rows("command_tag = 'SELECT'");
	my ($lost) = split /:/, lost_since($t0);
	note "drop: acked $acked, rows $rows, lost $lost";
	cmp_ok($lost, '>', 0, 'drop: a gap row counts the dropped records');
	cmp_ok($rows + $lost, '>=', $acked, 'drop: rows plus counted drops cover every acknowledged read');
}

$node->stop;
done_testing();
