# The shared pool (proxy shared_pool = on): every agent of a database is a
# client of one PgBouncer pool logged in as agentgate_pool, and the proxy's
# carrier, CALL agentgate.assume(role, stamp), gives each transaction window
# its identity in the backend.  Real proxy + PgBouncer (DISCARD ALL after
# every window) + PostgreSQL.
#
# Part 1, a pool of ONE server connection, so that two identities are sure
# to share a backend (checked with pg_backend_pid()): nothing crosses from
# identity a to identity b — a temp table, a prepared statement, a WITH HOLD
# cursor, lastval(), an advisory lock, LISTEN, a session SET and
# search_path; every way out of the identity is refused (RESET ROLE, SET
# ROLE, a function's SET role clause, SET SESSION AUTHORIZATION,
# set_config('role'), DISCARD ALL before a statement, an agent calling
# agentgate.assume() itself); pipelined queries run as their identity or
# not at all; VACUUM and CREATE INDEX CONCURRENTLY run after the carrier; a
# rule for one identity applies to it alone; a late cancel does not hit the
# next identity's statement; a revoked identity is refused while another on
# the same backend goes on.
#
# Part 2, a pool of 4: 200 identities connected at once, each statement run
# and audited as its own identity, never more than 4 server connections; a
# rule for one of them and the revocation of another touch no one else.
# Every check first shows that the state (or the effect) exists where it
# should, so that it can fail.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';

sub pool_conf
{
	my ($n) = @_;
	# server_check_delay = 0: PgBouncer's liveness check (the docs' RESET ALL)
	# runs before every assignment, on a backend that serves no identity
	return "server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\n"
	  . "server_check_query = RESET ALL\nserver_check_delay = 0\n"
	  . "max_db_connections = $n\ndefault_pool_size = $n\n";
}

my $s = AgentGate::Stack->new(name => 'shared-pool',
	proxy_conf => "shared_pool = on\n", pgbouncer_conf => pool_conf(1));
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;

# --- helpers

