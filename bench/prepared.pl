#!/usr/bin/env perl
# The cost of named prepared statements through agentgate-proxy: pgbench -S
# with -M prepared (the proxy keeps the statements and sends each Bind as
# Parse("") + Bind("")) against -M extended (unnamed statements, passed
# unchanged) and -M simple, through the same proxy and PgBouncer, in
# interleaved rounds.  One identity per connection (N pgbench processes of
# one client each, their TPS summed), so that PgBouncer does not re-send
# session stamps between clients and the protocol's cost is what differs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use IPC::Run qw(run start);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $seconds = $ENV{BENCH_SECONDS} || 10;
my $rounds  = $ENV{BENCH_ROUNDS}  || 3;
my $clients = $ENV{BENCH_CLIENTS} || 8;

my $s = AgentGate::Stack->new(name => 'bench-prepared', fsync => 1,
	pg_conf => "max_connections = 300\nshared_buffers = 256MB\n",
	pgbouncer_conf => "default_pool_size = $clients\n");
$s->start;
my $bindir = $ENV{PG_BINDIR} || do { my $d = `pg_config --bindir`; chomp $d; $d };
my $pgbench = "$bindir/pgbench";

my ($o, $e) = ("", "");
run([ $pgbench, "-i", '-q', '-s', '10', '-h', $s->pg_socket_dir, '-p', $s->pg_port, '-U', 'postgres', $s->db ],
	">", \$o, "2>", \$e) or die "pgbench -i failed: $e";
$s->admin_psql('GRANT SELECT ON pgbench_accounts, pgbench_branches TO agentgate_agent');

my @ids;
for my $i (1 .. $clients)
{
	my $t = $s->token(sub => "bench-prep-$i", ttl => 3600);
	my ($rc, $r, $err) = $s->agent_psql($t, 'SELECT session_user');
	die "agent login failed: $err" if $rc;
	push @ids, { PGPASSWORD => $t, PGSSLMODE => 'require' };
}

sub pgbench_tps
{
	my ($out) = @_;
	my ($t) = $out =~ /tps = ([\d.]+) \(without initial connection time\)/;
	($t) = $out =~ /tps = ([\d.]+)/ unless defined $t;
	return $t;
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }

my @modes = qw(simple extended prepared);
my %tps;
for my $r (1 .. $rounds)
{
	for my $m (@modes)
	{
		my (@h, $t);
		for my $env (@ids)
		{
			local %ENV = (%ENV, %$env);
			my ($out, $err) = ('', '');
			push @h, [ start([ $pgbench, '-S', '-n', "-M$m", '-c', 1, '-j', 1, '-T', $seconds,
				'-h', '127.0.0.1', '-p', $s->proxy_port, '-U', 'agent', $s->db ],
				'>', \$out, '2>', \$err), \$out, \$err ];
		}
		$t = 0;
		for my $x (@h)
		{
			$x->[0]->finish or die "pgbench -M $m failed: ${$x->[2]}${$x->[1]}";
			$t += pgbench_tps(${ $x->[1] });
		}
		push @{ $tps{$m} }, $t;
		printf "round %d %-9s %10.0f tps\n", $r, $m, $t;
	}
}

print "\npgbench -S through agentgate-proxy + PgBouncer, scale 10, $clients identities x 1 connection,"
  . " ${seconds}s x $rounds interleaved rounds (median)\n";
printf "%-12s %10s\n", 'mode', 'tps';
printf "%-12s %10.0f\n", $_, median(@{ $tps{$_} }) for @modes;
for my $vs (qw(extended simple))
{
	my @r = map { $tps{prepared}[$_] / $tps{$vs}[$_] } 0 .. $rounds - 1;
	printf "median of per-round prepared / %-8s %6.2f  (rounds: %s)\n", $vs, median(@r),
		join(' ', map { sprintf '%.2f', $_ } @r);
}
$s->stop;
