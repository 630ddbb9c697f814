# Delegation through the real proxy and PgBouncer: a delegated token's
# chain (RFC 8693 act) is verified, kept with the session's stamp, shown in
# agentgate.delegated_sessions and in every audit row; revoking any
# identity of a chain (including one with no role or agents row) refuses
# the sessions that act for it at their next statement, and keeps doing so
# after a restart; chains cannot be forged or grafted onto another stamp;
# many connections of one identity keep their own session ids in the log.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep);

$SIG{PIPE} = 'IGNORE';

my $s = AgentGate::Stack->new(name => 'delegation',
	proxy_conf => "max_connections_per_identity = 50\n");
$s->start;

sub session { return $s->proxy_login($_[0]) }

sub logged_in
{
	my ($c, $r) = session(@_);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	return $c;
}

# (sqlstate, message) of the query's error, or ('', first value)
sub run
{
	my ($c, $sql) = @_;
	my @m = $c->query($sql, 10);
	return ('closed', '', '') unless @m;
	for my $m (@m)
	{
		if ($m->[0] eq 'E')
		{
			my $f = AgentGate::ProxyClient::error_fields($m->[1]);
			return ($f->{C}, $f->{M}, $f->{D} // '');
		}
	}
	return ('', AgentGate::ProxyClient::first_value(@m));
}

sub val
{
	my @r = run(@_);
	if ($r[0] ne '')
	{
		for my $log ('postgres', 'pgbouncer', 'proxy')
		{
			open my $fh, '<', $s->log_file($log) or next;
			my @l = <$fh>;
			diag("---- $log.log\n", @l[ ($#l > 30 ? $#l - 30 : 0) .. $#l ]);
		}
		die "unexpected error $r[0]: $r[1]\n";
	}
	return $r[1];
}

sub admin { $s->admin_psql($_[0]) }

# the audit writer commits within its interval; wait for n rows
sub wait_rows
{
	my ($where, $n) = @_;
	for (1 .. 100)
	{
		return 1 if admin("SELECT count(*) FROM agentgate.audit_log WHERE $where") >= $n;
		sleep 0.1;
	}
	return 0;
}

my @chain3 = ('subagent-7', 'ci-pipeline', 'contractor@corp');
my $tok3 = $s->token(sub => 'contractor@corp', act => [ 'subagent-7', 'ci-pipeline' ],
	scope => 'read');

# --- a chain of three: the role is the current actor's
my $c = logged_in($tok3);
my $sid = val($c, 'SELECT agentgate.session_id()');
like($sid, qr/^[0-9a-f]{16}$/, 'delegated session has a session id');
is(val($c, 'SELECT session_user'), admin("SELECT agentgate.role_for_identity('subagent-7')"),
	'the session runs as the current actor (act.sub)');
is(admin("SELECT actor || '|' || principal || '|' || chain::text || '|' || scopes::text"
		. " FROM agentgate.delegated_sessions WHERE session_id = '$sid'"),
	'subagent-7|contractor@corp|{subagent-7,ci-pipeline,contractor@corp}|{read}',
	'agentgate.delegated_sessions shows actor, principal, chain and scopes');
is(admin("SELECT count(*) FROM agentgate.agents WHERE identity IN ('ci-pipeline', 'contractor\@corp')"),
	'0', 'earlier actors and the principal need no agents row');
val($c, "SELECT 'chain of three'");
ok(wait_rows("session_id = '$sid'", 3), 'the session\'s statements are in the audit log');
is(admin("SELECT count(*) FROM agentgate.audit_log WHERE session_id = '$sid'"
		. " AND chain IS DISTINCT FROM '{subagent-7,ci-pipeline,contractor\@corp}'"),
	'0', 'every audit row of the session carries the whole chain');
is(admin("SELECT chain FROM agentgate.sessions WHERE session_id = '$sid'"),
	'{subagent-7,ci-pipeline,contractor@corp}', 'and so does the session\'s summary (agentgate.sessions)');

# --- agents cannot read the chains nor mint bound stamps
my @r = run($c, 'SELECT * FROM agentgate.delegated_sessions');
is($r[0], '42501', 'an agent cannot read agentgate.delegated_sessions');
@r = run($c, "SELECT agentgate.session_stamp_bound(session_user, '{x,y}', NULL, now() + interval '1 hour')");
is($r[0], '42501', 'an agent cannot mint a stamp bound to a chain of its choosing');
@r = run($c, qq{SELECT agentgate.session_stamp(session_user, '{"sub":"y","act":{"sub":"x"},"exp":9999999999}')});
is($r[0], '42501', 'nor through session_stamp(role, claims)');

# --- forged chains and scopes are refused at login
for my $bad (
	[ 'act as a string', claim => { act => '"ci-pipeline"' } ],
	[ 'act without sub', claim => { act => '{"iss":"x"}' } ],
	[ 'nine identities', act => [ map { "a$_" } 1 .. 8 ] ],
	[ 'a loop', act => [ 'subagent-7', 'contractor@corp' ] ],
	[ 'scope as an array', claim => { scope => '["read"]' } ])
{
	my ($what, %claims) = @$bad;
	my (undef, $res) = session($s->token(sub => 'contractor@corp', %claims));
	ok(!$res->{ok} && $res->{error}{C} eq '28000', "forged delegation refused: $what");
}
{
	# a token re-signed by someone else: the chain is only as good as the signature
	my ($h, $p, $sig) = split /\./, $tok3;
	my (undef, $res) = session("$h.$p." . reverse($sig));
	ok(!$res->{ok}, 'a delegated token with a bad signature is refused');
}

# --- the stamp binds the chain: a stamp of this role without that chain,
# or with another, does not verify
{
	my $plain = admin("SELECT (agentgate.session_stamp(agentgate.role_for_identity('subagent-7'))).stamp");
	my ($pfx, $psid, $pmac) = split /\./, $plain;
	my $stamp = val($c, "SELECT current_setting('application_name')");
	$stamp =~ s/.* //;
	my (undef, undef, $mac) = split /\./, $stamp;
	# graft this session's MAC onto a fresh session id, and the reverse
	for my $forged ("ag1.$psid.$mac", "ag1.$sid.$pmac")
	{
		my ($st) = run($c, "SET application_name = 'x $forged'");
		is($st, '42501', "grafted stamp $forged refused");
	}
	is(val($c, 'SELECT agentgate.session_id()'), $sid, 'the session keeps its own stamp');
}

# --- scope narrowing against group grants: one role per identity, and the
# memberships outside the scope are not in effect for the scoped session
admin(q{CREATE ROLE scope_reader NOLOGIN; CREATE ROLE scope_writer NOLOGIN;
	CREATE TABLE public.facts (x int); GRANT SELECT ON public.facts TO scope_reader;
	GRANT INSERT ON public.facts TO scope_writer;
	GRANT SELECT (x) ON public.facts TO PUBLIC;
	CREATE TABLE public.notes (x int); GRANT SELECT ON public.notes TO scope_writer;
	INSERT INTO agentgate.group_roles VALUES ('analysts', 'scope_reader'), ('ops', 'scope_writer')});
{
	my $groups = [ 'analysts', 'ops' ];
	my $full = logged_in($s->token(sub => 'planner', groups => $groups));
	my $narrow = logged_in($s->token(sub => 'planner', groups => $groups, scope => 'analysts'));
	is(val($full, 'SELECT count(*) FROM public.facts'), '0', 'unscoped session reads');
	is(val($full, 'INSERT INTO public.facts VALUES (1) RETURNING x'), '1', 'unscoped session writes (group ops)');
	is(val($narrow, 'SELECT count(*) FROM public.facts'), '1', 'scoped session reads (group analysts, in scope)');
	my @e = run($narrow, 'INSERT INTO public.facts VALUES (2)');
	is($e[0], '42501', 'scoped session may not write: the grant comes through ops, outside its scope');
	like($e[1], qr/outside this session's scope/, '... and says so');
	@e = run($narrow, 'SELECT * FROM public.notes');
	is($e[0], '42501', 'a table readable only through ops is refused to the scoped session');
	@e = run($narrow, 'SET ROLE scope_writer; INSERT INTO public.facts VALUES (3)');
	is($e[0], '42501', 'SET ROLE to a group outside the scope does not bring its rights back');
	run($narrow, 'RESET ROLE');
	is(val($full, 'INSERT INTO public.facts VALUES (4) RETURNING x'), '4',
		'the scoped login did not strip the unscoped session\'s membership');
	is(admin("SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
			. " WHERE m.member = agentgate.role_for_identity('planner')::regrole"
			. " AND g.rolname IN ('scope_reader', 'scope_writer')"), '2', 'one role, both memberships kept');
	my $exec = logged_in($s->token(sub => 'planner', act => ['executor-1'], groups => $groups,
			scope => 'ops'));
	is(val($exec, 'INSERT INTO public.facts VALUES (5) RETURNING x'), '5', 'a delegated executor with scope ops writes');
	@e = run($exec, 'SELECT count(*) FROM public.facts');
	is($e[0], '', 'and reads through the column grant to PUBLIC');

	# DBA rules can target a scope
	admin(q{INSERT INTO agentgate.rules (commands, scopes, action, reason)
		VALUES ('{INSERT,UPDATE,DELETE}', '{ops}', 'block', 'sessions with scope ops may only read')});
	@e = run($exec, 'INSERT INTO public.facts VALUES (6)');
	is($e[0], '42501', 'a rule with scopes {ops} blocks the ops-scoped session');
	like($e[1], qr/scope ops may only read/, '... naming the rule');
	is(val($full, 'INSERT INTO public.facts VALUES (7) RETURNING x'), '7', 'and not the unscoped session');
	my ($rc, $out, $err) = $s->admin_psql(q{INSERT INTO agentgate.rules (scopes, action)
		VALUES ('{"two words"}', 'block')}, ok_fail => 1);
	like($err // '', qr/not a scope a token can carry/, 'a scope no token can carry is refused');
	admin(q{DELETE FROM agentgate.rules WHERE scopes IS NOT NULL});
	$_->close for ($full, $narrow, $exec);
}

# --- many connections of one delegated identity: each keeps its own id
{
	my @cs = map { logged_in($tok3) } 1 .. 8;
	my @ids = map { val($_, 'SELECT agentgate.session_id()') } @cs;
	my %seen = map { $_ => 1 } @ids;
	is(scalar keys %seen, 8, 'eight connections, eight session ids');
	for my $round (1 .. 5)
	{
		for my $i (0 .. $#cs)
		{
			val($cs[$i], "SELECT 'conn $i round $round'");
		}
	}
	ok(wait_rows("statement LIKE 'SELECT \$1%' AND session_id = ANY('{" . join(',', @ids) . "}')", 40),
		'all 40 statements are in the log');
	my $wrong = 0;
	for my $i (0 .. $#cs)
	{
		# literals are normalised away; the connection is told by the session id
		$wrong += admin("SELECT count(*) FROM agentgate.audit_log WHERE session_id = '$ids[$i]'"
			  . " AND command_tag = 'SELECT' AND statement LIKE 'SELECT \$1%'") != 5;
	}
	is($wrong, 0, 'each connection\'s five statements are attributed to its own session');
	is(admin("SELECT count(DISTINCT pid) > 0 FROM agentgate.audit_log WHERE session_id = ANY('{"
			. join(',', @ids) . "}')"), 't', 'served by pooled backends');

	# replaying another delegated session's stamp: refused inside a
	# transaction, and the proxy closes a connection that adopts it
	my $other_stamp = val($cs[1], "SELECT current_setting('application_name')");
	$other_stamp =~ s/.* //;
	my ($st, $msg) = run($cs[0], "SET application_name = 'x $other_stamp'; SELECT 1");
	is($msg, 'agent session changed its session stamp inside a transaction',
		'replaying another session\'s delegated stamp inside a transaction is refused');
	($st, $msg) = run($cs[0], "SET application_name = 'x $other_stamp'");
	is("$st $msg", '42501 agent session changed its session stamp',
		'adopting it on its own: the proxy closes the connection');
	ok($cs[0]->wait_closed(2), '... and it is closed');
	shift @cs;
	$_->close for @cs;
}

# --- another chain through the same actor, for another principal
my $other = logged_in($s->token(sub => 'alice@corp', act => ['subagent-7']));
is(val($other, 'SELECT 1'), '1', 'subagent-7 acting for alice@corp');

# --- revoking the middle identity (no role, no agents row)
like(admin("SELECT agentgate.revoke('ci-pipeline', 'pipeline compromised')"), qr/^$/,
	'revoke() takes an identity that has no agents row');
@r = run($c, 'SELECT 1');
is($r[0], '28000', 'the session acting for the revoked identity is refused at its next statement');
like($r[1], qr/an identity this session acts for has been revoked/, '... as revoked');
like($r[2], qr/"ci-pipeline"/, '... naming the revoked identity');
is(val($other, 'SELECT 2'), '2', 'a session of the same actor with another chain goes on');
{
	my (undef, $res) = session($tok3);
	ok(!$res->{ok}, 'a new login with the revoked identity in its chain is refused');
}
ok(wait_rows("session_id = '$sid' AND sqlstate = '28000'", 1), 'the refusal is audited with the chain');

# --- the list survives a restart (read from the audit database)
$s->restart_postgres;
{
	my $ok = 0;
	for (1 .. 50)
	{
		my (undef, $res) = session($tok3);
		if (!$res->{ok} && ($res->{error}{M} // '') =~ /revoked/) { $ok = 1; last }
		sleep 0.2;
	}
	ok($ok, 'after a restart the revoked identity still stops logins that act for it');
}
{
	my ($st) = run($other, 'SELECT 3');
	isnt($st, '', 'a delegated session from before the restart no longer runs (its chain is gone)');
}

# --- resuming lets the chain log in again; revoking the principal stops it
admin("SELECT agentgate.resume('ci-pipeline')");
$c = logged_in($tok3);
is(val($c, 'SELECT 4'), '4', 'resumed: the chain logs in again');
admin("SELECT agentgate.revoke('contractor\@corp')");
@r = run($c, 'SELECT 5');
is($r[0], '28000', 'revoking the principal refuses the subagent at its next statement');
admin("SELECT agentgate.resume('contractor\@corp')");
is(val($c, 'SELECT 6'), '6', 'and resuming it lets the session go on');

# --- revoking the connecting actor itself: its role stops too
admin("SELECT agentgate.revoke('subagent-7')");
@r = run($c, 'SELECT 7');
like($r[0], qr/^(28000|57P01|closed)$/, "revoking the current actor refuses or closes the session ($r[0])");

done_testing();
