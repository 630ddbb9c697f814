#!/usr/bin/env perl
# pgbench -S through each layer of the data path, measured side by side:
#
#   direct      superuser straight to PostgreSQL (unix socket)
#   agent       an agent role straight to PostgreSQL: the extension governs it
#   pgbouncer   the agent role through PgBouncer (transaction pooling), on
#               its unix socket
#   pgbouncer_tls  the same, over TCP with TLS (PgBouncer's own TLS, the
#               proxy's certificate): what the proxy path adds beyond
#               encryption
#   tls_floor   the agent through bench/tls_floor.c + PgBouncer: the least
#               any TLS-terminating hop costs here (one epoll loop that only
#               copies bytes; no token, no framing, no checks)
#   proxy       the agent through agentgate-proxy (TLS, token) + PgBouncer
#   pgbouncer_ids, proxy_ids   8 identities x 1 connection each, via
#               PgBouncer alone and via the proxy
#   shared, shared_ids   the proxy with shared_pool = on (a second stack:
#               one PgBouncer pool of agentgate_pool, DISCARD ALL after
#               every transaction): 1 identity x 8 connections and
#               8 identities x 1 connection
#
# Rounds are interleaved (direct, agent, pgbouncer, ..., proxy, direct, ...) so
# drift on a shared machine hits every path alike; the median TPS of each
# path and its ratio to direct are printed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use IPC::Run qw(run start);
use File::Temp qw(tempdir);

$ENV{AG_TOP} //= "$FindBin::Bin/..";
my $seconds = $ENV{BENCH_SECONDS} || 10;
my $rounds  = $ENV{BENCH_ROUNDS}  || 3;
my $clients = $ENV{BENCH_CLIENTS} || 8;

my $s = AgentGate::Stack->new(name => 'bench', fsync => 1, pgbouncer_tls => 1,
	pg_conf => "max_connections = 300\nshared_buffers = 256MB\n",
	pgbouncer_conf => "default_pool_size = $clients\n");
$s->start;
my $bindir = $ENV{PG_BINDIR} || do { my $d = `pg_config --bindir`; chomp $d; $d };
my $pgbench = "$bindir/pgbench";

# The shared pool: every agent in one PgBouncer pool (issue 15 item 3 asks
# for 1 identity x 8 >= 0.95x 8 identities x 1, in the same run).
my $sp = AgentGate::Stack->new(name => 'bench-shared', fsync => 1,
	pg_conf => "max_connections = 300\nshared_buffers = 256MB\n",
	proxy_conf => "shared_pool = on\n",
	pgbouncer_conf => "server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\nserver_check_query = RESET ALL\n"
	  . "default_pool_size = $clients\nmax_db_connections = $clients\n");
$sp->start;

my ($o, $e) = ("", "");
for my $st ($s, $sp)
{
	run([ $pgbench, "-i", '-q', '-s', '10', '-h', $st->pg_socket_dir, '-p', $st->pg_port, '-U', 'postgres', $st->db ],
		">", \$o, "2>", \$e) or die "pgbench -i failed: $e";
	$st->admin_psql('GRANT SELECT ON pgbench_accounts, pgbench_branches TO agentgate_agent');
}

# The agent's role exists once it has logged in through the proxy.
my $tok = $s->token(sub => 'bench-agent', ttl => 3600);
my ($rc, $role, $err) = $s->agent_psql($tok, 'SELECT session_user');
die "agent login failed: $err" if $rc;

# Straight to PostgreSQL or PgBouncer, the agent role must carry a session
# stamp as the proxy would put it in application_name.
my $stamped = { PGAPPNAME => 'bench ' . $s->admin_psql("SELECT (agentgate.session_stamp('$role')).stamp") };
my %paths = (
	direct    => { env => {}, args => [ '-h', $s->pg_socket_dir, '-p', $s->pg_port, '-U', 'postgres' ] },
	agent     => { env => $stamped, args => [ '-h', $s->pg_socket_dir, '-p', $s->pg_port, '-U', $role ] },
	pgbouncer => { env => $stamped, args => [ '-h', $s->pgbouncer_socket_dir, '-p', $s->pgbouncer_port, '-U', $role ] },
	pgbouncer_tls => { env => { %$stamped, PGSSLMODE => 'require' },
		args => [ '-h', '127.0.0.1', '-p', $s->pgbouncer_port, '-U', $role ] },
	proxy     => { env => { PGPASSWORD => $tok, PGSSLMODE => 'require' },
		args => [ '-h', '127.0.0.1', '-p', $s->proxy_port, '-U', 'agent' ] },
);
# the control hop: built here, listening next to the proxy
my $floor_dir = tempdir(CLEANUP => 1);
my $floor_port = $s->proxy_port + 7;
my $cc = $ENV{CC} || 'cc';
run([ $cc, '-O2', '-o', "$floor_dir/tls_floor", "$FindBin::Bin/tls_floor.c", '-lssl', '-lcrypto' ],
	'>', \$o, '2>', \$e) or die "building tls_floor failed: $e";
