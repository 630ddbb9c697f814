# Each client connection keeps its own session stamp, through the proxy and
# PgBouncer: a connection that sets application_name to another connection's
# stamp (its own identity's, read from pg_stat_activity) is closed by the
# proxy; inside one transaction the extension refuses it first; a plain
# SET application_name keeps the connection's stamp.  The session key comes
# from agentgate.session_key_file, and a new key there ends live stamps.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep);

$SIG{PIPE} = 'IGNORE';

my $keydir = tempdir('agentgate-key-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $keyfile = "$keydir/session.key";
sub write_key
{
	my ($path, $key, $mode) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh "$key\n";
	close $fh;
	chmod $mode, $path or die;
}
write_key($keyfile, 'k' x 48, 0600);

my $s = AgentGate::Stack->new(name => 'stamp-binding',
	pg_conf => "agentgate.session_key_file = '$keyfile'\n");
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;

sub session
{
	my ($tok) = @_;
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $db);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	return $c;
}

sub value { AgentGate::ProxyClient::first_value(@_) }

sub error_of
{
	for my $m (@_)
	{
		return AgentGate::ProxyClient::error_fields($m->[1]) if $m->[0] eq 'E';
	}
	return { S => '', C => '', M => '' };
}

my $tok = $s->token(sub => 'olga');
my $one = session($tok);
my $two = session($tok);
my $app1 = value($one->query("SELECT current_setting('application_name')"));
my ($stamp1) = $app1 =~ /(ag1\.[0-9a-f]{16}\.[0-9a-f]{16})$/;
ok($stamp1, "connection 1 carries a stamp ($app1)");
my $sid2 = value($two->query('SELECT agentgate.session_id()'));
isnt($sid2, (split /\./, $stamp1)[1], 'connection 2 has a session id of its own');

# a plain name keeps the connection's own stamp (pgJDBC does this)
my @m = $two->query("SET application_name = 'PostgreSQL JDBC Driver'");
is(error_of(@m)->{M}, '', 'a plain SET application_name is accepted');
is(value($two->query('SELECT agentgate.session_id()')), $sid2, 'and keeps the session id');
like(value($two->query("SELECT current_setting('application_name')")),
	qr/^PostgreSQL JDBC Driver ag1\./, 'the name is the driver name and the stamp');

# inside one transaction the extension refuses the rest of it; nothing is
# reported, and the connection stays usable
@m = $two->query("SET application_name = 'x $stamp1'; SELECT agentgate.session_id()");
is(error_of(@m)->{M}, 'agent session changed its session stamp inside a transaction',
	'adopting a stamp and running a statement in one message is refused');
is(value($two->query('SELECT agentgate.session_id()')), $sid2, 'still its own session afterwards');

# on its own, the SET is what PgBouncer does; the proxy sees the reported
# value and closes the client before anything else runs under that stamp
@m = $two->query("SET application_name = 'x $stamp1'");
my $f = error_of(@m);
is("$f->{S} $f->{C} $f->{M}", 'FATAL 42501 agent session changed its session stamp',
	'adopting another connection\'s stamp: FATAL from the proxy');
ok($two->wait_closed(2), 'and the connection is closed');
is(value($one->query('SELECT agentgate.session_id()')), (split /\./, $stamp1)[1],
	'the connection whose stamp it was is unaffected');

# set_config() is reported the same way
my $three = session($tok);
@m = $three->query("SELECT set_config('application_name', '$stamp1', false)");
$f = error_of(@m);
is("$f->{S} $f->{M}", 'FATAL agent session changed its session stamp', 'set_config() adoption: FATAL');
ok($three->wait_closed(2), 'and closed');

# the key file: readable settings show only its path; the key is a mask
my $out = $s->admin_psql("SHOW agentgate.session_key");
is($out, '********', 'SHOW agentgate.session_key: a mask');
$out = $s->admin_psql("SHOW agentgate.session_key_file");
is($out, $keyfile, 'SHOW agentgate.session_key_file: the path');

# a key file others may read is refused on reload; the old key stays
chmod 0644, $keyfile;
$s->reload_postgres;
sleep 0.5;
is(value($one->query('SELECT 1')), '1', 'a world-readable key file is refused: the old key stays');
like(slurp($s->log_file('postgres')), qr/must belong to the server's OS user with mode 0600/,
	'and the server says why');

# a new key in the file ends every live stamp at its next statement
write_key($keyfile, 'n' x 48, 0600);
$s->reload_postgres;
sleep 0.5;
@m = $one->query('SELECT 1');
like(error_of(@m)->{M}, qr/no valid session stamp/, 'a new key ends the live stamps');
my $four = session($s->token(sub => 'olga'));
is(value($four->query('SELECT 1')), '1', 'new connections get stamps under the new key');

sub slurp
{
	my ($path) = @_;
	open my $fh, '<', $path or return '';
	local $/;
	return <$fh>;
}

$s->stop;
done_testing();
