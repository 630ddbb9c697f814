# node-postgres (npm "pg", pinned) through the pooler port with default
# settings: a Pool of several connections of one identity, parameterized
# and named queries, a refusal, a cancel request, LISTEN refused, and a
# token refresh through the password function.
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;

my $c = AgentGate::Clients->new(name => 'node-pg');
SKIP:
{
	my ($mods, $why) = $c->npm_modules(pg => '8.23.1');
	skip "node-postgres not available: $why", 1 unless $mods;
	my $r = $c->run_client([ 'node', $c->top . '/test/clients/node_pg.js' ], env => { NODE_PATH => $mods });
	is($r->{rc}, 0, "node-postgres program ran ($r->{secs} s)") or diag $r->{err};
	$c->report($r, 'node-postgres', [qw(connect unnamed refusal after_refusal cancel listen rotation)],
		named => [qw(named named_table)]);
	$c->check_rotated('node-postgres');
}
$c->finish;
done_testing();
