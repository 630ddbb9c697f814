# The agent-login gate (auth.c): agent roles and PgBouncer's lookup role log
# in only over the unix socket in agentgate.pooler_socket_directory, from
# the OS user agentgate.pooler_os_user.  TCP (even with hba trust), any
# other socket directory and any other peer are refused with SQLSTATE 28000
# and a hint; other roles are not affected.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('gate');
$node->init;
my $public  = $node->host;                    # the node's own socket directory
my $private = PostgreSQL::Test::Utils::tempdir_short();
chmod 0700, $private;
my $port = $node->port;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'agentgate'
agentgate.session_key = 'tap-session-key-0123456789abcdef0123456789'
unix_socket_directories = '$public, $private'
listen_addresses = '127.0.0.1'
agentgate.pooler_socket_directory = '$private'
log_error_verbosity = verbose
});
# hba trusts everything: the gate, not a password, must refuse
$node->append_conf('pg_hba.conf', "host all all 127.0.0.1/32 trust\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentgate');
my $agent = $node->safe_psql('postgres', q{SELECT agentgate.login('gate-agent', '{}')});
like($agent, qr/^agent_gate_agent_[0-9a-f]{16}$/, 'login() provisioned an agent role');
$node->safe_psql('postgres', q{
	CREATE ROLE regress_human LOGIN;
	CREATE ROLE regress_super_agent LOGIN SUPERUSER IN ROLE agentgate_agent;
});

my %path = (
	private => "host=$private port=$port",
	public  => "host=$public port=$port",
	tcp     => "host=127.0.0.1 port=$port sslmode=disable",);

# Governed sessions need a session stamp in application_name, as the proxy
# would send it; the gate itself does not look at it.
sub conn
{
	my ($where, $user) = @_;
	my $stamp = $node->safe_psql('postgres', "SELECT (agentgate.session_stamp('$user')).stamp");
	return "$path{$where} dbname=postgres user=$user application_name='tap $stamp'";
}

sub gate_refuses
{
	my ($where, $user, $detail, $name) = @_;
	$node->connect_fails(
		conn($where, $user), $name,
		expected_stderr => qr/role "\Q$user\E" may connect only through the agentgate pooler/,
		log_like => [
			qr/FATAL:  28000: role "\Q$user\E" may connect only through the agentgate pooler/,
			qr/DETAIL:  $detail/,
			qr/HINT:  Connect to the agentgate proxy with an identity token as the password\./
		]);
}

sub logs_in
{
	my ($where, $user, $name) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT session_user',
		connstr => conn($where, $user), extra_params => ['-w']);
	is($ret, 0, $name) or diag($err);
	is($out, $user, "$name: session_user") if $ret == 0;
}

# reload and wait until new backends see the setting
sub set_and_reload
{
	my ($name, $value) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET $name = '$value'");
	$node->reload;
	$node->poll_query_until('postgres',
		"SELECT current_setting('$name') = '$value'")
	  or die "timed out waiting for $name";
}

# --- agents: private socket only
logs_in('private', $agent, 'agent logs in on the private socket');
gate_refuses('public', $agent, 'The connection did not arrive on the socket in agentgate.pooler_socket_directory',
	'agent refused on the public socket');
gate_refuses('tcp', $agent, 'Agent roles are refused on TCP connections\.',
	'agent refused on TCP despite hba trust');
# governed superusers are agents too
# (it logs in, but no statement of it runs: an agent may not reach SUPERUSER)
{
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT session_user',
		connstr => conn('private', 'regress_super_agent'), extra_params => ['-w']);
	like($err, qr/agent role reaches a role agents may not hold/,
		'governed superuser: logs in on the private socket, its statements are refused');
}
gate_refuses('tcp', 'regress_super_agent', 'Agent roles are refused on TCP connections\.',
	'governed superuser refused on TCP');

# --- PgBouncer's lookup role: the same gate
logs_in('private', 'agentgate_pgbouncer', 'agentgate_pgbouncer logs in on the private socket');
gate_refuses('public', 'agentgate_pgbouncer', 'The connection did not arrive',
	'agentgate_pgbouncer refused on the public socket');
gate_refuses('tcp', 'agentgate_pgbouncer', 'Agent roles are refused on TCP connections\.',
	'agentgate_pgbouncer refused on TCP');

# --- other roles: untouched
logs_in($_, 'regress_human', "non-agent role logs in over $_") for qw(private public tcp);

# --- the peer must be agentgate.pooler_os_user
my $me = getpwuid($>);
for my $other ('nobody', 'root', 'regress_no_such_os_user')
{
	set_and_reload('agentgate.pooler_os_user', $other);
	gate_refuses('private', $agent, 'The peer OS user \(uid \d+\) is not agentgate\.pooler_os_user\.',
		"agent refused when the pooler OS user is $other");
	gate_refuses('private', 'agentgate_pgbouncer', 'The peer OS user',
		"agentgate_pgbouncer refused when the pooler OS user is $other");
	logs_in('private', 'regress_human', "non-agent role unaffected by pooler_os_user = $other");
}
set_and_reload('agentgate.pooler_os_user', $me);
logs_in('private', $agent, "agent logs in when the pooler OS user is the peer ($me)");

# --- the directory is compared canonically; unset refuses every agent
set_and_reload('agentgate.pooler_socket_directory', "$private/");
logs_in('private', $agent, 'trailing slash in pooler_socket_directory still matches');
set_and_reload('agentgate.pooler_socket_directory', '');
gate_refuses('private', $agent, 'The connection did not arrive',
	'unset pooler_socket_directory refuses every agent login');
logs_in('private', 'regress_human', 'non-agent role unaffected by an unset directory');
set_and_reload('agentgate.pooler_socket_directory', $private);

# --- a revoked identity cannot log in even by the right path
$node->safe_psql('postgres', q{SELECT agentgate.revoke('gate-agent', 'tap')});
$node->connect_fails(conn('private', $agent), 'revoked agent refused on the private socket',
	expected_stderr => qr/is not permitted to log in/);
$node->safe_psql('postgres', q{SELECT agentgate.resume('gate-agent')});
logs_in('private', $agent, 'resumed agent logs in again');

# --- the gate's settings are not for agents
my ($ret, $out, $err) = $node->psql('postgres',
	'SET agentgate.pooler_socket_directory = \'/tmp\'',
	connstr => conn('private', $agent));
like($err, qr/cannot be changed now|permission denied|SET AGENTGATE is not allowed/, 'agents cannot change the gate');

$node->stop;
done_testing();
