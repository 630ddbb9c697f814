# agentgate-proxy authentication, end to end: TLS to the proxy, the JWT as
# the password, agentgate.login() for the role, PgBouncer, PostgreSQL.
# Every refusal must be a clear FATAL protocol error, and the admin
# connection must fail closed.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';    # a closed connection must fail a test, not kill it

my $s = AgentGate::Stack->new(name => 'proxy-auth');
$s->start;
my $port = $s->proxy_port;

my $role = $s->admin_psql("SELECT agentgate.role_for_identity('alice')");
my $tok = $s->token(sub => 'alice', groups => ['analysts'], ttl => 300);

# --- a valid token: the session is the derived role, never the typed user
my ($rc, $out, $err) = $s->agent_psql($tok,
	"SELECT session_user, current_user, current_setting('application_name')",
	user => 'postgres', appname => 'my agent!');
is($rc, 0, 'valid token connects') or diag($err);
my ($su, $cu, $app) = split /\|/, $out;
is($su, $role, 'session_user is the role agentgate.login() returned');
is($cu, $role, 'the user name the client typed (postgres) is ignored');
like($app, qr/^myagent! ag1\.[0-9a-f]{16}\.[0-9a-f]{16}$/,
	'application_name = sanitised client name + session stamp');

# --- refusals at the proxy, each a FATAL with a clear message
sub refused
{
	my ($name, $token, $pattern, %o) = @_;
	my ($rc, $out, $err) = $s->agent_psql($token, 'SELECT 1', %o);
	isnt($rc, 0, "$name: refused");
	like($err, $pattern, "$name: clear error") or diag($err);
	unlike($err, qr/\Q$token\E/, "$name: the token is not echoed") if length($token) > 20;
	return $err;
}

my $bad_sig = $tok;
$bad_sig =~ s/(.)(.{8})$/($1 eq 'A' ? 'B' : 'A') . $2/e;
refused('bad signature', $bad_sig, qr/FATAL:\s+invalid token\s+DETAIL:\s+bad signature/);
refused('expired token', $s->token(sub => 'alice', ttl => 60, now => int(time) - 3600),
	qr/FATAL:\s+invalid token\s+DETAIL:\s+expired/);
refused('wrong audience', $s->token(sub => 'alice', aud => 'someone-else'),
	qr/FATAL:\s+invalid token\s+DETAIL:\s+bad claims: .*aud/);
refused('wrong issuer', $s->token(sub => 'alice', iss => 'https://evil.example/'),
	qr/FATAL:\s+invalid token\s+DETAIL:\s+bad claims: .*iss/);
refused('not a JWT', 'hunter2', qr/FATAL:\s+invalid token\s+DETAIL:\s+malformed/);
refused('no TLS', $tok, qr/FATAL:\s+TLS required.*HINT:\s+Connect with sslmode=require/s,
	sslmode => 'disable');

# startup parameters: psql passes options= through PGOPTIONS
{
	local $ENV{PGOPTIONS} = '-c search_path=evil';
	refused('options parameter', $tok, qr/FATAL:\s+unsupported startup parameter "options"/);
}

# replication and unknown parameters need a raw client
for my $p ([ replication => 'database' ], [ search_path => 'evil' ], [ '_pq_.x' => '1' ])
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $s->db, $p->[0] => $p->[1]);
	ok(!$r->{ok}, "$p->[0] parameter: refused");
	is($r->{error}{S}, 'FATAL', "$p->[0] parameter: FATAL");
	is($r->{error}{M}, qq{unsupported startup parameter "$p->[0]"}, "$p->[0] parameter: named in the error");
}

# extra_float_digits is dropped silently, the settings are passed on
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $s->db, extra_float_digits => 3, TimeZone => 'Asia/Tokyo',
		DateStyle => 'German', client_encoding => 'LATIN1');
	ok($r->{ok}, 'extra_float_digits, TimeZone, DateStyle and client_encoding accepted')
	  or diag(explain($r->{error}));
	my $v = AgentGate::ProxyClient::first_value(
		$c->query("SELECT current_setting('TimeZone') || ' ' || current_setting('DateStyle') || ' ' || current_setting('client_encoding')"));
	is($v, 'Asia/Tokyo German, DMY LATIN1', 'the settings reach the session');
}

