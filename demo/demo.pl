#!/usr/bin/env perl
# The agentgate demo (make demo).  Starts a throwaway stack, plays an agent,
# and shows what the DBA sees.  Cleans up on exit and on Ctrl-C.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use AgentGate::Stack;
use POSIX ();

$SIG{INT} = $SIG{TERM} = sub { print "\nstopping and cleaning up\n"; exit 130 };
$ENV{AG_TOP} //= "$FindBin::Bin/..";

my $tty = -t STDOUT;
my ($B, $D, $R, $G, $Y, $N) = $tty ? ("\e[1m", "\e[2m", "\e[31m", "\e[32m", "\e[33m", "\e[0m") : ('') x 6;

sub step { print "\n${B}== $_[0]${N}\n" }

sub show_agent
{
	my ($s, $tok, $sql) = @_;
	print "${D}agent\$${N} $sql\n";
	my ($rc, $out, $err) = $s->agent_psql($tok, "\\set VERBOSITY default\n$sql");
	print "$out\n" if length $out;
	if ($rc != 0)
	{
		$err =~ s/^psql: //mg;
		print "${R}$err${N}";
	}
	return $rc;
}

sub show_dba
{
	my ($s, $sql) = @_;
	print "${D}dba\$${N} $sql\n";
	my ($rc, $out, $err) = $s->admin_psql($sql, ok_fail => 1);
	$out =~ s/\|/ | /g;
	print $rc == 0 ? "$out\n" : "${R}$err${N}";
}

my $s = AgentGate::Stack->new(name => 'demo', audience => 'agentgate-demo');
step('starting PostgreSQL 15 (agentgate preloaded), PgBouncer (transaction pooling, private socket) and agentgate-proxy (TLS)');
$s->start;
printf "PostgreSQL on socket %s, PgBouncer on private socket %s, proxy on 127.0.0.1:%d\n",
	$s->pg_socket_dir, $s->pgbouncer_socket_dir, $s->proxy_port;

step('the IdP mints a short-lived RS256 token for identity "ci-agent-7"');
my $tok = $s->token(sub => 'ci-agent-7', ttl => 900, groups => ['analysts']);
printf "token: %s...%s (%d bytes; verified against %s)\n", substr($tok, 0, 24), substr($tok, -12),
	length $tok, $s->jwks_file;

# The proxy's certificate is self-signed here: clients that verify it (all
# should; node-postgres does for any ssl setting) need it as their CA file.
my $ca = $s->base . '/agentgate-ca.crt';
{
	open my $in, '<', $s->ca_file or die "cannot read the CA: $!";
	open my $out, '>', $ca or die "cannot write $ca: $!";
	print $out do { local $/; <$in> };
	close $out;
}

step('the agent connects with plain psql: TLS verified against the CA file, any user name, the token as the password');
printf "CA file written: %s\n", $ca;
{
	print "${D}agent\$${N} psql \"@{[ $s->agent_conninfo(sslmode => 'verify-full') ]} sslrootcert=$ca\"\n";
	local $ENV{PGSSLROOTCERT} = $ca;
	my ($rc, $out, $err) = $s->agent_psql($tok, q{SELECT session_user AS role, agentgate.session_id() AS session_id;},
		sslmode => 'verify-full');
	print $rc == 0 ? "$out\n" : "${R}$err${N}";
}
my (undef, $role) = $s->agent_psql($tok, 'SELECT session_user');

step('allowed: ordinary work');
show_agent($s, $tok, q{CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric);});
show_agent($s, $tok, q{INSERT INTO orders VALUES (1, 'ACME', 99.50), (2, 'Globex', 12.00);});
show_agent($s, $tok, q{SELECT id, customer, total FROM orders ORDER BY id;});

step('refused by the baseline guardrails, decided on the server\'s own trees');
show_agent($s, $tok, q{DROP TABLE orders;});
show_agent($s, $tok, q{/* hidden */ DO $$ BEGIN EXECUTE 'DR' || 'OP TABLE orders'; END $$;});
show_agent($s, $tok, q{DELETE FROM orders;});
show_agent($s, $tok, q{SELECT * FROM agentgate.rules;});

