#!/usr/bin/env bash
# db.sh - archiving into a database, side by side: rows/s and CPU µs per row of the
# archiver, for logrelay (sqlite and postgres destinations), rsyslog (imtcp -> ompgsql) and
# syslog-ng (network() -> sql(type(pgsql))). A private PostgreSQL (initdb in a temp dir, a
# free port on 127.0.0.1) is started for the run and stopped at the end.
#
#   d1  tcp -> sqlite     logrelay only (neither peer has a maintained SQLite output)
#   d2  tcp -> postgres   logrelay, rsyslog, syslog-ng
#
# Per run: benchtool gen sends N LF-framed RFC 3164 lines over CONNS connections; the run
# ends when the table holds N rows (polled every 100 ms) or stops growing for STALL_S.
# Reported: rows/s (first send -> last row seen), archiver CPU µs per row (utime+stime of
# the archiver process; PostgreSQL's own CPU is reported separately as pg µs/row), peak RSS.
#
# Usage (as root on Debian; installs rsyslog-pgsql privately and syslog-ng-mod-sql +
# libdbd-pgsql when missing): LOGRELAY_BIN=target/release/logrelay benches/db.sh
# Knobs: ARCHIVERS="logrelay rsyslog syslog-ng" WORKLOADS="d1 d2" REPS=3 N=300000 CONNS=4
#        SIZE=200 BENCHTOOL PG_BIN (default: /usr/lib/postgresql/*/bin) BENCH_WORK
set -Eeuo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${BENCH_WORK:-/tmp/logrelay-db-bench}
ARCHIVERS=${ARCHIVERS:-"logrelay rsyslog syslog-ng"}
WORKLOADS=${WORKLOADS:-"d1 d2"}
REPS=${REPS:-3}
N=${N:-300000}
SIZE=${SIZE:-200}
CONNS=${CONNS:-4}
STALL_S=${STALL_S:-15}
LOGRELAY_BIN=${LOGRELAY_BIN:-$ROOT/target/release/logrelay}
PEERS=$ROOT/target/peers/rsyslog
RSYSLOGD=${RSYSLOGD:-$PEERS/usr/sbin/rsyslogd}
RSYSLOG_MODDIR=${RSYSLOG_MODDIR:-$(ls -d "$PEERS"/usr/lib/*/rsyslog 2>/dev/null | head -1)}
SYSLOGNG=${SYSLOGNG:-$(command -v syslog-ng || true)}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$WORK/bin" "$WORK/results"
BT=${BENCHTOOL:-$WORK/bin/benchtool}
if [[ ! -x $BT ]]; then
    gcc -O2 -pthread -o "$BT" "$ROOT/../shared/bench/src/benchtool.c"
fi
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ peers' database modules
if [[ $ARCHIVERS == *rsyslog* && ! -e $RSYSLOG_MODDIR/ompgsql.so ]]; then
    debs=$(mktemp -d); chmod 777 "$debs"
    (cd "$debs" && apt-get download -qq rsyslog-pgsql) && dpkg -x "$debs"/rsyslog-pgsql_*.deb "$PEERS"
    rm -rf "$debs"
fi
if [[ $ARCHIVERS == *syslog-ng* ]] && ! dpkg -s syslog-ng-mod-sql libdbd-pgsql >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq syslog-ng-mod-sql libdbd-pgsql >/dev/null
fi

declare -A OWN=()
start_bg() { local lf=$1; shift; "$@" >"$lf" 2>&1 </dev/null & BG_PID=$!; OWN[$BG_PID]=1; }
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
stop_pid() {
    local pid=$1 i
    [[ -n $pid && -n ${OWN[$pid]:-} ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    unset "OWN[$pid]"
}
PGDIR=""
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    local p
    for p in "${!OWN[@]}"; do stop_pid "$p"; done
    [[ -n $PGDIR ]] && as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
    [[ -n $PGDIR ]] && rm -rf "$PGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cpu_ticks() { local s; s=$(< "/proc/$1/stat") || { echo 0; return; }; s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
tree_ticks() { # CPU of every process of the PostgreSQL cluster (postmaster and backends)
    local t=0 p
    for p in $(pgrep -f -- "$PGDIR/data" ; pgrep -P "$PG_PID"); do t=$((t + $(cpu_ticks "$p"))); done
    echo $t
}
peak_rss_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mono_ns() { python3 -c 'import time; print(time.monotonic_ns())'; }
wait_listen() {
    local i
    for ((i = 0; i < 200; i++)); do
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
        alive "$2" || return 1
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ private PostgreSQL
PGDIR=$(mktemp -d /tmp/logrelay-db-bench-pg.XXXXXX)
chmod 755 "$PGDIR"
[[ $(id -u) == 0 ]] && chown postgres "$PGDIR"
PGPORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U bench -A trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=on -c synchronous_commit=on" start >/dev/null
PG_PID=$(head -1 "$PGDIR/data/postmaster.pid")
PSQL=(psql -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U bench)
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT"

# ------------------------------------------------------------------ archivers
count_rows() { # workload dir -> rows in the archive
    case $1 in
    d1) python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from logs").fetchone()[0])' "$2/logs.db" 2>/dev/null || echo 0 ;;
    d2) "${PSQL[@]}" -d "db$RUN" -c 'select count(*) from logs' 2>/dev/null || echo 0 ;;
    esac
}
config() { # archiver workload dir port
    local a=$1 w=$2 d=$3 port=$4
    case $a in
    logrelay)
        printf '[global]\nstate_dir = "%s/state"\n\n[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:%s"\n\n' "$d" "$port"
        if [[ $w == d1 ]]; then printf '[destinations.db]\ntype = "sqlite"\npath = "%s/logs.db"\n\n' "$d"
        else printf '[destinations.db]\ntype = "postgres"\nurl = "postgres://bench@127.0.0.1:%s/db%s"\n\n' "$PGPORT" "$RUN"; fi
        printf '[[paths]]\nsources = ["net"]\ndestinations = ["db"]\n' ;;
    rsyslog)
        mkdir -p "$d/state"
        echo "global(workDirectory=\"$d/state\")"
        echo 'module(load="imtcp")'
        echo 'module(load="ompgsql")'
        echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$port\" ruleset=\"db\")"
        # the same columns as logrelay's schema, one INSERT per message (ompgsql's way)
        echo 'template(name="row" type="list" option.stdsql="on") {'
        echo '  constant(value="INSERT INTO logs (timestamp, received, host, program, pid, facility, severity, msgid, message) VALUES ('"'"'")'
        echo '  property(name="timereported" dateFormat="pgsql") constant(value="'"'"', '"'"'")'
        echo '  property(name="timegenerated" dateFormat="pgsql") constant(value="'"'"', '"'"'")'
        echo '  property(name="hostname") constant(value="'"'"', '"'"'") property(name="programname") constant(value="'"'"', '"'"'")'
        echo '  property(name="procid") constant(value="'"'"', ") property(name="syslogfacility") constant(value=", ")'
        echo '  property(name="syslogseverity") constant(value=", '"'"'") property(name="msgid") constant(value="'"'"', '"'"'")'
        echo '  property(name="msg") constant(value="'"'"')")'
        echo '}'
        echo 'ruleset(name="db" queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="1000") {'
        echo "  action(type=\"ompgsql\" server=\"127.0.0.1\" port=\"$PGPORT\" db=\"db$RUN\" uid=\"bench\" pwd=\"\" template=\"row\")"
        echo '}' ;;
    syslog-ng)
        echo '@version: 3.38'
        echo 'options { keep-hostname(yes); use-dns(no); dns-cache(no); use-fqdn(no); chain-hostnames(no); stats-freq(0); };'
        echo "source s_in { network(ip(\"127.0.0.1\") port($port) transport(\"tcp\") log-fetch-limit(1000) log-iw-size(100000)); };"
        echo "destination d_db { sql(type(pgsql) host(\"127.0.0.1\") port(\"$PGPORT\") username(\"bench\") password(\"\")"
        echo "  database(\"db$RUN\") table(\"logs\") create-statement-append(\"\") flags(explicit-commits) batch-lines(1000) batch-timeout(100)"
        echo '  columns("timestamp", "received", "host", "program", "pid", "facility", "severity", "msgid", "message")'
        echo '  values("${ISODATE}", "${R_ISODATE}", "${HOST}", "${PROGRAM}", "${PID}", "${FACILITY_NUM}", "${LEVEL_NUM}", "${MSGID}", "${MESSAGE}")'
        echo '  indexes()); };'
        echo 'log { source(s_in); destination(d_db); flags(flow-control); };' ;;
    esac >"$d/conf"
}
prepare_db() { # archiver: the peers get a table like logrelay's (logrelay creates its own)
    "${PSQL[@]}" -d postgres -c "create database db$RUN" >/dev/null
    [[ $1 == logrelay ]] && return 0
    "${PSQL[@]}" -d "db$RUN" -c "create table logs (id bigserial primary key, timestamp text, received text,
        host text, program text, pid text, facility text, severity text, msgid text, message text);
        create index on logs (host, timestamp); create index on logs (program, timestamp); create index on logs (severity, timestamp);" >/dev/null
}
start() { # archiver dir -> PID
    local a=$1 d=$2
    case $a in
    logrelay) start_bg "$d/log" "$LOGRELAY_BIN" server -c "$d/conf" ;;
    rsyslog) start_bg "$d/log" "$RSYSLOGD" -n -f "$d/conf" -i "$d/pid" -M "$RSYSLOG_MODDIR" ;;
    syslog-ng) start_bg "$d/log" "$SYSLOGNG" -F -f "$d/conf" -p "$d/sng.pid" -R "$d/sng.persist" -c "$d/sng.ctl" ;;
    esac
    PID=$BG_PID
}
available() {
    case $1 in
    logrelay) [[ -x $LOGRELAY_BIN ]] ;;
    rsyslog) [[ $2 == d2 && -e $RSYSLOG_MODDIR/ompgsql.so ]] ;;
    syslog-ng) [[ $2 == d2 && -n $SYSLOGNG ]] ;;
    esac
}

stamp=$(date +%Y-%m-%d_%H%M%S)
CSV="$WORK/results/db-$stamp.csv"
echo "workload,archiver,rep,status,sent,rows,rows_per_s,cpu_us_per_row,pg_cpu_us_per_row,rss_kb" >"$CSV"
MSGS="$WORK/msgs-net-$N-$SIZE.txt"
[[ -s $MSGS ]] || "$BT" mkmsgs "$N" "$SIZE" "$MSGS" net >/dev/null
RUN=0
for w in $WORKLOADS; do
    for rep in $(seq 1 "$REPS"); do
        for a in $ARCHIVERS; do
            available "$a" "$w" || continue
            RUN=$((RUN + 1))
            d="$WORK/run/$a-$w-$rep"; rm -rf "$d"; mkdir -p "$d"
            port=$(free_port)
            [[ $w == d2 ]] && prepare_db "$a"
            config "$a" "$w" "$d" "$port"
            start "$a" "$d"
            status=ok
            wait_listen "$port" "$PID" || status=start-failed
            if [[ $status != ok ]]; then
                log "$a/$w#$rep: $status: $(tail -3 "$d/log" | tr '\n' ' ')"
                stop_pid "$PID"; echo "$w,$a,$rep,$status,$N,0,0,0,0,0" >>"$CSV"; continue
            fi
            sleep 0.5
            cpu0=$(cpu_ticks "$PID"); pg0=$(tree_ticks)
            t0=$(mono_ns)
            "$BT" gen tcp "$port" "$MSGS" 0 "$CONNS" >"$d/gen.out" 2>"$d/gen.err" </dev/null || status=gen-failed
            rows=0; last_change=$(mono_ns); t_last=$t0
            while :; do
                r=$(count_rows "$w" "$d"); now=$(mono_ns)
                if ((r != rows)); then rows=$r; last_change=$now; t_last=$now; fi
                ((rows >= N)) && break
                ((now - last_change > STALL_S * 1000000000)) && { status=stalled; break; }
                sleep 0.1
            done
            cpu1=$(cpu_ticks "$PID"); pg1=$(tree_ticks); rss=$(peak_rss_kb "$PID")
            alive "$PID" || status=died
            stop_pid "$PID"
            secs=$(awk -v a="$t0" -v b="$t_last" 'BEGIN{printf "%.3f", (b-a)/1e9}')
            rate=$(awk -v n="$rows" -v s="$secs" 'BEGIN{printf "%.0f", (s>0)? n/s : 0}')
            us=$(awk -v c=$((cpu1 - cpu0)) -v t="$CLK_TCK" -v n="$rows" 'BEGIN{printf "%.2f", (n>0)? c/t*1e6/n : 0}')
            pgus=$(awk -v c=$((pg1 - pg0)) -v t="$CLK_TCK" -v n="$rows" 'BEGIN{printf "%.2f", (n>0)? c/t*1e6/n : 0}')
            log "$a/$w#$rep: $status $rows/$N rows, $secs s, $rate rows/s, $us µs/row (+ pg $pgus), RSS $((rss / 1024)) MiB"
            echo "$w,$a,$rep,$status,$N,$rows,$rate,$us,$pgus,$rss" >>"$CSV"
            [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$d"
        done
    done
done

REPORT="$WORK/results/db-$stamp.md"
{
    echo "# database benchmark $stamp ($(nproc) cores; medians of $REPS; $N rows of $SIZE bytes)"
    echo
    echo "| workload | archiver | rows/s | archiver CPU µs/row | PostgreSQL CPU µs/row | peak RSS MiB | rows/sent |"
    echo "|---|---|---:|---:|---:|---:|---|"
    tail -n +2 "$CSV" | awk -F, '
        function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
        { key = $1 "|" $2; if (!(key in seen)) { seen[key] = 1; order[++k] = key } r = ++cnt[key]
          R[key, r] = $7; U[key, r] = $8; P[key, r] = $9; M[key, r] = $10; got[key] = got[key] " " $6 "/" $5 }
        END { for (i = 1; i <= k; i++) { key = order[i]; n = cnt[key]
                for (j = 1; j <= n; j++) { ra[j] = R[key, j] + 0; ua[j] = U[key, j] + 0; pa[j] = P[key, j] + 0; ma[j] = M[key, j] + 0 }
                split(key, p, "|")
                printf "| %s | %s | %d | %.2f | %.2f | %.0f |%s |\n", p[1], p[2], median(ra, n), median(ua, n), median(pa, n), median(ma, n) / 1024, got[key] } }'
} >"$REPORT"
cat "$REPORT"
echo "results: $REPORT and $CSV" >&2
