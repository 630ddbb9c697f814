# Live agent sessions that really logged in over the pooler's socket:
#  - session stamps: an unstamped session runs nothing; a new
#    agentgate.session_key invalidates live stamps at the next statement;
#  - revocation: with agentgate.terminate_revoked_sessions off, the next
#    statement of a live session (even one nested in a running loop) is
#    refused while the session stays connected; with it on (the default),
#    the role's backends are terminated right after the revocation
#    commits, a running statement included; other roles are untouched;
#  - agentgate.groups_claim: namespaced claim names and JSON pointers.
# Times from commit to refusal and to termination are printed (not
# asserted): commit time from track_commit_timestamp, refusal and exit
# times from the server's clock.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('live');
$node->init;
my $public  = $node->host;
my $private = PostgreSQL::Test::Utils::tempdir_short();
chmod 0700, $private;
my $port = $node->port;
my $key1 = 'tap-session-key-0123456789abcdef0123456789';
my $key2 = 'tap-session-key-rotated-abcdef0123456789ab';
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'agentgate'
agentgate.session_key = '$key1'
unix_socket_directories = '$public, $private'
agentgate.pooler_socket_directory = '$private'
track_commit_timestamp = on
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION agentgate;
	CREATE TABLE work (id int);
	GRANT SELECT, INSERT ON work TO agentgate_agent;
	CREATE ROLE regress_human LOGIN;
	GRANT SELECT ON work TO regress_human;
});
my $role = $node->safe_psql('postgres', q{SELECT agentgate.login('rita', '{}')});

sub stamp
{
	return $node->safe_psql('postgres', "SELECT (agentgate.session_stamp('$_[0]')).stamp");
}

# A psql session that logged in as $user over the private socket, with
# application_name as the proxy would send it ('' for none).
sub session
{
	my ($user, $app) = @_;
	my $conn = "host=$private port=$port dbname=postgres user=$user";
	$conn .= " application_name='$app'" if $app ne '';
	my $s = $node->background_psql('postgres', on_error_stop => 0,
		extra_params => ['-d', $conn]);
	$s->query_safe('\set VERBOSITY verbose');
	return $s;
}

# Runs $sql; returns (stdout, stderr) and clears stderr for the next one.
sub run
{
	my ($s, $sql) = @_;
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

sub backends_of
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE usename = '$_[0]'");
}

sub median
{
	my @v = sort { $a <=> $b } @_;
	return $v[ int(@v / 2) ];
}

# --- session stamps with a real login
my $st = stamp($role);
my $agent = session($role, "tap $st");
my ($out, $err) = run($agent, 'SELECT agentgate.session_id()');
is($out, (split /\./, $st)[1], 'stamped session: session_id() is the stamp\'s id');
($out, $err) = run($agent, 'SELECT count(*) FROM work');
is($err, '', 'stamped agent session runs statements');

my $bare = session($role, '');
($out, $err) = run($bare, 'SELECT 1');
like($err, qr/ERROR:  42501: agent session has no valid session stamp/,
	'unstamped agent session is refused (42501)');
($out, $err) = run($bare, "SET application_name = 'tap ag1.0123456789abcdef.0123456789abcdef'");
like($err, qr/agents may not set application_name without a valid session stamp/,
	'agent cannot install a forged stamp');
$bare->quit;

# a new key invalidates live stamps at their next statement
$node->safe_psql('postgres', "ALTER SYSTEM SET agentgate.session_key = '$key2'");
$node->reload;
my $refused = 0;
for (1 .. 100)
{
	($out, $err) = run($agent, 'SELECT 1');
	if ($err =~ /no valid session stamp/) { $refused = 1; last; }
	select(undef, undef, undef, 0.05);
}
ok($refused, 'after a key change and reload, the old stamp is refused');
$agent->quit;
$node->safe_psql('postgres', "ALTER SYSTEM SET agentgate.session_key = '$key1'");
$node->reload;
# (the key cannot be read back from SQL: a new connection gets the
# postmaster's reloaded configuration, so wait for the reload to land)
select(undef, undef, undef, 1.0);
is($node->safe_psql('postgres', "SHOW agentgate.session_key"), '********',
	'the key shows as a mask');

