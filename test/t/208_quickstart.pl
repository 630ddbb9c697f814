# README.md's quickstart, followed step by step with the configuration
# blocks taken from the README's own text (the fenced blocks marked
# "<!-- quickstart: NAME -->"), so the README cannot drift from what works.
# The only changes made to them: a scratch directory in front of /run/,
# /etc/agentgate/ and /var/run/postgresql, free ports for 5432, 6432 and
# 6433, this OS user for "postgres", a password for the placeholder, the
# proxy's jwks_uri replaced by a local JWKS file, and the client's host name
# by 127.0.0.1.  pg_hba.conf starts as Debian's default (peer for local
# connections, scram-sha-256 over TCP), with the README's lines put before.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use IPC::Run qw(run timeout);
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';

my $top = $ENV{AG_TOP} // '.';
my $s = AgentGate::Stack->new(name => 'qs');
$s->{started} = 1;    # stop() tears down whatever was started
my $base = $s->base;
my %port = (5432 => $s->pg_port, 6432 => $s->proxy_port, 6433 => $s->pgbouncer_port);
my $osuser = getpwuid($<);
my $password = 'qs-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 20);
my $slurp = \&AgentGate::Stack::_slurp;
my $spew = \&AgentGate::Stack::_spew;

# --- the README's blocks
my $readme = $slurp->("$top/README.md");
my %block;
while ($readme =~ /^[ \t]*<!-- quickstart: (\S+) -->\n[ \t]*```[a-z]*\n(.*?)\n[ \t]*```/msg)
{
	my ($name, $text) = ($1, $2);
	$text =~ s/^ {3}//mg;    # the steps are a numbered list: blocks are indented
	$block{$name} = "$text\n";
}
my @names = qw(tmpfiles.d postgresql.conf pg_hba.conf setup.sql pgpass grants.sql
  pgbouncer.ini pgbouncer-userlist.txt proxy.conf connect);
ok(exists $block{$_}, "README has the quickstart block \"$_\"") for @names;
BAIL_OUT('the README lost quickstart blocks') if grep { !exists $block{$_} } @names;

# Paths into the scratch directory, ports to free ones (one pass, so that
# nothing is substituted twice).
sub localize
{
	my ($t) = @_;
	$t =~ s{(/var/run/postgresql|/run/|/etc/agentgate/)}{$base$1}g;
	$t =~ s/\b(5432|6432|6433)\b/$port{$1}/g;
	$t =~ s/choose-a-password/$password/g;
	return $t;
}

# --- step 1: make install ships the units and the tmpfiles.d entry
{
	my $dest = "$base/destdir";
	my ($out, $err) = ('', '');
	my $ok = run([ 'make', '-s', '-C', $top, 'units-install', "DESTDIR=$dest", 'PREFIX=/opt/ag' ],
		'>', \$out, '2>', \$err, timeout(120));
	ok($ok, 'make units-install (part of make install) with DESTDIR and PREFIX') or diag "$out$err";
	my $units = "$dest/opt/ag/lib/systemd/system";
	like($slurp->("$units/agentgate-proxy.service"),
		qr{^ExecStart=/opt/ag/bin/agentgate-proxy -c /etc/agentgate/proxy\.conf$}m,
		'agentgate-proxy.service runs the installed proxy');
	like($slurp->("$units/agentgate-proxy.service"), qr/^User=agentgate$/m, 'as OS user agentgate');
	like($slurp->("$units/agentgate-pgbouncer.service"),
		qr{^ExecStart=/usr/sbin/pgbouncer /etc/agentgate/pgbouncer\.ini$}m,
		'agentgate-pgbouncer.service runs the README\'s pgbouncer.ini');
	like($slurp->("$units/agentgate-pgbouncer.service"), qr/^User=postgres$/m,
		'as OS user postgres (agentgate.pooler_os_user)');
	is($slurp->("$dest/opt/ag/lib/tmpfiles.d/agentgate.conf"), $block{'tmpfiles.d'},
		'the installed tmpfiles.d entry is the README\'s');
	unlike(join('', map { $slurp->($_) } glob("$units/*")), qr/@[A-Z]+@/, 'no placeholder left in the units');
}

