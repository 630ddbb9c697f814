# Column masks through the real data path: agentgate-proxy, PgBouncer's
# transaction pool, and psycopg 3 with the extended protocol in text and
# binary format, a driver-prepared statement planned again after a mask
# change, and COPY TO in text and binary.  Debian's client packages are for
# /usr/bin/python3.
use strict;
use warnings;
use Test::More;
use AgentGate::Clients;
use IPC::Run qw(run);

my $py = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
SKIP:
{
	skip 'python3-psycopg is not installed', 1 unless run([ $py, '-c', 'import psycopg' ], '2>', \my $e);
	my $c = AgentGate::Clients->new(name => 'masks',
		stack => { pg_conf => "agentgate.mask_hash_key = 'tap-mask-hash-key-0123456789'\n" });
	my $s = $c->stack;
	$s->admin_psql(<<'EOS');
CREATE TABLE public.people (id int PRIMARY KEY, ssn text, salary int, born date, note text);
INSERT INTO public.people VALUES (1, '111-11-1111', 100, '1980-01-02', 'real note');
GRANT SELECT ON public.people TO agentgate_agent;
SELECT agentgate.mask('people', 'ssn', 'partial');
SELECT agentgate.mask('people', 'salary', 'redact');
SELECT agentgate.mask('people', 'born', 'redact');
EOS
	my $dba = sprintf('host=%s port=%d dbname=%s user=postgres', $s->pg_socket_dir, $s->pg_port, $s->db);
	my $r = $c->run_client([ $py, $c->top . '/test/clients/psycopg3_masks.py' ], env => { AG_DBA => $dba });
	is($r->{rc}, 0, "psycopg 3 program ran ($r->{secs} s)") or diag $r->{err};
	$c->report($r, 'masks', [qw(text binary prepared_replanned copy copy_binary)]);
	# the DBA reads real values
	is($s->admin_psql('SELECT ssn FROM people WHERE id = 1'), '111-11-1111', 'the DBA reads the real value');
	$c->finish;
}
done_testing();
