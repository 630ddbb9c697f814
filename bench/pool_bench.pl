#!/usr/bin/env perl
# The shared pool at scale: N identities, one connection each through the
# proxy (shared_pool = on), one "SELECT 1" per second each, against
# PgBouncer capped at max_db_connections = 50 server connections.  50
# identities and 1,000 identities are measured side by side, rounds
# interleaved; printed: p50/p99/max latency, errors and late statements of
# each, the ratio p99(1000) / p99(50) (goal: at most 2), and the most server
# connections seen in use (pg_stat_activity, sampled while the load runs).
# 10,000 identities are registered (roles exist) beforehand.
#
# With POOL_BENCH_PER_IDENTITY=1 the 1,000 identities also run once more
# with the proxy's shared pool off (a PgBouncer pool per identity, the same
# cap): what the cap costs without the shared pool.
#
#   POOL_BENCH_SECONDS (per run, default 20)   BENCH_ROUNDS (default 3)
#   POOL_BENCH_IDENTITIES (default 1000)       POOL_BENCH_KNOWN (default 10000)
#   POOL_BENCH_SERVERS (max_db_connections, default 50)
#
# Open files: the client needs one descriptor per connection, the proxy
# max_clients + max_connections + max_cancel_connections + admin
# connections + 64 (here 2,100 + 2,000 + 100 + 4 + 64 = 4,268), PgBouncer
# max_client_conn + its server connections + a few (2,200 + 50).  The bench
# raises its soft limit to the hard limit (ulimit -n) for all three and
# refuses to run below 4,500.
use strict;
use warnings;

BEGIN
{
	# the soft open file limit, raised before anything starts: the proxy,
	# PgBouncer and the client inherit it
	unless ($ENV{POOL_BENCH_NOFILE})
	{
		$ENV{POOL_BENCH_NOFILE} = 1;
		exec('sh', '-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', $^X, $0, @ARGV)
		  or die "cannot re-run under sh: $!\n";
	}
}

use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use IPC::Run qw(run start);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $seconds = $ENV{POOL_BENCH_SECONDS} || 20;
my $rounds  = $ENV{BENCH_ROUNDS} || 3;
my $many    = $ENV{POOL_BENCH_IDENTITIES} || 1000;
my $known   = $ENV{POOL_BENCH_KNOWN} || 10000;
my $servers = $ENV{POOL_BENCH_SERVERS} || 50;
my $few     = 50;
$known = $many if $known < $many;

my $nofile = `sh -c 'ulimit -n'`;
chomp $nofile;
die "pool_bench: open file limit $nofile is too low: raise the hard limit (ulimit -Hn) to 4,500 or more\n"
  if $nofile ne 'unlimited' && $nofile < 4500;

my $shared_proxy = "shared_pool = on\nmax_clients = 2100\nmax_connections = 2000\n"
  . "max_connections_per_identity = 10\n";
my $s = AgentGate::Stack->new(name => 'pool-bench', fsync => 1,
	pg_conf => "max_connections = 300\nshared_buffers = 256MB\n",
	proxy_conf => $shared_proxy,
	pgbouncer_conf => "server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\nserver_check_query = RESET ALL\n"
	  . "max_db_connections = $servers\ndefault_pool_size = $servers\nmax_client_conn = 2200\n");
$s->start;

# the client
my $dir = tempdir(CLEANUP => 1);
my $cc = $ENV{CC} || 'cc';
my $pg_config = $ENV{PG_CONFIG} || 'pg_config';
my $inc = `$pg_config --includedir`;
chomp $inc;
my ($o, $e) = ('', '');
run([ $cc, '-O2', "-I$inc", '-o', "$dir/pool_client", "$FindBin::Bin/pool_client.c", '-lpq' ],
	'>', \$o, '2>', \$e) or die "building pool_client failed: $e";

# identities known: roles registered ahead of their first login
my $t0 = time;
$s->admin_psql("SELECT count(agentgate.register('pb-' || lpad(g::text, 5, '0')))"
	  . " FROM generate_series(1, $known) g");
printf "registered %d identities in %.1f s\n", $known, time - $t0;

$t0 = time;
open my $tf, '>', "$dir/tokens" or die;
for my $i (1 .. $many)
{
	print $tf $s->token(sub => sprintf('pb-%05d', $i), ttl => 7200), "\n";
}
close $tf;
printf "minted %d tokens in %.1f s\n", $many, time - $t0;

# CPU seconds (user + system) so far of a process, or of the postmaster
# and every child of it, from /proc
sub cpu_of
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return 0;
	my $st = <$fh>;
	close $fh;
	$st =~ s/^.*\) //;
	my @f = split / /, $st;
	return ($f[11] + $f[12]) / 100;    # utime, stime in clock ticks (USER_HZ = 100)
}