# --- step 2: the socket folders (as systemd-tmpfiles would make them) and the session key
my %dirmode;
for my $line (split /\n/, $block{'tmpfiles.d'})
{
	next if $line =~ /^\s*(#|$)/;
	my ($type, $path, $mode, $user, $group) = split ' ', $line;
	is($type, 'd', "tmpfiles.d: $path is a folder");
	my $local = localize($path);
	make_path($local);
	chmod oct($mode), $local;
	$dirmode{$path} = $mode;
}
is($dirmode{'/run/agentgate-pg'}, '0700', 'PostgreSQL\'s private socket folder is 0700');
is($dirmode{'/run/agentgate-pgbouncer'}, '0750', 'PgBouncer\'s is 0750 (the proxy enters through its group)');
make_path("$base/etc/agentgate", "$base/var/run/postgresql");
chmod 0755, "$base/var/run/postgresql";
{
	my $key = '';
	run([ 'openssl', 'rand', '-hex', '32' ], '>', \$key) or die 'openssl rand';
	$spew->("$base/etc/agentgate/session.key", $key, 0600);
}

# --- step 3: postgresql.conf and pg_hba.conf
my $pgdata = "$base/pgdata";
$s->{pgdata} = $pgdata;
{
	my ($out, $err) = ('', '');
	run([ "$s->{bindir}/initdb", '-D', $pgdata, '-U', $osuser, '-E', 'UTF8', '--locale=C',
		'--no-sync', '--auth-local=peer', '--auth-host=scram-sha-256' ], '>', \$out, '2>', \$err)
	  or die "initdb: $err";
	my $conf = localize($block{'postgresql.conf'});
	$conf =~ s/^(agentgate\.pooler_os_user = )'postgres'/$1'$osuser'/m;
	open my $fh, '>>', "$pgdata/postgresql.conf" or die;
	# what the test adds: the server's port, no TCP, no fsync
	print $fh "\n# test only\nport = $port{5432}\nlisten_addresses = ''\nfsync = off\n"
	  . "log_line_prefix = '%m [%p] %q%u@%d '\n\n# README.md\n$conf";
	close $fh;
	# Debian's default pg_hba.conf, the README's lines before its local lines
	$spew->("$pgdata/pg_hba.conf", $block{'pg_hba.conf'} . <<"EOH");
local   all             $osuser                                 peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
EOH
}
$s->start_postgres;
my $pglog = $s->log_file('postgres');
ok(-S "$base/run/agentgate-pg/.s.PGSQL.$port{5432}", 'PostgreSQL listens in its private socket folder');
ok(-S "$base/var/run/postgresql/.s.PGSQL.$port{5432}", 'and in the public one');

sub dba
{
	my ($sql, %o) = @_;
	my ($out, $err) = ('', '');
	my $ok = run([ "$s->{bindir}/psql", '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
		'-h', "$base/var/run/postgresql", '-p', $port{5432}, '-d', $o{db} // 'app' ],
		'<', \$sql, '>', \$out, '2>', \$err, timeout(60));
	die "dba psql failed: $sql\n$err" unless $ok || $o{ok_fail};
	chomp $out;
	return $o{ok_fail} ? ($ok, $out, $err) : $out;
}

# The audit writer needs the database agentgate.audit_database names, then
# the extension in it; the README says what the log shows meanwhile.
{
	my $t0 = time;
	sleep 0.2 until $slurp->($pglog) =~ /FATAL:  database "app" does not exist/ || time - $t0 > 10;
	like($slurp->($pglog), qr/FATAL:  database "app" does not exist/,
		'before the database exists, the audit writer restarts with the FATAL the README quotes');
	dba('CREATE DATABASE app', db => 'postgres');
	$t0 = time;
	sleep 0.2 until $slurp->($pglog) =~ /extension agentgate is not installed in database "app"/ || time - $t0 > 10;
	like($slurp->($pglog), qr/WARNING:  agentgate audit worker: extension agentgate is not installed in database "app"/,
		'then, until step 4, it waits with the WARNING the README quotes');
}

# --- step 4: the extension, the proxy's login and passfile, the agents' grants
dba(q{CREATE TABLE public.orders (id int PRIMARY KEY, item text);
      INSERT INTO public.orders VALUES (1, 'widget'), (2, 'gadget');});
dba(localize($block{'setup.sql'}));
dba($block{'grants.sql'});
$spew->("$base/etc/agentgate/pgpass", localize($block{'pgpass'}), 0600);
{
	local $ENV{PGPASSFILE} = "$base/etc/agentgate/pgpass";
	my ($o, $e) = ('', '');
	run([ "$s->{bindir}/psql", '-X', '-A', '-t', '-w',
		"host=$base/var/run/postgresql port=$port{5432} dbname=app user=agentgate_proxy_login" ],
		'<', \'SELECT 1', '>', \$o, '2>', \$e);
	is($o, "1\n", 'the proxy\'s role logs in with the passfile (scram-sha-256, not peer)') or diag $e;
}

# --- step 5: PgBouncer
$spew->("$base/etc/agentgate/pgbouncer.ini", localize($block{'pgbouncer.ini'}), 0600);
$spew->("$base/etc/agentgate/pgbouncer-userlist.txt", $block{'pgbouncer-userlist.txt'}, 0600);
my $pgport = $port{5432};
like($slurp->("$base/etc/agentgate/pgbouncer.ini"), qr/^\* = host=\S+ port=$pgport$/m,
	'[databases] names PostgreSQL\'s port');
my $pgb_sock = "$base/run/agentgate-pgbouncer/.s.PGSQL.$port{6433}";
eval {
	$s->_spawn('pgbouncer', [ AgentGate::Stack::_which('pgbouncer'), "$base/etc/agentgate/pgbouncer.ini" ],
		sub { -S $pgb_sock });
	1;
} or diag $@;
ok(-S $pgb_sock, 'PgBouncer accepts the README\'s pgbouncer.ini and listens in its folder');

# --- step 6: the proxy
make_path("$base/keys");
$s->make_keys;
for my $f (qw(tls.crt tls.key))
{
	$spew->("$base/etc/agentgate/$f", $slurp->("$base/keys/$f"), 0600);
}
my $proxy_conf = localize($block{'proxy.conf'});
my ($issuer) = $proxy_conf =~ /^issuer = (\S+)$/m;
my ($audience) = $proxy_conf =~ /^audience = (\S+)$/m;
ok($proxy_conf =~ s{^jwks_uri = .*$}{jwks_file = $base/keys/jwks.json}m, 'proxy.conf: jwks_uri replaced by the test\'s JWKS');
$spew->("$base/etc/agentgate/proxy.conf", $proxy_conf, 0600);
{
	my ($out, $err) = ('', '');
	run([ "$top/pooler/agentgate-proxy", '-t', '-c', "$base/etc/agentgate/proxy.conf" ], '>', \$out, '2>', \$err);
	is($?, 0, 'agentgate-proxy -t accepts the README\'s proxy.conf') or diag "$out$err";
}
eval {
	$s->_spawn('proxy', [ "$top/pooler/agentgate-proxy", '-c', "$base/etc/agentgate/proxy.conf" ],
		sub { my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port{6432}, Proto => 'tcp'); $c ? (close($c), 1) : 0 });
	1;
} or diag $@;
ok($s->alive('proxy'), 'the proxy runs');

# --- step 7: an agent connects as the README says
my ($conninfo) = $block{connect} =~ /psql "([^"]+)"/;
ok($conninfo, 'the README\'s connection string');
$conninfo = localize($conninfo);
$conninfo =~ s/host=\S+/host=127.0.0.1/;
my $token = $s->token(sub => 'qs-agent', iss => $issuer, aud => $audience);

