#!/usr/bin/env bash
# rfc5424.sh - RFC 5424 input: the peer benchmark's w1 (tcp -> one file) with
# 400-byte RFC 5424 lines (timestamp with microseconds, hostname, app-name, procid,
# msgid, one SD-ELEMENT of three params, then text), LF-framed, from 20 hosts and
# 10 programs, over CONNS connections, side by side:
#
#   limit     benchtool limit tcp-file (a raw byte copy: the machine's ceiling)
#   logrelay  tcp source -> file destination (defaults)
#   rsyslog   imtcp -> omfile, RSYSLOG_TraditionalFileFormat, ioBufferSize 256k
#             (its default parser chain reads RFC 5424)
#   syslog-ng network(tcp, flags(syslog-protocol), log-fetch-limit(1000),
#             log-iw-size(100000)) -> file(), flow-control (the peer harness's tuned
#             profile; flags(syslog-protocol) makes network() parse RFC 5424)
#
# Measured per run as the peer harness measures: the receiver's CPU (utime+stime from
# /proc/PID/stat, ready -> last line written) per message, its peak RSS (VmHWM), and
# lines missing in the output. REPS runs per cell, receivers alternated; medians.
#
# Usage: LOGRELAY_BIN=target/release/logrelay benches/rfc5424.sh
# Knobs: TARGETS="limit logrelay rsyslog syslog-ng"  N=2000000  SIZE=400  REPS=3  CONNS=4
#        BENCHTOOL (default: built from ../shared/bench/src/benchtool.c into $BENCH_WORK/bin)
#        RSYSLOGD, RSYSLOG_MODDIR (default: target/peers/rsyslog, which tests/run.sh unpacks)
#        SYSLOGNG (default: syslog-ng on PATH)   BENCH_WORK (default: /tmp/logrelay-5424-bench)
set -Eeuo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${BENCH_WORK:-/tmp/logrelay-5424-bench}
TARGETS=${TARGETS:-"limit logrelay rsyslog syslog-ng"}
N=${N:-2000000}
SIZE=${SIZE:-400}
REPS=${REPS:-3}
CONNS=${CONNS:-4}
LOGRELAY_BIN=${LOGRELAY_BIN:-$ROOT/target/release/logrelay}
RSYSLOGD=${RSYSLOGD:-$ROOT/target/peers/rsyslog/usr/sbin/rsyslogd}
RSYSLOG_MODDIR=${RSYSLOG_MODDIR:-$(ls -d "$ROOT"/target/peers/rsyslog/usr/lib/*/rsyslog 2>/dev/null | head -1)}
SYSLOGNG=${SYSLOGNG:-$(command -v syslog-ng || true)}
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$WORK/bin" "$WORK/results"
BT=${BENCHTOOL:-$WORK/bin/benchtool}
if [[ ! -x $BT ]]; then
    src="$ROOT/../shared/bench/src/benchtool.c"
    [[ -r $src ]] || { echo "rfc5424.sh: no benchtool: set BENCHTOOL or provide $src" >&2; exit 1; }
    gcc -O2 -pthread -o "$BT" "$src"
fi
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

MSGS="$WORK/msgs-5424-$N-$SIZE.txt"
if [[ ! -s $MSGS ]]; then
    log "writing $N RFC 5424 lines of $SIZE bytes to $MSGS"
    python3 - "$N" "$SIZE" "$MSGS" <<'EOF'
import sys
n, size, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
filler = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " * 8
with open(path, "wb", buffering=1 << 20) as out:
    for i in range(n):
        sev = i % 8
        head = (b"<%d>1 2026-12-07T10:%02d:%02d.%06dZ host%02d app%d %d ID%d "
                b"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"%d\"] seq=%010d "
                % (16 * 8 + sev, i // 60 % 60, i % 60, i % 1000000, i % 20, i % 10,
                   1000 + i % 97, i % 50, 1000 + i % 13, i))
        body = head + filler
        out.write(body[:size - 1] + b"\n")
EOF
fi

declare -A OWN=()
cleanup() { for p in "${!OWN[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# start TARGET DIR PORT -> sets PID
start() {
    local t=$1 d=$2 port=$3
    case $t in
    limit) "$BT" limit tcp-file "$port" "$d/out/all.log" >"$d/sut.log" 2>&1 & ;;
    logrelay)
        printf '[sources.net]\ntype = "tcp"\nlisten = "127.0.0.1:%s"\n\n[destinations.out]\ntype = "file"\npath = "%s"\n\n[[paths]]\nsources = ["net"]\ndestinations = ["out"]\n' \
            "$port" "$d/out/all.log" >"$d/logrelay.toml"
        "$LOGRELAY_BIN" server -c "$d/logrelay.toml" >"$d/sut.log" 2>&1 & ;;
    rsyslog)
        mkdir -p "$d/state"
        {
            echo "global(workDirectory=\"$d/state\")"
            echo 'module(load="imtcp")'
            echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$port\" ruleset=\"bench\")"
            echo 'ruleset(name="bench") {'
            echo "  action(type=\"omfile\" file=\"$d/out/all.log\" template=\"RSYSLOG_TraditionalFileFormat\" ioBufferSize=\"256k\")"
            echo '}'
        } >"$d/rsyslog.conf"
        local args=(-n -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid")
        [[ -n $RSYSLOG_MODDIR ]] && args+=(-M "$RSYSLOG_MODDIR")
        "$RSYSLOGD" "${args[@]}" >"$d/sut.log" 2>&1 & ;;
    syslog-ng)
        {
            echo '@version: 3.38'
            echo 'options { keep-hostname(yes); use-dns(no); dns-cache(no); use-fqdn(no); chain-hostnames(no); stats-freq(0); create-dirs(yes); };'
            echo "source s_in { network(ip(\"127.0.0.1\") port($port) transport(\"tcp\") flags(syslog-protocol) log-fetch-limit(1000) log-iw-size(100000)); };"
            echo "destination d_out { file(\"$d/out/all.log\"); };"
            echo 'log { source(s_in); destination(d_out); flags(flow-control); };'
        } >"$d/syslog-ng.conf"
        "$SYSLOGNG" -F -f "$d/syslog-ng.conf" -p "$d/syslog-ng.pid" -R "$d/syslog-ng.persist" \
            -c "$d/syslog-ng.ctl" >"$d/sut.log" 2>&1 & ;;
    esac
    PID=$!
    OWN[$PID]=1
}

available() {
    case $1 in
    limit) true ;;
    logrelay) [[ -x $LOGRELAY_BIN ]] ;;
    rsyslog) [[ -x $RSYSLOGD ]] ;;
    syslog-ng) [[ -n $SYSLOGNG && -x $SYSLOGNG ]] ;;
    *) false ;;
    esac
}

STAMP=$(date +%Y-%m-%d_%H%M%S)
CSV="$WORK/results/rfc5424-$STAMP.csv"
echo "target,rep,msgs_per_s,cpu_us_per_msg,rss_mb,lines" >"$CSV"
for rep in $(seq "$REPS"); do
    for t in $TARGETS; do
        available "$t" || { log "$t: not available, skipped"; continue; }
        d=$(mktemp -d "$WORK/run.XXXXXX")
        mkdir -p "$d/out"
        port=$(free_port)
        start "$t" "$d" "$port"
        for _ in $(seq 200); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.05; done
        c0=$(cpu_ticks "$PID")
        "$BT" wait "$d/out/all.log" "$N" 5 180 30 >"$d/wait.out" 2>&1 &
        waiter=$!
        "$BT" gen tcp "$port" "$MSGS" 0 "$CONNS" >"$d/gen.out" 2>"$d/gen.err"
        wait "$waiter" || true
        c1=$(cpu_ticks "$PID")
        rss=$(awk '/VmHWM/{print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        unset "OWN[$PID]"
        start_ns=$(sed -n 's/.*start_ns=\([0-9]*\).*/\1/p' "$d/gen.out")
        last_ns=$(sed -n 's/.*last_ns=\([0-9]*\).*/\1/p' "$d/wait.out")
        lines=$(wc -l <"$d/out/all.log" 2>/dev/null || echo 0)
        read -r rate cpu mb < <(awk -v n="$N" -v s="${start_ns:-0}" -v e="${last_ns:-0}" -v c=$((c1 - c0)) \
            -v tck="$CLK_TCK" -v rss="${rss:-0}" \
            'BEGIN { w = (e - s) / 1e9; printf "%d %.3f %.1f\n", (w > 0 ? n / w : 0), c * 1e6 / tck / n, rss / 1024 }')
        log "$t rep $rep: $rate msgs/s, $cpu CPU us/msg, $mb MiB, $lines/$N lines"
        echo "$t,$rep,$rate,$cpu,$mb,$lines" >>"$CSV"
        ((rep == 1)) && log "$t sample: $(head -c 150 "$d/out/all.log" 2>/dev/null | head -1)"
        rm -rf "$d"
    done
done

echo "| receiver | msgs/s | CPU µs/msg | peak RSS MiB | lines (worst) |"
echo "|---|---:|---:|---:|---:|"
for t in $TARGETS; do
    awk -F, -v t="$t" '$1 == t { r[++n] = $3; c[n] = $4; m[n] = $5; if (min == "" || $6 < min) min = $6 }
        function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return a[int((n + 1) / 2)] }
        END { if (n) printf "| %s | %d | %.2f | %.1f | %d |\n", t, med(r, n), med(c, n), med(m, n), min }' "$CSV"
done
echo
echo "raw: $CSV"
