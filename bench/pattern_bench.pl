#!/usr/bin/env perl
# The cost of content patterns in agentgate-proxy: SELECT of 1M rows with
# one 100-byte text column through the proxy and PgBouncer, with the
# built-in patterns enabled (every value scanned) against all patterns
# disabled (values pass unscanned), in interleaved rounds.  The client is
# psql fetching 10000 rows at a time (FETCH_COUNT) and discarding them.
# Two figures: the wall time of the whole SELECT (the client's own work and
# the machine's other load are in it), and the CPU time agentgate-proxy
# spent on it (/proc), which is where the patterns cost.  BENCH_ROWS (1000000),
# BENCH_ROUNDS (3).  A second table adds one card number per 100 rows, so
# that the cost of replacing is shown too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use IPC::Run qw(run timeout);
use Time::HiRes qw(time usleep);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $rows   = $ENV{BENCH_ROWS}   || 1_000_000;
my $rounds = $ENV{BENCH_ROUNDS} || 3;

my $s = AgentGate::Stack->new(name => 'bench-patterns',
	pg_conf => "shared_buffers = 256MB\n");
$s->start;
# 100 bytes of ordinary text per row, different in every row
$s->admin_psql(<<"EOS");
CREATE TABLE public.plain AS
  SELECT g AS id, rpad('row ' || g || ' ' || md5(g::text) || ' the quick brown fox jumps over the lazy dog ', 100, 'x') AS t
    FROM generate_series(1, $rows) g;
CREATE TABLE public.some_cards AS
  SELECT id, CASE WHEN id % 100 = 0 THEN overlay(t placing 'card 4111 1111 1111 1111' from 40) ELSE t END AS t
    FROM public.plain;
GRANT SELECT ON public.plain, public.some_cards TO agentgate_agent;
VACUUM ANALYZE public.plain, public.some_cards;
EOS
my $tok = $s->token(sub => 'bench-patterns', ttl => 3600);
my ($rc, $o, $e) = $s->agent_psql($tok, 'SELECT 1');
die "agent login failed: $e" if $rc;

my $bindir = $ENV{PG_BINDIR} || do { my $d = `pg_config --bindir`; chomp $d; $d };

sub loads { my @l = AgentGate::Stack::_slurp($s->log_file('proxy')) =~ /content patterns loaded/g; scalar @l }

# switch every pattern on or off, and wait until the proxy has the new set
sub patterns
{
	my ($on) = @_;
	my $before = loads();
	$s->admin_psql("UPDATE agentgate.patterns SET enabled = $on");
	for (1 .. 100) { return if loads() > $before; usleep(50_000); }
	die "the proxy did not reload its patterns\n";
}

# CPU seconds (user + system) the proxy has used so far
my $ticks = `getconf CLK_TCK` || 100;
chomp $ticks;
sub proxy_cpu
{
	my $pid = $s->pid_of('proxy') or die "no proxy\n";
	open my $f, '<', "/proc/$pid/stat" or die "cannot read /proc/$pid/stat: $!";
	my $stat = <$f>;
	$stat =~ s/^.*\) //;
	my @f = split / /, $stat;
	return ($f[11] + $f[12]) / $ticks;
}

sub select_secs
{
	my ($table) = @_;
	my @cmd = ("$bindir/psql", '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'FETCH_COUNT=10000',
		'-o', '/dev/null', '-c', "SELECT t FROM $table", $s->agent_conninfo);
	local $ENV{PGPASSWORD} = $tok;
	my ($out, $err) = ('', '');
	my ($t0, $c0) = (time, proxy_cpu());
	run(\@cmd, '<', \undef, '>', \$out, '2>', \$err, timeout(600)) or die "psql failed: $err";
	return (time - $t0, proxy_cpu() - $c0);
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }

my %t;
for my $r (1 .. $rounds)
{
	for my $on ('false', 'true')
	{
		patterns($on);
		for my $table (qw(plain some_cards))
		{
			my ($wall, $cpu) = select_secs($table);
			push @{ $t{"$table/$on"} }, $wall;
			push @{ $t{"cpu/$table/$on"} }, $cpu;
		}
	}
}
printf "SELECT of %d rows x 100 bytes through the proxy, median of %d rounds:\n", $rows, $rounds;
for my $table (qw(plain some_cards))
{
	my $off = median(@{ $t{"$table/false"} });
	my $on  = median(@{ $t{"$table/true"} });
	my @ratios = map { $t{"$table/true"}[$_] / $t{"$table/false"}[$_] } 0 .. $rounds - 1;
	printf "  %-10s wall: patterns off %6.2f s, built-in patterns on %6.2f s, ratio %.2fx (median of per-round ratios %.2fx)\n",
		$table, $off, $on, $on / $off, median(@ratios);
	my $coff = median(@{ $t{"cpu/$table/false"} });
	my $con  = median(@{ $t{"cpu/$table/true"} });
	printf "  %-10s proxy CPU: patterns off %5.2f s, on %5.2f s (%+.2f us per row)\n",
		'', $coff, $con, ($con - $coff) * 1e6 / $rows;
}
$s->stop;
