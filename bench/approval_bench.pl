#!/usr/bin/env perl
# Wake-up latency of a statement waiting for approval (wait mode), through
# the real stack (TLS proxy, PgBouncer transaction pooling).
#
# For each round the agent sends a DELETE that an approve rule (mode wait)
# holds.  An approver's persistent session runs BEGIN; approve(id); reads
# clock_timestamp(); COMMIT.  The DELETE returns clock_timestamp() as it
# runs.  Latency = the statement's resumption - the approver's clock just
# before COMMIT (server clock on both sides, so it includes the COMMIT
# itself, the wake-up, and the worker that uses the approval).  p50, p99
# and max over the rounds.  Goal: p99 < 50 ms.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IPC::Run;
use Time::HiRes qw(usleep);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $rounds = $ENV{BENCH_ROUNDS} && $ENV{BENCH_ROUNDS} > 3 ? $ENV{BENCH_ROUNDS} * 20 : 100;

my $s = AgentGate::Stack->new(name => 'approval');
$s->start;
$s->admin_psql(q{
CREATE TABLE bench_t (id int PRIMARY KEY);
GRANT SELECT, DELETE ON bench_t TO agentgate_agent;
CREATE ROLE bench_approver LOGIN IN ROLE agentgate_approver;
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'bench_t', mode => 'wait',
                                  timeout => '1 min', reason => 'bench');
});
$s->admin_psql("INSERT INTO bench_t SELECT generate_series(1, $rounds)");

my ($in, $out, $err) = ('', '', '');
my $bindir = $ENV{PG_BINDIR} || do { my $d = `pg_config --bindir`; chomp $d; $d };
my $apr = IPC::Run::start([ "$bindir/psql", '-X', '-q', '-A', '-t', '-h', $s->pg_socket_dir,
	'-p', $s->pg_port, '-U', 'bench_approver', '-d', $s->db ], \$in, \$out, \$err);

sub approver
{
	my ($sql) = @_;
	$out = '';
	$in .= "$sql;\n\\echo __done__\n";
	$apr->pump until $out =~ /__done__/;
	$out =~ s/__done__\n?//;
	return $out;
}

my $c = AgentGate::ProxyClient->new(port => $s->proxy_port);
my $r = $c->login($s->token(sub => 'approval-bench'), database => $s->db);
die "login failed: $r->{error}{M}\n" unless $r->{ok};

my @lat;
for my $i (1 .. $rounds)
{
	$c->send_message('Q', "DELETE FROM bench_t WHERE id = $i RETURNING extract(epoch FROM clock_timestamp())\0");
	my $id = '';
	for (1 .. 5000)
	{
		($id) = approver('SELECT max(id) FROM agentgate.pending_approvals') =~ /(\d+)/;
		last if $id;
		usleep(1000);
	}
	die "round $i: no waiting request\n" unless $id;
	my $before = approver("BEGIN; SELECT agentgate.approve($id) \\g /dev/null\n"
		  . "SELECT extract(epoch FROM clock_timestamp())");
	approver('COMMIT');
	my @m;
	while (1)
	{
		my ($t, $b) = $c->read_message(30);
		die "round $i: connection lost\n" unless defined $t;
		push @m, [ $t, $b ];
		last if $t eq 'Z';
	}
	my ($e) = grep { $_->[0] eq 'E' } @m;
	die "round $i: refused: " . AgentGate::ProxyClient::error_fields($e->[1])->{M} . "\n" if $e;
	my $resumed = AgentGate::ProxyClient::first_value(@m);
	$before =~ s/\s+//g;
	push @lat, ($resumed - $before) * 1000;
}
@lat = sort { $a <=> $b } @lat;
printf "approval wake-up (approver COMMIT -> statement resumes), %d rounds: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
  scalar @lat, $lat[int(@lat * 0.50)], $lat[int(@lat * 0.99)], $lat[-1];
$apr->finish;
$c->close;
$s->stop;