# A snapshot of CPU so far, per process: the proxy, PgBouncer, and each
# PostgreSQL process, classed as a shared pool backend (process title
# "postgres: agentgate_pool ...") or another one (the postmaster, the audit
# writer and other workers, agents' own backends)
sub cpu_now
{
	my %snap = (proxy => { $s->pid_of('proxy') => cpu_of($s->pid_of('proxy')) },
		pgbouncer => { $s->pid_of('pgbouncer') => cpu_of($s->pid_of('pgbouncer')) },
		pool_backends => {}, postgres_other => {});
	open my $fh, '<', $s->base . '/pgdata/postmaster.pid' or return \%snap;
	my $pm = <$fh>;
	chomp $pm;
	$snap{postgres_other}{$pm} = cpu_of($pm);
	for my $stat (glob '/proc/[0-9]*/stat')
	{
		open my $sf, '<', $stat or next;
		my $line = <$sf> // next;
		my ($pid, $ppid) = $line =~ /^(\d+) .*\) \S+ (\d+)/;
		next unless $ppid && $ppid == $pm;
		open my $cf, '<', "/proc/$pid/cmdline" or next;
		my $title = <$cf> // '';
		$snap{ $title =~ /^postgres: agentgate_pool / ? 'pool_backends' : 'postgres_other' }{$pid} = cpu_of($pid);
	}
	return \%snap;
}
my @cpu_parts = qw(proxy pgbouncer pool_backends postgres_other);

