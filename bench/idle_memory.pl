#!/usr/bin/env perl
# Memory of an idle agent connection: N connections through agentgate-proxy
# and PgBouncer, each logged in, having run SELECT 1, then left idle.  The
# resident memory (VmRSS) of the proxy and of PgBouncer is read before and
# after; the difference divided by N is what one idle connection costs each.
#
# The proxy holds two descriptors per connection (client and PgBouncer), so
# N is bounded by the open file limit: by default the most the hard limit
# allows, at most 10,000.  The limits this needs are set here the way an
# operator would set them (see docs/operations.md, Sizing):
#   proxy: max_clients and max_connections >= N, max_connections_per_identity
#          >= N (one identity here), max_cancel_connections small;
#          open files >= max_clients + max_connections +
#          max_cancel_connections + admin_connections + 64
#   PgBouncer: max_client_conn >= N (+ cancels), open files >= that + servers
#   BENCH_IDLE (connections; default as above)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use File::Temp qw(tempdir);
use IPC::Run qw(run start pump finish timeout);
use Time::HiRes qw(sleep time);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $hard = `sh -c 'ulimit -Hn'`;
my $soft = `sh -c 'ulimit -Sn'`;
chomp($hard, $soft);
# PgBouncer keeps the soft limit it starts with (the proxy raises its own):
# start everything with the soft limit at the hard one
if ($soft ne $hard && !$ENV{AG_IDLE_RAISED})
{
	$ENV{AG_IDLE_RAISED} = 1;
	exec('sh', '-c', 'ulimit -Sn "$(ulimit -Hn)" && exec "$0" "$@"', $^X, $0, @ARGV)
	  or die "could not raise the open file limit: $!\n";
}
$hard = 1_000_000 if $hard eq 'unlimited';
my $cancels = 10;
# max_clients = max_connections = N + 150 (the warm-up's 100 and some room)
my $fit = int(($hard - $cancels - 4 - 64 - 300) / 2);
my $n = $ENV{BENCH_IDLE} || ($fit < 10_000 ? $fit : 10_000);
die "open file limit $hard is too low for idle connections\n" if $n < 100;
my $clients = $n + 150;

my $s = AgentGate::Stack->new(name => 'bench-idle',
	proxy_conf => "max_clients = $clients\nmax_connections = $clients\n"
	  . "max_connections_per_identity = $clients\nmax_cancel_connections = $cancels\n",
	pgbouncer_conf => "max_client_conn = " . ($clients + $cancels + 50) . "\ndefault_pool_size = 2\n");
$s->start;
my $tok = $s->token(sub => 'bench-idle', ttl => 3600);
my ($rc, $role, $err) = $s->agent_psql($tok, 'SELECT session_user');
die "agent login failed: $err" if $rc;

my $dir = tempdir(CLEANUP => 1);
my $cc = $ENV{CC} || 'cc';
my ($o, $e) = ('', '');
run([ $cc, '-O2', '-o', "$dir/connect_client", "$FindBin::Bin/connect_client.c", '-lssl', '-lcrypto' ],
	'>', \$o, '2>', \$e) or die "building connect_client failed: $e";

sub rss_kib
{
	my ($pid) = @_;
	open(my $f, '<', "/proc/$pid/status") or die "no process $pid\n";
	my $status = do { local $/; <$f> };
	my ($kib) = $status =~ /^VmRSS:\s+(\d+) kB/m or die "no VmRSS for process $pid\n";
	return $kib;
}

my %pid = (proxy => $s->pid_of('proxy'), pgbouncer => $s->pid_of('pgbouncer'));

# warm up: a first batch, so that what every process allocates once (TLS
# context, caches, libpq) is not counted per connection
sub open_idle
{
	my ($count) = @_;
	my ($in, $out, $err2) = ('', '', '');
	my $h = start([ "$dir/connect_client", $s->proxy_port, 0, $count, 0, 'agent', $s->db, 'idle', $tok ],
		'<', \$in, '>', \$out, '2>', \$err2, timeout(1800));
	pump $h until $out =~ /idle (\d+) failed (\d+)/;
	my ($open, $failed) = ($1, $2);
	return ($h, $open, $failed);
}

my ($warm, $wopen) = open_idle(100);
die "warm-up: only $wopen of 100 connections opened\n" if $wopen < 100;
sleep 2;
my %before = map { $_ => rss_kib($pid{$_}) } keys %pid;
my $t0 = time;
my ($h, $open, $failed) = open_idle($n);
my $took = time - $t0;
sleep 7;    # idle: past the proxy's 5 s trim of empty queues
my %after = map { $_ => rss_kib($pid{$_}) } keys %pid;
my $log = do { local $/; open(my $l, '<', $s->log_file('proxy')); <$l> };
my $cached = () = $log =~ /login \(cached\)/g;

printf "idle connections: %d opened (%d failed) in %.1f s (%.0f/s; %d logins served from the login cache)\n",
	$open, $failed, $took, $open / $took, $cached;
printf "%-12s %12s %12s %16s\n", 'process', 'RSS before', 'RSS after', 'KiB/connection';
my $sum = 0;
for my $p (qw(proxy pgbouncer))
{
	my $per = ($after{$p} - $before{$p}) / ($open || 1);
	$sum += $per;
	printf "%-12s %9d KiB %9d KiB %16.1f\n", $p, $before{$p}, $after{$p}, $per;
}
printf "%-12s %12s %12s %16.1f\n", 'together', '', '', $sum;
printf "open file limit (hard) %d: at most %d idle connections through one proxy\n", $hard, $fit;

$h->kill_kill;
$warm->kill_kill;
$s->stop;
