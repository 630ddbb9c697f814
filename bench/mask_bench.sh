#!/usr/bin/env bash
# bench/mask_bench.sh — what column masks cost an agent, measured side by
# side in one run on one throwaway cluster.
#
#  1. A SELECT of every row of a 1M-row table with two masked columns
#     (COPY (SELECT *) TO STDOUT, so every value is computed and sent)
#     against the same query on an identical table without masks, both
#     by the same governed role, at the same time; once per method.
#  2. pgbench -S as two governed roles at the same time, one with masks on
#     an unrelated table (so every statement goes through the mask cache
#     and the tree walk), the other with no mask at all.
#  3. The same two roles, backend CPU time per statement of a PL/pgSQL
#     loop of dynamic SELECTs (read from /proc for the backend), which the
#     machine's other load disturbs far less than throughput.
#
# Figures are medians over ROUNDS; ratios are medians of per-round ratios.
# Environment: PG_BINDIR (PostgreSQL 15 binaries; default from pg_config),
# ROUNDS (5), ROWS (1000000), DURATION (seconds per pgbench run, 10),
# CLIENTS (per role, 1), SCALE (pgbench scale, 5), PORT (54230), METHODS
# (the methods of part 1, default all), PGBENCH (0 skips part 2).
# Run as root (the server runs as OS user postgres) or as an unprivileged user.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
ROUNDS=${ROUNDS:-5}
ROWS=${ROWS:-1000000}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-1}
SCALE=${SCALE:-5}
PORT=${PORT:-54230}
RUN_AS=${RUN_AS:-postgres}

as_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

