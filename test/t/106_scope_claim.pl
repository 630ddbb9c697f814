# scope_claim through the real proxy and PgBouncer: with scope_claim = scp
# an Okta-style token (an "scp" array) or an Entra-style one (an "scp"
# string) narrows its session exactly as a "scope" token does with the
# default configuration; a token carrying "scope" as well is refused as
# ambiguous; malformed scp entries are refused; and with the default
# configuration "scp" is ignored.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep);

$SIG{PIPE} = 'IGNORE';

my $s = AgentGate::Stack->new(name => 'scope_claim', proxy_conf => "scope_claim = scp\n");
$s->start;

sub admin { $s->admin_psql($_[0]) }

# The sqlstate of $sql in session $c ('' when it succeeds) and its message.
sub outcome
{
	my ($c, $sql) = @_;
	for my $m ($c->query($sql, 10))
	{
		next unless $m->[0] eq 'E';
		my $f = AgentGate::ProxyClient::error_fields($m->[1]);
		return ($f->{C}, $f->{M});
	}
	return ('', '');
}

# What a session of $tok may do, as one line; dies if the login fails.
sub rights
{
	my ($tok) = @_;
	my ($c, $r) = $s->proxy_login($tok);
	die "login failed: $r->{error}{M}: " . ($r->{error}{D} // '') . "\n" unless $r->{ok};
	my $sid = AgentGate::ProxyClient::first_value($c->query('SELECT agentgate.session_id()'));
	my @line = map { my ($st) = outcome($c, $_->[1]); "$_->[0]=" . ($st eq '' ? 'ok' : $st) }
	  ([ read => 'SELECT count(*) FROM public.facts' ],
		[ write => 'INSERT INTO public.facts VALUES (1)' ],
		[ notes => 'SELECT count(*) FROM public.notes' ]);
	my $scopes = admin("SELECT scopes FROM agentgate.delegated_sessions WHERE session_id = '$sid'");
	$c->close;
	return join(' ', @line, 'scopes=' . ($scopes eq '' ? 'none' : $scopes));
}

# The login error (sqlstate, detail) of $tok, or ('ok', '').
sub refusal
{
	my (undef, $r) = $s->proxy_login($_[0]);
	return $r->{ok} ? ('ok', '') : ($r->{error}{C}, $r->{error}{D} // '');
}

# the groups of 105_identity_delegation: analysts may read, ops may write
admin(q{CREATE ROLE scope_reader NOLOGIN; CREATE ROLE scope_writer NOLOGIN;
	CREATE TABLE public.facts (x int); GRANT SELECT ON public.facts TO scope_reader;
	GRANT INSERT ON public.facts TO scope_writer;
	CREATE TABLE public.notes (x int); GRANT SELECT ON public.notes TO scope_writer;
	INSERT INTO agentgate.group_roles VALUES ('analysts', 'scope_reader'), ('ops', 'scope_writer')});
my $groups = [ 'analysts', 'ops' ];
my $unscoped = 'read=ok write=ok notes=ok scopes=none';
my $analysts = 'read=ok write=42501 notes=42501 scopes={analysts}';

# --- scope_claim = scp
is(rights($s->token(sub => 'planner', groups => $groups)), $unscoped, 'a token without scopes has both groups');
my $okta = $s->token(sub => 'planner', groups => $groups, scp => ['analysts']);
is(rights($okta), $analysts, 'Okta: an scp array narrows the session to its scope');
is(rights($okta), $analysts, 'and again on a second login with the same token');
{
	my ($c) = $s->proxy_login($okta);
	my ($st, $msg) = outcome($c, 'INSERT INTO public.facts VALUES (2)');
	like($msg, qr/outside this session's scope/, 'the refused write says it is outside the scope');
	$c->close;
}
# like a "scope" token, a scoped token is verified and logged in each time
unlike(AgentGate::Stack::_slurp($s->log_file('proxy')), qr/identity=planner .*login \(cached\)/,
	'none of the scp token\'s three logins was served by the login cache');
is(rights($s->token(sub => 'planner', groups => $groups, claim => { scp => '"analysts"' })),
	$analysts, 'Entra ID: an scp string narrows it the same way');
is(rights($s->token(sub => 'planner', groups => $groups, scp => [ 'analysts', 'ops' ])),
	'read=ok write=ok notes=ok scopes={analysts,ops}', 'two scp entries, two groups in effect');
is(rights($s->token(sub => 'planner', act => ['executor-1'], groups => $groups, scp => ['ops'])),
	'read=42501 write=ok notes=ok scopes={ops}', 'scp goes with a delegation chain');

my ($st, $d) = refusal($s->token(sub => 'planner', groups => $groups, scp => ['analysts'], scope => 'ops'));
is($st, '28000', 'a token with both scp and scope is refused');
like($d, qr/both "scope" and the configured scope claim "scp".*ambiguous/, '... as ambiguous');
($st, $d) = refusal($s->token(sub => 'planner', groups => $groups, scope => 'analysts'));
is($st, '28000', 'a token with scope but no scp is refused too: scope is not the configured claim');
like($d, qr/"scope".*"scp"/, '... naming both claims');
for my $bad ([ 'an empty entry', scp => [ 'analysts', '' ] ],
	[ 'a duplicate', scp => [ 'ops', 'ops' ] ],
	[ 'a number', claim => { scp => '7' } ],
	[ 'an empty array', claim => { scp => '[]' } ],
	[ 'an entry with a space', claim => { scp => '["analysts ops"]' } ],
	[ 'an object entry', claim => { scp => '[{"x":1}]' } ],
	[ '33 entries', scp => [ map { "s$_" } 1 .. 33 ] ])
{
	my ($what, %claims) = @$bad;
	($st, $d) = refusal($s->token(sub => 'planner', groups => $groups, %claims));
	is($st, '28000', "scp with $what refused");
	like($d, qr/^bad claims: .*"scp"/, "... with a bad-claims error naming scp ($d)");
}

# --- back to the default configuration (scope_claim = scope) by SIGHUP
$s->{proxy_conf} = '';
$s->write_proxy_conf;
$s->signal('proxy', 'HUP');
my $now = '';
for (1 .. 50)
{
	$now = rights($okta);
	last if $now eq $unscoped;
	sleep 0.1;
}
is($now, $unscoped, 'default configuration: scp is ignored, the session has both groups');
is(rights($s->token(sub => 'planner', groups => $groups, scope => 'analysts')), $analysts,
	'and a scope token narrows the session exactly as the scp token did');
($st, $d) = refusal($s->token(sub => 'planner', groups => $groups, scp => ['analysts'], scope => 'ops'));
is($st, 'ok', 'a token with both claims is read by its scope alone');
($st, $d) = refusal($s->token(sub => 'planner', claim => { scp => '7' }));
is($st, 'ok', 'and scp is not checked: it means nothing here');

$s->stop;
done_testing();
