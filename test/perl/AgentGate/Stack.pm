
=pod

=head1 NAME

AgentGate::Stack - a throwaway PostgreSQL + PgBouncer + agentgate-proxy stack

=head1 SYNOPSIS

  use AgentGate::Stack;

  my $s = AgentGate::Stack->new(name => 'e2e');
  $s->start;
  my $tok = $s->token(sub => 'alice', groups => ['analysts'], ttl => 300);
  my ($rc, $out, $err) = $s->agent_psql($tok, 'SELECT session_user');
  my $v = $s->admin_psql('SELECT count(*) FROM agentgate.agents');
  $s->stop;

=head1 DESCRIPTION

The end-to-end tests, the demo and the benchmarks all need the same thing:
a PostgreSQL 15 cluster with agentgate preloaded, Debian's PgBouncer in
transaction mode on a private unix socket, and agentgate-proxy in front of
it with TLS and a JWKS, plus a key to mint tokens with.  This module builds
that under one temporary directory, on free loopback ports, and tears it
down again (also when the caller dies).

It does not depend on Test::More, so the demo and benchmarks can use it;
every failure dies with the log that explains it.

Binaries: PostgreSQL's from PG_BINDIR (or pg_config), pgbouncer from PATH
or /usr/sbin, agentgate-proxy and agentgate-token from AG_TOP/pooler (AG_TOP
defaults to the checkout this file lives in).

=cut

package AgentGate::Stack;

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir tempfile);
use IO::Socket::INET;
use IPC::Run qw(run timeout);
use POSIX qw(WNOHANG);
use Time::HiRes qw(usleep time);

my @live;    # stacks to tear down at exit

END
{
	my $rc = $?;
	$_->stop for grep { $_->{started} } @live;
	$? = $rc;
}

sub _top
{
	return $ENV{AG_TOP} if $ENV{AG_TOP};
	return abs_path(dirname(__FILE__) . '/../../..');
}

sub _pg_bindir
{
	return $ENV{PG_BINDIR} if $ENV{PG_BINDIR};
	my $d = `pg_config --bindir`;
	chomp $d;
	die "cannot find PostgreSQL binaries (set PG_BINDIR)\n" unless $d && -x "$d/postgres";
	return $d;
}

