# psycopg 3 (Debian's python3-psycopg) through the pooler port with its
# defaults: prepare_threshold = 5 on four connections of one identity
# (text and binary), pipeline mode (with a refusal in the middle), binary
# cursors, a refusal, conn.cancel(), LISTEN refused, and a reconnect with a
# refreshed token.  Debian's client packages are for /usr/bin/python3.
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;
use IPC::Run qw(run);

my $py = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $c = AgentGate::Clients->new(name => 'psycopg');
SKIP:
{
	skip 'python3-psycopg is not installed', 1 unless run([ $py, '-c', 'import psycopg' ], '2>', \my $e);
	my $r = $c->run_client([ $py, $c->top . '/test/clients/psycopg3_client.py' ]);
	is($r->{rc}, 0, "psycopg 3 program ran ($r->{secs} s)") or diag $r->{err};
	$c->report($r, 'psycopg 3',
		[qw(connect unnamed pipeline binary refusal refusal_in_pipeline cancel listen rotation)],
		named => [qw(named named_binary pipeline_named)]);
	$c->check_rotated('psycopg 3');
}
$c->finish;
done_testing();