# --- agentgate.login() errors of class 28 reach the client, others do not
$s->agent_psql($s->token(sub => 'mallory'), 'SELECT 1');
$s->admin_psql("SELECT agentgate.suspend('mallory', 'under investigation')");
# the suspension's notification closes mallory's connections, including one
# still logging in; wait for it so that the next login meets login() itself
for (1 .. 50)
{
	last if AgentGate::Stack::_slurp($s->log_file('proxy')) =~ /revocation of "mallory"/;
	sleep 0.1;
}
my $e = refused('suspended identity', $s->token(sub => 'mallory'),
	qr/FATAL:\s+agent identity "mallory" is suspended/);
like($e, qr/DETAIL:\s+Reason: under investigation/, 'suspended identity: detail from login()');

$s->admin_psql(<<'EOS');
ALTER TABLE agentgate.agents ADD CONSTRAINT proxy_test_no_eve CHECK (identity <> 'eve');
EOS
$e = refused('login() internal error', $s->token(sub => 'eve'), qr/FATAL:\s+login failed/);
unlike($e, qr/proxy_test_no_eve|constraint/, 'login() internal error: no internals leak');
$s->admin_psql('ALTER TABLE agentgate.agents DROP CONSTRAINT proxy_test_no_eve');

# --- the admin connection fails closed and comes back
my $held = AgentGate::ProxyClient->new(port => $port);
ok($held->login($tok, database => $s->db)->{ok}, 'a session open before the admin connection drops');
$s->admin_psql(<<'EOS');
ALTER ROLE agentgate_proxy_login NOLOGIN;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'agentgate_proxy_login';
EOS
sleep 0.5;
refused('admin connection down', $tok, qr/FATAL:\s+login failed/);
is(AgentGate::ProxyClient::first_value($held->query('SELECT 41 + 1')), '42',
	'existing sessions continue while the admin connection is down');
$s->admin_psql('ALTER ROLE agentgate_proxy_login LOGIN');
my $back = 0;
for (1 .. 100)
{
	($rc, $out, $err) = $s->agent_psql($tok, 'SELECT 1');
	if ($rc == 0) { $back = 1; last; }
	sleep 0.2;
}
ok($back, 'logins work again once the admin connection is back');
like(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/admin connection \d+ lost/, 'the drop is logged');

# --- PgBouncer down: a clear error, and service resumes with it
$s->stop_process('pgbouncer');
refused('PgBouncer down', $tok, qr/FATAL:\s+could not connect to the pooler/);
$s->start_pgbouncer;
($rc, $out, $err) = $s->agent_psql($tok, 'SELECT 1');
is($rc, 0, 'PgBouncer back: logins work again') or diag($err);

# --- a PgBouncer that asks for a password never gets the token
$s->stop_process('pgbouncer');
$s->{pgbouncer_conf} = "auth_type = plain\n";    # the later line wins
$s->start_pgbouncer;
refused('PgBouncer asking for a password', $tok, qr/FATAL:\s+login failed/);
like(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/PgBouncer asked for a password \(authentication request 3\)/,
	'the misconfiguration is logged');
unlike(AgentGate::Stack::_slurp($s->log_file('pgbouncer')), qr/password authentication failed|closing because: .*password/,
	'PgBouncer never received a password');
$s->stop_process('pgbouncer');
$s->{pgbouncer_conf} = '';
$s->start_pgbouncer;

# --- logs name the identity, the role and the session
my $log = AgentGate::Stack::_slurp($s->log_file('proxy'));
like($log, qr/\[c\d+ identity=alice session=[0-9a-f]{16}\] login: role=\Q$role\E/, 'login logged with identity, session and role');
like($log, qr/connection closed: .*role=\Q$role\E duration=\d+\.\d+s/, 'close logged with role and duration');
like($log, qr/connection refused: TLS required/, 'refusals logged with the reason');
unlike($log, qr/\Q$tok\E/, 'the token never reaches the log');
like($log, qr/admin connection 3 ready/, 'all four admin connections come up');
unlike($log, qr/setup failed/, 'and none fails its setup');

$s->stop;
done_testing();
