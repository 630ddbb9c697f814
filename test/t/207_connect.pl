# agentgate-connect: local tools connect to a private unix socket with no
# secret; the connector logs in to agentgate-proxy over TLS (verify-full
# against the stack's CA) with a fresh token, and swaps each connection's
# upstream at an idle moment before the token expires.  psql, psycopg 3,
# psycopg2 and (when npm can install it) the MCP reference server
# @modelcontextprotocol/server-postgres, across token rotations.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use IPC::Run qw(run start timeout);
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';

my $s = AgentGate::Stack->new(name => 'connect');
$s->start;
my $base = $s->base;
my $top = $ENV{AG_TOP} // '.';
my $connect_bin = "$top/pooler/agentgate-connect";
my $token_bin = "$top/pooler/agentgate-token";
my $db = $s->db;
my $TTL = 8;       # seconds a token lives
my $MARGIN = 5;    # the connector rotates this long before exp

my @mint = ($token_bin, 'mint', '--key', "$base/keys/k1.key", '--alg', 'RS256', '--kid', 'k1',
	'--iss', $s->issuer, '--aud', $s->audience);

sub mint
{
	my ($sub, $ttl) = @_;
	my $out = '';
	run([ @mint, '--sub', $sub, '--ttl', $ttl ], '>', \$out) or die "mint failed\n";
	$out =~ s/\s+\z//;
	return $out;
}

# The IdP's agent: rewrites the token file every 2 s (atomic rename).
my $tokfile = "$base/token";
sub write_token
{
	AgentGate::Stack::_spew("$tokfile.tmp", mint('conn-agent', $TTL) . "\n", 0600);
	rename("$tokfile.tmp", $tokfile) or die "rename: $!";
}
write_token();
my $refresher = fork();
die "fork: $!" unless defined $refresher;
if ($refresher == 0)
{
	while (1) { sleep 2; eval { write_token() }; }
	_exit(0);
}
END { kill 'TERM', $refresher if $refresher; }

