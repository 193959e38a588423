#!/usr/bin/env bash
# Rows per second and CPU microseconds per row into SQLite and PostgreSQL.
#
#   cargo build --release && benches/db.sh [ROWS]      (default 200000)
#
# logrelay reads ROWS RFC 5424 lines (about 150 bytes, 100 hosts, 50
# programs) from a file (start_at = "beginning") and writes them to the
# database; the clock runs from start until the table holds ROWS rows.
# "logrelay CPU" is the process's user+system time (/proc/PID/stat), which
# includes reading and parsing the file; "server CPU" is PostgreSQL's own
# (every process of the private cluster). PostgreSQL runs from a private
# cluster in a temp dir (initdb as the postgres user when root), with its
# default settings (fsync on). Everything stays on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-200000}
BIN=${LOGRELAY_BIN:-target/release/logrelay}
WORK=$(mktemp -d /tmp/logrelay-dbbench-XXXXXX)
chmod 755 "$WORK"
CLK=$(getconf CLK_TCK)
PG_PIDS=()
cleanup() {
    [[ -n ${LR_PID:-} ]] && kill "$LR_PID" 2>/dev/null || true
    if [[ -n ${PGBIN:-} && -d $WORK/pg ]]; then as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The input file.
mkdir -p "$WORK/in"
awk -v n="$ROWS" 'BEGIN { for (i = 0; i < n; i++) printf "<%d>1 2026-11-27T07:%02d:%02d.%06dZ host-%d prog-%d %d - - benchmark message number %d with some ordinary text after it\n", 8 + i % 8, int(i / 60) % 60, i % 60, i % 1000000, i % 100, i % 50, 1000 + i % 30000, i }' >"$WORK/in/bench.log"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run NAME DEST_TOML COUNT_COMMAND...
run() {
    local name=$1 dest=$2
    shift 2
    rm -rf "$WORK/state"
    cat >"$WORK/bench.toml" <<EOF
[global]
state_dir = "$WORK/state"
[sources.in]
type = "file"
paths = ["$WORK/in/*.log"]
start_at = "beginning"
[destinations.db]
$dest
[[paths]]
sources = ["in"]
destinations = ["db"]
EOF
    local pg_before=0
    if [[ $name == postgres ]]; then pg_before=$(pg_ticks); fi
    local start end
    start=$(date +%s.%N)
    RUST_LOG=warn "$BIN" server -c "$WORK/bench.toml" 2>"$WORK/$name.log" &
    LR_PID=$!
    local count=0
    for _ in $(seq 1 6000); do
        count=$("$@" 2>/dev/null || echo 0)
        [[ $count -ge $ROWS ]] && break
        sleep 0.2
    done
    end=$(date +%s.%N)
    local ticks pg_after=0
    ticks=$(cpu_ticks "$LR_PID")
    # Before logrelay's backend exits with its connection.
    if [[ $name == postgres ]]; then pg_after=$(pg_ticks); fi
    kill "$LR_PID"
    wait "$LR_PID" || true
    LR_PID=
    awk -v name="$name" -v rows="$count" -v s="$start" -v e="$end" -v t="$ticks" -v p="$((pg_after - pg_before))" -v clk="$CLK" 'BEGIN {
        secs = e - s; if (rows < 1) rows = 1
        printf "%-9s %9d rows %7.2f s %10.0f rows/s  logrelay CPU %6.2f us/row", name, rows, secs, rows / secs, t / clk * 1e6 / rows
        if (name == "postgres") printf "  server CPU %6.2f us/row", p / clk * 1e6 / rows
        printf "\n"
    }'
}

# SQLite
sqlite_count() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from logs").fetchone()[0])' "$WORK/logs.db"; }
run sqlite "type = \"sqlite\"
path = \"$WORK/logs.db\"" sqlite_count

