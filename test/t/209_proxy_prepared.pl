# Named prepared statements through the pooler port.  PgBouncer 1.18's
# transaction pool has no prepared-statement support, so the proxy keeps
# each client's named statements and the server only sees unnamed ones.
# Real clients, several connections of one identity each: pgbench -M
# prepared -c 8, psycopg 3 with its default prepare_threshold (pipeline
# mode and binary results included), libpq pipeline mode; then the
# protocol's corners by hand: answers in order (Close answered by the
# proxy), a name already used inside a transaction block (the block is
# aborted as by the server's own error), unknown names, DISCARD ALL, the
# per-connection limit, and SQL-level PREPARE.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use IPC::Run qw(run timeout);
use File::Temp qw(tempdir);

$SIG{PIPE} = 'IGNORE';

my $s = AgentGate::Stack->new(name => 'proxy-prepared',
	proxy_conf => "max_prepared_statements = 150\n");
$s->start;
my $port = $s->proxy_port;
my $db = $s->db;
my $tok = $s->token(sub => 'prep', ttl => 600);
my $top = $ENV{AG_TOP} // '.';
my $bindir = $ENV{PG_BINDIR} // do { my $d = `pg_config --bindir`; chomp $d; $d };
my $conninfo = "host=127.0.0.1 port=$port dbname=$db user=agent sslmode=require";
local $ENV{PGPASSWORD} = $tok;

my ($rc, $role, $err) = $s->agent_psql($tok, 'SELECT session_user');
is($rc, 0, 'agent logged in') or diag($err);

# --- pgbench -M prepared, 8 clients of one identity
{
	my ($o, $e) = ('', '');
	run([ "$bindir/pgbench", '-i', '-q', '-s', '1', '-h', $s->pg_socket_dir, '-p', $s->pg_port,
			'-U', 'postgres', $db ], '>', \$o, '2>', \$e) or die "pgbench -i: $e";
	$s->admin_psql('GRANT SELECT, INSERT, UPDATE ON pgbench_accounts, pgbench_branches, '
		  . 'pgbench_tellers, pgbench_history TO agentgate_agent');
	for my $mode (qw(prepared extended))
	{
		($o, $e) = ('', '');
		my $ok = eval {
			run([ "$bindir/pgbench", '-n', "-M$mode", '-c', '8', '-j', '2', '-t', '50',
					'-h', '127.0.0.1', '-p', $port, '-U', 'agent', $db ],
				'>', \$o, '2>', \$e, timeout(60));
		};
		$e .= $@ if $@;
		ok($ok, "pgbench -M $mode -c 8: exit 0") or diag("$o\n$e");
		last unless $ok;
		like($o, qr/number of transactions actually processed: 400\/400/,
			"pgbench -M $mode -c 8: all 400 transactions");
		unlike("$o$e", qr/abort|already exists|does not exist/i, "pgbench -M $mode: no errors");
	}
}

# --- psycopg 3, default prepare_threshold, 4 connections of one identity
SKIP:
{
	# Debian's python3-psycopg is for the system interpreter
	skip 'python3-psycopg not installed', 2
	  unless system('/usr/bin/python3', '-c', 'import psycopg') == 0;
	my ($o, $e) = ('', '');
	my $ok = eval {
		run([ '/usr/bin/python3', "$top/test/clients/psycopg_prepared.py", $conninfo, 4, 8 ],
			'>', \$o, '2>', \$e, timeout(60));
	};
	$e .= $@ if $@;
	ok($ok, 'psycopg 3: prepared statements from 4 connections, pipeline, binary')
	  or diag("$o\n$e");
	like($o, qr/ok done/, 'psycopg 3: every step') or diag($o);
}

# --- libpq pipeline mode, 4 connections, errors mid-pipeline
{
	my $dir = tempdir(CLEANUP => 1);
	my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
	chomp(my $incdir = `$pg_config --includedir`);
	chomp(my $libdir = `$pg_config --libdir`);
	my $cflags = "-I$incdir";
	if (!-f "$incdir/libpq-fe.h")
	{
		chomp($cflags = `pkg-config --cflags libpq 2>/dev/null` || '');
		chomp($libdir = `pkg-config --variable=libdir libpq 2>/dev/null` || $libdir);
	}
	system("cc -Wall -Werror -o $dir/pipeline_client $cflags $top/test/clients/pipeline_client.c -L$libdir -lpq") == 0
	  or BAIL_OUT('cannot build test/clients/pipeline_client.c');
	my ($o, $e) = ('', '');
	my $ok = eval { run([ "$dir/pipeline_client", $conninfo, 4, 5 ], '>', \$o, '2>', \$e, timeout(60)) };
	$e .= $@ if $@;
	ok($ok, 'libpq pipeline mode: named statements from 4 connections, errors mid-pipeline')
	  or diag("$o\n$e");
	unlike($o, qr/^not ok/m, 'libpq pipeline mode: every check') or diag($o);
}

# --- the protocol by hand
sub session
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $db);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	return $c;
}

sub parse_msg { my ($name, $q) = @_; return ('P', "$name\0$q\0" . pack('n', 0)) }
sub bind_msg { my ($name) = @_; return ('B', "\0$name\0" . pack('nnn', 0, 0, 0)) }
sub exec_msg { return ('E', "\0" . pack('N', 0)) }

