# agentgate-proxy at the protocol level, with a raw client: what it answers
# before TLS, what it refuses after authentication (FunctionCall, broken
# framing), cancel requests (and PgBouncer 1.18's cancel crash), and that
# large messages pass in both directions.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';    # a closed connection must fail a test, not kill it

my $s = AgentGate::Stack->new(name => 'proxy-proto');
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;
my $tok = $s->token(sub => 'alice', ttl => 600);
my $role = $s->admin_psql("SELECT agentgate.role_for_identity('alice')");

sub session
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $db);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	return ($c, $r);
}

# --- before TLS
{
	my $c = AgentGate::ProxyClient->new(port => $port, tls => 0);
	$c->write_raw(pack('NN', 8, 80877104));
	is($c->read_bytes(1, 5), 'N', 'GSSENCRequest is answered N');
	$c->write_raw(AgentGate::ProxyClient::startup_packet(user => 'a', database => $db));
	my ($t, $b) = $c->read_message(5);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is($t, 'E', 'plain StartupMessage: ErrorResponse');
	is("$f->{S} $f->{C} $f->{M}", 'FATAL 28000 TLS required', 'plain StartupMessage: FATAL 28000 TLS required');
	like($f->{H}, qr/sslmode=require/, 'with a hint to use sslmode=require');
	ok($c->wait_closed(3), 'and the connection is closed');
}
{
	# bytes pipelined after SSLRequest would be read as if they were protected
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die;
	syswrite($sock, pack('NN', 8, 80877103) . "garbage after the request");
	my $n = sysread($sock, my $got, 10);
	ok(!$n, 'data after SSLRequest: closed, no TLS is started');
	close $sock;
}
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	$c->write_raw(pack('NN', 20000, 196608) . ('x' x 100));
	my ($t, $b) = $c->read_message(5);
	is(AgentGate::ProxyClient::error_fields($b // '')->{M}, 'invalid startup packet length',
		'oversized startup packet refused');
}
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	$c->write_raw(AgentGate::ProxyClient::startup_packet(user => 'a', database => $db, _version => 2 << 16));
	my ($t, $b) = $c->read_message(5);
	like(AgentGate::ProxyClient::error_fields($b // '')->{M}, qr/unsupported frontend protocol 2\.0/,
		'protocol 2 refused');
}
{
	# a 3.2 client is told to use 3.0 and gets in
	my $c = AgentGate::ProxyClient->new(port => $port);
	$c->write_raw(AgentGate::ProxyClient::startup_packet(user => 'a', database => $db, _version => (3 << 16) | 2));
	my ($t, $b) = $c->read_message(5);
	is($t, 'v', 'protocol 3.2: NegotiateProtocolVersion');
	is(unpack('N', $b), 0, 'newest minor version: 0');
	($t, $b) = $c->read_message(5);
	is($t . unpack('N', $b), 'R3', 'then AuthenticationCleartextPassword');
}
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	$c->write_raw(AgentGate::ProxyClient::startup_packet(user => 'a', database => $db));
	$c->read_message(5);
	$c->send_message('p', "abc\0def\0");
	my ($t, $b) = $c->read_message(5);
	is(AgentGate::ProxyClient::error_fields($b // '')->{C}, '28000', 'password with an inner NUL refused');
}
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	$c->write_raw(AgentGate::ProxyClient::startup_packet(user => 'a', database => $db));
	$c->read_message(5);
	$c->write_raw('p' . pack('N', 100_000));
	my ($t, $b) = $c->read_message(5);
	is(AgentGate::ProxyClient::error_fields($b // '')->{C}, '28000', 'oversized password message refused');
}

# --- after authentication: FunctionCall is refused and never forwarded
{
	my ($c) = session();
	my $oid = $s->admin_psql("SELECT 'pg_sleep'::regproc::oid");
	my $t0 = time;
	# FunctionCall: oid, 1 format code (text), 1 argument "3", result format
	$c->send_message('F', pack('N n n n N a* n', $oid, 1, 0, 1, 1, '3', 0));
	my ($t, $b) = $c->read_message(5);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is($t, 'E', 'FunctionCall: ErrorResponse');
	is("$f->{S} $f->{C}", 'FATAL 42501', 'FunctionCall: FATAL 42501');
	is($f->{M}, 'fastpath function calls are not allowed', 'FunctionCall: clear message');
	ok($c->wait_closed(3), 'FunctionCall: connection closed');
	ok(time - $t0 < 2.5, 'FunctionCall: pg_sleep(3) never ran');
}
{
	my ($c) = session();
	$c->write_raw('Q' . pack('N', 2));
	my ($t, $b) = $c->read_message(5);
	is(AgentGate::ProxyClient::error_fields($b // '')->{C}, '08P01', 'message length < 4 refused');
	ok($c->wait_closed(3), 'and the connection closed');
}
{
	my ($c) = session();
	$c->write_raw('Q' . pack('N', 0x7fffffff));
	my ($t, $b) = $c->read_message(5);
	is(AgentGate::ProxyClient::error_fields($b // '')->{M}, 'invalid message length',
		'message length above max_message_bytes refused');
}

# --- cancel
{
	my ($c, $r) = session();
	ok($r->{pid} || $r->{key}, 'BackendKeyData relayed');
	$c->send_message('Q', "SELECT pg_sleep(5)\0");
	sleep 0.5;
	my $t0 = time;
	# PgBouncer 1.18 aborts when a cancel connection closes at once; the
	# proxy must hold its own socket to PgBouncer open
	AgentGate::ProxyClient::send_cancel($port, $r->{pid}, $r->{key}, 0);
	my @m;
	while (my ($t, $b) = $c->read_message(10))
	{
		push @m, [ $t, $b ];
		last if $t eq 'Z';
	}
	my ($err) = grep { $_->[0] eq 'E' } @m;
	is($err ? AgentGate::ProxyClient::error_fields($err->[1])->{C} : '', '57014',
		'cancel request (closed at once by the client) cancels the query');
	ok(time - $t0 < 4, 'well before pg_sleep(5) ends');
	sleep 0.5;
	ok($s->alive('pgbouncer'), 'PgBouncer survives a cancel whose client closed at once');
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 6 * 7')), '42', 'the session goes on');

	# a cancel sent inside TLS
	$c->send_message('Q', "SELECT pg_sleep(5)\0");
	sleep 0.3;
	my $cc = AgentGate::ProxyClient->new(port => $port);
	$cc->write_raw(pack('NNNN', 16, 80877102, $r->{pid}, $r->{key}));
	$cc->close;
	@m = ();
	while (my ($t, $b) = $c->read_message(10))
	{
		push @m, [ $t, $b ];
		last if $t eq 'Z';
	}
	($err) = grep { $_->[0] eq 'E' } @m;
	is($err ? AgentGate::ProxyClient::error_fields($err->[1])->{C} : '', '57014',
		'cancel request inside TLS works too');
	ok($s->alive('pgbouncer'), 'PgBouncer still alive');
}

# --- big messages both ways (exercises backpressure)
{
	my ($c) = session();
	my $v = AgentGate::ProxyClient::first_value(
		$c->query("SELECT length(string_agg(md5(i::text), '')) FROM generate_series(1, 200000) i"));
	is($v, 6400000, 'a 6.4 MB aggregate computed');
	my @m = $c->query("SELECT repeat('x', 20000000)", 60);
	my $big = AgentGate::ProxyClient::first_value(@m);
	is(length($big // ''), 20_000_000, 'a 20 MB value flows to the client');
	my $payload = 'y' x 5_000_000;
	$v = AgentGate::ProxyClient::first_value($c->query("SELECT length('$payload')", 60));
	is($v, 5_000_000, 'a 5 MB query flows to the server');
}
{
	# COPY FROM STDIN: CopyData messages pass
	my ($c) = session();
	$s->admin_psql('CREATE TABLE proxy_copy (a int, b text); GRANT ALL ON proxy_copy TO agentgate_agent');
	$c->send_message('Q', "COPY proxy_copy FROM STDIN\0");
	my ($t) = $c->read_message(5);
	is($t, 'G', 'CopyInResponse');
	$c->send_message('d', "$_\trow$_\n") for 1 .. 1000;
	$c->send_message('c', '');
	while (my ($tt) = $c->read_message(5)) { last if $tt eq 'Z'; }
	is(AgentGate::ProxyClient::first_value($c->query('SELECT count(*) FROM proxy_copy')), 1000,
		'COPY through the proxy');
}

$s->stop;
done_testing();
