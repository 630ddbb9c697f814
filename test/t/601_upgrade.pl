# ALTER EXTENSION agentgate UPDATE from 0.1.0, with data in the tables,
# gives the same objects as a fresh installation of the current version,
# and keeps the data: DBA rules (still enforced), agents, group mappings,
# audit rows and session summaries (written by the new server before the
# update, and after it).  The installed 0.1.0 script is the one released.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;

my $node = AgentGate::Node::new('upgrade', q{
agentgate.audit_database = 'up'
agentgate.audit_flush_interval = 100ms
agentgate.require_session_stamp = off
});
my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'agentgate'});
isnt($current, '0.1.0', "the current version ($current) is not 0.1.0");

$node->safe_psql('postgres', 'CREATE DATABASE up');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('up', q{
CREATE EXTENSION agentgate VERSION '0.1.0';
CREATE ROLE app_group NOLOGIN;
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 10) g;
SELECT agentgate.block(commands => '{DELETE}', relation => 'orders', reason => 'append-only');
INSERT INTO agentgate.group_roles (group_name, role_name) VALUES ('analysts', 'app_group');
SELECT agentgate.register('ci-bot');
});
my $role = $node->safe_psql('up', q{SELECT role_name FROM agentgate.agents WHERE identity = 'ci-bot'});
$node->safe_psql('up', "GRANT SELECT, DELETE ON orders TO $role");
is($node->safe_psql('up', q{SELECT extversion FROM pg_extension WHERE extname = 'agentgate'}),
	'0.1.0', 'installed as 0.1.0');

# the agent works against the old schema with the new server
my $agent = $node->connstr('up') . " user=$role";
$node->safe_psql('up', 'SELECT count(*) FROM orders', connstr => $agent);
my ($rc, $out, $err) = $node->psql('up', 'DELETE FROM orders WHERE id = 1', connstr => $agent);
like($err, qr/not allowed/, 'the DBA rule is enforced before the update');

$node->safe_psql('up', 'ALTER EXTENSION agentgate UPDATE');
is($node->safe_psql('up', q{SELECT extversion FROM pg_extension WHERE extname = 'agentgate'}),
	$current, "updated to $current");
$node->safe_psql('fresh', 'CREATE EXTENSION agentgate');

# The same objects, defined the same way, as a fresh installation.
my %queries = (
	'member objects' => q{
		SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
		 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'agentgate')
		 ORDER BY 1},
	'functions' => q{
		SELECT p.oid::regprocedure, pg_get_functiondef(p.oid), p.proacl,
		       p.provolatile, p.proparallel, p.prosecdef, p.proconfig
		  FROM pg_proc p WHERE p.pronamespace = 'agentgate'::regnamespace
		 ORDER BY 1::text},
	'columns' => q{
		SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
		       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
		  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		 WHERE c.relnamespace = 'agentgate'::regnamespace AND a.attnum > 0
		   AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'c')
		   AND c.relname !~ '^audit_log_[0-9]'
		 ORDER BY 1, 3},
	'relations' => q{
		SELECT relname, relkind, relacl, relrowsecurity FROM pg_class
		 WHERE relnamespace = 'agentgate'::regnamespace AND relname !~ '^audit_log_[0-9]'
		   AND relkind <> 'i'
		 ORDER BY 1},
	'constraints' => q{
		SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint
		 WHERE connamespace = 'agentgate'::regnamespace AND conrelid::regclass::text !~ 'audit_log_[0-9]'
		 ORDER BY 1::text, 2},
	'indexes' => q{
		SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i
		  JOIN pg_class c ON c.oid = i.indexrelid
		 WHERE c.relnamespace = 'agentgate'::regnamespace AND c.relname !~ '^audit_log_[0-9]'
		 ORDER BY 1},
	'views' => q{
		SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c
		 WHERE c.relnamespace = 'agentgate'::regnamespace AND c.relkind = 'v' ORDER BY 1},
	'triggers' => q{
		SELECT tgrelid::regclass, tgname, pg_get_triggerdef(oid) FROM pg_trigger
		 WHERE NOT tgisinternal AND tgrelid IN
		   (SELECT oid FROM pg_class WHERE relnamespace = 'agentgate'::regnamespace)
		 ORDER BY 1::text, 2},
	'types' => q{
		SELECT t.typname, t.typtype, format_type(t.oid, NULL) FROM pg_type t
		 WHERE t.typnamespace = 'agentgate'::regnamespace AND t.typname !~ '^_?audit_log_[0-9]'
		 ORDER BY 1},
	'baseline rules' => q{
		SELECT priority, commands, relation, schema, columns, functions, condition,
		       max_rows, fingerprint, action, reason, enabled
		  FROM agentgate.rules WHERE baseline ORDER BY reason, commands::text},
	'dumped tables' => q{
		SELECT array(SELECT u.c::regclass::text || ' ' || u.w
		               FROM unnest(extconfig, extcondition) AS u(c, w) ORDER BY 1)
		  FROM pg_extension WHERE extname = 'agentgate'},
	'roles' => q{
		SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE rolname LIKE 'agentgate\_%' ORDER BY 1},
);
for my $what (sort keys %queries)
{
	my $up = $node->safe_psql('up', $queries{$what});
	my $fresh = $node->safe_psql('fresh', $queries{$what});
	ok(length($fresh) > 0, "$what: the fresh installation has some");
	# the lines that differ, each side
	my (%u, %f);
	$u{$_}++ for split /\n/, $up;
	$f{$_}++ for split /\n/, $fresh;
	my @only_up = grep { ($u{$_} // 0) > ($f{$_} // 0) } sort keys %u;
	my @only_fresh = grep { ($f{$_} // 0) > ($u{$_} // 0) } sort keys %f;
	is(join("\n", (map { "updated only: $_" } @only_up), (map { "fresh only:   $_" } @only_fresh)),
		'', "$what: the same after the update as in a fresh installation");
}

# the data is kept and works
is($node->safe_psql('up', q{SELECT count(*) FROM agentgate.rules WHERE NOT baseline AND reason = 'append-only'}),
	'1', 'the DBA rule is kept');
($rc, $out, $err) = $node->psql('up', 'DELETE FROM orders WHERE id = 2', connstr => $agent);
like($err, qr/not allowed/, 'and enforced after the update');
is($node->safe_psql('up', q{SELECT status FROM agentgate.agents WHERE identity = 'ci-bot'}),
	'active', 'the agent is kept');
is($node->safe_psql('up', q{SELECT role_name FROM agentgate.group_roles WHERE group_name = 'analysts'}),
	'app_group', 'the group mapping is kept');
$node->safe_psql('up', 'SELECT 42 AS after_update', connstr => $agent);
$node->poll_query_until('up',
	q{SELECT agentgate.audit_flush() IS NOT NULL AND count(*) > 0 FROM agentgate.audit_log WHERE statement LIKE 'SELECT $1 AS after_update%'})
  or die 'no audit row after the update';
cmp_ok($node->safe_psql('up', "SELECT count(*) FROM agentgate.audit_log WHERE role_name = '$role'"),
	'>=', 4, "the agent's statements from before and after the update are in the log");
cmp_ok($node->safe_psql('up', "SELECT count(*) FROM agentgate.audit_sessions WHERE role_name = '$role'"),
	'>=', 1, 'its session summary is there');

$node->stop;
done_testing();
