#!/usr/bin/env bash
# bench/policy_bench.sh — throughput of an agent role under the statement
# policy (agentgate preloaded, 100 rules loaded) against the same server
# without the extension, measured side by side in one run.
#
# Two throwaway clusters are made from the same binaries and settings; the
# only differences are shared_preload_libraries = 'agentgate' and the
# extension with 100 rules.  In each round both run at the same time, so
# that other load on the machine hits both alike; the figures are medians
# over the rounds, the ratio is the median of the per-round ratios.
#
# Environment: PG_BINDIR (PostgreSQL 15 binaries; default from pg_config),
# ROUNDS (5), DURATION (seconds per pgbench run, 10), CLIENTS (per side, 2),
# SCALE (pgbench scale, 5), PORT_BASE (54210; uses two ports), CONTROL=1
# (a control run: on the extension's cluster, pgbench logs in as a role that
# is not governed, so any difference left is the clusters', not the policy's).
# Run as root (servers run as OS user postgres) or as an unprivileged user.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-2}
SCALE=${SCALE:-5}
PORT_BASE=${PORT_BASE:-54210}
RUN_AS=${RUN_AS:-postgres}

as_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

work=$(mktemp -d /tmp/agentgate-policy-bench.XXXXXX)
[ "$(id -u)" -ne 0 ] || chown "$RUN_AS" "$work"
cleanup() {
    for c in with without; do
        [ -d "$work/$c" ] && as_user "$PG_BINDIR/pg_ctl" -D "$work/$c" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

setup_cluster() {    # name port preload
    local name=$1 port=$2 preload=$3
    as_user "$PG_BINDIR/initdb" -D "$work/$name" -A trust >/dev/null
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$work'"
        echo "shared_buffers = 128MB"
        echo "max_connections = 20"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        # autovacuum workers would blur the backends' CPU figures below
        echo "autovacuum = off"
        if [ "$preload" = yes ]; then
            echo "shared_preload_libraries = 'agentgate'"
            echo "agentgate.session_key = 'bench-session-key-0123456789abcdef0123456789abcdef'"
            # agents log in only through this socket directory
            echo "agentgate.pooler_socket_directory = '$work'"
            # pgbench connects directly, without the proxy's session stamp
            echo "agentgate.require_session_stamp = off"
            # the policy engine alone: audit has its own benchmark
            # (bench/audit_bench.sh); AUDIT=on measures both together
            echo "agentgate.audit = ${AUDIT:-off}"
        fi
    } >> "$work/$name/postgresql.conf"
    as_user "$PG_BINDIR/pg_ctl" -D "$work/$name" -l "$work/$name.log" -w start >/dev/null
    as_user "$PG_BINDIR/pgbench" -h "$work" -p "$port" -i -s "$SCALE" -q postgres >/dev/null 2>&1
}

psql_do() {    # port sql
    as_user "$PG_BINDIR/psql" -X -q -h "$work" -p "$1" -d postgres -v ON_ERROR_STOP=1 -c "$2" >/dev/null
}

echo "building clusters (scale $SCALE) in $work ..."
setup_cluster with $PORT_BASE yes
setup_cluster without $((PORT_BASE + 1)) no

# the same agent role and grants on both; only "with" governs it
psql_do $PORT_BASE "CREATE EXTENSION agentgate"
psql_do $PORT_BASE "CREATE ROLE bench_agent LOGIN IN ROLE agentgate_agent"
psql_do $((PORT_BASE + 1)) "CREATE ROLE bench_agent LOGIN"
psql_do $PORT_BASE "CREATE ROLE bench_human LOGIN"
for p in $PORT_BASE $((PORT_BASE + 1)); do
    psql_do $p "GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_agent"
done
psql_do $PORT_BASE "GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_human"
with_role=bench_agent
[ "${CONTROL:-}" = 1 ] && with_role=bench_human

