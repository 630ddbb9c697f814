# agentgate-proxy over the life of sessions: revocation and token expiry
# close connections, SIGHUP swaps keys without dropping sessions, many
# clients at once, SIGTERM drains gracefully.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';    # a closed connection must fail a test, not kill it

# one identity holds the 200 concurrent clients below
my $s = AgentGate::Stack->new(name => 'proxy-sessions',
	proxy_conf => "max_connections_per_identity = 200\n");
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;

sub session
{
	my ($tok) = @_;
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $db);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	return $c;
}

# --- revocation closes every connection of that identity within 1 s
{
	my $tok = $s->token(sub => 'carol');
	my $idle = session($tok);
	my $busy = session($tok);
	my $other = session($s->token(sub => 'dave'));
	$busy->send_message('Q', "SELECT pg_sleep(3)\0");
	sleep 0.3;
	my $t0 = time;
	$s->admin_psql("SELECT agentgate.revoke('carol', 'test')");
	my ($t, $b) = $idle->read_message(2);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is("$t $f->{S} $f->{C} $f->{M}", 'E FATAL 57P01 identity revoked', 'idle session: FATAL 57P01 identity revoked');
	ok($idle->wait_closed(1), 'idle session closed');
	ok($busy->wait_closed(1), 'busy session closed');
	my $dt = time - $t0;
	ok($dt < 1, sprintf('both closed within 1 s of the revocation (%.3f s)', $dt));
	is(AgentGate::ProxyClient::first_value($other->query('SELECT 1')), '1', 'another identity is not affected');
	my ($rc, $out, $err) = $s->agent_psql($tok, 'SELECT 1');
	like($err, qr/FATAL:\s+agent identity "carol" is revoked/, 'a revoked identity cannot log in again');
}

# --- a revocation while the server is streaming never splices the proxy's
# FATAL into the middle of a server message: what the client reads is a
# well-formed message stream up to the end
{
	my $c = session($s->token(sub => 'kate'));
	$c->send_message('Q', "SELECT i, md5(i::text) FROM generate_series(1, 3000000) i\0");
	sleep 1;    # the client does not read: buffers fill, the proxy stops reading
	$s->admin_psql("SELECT agentgate.revoke('kate')");
	my ($n, $bad, $last) = (0, 0, '');
	while (my ($t, $b) = $c->read_message(5))
	{
		$n++;
		$bad++ unless $t =~ /^[TDECZSN]$/;
		$bad++ if $t eq 'D' && unpack('n', $b) != 2;
		$last = $t eq 'E' ? AgentGate::ProxyClient::error_fields($b)->{C} : $t;
	}
	ok($c->{eof}, 'streaming session closed by the revocation');
	ok($n > 0 && $n < 3_000_000, "the result was cut short ($n messages read)");
	is($bad, 0, 'every message read is well formed');
	ok($last eq 'D' || $last eq '57P01', "the stream ends with a whole row or the proxy's FATAL ($last)");
}

# --- a token's exp closes its connection
{
	my $c = session($s->token(sub => 'erin', ttl => 3));
	my $t0 = time;
	sleep 1;
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 1')), '1', 'open before exp');
	my ($t, $b) = $c->read_message(5);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is("$t $f->{C} $f->{M}", 'E 57P01 token expired', 'at exp: FATAL token expired');
	ok($c->wait_closed(2), 'and closed');
	my $dt = time - $t0;
	ok($dt > 1.5 && $dt < 4.5, sprintf('closed at the token exp (%.1f s after login, ttl 3 s)', $dt));
}

# --- SIGHUP: a new JWKS is used for new logins; sessions stay open
{
	my $old_tok = $s->token(sub => 'frank');
	my $c = session($old_tok);
	$s->make_keys(kid => 'k2');    # jwks.json now holds only k2
	my $new_tok = $s->token(sub => 'gina');
	my ($rc, $out, $err) = $s->agent_psql($new_tok, 'SELECT 1');
	like($err, qr/FATAL:\s+invalid token/, 'a token of the new key is refused before the reload');
	$s->signal('proxy', 'HUP');
	my $ok = 0;
	for (1 .. 50)
	{
		($rc, $out, $err) = $s->agent_psql($new_tok, 'SELECT session_user');
		if ($rc == 0) { $ok = 1; last; }
		sleep 0.1;
	}
	ok($ok, 'after SIGHUP a token signed by the new key connects') or diag($err);
	is(AgentGate::ProxyClient::first_value($c->query('SELECT current_setting(\'application_name\') ~ \'ag1\'')), 't',
		'the session opened before the reload is still up');
	($rc, $out, $err) = $s->agent_psql($old_tok, 'SELECT 1');
	like($err, qr/FATAL:\s+invalid token\s+DETAIL:\s+no key/, 'the removed key is no longer accepted');

	# an invalid configuration is refused and the running one kept
	my $conf = AgentGate::Stack::_slurp($s->proxy_conf_file);
	AgentGate::Stack::_spew($s->proxy_conf_file, $conf . "no_such_key = 1\n");
	$s->signal('proxy', 'HUP');
	sleep 0.5;
	like(AgentGate::Stack::_slurp($s->log_file('proxy')),
		qr/reload failed, keeping the old configuration: .*unknown key "no_such_key"/, 'bad reload logged');
	($rc, $out, $err) = $s->agent_psql($new_tok, 'SELECT 1');
	is($rc, 0, 'and the old configuration still serves');
	AgentGate::Stack::_spew($s->proxy_conf_file, $conf);
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 2')), '2', 'the old session survived both reloads');
}

