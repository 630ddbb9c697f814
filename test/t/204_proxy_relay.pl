# agentgate-proxy's relay, byte for byte: a large pipelined burst of
# queries whose answers must come back complete and in order, message
# headers split across TLS records (and a FunctionCall header so split
# still refused), large values checked by content in both directions, a
# client that stops reading while other sessions carry on, and an ECDSA
# certificate with the proxy's preferred TLS parameters.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Digest::MD5 qw(md5_hex);
use IPC::Run qw(run);
use Time::HiRes qw(sleep);

$SIG{PIPE} = 'IGNORE';

my $s = AgentGate::Stack->new(name => 'proxy-relay');
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;
my $tok = $s->token(sub => 'alice', ttl => 600);

sub session
{
	my (%o) = @_;
	my $c = AgentGate::ProxyClient->new(port => $o{port} // $port);
	my $r = $c->login($o{token} // $tok, database => $db);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	return $c;
}

# The DataRow values (first column) and the count of each message type
# up to the $n-th ReadyForQuery.
sub collect
{
	my ($c, $n, $timeout) = @_;
	my (@values, %types);
	my $ready = 0;
	while ($ready < $n)
	{
		my ($t, $b) = $c->read_message($timeout // 30);
		last unless defined $t;
		$types{$t}++;
		if ($t eq 'D')
		{
			my ($cols, $len) = unpack('nN', $b);
			push @values, substr($b, 6, $len);
		}
		$ready++ if $t eq 'Z';
	}
	return (\@values, \%types, $ready);
}

# --- a pipelined burst: 5,000 queries in one write, answers in order
{
	my $c = session();
	my $n = 5000;
	my $burst = join('', map { 'Q' . pack('N', 4 + length("SELECT $_ || ':' || md5('$_')") + 1)
		  . "SELECT $_ || ':' || md5('$_')\0" } 1 .. $n);
	ok(length($burst) > 150_000, 'burst of ' . length($burst) . ' bytes');
	ok($c->write_raw($burst), 'written in one go, before reading anything');
	my ($vals, $types, $ready) = collect($c, $n, 60);
	is($ready, $n, "$n ReadyForQuery messages");
	is($types->{E} // 0, 0, 'no errors');
	my @want = map { "$_:" . md5_hex($_) } 1 .. $n;
	is(scalar(@$vals), $n, "$n rows");
	is(md5_hex(join("\n", @$vals)), md5_hex(join("\n", @want)), 'every row byte-exact and in order');
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 42')), 42, 'the session still works');
}

# --- headers split across TLS records (one byte per record)
{
	my $c = session();
	my $q = "SELECT 'split' || 1";
	my $msg = 'Q' . pack('N', 4 + length($q) + 1) . "$q\0";
	$c->write_raw($_) for split //, $msg;
	my ($vals, $types, $ready) = collect($c, 1, 10);
	is_deeply($vals, ['split1'], 'a Query sent one byte per TLS record');

	# two messages in one record, the second's header cut after 3 bytes
	my $m1 = 'Q' . pack('N', 4 + 9) . "SELECT 1\0";
	my $m2 = 'Q' . pack('N', 4 + 9) . "SELECT 2\0";
	$c->write_raw($m1 . substr($m2, 0, 3));
	sleep 0.2;
	$c->write_raw(substr($m2, 3));
	($vals, $types, $ready) = collect($c, 2, 10);
	is_deeply($vals, [ 1, 2 ], 'a header split across records');

	# a FunctionCall whose type byte arrives alone is still refused
	$c->write_raw('F');
	sleep 0.2;
	$c->write_raw(pack('N', 4 + 10) . ("\0" x 10));
	my ($t, $b) = $c->read_message(10);
	my $f = AgentGate::ProxyClient::error_fields($b // '');
	is("$f->{S} $f->{C}", 'FATAL 42501', 'split FunctionCall refused');
	ok($c->wait_closed(5), 'and the connection closed');
}

# --- large values, checked by content
{
	my $c = session();
	my $v = AgentGate::ProxyClient::first_value(
		$c->query("SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 100000) i", 60));
	my $want = join('', map { md5_hex($_) } 1 .. 100000);
	is(length($v // ''), length($want), '3.2 MB value: length');
	ok(defined $v && $v eq $want, '3.2 MB value: byte-exact');

	my $payload = join('', map { chr(65 + ($_ * 7) % 26) } 1 .. 3_000_000);
	$v = AgentGate::ProxyClient::first_value($c->query("SELECT md5('$payload')", 60));
	is($v, md5_hex($payload), '3 MB query reaches the server byte-exact');
}

# --- a client that stops reading does not stall the others
{
	my $slow = session();
	$slow->send_message('Q', "SELECT repeat('z', 30000000)\0");
	sleep 1;    # the proxy's queue fills and it stops reading PgBouncer
	my $other = session();
	is(AgentGate::ProxyClient::first_value($other->query('SELECT 7', 10)), 7,
		'another session is served while one client does not read');
	my @m = $slow->query('SELECT 8', 120);    # reads the big answer first
	my $big = AgentGate::ProxyClient::first_value(@m);
	ok(defined $big && length($big) == 30_000_000 && $big !~ /[^z]/,
		'the slow client then gets its 30 MB value intact');
	my ($vals) = collect($slow, 1, 30);
	is_deeply($vals, [8], 'and the query it pipelined behind it');
}
$s->stop;

# --- an ECDSA P-256 certificate, with the proxy's preferred TLS parameters
{
	my $e = AgentGate::Stack->new(name => 'proxy-ec', tls_key_type => 'ec');
	$e->start;
	my $etok = $e->token(sub => 'bob', ttl => 600);
	my $c = session(port => $e->proxy_port, token => $etok);
	is(AgentGate::ProxyClient::first_value($c->query('SELECT 1')), 1, 'ECDSA certificate: relay works');
	my $sock = $c->{sock};
	like($sock->get_cipher, qr/^(TLS_AES_128_GCM_SHA256|TLS_CHACHA20_POLY1305_SHA256)$/,
		'server prefers AES-128-GCM or ChaCha20 (got ' . $sock->get_cipher . ')');
	my ($rc, $out, $stderr) = $e->agent_psql($etok, 'SELECT 1');
	is("$rc $out", '0 1', 'psql through the proxy with the ECDSA certificate');

	# TLS 1.2 clients get a forward-secret AEAD suite only
	my $oout = '';
	run([ 'openssl', 's_client', '-connect', '127.0.0.1:' . $e->proxy_port, '-starttls', 'postgres',
			'-tls1_2', '-cipher', 'AES128-SHA' ], '<', \'', '>&', \$oout);
	like($oout, qr/Cipher is \(NONE\)|alert handshake failure|no cipher/i,
		'TLS 1.2 without ECDHE+AEAD is refused');
	unlike($oout, qr/Cipher is AES128-SHA\b/, 'and no such session is made');
	run([ 'openssl', 's_client', '-connect', '127.0.0.1:' . $e->proxy_port, '-starttls', 'postgres',
			'-tls1_2' ], '<', \'', '>&', \$oout);
	like($oout, qr/Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/, 'TLS 1.2 gets ECDHE-ECDSA-AES128-GCM');
	like($oout, qr/Server Temp Key: X25519/, 'key exchange X25519');
	$e->stop;
}

done_testing();