sub _which
{
	my ($prog) = @_;
	for my $d (split(/:/, $ENV{PATH} // ''), '/usr/sbin', '/usr/local/sbin')
	{
		return "$d/$prog" if -x "$d/$prog";
	}
	die "cannot find $prog\n";
}

# A free TCP port on 127.0.0.1 (bind to port 0 and let the kernel choose).
sub free_port
{
	my $s = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Proto     => 'tcp',
		ReuseAddr => 0) or die "cannot find a free port: $!\n";
	my $p = $s->sockport;
	close $s;
	return $p;
}

sub _slurp
{
	my ($f) = @_;
	open my $fh, '<', $f or return '';
	local $/;
	my $c = <$fh>;
	return $c // '';
}

sub _spew
{
	my ($f, $content, $mode) = @_;
	open my $fh, '>', $f or die "cannot write $f: $!\n";
	print $fh $content;
	close $fh;
	chmod($mode, $f) if defined $mode;
}

sub _run_or_die
{
	my ($what, @cmd) = @_;
	my ($out, $err) = ('', '');
	run(\@cmd, '<', \undef, '>', \$out, '2>', \$err)
	  or die "$what failed: @cmd\n$out$err";
	return $out;
}

=pod

=head2 new(%opts)

name (label of the temp dir), db (database agents use, default C<app>),
issuer, audience, hba_host (method for TCP lines, default C<trust>, so tests
show that the extension itself refuses agent roles over TCP), public_socket
(also listen on a world-accessible socket directory), pg_conf (extra
postgresql.conf text), proxy_conf (extra proxy config text), pgbouncer_conf
(extra [pgbouncer] text), fsync (default off), pgbouncer_tls (PgBouncer
also listens on TCP 127.0.0.1, same port number, requiring TLS with the
proxy's certificate, so a benchmark can compare like with like; default
off: PgBouncer has its private unix socket only), tls_key_type (C<rsa>,
the default: RSA-2048; or C<ec>: ECDSA P-256) for the TLS certificate.

=cut

sub new
{
	my ($class, %opts) = @_;
	my $name = $opts{name} // 'stack';
	my $base = $opts{basedir} // tempdir("agentgate-$name-XXXXXX", TMPDIR => 1, CLEANUP => 0);
	my $self = bless {
		%opts,
		name     => $name,
		base     => $base,
		db       => $opts{db} // 'app',
		issuer   => $opts{issuer} // 'https://idp.example.test/',
		audience => $opts{audience} // 'agentgate-demo',
		top      => _top(),
		bindir   => _pg_bindir(),
		started  => 0,
		procs    => {},
	}, $class;
	$self->{pgdata}  = "$base/pgdata";
	$self->{pgsock}  = "$base/pg-sock";          # private: PgBouncer and DBAs
	$self->{pubsock} = "$base/pg-public-sock";   # public: refused to agents
	$self->{pgbsock} = "$base/pgbouncer-sock";   # private: the proxy only
	$self->{keys}    = "$base/keys";
	$self->{pgport}  = free_port();
	$self->{pgbport} = free_port();
	$self->{proxyport} = free_port();
	$self->{proxy_bin} = "$self->{top}/pooler/agentgate-proxy";
	$self->{token_bin} = "$self->{top}/pooler/agentgate-token";
	push @live, $self;
	return $self;
}

sub base          { $_[0]{base} }
sub db            { $_[0]{db} }
sub pg_port       { $_[0]{pgport} }
sub pg_socket_dir { $_[0]{pgsock} }
sub public_socket_dir { $_[0]{pubsock} }
sub pgbouncer_port { $_[0]{pgbport} }
sub pgbouncer_socket_dir { $_[0]{pgbsock} }
sub proxy_port    { $_[0]{proxyport} }
sub issuer        { $_[0]{issuer} }
sub audience      { $_[0]{audience} }
sub jwks_file     { "$_[0]{keys}/jwks.json" }
sub ca_file       { "$_[0]{keys}/tls.crt" }
sub tls_key_file  { "$_[0]{keys}/tls.key" }
sub proxy_conf_file { "$_[0]{base}/proxy.conf" }
sub log_file      { "$_[0]{base}/$_[1].log" }

=pod

=head2 start

Creates keys and certificates, initialises and starts PostgreSQL, creates
the agents' database with the extension, then starts PgBouncer and the
proxy and waits until each accepts connections.

=cut

sub start
{
	my ($self) = @_;
	$self->{started} = 1;
	make_path($self->{keys});
	mkdir $_, 0700 for ($self->{pgsock}, $self->{pgbsock});
	chmod 0700, $self->{pgsock}, $self->{pgbsock};
	if ($self->{public_socket})
	{
		mkdir $self->{pubsock};
		chmod 0777, $self->{pubsock};
	}
	$self->make_keys;
	$self->start_postgres;
	$self->setup_database;
	$self->start_pgbouncer;
	$self->start_proxy;
	return $self;
}

sub make_keys
{
	my ($self, %o) = @_;
	my $k = $self->{keys};
	my $kid = $o{kid} // 'k1';
	_run_or_die('RSA key', 'openssl', 'genpkey', '-algorithm', 'RSA',
		'-pkeyopt', 'rsa_keygen_bits:2048', '-out', "$k/$kid.key");
	_run_or_die('public key', 'openssl', 'pkey', '-in', "$k/$kid.key",
		'-pubout', '-out', "$k/$kid.pub");
	my $jwks = _run_or_die('jwks', $self->{token_bin}, 'jwks', '--key', "$k/$kid.pub",
		'--kid', $kid, '--alg', 'RS256');
	_spew("$k/jwks.json", $jwks);
	$self->{kid} = $kid;
	unless (-f "$k/tls.crt")
	{
		my @key = ($self->{tls_key_type} // 'rsa') eq 'ec'
		  ? ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256')
		  : ('-newkey', 'rsa:2048');
		_run_or_die('TLS certificate', 'openssl', 'req', '-x509', @key,
			'-nodes', '-keyout', "$k/tls.key", '-out', "$k/tls.crt", '-days', '2',
			'-subj', '/CN=localhost',
			'-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
		chmod 0600, "$k/tls.key";
	}
	$self->{session_key} //= unpack('H*', join('', map { chr(int(rand(256))) } 1 .. 32));
	return;
}

sub _pg
{
	my ($self, $prog) = @_;
	return "$self->{bindir}/$prog";
}

sub start_postgres
{
	my ($self) = @_;
	my $d = $self->{pgdata};
	unless (-f "$d/PG_VERSION")
	{
		_run_or_die('initdb', $self->_pg('initdb'), '-D', $d, '-A', 'trust',
			'-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync');
		my $sockets = $self->{pgsock} . ($self->{public_socket} ? ", $self->{pubsock}" : '');
		my $fsync = $self->{fsync} ? 'on' : 'off';
		open my $fh, '>>', "$d/postgresql.conf" or die;
		print $fh <<"EOC";

# agentgate test stack
listen_addresses = '127.0.0.1'
port = $self->{pgport}
unix_socket_directories = '$sockets'
max_connections = 300
fsync = $fsync
synchronous_commit = on
shared_preload_libraries = 'agentgate'
agentgate.pooler_socket_directory = '$self->{pgsock}'
agentgate.session_key = '$self->{session_key}'
agentgate.audit_database = '$self->{db}'
log_line_prefix = '%m [%p] %q%u@%d '
EOC
		print $fh $self->{pg_conf} if $self->{pg_conf};
		close $fh;
		my $host_method = $self->{hba_host} // 'trust';
		_spew("$d/pg_hba.conf", <<"EOH");
# agentgate test stack: agent roles have no password; the extension admits
# them only on the private socket directory, from PgBouncer's OS user.
local   all   +agentgate_agent      trust
local   all   agentgate_pgbouncer   trust
local   all   all                   trust
host    all   all   127.0.0.1/32    $host_method
EOH
	}
	_run_or_die('pg_ctl start', $self->_pg('pg_ctl'), '-D', $d, '-w', '-t', '60',
		'-l', $self->log_file('postgres'), 'start');
	$self->{pg_running} = 1;
	return;
}

sub stop_postgres
{
	my ($self, $mode) = @_;
	return unless $self->{pg_running};
	run([ $self->_pg('pg_ctl'), '-D', $self->{pgdata}, '-m', $mode // 'fast', '-w', 'stop' ],
		'>', \my $o, '2>', \my $e);
	$self->{pg_running} = 0;
}

sub restart_postgres
{
	my ($self, $mode) = @_;
	$self->stop_postgres($mode);
	$self->start_postgres;
}

sub reload_postgres
{
	my ($self) = @_;
	_run_or_die('pg_ctl reload', $self->_pg('pg_ctl'), '-D', $self->{pgdata}, 'reload');
}

=pod

=head2 admin_psql($sql, %o)

Runs $sql as the superuser over the private socket (database: $o{db} or
the agents' database) and returns its unaligned, tuples-only output; dies
on error unless $o{ok_fail} (then returns (rc, out, err)).

=cut

sub admin_psql
{
	my ($self, $sql, %o) = @_;
	my @cmd = ($self->_pg('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
		'-h', $self->{pgsock}, '-p', $self->{pgport}, '-U', $o{user} // 'postgres',
		'-d', $o{db} // $self->{db});
	my ($out, $err) = ('', '');
	my $ok = run(\@cmd, '<', \$sql, '>', \$out, '2>', \$err);
	chomp $out;
	return ($? >> 8, $out, $err) if $o{ok_fail};
	die "admin psql failed: $sql\n$err" unless $ok;
	return $out;
}

sub setup_database
{
	my ($self) = @_;
	my $db = $self->{db};
	$self->admin_psql("CREATE DATABASE \"$db\"", db => 'postgres')
	  unless $self->admin_psql("SELECT 1 FROM pg_database WHERE datname = '$db'", db => 'postgres');
	$self->admin_psql(<<"EOS");
CREATE EXTENSION IF NOT EXISTS agentgate;
GRANT USAGE, CREATE ON SCHEMA public TO agentgate_agent;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agentgate_proxy_login') THEN
    CREATE ROLE agentgate_proxy_login LOGIN IN ROLE agentgate_proxy;
  END IF;
END \$\$;
EOS
}

sub start_pgbouncer
{
	my ($self) = @_;
	my $b = $self->{base};
	# agentgate_pool (the shared pool's login) listed: no auth_query per login
	_spew("$b/pgbouncer.auth", qq{"agentgate_pgbouncer" ""\n"agentgate_pool" ""\n}, 0600);
	my $extra = $self->{pgbouncer_conf} // '';
	my $listen = '';
	if ($self->{pgbouncer_tls})
	{
		my $k = $self->{keys};
		$listen = "127.0.0.1\nclient_tls_sslmode = require\n"
		  . "client_tls_cert_file = $k/tls.crt\nclient_tls_key_file = $k/tls.key";
	}
	_spew("$b/pgbouncer.ini", <<"EOC", 0600);
;; generated by agentgate: PgBouncer listens on a private unix socket only;
;; the proxy is its only client.
[databases]
* = host=$self->{pgsock} port=$self->{pgport}

[pgbouncer]
listen_addr = $listen
listen_port = $self->{pgbport}
unix_socket_dir = $self->{pgbsock}
unix_socket_mode = 0700
pool_mode = transaction
auth_type = trust
auth_file = $b/pgbouncer.auth
auth_user = agentgate_pgbouncer
auth_query = SELECT usename, passwd FROM agentgate.pgbouncer_auth(\$1)
ignore_startup_parameters = extra_float_digits
max_client_conn = 2000
default_pool_size = 20
logfile = $b/pgbouncer.log
pidfile = $b/pgbouncer.pid
$extra
EOC
	my $sock = "$self->{pgbsock}/.s.PGSQL.$self->{pgbport}";
	$self->_spawn('pgbouncer', [ _which('pgbouncer'), "$b/pgbouncer.ini" ],
		sub { -S $sock });
}

sub write_proxy_conf
{
	my ($self) = @_;
	my $k = $self->{keys};
	my $extra = $self->{proxy_conf} // '';
	_spew($self->proxy_conf_file, <<"EOC", 0600);
# generated by agentgate's test stack
listen_addr = 127.0.0.1
listen_port = $self->{proxyport}
tls_cert_file = $k/tls.crt
tls_key_file = $k/tls.key
pgbouncer_socket_dir = $self->{pgbsock}
pgbouncer_port = $self->{pgbport}
admin_conninfo = 'host=$self->{pgsock} port=$self->{pgport} dbname=$self->{db} user=agentgate_proxy_login application_name=agentgate-proxy'
jwks_file = $k/jwks.json
issuer = $self->{issuer}
audience = $self->{audience}
$extra
EOC
}

sub start_proxy
{
	my ($self) = @_;
	$self->write_proxy_conf;
	my $port = $self->{proxyport};
	$self->_spawn('proxy', [ $self->{proxy_bin}, '-c', $self->proxy_conf_file ],
		sub { my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp'); $s ? (close($s), 1) : 0 });
}

# Starts a long-running child with output to <name>.log and waits until
# $ready returns true (or the child dies, or 30 s pass).
sub _spawn
{
	my ($self, $name, $cmd, $ready) = @_;
	my $log = $self->log_file($name);
	my $h = IPC::Run::start($cmd, '<', \undef, '>>', $log, '2>>', $log);
	$self->{procs}{$name} = $h;
	my $deadline = time + 30;
	while (time < $deadline)
	{
		return $h if $ready->();
		unless ($h->pumpable)
		{
			$h->finish;
			die "$name exited at start:\n" . _slurp($log);
		}
		usleep(50_000);
	}
	die "$name did not become ready in 30 s:\n" . _slurp($log);
}

sub pid_of
{
	my ($self, $name) = @_;
	my $h = $self->{procs}{$name} or return undef;
	return $h->{KIDS}[0]{PID};
}

sub alive
{
	my ($self, $name) = @_;
	my $pid = $self->pid_of($name) or return 0;
	return kill(0, $pid) && !waitpid($pid, WNOHANG);
}

sub signal
{
	my ($self, $name, $sig) = @_;
	my $pid = $self->pid_of($name) or die "no $name running\n";
	kill $sig, $pid;
}

sub stop_process
{
	my ($self, $name) = @_;
	my $h = delete $self->{procs}{$name} or return;
	eval { $h->signal('TERM'); };
	eval { $h->finish(timeout(10)); 1 } or eval { $h->kill_kill(grace => 2); };
}

sub restart_proxy
{
	my ($self) = @_;
	$self->stop_process('proxy');
	$self->start_proxy;
}

=pod

=head2 token(%claims)

Mints an RS256 token with the stack's key.  sub (required), groups (array
ref), act (array ref of actors, current first), scope (string), scp (array ref:
an array-valued "scp" claim, as Okta issues), ttl
(seconds, default 300), iss/aud (default the stack's), kid, now,
and claim => { name => JSON text } for anything else.

=cut

sub token
{
	my ($self, %c) = @_;
	my @cmd = ($self->{token_bin}, 'mint', '--key', "$self->{keys}/" . ($c{kid} // $self->{kid}) . '.key',
		'--alg', 'RS256', '--kid', $c{kid} // $self->{kid},
		'--sub', $c{sub} // die("token needs sub\n"),
		'--iss', $c{iss} // $self->{issuer}, '--aud', $c{aud} // $self->{audience},
		'--ttl', $c{ttl} // 300);
	push @cmd, '--groups', join(',', @{ $c{groups} }) if $c{groups};
	push @cmd, '--act', join(',', @{ $c{act} }) if $c{act};    # current actor first
	push @cmd, '--scope', $c{scope} if defined $c{scope};
	push @cmd, '--scp', join(',', @{ $c{scp} }) if $c{scp};    # Okta's array
	push @cmd, '--now', $c{now} if defined $c{now};
	for my $n (sort keys %{ $c{claim} // {} })
	{
		push @cmd, '--claim', "$n=$c{claim}{$n}";
	}
	my $t = _run_or_die('mint', @cmd);
	$t =~ s/\s+\z//;
	return $t;
}

=pod

=head2 agent_conninfo / agent_psql($token, $sql, %o)

How an agent connects: TLS to the proxy, any user name, the token as the
password.  agent_psql runs psql with $sql on standard input and returns
(exit code, stdout, stderr); $o{sslmode} overrides require; $o{timeout}.

=cut

sub agent_conninfo
{
	my ($self, %o) = @_;
	my $sslmode = $o{sslmode} // 'require';
	my $user = $o{user} // 'agent';
	my $db = $o{db} // $self->{db};
	return "host=127.0.0.1 port=$self->{proxyport} dbname=$db user=$user sslmode=$sslmode";
}

sub agent_psql
{
	my ($self, $token, $sql, %o) = @_;
	# the script from a file, not a pipe: a login refused at once closes
	# psql before it would read its standard input (EPIPE in the writer)
	my ($fh, $script) = tempfile('agent-sql-XXXXXX', DIR => $self->{base}, UNLINK => 1);
	print $fh $sql;
	close $fh;
	my @cmd = ($self->_pg('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
		'-f', $script, $self->agent_conninfo(%o));
	my ($out, $err) = ('', '');
	local $ENV{PGPASSWORD} = $token;
	local $ENV{PGCONNECT_TIMEOUT} = 10;
	local $ENV{PGAPPNAME} = $o{appname} // 'agent-test';
	run(\@cmd, '<', \undef, '>', \$out, '2>', \$err, timeout($o{timeout} // 60));
	my $rc = $? >> 8;
	chomp $out;
	return ($rc, $out, $err);
}

# Environment for running a client by hand against the stack.
=pod

=head2 proxy_login($token, %params)

A raw protocol client (AgentGate::ProxyClient) logged in to the proxy with
$token (database: the stack's): returns ($client, $login_result).

=cut

sub proxy_login
{
	my ($self, $token, %p) = @_;
	require AgentGate::ProxyClient;
	my $c = AgentGate::ProxyClient->new(port => $self->{proxyport});
	my $r = $c->login($token, database => $self->{db}, %p);
	return ($c, $r);
}

sub agent_env
{
	my ($self, $token) = @_;
	return (PGPASSWORD => $token, PGSSLMODE => 'require');
}

sub stop
{
	my ($self) = @_;
	return unless $self->{started};
	$self->{started} = 0;
	$self->stop_process('proxy');
	$self->stop_process('pgbouncer');
	$self->stop_postgres('fast');
	my $failing = Test::Builder->can('new') && !Test::Builder->new->is_passing;
	if ($failing)
	{
		for my $n (qw(postgres pgbouncer proxy))
		{
			my $log = _slurp($self->log_file($n));
			$log = substr($log, -6000) if length($log) > 6000;
			print STDERR "# ---- $n.log (tail)\n$log\n";
		}
	}
	if ($ENV{AG_KEEP} || $failing)
	{
		print STDERR "# kept $self->{base}\n";
	}
	else
	{
		remove_tree($self->{base});
	}
}

1;
