#!/usr/bin/env perl
# What one shared-pool window costs the server: on a single backend logged
# in as agentgate_pool, talking to PostgreSQL's pooler socket directly (no
# proxy, no PgBouncer), the backend's own CPU (from /proc) and the wall time
# per round of:
#
#   window         carrier + SELECT 1, then DISCARD ALL (what PgBouncer runs
#                  after each window): one transaction through the shared pool
#   carrier only   carrier + Sync, then DISCARD ALL
#   bound          SELECT 1 on a bound backend, inside one transaction block
#                  (the turn lasts to the next idle ReadyForQuery): the
#                  statement's own cost as a governed agent
#   superuser      SELECT 1, and SELECT 1 + DISCARD ALL, as a superuser
#
# with the carrier's identity always the same and cycling through 1,000
# identities, out of POOL_WINDOW_KNOWN registered ones (default 10,000: a
# cost that grows with the registry shows here).  Rounds per figure:
# POOL_WINDOW_ROUNDS (default 4000).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IO::Socket::UNIX;
use Time::HiRes qw(time);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $n = $ENV{POOL_WINDOW_ROUNDS} || 4000;
my $ids = 1000;
my $known = $ENV{POOL_WINDOW_KNOWN} || 10000;
$known = $ids if $known < $ids;

my $s = AgentGate::Stack->new(name => 'pool-window');
$s->start;
$s->admin_psql("SELECT count(agentgate.register('pw-' || g)) FROM generate_series(1, $known) g");
my @roles = split /\n/, $s->admin_psql("SELECT role_name FROM agentgate.agents WHERE identity LIKE 'pw-%'"
	  . " ORDER BY identity LIMIT $ids");
my %stamp = map { split /\|/ } split /\n/, $s->admin_psql(
	"SELECT r || '|' || (agentgate.session_stamp(r)).stamp FROM unnest(ARRAY['"
	  . join("','", @roles) . "']::name[]) r");

# A protocol client of PostgreSQL's pooler socket (where the extension
# admits agentgate_pool), with the backend's pid for its CPU.
sub backend
{
	my ($user) = @_;
	my $sock = IO::Socket::UNIX->new(Peer => $s->pg_socket_dir . '/.s.PGSQL.' . $s->pg_port)
	  or die "connect: $!\n";
	my $c = bless { sock => $sock, buf => '', tls => 0 }, 'AgentGate::ProxyClient';
	my $r = $c->login('', user => $user, database => $s->db, application_name => 'agentgate');
	die "login as $user: $r->{error}{M}\n" unless $r->{ok};
	$c->{pid} = $r->{pid};
	return $c;
}

sub msg { return $_[0] . pack('N', 4 + length $_[1]) . $_[1]; }

# the proxy's carrier, as docs/proxy.md describes it
sub carrier
{
	my ($role) = @_;
	my $st = $stamp{$role};
	return msg('P', "\0CALL agentgate.assume(\$1, \$2)\0" . pack('n', 0))
	  . msg('B', "\0\0" . pack('nn', 0, 2) . pack('N', length $role) . $role
		  . pack('N', length $st) . $st . pack('n', 0))
	  . msg('E', "\0" . pack('N', 0));
}

# Reads up to ReadyForQuery; dies on an error (every round must succeed).
sub ready
{
	my ($c) = @_;
	while (1)
	{
		my ($t, $b) = $c->read_message(20);
		die "connection closed\n" unless defined $t;
		die 'error: ' . AgentGate::ProxyClient::error_fields($b)->{M} . "\n" if $t eq 'E';
		return if $t eq 'Z';
	}
}

sub query { my ($c, $sql) = @_; $c->write_raw(msg('Q', "$sql\0")); ready($c); }

sub cpu
{
	open my $fh, '<', "/proc/$_[0]/stat" or die "no process $_[0]\n";
	my $l = <$fh>;
	$l =~ s/^.*\) //;
	my @f = split / /, $l;
	return ($f[11] + $f[12]) / 100;    # utime + stime, USER_HZ = 100
}

sub measure
{
	my ($what, $c, $round) = @_;
	my ($c0, $t0) = (cpu($c->{pid}), time);
	$round->($_) for 0 .. $n - 1;
	printf "%-62s %8.0f %8.0f\n", $what, 1e6 * (cpu($c->{pid}) - $c0) / $n, 1e6 * (time - $t0) / $n;
}

my $pool = backend('agentgate_pool');
my $su = backend('postgres');
printf "%d rounds each, one backend, %d identities registered; microseconds per round\n%-62s %8s %8s\n",
  $n, $known, '', 'CPU', 'wall';
for my $k (1, $ids)
{
	my $who = $k == 1 ? '1 identity' : "$k identities in turn";
	measure("window: carrier + SELECT 1, DISCARD ALL ($who)", $pool, sub {
		$pool->write_raw(carrier($roles[ $_[0] % $k ]) . msg('Q', "SELECT 1\0"));
		ready($pool);
		query($pool, 'DISCARD ALL');
	});
	measure("carrier only, DISCARD ALL ($who)", $pool, sub {
		$pool->write_raw(carrier($roles[ $_[0] % $k ]) . msg('S', ''));
		ready($pool);
		query($pool, 'DISCARD ALL');
	});
}
$pool->write_raw(carrier($roles[0]) . msg('Q', "BEGIN\0"));
ready($pool);
measure('bound: SELECT 1 in a transaction block, no reset', $pool, sub { query($pool, 'SELECT 1') });
query($pool, 'COMMIT');
query($pool, 'DISCARD ALL');
measure('superuser: SELECT 1', $su, sub { query($su, 'SELECT 1') });
measure('superuser: SELECT 1, DISCARD ALL', $su, sub { query($su, 'SELECT 1'); query($su, 'DISCARD ALL') });
$s->stop;