step('the DBA adds a rule: a row in agentgate.rules, effective on the next statement');
show_dba($s, q{SELECT agentgate.block(commands => '{UPDATE,DELETE}', relation => 'orders', reason => 'orders are append-only for agents');});
show_agent($s, $tok, q{UPDATE orders SET total = 0 WHERE id = 1;});
show_agent($s, $tok, q{INSERT INTO orders VALUES (3, 'Initech', 7.25);});
show_dba($s, qq{SELECT statement, command, decision, rule_id, reason FROM agentgate.explain('$role', 'SELECT * FROM orders; DELETE FROM orders WHERE id = 3; TRUNCATE orders');});

step('the DBA masks columns: rows in agentgate.masks, applied inside the plan of every agent statement');
show_dba($s, q{CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text, email text); INSERT INTO customers VALUES (1, 'Ann Lee', '123-45-6789', 'ann@example.com'), (2, 'Bo Chan', '987-65-4321', 'bo@corp.example'); GRANT SELECT ON customers TO agentgate_agent;});
show_dba($s, q{SELECT agentgate.mask('customers', 'ssn', 'partial', reason => 'PII'), agentgate.mask('customers', 'email', 'redact', reason => 'PII');});
show_agent($s, $tok, q{SELECT * FROM customers ORDER BY id;});
show_agent($s, $tok, q{SELECT count(*) AS found_by_real_ssn FROM customers WHERE ssn = '123-45-6789';});
show_agent($s, $tok, q{SELECT row_to_json(c) FROM customers c WHERE id = 1;});
show_agent($s, $tok, q{COPY customers TO STDOUT;});
show_dba($s, q{SELECT id, ssn, email FROM customers ORDER BY id;});

step('content patterns: a card number in free text is masked on its way to the agent');
show_dba($s, q{CREATE TABLE tickets (id int, note text); INSERT INTO tickets VALUES (1, 'customer says card 4111 1111 1111 1111 was charged twice; reach her at jane@example.com'); GRANT SELECT ON tickets TO agentgate_agent;});
show_agent($s, $tok, q{SELECT note FROM tickets;});
show_agent($s, $tok, q{SELECT note::int FROM tickets;});
show_dba($s, q{SELECT note FROM tickets;});

step('refused at the door: a forged token, and a connection without TLS');
(my $forged = $tok) =~ s/(.)(.{6})$/($1 eq 'A' ? 'B' : 'A') . $2/e;
my ($rc, $out, $err) = $s->agent_psql($forged, 'SELECT 1');
print "${R}$err${N}";
($rc, $out, $err) = $s->agent_psql($tok, 'SELECT 1', sslmode => 'disable');
print "${R}$err${N}";

step('a read-only identity: a read-only transaction is the client\'s choice, a rule is not');
# An agent told to stay read-only (the MCP server wraps each query in BEGIN
# READ ONLY) can end that transaction itself.  Nothing in the baseline
# refuses a DELETE with a WHERE clause; a rule for the identity does.
show_dba($s, q{CREATE TABLE reports (id int PRIMARY KEY, title text); INSERT INTO reports SELECT g, 'report ' || g FROM generate_series(1, 5) g; GRANT SELECT, DELETE ON reports TO agentgate_agent;});
my $ro = $s->token(sub => 'report-bot', ttl => 900);
my (undef, $ro_role) = $s->agent_psql($ro, 'SELECT session_user');
show_agent($s, $ro, q{BEGIN READ ONLY; COMMIT; DELETE FROM reports WHERE id > 3 RETURNING id AS deleted;});
show_dba($s, qq{SELECT agentgate.block(commands => '{WRITE,DDL}', applies_to => '$ro_role', reason => 'report-bot is read-only');});
show_agent($s, $ro, q{BEGIN READ ONLY; COMMIT; DELETE FROM reports WHERE id > 0;});
show_agent($s, $ro, q{SELECT count(*) AS reports_left FROM reports;});

