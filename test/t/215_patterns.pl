# Content patterns through the real proxy + PgBouncer: the built-in ones
# mask secrets in free text in every way an agent reads it (simple
# protocol, extended protocol in text and binary format, a prepared
# statement, COPY TO STDOUT in text and CSV, a NOTICE, an error message);
# binary values of other types pass untouched; a pattern a DBA disables is
# not applied and one a DBA adds is, after the proxy reloads on the
# NOTIFY; a pattern for a group applies only to its members; the superuser
# (who does not come through the proxy: only agents do) reads real values.
# A set the proxy cannot compile leaves the previous one in force; a proxy
# that cannot read the patterns refuses logins until it can.
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;
use IPC::Run qw(run);
use JSON::PP;
use Time::HiRes qw(usleep);

my $py = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $c = AgentGate::Clients->new(name => 'patterns');
my $s = $c->stack;
my $tok = AgentGate::Stack::_slurp($s->base . '/token');
$tok =~ s/\s+\z//;

my $card = '4111 1111 1111 1111';
$s->admin_psql(<<"EOS");
CREATE TABLE public.secrets (id int PRIMARY KEY, note text, doc jsonb, big bigint, card_int bigint);
INSERT INTO public.secrets VALUES
  (1, 'customer jane\@example.com paid with $card', '{"ssn": "123-45-6789", "ok": "fine"}', 42, 4111111111111111),
  (2, 'key AKIAIOSFODNN7EXAMPLE and ORD-123456', NULL, NULL, NULL),
  (3, '$card', NULL, NULL, NULL),
  (4, 'iban DE89 3704 0044 0532 0130 00, not a card: 4111 1111 1111 1112', NULL, NULL, NULL);
GRANT SELECT ON public.secrets TO agentgate_agent;
CREATE FUNCTION public.shout(t text) RETURNS void LANGUAGE plpgsql AS
  \$\$BEGIN RAISE NOTICE 'value: %', t; END\$\$;
GRANT EXECUTE ON FUNCTION public.shout(text) TO agentgate_agent;
EOS

# simple protocol (psql)
my ($rc, $out, $err) = $s->agent_psql($tok, "SELECT note FROM secrets ORDER BY id;\n");
is($rc, 0, 'agent reads the table') or diag $err;
is($out, join("\n",
		'customer [email] paid with [card]',
		'key [aws-key] and ORD-123456',
		'[card]',
		'iban [iban], not a card: 4111 1111 1111 1112'),
	'simple protocol: card, e-mail, AWS key and IBAN masked; a Luhn failure is not');
unlike($out, qr/4111 1111 1111 1111|jane\@example|AKIAIOSF/, 'no secret in the output');

($rc, $out, $err) = $s->agent_psql($tok, "SELECT doc::text, big, card_int FROM secrets WHERE id = 1;\n");
is($out, '{"ok": "fine", "ssn": "[ssn]"}|42|[card]', 'simple protocol: jsonb as text and a bigint holding a card number masked too');

# NOTICE and error text
($rc, $out, $err) = $s->agent_psql($tok, "SELECT public.shout('number $card');\n");
like($err, qr/NOTICE:  value: number \[card\]/, 'NOTICE text masked');
unlike($err, qr/4111/, 'no card number in the NOTICE');
($rc, $out, $err) = $s->agent_psql($tok, "SELECT note::int FROM secrets WHERE id = 3;\n");
like($err, qr/invalid input syntax for type integer: "\[card\]"/, 'error message masked');
unlike($err, qr/4111/, 'no card number in the error');

# COPY TO STDOUT through psql
($rc, $out, $err) = $s->agent_psql($tok, "COPY (SELECT id, note FROM secrets WHERE id <= 2 ORDER BY id) TO STDOUT;\n");
is($out, "1\tcustomer [email] paid with [card]\n2\tkey [aws-key] and ORD-123456", 'COPY TO STDOUT masked');

# psycopg 3: extended protocol, text and binary, prepared, COPY, NOTICE, error
SKIP:
{
	skip 'python3-psycopg is not installed', 9 unless run([ $py, '-c', 'import psycopg' ], '2>', \my $e);
	my $r = $c->run_client([ $py, $c->top . '/test/clients/psycopg_patterns.py' ]);
	is($r->{rc}, 0, 'psycopg program ran') or diag $r->{err};
	my %v;
	for (split /\n/, $r->{out})
	{
		$v{$1} = decode_json($2) if /^R (\S+) (.*)$/;
	}
	is_deeply($v{ext_text}, [ 'customer [email] paid with [card]', '{"ok": "fine", "ssn": "[ssn]"}', 42 ],
		'extended protocol, text format');
	is_deeply($v{ext_binary},
		[ 'customer [email] paid with [card]', { ok => 'fine', ssn => '[ssn]' }, 42, 4111111111111111 ],
		'binary format: text and jsonb masked; a binary bigint is not scanned');
	is($v{prepared}, 'key [aws-key] and ORD-123456', 'prepared statement');
	is($v{copy_text}, "1\tcustomer [email] paid with [card]\n2\tkey [aws-key] and ORD-123456\n3\t[card]\n"
		  . "4\tiban [iban], not a card: 4111 1111 1111 1112\n", 'COPY text');
	like($v{copy_csv}, qr/^1,customer \[email\] paid with \[card\]\n/, 'COPY CSV');
	is_deeply($v{notice}, ['value: card [card]'], 'NOTICE through psycopg');
	is($v{error}, 'invalid input syntax for type integer: "[card]"', 'error through psycopg');
	unlike($r->{out}, qr/4111 1111 1111 1111|jane\@|AKIAIOSF|123-45-6789/, 'no secret reached psycopg');
}

