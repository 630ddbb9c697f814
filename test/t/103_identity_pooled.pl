# Identity enforcement on PgBouncer's pooled server connections, which
# outlive their clients: the real stack (PostgreSQL + PgBouncer in
# transaction mode + agentgate-proxy).  Clients here talk to PgBouncer's
# private socket directly, as the proxy does, so the server side is tested
# without the proxy closing anything:
#  - PgBouncer re-sends application_name with SET; a forged or borrowed
#    stamp is refused at the client's first query;
#  - after revoke() with terminate_revoked_sessions off, the next statement
#    on the same pooled server connection is refused, the connection stays
#    in the pool, new server logins are refused by the auth_query, and
#    resume() makes the same connection usable again;
#  - with it on, the pooled server connections of the role are closed.
use strict;
use warnings;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep);
use AgentGate::Stack;

my $s = AgentGate::Stack->new(name => 'identity-pooled');
$s->start;
my $db = $s->db;

my ($rc, $role, $err) = $s->agent_psql($s->token(sub => 'pat'), 'SELECT session_user');
is($rc, 0, 'agent logged in through the proxy') or diag($err);
my ($rc2, $other, $err2) = $s->agent_psql($s->token(sub => 'quinn'), 'SELECT session_user');
$s->admin_psql("CREATE TABLE pooled (id int); GRANT SELECT ON pooled TO agentgate_agent;");

sub stamp { return $s->admin_psql("SELECT (agentgate.session_stamp('$_[0]')).stamp") }

# A psql client of PgBouncer's socket, kept open across statements.
sub client
{
	my ($user, $app) = @_;
	my $conn = sprintf("host=%s port=%d dbname=%s user=%s application_name='%s'",
		$s->pgbouncer_socket_dir, $s->pgbouncer_port, $db, $user, $app);
	my %c = (in => '', out => '', err => '', n => 0);
	$c{h} = IPC::Run::start(
		[ $s->_pg('psql'), '-X', '-A', '-t', '-d', $conn ],
		'<', \$c{in}, '>', \$c{out}, '2>', \$c{err}, IPC::Run::timeout(60));
	my $c = \%c;
	# PgBouncer assigns a server connection and applies application_name
	# while the client logs in: refusals show here, as a FATAL from PgBouncer
	(undef, $c->{connect_err}) = query($c, '\set VERBOSITY verbose');
	return $c;
}

# Runs $sql; returns (stdout, stderr).
sub query
{
	my ($c, $sql) = @_;
	my $mark = 'mark-' . ++$c->{n};
	$c->{in} .= "$sql\n;\n\\echo $mark\n\\warn $mark\n";
	$c->{h}->pump
	  until ($c->{out} =~ /$mark\n/ && $c->{err} =~ /$mark\n/) || !$c->{h}->pumpable;
	my ($o, $e) = ($c->{out}, $c->{err});
	note("query [$sql] -> out [$o] err [$e]");
	$o =~ s/\n?$mark\n//;
	$e =~ s/\n?$mark\n//;
	chomp $o;
	$c->{out} = $c->{err} = '';
	return ($o, $e);
}

sub done { my $c = shift; $c->{in} .= "\\q\n"; eval { $c->{h}->finish }; }

sub backends
{
	return $s->admin_psql("SELECT count(*) FROM pg_stat_activity WHERE usename = '$_[0]'");
}

# --- the stamp through PgBouncer's SET path: PgBouncer's SET of an
# unstamped (or borrowed) application_name is refused, and PgBouncer drops
# the server connection and the client
# (a plain value would keep the server connection's current stamp, which
# the extension does for a client's own SET; a client reaching PgBouncer
# directly is outside the proxy, see docs/identity.md)
my $c = client($role, 'forged ag1.0000000000000000.0000000000000000');
like($c->{connect_err}, qr/invalid server parameter/,
	'PgBouncer re-sending an unstamped application_name: the client is refused');
done($c);
$c = client($role, 'borrowed ' . stamp($other));
like($c->{connect_err}, qr/invalid server parameter/,
	'another identity\'s stamp: the client is refused');
done($c);
is(() = $s->admin_psql("SELECT pg_read_file('" . $s->log_file('postgres')
	  . "')") =~ /ERROR:  agents may not set application_name without a valid session stamp/g,
	2, 'the server refused both SETs');
my ($o, $e);
my $st = stamp($role);
$c = client($role, "app $st");
($o, $e) = query($c, 'SELECT agentgate.session_id()');
is($o, (split /\./, $st)[1], 'a valid stamp passes PgBouncer\'s SET, session_id() is its id');

# --- revocation, terminate_revoked_sessions off: the pooled connection stays
($o, $e) = query($c, 'SELECT pg_backend_pid()');
my $pid = $o;
$s->admin_psql(q{SET agentgate.terminate_revoked_sessions = off;
	SELECT agentgate.revoke('pat', 'pooled test');});
($o, $e) = query($c, 'SELECT count(*) FROM pooled');
like($e, qr/28000: agent identity has been revoked/,
	'the next statement on the pooled server connection is refused');
is($s->admin_psql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid"), '1',
	'the server connection is still in the pool');
my $fresh = client($role, 'app ' . stamp($role));
like($fresh->{connect_err}, qr/no such user/,
	'a new client of the revoked role is refused by PgBouncer\'s auth_query');
done($fresh);
$s->admin_psql(q{SELECT agentgate.resume('pat')});
($o, $e) = query($c, 'SELECT count(*) FROM pooled');
is("$o|$e", '0|', 'after resume() the same client and pool work again');
done($c);

# --- revocation, terminate_revoked_sessions on (default): pooled
# connections of the role are closed; other roles' pools are kept
$c = client($role, 'app ' . stamp($role));
my $q = client($other, 'app ' . stamp($other));
query($c, 'SELECT 1');
query($q, 'SELECT 1');
ok(backends($role) >= 1 && backends($other) >= 1, 'both identities have pooled server connections');
$s->admin_psql(q{SELECT agentgate.revoke('pat', 'pooled test, terminate')});
my $gone = 0;
for (1 .. 200)
{
	if (backends($role) == 0) { $gone = 1; last; }
	sleep 0.01;
}
ok($gone, 'every pooled server connection of the revoked role was closed');
ok(backends($other) >= 1, 'the other identity\'s pooled connection is kept');
($o, $e) = query($q, 'SELECT count(*) FROM pooled');
is("$o|$e", '0|', 'and keeps working');
# (a client left connected to PgBouncer would now wait for a server
# connection PgBouncer cannot open; the proxy closes such clients when it
# is notified)
done($c);
done($q);
$s->admin_psql(q{SELECT agentgate.resume('pat')});
$c = client($role, 'app ' . stamp($role));
($o, $e) = query($c, 'SELECT count(*) FROM pooled');
is("$o|$e", '0|', 'after resume() PgBouncer opens a new server connection for the role');
done($c);

$s->stop;
done_testing();
