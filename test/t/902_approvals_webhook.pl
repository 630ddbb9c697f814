# agentgate-notify: each approval request and decision reaches an HTTPS
# webhook as Slack-compatible JSON ({"text": ...} plus the request's
# fields), with the normalised statement (no literals) unless
# exact_statement = 1; a webhook that fails is retried with backoff.  The
# receiver is a local HTTPS server with a self-signed certificate that
# answers 500 to its first post.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentGate::Node;
use IPC::Run;
use JSON::PP;
use File::Spec;

my $top = $ENV{AG_TOP} // File::Spec->rel2abs('.');
my $notify_bin = "$top/pooler/agentgate-notify";
plan skip_all => 'agentgate-notify not built' unless -x $notify_bin;

my $node = AgentGate::Node::new('webhook');
$node->safe_psql('postgres', q{
CREATE EXTENSION agentgate;
CREATE ROLE agent1 LOGIN IN ROLE agentgate_agent;
CREATE ROLE alice LOGIN IN ROLE agentgate_approver;
CREATE TABLE t (id int PRIMARY KEY, secret text);
INSERT INTO t VALUES (1, 'x');
GRANT ALL ON t TO agent1;
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 't', reason => 'hooked');
});

my $dir = PostgreSQL::Test::Utils::tempdir;
system('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
	'-nodes', '-keyout', "$dir/hook.key", '-out', "$dir/hook.crt", '-days', '1',
	'-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1') == 0
  or die 'openssl req failed';
my $port = PostgreSQL::Test::Cluster::get_free_port();
open my $py, '>', "$dir/hook.py" or die;
print $py <<"PY";
import http.server, ssl, sys
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        count += 1
        body = self.rfile.read(int(self.headers['Content-Length']))
        if count == 1:
            self.send_response(500); self.end_headers(); return
        with open('$dir/received', 'ab') as f:
            f.write(body + b'\\n')
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', $port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain('$dir/hook.crt', '$dir/hook.key')
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
close $py;
my $receiver = IPC::Run::start([ '/usr/bin/python3', "$dir/hook.py" ], '>', \my $rout, '2>', \my $rerr);

sub notifier
{
	my ($exact) = @_;
	my $conninfo = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
	open my $c, '>', "$dir/notify.conf" or die;
	print $c "conninfo = '$conninfo'\nwebhook_url = https://localhost:$port/hook\n"
	  . "ca_file = $dir/hook.crt\nretry_delay_ms = 100\nexact_statement = $exact\n";
	close $c;
	my $h = IPC::Run::start([ $notify_bin, '-c', "$dir/notify.conf" ], '>', \my $o, '2>', "$dir/notify.log");
	# listening once the log says so
	for (1 .. 100)
	{
		last if -s "$dir/notify.log" && slurp_file("$dir/notify.log") =~ /listening/;
		select undef, undef, undef, 0.1;
	}
	return $h;
}

sub received
{
	my ($n) = @_;
	for (1 .. 200)
	{
		my @l = -e "$dir/received" ? split /\n/, slurp_file("$dir/received") : ();
		return map { decode_json($_) } @l if @l >= $n;
		select undef, undef, undef, 0.1;
	}
	return ();
}

my $h = notifier(0);
$ENV{PGAPPNAME} = $node->safe_psql('postgres', "SELECT (agentgate.session_stamp('agent1')).stamp");
my ($ret, $out, $err) = $node->psql('postgres', q{DELETE FROM t WHERE secret = 'hunter2'},
	extra_params => [ '-U', 'agent1' ]);
like($err, qr/needs approval \(request (\d+)\)/, 'the agent is refused with a request id');
my ($id) = $err =~ /request (\d+)/;
my @got = received(1);
is(scalar @got, 1, 'the request reached the webhook (after one retry)')
  or diag slurp_file("$dir/notify.log");
is($got[0]{id}, $id, '... with its id');
is($got[0]{status}, 'pending', '... and status pending');
like($got[0]{text}, qr/asks to run .* \(request $id,/, '... and a text for chat');
unlike(encode_json($got[0]), qr/hunter2/, '... and no literal of the statement');
like($got[0]{statement}, qr/secret = \$1/, '... but the normalised statement');
like(slurp_file("$dir/notify.log"), qr/post 1 of 5 failed: HTTP status 500/, 'the failed post was logged and retried');

$node->safe_psql('postgres', "SELECT agentgate.deny($id, 'no')", extra_params => [ '-U', 'alice' ]);
@got = received(2);
is($got[1]{status}, 'denied', 'the decision reached the webhook');
is($got[1]{decided_by}, 'alice', '... with who decided');

$h->kill_kill;
unlink "$dir/received";
$h = notifier(1);
$node->psql('postgres', q{DELETE FROM t WHERE secret = 'swordfish'}, extra_params => [ '-U', 'agent1' ]);
@got = received(1);
like($got[0]{statement} // '', qr/swordfish/, 'exact_statement = 1 sends the exact text');

$h->kill_kill;
$receiver->kill_kill;
done_testing();