my $floor = start([ "$floor_dir/tls_floor", $floor_port, $s->ca_file, $s->tls_key_file,
	$s->pgbouncer_socket_dir . '/.s.PGSQL.' . $s->pgbouncer_port ]);
$paths{tls_floor} = { env => { %$stamped, PGSSLMODE => 'require' },
	args => [ '-h', '127.0.0.1', '-p', $floor_port, '-U', $role ] };

# One connection per identity, as when each agent has its own: N pgbench
# processes of one client each, their TPS summed.  Each identity has its
# own PgBouncer pool, so no transaction lands on a server connection that
# another client's session stamp left behind.
my (@ids_proxy, @ids_pgb);
for my $i (1 .. $clients)
{
	my $t = $s->token(sub => "bench-agent-$i", ttl => 3600);
	my ($rc2, $r2, $err2) = $s->agent_psql($t, 'SELECT session_user');
	die "agent login failed: $err2" if $rc2;
	push @ids_proxy, { env => { PGPASSWORD => $t, PGSSLMODE => 'require' },
		args => [ '-h', '127.0.0.1', '-p', $s->proxy_port, '-U', 'agent' ] };
	push @ids_pgb, { env => { PGAPPNAME => 'bench ' . $s->admin_psql("SELECT (agentgate.session_stamp('$r2')).stamp") },
		args => [ '-h', $s->pgbouncer_socket_dir, '-p', $s->pgbouncer_port, '-U', $r2 ] };
}
$paths{pgbouncer_ids} = { multi => \@ids_pgb };
$paths{proxy_ids} = { multi => \@ids_proxy };

# the shared pool's two paths, on its own stack
my $shared_args = [ '-h', '127.0.0.1', '-p', $sp->proxy_port, '-U', 'agent' ];
my $stok = $sp->token(sub => 'bench-agent', ttl => 3600);
($rc, undef, $err) = $sp->agent_psql($stok, 'SELECT 1');
die "agent login (shared pool) failed: $err" if $rc;
$paths{shared} = { env => { PGPASSWORD => $stok, PGSSLMODE => 'require' }, args => $shared_args, stack => $sp };
my @ids_shared;
for my $i (1 .. $clients)
{
	my $t = $sp->token(sub => "bench-agent-$i", ttl => 3600);
	push @ids_shared, { env => { PGPASSWORD => $t, PGSSLMODE => 'require' }, args => $shared_args };
}
$paths{shared_ids} = { multi => \@ids_shared, stack => $sp };

my @order = qw(direct agent pgbouncer pgbouncer_tls tls_floor proxy pgbouncer_ids proxy_ids shared shared_ids);
my %tps;
my $mix = '';

