# A PostgreSQL::Test::Cluster with agentgate preloaded, started: the
# session key the TAP tests share, the pooler socket directory in the
# node's own socket directory, and whatever settings the test adds.
package AgentGate::Node;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;

our $SESSION_KEY = 'tap-session-key-0123456789abcdef0123456789abcdef';

sub new
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $sockdir = $node->host;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'agentgate'
agentgate.session_key = '$SESSION_KEY'
agentgate.pooler_socket_directory = '$sockdir'
} . ($conf // ''));
	$node->start;
	return $node;
}

1;
