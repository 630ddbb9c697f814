# The audit writer creates the extension in the audit database
# (agentgate.audit_create_extension) without racing a DBA who runs
# CREATE EXTENSION agentgate there at the same moment: the DBA's statement
# finds the extension the writer created ("already exists"; a notice with
# IF NOT EXISTS), never a duplicate key on pg_namespace.
#
# The writer is held in the middle of its CREATE EXTENSION by a lock on
# pg_type (the script creates types), the DBA's statement starts then, and
# the lock is released.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use Time::HiRes qw(usleep);

my $node = AgentGate::Node::new('create_ext', qq{
agentgate.audit_database = 'auditdb'
agentgate.audit_create_extension = off
});
$node->safe_psql('postgres', 'CREATE DATABASE auditdb');

sub writer_waiting_on
{
	my ($rel) = @_;
	for (1 .. 200)
	{
		my $n = $node->safe_psql('postgres', qq{
			SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			 WHERE a.backend_type = 'agentgate audit writer'
			   AND NOT l.granted AND l.relation = '$rel'::regclass});
		return 1 if $n > 0;
		usleep(50_000);
	}
	return 0;
}

for my $variant ('CREATE EXTENSION agentgate', 'CREATE EXTENSION IF NOT EXISTS agentgate')
{
	# the writer looks for the extension when it starts: drop it, restart it
	$node->safe_psql('postgres', 'ALTER SYSTEM SET agentgate.audit_create_extension = off');
	$node->reload;
	$node->safe_psql('auditdb', 'DROP EXTENSION IF EXISTS agentgate CASCADE');
	$node->safe_psql('postgres', q{
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		 WHERE backend_type = 'agentgate audit writer'});
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'agentgate audit writer' AND datname = 'auditdb'});

	# hold the writer once it has started creating the extension
	my $blocker = $node->background_psql('auditdb');
	$blocker->query_safe('BEGIN; LOCK TABLE pg_catalog.pg_type IN SHARE MODE;');
	$node->safe_psql('postgres', 'ALTER SYSTEM SET agentgate.audit_create_extension = on');
	$node->reload;
	ok(writer_waiting_on('pg_type'), "the writer is creating the extension ($variant)");

	# the DBA's statement starts while the writer is in the middle of it
	my $dba = $node->background_psql('auditdb', on_error_stop => 0);
	$dba->query_until(qr/started/, "\\echo started\n$variant;\n\\echo done\n");
	usleep(300_000);
	$blocker->query_safe('COMMIT');
	$blocker->quit;
	$dba->query('SELECT 1');
	$dba->quit;
	unlike($dba->{stderr}, qr/duplicate key/, "no duplicate key ($variant)");
	if ($variant =~ /IF NOT EXISTS/)
	{
		unlike($dba->{stderr}, qr/ERROR/, 'IF NOT EXISTS succeeds');
	}
	else
	{
		like($dba->{stderr}, qr/extension "agentgate" already exists/,
			'the DBA is told the extension exists');
	}
	is($node->safe_psql('auditdb',
		"SELECT count(*) FROM pg_extension WHERE extname = 'agentgate'"), '1',
		'the extension is there');
}

# and the writer writes there
$node->safe_psql('auditdb', q{
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
});
$node->safe_psql('postgres', 'CREATE EXTENSION agentgate');
$node->psql('postgres', 'SELECT 1', extra_params => [ '-U', 'agent1' ]);
$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
ok($node->safe_psql('auditdb',
	"SELECT count(*) FROM agentgate.audit_log WHERE role_name = 'agent1'") >= 1,
	'rows reach the audit database');

$node->stop;
done_testing();
