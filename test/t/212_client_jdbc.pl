# pgJDBC (Debian's libpostgresql-jdbc-java) through the pooler port with
# the driver's defaults: its SET application_name after login, prepared
# statements below and past prepareThreshold on four connections of one
# identity, a refusal, Statement.cancel(), LISTEN refused, and a token
# refresh through an AuthenticationPlugin.  The program is compiled once
# and cached.
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;

my $jar = (grep { -f } '/usr/share/java/postgresql.jar')[0];
my $c = AgentGate::Clients->new(name => 'jdbc');
SKIP:
{
	skip 'libpostgresql-jdbc-java is not installed (tools/install-deps installs it)', 1 unless $jar;
	skip 'javac is not installed (default-jdk-headless; tools/install-deps installs it)', 1
	  unless grep { -x "$_/javac" } split /:/, $ENV{PATH};
	my ($classes, $why) = $c->javac($c->top . '/test/clients/AgJdbcClient.java', $jar);
	ok($classes, 'the JDBC program compiles') or diag $why;
	skip 'no classes', 1 unless $classes;
	my $r = $c->run_client([ 'java', '-Xshare:auto', '-XX:TieredStopAtLevel=1', '-cp', "$classes:$jar", 'AgJdbcClient' ]);
	is($r->{rc}, 0, "pgJDBC program ran ($r->{secs} s)") or diag $r->{err};
	$c->report($r, 'pgJDBC', [qw(connect unnamed refusal cancel listen rotation)], named => [qw(named)]);
	$c->check_rotated('pgJDBC');
}
$c->finish;
done_testing();
