#!/usr/bin/env perl
# How fast a revocation stops an agent that is already connected.
#
# For each round a fresh identity opens two sessions through the proxy
# (TLS, PgBouncer transaction pooling).  A DBA's persistent connection runs
# agentgate.revoke(); from the moment that call returns (it has committed)
# we measure
#   - refused: one session sends its next statement at once; time until it
#     gets an error or its connection is closed, whichever comes first;
#   - closed:  the other, idle session; time until the proxy has closed it.
# Medians and maxima over the rounds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IPC::Run;
use Time::HiRes qw(time);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $rounds = $ENV{BENCH_ROUNDS} && $ENV{BENCH_ROUNDS} > 3 ? $ENV{BENCH_ROUNDS} : 20;

my $s = AgentGate::Stack->new(name => 'revocation');
$s->start;

# A DBA session kept open, so each revoke is one round trip.
my ($in, $out, $err) = ('', '', '');
my $bindir = $ENV{PG_BINDIR} || do { my $d = `pg_config --bindir`; chomp $d; $d };
my $dba = IPC::Run::start([ "$bindir/psql", '-X', '-q', '-A', '-t', '-h', $s->pg_socket_dir,
	'-p', $s->pg_port, '-U', 'postgres', '-d', $s->db ], \$in, \$out, \$err);

sub dba
{
	my ($sql) = @_;
	$out = '';
	$in .= "$sql;\n\\echo __done__\n";
	$dba->pump until $out =~ /__done__/;
	return $out;
}

my (@refused, @closed);
for my $i (1 .. $rounds)
{
	my $tok = $s->token(sub => "rev-$i");
	my @c = map {
		my $c = AgentGate::ProxyClient->new(port => $s->proxy_port);
		my $r = $c->login($tok, database => $s->db);
		die "login failed: $r->{error}{M}\n" unless $r->{ok};
		$c->query('SELECT 1');
		$c
	} 1 .. 2;

	dba("SELECT agentgate.revoke('rev-$i', 'bench')");
	my $t0 = time;
	$c[0]->send_message('Q', "SELECT 1\0");
	while (1)
	{
		my ($t, $b) = $c[0]->read_message(5);
		if (!defined $t || $t eq 'E')
		{
			push @refused, time - $t0;
			last;
		}
		die "statement after revoke() succeeded\n" if $t eq 'Z';
	}
	$c[1]->wait_closed(5) or die "idle session not closed within 5 s\n";
	push @closed, time - $t0;
	$_->close for @c;
}
$in .= "\\q\n";
$dba->finish;

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }
sub max { my @v = sort { $a <=> $b } @_; return $v[-1]; }

printf "revocation of a live agent through proxy + PgBouncer, %d rounds\n", $rounds;
printf "%-44s %10s %10s\n", '', 'median ms', 'max ms';
printf "%-44s %10.2f %10.2f\n", 'revoke() returned -> next statement refused', 1000 * median(@refused), 1000 * max(@refused);
printf "%-44s %10.2f %10.2f\n", 'revoke() returned -> idle connection closed', 1000 * median(@closed), 1000 * max(@closed);
$s->stop;
