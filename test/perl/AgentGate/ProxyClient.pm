
=pod

=head1 NAME

AgentGate::ProxyClient - a raw PostgreSQL v3 protocol client for testing
agentgate-proxy

=head1 SYNOPSIS

  my $c = AgentGate::ProxyClient->new(port => $port);     # TLS by default
  my $r = $c->login($token, database => 'app');
  die $r->{error}{M} unless $r->{ok};
  my @msgs = $c->query('SELECT 1');
  $c->send_message('F', pack('N', 1234) . ...);
  my ($type, $body) = $c->read_message(5);
  AgentGate::ProxyClient::send_cancel($port, $r->{pid}, $r->{key});

=head1 DESCRIPTION

psql cannot send what the proxy must refuse (a FunctionCall, a broken
length, a cancel followed by an immediate close), so the tests speak the
protocol themselves with this module.  Messages come back as
[type, body] pairs; ErrorResponse bodies can be split with error_fields.

=cut

package AgentGate::ProxyClient;

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use Time::HiRes qw(time);

sub new
{
	my ($class, %o) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => $o{host} // '127.0.0.1',
		PeerPort => $o{port},
		Proto    => 'tcp',
		Timeout  => 10) or die "connect to port $o{port}: $!\n";
	$sock->autoflush(1);
	my $self = bless { sock => $sock, buf => '', tls => 0 }, $class;
	if ($o{tls} // 1)
	{
		$self->write_raw(pack('NN', 8, 80877103));
		my $a = $self->read_bytes(1, 10);
		die "no answer to SSLRequest\n" unless defined $a;
		die "SSLRequest refused: $a\n" unless $a eq 'S';
		# ssl => { ... } adds IO::Socket::SSL options (a session cache, say)
		IO::Socket::SSL->start_SSL($sock, SSL_verify_mode => SSL_VERIFY_NONE,
			SSL_hostname => '', Timeout => 10, %{ $o{ssl} // {} })
		  or die "TLS handshake failed: $IO::Socket::SSL::SSL_ERROR\n";
		$self->{tls} = 1;
	}
	return $self;
}

# 1 if the TLS session was resumed from an earlier connection's ticket.
sub tls_resumed
{
	my ($self) = @_;
	return $self->{tls} && $self->{sock}->get_session_reused ? 1 : 0;
}

sub write_raw
{
	my ($self, $bytes) = @_;
	my $off = 0;
	while ($off < length $bytes)
	{
		my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
		return 0 unless defined $n;
		$off += $n;
	}
	return 1;
}

# Read exactly $n bytes within $timeout seconds; undef on EOF or timeout.
sub read_bytes
{
	my ($self, $n, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	my $sel = IO::Select->new($self->{sock});
	while (length($self->{buf}) < $n)
	{
		my $ready = ($self->{tls} && $self->{sock}->pending) ? 1
		  : $sel->can_read($deadline - time > 0 ? $deadline - time : 0);
		return undef unless $ready;
		my $got = sysread($self->{sock}, my $chunk, 65536);
		if (!defined $got)
		{
			next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
			$self->{eof} = 1;
			return undef;
		}
		if ($got == 0)
		{
			$self->{eof} = 1;
			return undef;
		}
		$self->{buf} .= $chunk;
	}
	return substr($self->{buf}, 0, $n, '');
}

sub read_message
{
	my ($self, $timeout) = @_;
	my $hdr = $self->read_bytes(5, $timeout) // return;
	my ($type, $len) = unpack('aN', $hdr);
	my $body = $len > 4 ? $self->read_bytes($len - 4, $timeout) : '';
	return unless defined $body;
	return ($type, $body);
}

sub send_message
{
	my ($self, $type, $body) = @_;
	return $self->write_raw($type . pack('N', 4 + length $body) . $body);
}

sub startup_packet
{
	my (%p) = @_;
	my $version = delete $p{_version} // 196608;
	my $body = pack('N', $version);
	for my $k (sort keys %p)
	{
		$body .= "$k\0$p{$k}\0";
	}
	$body .= "\0";
	return pack('N', 4 + length $body) . $body;
}

sub error_fields
{
	my ($body) = @_;
	my %f;
	for my $field (split /\0/, $body)
	{
		next unless length $field;
		$f{ substr($field, 0, 1) } = substr($field, 1);
	}
	return \%f;
}

# Startup, password, then messages up to ReadyForQuery or an error.
# Returns { ok, error => {fields}, pid, key, params => {ParameterStatus} }.
sub login
{
	my ($self, $token, %p) = @_;
	my %params = (user => 'agent', database => 'app', %p);
	$self->write_raw(startup_packet(%params));
	my %r = (params => {});
	while (1)
	{
		my ($t, $b) = $self->read_message(15);
		if (!defined $t)
		{
			$r{error} = { M => 'connection closed during login' };
			return \%r;
		}
		if ($t eq 'E')
		{
			$r{error} = error_fields($b);
			return \%r;
		}
		if ($t eq 'R')
		{
			my $code = unpack('N', $b);
			$self->send_message('p', "$token\0") if $code == 3;
		}
		elsif ($t eq 'K')
		{
			@r{qw(pid key)} = unpack('NN', $b);
		}
		elsif ($t eq 'S')
		{
			my ($k, $v) = split /\0/, $b;
			$r{params}{$k} = $v;
		}
		elsif ($t eq 'Z')
		{
			$r{ok} = 1;
			return \%r;
		}
	}
}

# Simple query; returns the messages up to ReadyForQuery (or EOF).
sub query
{
	my ($self, $sql, $timeout) = @_;
	$self->send_message('Q', "$sql\0");
	my @m;
	while (1)
	{
		my ($t, $b) = $self->read_message($timeout // 30);
		last unless defined $t;
		push @m, [ $t, $b ];
		last if $t eq 'Z';
	}
	return @m;
}

# The value of the first column of the first DataRow in @msgs.
sub first_value
{
	my (@msgs) = @_;
	for my $m (@msgs)
	{
		next unless $m->[0] eq 'D';
		my ($n, $len) = unpack('nN', $m->[1]);
		return undef if $len == 0xffffffff;
		return substr($m->[1], 6, $len);
	}
	return undef;
}

# True once the peer has closed the connection (within $timeout).
sub wait_closed
{
	my ($self, $timeout) = @_;
	my $deadline = time + ($timeout // 5);
	while (time < $deadline)
	{
		my ($t) = $self->read_message($deadline - time);
		return 1 if $self->{eof};
	}
	return $self->{eof} ? 1 : 0;
}

# A CancelRequest on a new plain TCP connection; closed at once unless
# $wait (then waits for the server to close it).
sub send_cancel
{
	my ($port, $pid, $key, $wait) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
	  or die "cancel connect: $!\n";
	syswrite($s, pack('NNNN', 16, 80877102, $pid, $key));
	if ($wait)
	{
		my $sel = IO::Select->new($s);
		$sel->can_read(10);
	}
	close $s;
}

sub close
{
	my ($self) = @_;
	close $self->{sock};
}

1;
