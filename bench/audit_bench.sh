#!/usr/bin/env bash
# bench/audit_bench.sh — cost and limits of agentgate's audit log, measured
# side by side in one run.
#
#   1. pgbench -S as an agent role (every statement audited by agentgate,
#      with its default normaliser, the server's lexer, and with
#      agentgate.audit_normalizer = libpg_query: agentgate-pgq) against the
#      same server with no extension and with pgAudit (pgaudit.log = 'read,
#      write') in two settings: "pgaudit" records what an agentgate row
#      records (log_line_prefix with time, pid, role, database, client,
#      session stamp, session and SQLSTATE; log_rows; log_relation) through
#      the logging collector; "pgaudit-min" is its cheapest setting (stderr
#      straight to a file, no attribution).  Interleaved rounds: median TPS and
#      server CPU microseconds per statement (utime + stime of the
#      postmaster and all its children, from /proc, before and after).
#   2. The writer's sustained rows/s: the audit table is locked while
#      clients fill the ring, then unlocked; time until it is drained.
#   3. The storage floor: the drained rows loaded again with COPY BINARY,
#      CPU per row of the COPY backend -- what keeping these rows in this
#      table costs whoever writes them.
#   4. The crash-loss bound: kill -9 of a backend under load; acknowledged
#      statements with no row, and what the gap row reports.
#
# Environment: PG_BINDIR (PostgreSQL 15 binaries with agentgate and pgaudit
# installed; default from pg_config), BENCH_PORT (54310), ROUNDS or
# BENCH_ROUNDS (3), SECONDS_PER_RUN or BENCH_SECONDS (15), CLIENTS (4),
# SCALE (10).  Run as root (the server
# runs as OS user postgres) or as an unprivileged user.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
PORT=${BENCH_PORT:-54310}
ROUNDS=${ROUNDS:-${BENCH_ROUNDS:-3}}
SECS=${SECONDS_PER_RUN:-${BENCH_SECONDS:-15}}
CLIENTS=${CLIENTS:-4}
SCALE=${SCALE:-10}
RUNAS=()
[ "$(id -u)" -eq 0 ] && RUNAS=(runuser -u postgres --)

work=$(mktemp -d /tmp/agentgate-bench.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
data=$work/data
log=$work/server.log
cleanup() {
    "${RUNAS[@]}" "$PG_BINDIR/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pg() { "${RUNAS[@]}" "$PG_BINDIR/psql" -X -q -At -h "$work" -p "$PORT" -d postgres "$@"; }
bench() { "${RUNAS[@]}" "$PG_BINDIR/pgbench" -h "$work" -p "$PORT" "$@" postgres; }

"${RUNAS[@]}" "$PG_BINDIR/initdb" -D "$data" -A trust >/dev/null
cat >> "$data/postgresql.conf" <<EOF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$work'
max_connections = 50
shared_buffers = 256MB
agentgate.session_key = 'bench-session-key-0123456789abcdef0123456789abcdef'
agentgate.pooler_socket_directory = '$work'
include_if_exists = 'bench.conf'
EOF

# configure NAME: which library is preloaded for the next runs
configure() {
    case $1 in
        none)      printf "shared_preload_libraries = ''\n" ;;
        # pgAudit recording what an agentgate row records (time, pid, role,
        # database, client, session stamp, session, SQLSTATE, rows,
        # relation) through the logging collector, as the PostgreSQL manual
        # advises for log volumes like this
        pgaudit)   printf "shared_preload_libraries = 'pgaudit'\npgaudit.log = 'read, write'\n"
                   printf "pgaudit.log_rows = on\npgaudit.log_relation = on\n"
                   printf "logging_collector = on\nlog_directory = 'log'\n"
                   printf "log_line_prefix = '%%m [%%p] %%u@%%d %%r %%a %%c %%e '\n" ;;
        # the cheapest pgAudit: default settings, stderr straight to a file
        pgaudit-min)
                   printf "shared_preload_libraries = 'pgaudit'\npgaudit.log = 'read, write'\n" ;;
        agentgate) printf "shared_preload_libraries = 'agentgate'\n" ;;
        agentgate-pgq)
                   printf "shared_preload_libraries = 'agentgate'\nagentgate.audit_normalizer = libpg_query\n" ;;
    esac > "$data/bench.conf"
    printf '%s\n' "${EXTRA_CONF:-}" >> "$data/bench.conf"
    [ "$(id -u)" -eq 0 ] && chown postgres "$data/bench.conf"
    "${RUNAS[@]}" "$PG_BINDIR/pg_ctl" -D "$data" -l "$log" -w restart -m fast >/dev/null 2>&1 ||
        "${RUNAS[@]}" "$PG_BINDIR/pg_ctl" -D "$data" -l "$log" -w start >/dev/null
}

