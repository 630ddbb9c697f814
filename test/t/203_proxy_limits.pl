# agentgate-proxy limits and settings: max_clients, auth_timeout,
# exp_grace, max_message_bytes, tls_min_version, pid_file, and -t.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use IPC::Run qw(run);
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';    # a closed connection must fail a test, not kill it

my $s = AgentGate::Stack->new(name => 'proxy-limits');
my $pidfile = $s->base . '/proxy.pid';
$s->{proxy_conf} = <<"EOC";
max_clients = 3
auth_timeout = 1
exp_grace = 2
max_message_bytes = 4096
tls_min_version = TLSv1.3
pid_file = $pidfile
shutdown_timeout = 1
EOC
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;
my $tok = $s->token(sub => 'alice');

# --- pid_file
ok(-f $pidfile, 'pid_file written');
is(AgentGate::Stack::_slurp($pidfile) =~ s/\s+//gr, $s->pid_of('proxy'), 'pid_file holds the pid');

# --- tls_min_version = TLSv1.3 refuses a TLS 1.2 client
{
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die;
	syswrite($sock, pack('NN', 8, 80877103));
	sysread($sock, my $a, 1);
	is($a, 'S', 'SSLRequest accepted');
	my $ok = IO::Socket::SSL->start_SSL($sock, SSL_verify_mode => SSL_VERIFY_NONE,
		SSL_version => 'TLSv1_2', Timeout => 5);
	ok(!$ok, 'a TLS 1.2 handshake is refused under tls_min_version = TLSv1.3');
	my $c = AgentGate::ProxyClient->new(port => $port);
	ok($c->login($tok, database => $db)->{ok}, 'a TLS 1.3 client logs in');
	$c->close;
}

# --- auth_timeout: a client that goes quiet after TLS
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $t0 = time;
	my ($t, $b) = $c->read_message(5);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is("$t $f->{C} $f->{M}", 'E 08006 authentication timeout', 'silent client: FATAL authentication timeout');
	my $dt = time - $t0;
	ok($dt > 0.7 && $dt < 3, sprintf('after auth_timeout = 1 s (%.2f s)', $dt));
	ok($c->wait_closed(2), 'and closed');
}

# --- max_message_bytes
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	ok($c->login($tok, database => $db)->{ok}, 'login');
	is(AgentGate::ProxyClient::first_value($c->query('SELECT length(\'' . ('a' x 3000) . '\')')), '3000',
		'a 3 kB query passes under max_message_bytes = 4096');
	my @m = $c->query('SELECT length(\'' . ('a' x 5000) . '\')', 5);
	my ($e) = grep { $_->[0] eq 'E' } @m;
	is($e ? AgentGate::ProxyClient::error_fields($e->[1])->{M} : '', 'invalid message length',
		'a 5 kB query is refused');
	ok($c->wait_closed(2), 'and the connection closed');
}

# --- max_clients = 3
{
	my @c = map { AgentGate::ProxyClient->new(port => $port) } 1 .. 3;
	ok($_->login($tok, database => $db)->{ok}, 'client within max_clients') for @c;
	my $fourth = eval { AgentGate::ProxyClient->new(port => $port) };
	ok(!$fourth, 'the 4th connection is closed at accept');
	like(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/refused: max_clients reached/, 'and logged');
	$_->close for @c;
	sleep 0.3;
	my $again = AgentGate::ProxyClient->new(port => $port);
	ok($again->login($tok, database => $db)->{ok}, 'room again once clients leave');
	$again->close;
}