work=$(mktemp -d /tmp/agentgate-mask-bench.XXXXXX)
[ "$(id -u)" -ne 0 ] || chown "$RUN_AS" "$work"
cleanup() {
    [ -d "$work/data" ] && as_user "$PG_BINDIR/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

as_user "$PG_BINDIR/initdb" -D "$work/data" -A trust >/dev/null
cat >> "$work/data/postgresql.conf" <<EOC
port = $PORT
listen_addresses = ''
unix_socket_directories = '$work'
shared_buffers = 256MB
max_connections = 20
fsync = off
synchronous_commit = off
autovacuum = off
max_parallel_workers_per_gather = 0
shared_preload_libraries = 'agentgate'
agentgate.session_key = 'bench-session-key-0123456789abcdef0123456789abcdef'
agentgate.pooler_socket_directory = '$work'
agentgate.require_session_stamp = off
agentgate.audit = off
agentgate.mask_hash_key = 'bench-mask-hash-key-0123456789abcdef'
EOC
as_user "$PG_BINDIR/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null

psql_do() {    # sql [role]
    as_user "$PG_BINDIR/psql" -X -q -At -h "$work" -p "$PORT" -d postgres -U "${2:-postgres}" \
        -v ON_ERROR_STOP=1 -c "$1"
}

echo "building the tables ($ROWS rows each) and pgbench (scale $SCALE) in $work ..."
as_user "$PG_BINDIR/pgbench" -h "$work" -p "$PORT" -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql_do "
CREATE EXTENSION agentgate;
CREATE ROLE bench_agent LOGIN IN ROLE agentgate_agent;
CREATE ROLE bench_agent2 LOGIN IN ROLE agentgate_agent;
CREATE TABLE people_plain (id int, email text, ssn text, note text, n int);
CREATE TABLE people_masked (LIKE people_plain);
INSERT INTO people_plain
  SELECT g, 'user' || g || '@example.com', lpad((g % 1000)::text, 3, '0') || '-45-' || lpad((g % 10000)::text, 4, '0'),
         md5(g::text), g FROM generate_series(1, $ROWS) g;
INSERT INTO people_masked SELECT * FROM people_plain;
CREATE TABLE unrelated (id int, secret text);
GRANT SELECT ON people_plain, people_masked, unrelated TO bench_agent, bench_agent2;
GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_agent, bench_agent2;"
psql_do "VACUUM (FREEZE, ANALYZE) people_plain, people_masked"

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# milliseconds of COPY (SELECT * FROM t) TO STDOUT as bench_agent, output discarded
copy_ms() {    # table
    as_user "$PG_BINDIR/psql" -X -q -h "$work" -p "$PORT" -d postgres -U bench_agent \
        -c '\timing on' -c '\o /dev/null' -c "COPY (SELECT * FROM $1) TO STDOUT" |
        awk '/^Time:/ {print $2}'
}

# both tables at the same time, so that other load on the machine hits both
# alike; which starts first alternates (round number odd: the plain one)
copy_pair() {    # round -> "plain_ms masked_ms"
    local p1 p2
    if [ $(($1 % 2)) -eq 1 ]; then
        copy_ms people_plain > "$work/plain.ms" & p1=$!
        copy_ms people_masked > "$work/masked.ms" & p2=$!
    else
        copy_ms people_masked > "$work/masked.ms" & p2=$!
        copy_ms people_plain > "$work/plain.ms" & p1=$!
    fi
    wait $p1 $p2
    echo "$(cat "$work/plain.ms") $(cat "$work/masked.ms")"
}

echo
echo "1. SELECT of $ROWS rows (5 columns, email and ssn masked) as a governed role, $ROUNDS rounds"
printf '%-10s %12s %12s %8s\n' method "unmasked ms" "masked ms" ratio
for method in ${METHODS:-none redact null partial email hash}; do
    psql_do "DELETE FROM agentgate.masks"
    if [ "$method" != none ]; then
        psql_do "SELECT agentgate.mask('people_masked', 'email', '$method'), agentgate.mask('people_masked', 'ssn', '$method')" >/dev/null
    fi
    copy_pair 1 >/dev/null    # warm
    plain=""; masked=""; ratios=""
    for r in $(seq 1 "$ROUNDS"); do
        read -r a b < <(copy_pair "$r")
        plain+="$a "; masked+="$b "; ratios+="$(echo "$b / $a" | bc -l) "
    done
    printf '%-10s %12.1f %12.1f %8.3f\n' "$method" "$(echo "$plain" | median)" \
        "$(echo "$masked" | median)" "$(echo "$ratios" | median)"
done
psql_do "DELETE FROM agentgate.masks"

psql_do "SELECT agentgate.mask('unrelated', 'secret', 'partial', applies_to => 'bench_agent')" >/dev/null
if [ "${PGBENCH:-1}" != 0 ]; then
echo
echo "2. pgbench -S, $CLIENTS client(s) per role, ${DURATION}s x $ROUNDS rounds, both roles at once:"
echo "   bench_agent has masks on an unrelated table, bench_agent2 has none"
run_pgbench() {    # role outfile
    as_user "$PG_BINDIR/pgbench" -h "$work" -p "$PORT" -U "$1" -n -S \
        -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" postgres 2>/dev/null |
        awk '/^tps = .*without initial connection time/ {print $3}' > "$2"
}
with=""; without=""; ratios=""
for r in $(seq 1 "$ROUNDS"); do
    run_pgbench bench_agent "$work/with.tps" & p1=$!
    run_pgbench bench_agent2 "$work/without.tps" & p2=$!
    wait $p1 $p2
    w=$(cat "$work/with.tps"); wo=$(cat "$work/without.tps")
    with+="$w "; without+="$wo "; ratios+="$(echo "$w / $wo" | bc -l) "
    printf '   round %d: with masks %8.1f tps, without %8.1f tps\n' "$r" "$w" "$wo"
done
printf '   median: with masks %.1f tps, without %.1f tps, ratio %.3f\n' \
    "$(echo "$with" | median)" "$(echo "$without" | median)" "$(echo "$ratios" | median)"
fi

echo
echo "3. backend CPU per statement of a PL/pgSQL loop of 40000 dynamic SELECTs, $ROUNDS rounds"
psql_do "
CREATE FUNCTION plan_loop(n int) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE v int;
BEGIN
  FOR i IN 1..n LOOP
    EXECUTE 'SELECT abalance FROM pgbench_accounts WHERE aid = ' || (i % 100000 + 1) INTO v;
  END LOOP;
  RETURN n;
END \$\$;"
# CPU ticks of this backend, read by the superuser before and after
ticks_sql="SELECT split_part(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ', 12)::bigint
             + split_part(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ', 13)::bigint"
hz=$(getconf CLK_TCK)
loop_us() {    # role -> CPU microseconds per statement
    as_user "$PG_BINDIR/psql" -X -q -At -h "$work" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 <<EOS | tail -1
CREATE TEMP TABLE t0 AS $ticks_sql AS ticks;
SET SESSION AUTHORIZATION $1;
SELECT plan_loop(40000) \\g /dev/null
RESET SESSION AUTHORIZATION;
SELECT round(((($ticks_sql) - (SELECT ticks FROM t0)) * 1000000.0 / $hz / 40000)::numeric, 2);
EOS
}
with=""; without=""; ratios=""
for r in $(seq 1 "$ROUNDS"); do
    w=$(loop_us bench_agent); wo=$(loop_us bench_agent2)
    with+="$w "; without+="$wo "; ratios+="$(echo "$w / $wo" | bc -l) "
done
printf '   median: with masks %.2f us, without %.2f us, ratio %.3f\n' \
    "$(echo "$with" | median)" "$(echo "$without" | median)" "$(echo "$ratios" | median)"