# CPU ticks of the postmaster, its reaped children and its live children
server_ticks() {
    local pm total=0 f
    pm=$(head -1 "$data/postmaster.pid")
    read -r -a f < <(sed 's/^.*) //' "/proc/$pm/stat")
    # fields after the command: utime=12 stime=13 cutime=14 cstime=15 (1-based from state=1)
    total=$(( f[11] + f[12] + f[13] + f[14] ))
    for c in $(pgrep -P "$pm"); do
        if [ -r "/proc/$c/stat" ]; then
            read -r -a f < <(sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null) || continue
            total=$(( total + f[11] + f[12] ))
        fi
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

configure agentgate
pg -c "CREATE EXTENSION IF NOT EXISTS agentgate" >/dev/null
bench -i -q -s "$SCALE" >/dev/null 2>&1
pg >/dev/null <<'EOF'
CREATE ROLE agent_bench LOGIN IN ROLE agentgate_agent;
GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers TO agent_bench;
EOF
# agents come with the proxy's session stamp in application_name
PGAPPNAME=$(pg -c "SELECT (agentgate.session_stamp('agent_bench')).stamp")
export PGAPPNAME
[ "$(id -u)" -eq 0 ] && RUNAS=(runuser -u postgres -- env PGAPPNAME="$PGAPPNAME")

declare -A TPS CPU
run_one() {
    local cfg=$1 out t0 t1 tps
    t0=$(server_ticks)
    out=$(bench -n -S -c "$CLIENTS" -j 2 -T "$SECS" -U agent_bench 2>&1)
    sleep 0.5   # let the writer finish what the run appended
    t1=$(server_ticks)
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
    local tx
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    TPS[$cfg]+="$tps "
    CPU[$cfg]+="$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$tx" 'BEGIN{printf "%.1f", d / hz * 1e6 / n}') "
    printf '  round %s %-15s tps %10s  cpu/stmt %s us\n' "$2" "$cfg" "$tps" \
        "$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$tx" 'BEGIN{printf "%.1f", d / hz * 1e6 / n}')"
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

echo "== pgbench -S, $CLIENTS clients, ${SECS}s per run, scale $SCALE, $ROUNDS interleaved rounds"
for r in $(seq 1 "$ROUNDS"); do
    for cfg in none pgaudit pgaudit-min agentgate agentgate-pgq; do
        configure "$cfg"
        run_one "$cfg" "$r"
    done
    pg -c "TRUNCATE agentgate.audit_log" >/dev/null 2>&1 || true
done
echo
printf '%-16s %12s %16s\n' config "median TPS" "CPU us/stmt"
for cfg in none pgaudit pgaudit-min agentgate agentgate-pgq; do
    printf '%-16s %12s %16s\n' "$cfg" "$(median <<<"${TPS[$cfg]}")" "$(median <<<"${CPU[$cfg]}")"
done
a=$(median <<<"${TPS[agentgate]}"); p=$(median <<<"${TPS[pgaudit]}"); n=$(median <<<"${TPS[none]}")
# per-round ratios: runs next to each other see the same machine
round_ratio() {
    paste <(tr ' ' '\n' <<<"${TPS[$1]}" | sed '/^$/d') <(tr ' ' '\n' <<<"${TPS[$2]}" | sed '/^$/d') |
        awk '{printf "%.3f ", $1 / $2}'
}
rr=$(round_ratio agentgate pgaudit)
echo "agentgate / pgaudit TPS ratio: $(awk -v a="$a" -v p="$p" 'BEGIN{printf "%.2f", a/p}') of medians," \
     "$(median <<<"$rr") median of per-round ratios ($rr)  (goal >= 1.15)"
echo "agentgate / no extension TPS ratio: $(awk -v a="$a" -v n="$n" 'BEGIN{printf "%.2f", a/n}')"
c() { median <<<"${CPU[$1]}"; }
echo "added server CPU per statement: pgaudit +$(awk -v x="$(c pgaudit)" -v b="$(c none)" 'BEGIN{printf "%.1f", x-b}') us," \
     "agentgate +$(awk -v x="$(c agentgate)" -v b="$(c none)" 'BEGIN{printf "%.1f", x-b}') us," \
     "agentgate-pgq +$(awk -v x="$(c agentgate-pgq)" -v b="$(c none)" 'BEGIN{printf "%.1f", x-b}') us"
m=$(median <<<"${TPS[pgaudit-min]}")
rm_=$(round_ratio agentgate pgaudit-min)
echo "agentgate / pgaudit-min TPS ratio: $(awk -v a="$a" -v p="$m" 'BEGIN{printf "%.2f", a/p}') of medians," \
     "$(median <<<"$rm_") median of per-round ratios ($rm_)  (pgAudit's cheapest setting, no attribution)"
