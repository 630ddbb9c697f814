# agentgate-proxy against a hostile client or a hostile database role:
# forged revocation notices, one identity exhausting the connection slots,
# floods of unauthenticated CancelRequests, PgBouncer's admin console, and
# an open file limit that cannot hold the configuration.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IPC::Run qw(run);
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';    # a closed connection must fail a test, not kill it

my $s = AgentGate::Stack->new(name => 'proxy-abuse');
$s->{proxy_conf} = <<"EOC";
max_connections = 6
max_connections_per_identity = 3
cancel_rate = 5
cancel_burst = 10
EOC
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;
my $log = $s->log_file('proxy');

sub session
{
	my ($who) = @_;
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($s->token(sub => $who), database => $db);
	die "login of $who failed: $r->{error}{M}\n" unless $r->{ok};
	$c->{login} = $r;
	return $c;
}

sub alive
{
	my ($c) = @_;
	my $v = AgentGate::ProxyClient::first_value($c->query('SELECT 1', 5));
	return defined $v && $v eq '1';
}

sub log_count
{
	my ($re) = @_;
	my $n = () = AgentGate::Stack::_slurp($log) =~ /$re/g;
	return $n;
}

# A line that shows up in the log within $timeout seconds.
sub wait_log
{
	my ($re, $min, $timeout) = @_;
	my $deadline = time + ($timeout // 5);
	while (time < $deadline)
	{
		return 1 if log_count($re) >= $min;
		sleep 0.05;
	}
	return 0;
}

$s->admin_psql('CREATE ROLE mallory LOGIN');

# --- a revocation notice is a hint: forged ones close nothing
{
	my $alice = session('alice');
	my $alice2 = session('alice');

	# a plain role, then the superuser, then pg_notify(): each names alice
	$s->admin_psql("NOTIFY agentgate_revocations, 'alice'", user => 'mallory');
	ok(wait_log(qr/revocation notice for "alice" ignored: the identity is active/, 1),
	   "a forged NOTIFY from a plain role: the proxy reads alice's status and ignores it");
	$s->admin_psql("NOTIFY agentgate_revocations, 'alice'");
	$s->admin_psql("SELECT pg_notify('agentgate_revocations', 'alice')", user => 'mallory');
	ok(wait_log(qr/revocation notice for "alice" ignored/, 3), 'a DBA NOTIFY and pg_notify(): ignored too');
	ok(alive($alice) && alive($alice2), "alice's connections are open and answer");

	# one transaction with 2,000 notices: 1,999 names with no connection
	# here, and alice; then 300 more transactions naming alice
	my $before = log_count(qr/revocation notice for "alice" ignored/);
	$s->admin_psql("SELECT count(pg_notify('agentgate_revocations', 'forged' || i)) FROM generate_series(1, 1999) i; "
		  . "NOTIFY agentgate_revocations, 'alice';",
		user => 'mallory');
	ok(wait_log(qr/revocation notice for "alice" ignored/, $before + 1), 'the burst was read');
	sleep 0.5;
	my $reads = log_count(qr/revocation notice for "alice" ignored/) - $before;
	ok($reads >= 1 && $reads <= 2, "2,000 notices in one transaction: $reads status read(s) of alice");
	is(log_count(qr/revocation notice for "forged/), 0, 'names without connections cost no read at all');

	$before = log_count(qr/revocation notice for "alice" ignored/);
	$s->admin_psql(join('', map { "NOTIFY agentgate_revocations, 'alice';\n" } 1 .. 300), user => 'mallory');
	sleep 1;
	$reads = log_count(qr/revocation notice for "alice" ignored/) - $before;
	ok($reads >= 1 && $reads <= 300, "300 transactions naming alice: $reads read(s), at most one per notice");
	ok(alive($alice) && alive($alice2), "after all that, alice's connections still answer");
	is(log_count(qr/revocation of "alice"/), 0, 'no connection of alice was ever closed');

	# a real revocation still closes them at once
	my $t0 = time;
	$s->admin_psql("SELECT agentgate.revoke('alice', 'test')");
	my ($t, $b) = $alice->read_message(2);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is("$t $f->{C} $f->{M}", 'E 57P01 identity revoked', 'agentgate.revoke(): FATAL 57P01 identity revoked');
	ok($alice->wait_closed(1) && $alice2->wait_closed(1), 'both connections closed');
	ok(time - $t0 < 1.5, sprintf('within %.3f s', time - $t0));

	# suspend too, and a DELETE from the registry
	my $bob = session('bob');
	$s->admin_psql("SELECT agentgate.suspend('bob')");
	ok($bob->wait_closed(2), 'agentgate.suspend() closes the connection');
	my $carl = session('carl');
	$s->admin_psql("DELETE FROM agentgate.agents WHERE identity = 'carl'");
	ok($carl->wait_closed(2), 'an identity deleted from the registry is closed');

	# the status cannot be read: fail closed
	my $dan = session('dan');
	$s->admin_psql('REVOKE EXECUTE ON FUNCTION agentgate.identity_status(text[]) FROM agentgate_proxy');
	$s->admin_psql("NOTIFY agentgate_revocations, 'dan'", user => 'mallory');
	ok($dan->wait_closed(2), 'status unreadable: the connection is closed (fail closed)');
	ok(wait_log(qr/revocation notice for "dan": its status could not be read/, 1), 'and that is logged');
	$s->admin_psql('GRANT EXECUTE ON FUNCTION agentgate.identity_status(text[]) TO agentgate_proxy');
}

# --- per-identity and total connection limits
{
	my @e = map { session('erin') } 1 .. 3;
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($s->token(sub => 'erin'), database => $db);
	is($r->{error}{C}, '53300', "a 4th connection of one identity: 53300");
	like($r->{error}{M}, qr/^too many connections for identity "erin" \(max_connections_per_identity = 3\)$/,
		'the message names the identity and the limit');
	like($r->{error}{D} // '', qr/already holds 3 connections/, 'the detail says how many it holds');
	ok(length($r->{error}{H} // ''), 'with a hint');
	ok(alive($_), 'the first three are unaffected') for @e;

	my @others = (session('fay'), session('fay'), session('gus'));
	ok(1, 'other identities still log in while erin is at its limit');
	$c = AgentGate::ProxyClient->new(port => $port);
	$r = $c->login($s->token(sub => 'hal'), database => $db);
	is($r->{error}{C}, '53300', '7th connection in all: 53300');
	is($r->{error}{M}, 'too many connections (max_connections = 6)', 'the message names max_connections');

	my ($rc, $out, $err) = $s->agent_psql($s->token(sub => 'hal'), 'SELECT 1');
	like($err, qr/FATAL:\s+too many connections \(max_connections = 6\)/, 'psql shows the FATAL');

	$e[0]->close;
	$others[0]->close;
	sleep 0.3;
	my $h = eval { session('hal') };
	ok($h && alive($h), 'a closed connection frees its slot for another identity');
	my $e4 = eval { session('erin') };
	ok($e4 && alive($e4), "and erin's slot for erin");
	$_->close for grep { $_ } ($h, $e4, @e[1, 2], @others[1, 2]);
	sleep 0.3;
}

# --- PgBouncer's admin console is refused at startup, before any wait
{
	for my $p ([ database => 'pgbouncer' ], [ database => 'PgBouncer' ], [ database => 'PGBOUNCER' ],
		[ database => undef, user => 'pgbouncer' ])
	{
		my %p = @$p;
		my $what = join(' ', map { "$_=" . ($p{$_} // '(absent)') } sort keys %p);
		my $c = AgentGate::ProxyClient->new(port => $port);
		my %params = (user => 'agent', database => 'app', %p);
		delete $params{$_} for grep { !defined $params{$_} } keys %params;
		my $t0 = time;
		$c->write_raw(AgentGate::ProxyClient::startup_packet(%params));
		my ($t, $b) = $c->read_message(5);
		my $f = AgentGate::ProxyClient::error_fields($b // '');
		is("$t $f->{S} $f->{C}", 'E FATAL 42501', "$what: FATAL 42501 at once, no password asked");
		like($f->{M} // '', qr/database "pgbouncer" is not available/, "$what: the message says why");
		ok(time - $t0 < 1, sprintf("$what: answered in %.3f s", time - $t0));
	}
	my ($rc, $out, $err) = $s->agent_psql($s->token(sub => 'ivy'), 'SHOW POOLS', db => 'pgbouncer');
	like($err, qr/FATAL:\s+database "pgbouncer" is not available/, 'psql dbname=pgbouncer: refused');
}

# --- a flood of unauthenticated CancelRequests is rate-limited per address
{
	my $relayed0 = log_count(qr/cancel request relayed/);
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		for (1 .. 2000)
		{
			my $sk = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
			  or next;
			syswrite($sk, pack('NNNN', 16, 80877102, 12345, int(rand(2**31))));
			close $sk;
		}
		_exit(0);
	}
	my $t0 = time;
	my @logins;
	while (waitpid($pid, POSIX::WNOHANG()) == 0)
	{
		my $l0 = time;
		my ($rc) = $s->agent_psql($s->token(sub => 'jay'), 'SELECT 1');
		push @logins, [ $rc, time - $l0 ];
		sleep 0.1;
	}
	my $flood = time - $t0;
	ok(wait_log(qr/cancel request (relayed|dropped)/, 2000, 10), 'all 2,000 cancels were handled');
	my $relayed = log_count(qr/cancel request relayed/) - $relayed0;
	my $dropped = log_count(qr/cancel request dropped: over cancel_rate/);
	my $bound = 10 + 5 * ($flood + 1);
	ok($relayed <= $bound, sprintf('%d of 2,000 relayed to PgBouncer in %.1f s (at most %d)', $relayed, $flood, $bound));
	ok($dropped >= 2000 - $bound, "$dropped dropped without touching PgBouncer");
	my @bad = grep { $_->[0] != 0 } @logins;
	my ($slowest) = sort { $b <=> $a } map { $_->[1] } @logins;
	ok(@logins && !@bad, scalar(@logins) . ' logins during the flood, all succeeded');
	ok(defined $slowest && $slowest < 3, sprintf('slowest login during the flood: %.2f s', $slowest // -1));

	# a real cancel still works once the address's bucket has refilled
	sleep 2.5;
	my $c = session('kim');
	$c->send_message('Q', "SELECT pg_sleep(20)\0");
	sleep 0.5;
	AgentGate::ProxyClient::send_cancel($port, $c->{login}{pid}, $c->{login}{key});
	my ($code, $t1) = ('', time);
	while (my ($t, $b) = $c->read_message(10))
	{
		if ($t eq 'E') { $code = AgentGate::ProxyClient::error_fields($b)->{C}; }
		last if $t eq 'Z';
	}
	is($code, '57014', sprintf('a genuine cancel after the flood cancels the query (%.2f s)', time - $t1));
}

# --- the open file limit is checked at start
{
	my $bin = "$s->{top}/pooler/agentgate-proxy";
	my $conf = $s->proxy_conf_file;
	my ($out, $err) = ('', '');
	my $ok = run([ 'sh', '-c', 'ulimit -n 256 && exec "$0" -t -c "$1"', $bin, $conf ],
		'>', \$out, '2>', \$err);
	ok(!$ok, '-t with an open file limit of 256 and the default max_clients: refused');
	like($err, qr/open file limit 256 is too low: max_clients \(10000\) \+ max_connections \(6\)/,
		'the message names the limit and the settings');
	($out, $err) = ('', '');
	$ok = run([ 'sh', '-c', 'ulimit -n 256 && exec "$0" -c "$1"', $bin, $conf ], '>', \$out, '2>', \$err);
	ok(!$ok && $err =~ /FATAL open file limit 256 is too low/, 'the proxy itself refuses to start');
}

done_testing();
