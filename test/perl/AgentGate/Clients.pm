
=pod

=head1 NAME

AgentGate::Clients - run real PostgreSQL clients against the test stack

=head1 SYNOPSIS

  my $c = AgentGate::Clients->new(name => 'node-pg');
  my ($mods, $why) = $c->npm_modules(pg => '8.23.1');
  my $r = $c->run_client([ 'node', "$top/test/clients/node_pg.js" ], env => { NODE_PATH => $mods });
  $c->report($r, [qw(connect unnamed refusal cancel rotation)], named => [qw(named)]);
  $c->finish;

=head1 DESCRIPTION

The client tests (test/t/21x_client_*.pl) connect with clients nobody here
wrote, as a fresh user would: default settings, TLS with the stack's CA,
the token as the password.  This module starts the stack, creates a table
agents may read and write (C<items>), mints two tokens of one identity (the
second one is the "refreshed" token, with a later exp), and runs a client
program that prints one line per check:

  CHECK <name> ok|fail <detail>

report() turns each expected check into a test.  Checks that need named
prepared statements through the proxy are in a TODO block until the proxy
keeps them (pooler/src/pgstream.c); a TODO check that fails says so in the
TAP output, it is not skipped.

npm packages and compiled Java classes are cached between runs in
AG_CACHE_DIR (default /tmp/agentgate-cache-<uid>, mode 0700).

=cut

package AgentGate::Clients;

use strict;
use warnings;

use AgentGate::Stack;
use Digest::MD5 qw(md5_hex);
use File::Path qw(make_path);
use IPC::Run qw(run timeout);
use Test::More;

sub new
{
	my ($class, %o) = @_;
	my $s = AgentGate::Stack->new(name => $o{name} // 'client', %{ $o{stack} // {} });
	$s->start;
	$s->admin_psql(<<'EOS');
CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.items TO agentgate_agent;
EOS
	my $self = bless { s => $s, top => $ENV{AG_TOP} // '.', sub => $o{sub} // "client-$o{name}" }, $class;
	my $base = $s->base;
	$self->{tok1_ttl} = 300;
	$self->{tok2_ttl} = 900;
	AgentGate::Stack::_spew("$base/token", $s->token(sub => $self->{sub}, ttl => $self->{tok1_ttl}) . "\n", 0600);
	AgentGate::Stack::_spew("$base/token.next", $s->token(sub => $self->{sub}, ttl => $self->{tok2_ttl}) . "\n", 0600);
	return $self;
}

sub stack { $_[0]{s} }
sub top   { $_[0]{top} }

# Named prepared statements through the proxy: kept by the proxy once
# pgstream is in; until then checks that need them are TODO.
sub named_supported
{
	my ($self) = @_;
	return -f "$self->{top}/pooler/src/pgstream.c";
}

sub cache_dir
{
	my $d = $ENV{AG_CACHE_DIR} // "/tmp/agentgate-cache-$<";
	make_path($d, { mode => 0700 }) unless -d $d;
	die "cache directory $d is not ours\n" unless -o $d;
	return $d;
}

# Installs npm packages (name => exact version) once into the cache;
# returns (node_modules path) or (undef, why).
sub npm_modules
{
	my ($self, %pkgs) = @_;
	my @specs = map { "$_\@$pkgs{$_}" } sort keys %pkgs;
	(my $key = join('+', @specs)) =~ s/[^A-Za-z0-9.@+-]/_/g;
	my $dir = cache_dir() . "/npm/$key";
	return ("$dir/node_modules") if -f "$dir/.done";
	make_path($dir);
	my ($out, $err) = ('', '');
	local $ENV{npm_config_cache} = cache_dir() . '/npm-cache';
	my $ok = eval {
		run([ 'npm', 'install', '--silent', '--no-audit', '--no-fund', '--no-save', '--prefix', $dir, @specs ],
			'<', \undef, '>', \$out, '2>', \$err, timeout(240));
	};
	return (undef, "npm install @specs failed: $@$out$err") unless $ok;
	AgentGate::Stack::_spew("$dir/.done", '');
	return ("$dir/node_modules");
}

# Compiles one Java source file into the cache (keyed by its content and the
# class path); returns (class directory) or (undef, why).
sub javac
{
	my ($self, $src, $cp) = @_;
	my $key = md5_hex(AgentGate::Stack::_slurp($src) . "\0$cp");
	my $dir = cache_dir() . "/java/$key";
	return ($dir) if -f "$dir/.done";
	make_path($dir);
	my ($out, $err) = ('', '');
	my $ok = eval { run([ 'javac', '-nowarn', '-cp', $cp, '-d', $dir, $src ], '<', \undef, '>', \$out, '2>', \$err, timeout(180)) };
	return (undef, "javac failed: $@$out$err") unless $ok;
	AgentGate::Stack::_spew("$dir/.done", '');
	return ($dir);
}

# The environment every client program reads.
sub client_env
{
	my ($self) = @_;
	my $s = $self->{s};
	my $base = $s->base;
	return (
		AG_HOST            => '127.0.0.1',
		AG_PORT            => $s->proxy_port,
		AG_DB              => $s->db,
		AG_CA              => $s->ca_file,
		AG_TOKEN_FILE      => "$base/token",
		AG_TOKEN_NEXT_FILE => "$base/token.next",
	);
}

sub run_client
{
	my ($self, $cmd, %o) = @_;
	my ($out, $err) = ('', '');
	local %ENV = (%ENV, $self->client_env, %{ $o{env} // {} });
	delete $ENV{PGPASSWORD};
	my $t0 = time;
	eval { run($cmd, '<', \undef, '>', \$out, '2>', \$err, timeout($o{timeout} // 120)); };
	my $r = { rc => $? >> 8, out => $out, err => $err . ($@ // ''), secs => time - $t0, checks => {} };
	for my $line (split /\n/, $out)
	{
		next unless $line =~ /^CHECK (\S+) (ok|fail)\s?(.*)$/;
		$r->{checks}{$1} = { ok => $2 eq 'ok', detail => $3 };
	}
	return $r;
}

sub _one
{
	my ($r, $name, $label) = @_;
	my $c = $r->{checks}{$name};
	ok($c && $c->{ok}, "$label: $name" . ($c && $c->{detail} ? " ($c->{detail})" : ''))
	  or diag($c ? "failed: $c->{detail}" : "check $name did not run\nstdout: $r->{out}\nstderr: $r->{err}");
}

# One test per expected check; the named ones in a TODO block unless the
# proxy keeps named statements.
sub report
{
	my ($self, $r, $label, $checks, %o) = @_;
	_one($r, $_, $label) for @$checks;
	if (@{ $o{named} // [] })
	{
		TODO:
		{
			local $TODO = $self->named_supported ? undef
			  : 'named prepared statements through the proxy are not kept yet (PgBouncer 1.18 transaction pool; proxy work in progress)';
			_one($r, $_, $label) for @{ $o{named} };
		}
	}
}

# The token the identity last logged in with: after the rotation check it
# must be the second one (the proxy's agentgate.login() records its exp).
sub check_rotated
{
	my ($self, $label) = @_;
	my $s = $self->{s};
	my $exp_diff = $s->admin_psql(
		"SELECT round(extract(epoch FROM token_expires - now()))::int FROM agentgate.agents WHERE identity = '$self->{sub}'");
	cmp_ok($exp_diff, '>', $self->{tok1_ttl} + 60,
		"$label: after the rotation the identity logged in with the refreshed token (exp in ${exp_diff}s)");
}

sub finish
{
	my ($self) = @_;
	$self->{s}->stop;
}

1;