# Sends the messages, then reads up to the $n-th ReadyForQuery; returns
# the types read as a string and the list of [type, body].
sub exchange
{
	my ($c, $n, @msgs) = @_;
	$c->send_message(splice(@msgs, 0, 2)) while @msgs;
	my ($types, @got) = ('');
	while ($n > 0)
	{
		my ($t, $b) = $c->read_message(20);
		last unless defined $t;
		$types .= $t;
		push @got, [ $t, $b ];
		$n-- if $t eq 'Z';
	}
	return ($types, @got);
}

sub codes
{
	return join(',', map { AgentGate::ProxyClient::error_fields($_->[1])->{C} }
		  grep { $_->[0] eq 'E' } @_);
}

{
	my $c = session();
	my ($t, @m) = exchange($c, 1, parse_msg('s', 'SELECT $1::int AS v'), 'S', '');
	is($t, '1Z', 'Parse(s) + Sync: ParseComplete, ReadyForQuery');
	($t, @m) = exchange($c, 1, 'D', "Ss\0", 'C', "Ss\0", 'S', '');
	is($t, 'tT3Z', 'Describe(s) + Close(s): the description, then CloseComplete, in order');
	($t, @m) = exchange($c, 1, bind_msg('s'), exec_msg(), 'S', '');
	is($t, 'EZ', 'Bind of a closed statement: an error');
	is(codes(@m), '26000', '... 26000 prepared statement does not exist');
	like(AgentGate::ProxyClient::error_fields($m[0][1])->{M}, qr/^prepared statement "s" does not exist$/,
		'... with the server\'s wording');

	# a name already used, inside a transaction block: aborts the block
	($t, @m) = exchange($c, 1, 'Q', "BEGIN\0");
	($t, @m) = exchange($c, 1, parse_msg('x', 'SELECT 1'), parse_msg('x', 'SELECT 2'),
		parse_msg('y', 'SELECT 3'), 'S', '');
	is($t, '1EZ', 'Parse(x) twice: ParseComplete, then an error, then ReadyForQuery');
	is(codes(@m), '42P05', '... 42P05 already exists');
	is($m[-1][1], 'E', '... and the transaction block is aborted, as by a server error');
	($t, @m) = exchange($c, 1, 'Q', "SELECT 1\0");
	is(codes(@m), '25P02', 'the next statement in the block: 25P02');
	($t, @m) = exchange($c, 1, 'Q', "ROLLBACK\0");
	($t, @m) = exchange($c, 1, bind_msg('y'), exec_msg(), 'S', '');
	is(codes(@m), '26000', 'the Parse skipped after the error made nothing');
	($t, @m) = exchange($c, 1, bind_msg('x'), exec_msg(), 'S', '');
	is($t, '2DCZ', 'the first x is kept and runs');

	# DEALLOCATE ALL forgets the proxy's statements too (even pipelined)
	($t, @m) = exchange($c, 2, parse_msg('z', 'SELECT 1'), 'S', '', 'Q', "DEALLOCATE ALL\0");
	($t, @m) = exchange($c, 1, bind_msg('x'), exec_msg(), 'S', '');
	is(codes(@m), '26000', 'after DEALLOCATE ALL: gone');
	($t, @m) = exchange($c, 1, parse_msg('z', 'SELECT 1'), 'S', '');
	is($t, '1Z', 'after DEALLOCATE ALL the name is free');

	# the per-connection limit (max_prepared_statements = 150 here)
	my @many = map { parse_msg("m$_", "SELECT $_") } 1 .. 151;
	($t, @m) = exchange($c, 1, @many, 'S', '');
	is(($t =~ tr/1//), 149, '149 more kept (z is the 150th)');
	is(codes(@m), '54000', 'the 151st: 54000');
	like(AgentGate::ProxyClient::error_fields((grep { $_->[0] eq 'E' } @m)[0][1])->{D} // '',
		qr/max_prepared_statements/, '... naming the setting');
	($t, @m) = exchange($c, 1, 'C', "Sm1\0", parse_msg('again', 'SELECT 1'), 'S', '');
	is($t, '31Z', 'closing one makes room');

	# SQL-level PREPARE lives on the server: within one transaction only
	($t, @m) = exchange($c, 1, 'Q', "BEGIN; PREPARE q AS SELECT 7; EXECUTE q; DEALLOCATE q; COMMIT\0");
	is(AgentGate::ProxyClient::first_value(@m), 7, 'SQL PREPARE + EXECUTE in one transaction works');

	# DISCARD ALL too (last: it also resets application_name, see docs)
	($t, @m) = exchange($c, 2, parse_msg('d', 'SELECT 1'), 'S', '', 'Q', "DISCARD ALL\0");
	($t, @m) = exchange($c, 1, bind_msg('d'), exec_msg(), 'S', '');
	is(codes(@m), '26000', 'after DISCARD ALL: gone');
}

# the named statements of one connection are its own
{
	my ($c1, $c2) = (session(), session());
	my ($t, @m) = exchange($c1, 1, parse_msg('same', "SELECT 'one'"), 'S', '');
	($t, @m) = exchange($c2, 1, parse_msg('same', "SELECT 'two'"), 'S', '');
	is($t, '1Z', 'a second connection of the identity prepares the same name');
	($t, @m) = exchange($c1, 1, bind_msg('same'), exec_msg(), 'S', '');
	is(AgentGate::ProxyClient::first_value(@m), 'one', 'each gets its own text (1)');
	($t, @m) = exchange($c2, 1, bind_msg('same'), exec_msg(), 'S', '');
	is(AgentGate::ProxyClient::first_value(@m), 'two', 'each gets its own text (2)');
}

$s->stop;
done_testing();