sub session
{
	my ($tok) = @_;
	my $cc = AgentGate::ProxyClient->new(port => $port);
	my $r = $cc->login($tok, database => $db);
	die "login failed: " . ($r->{error}{M} // '?') . "\n" unless $r->{ok};
	$cc->{login} = $r;
	return $cc;
}

# Every DataRow's columns, the first error, notices and notifications of a
# list of messages.
sub digest
{
	my (@msgs) = @_;
	my %r = (rows => [], err => undef, notes => [], notifications => [], ready => 0);
	for my $m (@msgs)
	{
		my ($t, $cb) = @$m;
		if ($t eq 'D')
		{
			my $n = unpack('n', $cb);
			my $off = 2;
			my @cols;
			for (1 .. $n)
			{
				my $len = unpack('N', substr($cb, $off, 4));
				$off += 4;
				if ($len == 0xffffffff) { push @cols, undef; next; }
				push @cols, substr($cb, $off, $len);
				$off += $len;
			}
			push @{ $r{rows} }, \@cols;
		}
		elsif ($t eq 'E')
		{
			$r{err} //= AgentGate::ProxyClient::error_fields($cb);
		}
		elsif ($t eq 'N')
		{
			push @{ $r{notes} }, AgentGate::ProxyClient::error_fields($cb);
		}
		elsif ($t eq 'A')
		{
			my ($pid, $rest) = (unpack('N', $cb), substr($cb, 4));
			my ($chan, $payload) = split /\0/, $rest;
			push @{ $r{notifications} }, "$chan:" . ($payload // '');
		}
		elsif ($t eq 'Z')
		{
			$r{ready} = 1;
		}
	}
	return \%r;
}

sub ask
{
	my ($cc, $sql, $timeout) = @_;
	my $r = digest($cc->query($sql, $timeout));
	note("[$sql] -> " . ($r->{err} ? "ERROR $r->{err}{C} $r->{err}{M}"
		  : join(' | ', map { join(',', map { $_ // 'NULL' } @$_) } @{ $r->{rows} })));
	return $r;
}

sub val { my $r = shift; return @{ $r->{rows} } ? $r->{rows}[0][0] : undef; }
sub last_val { my $r = shift; return @{ $r->{rows} } ? $r->{rows}[-1][0] : undef; }
sub errmsg { my $r = shift; return $r->{err} ? "$r->{err}{C} $r->{err}{M}" : ''; }

# extended-protocol messages (unnamed statement and portal)
sub parse_msg { return ('P', "\0$_[0]\0" . pack('n', 0)); }
sub bind_msg { return ('B', "\0\0" . pack('nnn', 0, 0, 0)); }
sub exec_msg { return ('E', "\0" . pack('N', 0)); }

# Messages up to ReadyForQuery (or EOF).
sub read_until_ready
{
	my ($cl) = @_;
	my @m;
	while (1)
	{
		my ($t, $body) = $cl->read_message(30);
		last unless defined $t;
		push @m, [ $t, $body ];
		last if $t eq 'Z';
	}
	return @m;
}

# Sends the messages (pairs of type and body) as one write, then reads up
# to ReadyForQuery.
sub pipeline
{
	my ($cc, @m) = @_;
	my $bytes = '';
	while (my ($t, $cb) = splice(@m, 0, 2))
	{
		$bytes .= $t . pack('N', 4 + length $cb) . $cb;
	}
	$bytes .= 'S' . pack('N', 4);
	$cc->write_raw($bytes);
	return digest(read_until_ready($cc));
}

sub role_of
{
	my ($identity) = @_;
	return $s->admin_psql("SELECT role_name FROM agentgate.agents WHERE identity = '$identity'");
}

# --- objects the agents share
$s->admin_psql(q{
CREATE TABLE cross_t (who text);
GRANT SELECT, INSERT ON cross_t TO agentgate_agent;
CREATE SEQUENCE cross_seq;
GRANT USAGE, SELECT ON SEQUENCE cross_seq TO agentgate_agent;
CREATE TABLE pol_t (x int);
INSERT INTO pol_t VALUES (1);
GRANT SELECT ON pol_t TO agentgate_agent;
});
# LISTEN is refused to agents by the baseline (a pooled server connection
# serves others); allowed here so that a LISTEN can take effect, and be
# shown not to outlive its window
$s->admin_psql(q{SELECT agentgate.allow(commands => '{LISTEN}', priority => 2000,
	reason => 'tap: a LISTEN that must not reach the next identity')});

my $tok_a = $s->token(sub => 'sp-a');
my $tok_b = $s->token(sub => 'sp-b');
my $tok_c = $s->token(sub => 'sp-c');
my $ca = session($tok_a);
my $cb = session($tok_b);
my $cc = session($tok_c);
my $role_a = role_of('sp-a');
my $role_b = role_of('sp-b');
my $role_c = role_of('sp-c');
ok($role_a && $role_b && $role_c && $role_a ne $role_b, "three identities logged in ($role_a, $role_b)");

# ============ part 1: one server connection, identities in turn

my $who = 'SELECT pg_backend_pid(), current_user, session_user, agentgate.session_id()';
my $ra = ask($ca, $who);
my $rb = ask($cb, $who);
my $rc = ask($cc, $who);
is(errmsg($ra) . errmsg($rb) . errmsg($rc), '', 'each identity runs statements on the shared pool');
my ($pid_a, $cu_a, $su_a, $sid_a) = @{ $ra->{rows}[0] // [] };
my ($pid_b, $cu_b, $su_b, $sid_b) = @{ $rb->{rows}[0] // [] };
ok(defined $pid_a && defined $pid_b && $pid_a eq $pid_b,
	'a and b ran on the same backend (a pool of one)');
is($cu_a, $role_a, "current_user is a's own role");
is($cu_b, $role_b, "current_user is b's own role on the same backend");
is($su_a, 'agentgate_pool', 'session_user shows agentgate_pool');
ok($sid_a && $sid_b && $sid_a ne $sid_b, 'each connection has its own session id');
is($s->admin_psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'agentgate_pool'"), '1',
	'one server connection serves the three identities');
is($s->admin_psql("SELECT count(*) FROM pg_stat_activity WHERE usename IN ('$role_a', '$role_b', '$role_c')"),
	'0', 'and no server connection is logged in as an agent role');

# a pid check after each crossing pair: only then does "b did not see it"
# mean "the same backend forgot it"
sub same_backend
{
	my ($what) = @_;
	my $pa = val(ask($ca, 'SELECT pg_backend_pid()'));
	my $pb = val(ask($cb, 'SELECT pg_backend_pid()'));
	ok(defined $pa && defined $pb && $pa eq $pb, "$what: a and b on one backend");
}

# --- a temp table does not catch b's unqualified INSERT (pg_temp comes
# first in the search path; agents may not GRANT, so a's temp table would
# refuse b's row rather than take it, and public.cross_t would miss it)
my $r = ask($ca, q{CREATE TEMP TABLE cross_t (who text);
	INSERT INTO cross_t VALUES ('a'); SELECT count(*) FROM pg_temp.cross_t});
is(val($r), '1', "a's temp table cross_t exists in a's window (and shadows public.cross_t)");
$r = ask($cb, q{INSERT INTO cross_t VALUES ('b'); SELECT who FROM cross_t});
is(errmsg($r), '', "b's unqualified INSERT runs");
is($s->admin_psql("SELECT string_agg(who, ',') FROM public.cross_t"), 'b',
	"b's row went to public.cross_t, not a's temp table");
is($s->admin_psql(q{SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname = 'cross_t'}),
	'0', "a's temp table is gone after its window");
same_backend('temp table');

# --- a prepared statement (SQL PREPARE)
$r = ask($ca, q{PREPARE a_secret AS SELECT 'a-secret'; EXECUTE a_secret});
is(val($r), 'a-secret', 'a prepared and ran a_secret');
$r = ask($cb, 'SELECT count(*) FROM pg_prepared_statements');
is(val($r), '0', "b lists none of a's prepared statements");
$r = ask($cb, 'EXECUTE a_secret');
like(errmsg($r), qr/^26000 prepared statement "a_secret" does not exist/, "b cannot run a's prepared statement");
same_backend('prepared statement');

# --- a WITH HOLD cursor
$r = ask($ca, q{DECLARE a_cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g; FETCH 1 FROM a_cur});
is(val($r), '1', 'a declared a WITH HOLD cursor and fetched from it');
$r = ask($cb, 'FETCH 1 FROM a_cur');
like(errmsg($r), qr/^34000 cursor "a_cur" does not exist/, "b cannot FETCH a's cursor");
is(val(ask($cb, 'SELECT count(*) FROM pg_cursors')), '0', 'b sees no cursors');
same_backend('cursor');

# --- lastval()
$r = ask($ca, q{SELECT nextval('cross_seq'); SELECT lastval()});
is(val($r), '1', "a's lastval() is its nextval()");
$r = ask($cb, 'SELECT lastval()');
like(errmsg($r), qr/^55000 lastval is not yet defined in this session/, "b does not get a's lastval()");
same_backend('lastval');

# --- an advisory lock
$r = ask($ca, q{SELECT pg_advisory_lock(4242);
	SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = pg_backend_pid()});
is(last_val($r), '1', 'a holds session advisory lock 4242 in its window');
is($s->admin_psql(q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242}), '0',
	"a's session lock is gone after its window");
$r = ask($cb, 'SELECT pg_advisory_unlock(4242)');
is(val($r), 'f', "b cannot release a's advisory lock (it holds none)");
same_backend('advisory lock');

# --- LISTEN (it takes effect at commit: the window commits, then looks)
$r = ask($ca, q{LISTEN a_chan; COMMIT; SELECT pg_listening_channels()});
is(errmsg($r) . (last_val($r) // ''), 'a_chan', 'a listens on a_chan in its window');
$s->admin_psql(q{NOTIFY a_chan, 'for a'});
$r = ask($cb, 'SELECT pg_listening_channels()');
is(scalar @{ $r->{rows} }, 0, "b's window listens on nothing");
is(join(',', @{ $r->{notifications} }), '', 'b receives no notification for a');
$s->admin_psql(q{NOTIFY a_chan, 'for a, later'});
$r = ask($cb, 'SELECT 1');
is(join(',', @{ $r->{notifications} }), '', 'nor after a NOTIFY during its own window');
same_backend('LISTEN');

# --- session SET and search_path
$r = ask($ca, q{SET search_path = pg_catalog; SET work_mem = '7MB'; SHOW search_path});
is(val($r), 'pg_catalog', "a's SET search_path applies in its window");
is(val(ask($cb, 'SHOW search_path')), '"$user", public', "a's search_path does not apply to b");
is(val(ask($cb, 'SHOW work_mem')), '4MB', "a's SET work_mem does not apply to b");
same_backend('SET');

# --- statements that must run outside a transaction block: the carrier
# before them does not make them part of a pipeline (the extension judges
# the client's first statement as if it came first); a second one in the
# same message still is
$r = ask($ca, 'CREATE TABLE a_own (v int)');
is(errmsg($r), '', 'a creates a table of its own');
$r = ask($ca, 'VACUUM a_own');
is(errmsg($r), '', 'VACUUM right after the carrier runs');
$r = ask($ca, 'CREATE INDEX CONCURRENTLY a_own_v ON a_own (v)');
is(errmsg($r), '', 'CREATE INDEX CONCURRENTLY right after the carrier runs');
$r = ask($ca, 'SELECT 1; VACUUM a_own');
like(errmsg($r), qr/^25001 VACUUM cannot run inside a transaction block/,
	'VACUUM behind another statement of the message: refused as PostgreSQL does');
is(val(ask($ca, 'SELECT current_user')), $role_a, 'a is itself in its next window');

# --- the ways out of an identity
my $stamp_b = $s->admin_psql("SELECT (agentgate.session_stamp('$role_b')).stamp");
$s->admin_psql(qq{CREATE FUNCTION public.run_as_b() RETURNS name LANGUAGE sql
	SET role = '$role_b' AS 'SELECT current_user';
	GRANT EXECUTE ON FUNCTION public.run_as_b() TO PUBLIC;});
for my $escape (
	[ 'RESET ROLE', 'RESET ROLE; SELECT current_user' ],
	[ 'SET ROLE other agent', qq{SET ROLE "$role_b"; SELECT current_user} ],
	[ 'SET ROLE agentgate_pool', 'SET ROLE agentgate_pool; SELECT current_user' ],
	[ 'SET SESSION AUTHORIZATION agentgate_pool', 'SET SESSION AUTHORIZATION agentgate_pool; SELECT current_user' ],
	[ 'SET SESSION AUTHORIZATION DEFAULT', 'SET SESSION AUTHORIZATION DEFAULT; SELECT current_user' ],
	[ "set_config('role')", qq{SELECT set_config('role', '$role_b', false), current_user} ],
	[ "set_config('session_authorization')", q{SELECT set_config('session_authorization', 'agentgate_pool', false), current_user} ],
	[ "a function's SET role clause", 'SELECT public.run_as_b()' ],
	[ 'DISCARD ALL then a statement, one message', 'DISCARD ALL; SELECT current_user' ],
	[ 'agentgate.assume() with b\'s stamp', qq{CALL agentgate.assume('$role_b', '$stamp_b'); SELECT current_user} ],
	[ 'agentgate.assume() with its own role', qq{CALL agentgate.assume('$role_a', '$stamp_b'); SELECT current_user} ])
{
	my ($what, $sql) = @$escape;
	$r = ask($ca, $sql);
	ok($r->{err} && !@{ $r->{rows} }, "$what: refused, nothing ran") or diag(explain($r));
	is(val(ask($ca, 'SELECT current_user')), $role_a, "$what: a is still itself afterwards");
}
# an empty window (PgBouncer resets the connection after it) then b
is(val(ask($cb, 'SELECT current_user')), $role_b, 'b is itself after all that');

# DISCARD ALL pipelined before a statement in the extended protocol: the
# statement after it must not run without an identity (nor as a)
$r = pipeline($ca, parse_msg('DISCARD ALL'), bind_msg(), exec_msg(),
	parse_msg('SELECT current_user, session_user'), bind_msg(), exec_msg());
ok($r->{err} && !@{ $r->{rows} }, 'DISCARD ALL then SELECT in one pipeline: refused, no row')
  or diag(explain($r));
is(val(ask($ca, 'SELECT current_user')), $role_a, 'and a is itself in its next window');

# --- pipelined simple queries: the second has no carrier of its own; it
# runs as a (same window) or is refused (no identity), never as anyone else
$ca->write_raw(join('', map { 'Q' . pack('N', 5 + length $_) . "$_\0" }
	'SELECT current_user, 1', 'SELECT current_user, 2', 'SELECT current_user, 3'));
my @answers = map { digest(read_until_ready($ca)) } 1 .. 3;
my @wrong_role = grep { !$_->{err} && (!@{ $_->{rows} } || $_->{rows}[0][0] ne $role_a) } @answers;
is(scalar(@wrong_role), 0, 'three pipelined queries: each ran as a or was refused');
is(val($answers[0]), $role_a, 'the first of them ran as a');
is(val(ask($ca, 'SELECT current_user')), $role_a, 'a is itself afterwards');

# --- policy per identity: a rule for b only
$s->admin_psql(qq{SELECT agentgate.block(commands => '{READ}', relation => 'pol_t',
	applies_to => '$role_b', reason => 'tap: b may not read pol_t')});
is(val(ask($ca, 'SELECT x FROM pol_t')), '1', 'a reads pol_t (the rule is not for a)');
$r = ask($cb, 'SELECT x FROM pol_t');
like(errmsg($r), qr/^42501 agentgate: .*b may not read pol_t/, 'b is refused by its own rule on the same pool');
is(val(ask($ca, 'SELECT x FROM pol_t')), '1', 'a still reads pol_t after b was refused');

# --- a late cancel: a's answer has arrived; its cancel must not stop b's
# statement on the same backend.  First the control: b's own cancel works.
my $t0 = time;
$cb->send_message('Q', "SELECT pg_sleep(3), 'b-slept'\0");
sleep 0.5;
AgentGate::ProxyClient::send_cancel($port, $cb->{login}{pid}, $cb->{login}{key}, 1);
$r = digest(read_until_ready($cb));
like(errmsg($r), qr/^57014 /, "b's own cancel cancels b's statement (the cancel path works)");
ok(time - $t0 < 2.9, 'and ended it early');

is(val(ask($ca, 'SELECT 1')), '1', 'a ran a statement and got its answer');
$cb->send_message('Q', "SELECT pg_sleep(1.5), 'b-slept'\0");
sleep 0.4;
AgentGate::ProxyClient::send_cancel($port, $ca->{login}{pid}, $ca->{login}{key}, 1);
$r = digest(read_until_ready($cb));
is(errmsg($r), '', "a's late cancel does not cancel b's statement");
is($r->{rows}[0][1], 'b-slept', "b's statement completed");


# --- revocation of one identity on the shared backend
$s->admin_psql(qq{SELECT agentgate.revoke('sp-b', 'tap: shared pool revocation')});
sleep 0.3;
$r = ask($cb, 'SELECT x FROM cross_t LIMIT 1');
$r = ask($cb, 'SELECT current_user') if $r->{ready} && !$r->{err};
ok(!@{ $r->{rows} }, 'the revoked identity runs nothing more (refused or closed)')
  or diag(explain($r));
$r = ask($ca, 'SELECT pg_backend_pid(), current_user');
is(errmsg($r), '', 'a goes on after b\'s revocation');
is($r->{rows}[0][0], $pid_a, 'on the same shared backend (it was not terminated)');
is($r->{rows}[0][1], $role_a, 'still as a');
$r = ask($cc, 'SELECT current_user');
is(val($r), $role_c, 'and so does c');
$ca->close;
$cb->close;
$cc->close;

# ============ part 2: 200 identities at once on at most 4 server connections
$s->stop_process('pgbouncer');
$s->{pgbouncer_conf} = pool_conf(4);
$s->start_pgbouncer;

my $n = 200;
my @ids = map { sprintf('sp-%03d', $_) } 1 .. $n;
my %tok = map { $_ => $s->token(sub => $_, ttl => 900) } @ids;
my (%cl, $login_errors);
$login_errors = 0;
for my $id (@ids)
{
	my $cl = eval { session($tok{$id}) };
	if ($cl) { $cl{$id} = $cl; } else { $login_errors++; diag("login of $id: $@"); }
}
is($login_errors, 0, "$n identities logged in and stay connected");
my %role = map { split /\|/ } split /\n/,
  $s->admin_psql(q{SELECT identity || '|' || role_name FROM agentgate.agents WHERE identity LIKE 'sp-___'});
is(scalar(keys %role), $n, "$n roles, one per identity");

# every client sends, then every client reads: the statements queue for the
# four server connections together
sub round
{
	my ($sql_of) = @_;
	for my $id (@ids)
	{
		$cl{$id}->send_message('Q', $sql_of->($id) . "\0");
	}
	my %res;
	for my $id (@ids)
	{
		$res{$id} = digest(read_until_ready($cl{$id}));
	}
	return \%res;
}

my $max_servers = 0;
my $errors = 0;
my (%sid, %bad);
for my $round (1 .. 3)
{
	my $res = round(sub {
		my ($id) = @_;
		(my $tag = $id) =~ s/-/_/;
		return "SELECT current_user, session_user, agentgate.session_id(), pg_sleep(0.005) AS ${tag}_r$round";
	});
	my $servers = $s->admin_psql(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'agentgate_pool'});
	$max_servers = $servers if $servers > $max_servers;
	for my $id (@ids)
	{
		my $x = $res->{$id};
		if ($x->{err} || !@{ $x->{rows} }) { $errors++; diag("$id: " . errmsg($x)); next; }
		my ($cu, $su, $sid) = @{ $x->{rows}[0] };
		$bad{"$id current_user $cu"}++ unless $cu eq $role{$id};
		$bad{"$id session_user $su"}++ unless $su eq 'agentgate_pool';
		$sid{$id} //= $sid;
		$bad{"$id session id changed"}++ unless $sid eq $sid{$id};
	}
}
is($errors, 0, "3 rounds x $n statements: no errors");
is(join('; ', sort keys %bad), '', 'every statement ran as its own role, session_user agentgate_pool, its own session id');
my %distinct = map { $_ => 1 } values %sid;
is(scalar(keys %distinct), $n, "$n distinct session ids");
ok($max_servers >= 1 && $max_servers <= 4, "at most 4 server connections ($max_servers)");
is($s->admin_psql(q{SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'agent\_%'}), '0',
	'no server connection of an agent role');

# the audit rows: the statement of identity sp-017 names sp_017 (an alias,
# kept by normalisation), and its row must carry sp-017's role and session
$s->admin_psql('SELECT agentgate.audit_flush()');
my $rows = $s->admin_psql(q{SELECT substring(statement from 'sp_[0-9]{3}'), identity, role_name, session_id
	FROM agentgate.audit_log WHERE statement ~ 'sp_[0-9]{3}_r[0-9]'});
my ($audited, @wrong) = (0);
for my $line (split /\n/, $rows)
{
	my ($tag, $identity, $rn, $sid) = split /\|/, $line, -1;
	(my $id = $tag) =~ s/_/-/;
	$audited++;
	push @wrong, "$tag: $identity/$rn/$sid" unless $identity eq $id && $rn eq $role{$id} && $sid eq $sid{$id};
}
is($audited, 3 * $n, "every statement of the $n identities has an audit row");
is(join('; ', @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]), '', "each row carries its own identity's role and session id");

# a rule for one identity among the 200
my $blocked = 'sp-100';
$s->admin_psql(qq{SELECT agentgate.block(commands => '{READ}', relation => 'pol_t',
	applies_to => '$role{$blocked}', reason => 'tap: $blocked only')});
my $res = round(sub { 'SELECT x FROM pol_t' });
my @refused = grep { $res->{$_}{err} } @ids;
is("@refused", $blocked, 'a rule for one identity refuses that identity alone');

# revoking one identity: it is refused at its next statement, the others
# on the same backends go on
my $revoked = 'sp-150';
my @pids_before = split /\n/, $s->admin_psql(q{SELECT pid FROM pg_stat_activity WHERE usename = 'agentgate_pool' ORDER BY pid});
$s->admin_psql(qq{SELECT agentgate.revoke('$revoked', 'tap: one of many')});
sleep 0.3;
my @others = grep { $_ ne $revoked } @ids;
for my $id (@others) { $cl{$id}->send_message('Q', "SELECT current_user\0"); }
$cl{$revoked}->send_message('Q', "SELECT current_user\0");
my $r_rev = digest(read_until_ready($cl{$revoked}));
ok(!@{ $r_rev->{rows} }, 'the revoked identity runs nothing (refused or closed)');
my @fail;
for my $id (@others)
{
	my $x = digest(read_until_ready($cl{$id}));
	push @fail, $id unless !$x->{err} && @{ $x->{rows} } && $x->{rows}[0][0] eq $role{$id};
}
is(scalar(@fail), 0, scalar(@others) . ' other identities go on as themselves');
my @pids_after = split /\n/, $s->admin_psql(q{SELECT pid FROM pg_stat_activity WHERE usename = 'agentgate_pool' ORDER BY pid});
ok(scalar(grep { my $p = $_; grep { $_ eq $p } @pids_after } @pids_before) > 0 || !@pids_before,
	'shared backends were not terminated by the revocation');

$_->close for values %cl;

# --- a client of the server's pooler socket itself (not the proxy, which
# forwards no FunctionCall): as agentgate_pool with no identity bound, a
# FunctionCall message (lo_creat, OID 957) is refused, and creates nothing
{
	require IO::Socket::UNIX;
	my $sock = IO::Socket::UNIX->new(Peer => $s->pg_socket_dir . '/.s.PGSQL.' . $s->pg_port)
	  or die "connect: $!";
	my $raw = bless { sock => $sock, buf => '', tls => 0 }, 'AgentGate::ProxyClient';
	my $lr = $raw->login('', user => 'agentgate_pool', database => $s->db, application_name => 'agentgate');
	ok($lr->{ok}, 'agentgate_pool logs in on the pooler socket');
	my $before = $s->admin_psql(q{SELECT count(*) FROM pg_largeobject_metadata});
	$raw->send_message('F', pack('N', 957) . pack('n', 1) . pack('n', 1) . pack('n', 1)
		  . pack('N', 4) . pack('N', 0x20000) . pack('n', 0));
	my $fr = digest(read_until_ready($raw));
	like(errmsg($fr), qr/^42501 no agent identity on this shared server connection/,
		'a FunctionCall on an unbound shared backend is refused');
	is($s->admin_psql(q{SELECT count(*) FROM pg_largeobject_metadata}), $before,
		'and created no large object');
	$raw->close;
}

$s->stop;
done_testing();
