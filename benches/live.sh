#!/usr/bin/env bash
# live.sh - what the live views cost end to end: the peer benchmark's w1
# (tcp -> one file, 200-byte RFC 3164 lines from 20 hosts, CONNS
# connections) through a logrelay server, in the same run:
#
#   before   a build without the live views (LOGRELAY_BEFORE; skipped when unset)
#   none     this build, no tap attached (the fleet view counts every host)
#   tap10    this build, one `logrelay tap 'program == "app1"'` attached
#            (about 1 message in 10 matches), its output to /dev/null
#   tapall   this build, one `logrelay tap` with no filter (every message
#            offered and copied; what its buffer cannot hold is counted)
#
# Per run: wall time from the generator's first message to the last line in
# the file, the server's CPU (utime+stime from /proc/PID/stat, after start-up
# until the last line) per message, and the tap client's CPU. The variants
# alternate within each repetition; the report gives medians of REPS.
#
# Usage: LOGRELAY_BIN=target/release/logrelay LOGRELAY_BEFORE=/path/to/old/logrelay benches/live.sh
# Knobs: VARIANTS="before none tap10 tapall"  REPS=5  N=1000000  SIZE=200  CONNS=4
#        BENCHTOOL (default: built from ../shared/bench/src/benchtool.c)
#        BENCH_WORK (default: /tmp/logrelay-live-bench)
set -Eeuo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${BENCH_WORK:-/tmp/logrelay-live-bench}
VARIANTS=${VARIANTS:-"before none tap10 tapall"}
REPS=${REPS:-5}
N=${N:-1000000}
SIZE=${SIZE:-200}
CONNS=${CONNS:-4}
TIMEOUT_S=${TIMEOUT_S:-120}
LOGRELAY_BIN=${LOGRELAY_BIN:-$ROOT/target/release/logrelay}
LOGRELAY_BEFORE=${LOGRELAY_BEFORE:-}
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$WORK/bin"
BT=${BENCHTOOL:-$WORK/bin/benchtool}
if [[ ! -x $BT ]]; then
    src="$ROOT/../shared/bench/src/benchtool.c"
    [[ -r $src ]] || { echo "live.sh: no benchtool: set BENCHTOOL or provide $src" >&2; exit 1; }
    gcc -O2 -pthread -o "$BT" "$src"
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cpu_ticks() { # utime+stime of pid
    local s
    s=$(< "/proc/$1/stat") 2>/dev/null || { echo 0; return; }
    s=${s##*) }
    set -- $s
    echo $((${12} + ${13}))
}
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_grep() { # FILE PATTERN SECONDS
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

MSGS="$WORK/msgs-$N-$SIZE.txt"
[[ -s $MSGS ]] || "$BT" mkmsgs "$N" "$SIZE" "$MSGS" net >/dev/null

CSV="$WORK/live-$(date +%Y-%m-%d_%H%M%S).csv"
echo "variant,rep,msgs_per_s,server_cpu_us_per_msg,tap_cpu_us_per_msg,lines,tap_shown,tap_not_shown" >"$CSV"

run_one() { # VARIANT REP
    local v=$1 rep=$2 bin=$LOGRELAY_BIN
    [[ $v == before ]] && bin=$LOGRELAY_BEFORE
    local d="$WORK/run" port
    rm -rf "$d"
    mkdir -p "$d/out"
    port=$(free_port)
    cat >"$d/server.toml" <<EOF
[global]
state_dir = "$d/state"
control = "$d/control.sock"

[sources.net]
type = "tcp"
listen = "127.0.0.1:$port"

[destinations.out]
type = "file"
path = "$d/out/all.log"

[[paths]]
sources = ["net"]
destinations = ["out"]
EOF
    "$bin" server -c "$d/server.toml" 2>"$d/server.err" &
    local server=$!
    PIDS+=("$server")
    wait_grep "$d/server.err" "logrelay: ready" 20 || { log "$v: no ready line"; cat "$d/server.err" >&2; exit 1; }
    local tap=""
    case $v in
    tap10 | tapall)
        local filter=()
        [[ $v == tap10 ]] && filter=('program == "app1"')
        "$LOGRELAY_BIN" tap --control "$d/control.sock" "${filter[@]}" >"$d/tap.out" 2>"$d/tap.err" &
        tap=$!
        PIDS+=("$tap")
        wait_grep "$d/server.err" "tap attached" 20 || { log "$v: tap not attached"; cat "$d/tap.err" >&2; exit 1; }
        ;;
    esac
    local cpu0 tcpu0=0 cpu1 tcpu1=0
    cpu0=$(cpu_ticks "$server")
    [[ -n $tap ]] && tcpu0=$(cpu_ticks "$tap")
    "$BT" wait "$d/out/all.log" "$N" 10 "$TIMEOUT_S" >"$d/wait.out" 2>"$d/wait.err" &
    local waiter=$!
    "$BT" gen tcp "$port" "$MSGS" 0 "$CONNS" >"$d/gen.out" 2>"$d/gen.err"
    wait "$waiter" || true
    cpu1=$(cpu_ticks "$server")
    [[ -n $tap ]] && tcpu1=$(cpu_ticks "$tap")
    local shown=0 not_shown=0
    if [[ -n $tap ]]; then
        kill -INT "$tap"
        wait "$tap" || true
        shown=$(wc -l <"$d/tap.out")
        not_shown=$(sed -n 's/^# \([0-9]*\) messages not shown$/\1/p' "$d/tap.err" | tail -1)
    fi
    kill -TERM "$server"
    wait "$server" || true
    local start last lines
    start=$(kv start_ns "$d/gen.out")
    last=$(kv last_ns "$d/wait.out")
    lines=$(wc -l <"$d/out/all.log")
    awk -v v="$v" -v rep="$rep" -v n="$N" -v s="$start" -v l="$last" -v c0="$cpu0" -v c1="$cpu1" \
        -v t0="$tcpu0" -v t1="$tcpu1" -v hz="$CLK_TCK" -v lines="$lines" -v shown="$shown" -v ns="${not_shown:-0}" \
        'BEGIN { printf "%s,%d,%.0f,%.3f,%.3f,%d,%d,%d\n", v, rep, n / ((l - s) / 1e9),
                 (c1 - c0) / hz * 1e6 / n, (t1 - t0) / hz * 1e6 / n, lines, shown, ns }' >>"$CSV"
    log "$(tail -1 "$CSV")"
    ((lines == N)) || log "$v#$rep: $lines lines, expected $N"
}

for ((rep = 1; rep <= REPS; rep++)); do
    for v in $VARIANTS; do
        [[ $v == before && -z $LOGRELAY_BEFORE ]] && continue
        run_one "$v" "$rep"
    done
done

echo "medians of $REPS runs, N=$N, SIZE=$SIZE, CONNS=$CONNS ($CSV):"
printf '%-8s %12s %16s %14s\n' variant msgs/s "server us/msg" "tap us/msg"
for v in $VARIANTS; do
    grep -q "^$v," "$CSV" || continue
    med() { grep "^$v," "$CSV" | cut -d, -f"$1" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
    printf '%-8s %12.0f %16.3f %14.3f\n' "$v" "$(med 3)" "$(med 4)" "$(med 5)"
done