# 100 DBA rules on top of the baseline: relation, column, command, group
# and role rules of the kinds a real policy has.  None matches pgbench's
# statements, so every one of them is looked at for every event.
psql_do $PORT_BASE "
CREATE ROLE bench_other_group NOLOGIN;
DO \$\$
BEGIN
  FOR i IN 1..30 LOOP
    EXECUTE format('CREATE TABLE bench_t%s (id int PRIMARY KEY, a text, b text, pii text)', i);
    PERFORM agentgate.block(commands => '{UPDATE,DELETE}', relation => format('bench_t%s', i)::regclass,
                            reason => format('bench rule %s', i));
  END LOOP;
  FOR i IN 1..30 LOOP
    PERFORM agentgate.block(commands => '{READ}', relation => format('bench_t%s', i)::regclass,
                            columns => '{pii}', reason => 'pii');
  END LOOP;
  FOR i IN 1..15 LOOP
    PERFORM agentgate.block(commands => ARRAY['CREATE INDEX', 'ALTER TABLE', 'CREATE VIEW'],
                            relation => format('bench_t%s', i)::regclass, reason => 'no ddl');
  END LOOP;
  FOR i IN 1..10 LOOP
    PERFORM agentgate.block(commands => '{WRITE}', applies_to => 'bench_other_group',
                            reason => 'other group');
  END LOOP;
  PERFORM agentgate.block(commands => '{DELETE}', relation => 'pgbench_accounts', reason => 'keep accounts');
  PERFORM agentgate.block(commands => '{DELETE}', relation => 'pgbench_tellers', reason => 'keep tellers');
  PERFORM agentgate.block(commands => '{DELETE}', relation => 'pgbench_branches', reason => 'keep branches');
  PERFORM agentgate.block(commands => '{UPDATE}', relation => 'pgbench_history', reason => 'history is append-only');
  PERFORM agentgate.block(commands => '{UPDATE}', relation => 'pgbench_accounts', max_rows => 1000, reason => 'small batches');
  PERFORM agentgate.log(commands => '{TRUNCATE}', reason => 'watch');
  PERFORM agentgate.allow(commands => '{READ}', relation => 'pgbench_accounts', reason => 'reads ok');
  PERFORM agentgate.allow(commands => '{SELECT,INSERT,UPDATE}', reason => 'the workload', priority => 10);
  PERFORM agentgate.block(commands => '{LISTEN,NOTIFY}', reason => 'no pubsub');
  PERFORM agentgate.block(commands => '{CALL,DO}', reason => 'no procedural code');
  FOR i IN 1..5 LOOP
    PERFORM agentgate.block(commands => '{CLUSTER,VACUUM,REINDEX}', reason => format('maintenance %s', i));
  END LOOP;
END
\$\$;"
nrules=$(as_user "$PG_BINDIR/psql" -X -At -h "$work" -p $PORT_BASE -d postgres \
         -c "SELECT count(*) FILTER (WHERE NOT baseline) || ' DBA rules + ' || count(*) FILTER (WHERE baseline) || ' baseline' FROM agentgate.rules")
echo "rules loaded: $nrules"

# sanity: the agent is governed on "with" (the baseline refuses this)
# (psql exits non-zero on the expected refusal, so capture before matching:
# with pipefail a pipeline would fail even when grep matches)
refusal=$(as_user "$PG_BINDIR/psql" -X -h "$work" -p $PORT_BASE -U bench_agent -d postgres \
        -c "DELETE FROM pgbench_history" 2>&1 || true)
if ! grep -q 'agentgate: DELETE .*is not allowed' <<<"$refusal"; then
    echo "bench: the agent role is not governed by the policy on the policy cluster" >&2
    exit 1
fi

run_pgbench() {    # port mode(-S or "") outfile role: "tps transactions"
    as_user "$PG_BINDIR/pgbench" -h "$work" -p "$1" -U "$4" -n $2 \
        -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" postgres 2>/dev/null |
        awk '/^number of transactions actually processed:/ {n = $6}
             /^tps = .*without initial connection time/ {t = $3}
             END {print t, n}' > "$3"
}

