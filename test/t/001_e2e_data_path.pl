# The whole data path on real components: an agent presents an RS256 token
# over TLS to agentgate-proxy, which verifies it, maps the identity to its
# own role through agentgate.login(), and relays through PgBouncer
# (transaction pooling, private unix socket) to PostgreSQL, where the
# extension governs the session.  Then everything that must be refused is.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;

my $s = AgentGate::Stack->new(name => 'e2e', public_socket => 1);
$s->start;

my $role = $s->admin_psql("SELECT agentgate.role_for_identity('alice')");
like($role, qr/^agent_alice_[0-9a-f]{16}$/, 'role derived from the identity');

# --- allowed: the agent is its own per-identity role, governed
my $tok = $s->token(sub => 'alice', ttl => 300);
my ($rc, $out, $err) = $s->agent_psql($tok,
	"SELECT session_user, pg_has_role('agentgate_agent', 'MEMBER'), current_setting('application_name') ~ ' ag1\\.[0-9a-f]{16}\\.[0-9a-f]{16}\$'");
is($rc, 0, 'valid token connects') or diag($err);
is($out, "$role|t|t", 'session_user is the per-identity role, a member of agentgate_agent, with a session stamp');

($rc, $out, $err) = $s->agent_psql($tok, 'SELECT agentgate.session_id() ~ \'^[0-9a-f]{16}$\'');
is($out, 't', 'the extension verifies the session stamp');

($rc, $out, $err) = $s->agent_psql($tok, <<'EOS');
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'hello');
SELECT body FROM notes;
EOS
is($rc, 0, 'ordinary statements are allowed') or diag($err);
is($out, 'hello', 'and return their rows');

# --- blocked: DROP TABLE, 42501 with detail and hint
($rc, $out, $err) = $s->agent_psql($tok, "\\set VERBOSITY verbose\nDROP TABLE notes;");
isnt($rc, 0, 'DROP TABLE fails');
like($err, qr/ERROR:\s+42501: agentgate: DROP TABLE( on \S+)? is not allowed/, 'refused with SQLSTATE 42501');
like($err, qr/DETAIL:/, 'with a detail');
like($err, qr/HINT:/, 'and a hint');
is($s->admin_psql("SELECT count(*) FROM pg_tables WHERE tablename = 'notes'"), '1',
	'the table is still there');

# the login was recorded
is($s->admin_psql("SELECT role_name = '$role' AND login_count >= 1 AND token_expires > now() FROM agentgate.agents WHERE identity = 'alice'"),
	't', 'agentgate.agents records the role, logins and token expiry');

# --- refused at the proxy
sub refused
{
	my ($name, $token, $pattern, %o) = @_;
	my ($rc, $out, $err) = $s->agent_psql($token, 'SELECT 1', %o);
	isnt($rc, 0, "$name: refused");
	like($err, $pattern, "$name: clear error") or diag($err);
}

my $bad_sig = $tok;
$bad_sig =~ s/(.)(.{8})$/($1 eq 'A' ? 'B' : 'A') . $2/e;
refused('bad signature', $bad_sig, qr/FATAL:.*(token|signature)/i);
refused('expired token', $s->token(sub => 'alice', ttl => 300, now => time - 3600),
	qr/FATAL:.*(expired|token)/i);
refused('wrong audience', $s->token(sub => 'alice', aud => 'someone-else'), qr/FATAL:.*(aud|token)/i);
refused('plain TCP without TLS', $tok, qr/FATAL:.*(TLS|SSL|sslmode)/i, sslmode => 'disable');

# --- an agent role trying to log in to PostgreSQL directly
my @psql = ("$ENV{PG_BINDIR}/psql", '-X', '-A', '-t', '-c', 'SELECT 1');
@psql = ('psql', '-X', '-A', '-t', '-c', 'SELECT 1') unless $ENV{PG_BINDIR};
for my $path (
	[ 'TCP', '-h', '127.0.0.1' ],
	[ 'the public unix socket', '-h', $s->public_socket_dir ])
{
	my ($name, @args) = @$path;
	my ($out, $err) = ('', '');
	IPC::Run::run([ @psql, @args, '-p', $s->pg_port, '-U', $role, '-d', $s->db ],
		'<', \undef, '>', \$out, '2>', \$err);
	isnt($? >> 8, 0, "agent role directly over $name: refused");
	like($err, qr/may connect only through the agentgate pooler/, "agent role directly over $name: clear error");
}

# a non-agent role is not affected by the gate
my ($o2, $e2) = ('', '');
IPC::Run::run([ @psql, '-h', '127.0.0.1', '-p', $s->pg_port, '-U', 'postgres', '-d', $s->db ],
	'<', \undef, '>', \$o2, '2>', \$e2);
is($o2, "1\n", 'the superuser still connects over TCP');

$s->stop;
done_testing();