# --- revocation with terminate_revoked_sessions off: statements refused
my $dba = $node->background_psql('postgres', on_error_stop => 0);
$dba->query_safe('SET agentgate.terminate_revoked_sessions = off');
$agent = session($role, 'tap ' . stamp($role));
($out, $err) = run($agent, 'SELECT pg_backend_pid()');
my $agent_pid = $out;
$dba->query_safe(q{SELECT agentgate.revoke('rita', 'tap: leaked token')});
($out, $err) = run($agent, 'SELECT count(*) FROM work');
like($err, qr/ERROR:  28000: agent identity has been revoked/,
	'the first statement after revoke() returns is refused (28000)');
like($err, qr/HINT:  Ask a database administrator to resume the identity/, 'with a hint');
($out, $err) = run($agent, 'INSERT INTO work VALUES (1)');
like($err, qr/agent identity has been revoked/, 'and so is every later statement');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $agent_pid"),
	'1', 'the session itself stays connected (terminate_revoked_sessions off)');
$node->connect_fails(
	"host=$private port=$port dbname=postgres user=$role",
	'a new login of the revoked role is refused',
	expected_stderr => qr/is not permitted to log in/);
$dba->query_safe(q{SELECT agentgate.resume('rita')});
($out, $err) = run($agent, 'SELECT count(*) FROM work');
is($err, '', 'after resume() the same session goes on');

# Commit to refusal: the agent runs statements in a loop (each nested
# statement is checked); the DBA revokes; the loop's first refused
# statement is caught and its time reported.
my %refusal_us = (on => [], off => []);
for my $round (1 .. 10)
{
	# half the rounds without waiting for the WAL flush, to separate the
	# flush from the check itself
	my $sync = $round % 2 ? 'on' : 'off';
	$dba->query_safe("SET synchronous_commit = $sync");
	$agent->{stdin} .= q{DO $$ BEGIN
  LOOP PERFORM count(*) FROM work; END LOOP;
EXCEPTION WHEN invalid_authorization_specification THEN
  RAISE NOTICE 'refused at %', extract(epoch FROM clock_timestamp());
END $$;
\echo loop-done
};
	$agent->{run}->pump_nb;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $agent_pid AND state = 'active'")
	  or die 'agent loop did not start';
	my $xid = $dba->query_safe(
		q{BEGIN; SELECT agentgate.revoke('rita', 'timed'); SELECT txid_current(); COMMIT;});
	($xid) = $xid =~ /(\d+)\s*$/;
	pump_until($agent->{run}, $agent->{timeout}, \$agent->{stdout}, qr/loop-done/);
	my ($at) = $agent->{stderr} =~ /refused at ([0-9.]+)/;
	$agent->{stdout} = '';
	$agent->{stderr} = '';
	ok(defined $at, "round $round: the running loop's next statement was refused");
	my $us = $node->safe_psql('postgres',
		"SELECT round(($at - extract(epoch FROM pg_xact_commit_timestamp('$xid'::xid))) * 1e6)");
	push @{ $refusal_us{$sync} }, $us;
	$dba->query_safe(q{SELECT agentgate.resume('rita')});
}
$dba->query_safe('RESET synchronous_commit');
for my $sync ('on', 'off')
{
	my @v = @{ $refusal_us{$sync} };
	diag(sprintf('revoke() commit timestamp -> next refused statement of a live session (synchronous_commit %s): median %d us, max %d us (%d rounds)',
		$sync, median(@v), (sort { $b <=> $a } @v)[0], scalar @v));
}
$agent->quit;

