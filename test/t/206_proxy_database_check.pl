# agentgate-proxy checks the client's database at login: a name that does
# not exist (including the user name libpq and node-postgres fall back to),
# template0 and template1, a database that does not allow connections, and
# one without the extension are refused at once with a clear FATAL and a
# hint, instead of PgBouncer's query_wait_timeout after 120 s.  A database
# with the extension (not the admin database) works, a fix by the DBA is
# seen within seconds, and a PgBouncer that never finishes the login is
# bounded by auth_timeout.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';

my $s = AgentGate::Stack->new(name => 'proxy-dbcheck');
$s->{proxy_conf} = "auth_timeout = 3\n";
$s->start;
my $port = $s->proxy_port;
my $log = $s->log_file('proxy');

$s->admin_psql('CREATE DATABASE noext', db => 'postgres');
$s->admin_psql('CREATE DATABASE closed', db => 'postgres');
$s->admin_psql('ALTER DATABASE closed ALLOW_CONNECTIONS false', db => 'postgres');
$s->admin_psql('CREATE DATABASE other', db => 'postgres');
$s->admin_psql("CREATE EXTENSION agentgate; GRANT USAGE, CREATE ON SCHEMA public TO agentgate_agent;",
	db => 'other');

# Logs in with the raw client; returns (error fields or undef, seconds).
sub try_db
{
	my ($who, %p) = @_;
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $t0 = time;
	my $r = $c->login($s->token(sub => $who), %p);
	my $dt = time - $t0;
	my $q;
	$q = AgentGate::ProxyClient::first_value($c->query('SELECT current_database()')) if $r->{ok};
	$c->close;
	return ($r->{ok} ? undef : $r->{error}, $dt, $q);
}

my @cases = (
	[ 'nosuchdb', '3D000', 'database "nosuchdb" does not exist', qr/Set the database name/ ],
	[ 'template0', '55000', 'database "template0" is a template', qr/application database/ ],
	[ 'template1', '55000', 'database "template1" is a template', qr/application database/ ],
	[ 'closed', '55000', 'database "closed" does not allow connections', qr/application database/ ],
	[ 'noext', '55000', 'agentgate is not installed in database "noext"', qr/CREATE EXTENSION agentgate/ ],
	[ 'NoSuchDB', '3D000', 'database "NoSuchDB" does not exist', qr/dbname=/ ],
);
for my $case (@cases)
{
	my ($db, $code, $msg, $hint) = @$case;
	for my $round (1, 2)    # the second answer comes from the cache
	{
		my ($e, $dt) = try_db('alice', database => $db);
		is($e ? "$e->{C} $e->{M}" : 'ok', "$code $msg", "$db (round $round): refused with $code");
		like($e ? $e->{H} // '' : '', $hint, "$db: the hint says what to do");
		ok($dt < 2, sprintf('%s: answered at once (%.2f s)', $db, $dt));
	}
}

# A wrong name provisions nothing: login() did not run for it.
is($s->admin_psql(q{SELECT count(*) FROM agentgate.agents WHERE identity = 'nobody-yet'}), '0',
	'no identity before');
{
	my ($e) = try_db('nobody-yet', database => 'nosuchdb');
	is($e->{C}, '3D000', 'a new identity asking for a missing database is refused');
	is($s->admin_psql(q{SELECT count(*) FROM agentgate.agents WHERE identity = 'nobody-yet'}), '0',
		'and its role was not created');
}

# libpq uses the user name when no database is given: psql shows the hint.
{
	local $ENV{PGPASSWORD} = $s->token(sub => 'alice');
	my $t0 = time;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-c', 'SELECT 1',
		"host=127.0.0.1 port=$port user=agent sslmode=require" ], '>', \$out, '2>', \$err,
		IPC::Run::timeout(60));
	my $dt = time - $t0;
	like($err, qr/FATAL:  database "agent" does not exist/, 'psql without dbname: database "agent" does not exist');
	like($err, qr/DETAIL:  The database name is the user name "agent": clients use it when no database name is set/,
		'the detail says the user name was used');
	like($err, qr/HINT:  Set the database name \(dbname= in libpq and psycopg, database in node-postgres, or PGDATABASE\)/,
		'the hint names the setting per client');
	ok($dt < 5, sprintf('at once (%.2f s)', $dt));
}

# A database with the extension that is not the admin database.
{
	my ($e, $dt, $q) = try_db('alice', database => 'other');
	ok(!$e, 'a database with the extension (not the admin one) logs in')
	  or diag explain $e;
	is($q, 'other', 'and queries run there');
}

# The DBA fixes a database: seen within the negative cache's few seconds.
{
	$s->admin_psql("CREATE EXTENSION agentgate;", db => 'noext');
	my $ok = 0;
	my $t0 = time;
	while (time - $t0 < 8)
	{
		my ($e) = try_db('alice', database => 'noext');
		if (!$e) { $ok = 1; last; }
		sleep 0.5;
	}
	ok($ok, sprintf('after CREATE EXTENSION the database is usable within %.1f s', time - $t0));
}

like(AgentGate::Stack::_slurp($log), qr/connection refused: database "nosuchdb" does not exist/,
	'refusals are logged');

# PgBouncer that never finishes the login: a database dropped while the
# proxy's cache still says it is fine, and an identity PgBouncer has not
# looked up yet (its auth_query needs a server connection there).
{
	$s->admin_psql('CREATE DATABASE doomed', db => 'postgres');
	$s->admin_psql('CREATE EXTENSION agentgate', db => 'doomed');
	my ($e) = try_db('alice', database => 'doomed');
	ok(!$e, 'doomed: usable') or diag explain $e;
	$s->admin_psql('DROP DATABASE doomed WITH (FORCE)', db => 'postgres');
	my ($e2, $dt) = try_db('carol', database => 'doomed');
	ok($e2, 'a login PgBouncer cannot finish is refused');
	ok($dt < 6, sprintf('within auth_timeout = 3 s, not query_wait_timeout (%.2f s)', $dt));
	note("answer: " . ($e2 ? "$e2->{C} $e2->{M}" : 'none'));
}

# The existing database still works for everyone.
{
	my ($e, undef, $q) = try_db('alice', database => $s->db);
	ok(!$e, 'the admin database still logs in');
	is($q, $s->db, 'and answers');
}

$s->stop;
done_testing();