# PostgreSQL
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n $PGBIN ]] || PGBIN=$(dirname "$(command -v pg_ctl)")
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) -eq 0 ]] && chown postgres "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres -A trust -E UTF8 --no-locale >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1" -w start >/dev/null
pg_ticks() {
    local sum=0 pid
    local pm
    pm=$(head -1 "$WORK/pg/postmaster.pid")
    for pid in "$pm" $(pgrep -P "$pm" || true); do
        [[ -r /proc/$pid/stat ]] && sum=$((sum + $(cpu_ticks "$pid")))
    done
    echo "$sum"
}
pg_count() { psql -h 127.0.0.1 -p "$PORT" -U postgres -Atc "select count(*) from logs" postgres; }
run postgres "type = \"postgres\"
url = \"postgres://postgres@127.0.0.1:$PORT/postgres\"" pg_count

# rsyslog's ompgsql on the same input (imfile -> ompgsql, one action queue
# dequeuing 1000 messages per transaction), when rsyslogd has been unpacked
# by tests/run.sh; its ompgsql module comes from Debian's rsyslog-pgsql,
# unpacked privately beside it (never installed).
RS=${RSYSLOG_ROOT:-target/peers/rsyslog}
MODS=$RS/usr/lib/x86_64-linux-gnu/rsyslog
if [[ -x $RS/usr/sbin/rsyslogd && ! -e $MODS/ompgsql.so ]] && command -v apt-get >/dev/null; then
    mkdir -p "$WORK/deb" && chmod 777 "$WORK/deb"
    (cd "$WORK/deb" && apt-get download -qq rsyslog-pgsql >/dev/null 2>&1) && dpkg -x "$WORK"/deb/rsyslog-pgsql_*.deb "$RS"
fi
if [[ -e $MODS/ompgsql.so ]]; then
    psql -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE rsyslog" postgres
    psql -q -h 127.0.0.1 -p "$PORT" -U postgres -f "$RS/usr/share/dbconfig-common/data/rsyslog-pgsql/install/pgsql" rsyslog
    mkdir -p "$WORK/rs"
    cat >"$WORK/rsyslog.conf" <<EOF2
global(workDirectory="$WORK/rs")
module(load="imfile")
module(load="ompgsql")
input(type="imfile" file="$WORK/in/bench.log" tag="bench" freshStartTail="off")
*.* action(type="ompgsql" server="127.0.0.1" port="$PORT" db="rsyslog" uid="postgres" pwd="unused"
           queue.type="linkedList" queue.size="100000" queue.dequeueBatchSize="1000")
EOF2
    pg_before=$(pg_ticks)
    start=$(date +%s.%N)
    "$RS/usr/sbin/rsyslogd" -n -f "$WORK/rsyslog.conf" -i "$WORK/rs.pid" -M "$MODS" >"$WORK/rs.log" 2>&1 &
    RS_PID=$!
    count=0
    for _ in $(seq 1 6000); do
        count=$(psql -h 127.0.0.1 -p "$PORT" -U postgres -Atc "select count(*) from systemevents" rsyslog 2>/dev/null || echo 0)
        [[ $count -ge $ROWS ]] && break
        kill -0 "$RS_PID" 2>/dev/null || break
        sleep 0.2
    done
    end=$(date +%s.%N)
    ticks=$(cpu_ticks "$RS_PID" 2>/dev/null || echo 0)
    pg_after=$(pg_ticks)
    kill "$RS_PID" 2>/dev/null || true
    wait "$RS_PID" 2>/dev/null || true
    awk -v rows="$count" -v s="$start" -v e="$end" -v t="$ticks" -v p="$((pg_after - pg_before))" -v clk="$CLK" 'BEGIN {
        secs = e - s; if (rows < 1) rows = 1
        printf "%-9s %9d rows %7.2f s %10.0f rows/s  rsyslogd CPU %6.2f us/row  server CPU %6.2f us/row\n", "ompgsql", rows, secs, rows / secs, t / clk * 1e6 / rows, p / clk * 1e6 / rows
    }'
else
    echo "ompgsql: skipped (no rsyslogd in $RS: run tests/run.sh as root first)"
fi