# --- revocation with terminate_revoked_sessions on (the default)
$dba->query_safe('RESET agentgate.terminate_revoked_sessions');
my @kill_us;
for my $round (1 .. 3)
{
	my $busy = session($role, 'tap ' . stamp($role));
	my $idle = session($role, 'tap ' . stamp($role));
	my $human = $node->background_psql('postgres', on_error_stop => 0,
		extra_params => ['-d', "host=$private port=$port dbname=postgres user=regress_human"]);
	$busy->{stdin} .= "SELECT pg_sleep(120);\n";
	$busy->{run}->pump_nb;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = '$role' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'")
	  or die 'sleep did not start';
	is(backends_of($role), '2', "round $round: two live backends of the agent role");
	my $res = $dba->query(qq{
BEGIN; SELECT agentgate.revoke('rita', 'terminate'); SELECT txid_current(); COMMIT;
DO \$\$ BEGIN
  LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = '$role');
    PERFORM pg_sleep(0.0002);
  END LOOP;
  RAISE NOTICE 'gone at %', extract(epoch FROM clock_timestamp());
END \$\$;});
	my ($xid) = $res =~ /(\d+)\s*$/;
	my ($gone) = $dba->{stderr} =~ /gone at ([0-9.]+)/;
	$dba->{stderr} = '';
	ok(defined $gone, "round $round: every backend of the revoked role has exited");
	push @kill_us, $node->safe_psql('postgres',
		"SELECT round(($gone - extract(epoch FROM pg_xact_commit_timestamp('$xid'::xid))) * 1e6)");
	pump_until($busy->{run}, $busy->{timeout}, \$busy->{stderr}, qr/terminating connection|server closed/);
	like($busy->{stderr}, qr/57P01: terminating connection due to administrator command/,
		"round $round: the running statement was stopped");
	($out, $err) = run($human, 'SELECT count(*) FROM work');
	is($err, '', "round $round: another role's session on the same socket is untouched");
	$human->quit;
	eval { $busy->quit };
	eval { $idle->quit };
	$dba->query_safe(q{SELECT agentgate.resume('rita')});
}
diag(sprintf('revoke() commit timestamp -> all backends of the role gone (terminate_revoked_sessions on): median %d us, max %d us (3 rounds)',
	median(@kill_us), (sort { $b <=> $a } @kill_us)[0]));

# a revocation that rolls back terminates nothing
my $keep = session($role, 'tap ' . stamp($role));
$dba->query_safe(q{BEGIN; SELECT agentgate.revoke('rita'); ROLLBACK;});
($out, $err) = run($keep, 'SELECT count(*) FROM work');
is($err, '', 'a rolled-back revocation terminates and refuses nothing');
$keep->quit;
$dba->quit;

# --- groups_claim: a namespaced claim name (Auth0) and a JSON pointer
# (Keycloak realm roles); the setting is reloaded, not SET
$node->safe_psql('postgres', q{
	CREATE ROLE regress_readers;
	INSERT INTO agentgate.group_roles VALUES ('eng', 'regress_readers');
});
sub groups_claim
{
	my $v = shift;
	$node->safe_psql('postgres', "ALTER SYSTEM SET agentgate.groups_claim = '$v'");
	$node->reload;
	$node->poll_query_until('postgres', "SELECT current_setting('agentgate.groups_claim') = '$v'")
	  or die 'reload timed out';
}
sub has_readers
{
	my $claims = shift;
	return $node->safe_psql('postgres', qq{
		SELECT pg_has_role(agentgate.login('rita', '$claims'), 'regress_readers', 'MEMBER')});
}
groups_claim('https://example.com/groups');
is(has_readers('{"https://example.com/groups": ["eng"], "groups": []}'), 't',
	'namespaced groups claim is read');
is(has_readers('{"groups": ["eng"]}'), 'f', 'the default claim name is no longer read');
groups_claim('/realm_access/roles');
is(has_readers('{"realm_access": {"roles": ["eng"]}}'), 't', 'JSON pointer groups claim is read');
is(has_readers('{"realm_access": {"roles": []}}'), 'f', 'and removes the role when the group goes');
groups_claim('/a~1b/x~0y');
is(has_readers('{"a/b": {"x~y": "eng"}}'), 't', 'JSON pointer escapes ~1 and ~0');
groups_claim('groups');

$node->stop;
done_testing();