sub agent
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGPASSWORD} = $token;
	local $ENV{PGCONNECT_TIMEOUT} = 10;
	run([ "$s->{bindir}/psql", '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', $conninfo ],
		'<', \$sql, '>', \$out, '2>', \$err, timeout(60));
	chomp $out;
	return ($? >> 8, $out, $err);
}

my ($rc, $out, $err) = agent("SELECT session_user LIKE 'agent_qs_agent_%', pg_has_role(session_user, 'agentgate_agent', 'MEMBER')");
is($rc, 0, 'the agent connects with a minted token') or diag $err;
is($out, 't|t', 'as its own role, a member of agentgate_agent');
($rc, $out, $err) = agent('SELECT item FROM public.orders ORDER BY id');
is($out, "widget\ngadget", 'grants.sql: it reads the application\'s tables') or diag $err;
($rc, $out, $err) = agent('CREATE TABLE public.mine (id int)');
like($err, qr/permission denied for schema public/, 'PostgreSQL 15: public is not writable for it');
($rc, $out, $err) = agent("CREATE TABLE agent_work.notes (id int, note text); INSERT INTO agent_work.notes VALUES (1, 'x'); SELECT count(*) FROM agent_work.notes");
is($out, '1', 'grants.sql: it creates and fills its own table in agent_work') or diag $err;
($rc, $out, $err) = agent('DROP TABLE agent_work.notes');
like($err, qr/agentgate: DROP TABLE( on \S+)? is not allowed/, 'the baseline guardrails govern it');
($rc, $out, $err) = agent('LISTEN jobs');
like($err, qr/LISTEN would lose notifications behind the transaction pool/, 'LISTEN is refused with the reason');

# the audit log in agentgate.audit_database
{
	my $n = 0;
	my $t0 = time;
	while (time - $t0 < 15)
	{
		$n = dba(q{SELECT count(*) FROM agentgate.audit_log WHERE identity = 'qs-agent' AND decision = 'blocked'});
		last if $n >= 2;
		sleep 0.3;
	}
	cmp_ok($n, '>=', 2, 'the refusals are in agentgate.audit_log');
}

$s->stop;
done_testing();
