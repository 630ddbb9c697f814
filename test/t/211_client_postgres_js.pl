# postgres.js (npm "postgres", pinned) through the pooler port: with its
# defaults (named statements for every query) and with prepare: false;
# four reserved connections of one identity, a refusal, a cancel, LISTEN
# refused, and a token refresh through its pass function.
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;

my $c = AgentGate::Clients->new(name => 'postgres-js');
SKIP:
{
	my ($mods, $why) = $c->npm_modules(postgres => '3.4.10');
	skip "postgres.js not available: $why", 1 unless $mods;
	my $r = $c->run_client([ 'node', $c->top . '/test/clients/postgres_js.js' ], env => { NODE_PATH => $mods });
	is($r->{rc}, 0, "postgres.js program ran ($r->{secs} s)") or diag $r->{err};
	my @checks = qw(connect parallel refusal cancel listen);
	$c->report($r, 'postgres.js', [ @checks, 'rotation' ], named => [ map { "default_$_" } @checks ]);
	$c->check_rotated('postgres.js');
}
$c->finish;
done_testing();