# --- SIGHUP re-reads the TLS certificate for new connections
{
	my $c = session($s->token(sub => 'frank'));
	my $before = $c->{sock}->peer_certificate('subject');
	my $k = $s->base . '/keys';
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
		'-keyout', "$k/tls.key.new", '-out', "$k/tls.crt.new", '-days', '2', '-subj', '/CN=reloaded.test' ],
		'>', \$o, '2>', \$e) or die "openssl: $e";
	rename("$k/tls.key.new", "$k/tls.key") or die;
	rename("$k/tls.crt.new", "$k/tls.crt") or die;
	$s->signal('proxy', 'HUP');
	sleep 0.5;
	my $n = session($s->token(sub => 'frank'));
	like($n->{sock}->peer_certificate('subject'), qr/reloaded\.test/, 'after SIGHUP new connections get the new certificate');
	unlike($before, qr/reloaded\.test/, 'the old session had the old one');
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 3')), '3', 'and it is still up');
}

# --- 200 concurrent clients, all connected at the same time
{
	my $tok = $s->token(sub => 'hank');
	# each client gets to its password at once (auth_timeout covers only
	# that far); the logins then complete concurrently
	my @c;
	for (1 .. 200)
	{
		my $c = AgentGate::ProxyClient->new(port => $port);
		$c->write_raw(AgentGate::ProxyClient::startup_packet(user => 'x', database => $db));
		my ($t) = $c->read_message(10);
		$c->send_message('p', "$tok\0");
		push @c, $c;
	}
	my $in = 0;
	for my $c (@c)
	{
		while (my ($t) = $c->read_message(30))
		{
			if ($t eq 'Z') { $in++; last; }
			last if $t eq 'E';
		}
	}
	is($in, 200, '200 concurrent clients logged in');
	$_->send_message('Q', "SELECT 1\0") for @c;
	my $answered = 0;
	for my $c (@c)
	{
		my @m;
		while (my ($t, $b) = $c->read_message(30))
		{
			push @m, [ $t, $b ];
			last if $t eq 'Z';
		}
		$answered++ if (AgentGate::ProxyClient::first_value(@m) // '') eq '1';
	}
	is($answered, 200, 'all 200 answered a query in parallel');
	$_->close for @c;
}

# --- SIGTERM: idle sessions are closed, a running query finishes, then exit
{
	my $tok = $s->token(sub => 'ivan');
	my $idle = session($tok);
	my $busy = session($tok);
	$busy->send_message('Q', "SELECT 'done' FROM pg_sleep(1.5)\0");
	sleep 0.3;
	$s->signal('proxy', 'TERM');
	my ($t, $b) = $idle->read_message(2);
	is(AgentGate::ProxyClient::error_fields($b // '')->{C}, '57P01', 'SIGTERM: idle session gets 57P01');
	sleep 0.2;
	my $refused = !eval { AgentGate::ProxyClient->new(port => $port); 1 };
	ok($refused, 'SIGTERM: no new connections');
	my @m;
	while (my ($tt, $bb) = $busy->read_message(5))
	{
		push @m, [ $tt, $bb ];
		last if $tt eq 'Z';
	}
	is(AgentGate::ProxyClient::first_value(@m), 'done', 'SIGTERM: the running query completes');
	ok($busy->wait_closed(3), 'SIGTERM: then its connection is closed');
	my $gone = 0;
	for (1 .. 50)
	{
		if (!$s->alive('proxy')) { $gone = 1; last; }
		sleep 0.1;
	}
	ok($gone, 'SIGTERM: the proxy exits once drained');
	like(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/agentgate-proxy stopped/, 'clean exit logged');
}

$s->stop;
done_testing();
