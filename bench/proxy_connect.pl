#!/usr/bin/env perl
# New connections per second, measured side by side, and the CPU each
# connection costs the proxy (or the control hop) and PgBouncer.
#
# With pgbench -C (one connection per transaction, each running SELECT 1;
# libpq never resumes a TLS session):
#   pgbouncer      the agent's role straight to PgBouncer's unix socket (trust)
#   pgbouncer_tls  the same over TCP with PgBouncer's own TLS (same
#                  certificate as the proxy): the handshake cost alone
#   tls_floor      through bench/tls_floor.c, a bare TLS relay, to PgBouncer:
#                  the floor of any TLS-terminating hop on this machine
#   proxy_nocache  the agent through agentgate-proxy with login_cache_seconds
#                  = 0: TLS, token verification, agentgate.login(), PgBouncer
#   proxy          the same with the login cache (the default): the token's
#                  later connections skip verification and login()
# With bench/connect_client.c (one TLS context per process, like a pooled
# driver; the same client on every path):
#   client_pgbouncer_tls   PgBouncer's TLS, resuming when it lets the client
#   client_proxy_full      the proxy, a full TLS handshake each time
#   client_proxy_resumed   the proxy, each connection resuming the last
#                          one's session from the proxy's ticket
#
# pgbench -C opens connections one at a time per thread, so -j = -c.
# Rounds are interleaved so drift on a shared machine hits every path
# alike; medians and ratios are printed.  CPU per connection is the
# process's user + system time over a round (from /proc) divided by the
# connections it made: on a machine whose cores are shared by client,
# PgBouncer, PostgreSQL and proxy, that is the figure that carries over.
#   BENCH_SECONDS (per round, default 10)  BENCH_ROUNDS (default 3)
#   BENCH_CLIENTS (default 4)  BENCH_CERT (rsa, the default, or ec: the
#   certificate's key, RSA-2048 or ECDSA P-256)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use File::Temp qw(tempfile tempdir);
use IPC::Run qw(run start);
use POSIX ();
use Time::HiRes qw(sleep time);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $seconds = $ENV{BENCH_SECONDS} || 10;
my $rounds  = $ENV{BENCH_ROUNDS}  || 3;
my $clients = $ENV{BENCH_CLIENTS} || 4;

my $cert = $ENV{BENCH_CERT} || 'rsa';
my $s = AgentGate::Stack->new(name => 'bench-connect', fsync => 1, pgbouncer_tls => 1,
	tls_key_type => $cert,
	pgbouncer_conf => "default_pool_size = $clients\n");
$s->start;
my $bindir = $ENV{PG_BINDIR} || do { my $d = `pg_config --bindir`; chomp $d; $d };
my $pgbench = "$bindir/pgbench";

my $tok = $s->token(sub => 'bench-connect', ttl => 3600);
my ($rc, $role, $err) = $s->agent_psql($tok, 'SELECT session_user');
die "agent login failed: $err" if $rc;

my ($fh, $script) = tempfile('connect-XXXXXX', DIR => $s->base, SUFFIX => '.sql');
print $fh "SELECT 1;\n";
close $fh;

# The extension accepts an agent session only with a session stamp in
# application_name; the proxy gets one per connection from login(), so the
# paths without it are given one too (same shape, same checks).
my $stamp = $s->admin_psql("SELECT (agentgate.session_stamp('$role')).stamp");

# the control hop and the client, built here
my $dir = tempdir(CLEANUP => 1);
my $cc = $ENV{CC} || 'cc';
my ($o, $e) = ('', '');
for my $p (qw(tls_floor connect_client))
{
	run([ $cc, '-O2', '-o', "$dir/$p", "$FindBin::Bin/$p.c", '-lssl', '-lcrypto' ],
		'>', \$o, '2>', \$e) or die "building $p failed: $e";
}
my $floor_port = $s->proxy_port + 7;
my $floor = start([ "$dir/tls_floor", $floor_port, $s->ca_file, $s->tls_key_file,
	$s->pgbouncer_socket_dir . '/.s.PGSQL.' . $s->pgbouncer_port ]);
