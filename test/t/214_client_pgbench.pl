# pgbench through the pooler port, 8 clients of one identity: simple and
# extended (unnamed statement) query modes, -M prepared (named statements:
# TODO until the proxy keeps them), a refusal that aborts the client with
# the extension's message, and a second run with a refreshed token.
# (pgbench has no cancel; the other client tests cover cancel requests.)
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;
use IPC::Run qw(run timeout);

my $c = AgentGate::Clients->new(name => 'pgbench');
my $s = $c->stack;
my $base = $s->base;
my %env = $c->client_env;
AgentGate::Stack::_spew("$base/select.sql", "\\set id random(1, 100)\nSELECT name FROM items WHERE id = :id;\n");
AgentGate::Stack::_spew("$base/refused.sql", "DELETE FROM items;\n");

sub pgbench
{
	my ($token_file, @args) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGPASSWORD} = AgentGate::Stack::_slurp($token_file) =~ s/\s+\z//r;
	local $ENV{PGSSLMODE} = 'verify-full';
	local $ENV{PGSSLROOTCERT} = $env{AG_CA};
	local $ENV{PGCONNECT_TIMEOUT} = 10;
	run([ "$s->{bindir}/pgbench", '-n', '-h', $env{AG_HOST}, '-p', $env{AG_PORT}, '-U', 'agent', @args, $env{AG_DB} ],
		'<', \undef, '>', \$out, '2>', \$err, timeout(120));
	return ($? >> 8, $out, $err);
}

sub tps_ok
{
	my ($mode, $rc, $out, $err) = @_;
	my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($tps) = $out =~ /tps = ([\d.]+)/;
	my $ok = $rc == 0 && ($done // 0) == 8 * 50;
	ok($ok, "pgbench -M $mode -c 8: " . ($done // 0) . ' transactions' . ($tps ? ", $tps tps" : ''))
	  or diag "$out$err";
}

for my $mode (qw(simple extended))
{
	tps_ok($mode, pgbench($env{AG_TOKEN_FILE}, '-M', $mode, '-c', 8, '-j', 2, '-t', 50, '-f', "$base/select.sql"));
}
TODO:
{
	local $TODO = $c->named_supported ? undef
	  : 'named prepared statements through the proxy are not kept yet (PgBouncer 1.18 transaction pool; proxy work in progress)';
	tps_ok('prepared', pgbench($env{AG_TOKEN_FILE}, '-M', 'prepared', '-c', 8, '-j', 2, '-t', 50, '-f', "$base/select.sql"));
}
{
	my ($rc, $out, $err) = pgbench($env{AG_TOKEN_FILE}, '-c', 1, '-t', 1, '-f', "$base/refused.sql");
	isnt($rc, 0, 'a refused statement aborts the pgbench client');
	like($err, qr/agentgate: DELETE( without a restricting WHERE)? is not allowed/, 'with the extension\'s message') or diag $err;
	is($s->admin_psql('SELECT count(*) FROM items'), 100, 'nothing was deleted');
}
# the refreshed token: a new run logs in with it
tps_ok('extended', pgbench($env{AG_TOKEN_NEXT_FILE}, '-M', 'extended', '-c', 8, '-j', 2, '-t', 50, '-f', "$base/select.sql"));
$c->check_rotated('pgbench');
$c->finish;
done_testing();
