# Builds test/policy_client.c, a small libpq client that speaks the
# extended protocol, fastpath and multi-statement messages, for TAP tests
# that need more than psql can send.
package AgentGate::PolicyClient;

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

# build(): the path of a freshly built client (removed at exit)
sub build
{
	my $top = $ENV{AG_TOP} // '.';
	my $bindir = tempdir(CLEANUP => 1);
	my $client = "$bindir/policy_client";
	my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
	chomp(my $incdir = `$pg_config --includedir`);
	chomp(my $libdir = `$pg_config --libdir`);
	my $cflags = "-I$incdir";
	# a relocated server build may not carry libpq's headers: ask pkg-config
	if (!-f "$incdir/libpq-fe.h")
	{
		chomp($cflags = `pkg-config --cflags libpq 2>/dev/null` || '');
		chomp($libdir = `pkg-config --variable=libdir libpq 2>/dev/null` || $libdir);
	}
	system("cc -Wall -Werror -o $client $cflags $top/test/policy_client.c -L$libdir -lpq") == 0
	  or BAIL_OUT('cannot build test/policy_client.c');
	return $client;
}

1;