sleep 0.5;

my $tls_env = { PGAPPNAME => "pgbench $stamp", PGSSLMODE => 'require' };
my %paths = (
	pgbouncer => { env => { PGAPPNAME => "pgbench $stamp" },
		args => [ '-h', $s->pgbouncer_socket_dir, '-p', $s->pgbouncer_port, '-U', $role ] },
	pgbouncer_tls => { env => $tls_env,
		args => [ '-h', '127.0.0.1', '-p', $s->pgbouncer_port, '-U', $role ] },
	tls_floor => { env => $tls_env, hop => 'floor',
		args => [ '-h', '127.0.0.1', '-p', $floor_port, '-U', $role ] },
	proxy_nocache => { env => { PGPASSWORD => $tok, PGSSLMODE => 'require' }, hop => 'proxy',
		nocache => 1, args => [ '-h', '127.0.0.1', '-p', $s->proxy_port, '-U', 'agent' ] },
	proxy => { env => { PGPASSWORD => $tok, PGSSLMODE => 'require' }, hop => 'proxy',
		args => [ '-h', '127.0.0.1', '-p', $s->proxy_port, '-U', 'agent' ] },
	client_pgbouncer_tls => { client => [ $s->pgbouncer_port, 1, $role, $s->db, "client $stamp" ] },
	client_proxy_full => { client => [ $s->proxy_port, 0, 'agent', $s->db, 'client', $tok ], hop => 'proxy' },
	client_proxy_resumed => { client => [ $s->proxy_port, 1, 'agent', $s->db, 'client', $tok ], hop => 'proxy' },
);
my @order = qw(pgbouncer pgbouncer_tls tls_floor proxy_nocache proxy
  client_pgbouncer_tls client_proxy_full client_proxy_resumed);
my %label = (
	pgbouncer => 'pgbench -C: PgBouncer alone (unix socket, trust)',
	pgbouncer_tls => 'pgbench -C: PgBouncer, TCP + TLS (trust)',
	tls_floor => 'pgbench -C: bare TLS relay (control) + PgBouncer',
	proxy_nocache => 'pgbench -C: agentgate-proxy, no login cache',
	proxy => 'pgbench -C: agentgate-proxy (login cache)',
	client_pgbouncer_tls => 'client: PgBouncer, TCP + TLS',
	client_proxy_full => 'client: agentgate-proxy, full TLS handshake',
	client_proxy_resumed => 'client: agentgate-proxy, TLS resumed',
);

my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
my %pid = (proxy => $s->pid_of('proxy'), pgbouncer => $s->pid_of('pgbouncer'),
	floor => $floor->{KIDS}[0]{PID});

sub cpu_seconds
{
	my ($p) = @_;
	open(my $f, '<', "/proc/$p/stat") or return 0;
	my $line = <$f>;
	$line =~ s/^.*\) //;    # past the command name
	my @f = split ' ', $line;
	return ($f[11] + $f[12]) / $hz;    # utime, stime
}

my $reloads = 0;
sub set_cache
{
	my ($on) = @_;
	$s->{proxy_conf} = $on ? '' : "login_cache_seconds = 0\n";
	$s->write_proxy_conf;
	$s->signal('proxy', 'HUP');
	$reloads++;
	my $deadline = time + 10;
	while (time < $deadline)
	{
		my $n = () = do { local $/; open(my $l, '<', $s->log_file('proxy')); <$l> } =~ /configuration reloaded/g;
		return if $n >= $reloads;
		sleep 0.05;
	}
	die "the proxy did not reload\n";
}

