# The audit writer commits one batch per flush interval under a steady
# load below a quarter of the ring -- not one per wakeup.  Wakeups meant
# only for freeing slots (its own WAL-flush timer, backends appending while
# committed slots wait for that flush) used to start batches too: one
# transaction for every few milliseconds of records, and a signal per
# statement.  Batches are counted by the transaction ids they consume
# (read-only statements consume none).  Every statement still has its row.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;

my $node = AgentGate::Node::new('batching', q{
agentgate.audit_ring_slots = 8192
agentgate.audit_flush_interval = 1000ms
});
my $sockdir = $node->host;
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
});
my $stamp = $node->safe_psql('postgres', "SELECT (agentgate.session_stamp('agent1')).stamp");
# one audited statement through the writer first: by then it has finished
# its start-up work (partitions, gap accounting), which takes transactions
$node->safe_psql('postgres', 'SELECT 1; SELECT agentgate.audit_flush()',
	connstr => $node->connstr('postgres') . " user=agent1 application_name=$stamp");

my $script = $node->basedir . '/select1.sql';
open my $fh, '>', $script or die $!;
print $fh "SELECT 1;\n";
close $fh;

my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
my $xid0 = $node->safe_psql('postgres', 'SELECT txid_current()');
# 2 clients at 250 statements/s each for 4 s: about 500 records per
# interval, far below a quarter of the ring (2,048)
local $ENV{PGAPPNAME} = $stamp;
my @cmd = ('pgbench', '-n', '-c', 2, '-j', 2, '-R', 500, '-T', 4,
	'-f', $script, '-h', $sockdir, '-p', $node->port, '-U', 'agent1', 'postgres');
my ($bout, $berr) = ('', '');
IPC::Run::run(\@cmd, '>', \$bout, '2>', \$berr) or die "pgbench: $berr";
my ($done) = $bout =~ /number of transactions actually processed: (\d+)/;
delete $ENV{PGAPPNAME};
my $xid1 = $node->safe_psql('postgres', 'SELECT txid_current()');
my $batches = $xid1 - $xid0 - 1;

ok($done > 1000, "load ran ($done statements)");
cmp_ok($batches, '>=', 1, "the writer committed ($batches batches)");
cmp_ok($batches, '<=', 10, 'about one batch per flush interval, not one per wakeup');

$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM agentgate.audit_log WHERE role_name = 'agent1' AND statement = 'SELECT \$1' AND ts >= '$t0'"
	),
	$done,
	'every statement has its row');

$node->stop;
done_testing();