# A DBA disables e-mail and adds a pattern; the proxy reloads on the NOTIFY.
$s->admin_psql(<<'EOS');
UPDATE agentgate.patterns SET enabled = false WHERE name = 'email';
INSERT INTO agentgate.patterns (name, regex, replacement) VALUES ('order_ref', 'ORD-[0-9]{6}', '[order]');
EOS
my $masked;
for (1 .. 50)
{
	($rc, $out, $err) = $s->agent_psql($tok, "SELECT note FROM secrets WHERE id <= 2 ORDER BY id;\n");
	last if ($masked = $out) =~ /\[order\]/;
	usleep(100_000);
}
is($masked, "customer jane\@example.com paid with [card]\nkey [aws-key] and [order]",
	'after the change: e-mail no longer masked, the DBA\'s pattern applied');
my @loads = AgentGate::Stack::_slurp($s->log_file('proxy')) =~ /content patterns loaded/g;
cmp_ok(scalar(@loads), '>=', 2, 'the proxy reloaded the set');

# a pattern for a group the agent is not in is not applied to it
$s->admin_psql(<<'EOS');
CREATE ROLE regress_pat_group NOLOGIN;
INSERT INTO agentgate.patterns (name, regex, replacement, applies_to)
VALUES ('group_only', 'paid with', '[group]', 'regress_pat_group');
EOS
usleep(500_000);
($rc, $out, $err) = $s->agent_psql($tok, "SELECT note FROM secrets WHERE id = 1;\n");
is($out, "customer jane\@example.com paid with [card]", 'a pattern for another group is not applied');
my $role = $s->admin_psql("SELECT agentgate.role_for_identity('client-patterns')");
$s->admin_psql(qq{GRANT regress_pat_group TO "$role"; UPDATE agentgate.patterns SET reason = 'reload' WHERE name = 'group_only';});
for (1 .. 50)
{
	($rc, $out, $err) = $s->agent_psql($tok, "SELECT note FROM secrets WHERE id = 1;\n");
	last if $out =~ /\[group\]/;
	usleep(100_000);
}
is($out, "customer jane\@example.com [group] [card]", 'once a member, the group\'s pattern applies');

# A set the proxy cannot compile (a row that bypassed the table's check)
# leaves the previous one in force, loudly.
$s->admin_psql(<<'EOS');
ALTER TABLE agentgate.patterns DISABLE TRIGGER patterns_validate;
INSERT INTO agentgate.patterns (name, regex) VALUES ('broken', '(a)\1');
ALTER TABLE agentgate.patterns ENABLE TRIGGER patterns_validate;
EOS
my $log;
for (1 .. 50)
{
	last if ($log = AgentGate::Stack::_slurp($s->log_file('proxy'))) =~ /content patterns could not be compiled/;
	usleep(100_000);
}
like($log, qr/content patterns could not be compiled: pattern "broken": .*; the previous set stays in force/,
	'a pattern that does not compile is reported');
($rc, $out, $err) = $s->agent_psql($tok, "SELECT note FROM secrets WHERE id = 3;\n");
is($out, '[card]', 'the previous set stays in force');
$s->admin_psql(q{DELETE FROM agentgate.patterns WHERE name = 'broken'});

# Fail closed: a proxy that cannot read the patterns admits no agent, and
# does once it can.
$s->admin_psql('REVOKE EXECUTE ON FUNCTION agentgate.patterns_for_proxy() FROM agentgate_proxy');
$s->restart_proxy;
($rc, $out, $err) = $s->agent_psql($tok, "SELECT 1;\n");
isnt($rc, 0, 'no login while the patterns cannot be read');
like($err, qr/login failed/, '... refused as a failed login');
like(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/content patterns could not be read: .*logins are refused until they load/,
	'... and the reason logged');
$s->admin_psql('GRANT EXECUTE ON FUNCTION agentgate.patterns_for_proxy() TO agentgate_proxy');
for (1 .. 50)
{
	($rc, $out, $err) = $s->agent_psql($tok, "SELECT note FROM secrets WHERE id = 3;\n");
	last if $rc == 0;
	usleep(200_000);
}
is($out, '[card]', 'logins resume once the patterns load (read again every second)');

# the superuser, directly (not through the proxy), reads real values
is($s->admin_psql('SELECT note FROM secrets WHERE id = 3'), $card, 'superuser reads the real value');

$c->finish;
done_testing();