my (%cps, %hopcpu, %pgbcpu, %resumed);
for my $r (1 .. $rounds)
{
	for my $p (@order)
	{
		my $path = $paths{$p};
		set_cache(0) if $path->{nocache};
		my %cpu0 = map { $_ => cpu_seconds($pid{$_}) } keys %pid;
		my ($out, $err) = ('', '');
		my ($n, $t);
		if ($path->{client})
		{
			my ($port, $resume, @rest) = @{ $path->{client} };
			run([ "$dir/connect_client", $port, $seconds, $clients, $resume, @rest ],
				'>', \$out, '2>', \$err) or die "connect_client ($p) failed: $err$out";
			my ($conns, $secs, $res, $failed) =
			  $out =~ /connections (\d+) seconds ([\d.]+) resumed (\d+) failed (\d+)/
			  or die "no figures in connect_client output:\n$out";
			die "connect_client ($p): $failed connections failed: $err\n"
			  if $conns == 0 || $failed > $conns / 100;
			($n, $t) = ($conns, $conns / $secs);
			push @{ $resumed{$p} }, $conns ? $res / $conns : 0;
		}
		else
		{
			local %ENV = (%ENV, %{ $path->{env} });
			run([ $pgbench, '-C', '-n', '-f', $script, '-c', $clients, '-j', $clients, '-T', $seconds,
				@{ $path->{args} }, $s->db ], '>', \$out, '2>', \$err)
			  or die "pgbench ($p) failed: $err$out";
			($t) = $out =~ /tps = ([\d.]+)/;
			($n) = $out =~ /number of transactions actually processed: (\d+)/;
			die "no tps in pgbench output:\n$out" unless defined $t && $n;
		}
		my %used = map { $_ => cpu_seconds($pid{$_}) - $cpu0{$_} } keys %pid;
		set_cache(1) if $path->{nocache};
		push @{ $cps{$p} }, $t;
		push @{ $hopcpu{$p} }, $path->{hop} ? $used{ $path->{hop} } / $n * 1e6 : 0;
		push @{ $pgbcpu{$p} }, $used{pgbouncer} / $n * 1e6;
		printf "round %d %-22s %8.0f connections/s  hop %6.0f us/conn  PgBouncer %5.0f us/conn%s\n",
			$r, $p, $t, $hopcpu{$p}[-1], $pgbcpu{$p}[-1],
			$resumed{$p} ? sprintf('  resumed %.0f%%', 100 * $resumed{$p}[-1]) : '';
	}
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }

print "\nnew connections (SELECT 1 each), $clients clients, ${seconds}s x $rounds interleaved rounds (median), $cert certificate\n";
printf "%-50s %14s %14s %14s\n", 'path', 'connections/s', 'hop CPU us', 'PgBouncer us';
for my $p (@order)
{
	printf "%-50s %14.0f %14s %14.0f%s\n", $label{$p}, median(@{ $cps{$p} }),
		$paths{$p}{hop} ? sprintf('%.0f', median(@{ $hopcpu{$p} })) : '-', median(@{ $pgbcpu{$p} }),
		$resumed{$p} ? sprintf('  (%.0f%% resumed)', 100 * median(@{ $resumed{$p} })) : '';
}
my %m = map { $_ => median(@{ $cps{$_} }) } @order;
printf "%-50s %14.2f\n", 'pgbench: proxy / PgBouncer with TLS', $m{proxy} / $m{pgbouncer_tls};
printf "%-50s %14.2f\n", 'pgbench: proxy without the cache / PgBouncer with TLS', $m{proxy_nocache} / $m{pgbouncer_tls};
printf "%-50s %14.2f\n", 'pgbench: proxy / bare TLS relay (the floor)', $m{proxy} / $m{tls_floor};
printf "%-50s %14.2f\n", 'client: proxy resumed / PgBouncer with TLS', $m{client_proxy_resumed} / $m{client_pgbouncer_tls};
printf "%-50s %14.2f\n", 'client: proxy full handshake / PgBouncer with TLS', $m{client_proxy_full} / $m{client_pgbouncer_tls};
$floor->kill_kill;
$s->stop;