# CPU seconds of one part between two snapshots: processes that exited in
# between are left out (their last share is unknown), new ones count whole
sub cpu_delta
{
	my ($a0, $a1, $part) = @_;
	my $t = 0;
	$t += $a1->{$part}{$_} - ($a0->{$part}{$_} // 0) for keys %{ $a1->{$part} };
	return $t;
}

# One psql session samples the server connections in use, so that sampling
# costs no backend start and hardly any CPU of its own
my ($sq_in, $sq_out, $n_sample) = ('', '', 0);
my $sampler = start([ $s->_pg('psql'), '-X', '-A', '-t', '-q', '-h', $s->pg_socket_dir, '-p', $s->pg_port,
	'-U', 'postgres', '-d', $s->db ], '<', \$sq_in, '>', \$sq_out, '2>', \my $sq_err);
sub server_connections
{
	my $mark = 'sample-' . ++$n_sample;
	$sq_in .= "SELECT count(*) FROM pg_stat_activity WHERE usename = 'agentgate_pool'"
	  . " OR usename IN (SELECT role_name FROM agentgate.agents);\n\\echo $mark\n";
	$sampler->pump until $sq_out =~ /(\d+)\n$mark\n/;
	my $c = $1;
	$sq_out = '';
	return $c;
}

# One run of N identities: the client's figures and the most server
# connections seen while it ran.
sub load
{
	my ($n) = @_;
	my ($out, $err) = ('', '');
	my $h = start([ "$dir/pool_client", '127.0.0.1', $s->proxy_port, $s->db, "$dir/tokens",
		$n, $seconds, 1000, 64 ], '>', \$out, '2>', \$err);
	my $peak = 0;
	my $cpu0 = cpu_now();
	while ($h->pumpable)
	{
		my $c = server_connections();
		$peak = $c if $c > $peak;
		sleep 0.5;
		$h->pump_nb;
	}
	my $cpu1 = cpu_now();
	$h->finish or die "pool_client ($n) failed: $err$out";
	my %r = $out =~ /(\w+) ([\d.]+)/g;
	# CPU per statement, microseconds (PostgreSQL's includes its background
	# workers, the audit writer among them, and the sampling session)
	for my $p (@cpu_parts)
	{
		$r{"us_$p"} = $r{statements} ? 1e6 * cpu_delta($cpu0, $cpu1, $p) / $r{statements} : 0;
	}
	$r{us_client} = $r{statements} ? 1e6 * $r{cpu_s} / $r{statements} : 0;
	die "no figures from pool_client:\n$out$err" unless defined $r{p99_ms};
	$r{servers} = $peak;
	$r{stderr} = $err;
	printf "  %5d identities: connected %d failed %d statements %d errors %d late %d"
	  . " p50 %.2f ms p99 %.2f ms max %.1f ms, server connections %d\n",
	  $n, @r{qw(connected failed statements errors late p50_ms p99_ms max_ms servers)};
	printf "    CPU per statement: proxy %.0f us, PgBouncer %.0f us, agentgate_pool backends %.0f us,"
	  . " other PostgreSQL processes %.0f us, client %.0f us\n",
	  @r{qw(us_proxy us_pgbouncer us_pool_backends us_postgres_other us_client)};
	print "    $_\n" for grep { length } split /\n/, $err;
	return \%r;
}

sub loadavg { open my $fh, '<', '/proc/loadavg' or return '?'; my $l = <$fh>; return join(' ', (split / /, $l)[0 .. 2]); }
my $load_before = loadavg();
# what the processes use with no load at all (PostgreSQL's background
# workers, the audit writer among them): to be read against the figures
# per statement
my $idle0 = cpu_now();
sleep 5;
my $idle1 = cpu_now();
my %idle = map { $_ => 1000 * cpu_delta($idle0, $idle1, $_) / 5 } @cpu_parts;
my %runs;
for my $r (1 .. $rounds)
{
	print "round $r\n";
	push @{ $runs{$few} }, load($few);
	push @{ $runs{$many} }, load($many);
}
my $per_identity;
if ($ENV{POOL_BENCH_PER_IDENTITY})
{
	print "per-identity pools (shared_pool = off), the same cap\n";
	$s->{proxy_conf} = "max_clients = 2100\nmax_connections = 2000\nmax_connections_per_identity = 10\n";
	$s->restart_proxy;
	$per_identity = load($many);
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }
sub med { my ($n, $k) = @_; return median(map { $_->{$k} } @{ $runs{$n} }); }
sub sum { my ($n, $k) = @_; my $t = 0; $t += $_->{$k} for @{ $runs{$n} }; return $t; }

printf "\nshared pool: SELECT 1 per second per identity, %d s x %d interleaved rounds,"
  . " max_db_connections = %d, %d identities known, open file limit %s\n",
  $seconds, $rounds, $servers, $known, $nofile;
printf "%-34s %12s %12s\n", '', "$few identities", "$many identities";
printf "%-34s %12.2f %12.2f\n", 'p50 latency, ms (median of rounds)', med($few, 'p50_ms'), med($many, 'p50_ms');
printf "%-34s %12.2f %12.2f\n", 'p99 latency, ms (median of rounds)', med($few, 'p99_ms'), med($many, 'p99_ms');
printf "%-34s %12.1f %12.1f\n", 'max latency, ms (median of rounds)', med($few, 'max_ms'), med($many, 'max_ms');
printf "%-34s %12d %12d\n", 'statements (all rounds)', sum($few, 'statements'), sum($many, 'statements');
printf "%-34s %12d %12d\n", 'connection errors (all rounds)', sum($few, 'failed'), sum($many, 'failed');
printf "%-34s %12d %12d\n", 'statement errors (all rounds)', sum($few, 'errors'), sum($many, 'errors');
printf "%-34s %12d %12d\n", 'late (turns skipped, all rounds)', sum($few, 'late'), sum($many, 'late');
my %cpu_label = (proxy => 'proxy', pgbouncer => 'PgBouncer', pool_backends => 'pool backends',
	postgres_other => 'other PG processes', client => 'client');
for my $p (@cpu_parts, 'client')
{
	printf "%-34s %12.0f %12.0f\n", "CPU/statement, $cpu_label{$p}, us", med($few, "us_$p"), med($many, "us_$p");
}
printf "%-34s %12d %12d\n", 'server connections in use (peak)',
  median(map { $_->{servers} } @{ $runs{$few} }), median(map { $_->{servers} } @{ $runs{$many} });
printf "load average (1, 5, 15 min) before %s, after %s, on %d CPUs\n", $load_before, loadavg(),
  scalar(() = `cat /proc/cpuinfo` =~ /^processor/mg);
printf "CPU with no load, ms per second: proxy %.1f, PgBouncer %.1f, agentgate_pool backends %.1f,"
  . " other PostgreSQL processes %.1f\n", @idle{@cpu_parts};
my @ratio = map { $runs{$many}[$_]{p99_ms} / $runs{$few}[$_]{p99_ms} } 0 .. $rounds - 1;
printf "p99(%d) / p99(%d), per round: %s; median %.2f (goal: at most 2)\n",
  $many, $few, join(' ', map { sprintf '%.2f', $_ } @ratio), median(@ratio);
if ($per_identity)
{
	printf "per-identity pools, %d identities: p50 %.2f ms, p99 %.2f ms, connection errors %d,"
	  . " statement errors %d, late %d, server connections %d, statements %d\n",
	  $many, @{$per_identity}{qw(p50_ms p99_ms failed errors late servers statements)};
}
$sq_in .= "\\q\n";
$sampler->finish;
$s->stop;