my $n = 0;
sub start_connector
{
	my (%o) = @_;
	$n++;
	my $dir = "$base/conn$n";
	my $conf = "$base/connect$n.conf";
	my $port = 7000 + $n;
	my $source = $o{command} ? "token_command = '" . ($o{command} =~ s/'/''/gr) . "'" : "token_file = $tokfile";
	AgentGate::Stack::_spew($conf, <<"EOC" . ($o{extra} // ''), 0600);
listen_socket_dir = $dir
listen_port = $port
proxy_host = 127.0.0.1
proxy_port = @{[ $s->proxy_port ]}
ca_file = @{[ $s->ca_file ]}
$source
token_refresh_margin = $MARGIN
EOC
	my $log = "$base/connect$n.log";
	my $h = start([ $connect_bin, '-c', $conf ], '<', \undef, '>>', $log, '2>>', $log);
	my $t0 = time;
	sleep 0.05 until -S "$dir/.s.PGSQL.$port" || time - $t0 > 10 || !$h->pumpable;
	return { h => $h, dir => $dir, port => $port, log => $log, conf => $conf };
}

sub psql_via
{
	my ($c, $sql, %o) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGPASSWORD};
	delete $ENV{PGPASSWORD};
	run([ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
		"host=$c->{dir} port=$c->{port} dbname=" . ($o{db} // $db) . " user=whoever" ],
		'<', \$sql, '>', \$out, '2>', \$err, timeout(60));
	chomp $out;
	return ($? >> 8, $out, $err);
}

my $py = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
sub python
{
	my ($code, @args) = @_;
	my ($out, $err) = ('', '');
	run([ $py, '-c', $code, @args ], '<', \undef, '>', \$out, '2>', \$err, timeout(120));
	return ($? >> 8, $out, $err);
}

# --- configuration checks
{
	my ($out, $err) = ('', '');
	AgentGate::Stack::_spew("$base/bad.conf", "listen_socket_dir = $base/x\nproxy_host = h\n");
	run([ $connect_bin, '-t', '-c', "$base/bad.conf" ], '>', \$out, '2>', \$err);
	like($err, qr/exactly one of token_file and token_command is required/, '-t: a missing token source is an error');
	AgentGate::Stack::_spew("$base/bad2.conf", "listen_socket_dir = $base/x\nproxy_host = h\ntoken_file = f\n");
	run([ $connect_bin, '-t', '-c', "$base/bad2.conf" ], '>', \$out, '2>', \$err);
	like($err, qr/ca_file is required with sslmode = verify-full/, '-t: verify-full needs ca_file');
	mkdir "$base/open", 0755;
	chmod 0755, "$base/open";
	AgentGate::Stack::_spew("$base/bad3.conf",
		"listen_socket_dir = $base/open\nproxy_host = h\ntoken_file = f\nsslmode = require\n");
	my $h = start([ $connect_bin, '-c', "$base/bad3.conf" ], '>', \$out, '2>', \$err);
	$h->finish;
	like($err, qr/has mode 0755; it must be 0700/, 'a socket directory open to others is refused');
}

my $c1 = start_connector();
ok(-S "$c1->{dir}/.s.PGSQL.$c1->{port}", 'connector listening on its unix socket');
is(sprintf('%04o', (stat $c1->{dir})[2] & 07777), '0700', 'in a 0700 directory');

# --- psql through the connector: no password, any user name
{
	my ($rc, $out, $err) = psql_via($c1, "SELECT session_user LIKE 'agent_conn_agent_%', current_database();");
	is($rc, 0, 'psql connects with no password') or diag $err;
	is($out, "t|$db", 'as the token identity\'s role');
	($rc, $out, $err) = psql_via($c1, 'DROP TABLE IF EXISTS nope_never; DROP SCHEMA public CASCADE;');
	isnt($rc, 0, 'a refusal passes through');
	like($err, qr/agentgate|not allowed|refused/i, 'with the extension\'s message') or diag $err;
	($rc, $out, $err) = psql_via($c1, 'SELECT 1', db => 'nosuchdb');
	like($err, qr/database "nosuchdb" does not exist/, 'the proxy\'s FATAL reaches the client');
}

# --- psycopg 3: one connection kept open across several token lifetimes
SKIP:
{
	my ($rc) = python('import psycopg');
	skip 'python3-psycopg not installed', 4 if $rc != 0;
	my $code = <<'EOP';
import sys, time, psycopg
dsn = sys.argv[1]
conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
seen = set()
ok = 0
t0 = time.time()
while time.time() - t0 < float(sys.argv[2]):
    with conn.transaction():
        cur = conn.execute("SELECT agentgate.session_id(), %s::int + 1", (ok,))
        sid, v = cur.fetchone()
        assert v == ok + 1
    seen.add(sid)
    ok += 1
    time.sleep(0.3)
cur = conn.execute("SELECT current_setting('TimeZone')")
print(ok, len(seen), cur.fetchone()[0])
EOP
	my $dsn = "host=$c1->{dir} port=$c1->{port} dbname=$db user=x options='' ";
	$dsn = "host=$c1->{dir} port=$c1->{port} dbname=$db user=x";
	local $ENV{PGTZ} = 'Asia/Tokyo';
	my $t0 = time;
	my ($prc, $out, $err) = python($code, $dsn, 3 * $TTL);
	is($prc, 0, 'psycopg: one connection runs for three token lifetimes') or diag $err;
	my ($ok, $sessions, $tz) = split ' ', $out // '';
	ok(($ok // 0) > 20, "psycopg: $ok transactions, none failed");
	ok(($sessions // 0) >= 2, "psycopg: the upstream was swapped (sessions seen: " . ($sessions // 0) . ")");
	is($tz, 'Asia/Tokyo', 'psycopg: TimeZone from the startup packet survives the swaps');
}
like(AgentGate::Stack::_slurp($c1->{log}), qr/swapped to a new upstream connection/, 'the connector logs its swaps');

# --- psycopg2 and a cancel
SKIP:
{
	my ($rc) = python('import psycopg2');
	skip 'python3-psycopg2 not installed', 2 if $rc != 0;
	my $code = <<'EOP';
import sys, time, threading, psycopg2
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
cur.execute("SELECT count(*) FROM generate_series(1, 10)")
print(cur.fetchone()[0])
conn.commit()
threading.Timer(1.0, conn.cancel).start()
t0 = time.time()
try:
    cur.execute("SELECT pg_sleep(20)")
    print("not cancelled")
except psycopg2.errors.QueryCanceled:
    print("cancelled %.1f" % (time.time() - t0))
EOP
	my ($prc, $out, $err) = python($code, "host=$c1->{dir} port=$c1->{port} dbname=$db");
	like($out, qr/^10$/m, 'psycopg2 through the connector') or diag $err;
	like($out, qr/^cancelled [0-9.]+$/m, 'a cancel through the connector cancels the query') or diag "$out$err";
}

# --- token_command: each run mints a fresh token; psql across a rotation
{
	my $cmd = join(' ', map { "'$_'" } @mint) . " --sub cmd-agent --ttl $TTL";
	my $c2 = start_connector(command => $cmd);
	my $in = '';
	my ($out, $err) = ('', '');
	my $h = start([ 'psql', '-X', '-A', '-t', "host=$c2->{dir} port=$c2->{port} dbname=$db user=u" ],
		'<', \$in, '>', \$out, '2>', \$err, timeout(120));
	my $t0 = time;
	my $i = 0;
	while (time - $t0 < 2 * $TTL + 2)
	{
		$in .= "SELECT 'row$i', session_user LIKE 'agent_cmd_agent_%';\n";
		$h->pump_nb;
		$i++;
		sleep 0.5;
	}
	$in .= "\\q\n";
	$h->finish;
	my @rows = ($out =~ /^row\d+\|t$/mg);
	is(scalar @rows, $i, "token_command: psql kept one session for two token lifetimes ($i statements)")
	  or diag $err;
	like(AgentGate::Stack::_slurp($c2->{log}), qr/swapped to a new upstream connection/, 'token_command: swapped');
	unlike($err, qr/FATAL|token expired/, 'no error reached psql');
	$c2->{h}->signal('TERM');
	$c2->{h}->finish;
}

# --- verify-full: a certificate for another name is refused
{
	my $c3 = start_connector(extra => "tls_server_name = db.example.com\n");
	my ($rc, $out, $err) = psql_via($c3, 'SELECT 1');
	isnt($rc, 0, 'verify-full: a name the certificate does not hold fails');
	like($err, qr/could not connect to agentgate-proxy.*certificate verify failed/s, 'with the TLS reason') or diag $err;
	$c3->{h}->signal('TERM');
	$c3->{h}->finish;
}

# --- the MCP reference server, over stdio JSON-RPC, through the connector
SKIP:
{
	my $npmdir = "$base/npm";
	my ($o, $e) = ('', '');
	my $ok = eval {
		run([ 'npm', 'install', '--silent', '--no-audit', '--no-fund', '--prefix', $npmdir,
			'@modelcontextprotocol/server-postgres@0.6.2' ], '>', \$o, '2>', \$e, timeout(240));
	};
	my $entry = "$npmdir/node_modules/\@modelcontextprotocol/server-postgres/dist/index.js";
	skip "npm could not install \@modelcontextprotocol/server-postgres: $e", 4 unless $ok && -f $entry;
	my $url = "postgresql://agent\@localhost/$db?host=$c1->{dir}&port=$c1->{port}";
	my @reqs = (
		{ id => 1, method => 'initialize', params => '{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}' },
		{ method => 'notifications/initialized', params => '{}' },
		{ id => 2, method => 'tools/call', params => '{"name":"query","arguments":{"sql":"SELECT session_user LIKE \'agent_conn_agent_%\' AS ok"}}' },
		{ id => 3, method => 'tools/call', params => '{"name":"query","arguments":{"sql":"SELECT 1 AS late"}}', wait => $TTL + 2 },
		{ id => 4, method => 'tools/call', params => '{"name":"query","arguments":{"sql":"SELECT * FROM agentgate.rules"}}' },
	);
	my ($in, $out, $err) = ('', '', '');
	my $h = start([ 'node', $entry, $url ], '<', \$in, '>', \$out, '2>', \$err, timeout(120));
	for my $r (@reqs)
	{
		sleep $r->{wait} if $r->{wait};
		$in .= '{"jsonrpc":"2.0",' . (defined $r->{id} ? "\"id\":$r->{id}," : '')
		  . "\"method\":\"$r->{method}\",\"params\":$r->{params}}\n";
		my $t0 = time;
		while (time - $t0 < 15)
		{
			$h->pump_nb;
			my $id = $r->{id};
			last if !defined $id || $out =~ /"id":\Q$id\E[,\}]/;
			sleep 0.1;
		}
	}
	$in = '';
	$h->kill_kill;
	like($out, qr/\\"ok\\": true[^\n]*"id":2\}/, 'MCP server: query through the connector as the token identity')
	  or diag "$out\n$err";
	like($out, qr/\\"late\\": 1[^\n]*"id":3\}/, 'MCP server: still works after its token would have expired')
	  or diag "$out\n$err";
	like($out, qr/"id":4,.*"isError":true|"id":4,"error"/, 'MCP server: a refusal comes back as an error')
	  or diag "$out\n$err";
	unlike($err, qr/Unhandled|ECONNRESET|terminating/i, 'MCP server: no crash') or diag $err;
}

$c1->{h}->signal('TERM');
$c1->{h}->finish;
ok(!-e "$c1->{dir}/.s.PGSQL.$c1->{port}", 'the socket is removed at exit');
kill 'TERM', $refresher;
waitpid($refresher, 0);
$refresher = 0;
$s->stop;
done_testing();