# The ceiling: no audit at all against each pgAudit setting.  No audit
# implementation, however cheap, can beat pgAudit by more than this here.
cn=$(round_ratio none pgaudit); cm=$(round_ratio none pgaudit-min)
echo "ceiling, no extension / pgaudit: $(median <<<"$cn") median of per-round ratios ($cn)"
echo "ceiling, no extension / pgaudit-min: $(median <<<"$cm") median of per-round ratios ($cm)"
echo "added server CPU per statement: pgaudit-min +$(awk -v x="$(c pgaudit-min)" -v b="$(c none)" 'BEGIN{printf "%.1f", x-b}') us"
l=$(median <<<"${TPS[agentgate-pgq]}")
echo "agentgate-pgq / pgaudit TPS ratio: $(awk -v a="$l" -v p="$p" 'BEGIN{printf "%.2f", a/p}')"

echo
echo "== writer throughput: ring filled while agentgate.audit_log is locked, then drained"
EXTRA_CONF="agentgate.audit_ring_slots = 200000" configure agentgate
N=150000
pg -c "TRUNCATE agentgate.audit_log" >/dev/null
locker_in=$work/locker.fifo
mkfifo "$locker_in"; [ "$(id -u)" -eq 0 ] && chown postgres "$locker_in"
( "${RUNAS[@]}" "$PG_BINDIR/psql" -X -q -h "$work" -p "$PORT" -d postgres < "$locker_in" >/dev/null 2>&1 ) &
exec 9>"$locker_in"
echo "BEGIN; LOCK TABLE agentgate.audit_log IN ACCESS EXCLUSIVE MODE;" >&9
sleep 1
bench -n -S -c "$CLIENTS" -j 2 -t $((N / CLIENTS)) -U agent_bench >/dev/null 2>&1
pending=$(pg -c "SELECT pending FROM agentgate.audit_ring_status()")
t0=$(date +%s.%N)
echo "COMMIT;" >&9
exec 9>&-
pg -c "SELECT agentgate.audit_flush()" >/dev/null
t1=$(date +%s.%N)
wait
echo "records waiting: $pending; drained in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s:" \
     "$(awk -v a="$t0" -v b="$t1" -v n="$pending" 'BEGIN{printf "%.0f", n/(b-a)}') rows/s (goal >= 30000)"

echo
echo "== storage floor: the same rows loaded again with COPY BINARY, PostgreSQL's cheapest bulk path"
# What any audit log that keeps these rows in this table pays per row,
# whoever writes them: the COPY backend's own CPU (/proc/self/stat of the
# backend, in clock ticks), next to the writer's drain rate above.
pg -c "COPY (SELECT * FROM agentgate.audit_log) TO '$work/rows.bin' (FORMAT binary)" >/dev/null
[ "$(id -u)" -eq 0 ] && chown postgres "$work/rows.bin"
nrows=$(pg -c "SELECT count(*) FROM agentgate.audit_log")
for i in 1 2 3; do
    pg -c "TRUNCATE agentgate.audit_log" -c "CHECKPOINT" >/dev/null
    ticks=$(pg <<EOS
CREATE TEMP TABLE t0 AS SELECT (string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' '))[12:13]::int[] AS v;
COPY agentgate.audit_log FROM '$work/rows.bin' (FORMAT binary);
SELECT (x.v[1] + x.v[2]) - (t0.v[1] + t0.v[2])
  FROM t0, (SELECT (string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' '))[12:13]::int[] AS v) x;
EOS
)
    ticks=$(tail -1 <<<"$ticks")
    echo "COPY of $nrows rows: $(awk -v t="$ticks" -v hz="$HZ" -v n="$nrows" 'BEGIN{printf "%.2f", t / hz * 1e6 / n}') us of CPU per row"
done

echo
echo "== crash-loss bound: kill -9 of a backend under load"
for conf in "agentgate.audit_ring_slots = 8192
agentgate.audit_flush_interval = 50ms" "agentgate.audit_ring_slots = 8192
agentgate.audit_flush_interval = 20ms"; do
    EXTRA_CONF="$conf" configure agentgate
    pg -c "TRUNCATE agentgate.audit_log" >/dev/null
    t0=$(pg -c "SELECT clock_timestamp()")
    out=$work/crash.out
    ( bench -n -S -c "$CLIENTS" -j 2 -T 8 -U agent_bench > "$out" 2>&1 || true ) &
    sleep 4
    victim=$(pg -c "SELECT pid FROM pg_stat_activity WHERE usename = 'agent_bench' LIMIT 1")
    kill -9 "$victim"
    wait
    for _ in $(seq 1 60); do pg -c "SELECT agentgate.audit_flush()" >/dev/null 2>&1 && break; sleep 0.5; done
    acked=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    rows=$(pg -c "SELECT count(*) FROM agentgate.audit_log WHERE role_name = 'agent_bench' AND command_tag = 'SELECT' AND ts >= '$t0'")
    gap=$(pg -c "SELECT coalesce(sum(lost), 0) FROM agentgate.audit_log WHERE decision = 'gap' AND ts >= '$t0'")
    echo "$(tr '\n' ' ' <<<"$conf"): acknowledged $acked, rows $rows, missing $((acked > rows ? acked - rows : 0)), gap row reports $gap lost"
done