# --- exp_grace = 2: closed 2 s after exp, not at exp
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	ok($c->login($s->token(sub => 'bob', ttl => 2), database => $db)->{ok}, 'short token logs in');
	my $t0 = time;
	sleep 2.5;
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 1')), '1', 'still open just after exp');
	my ($t, $b) = $c->read_message(5);
	is(AgentGate::ProxyClient::error_fields($b // '')->{M}, 'token expired', 'closed within exp_grace');
	my $dt = time - $t0;
	ok($dt > 2.5 && $dt < 5, sprintf('at exp + 2 s (%.1f s after login)', $dt));
}

# --- -t checks a configuration
{
	my ($out, $err) = ('', '');
	my $bin = $s->{proxy_bin};
	ok(run([ $bin, '-t', '-c', $s->proxy_conf_file ], '>', \$out, '2>', \$err), '-t accepts the running configuration');
	like($err, qr/is valid/, '-t says so');
	my $bad = $s->base . '/bad.conf';
	AgentGate::Stack::_spew($bad, AgentGate::Stack::_slurp($s->proxy_conf_file) . "tls_cert_file = /nonexistent.crt\n");
	ok(!run([ $bin, '-t', '-c', $bad ], '>', \$out, '2>', \$err), '-t refuses a missing certificate');
	like($err, qr/could not load certificate "\/nonexistent.crt"/, 'and names it');
}

# --- a login that hangs in PostgreSQL: the client times out, the stuck admin
# connection is rebuilt, other logins go on
{
	my $st = $s->token(sub => 'stuck');
	my $c = AgentGate::ProxyClient->new(port => $port);
	ok($c->login($st, database => $db)->{ok}, 'first login of "stuck" creates its row');
	$c->close;
	# hold the row lock login() needs for 6 s
	my $psql = "$ENV{PG_BINDIR}/psql";
	$psql = 'psql' unless $ENV{PG_BINDIR} && -x $psql;
	my $sql = "BEGIN; SELECT 1 FROM agentgate.agents WHERE identity = 'stuck' FOR UPDATE; SELECT pg_sleep(6); COMMIT;";
	my $h = IPC::Run::start([ $psql, '-X', '-q', '-h', $s->pg_socket_dir, '-p', $s->pg_port,
		'-U', 'postgres', '-d', $db, '-c', $sql ], '>', \my $o, '2>', \my $e);
	sleep 0.5;
	my $w = AgentGate::ProxyClient->new(port => $port);
	# another token of the identity: the login cache would answer for $st
	my $r = $w->login($s->token(sub => 'stuck', ttl => 299), database => $db);
	is($r->{error}{M}, 'authentication timeout', 'a hanging login() ends in authentication timeout');
	my $other = AgentGate::ProxyClient->new(port => $port);
	ok($other->login($tok, database => $db)->{ok}, 'other identities still log in meanwhile');
	$other->close;
	my $seen = 0;
	for (1 .. 40)
	{
		if (AgentGate::Stack::_slurp($s->log_file('proxy')) =~ /did not answer within auth_timeout/) { $seen = 1; last; }
		sleep 0.1;
	}
	ok($seen, 'the stuck admin connection is dropped and rebuilt');
	$h->finish;
	my $ok = 0;
	my $fresh = $s->token(sub => 'stuck', ttl => 298);    # not one the cache knows
	for (1 .. 50)
	{
		my $n = AgentGate::ProxyClient->new(port => $port);
		if ($n->login($fresh, database => $db)->{ok}) { $ok = 1; $n->close; last; }
		sleep 0.2;
	}
	ok($ok, '"stuck" logs in again once the lock is gone');
}

# --- SIGHUP with a new listen_port: new port in use, sessions kept
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	ok($c->login($tok, database => $db)->{ok}, 'session before the port change');
	my $newport = AgentGate::Stack::free_port();
	my $conf = AgentGate::Stack::_slurp($s->proxy_conf_file);
	AgentGate::Stack::_spew($s->proxy_conf_file, $conf . "listen_port = $newport\n");
	$s->signal('proxy', 'HUP');
	sleep 0.5;
	my $n = eval { AgentGate::ProxyClient->new(port => $newport) };
	ok($n && $n->login($tok, database => $db)->{ok}, 'SIGHUP: the new listen_port accepts');
	ok(!eval { AgentGate::ProxyClient->new(port => $port); 1 }, 'SIGHUP: the old port is closed');
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 5')), '5', 'SIGHUP: the old session is kept');
	$port = $newport;
	$c->close;
	$n->close if $n;
}

# --- SIGTERM gives up on busy sessions after shutdown_timeout; pid_file removed
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	ok($c->login($tok, database => $db)->{ok}, 'a session to outlast shutdown_timeout');
	$c->send_message('Q', "SELECT pg_sleep(10)\0");
	sleep 0.3;
	my $t0 = time;
	$s->signal('proxy', 'TERM');
	ok($c->wait_closed(5), 'SIGTERM: the busy session is closed');
	my $gone = 0;
	for (1 .. 50)
	{
		if (!$s->alive('proxy')) { $gone = 1; last; }
		sleep 0.1;
	}
	my $dt = time - $t0;
	ok($gone && $dt < 4, sprintf('the proxy exits after shutdown_timeout = 1 s (%.1f s)', $dt));
	like(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/shutdown_timeout reached, closing 1 connection/,
		'and says so');
	ok(!-e $pidfile, 'pid_file removed at exit');
}
$s->stop_process('proxy');

$s->stop;
done_testing();