step('a statement that needs a person: held until a DBA approves that exact statement');
show_dba($s, q{CREATE TABLE invoices (id int PRIMARY KEY, total numeric); INSERT INTO invoices VALUES (1, 10), (2, 20); GRANT SELECT, DELETE ON invoices TO agentgate_agent; CREATE ROLE dba_alice LOGIN IN ROLE agentgate_approver;});
show_dba($s, q{SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'invoices', mode => 'wait', timeout => '2 min', reason => 'deleting invoices needs a person');});
{
	# the agent's statement waits in its own process; the DBA looks and approves
	my $sql = q{DELETE FROM invoices WHERE id = 2 RETURNING id AS deleted;};
	pipe(my $rd, my $wr) or die "pipe: $!";
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		close $rd;
		my ($rc, $out, $err) = $s->agent_psql($tok, $sql);
		print $wr $rc == 0 ? "$out\n" : "${R}$err${N}";
		close $wr;
		POSIX::_exit(0);		# the stack belongs to the parent
	}
	close $wr;
	print "${D}agent\$${N} $sql\n";
	for (1 .. 300)
	{
		last if $s->admin_psql(q{SELECT count(*) FROM agentgate.pending_approvals}) > 0;
		select undef, undef, undef, 0.1;
	}
	print "${Y}(the agent's DELETE is waiting for an approver)${N}\n";
	show_dba($s, q{SELECT id, identity, statement, mode, expires_at FROM agentgate.pending_approvals;});
	my $id = $s->admin_psql(q{SELECT max(id) FROM agentgate.pending_approvals WHERE mode = 'wait'});
	print "${D}dba_alice\$${N} SELECT agentgate.approve($id, 'one-off cleanup');\n";
	my ($rc, $out, $err) = $s->admin_psql("SELECT agentgate.approve($id, 'one-off cleanup')",
		user => 'dba_alice', ok_fail => 1);
	print $rc == 0 ? "$out\n" : "${R}$err${N}";
	print "${Y}(the agent's DELETE runs)${N}\n";
	print while <$rd>;
	waitpid $pid, 0;
}
show_dba($s, q{SELECT id, statement, status, decided_by, comment FROM agentgate.approvals ORDER BY id;});

step('what the DBA sees');
show_dba($s, q{SELECT identity, role_name, status, login_count, token_expires FROM agentgate.agents;});
if ($s->admin_psql(q{SELECT to_regclass('agentgate.audit_log') IS NOT NULL}) eq 't')
{
	$s->admin_psql(q{SELECT agentgate.audit_flush()});
	show_dba($s, q{SELECT to_char(ts, 'HH24:MI:SS.MS') AS ts, identity, decision, command_tag, rule_id, left(statement, 50) AS statement FROM agentgate.audit_log WHERE identity = 'ci-agent-7' AND statement !~ '^SET application_name' ORDER BY ts, seq;});
}

step('the DBA revokes the identity: its next connection is refused');
show_dba($s, q{SELECT agentgate.revoke('ci-agent-7', 'demo');});
show_agent($s, $tok, q{SELECT 1;});

step('a subagent acting on behalf of a person (RFC 8693 token exchange: sub = the person, act = the subagent)');
my $deleg = $s->token(sub => 'dana@corp', act => ['report-subagent', 'nightly-pipeline'], ttl => 900);
print "token claims: sub = dana\@corp, act = {sub: report-subagent, act: {sub: nightly-pipeline}}\n";
my ($sub) = $s->proxy_login($deleg);
sub live
{
	my ($sql) = @_;
	print "${D}subagent (live session)\$${N} $sql\n";
	for my $m ($sub->query($sql, 10))
	{
		if ($m->[0] eq 'E')
		{
			my $f = AgentGate::ProxyClient::error_fields($m->[1]);
			print "${R}$f->{S}:  $f->{M}\nDETAIL:  $f->{D}${N}\n";
		}
		elsif ($m->[0] eq 'D')
		{
			print AgentGate::ProxyClient::first_value($m), "\n";
		}
	}
}
live(q{SELECT session_user;});
live(q{SELECT count(*) FROM reports;});
show_dba($s, q{SELECT actor, principal, chain, scopes FROM agentgate.delegated_sessions;});
$s->admin_psql(q{SELECT agentgate.audit_flush()});
show_dba($s, q{SELECT to_char(ts, 'HH24:MI:SS.MS') AS ts, role_name, chain, left(statement, 40) AS statement FROM agentgate.audit_log WHERE chain IS NOT NULL AND statement !~ '^SET application_name' ORDER BY ts, seq;});