# CPU time (clock ticks) of the postmaster's exited children: the backends
# of a finished pgbench run are reaped by then.
child_ticks() {    # cluster
    local pid
    pid=$(head -1 "$work/$1/postmaster.pid")
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $14 + $15}'
}
hz=$(getconf CLK_TCK)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Each round runs the two configurations at the same time, so whatever else
# the machine is doing slows both alike; ratios are taken per round and the
# medians of the rounds are reported.  Besides throughput, the server CPU
# time per transaction (all backends of the run) is compared.
# A third figure isolates the policy from the two clusters' differences:
# on the extension's cluster, the agent role and a role that is not
# governed run side by side against the same tables.
declare -A tps ratios cpu cratios same
for mode in S TPCB; do
    flag=""; [ $mode = S ] && flag="-S"
    for r in $(seq 1 "$ROUNDS"); do
        c1=$(child_ticks with); c2=$(child_ticks without)
        run_pgbench $PORT_BASE "$flag" "$work/with.tps" $with_role &
        p1=$!
        run_pgbench $((PORT_BASE + 1)) "$flag" "$work/without.tps" bench_agent &
        p2=$!
        wait $p1 $p2
        sleep 1
        read -r w wn < "$work/with.tps"; read -r wo won < "$work/without.tps"
        if [ -z "$w" ] || [ -z "$wo" ]; then
            echo "bench: a pgbench run failed" >&2
            exit 1
        fi
        cw=$(echo "($(child_ticks with) - $c1) * 1000000 / $hz / $wn" | bc -l)
        cwo=$(echo "($(child_ticks without) - $c2) * 1000000 / $hz / $won" | bc -l)
        tps[$mode.with]+="$w "; tps[$mode.without]+="$wo "
        cpu[$mode.with]+="$cw "; cpu[$mode.without]+="$cwo "
        ratios[$mode]+="$(echo "$w / $wo" | bc -l) "
        cratios[$mode]+="$(echo "$cwo / $cw" | bc -l) "
        # same cluster: governed agent vs a role that is not governed
        run_pgbench $PORT_BASE "$flag" "$work/agent.tps" bench_agent &
        p1=$!
        run_pgbench $PORT_BASE "$flag" "$work/human.tps" bench_human &
        p2=$!
        wait $p1 $p2
        sleep 1    # let the postmaster reap these backends before the next round's count
        read -r a an < "$work/agent.tps"; read -r h hn < "$work/human.tps"
        same[$mode]+="$(echo "$a / $h" | bc -l) "
        printf '%-5s round %2d  no ext. %8.1f tps %6.1f us/txn | policy %8.1f tps %6.1f us/txn | same cluster: agent %8.1f tps, not governed %8.1f tps\n' \
            "$mode" "$r" "$wo" "$cwo" "$w" "$cw" "$a" "$h"
    done
done

med() { echo "$1" | tr ' ' '\n' | grep . | median; }
echo
echo "pgbench as an agent role, $CLIENTS clients each, ${DURATION}s x $ROUNDS simultaneous rounds, scale $SCALE"
echo "rules on the policy cluster: $nrules; role there: $with_role"
printf '%-22s %12s %12s %7s  %14s %14s %7s  %12s\n' "workload" "tps no ext." "tps policy" "ratio" \
    "us/txn no ext." "us/txn policy" "ratio" "same cluster"
for mode in S TPCB; do
    name="select-only (-S)"; [ $mode = TPCB ] && name="TPC-B-like (default)"
    printf '%-22s %12.1f %12.1f %7.3f  %14.1f %14.1f %7.3f  %12.3f\n' "$name" \
        "$(med "${tps[$mode.without]}")" "$(med "${tps[$mode.with]}")" "$(med "${ratios[$mode]}")" \
        "$(med "${cpu[$mode.without]}")" "$(med "${cpu[$mode.with]}")" "$(med "${cratios[$mode]}")" \
        "$(med "${same[$mode]}")"
done
echo "(ratios: policy / no extension for throughput, no extension / policy for CPU per transaction;"
echo " same cluster: agent throughput / not-governed throughput, both at once on the extension's cluster)"

# With AUDIT=on, the cost of the audit guarantee by database: pgbench's
# TPC-B-like script as the agent in the audit database itself, where a
# committing transaction inserts its own rows (local commit), and in another
# database of the same cluster, whose commits wait for the writer.  Both at
# once, in every round, against the same-sized tables.
if [ "${AUDIT:-off}" = on ]; then
    psql_do $PORT_BASE "CREATE DATABASE bench_other"
    as_user "$PG_BINDIR/pgbench" -h "$work" -p $PORT_BASE -i -s "$SCALE" -q bench_other >/dev/null 2>&1
    as_user "$PG_BINDIR/psql" -X -q -h "$work" -p $PORT_BASE -d bench_other -v ON_ERROR_STOP=1 \
        -c "CREATE EXTENSION agentgate" \
        -c "GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_agent" \
        -c "SELECT agentgate.allow(commands => '{SELECT,INSERT,UPDATE}', reason => 'the workload')" >/dev/null
    local_ratios=""
    for r in $(seq 1 "$ROUNDS"); do
        run_pgbench $PORT_BASE "" "$work/local.tps" bench_agent &
        p1=$!
        as_user "$PG_BINDIR/pgbench" -h "$work" -p $PORT_BASE -U bench_agent -n \
            -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" bench_other 2>/dev/null |
            awk '/^tps = .*without initial connection time/ {print $3}' > "$work/other.tps" &
        p2=$!
        wait $p1 $p2
        read -r l ln < "$work/local.tps"; read -r o < "$work/other.tps"
        local_ratios+="$(echo "$l / $o" | bc -l) "
        printf 'TPCB  round %2d  audit database (local commit) %8.1f tps | other database (waits for the writer) %8.1f tps\n' "$r" "$l" "$o"
    done
    printf 'TPC-B-like as the agent: audit database / other database, same cluster at once: %.3f\n' \
        "$(med "$local_ratios")"
fi