for my $r (1 .. $rounds)
{
	for my $p (@order)
	{
		if ($r == $rounds && $p eq 'proxy')
		{
			# the statement mix of the last proxy run is counted below
			$s->admin_psql('SELECT agentgate.audit_flush()');
			$s->admin_psql('TRUNCATE agentgate.audit_log');
		}
		my $t = 0;
		if ($paths{$p}{multi})
		{
			my @h;
			for my $one (@{ $paths{$p}{multi} })
			{
				local %ENV = (%ENV, %{ $one->{env} });
				my ($out, $err) = ('', '');
				push @h, [ start([ $pgbench, '-S', '-n', '-c', 1, '-j', 1, '-T', $seconds,
					@{ $one->{args} }, ($paths{$p}{stack} // $s)->db ], '>', \$out, '2>', \$err), \$out, \$err ];
			}
			for my $x (@h)
			{
				$x->[0]->finish or die "pgbench ($p) failed: ${$x->[2]}${$x->[1]}";
				$t += pgbench_tps(${ $x->[1] });
			}
		}
		else
		{
			local %ENV = (%ENV, %{ $paths{$p}{env} });
			my ($out, $err) = ('', '');
			run([ $pgbench, '-S', '-n', '-c', $clients, '-j', 2, '-T', $seconds,
				@{ $paths{$p}{args} }, ($paths{$p}{stack} // $s)->db ], '>', \$out, '2>', \$err)
			  or die "pgbench ($p) failed: $err$out";
			$t = pgbench_tps($out);
		}
		push @{ $tps{$p} }, $t;
		if ($r == $rounds && $p eq 'proxy')
		{
			$s->admin_psql('SELECT agentgate.audit_flush()');
			$mix = $s->admin_psql("SELECT string_agg(command_tag || ' ' || n, ', ' ORDER BY command_tag)"
				  . " FROM (SELECT command_tag, count(*) AS n FROM agentgate.audit_log"
				  . " WHERE role_name = '$role' GROUP BY 1) c");
		}
		printf "round %d %-13s %10.0f tps\n", $r, $p, $t;
	}
}

sub pgbench_tps
{
	my ($out) = @_;
	my ($t) = $out =~ /tps = ([\d.]+) \(without initial connection time\)/;
	($t) = $out =~ /tps = ([\d.]+)/ unless defined $t;
	return $t;
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ int(@v / 2) ]; }

my $base = median(@{ $tps{direct} });
print "\npgbench -S, scale 10, $clients clients, ${seconds}s x $rounds interleaved rounds (median)\n";
printf "%-44s %10s %8s\n", 'path', 'tps', 'ratio';
my %label = (
	direct    => 'direct PostgreSQL (superuser)',
	agent     => 'PostgreSQL + agentgate, as an agent role',
	pgbouncer => 'via PgBouncer (transaction pool)',
	pgbouncer_tls => 'via PgBouncer, TCP + TLS',
	tls_floor => 'via a bare TLS relay (control) + PgBouncer',
	pgbouncer_ids => "via PgBouncer, $clients identities x 1 conn.",
	proxy_ids => "via proxy + PgBouncer, $clients identities x 1",
	proxy     => 'via agentgate-proxy (TLS) + PgBouncer',
	shared    => 'shared pool, 1 identity x 8 conn.',
	shared_ids => "shared pool, $clients identities x 1 conn.",
);
for my $p (@order)
{
	my $m = median(@{ $tps{$p} });
	printf "%-44s %10.0f %8.2f\n", $label{$p}, $m, $m / $base;
}
printf "%-44s %19.2f\n", 'proxy+PgBouncer / PgBouncer alone',
	median(@{ $tps{proxy} }) / median(@{ $tps{pgbouncer} });
printf "%-44s %19.2f\n", 'proxy+PgBouncer / PgBouncer with TLS',
	median(@{ $tps{proxy} }) / median(@{ $tps{pgbouncer_tls} });
printf "%-44s %19.2f\n", 'bare TLS relay+PgBouncer / PgBouncer alone',
	median(@{ $tps{tls_floor} }) / median(@{ $tps{pgbouncer} });

# On a shared machine the load drifts between rounds; the ratio within each
# round (paths measured seconds apart) is steadier than a ratio of medians.
printf "%-44s %19.2f\n", "proxy / PgBouncer, $clients identities x 1 conn.",
	median(@{ $tps{proxy_ids} }) / median(@{ $tps{pgbouncer_ids} });
for my $vs (qw(pgbouncer pgbouncer_tls tls_floor))
{
	my @r = map { $tps{proxy}[$_] / $tps{$vs}[$_] } 0 .. $rounds - 1;
	printf "%-44s %19.2f  (rounds: %s)\n", "median of per-round proxy / $vs",
		median(@r), join(' ', map { sprintf '%.2f', $_ } @r);
}
# What reached the server through the proxy: PgBouncer re-sends SET
# application_name whenever a transaction lands on a server connection last
# used by another client (each connection has its own session stamp).
{
	my @r = map { $tps{proxy_ids}[$_] / $tps{tls_floor}[$_] } 0 .. $rounds - 1;
	printf "%-44s %19.2f  (rounds: %s)\n", "median of per-round proxy_ids / tls_floor",
		median(@r), join(' ', map { sprintf '%.2f', $_ } @r);
}
# Parallel subagents of one identity against as many identities with one
# connection each, through the same proxy, in the same rounds (issue goal:
# at least 0.95).
{
	my @r = map { $tps{proxy}[$_] / $tps{proxy_ids}[$_] } 0 .. $rounds - 1;
	printf "%-44s %19.2f  (rounds: %s)\n", "1 identity x $clients / $clients identities x 1",
		median(@r), join(' ', map { sprintf '%.2f', $_ } @r);
}
# The same with the shared pool, where every connection of every identity
# is a client of one PgBouncer pool.
{
	my @r = map { $tps{shared}[$_] / $tps{shared_ids}[$_] } 0 .. $rounds - 1;
	printf "%-44s %19.2f  (rounds: %s)\n", "shared pool: 1 identity x $clients / $clients x 1",
		median(@r), join(' ', map { sprintf '%.2f', $_ } @r);
	@r = map { $tps{shared_ids}[$_] / $tps{proxy_ids}[$_] } 0 .. $rounds - 1;
	printf "%-44s %19.2f  (rounds: %s)\n", "shared pool / per-identity pools, $clients x 1",
		median(@r), join(' ', map { sprintf '%.2f', $_ } @r);
}
print "\nstatements the server ran in the last proxy run (one identity, $clients connections): $mix\n";
$floor->kill_kill;
$sp->stop;
$s->stop;
