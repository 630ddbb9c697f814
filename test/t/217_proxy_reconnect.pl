# agentgate-proxy for clients that connect again and again: TLS sessions
# resumed from the proxy's tickets (reported as resumed by the client and
# in the proxy's log), the login cache serving a token's second login
# without a second verification or login(), a revocation ending a cached
# token's logins at once (and its live session, as without the cache), and
# an expired token never served from the cache.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IO::Socket::SSL;
use IPC::Run qw(run timeout);
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';    # a closed connection must fail a test, not kill it

# leeway 0: a token past its exp fails verification, so only the cache
# could still let it in
my $s = AgentGate::Stack->new(name => 'proxy-reconnect', proxy_conf => "leeway = 0\n");
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;
my $log = $s->log_file('proxy');

sub log_text { open(my $fh, '<', $log) or return ''; local $/; return <$fh>; }

sub count_lines
{
	my ($re) = @_;
	my $n = () = log_text() =~ /$re/mg;
	return $n;
}

sub session
{
	my ($tok, %o) = @_;
	my $c = AgentGate::ProxyClient->new(port => $port, %o);
	my $r = $c->login($tok, database => $db);
	return ($c, $r);
}

# --- TLS resumption, as openssl s_client reports it
{
	my $sess = $s->base . '/s_client.sess';
	my @cmd = ('openssl', 's_client', '-connect', "127.0.0.1:$port", '-starttls', 'postgres');
	my ($in1, $out1, $err1) = ('', '', '');
	# s_client keeps reading while its input is open: long enough for the
	# ticket, which TLS 1.3 sends after the handshake
	run([ 'sh', '-c', 'sleep 1' ], '|', [ @cmd, '-sess_out', $sess ], '>', \$out1, '2>', \$err1,
		timeout(20));
	like($out1, qr/^New, TLSv1\.3/m, 'first connection: a new TLS 1.3 session');
	ok(-s $sess, 'the client kept the session ticket');
	my ($out2, $err2) = ('', '');
	run([ 'sh', '-c', 'sleep 1' ], '|', [ @cmd, '-sess_in', $sess ], '>', \$out2, '2>', \$err2,
		timeout(20));
	like($out2, qr/^Reused, TLSv1\.3/m, 'second connection: the session is resumed')
	  or diag($out2 . $err2);
}

# --- a resumed session logs in and works; the proxy says it was resumed
{
	my $cache = IO::Socket::SSL::Session_Cache->new(4);
	my %ssl = (SSL_session_cache => $cache, SSL_session_key => "proxy:$port");
	my $tok = $s->token(sub => 'gina');
	my ($c1, $r1) = session($tok, ssl => \%ssl);
	ok($r1->{ok}, 'first login') or diag($r1->{error}{M});
	ok(!$c1->tls_resumed, 'first connection: full handshake');
	$c1->close;
	my ($c2, $r2) = session($tok, ssl => \%ssl);
	ok($r2->{ok}, 'login over a resumed session') or diag($r2->{error}{M});
	ok($c2->tls_resumed, 'second connection: the client reports the session resumed');
	is(AgentGate::ProxyClient::first_value($c2->query('SELECT 1')), '1', 'it runs statements');
	$c2->close;
	like(log_text(), qr/identity=gina session=\w+\] login.*tls=resumed/,
		"the proxy's log says tls=resumed");
}

# --- the login cache: the second login of a token is served from it, with a
# session (stamp) of its own
{
	my $tok = $s->token(sub => 'fiona');
	my ($c1, $r1) = session($tok);
	ok($r1->{ok}, 'fiona: first login') or diag($r1->{error}{M});
	my ($c2, $r2) = session($tok);
	ok($r2->{ok}, 'fiona: second login') or diag($r2->{error}{M});
	is(count_lines(qr/identity=fiona session=\w+\] login: role=/), 1,
		'one login verified the token and called login()');
	is(count_lines(qr/identity=fiona session=\w+\] login \(cached\): role=/), 1,
		'the second was served from the cache');
	my $sid1 = AgentGate::ProxyClient::first_value($c1->query('SELECT agentgate.session_id()'));
	my $sid2 = AgentGate::ProxyClient::first_value($c2->query('SELECT agentgate.session_id()'));
	ok($sid1 && $sid2 && $sid1 ne $sid2, "each connection has a session of its own ($sid1, $sid2)");
	is(AgentGate::ProxyClient::first_value($c2->query('SELECT session_user')),
		AgentGate::ProxyClient::first_value($c1->query('SELECT session_user')),
		'and the same role');

	# revocation: the cached token's next login is refused at once, and the
	# live sessions end as they do without a cache
	$s->admin_psql("SELECT agentgate.revoke('fiona', 'test')");
	my ($t, $b) = $c1->read_message(2);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is("$t $f->{C} $f->{M}", 'E 57P01 identity revoked', 'live session: identity revoked');
	ok($c2->wait_closed(1), 'the cached session is closed too');
	my $t0 = time;
	my ($c3, $r3) = session($tok);
	ok(!$r3->{ok}, 'a login with the cached token right after the revocation is refused');
	like($r3->{error}{M} // '', qr/agent identity "fiona" is revoked/,
		'by agentgate.login(): the cache no longer answered');
	ok(time - $t0 < 1, 'at once');
	is(count_lines(qr/identity=fiona session=\w+\] login \(cached\)/), 1, 'no cached login after it');
}

# --- a cached token past its exp is verified again, and refused
{
	my $tok = $s->token(sub => 'hana', ttl => 3);
	my ($c1, $r1) = session($tok);
	ok($r1->{ok}, 'hana: first login') or diag($r1->{error}{M});
	my ($c2, $r2) = session($tok);
	ok($r2->{ok}, 'hana: second login, from the cache') or diag($r2->{error}{M});
	is(count_lines(qr/identity=hana session=\w+\] login \(cached\)/), 1, 'served from the cache');
	$c1->close;
	$c2->close;
	sleep 3.5;
	my ($c3, $r3) = session($tok);
	ok(!$r3->{ok}, 'after exp: refused');
	is($r3->{error}{C} // '', '28000', 'as an invalid token');
	like($r3->{error}{D} // '', qr/^expired/, 'because it expired');
	is(count_lines(qr/identity=hana session=\w+\] login \(cached\)/), 1,
		'the cache did not serve it');
}

# --- a reload empties the cache: the next login is verified again
{
	my $tok = $s->token(sub => 'ivy');
	my ($c1, $r1) = session($tok);
	ok($r1->{ok}, 'ivy: first login');
	$s->signal('proxy', 'HUP');
	my $deadline = time + 5;
	sleep 0.1 while count_lines(qr/configuration reloaded/) < 1 && time < $deadline;
	my ($c2, $r2) = session($tok);
	ok($r2->{ok}, 'ivy: login after the reload');
	is(count_lines(qr/identity=ivy session=\w+\] login: role=/), 2, 'verified again after the reload');
}

$s->stop;
done_testing();
