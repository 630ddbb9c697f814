# agentgate next to another module that uses every hook agentgate uses
# (test/modules/hookstack, built here, never installed), preloaded before
# and after agentgate: both modules' hooks run in both orders.
#
#  - agentgate: login gate (ClientAuthentication), policy on planned
#    statements, relations, calls and row counts (ExecutorStart,
#    ExecutorCheckPerms, object_access, ExecutorRun), utility statements
#    (ProcessUtility), revocation before policy, audit rows of statements
#    that ran and that failed (ExecutorEnd, emit_log, shared memory), a
#    refusal by the other module's post_parse_analyze hook recorded;
#  - hookstack: every one of its hooks counted in the same session, and its
#    fmgr private slot never changed by agentgate's fmgr hook (each hook
#    keeps its own state and passes the next one a slot of its own).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use Cwd qw(abs_path);

my $top = abs_path($ENV{AG_TOP} // '.');
my $moddir = "$top/test/modules/hookstack";
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
system('make', '-s', '-C', $moddir, "PG_CONFIG=$pg_config") == 0
  or BAIL_OUT('cannot build test/modules/hookstack');
my $hs = "$moddir/hookstack";

my @hooks = qw(shmem_request shmem_startup client_auth post_parse_analyze
  planner process_utility executor_start executor_run executor_finish
  executor_end check_perms object_access needs_fmgr fmgr emit_log);

for my $first ('agentgate', 'hookstack')
{
	my $libs = $first eq 'agentgate' ? "agentgate,$hs" : "$hs,agentgate";
	my $node = PostgreSQL::Test::Cluster->new("stack_$first");
	$node->init;
	my $sockdir = $node->host;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$libs'
agentgate.session_key = '$AgentGate::Node::SESSION_KEY'
agentgate.pooler_socket_directory = '$sockdir/elsewhere'
agentgate.require_session_stamp = off
agentgate.audit_flush_interval = 20ms
});
	$node->start;
	$node->safe_psql('postgres', qq{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
CREATE ROLE agent2 LOGIN IN ROLE agentgate_agent;
CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20) g;
GRANT ALL ON t TO agent1, agent2;
CREATE FUNCTION hookstack_count(text) RETURNS bigint
  AS '$hs' LANGUAGE C STRICT;
CREATE FUNCTION hookstack_probe(int) RETURNS int
  AS '$hs' LANGUAGE C STRICT;
CREATE FUNCTION blocked_fn() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
SELECT agentgate.block(commands => '{DELETE,TRUNCATE}', relation => 't', reason => 'stack: no deletes');
SELECT agentgate.block(commands => '{SELECT}', relation => 't', max_rows => 10, reason => 'stack: ten rows');
SELECT agentgate.block(functions => '{blocked_fn()}', reason => 'stack: blocked call');
ALTER ROLE agent2 NOLOGIN;
});
	my $name = "$first first";

	# ClientAuthentication: agentgate's login gate (the pooler's socket
	# directory is elsewhere), and the other module's hook before it
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT 1',
		extra_params => [ '-U', 'agent1' ]);
	like($err, qr/may connect only through the agentgate pooler/,
		"$name: agentgate's login gate runs");

	my $script = q{
SET SESSION AUTHORIZATION agent1;
SELECT sum(hookstack_probe(id)) AS probe FROM t WHERE id <= 3;
SELECT count(*) AS few FROM (SELECT id FROM t WHERE id <= 5) s;
DELETE FROM t WHERE id = 1;
TRUNCATE t;
SELECT blocked_fn();
SELECT id FROM t;
SELECT 1 AS hookstack_refuse_parse;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION agent2;
DELETE FROM t WHERE id = 2;
RESET SESSION AUTHORIZATION;
SELECT 'count ' || h || ' ' || hookstack_count(h) FROM unnest(ARRAY[
  'shmem', 'shmem_request', 'shmem_startup', 'client_auth', 'post_parse_analyze',
  'planner', 'process_utility', 'executor_start', 'executor_run',
  'executor_finish', 'executor_end', 'check_perms', 'object_access',
  'needs_fmgr', 'fmgr', 'emit_log', 'fmgr_slot_clobbered']) h;
};
	($ret, $out, $err) = $node->psql('postgres', $script, on_error_stop => 0);
	like($out, qr/^6$/m, "$name: a call through both fmgr hooks returns");
	like($out, qr/^5$/m, "$name: an allowed statement runs");
	like($err, qr/agentgate: DELETE on public\.t is not allowed/,
		"$name: policy decides a planned statement");
	like($err, qr/agentgate: TRUNCATE( TABLE)?( on \S+)? is not allowed/,
		"$name: policy decides a utility statement");
	like($err, qr/agentgate: call of blocked_fn\(\) is not allowed/,
		"$name: policy decides a call");
	like($err, qr/more than 10 rows is not allowed/,
		"$name: policy counts the rows a query returns");
	like($err, qr/hookstack: statement refused in post_parse_analyze/,
		"$name: the other module refuses in post_parse_analyze");
	like($err, qr/agent identity has been revoked/,
		"$name: a revoked agent is refused as revoked, before policy");
	unlike($err, qr/fmgr private slot changed/,
		"$name: agentgate leaves the other module's fmgr slot alone");

	my %count = $out =~ /^count (\S+) (\d+)$/mg;
	is($count{shmem}, 1, "$name: the other module's shared memory is set up");
	for my $h (@hooks)
	{
		next if $h eq 'shmem_request' || $h eq 'shmem_startup';
		cmp_ok($count{$h} // 0, '>', 0, "$name: the other module's $h hook runs");
	}
	is($count{fmgr_slot_clobbered}, 0, "$name: its fmgr slot is never changed");

	# audit: rows of what ran and of what was refused, by whom
	$node->safe_psql('postgres', 'SELECT agentgate.audit_flush()');
	my $rows = $node->safe_psql('postgres', q{
SELECT role_name || ' ' || coalesce(nullif(command_tag, ''), '-') || ' ' || decision || ' ' || coalesce(sqlstate, '-')
  FROM agentgate.audit_log WHERE role_name IN ('agent1', 'agent2') AND NOT nested
 ORDER BY ts, seq});
	like($rows, qr/^agent1 SELECT allowed -$/m, "$name: audit records a statement that ran");
	like($rows, qr/^agent1 DELETE blocked 42501$/m, "$name: audit records a refusal as blocked");
	like($rows, qr/^agent1 TRUNCATE TABLE blocked 42501$/m, "$name: audit records a refused utility statement");
	like($rows, qr/^agent1 (SELECT|-) error 42501$/m,
		"$name: audit records the other module's refusal as an error");
	like($rows, qr/^agent2 DELETE error 28000$/m,
		"$name: audit records a revoked agent's statement as an error");

	$node->stop;
}

done_testing();
