#!/usr/bin/env perl
# New connections per second (pgbench -C: one connection per transaction,
# each running SELECT 1), measured side by side:
#
#   pgbouncer   the agent's role straight to PgBouncer's unix socket (trust)
#   pgbouncer_tls  the same over TCP with PgBouncer's own TLS (same
#               certificate as the proxy): the handshake cost alone
#   proxy       the agent through agentgate-proxy: TCP + TLS handshake,
#               token verification, agentgate.login() on the admin
#               connection, then PgBouncer
#
# pgbench -C opens connections one at a time per thread, so -j = -c.
# Rounds are interleaved (pgbouncer, proxy, pgbouncer, ...) so drift on a
# shared machine hits both paths alike; medians and their ratio are printed.
#   BENCH_SECONDS (per round, default 10)  BENCH_ROUNDS (default 3)
#   BENCH_CLIENTS (default 4)  BENCH_CERT (rsa, the default, or ec: the
#   certificate's key, RSA-2048 or ECDSA P-256)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use File::Temp qw(tempfile);
use IPC::Run qw(run);

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
# PgBouncer-alone path is given one too (same shape, same checks).
my $stamp = $s->admin_psql("SELECT (agentgate.session_stamp('$role')).stamp");

my %paths = (
	pgbouncer => { env => { PGAPPNAME => "pgbench $stamp" }, args => [ '-h', $s->pgbouncer_socket_dir, '-p', $s->pgbouncer_port, '-U', $role ] },
	pgbouncer_tls => { env => { PGAPPNAME => "pgbench $stamp", PGSSLMODE => 'require' },
		args => [ '-h', '127.0.0.1', '-p', $s->pgbouncer_port, '-U', $role ] },
	proxy     => { env => { PGPASSWORD => $tok, PGSSLMODE => 'require' },
		args => [ '-h', '127.0.0.1', '-p', $s->proxy_port, '-U', 'agent' ] },
);
my @order = qw(pgbouncer pgbouncer_tls proxy);
my %cps;

for my $r (1 .. $rounds)
{
	for my $p (@order)
	{
		local %ENV = (%ENV, %{ $paths{$p}{env} });
		my ($out, $err) = ('', '');
		run([ $pgbench, '-C', '-n', '-f', $script, '-c', $clients, '-j', $clients, '-T', $seconds,
			@{ $paths{$p}{args} }, $s->db ], '>', \$out, '2>', \$err)
		  or die "pgbench ($p) failed: $err$out";
		my ($t) = $out =~ /tps = ([\d.]+)/;
		die "no tps in pgbench output:\n$out" unless defined $t;
		push @{ $cps{$p} }, $t;
		printf "round %d %-13s %10.0f connections/s\n", $r, $p, $t;
	}
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }

print "\npgbench -C (new connection per SELECT 1), $clients clients, ${seconds}s x $rounds interleaved rounds (median), $cert certificate\n";
printf "%-48s %14s\n", 'path', 'connections/s';
printf "%-48s %14.0f\n", 'PgBouncer alone (unix socket, trust)', median(@{ $cps{pgbouncer} });
printf "%-48s %14.0f\n", 'PgBouncer alone, TCP + TLS (trust)', median(@{ $cps{pgbouncer_tls} });
printf "%-48s %14.0f\n", 'agentgate-proxy (TLS, JWT, login()) + PgBouncer', median(@{ $cps{proxy} });
printf "%-48s %14.2f\n", 'ratio proxy+PgBouncer / PgBouncer alone',
	median(@{ $cps{proxy} }) / median(@{ $cps{pgbouncer} });
printf "%-48s %14.2f\n", 'ratio proxy+PgBouncer / PgBouncer with TLS',
	median(@{ $cps{proxy} }) / median(@{ $cps{pgbouncer_tls} });
$s->stop;