step('the person leaves: revoking dana@corp (no role, no agents row) stops the subagent at its next statement');
show_dba($s, q{SELECT agentgate.revoke('dana@corp', 'offboarded');});
live(q{SELECT count(*) FROM reports;});
$sub->close;

step('many identities, one server connection: the shared pool (a second stack, PgBouncer capped at 1 server connection)');
{
	my $p = AgentGate::Stack->new(name => 'demo-pool', audience => 'agentgate-demo',
		proxy_conf => "shared_pool = on\n",
		pgbouncer_conf => "server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\nserver_check_query = RESET ALL\nmax_db_connections = 1\ndefault_pool_size = 1\n");
	$p->start;
	$p->admin_psql(q{CREATE TABLE notes (who text DEFAULT current_user, note text); GRANT SELECT, INSERT ON notes TO agentgate_agent;});
	for my $who (qw(planner executor-1 executor-2))
	{
		my $t = $p->token(sub => $who, ttl => 900);
		print "${D}$who\$${N} INSERT INTO notes (note) VALUES ('hello from $who'); SELECT session_user, current_user, pg_backend_pid()\n";
		my ($rc, $out, $err) = $p->agent_psql($t, qq{INSERT INTO notes (note) VALUES ('hello from $who'); SELECT session_user, current_user, pg_backend_pid();});
		print $rc == 0 ? "$out\n" : "${R}$err${N}";
	}
	show_dba($p, q{SELECT usename, count(*) AS server_connections FROM pg_stat_activity WHERE usename = 'agentgate_pool' GROUP BY 1;});
	show_dba($p, q{SELECT who, note FROM notes ORDER BY note;});
	$p->admin_psql(q{SELECT agentgate.audit_flush()});
	show_dba($p, q{SELECT role_name, left(statement, 50) AS statement FROM agentgate.audit_log WHERE statement LIKE 'INSERT INTO notes%' ORDER BY ts, seq;});
	$p->stop;
}

step('connect by hand');
my $tok2 = $s->token(sub => 'you', ttl => 3600);
print <<"EOT";
  export PGPASSWORD='$tok2'
  psql "@{[ $s->agent_conninfo(sslmode => 'verify-full') ]} sslrootcert=$ca"

  TLS per client (the certificate is checked against the CA file the demo wrote):
    libpq, psql, psycopg 2/3:  sslmode=verify-full sslrootcert=$ca
    node-postgres:             new pg.Client({ host: '127.0.0.1', port: @{[ $s->proxy_port ]}, database: '@{[ $s->db ]}',
                                 user: 'agent', password: TOKEN,
                                 ssl: { ca: fs.readFileSync('$ca') } })
    postgres.js:               postgres({ ..., ssl: { ca: fs.readFileSync('$ca') } })
    pgJDBC:                    ?sslmode=verify-full&sslrootcert=$ca
    tools that cannot refresh a token (the MCP server, BI tools): agentgate-connect
    (docs/connect.md) with proxy_host = 127.0.0.1, proxy_port = @{[ $s->proxy_port ]}, ca_file = $ca

  mint another token (identity "bob", one hour):
  $ENV{AG_TOP}/pooler/agentgate-token mint --key @{[ $s->base ]}/keys/k1.key --alg RS256 --kid k1 \\
      --sub bob --iss '@{[ $s->issuer ]}' --aud '@{[ $s->audience ]}' --ttl 3600

  as the DBA (OS user @{[ scalar getpwuid($<) ]}):  psql -h @{[ $s->pg_socket_dir ]} -p @{[ $s->pg_port ]} -U postgres -d @{[ $s->db ]}
EOT

if (-t STDIN)
{
	print "\n${Y}Press Enter or Ctrl-C to stop the stack and clean up.${N}\n";
	<STDIN>;
}
$s->stop;
print "${G}demo finished; everything it started is stopped and removed.${N}\n";
