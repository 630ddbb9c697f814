# Approvals through the real data path (TLS proxy, PgBouncer transaction
# pooling), both modes:
#  - retry: the agent is refused with SQLSTATE 42501 and the request id in
#    the primary message; once approved, the identical statement runs from
#    another connection (another server backend of the pool may serve it);
#    a second run needs a new approval;
#  - wait: the statement is held on its pooled server connection until an
#    approver commits, then returns its rows; a cancel sent through the
#    proxy and PgBouncer ends the wait, and the request is cancelled.
use strict;
use warnings;
use Test::More;
use AgentGate::Stack;
use AgentGate::ProxyClient;
use Time::HiRes qw(time usleep);

my $s = AgentGate::Stack->new(name => 'approvals-proxy');
$s->start;
$s->admin_psql(q{
CREATE TABLE apx (id int PRIMARY KEY);
INSERT INTO apx SELECT generate_series(1, 10);
CREATE TABLE apx_wait (id int PRIMARY KEY);
INSERT INTO apx_wait SELECT generate_series(1, 10);
GRANT SELECT, DELETE ON apx, apx_wait TO agentgate_agent;
CREATE ROLE apx_alice LOGIN IN ROLE agentgate_approver;
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'apx', reason => 'retry');
SELECT agentgate.require_approval(commands => '{DELETE}', relation => 'apx_wait', mode => 'wait',
                                  timeout => '1 min', reason => 'wait');
});
my $port = $s->proxy_port;
my $tok = $s->token(sub => 'approvals-agent');

sub session
{
	my $c = AgentGate::ProxyClient->new(port => $port);
	my $r = $c->login($tok, database => $s->db);
	die "login failed: $r->{error}{M}\n" unless $r->{ok};
	$c->{login} = $r;			# BackendKeyData, for the cancel
	return $c;
}

# the messages of one simple query: (error fields or undef, first value)
sub run_query
{
	my ($c, $sql) = @_;
	my @m = $c->query($sql, 60);
	my ($e) = grep { $_->[0] eq 'E' } @m;
	return ($e ? AgentGate::ProxyClient::error_fields($e->[1]) : undef,
		AgentGate::ProxyClient::first_value(@m));
}

# the request a held statement waits for, once it is waited for (the
# retry block leaves a pending request of its own: only wait mode counts)
sub waiting_id
{
	for (1 .. 300)
	{
		my $id = $s->admin_psql(
			"SELECT max(id) FROM agentgate.pending_approvals WHERE mode = 'wait'");
		return $id if $id;
		usleep(50_000);
	}
	return undef;
}

sub approve
{
	my ($id) = @_;
	return $s->admin_psql("SELECT agentgate.approve($id)", user => 'apx_alice');
}

# ---- retry mode
{
	my $c = session();
	my ($e) = run_query($c, 'DELETE FROM apx WHERE id = 1 RETURNING id');
	is($e->{C}, '42501', 'retry: refused with SQLSTATE 42501');
	like($e->{M}, qr/needs approval \(request \d+\)/, '... the request id in the primary message');
	like($e->{H} // '', qr/re-run exactly the same statement/, '... and a hint the agent can act on');
	my ($id) = $e->{M} =~ /request (\d+)/;
	is(approve($id), 'approved', 'an approver approves it');
	$c->close;

	my $c2 = session();
	my ($e2, $v) = run_query($c2, 'DELETE FROM apx WHERE id = 1 RETURNING id');
	ok(!$e2, 'the identical statement runs from a new connection') or diag $e2->{M};
	is($v, '1', '... and deletes its row');
	($e2) = run_query($c2, 'DELETE FROM apx WHERE id = 1 RETURNING id');
	like($e2->{M} // '', qr/needs approval \(request (?!$id\))\d+\)/, 'a second run needs a new approval');
	is((run_query($c2, "SELECT status FROM agentgate.my_approvals() WHERE id = $id"))[1], 'executed',
		'the agent sees its request executed');
	$c2->close;
}

# ---- wait mode: held on its pooled connection until the approver commits
{
	my $c = session();
	$c->send_message('Q', "DELETE FROM apx_wait WHERE id = 2 RETURNING id\0");
	my $id = waiting_id();
	ok($id, 'wait: the statement is waiting for its request');
	is(approve($id), 'approved', 'an approver approves it');
	my @m;
	while (my ($t, $b) = $c->read_message(30))
	{
		push @m, [ $t, $b ];
		last if $t eq 'Z';
	}
	my ($e) = grep { $_->[0] eq 'E' } @m;
	ok(!$e, 'the held statement then runs') or diag AgentGate::ProxyClient::error_fields($e->[1])->{M};
	is(AgentGate::ProxyClient::first_value(@m), '2', '... and returns its row');

	# a cancel through the proxy and PgBouncer ends the wait
	$c->send_message('Q', "DELETE FROM apx_wait WHERE id = 3 RETURNING id\0");
	my $id2 = waiting_id();
	ok($id2, 'a second statement waits');
	AgentGate::ProxyClient::send_cancel($port, $c->{login}{pid}, $c->{login}{key});
	my $code = '';
	while (my ($t, $b) = $c->read_message(30))
	{
		$code = AgentGate::ProxyClient::error_fields($b)->{C} if $t eq 'E';
		last if $t eq 'Z';
	}
	is($code, '57014', 'a cancel sent through the proxy ends the wait');
	my $status = '';
	for (1 .. 100)
	{
		$status = $s->admin_psql("SELECT status FROM agentgate.approvals WHERE id = $id2");
		last if $status eq 'cancelled';
		usleep(100_000);
	}
	is($status, 'cancelled', '... and the request is cancelled');
	is($s->admin_psql('SELECT count(*) FROM apx_wait WHERE id = 3'), '1', '... and the row is still there');
	$c->close;
}

$s->stop;
done_testing();
