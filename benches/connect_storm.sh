#!/usr/bin/env bash
# connect_storm.sh - a fleet reconnecting to a restarted relay: N clients connect
# one after another to a tcp listener on 127.0.0.1, each sends one line and stays
# connected; measured is the wall time from the first connect until the receiver
# has written all N lines (and, separately, how long the connects themselves took).
#
#   logrelay  tcp source -> file destination (max_connections above N)
#   rsyslog   imtcp -> omfile (MaxSessions above N), when RSYSLOGD is there
#
# What it shows: accepting must not get slower as connections grow (the peer list
# of `logrelay stats` is updated in O(1) per connection), and the listen backlog
# (`backlog`, default /proc/sys/net/core/somaxconn) must not drop SYNs under a
# burst (a dropped SYN is retried by the client's kernel after 1 s).
#
# Usage: LOGRELAY_BIN=target/release/logrelay benches/connect_storm.sh
# Knobs: N=8000  REPS=3  TARGETS="logrelay rsyslog"  TIMEOUT_S=120
#        BACKLOG (logrelay's `backlog`; unset: its default, somaxconn)
#        RSYSLOGD, RSYSLOG_MODDIR (default: target/peers/rsyslog, which tests/run.sh unpacks)
#        BENCH_WORK (default: /tmp/logrelay-storm-bench)
set -Eeuo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${BENCH_WORK:-/tmp/logrelay-storm-bench}
N=${N:-8000}
REPS=${REPS:-3}
TARGETS=${TARGETS:-"logrelay rsyslog"}
TIMEOUT_S=${TIMEOUT_S:-120}
LOGRELAY_BIN=${LOGRELAY_BIN:-$ROOT/target/release/logrelay}
RSYSLOGD=${RSYSLOGD:-$ROOT/target/peers/rsyslog/usr/sbin/rsyslogd}
RSYSLOG_MODDIR=${RSYSLOG_MODDIR:-$(ls -d "$ROOT"/target/peers/rsyslog/usr/lib/*/rsyslog 2>/dev/null | head -1)}

# Every client holds a descriptor, and so does the receiver for each connection.
ulimit -n $((N * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$WORK"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The fleet: connects N times in a row, one line each, keeps every connection open
# until stdin closes. Prints the seconds the connects took.
cat >"$WORK/fleet.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = []
start = time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"<13>Nov 27 07:00:00 fleet-%d storm: hello from client %d\n" % (i, i))
    conns.append(s)
print("%.3f" % (time.monotonic() - start), flush=True)
sys.stdin.read()
EOF

lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }

# run TARGET REP: prints "TARGET connect_s deliver_s"
run() {
    local target=$1 rep=$2 dir="$WORK/$1-$2" port pid
    rm -rf "$dir" && mkdir -p "$dir"
    port=$(free_port)
    case $target in
        logrelay)
            cat >"$dir/config.toml" <<EOF
[global]
state_dir = "$dir/state"
control = "$dir/control.sock"
[sources.net]
type = "tcp"
listen = "127.0.0.1:$port"
max_connections = $((N + 100))
${BACKLOG:+backlog = $BACKLOG}
[destinations.out]
type = "file"
path = "$dir/out.log"
[[paths]]
sources = ["net"]
destinations = ["out"]
EOF
            "$LOGRELAY_BIN" server -c "$dir/config.toml" 2>"$dir/stderr" &
            pid=$!
            ;;
        rsyslog)
            cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir")
module(load="imtcp" MaxSessions="$((N + 100))")
input(type="imtcp" port="$port" address="127.0.0.1")
action(type="omfile" file="$dir/out.log" template="RSYSLOG_TraditionalFileFormat")
EOF
            "$RSYSLOGD" -n -f "$dir/rsyslog.conf" -i "$dir/pid" -M "$RSYSLOG_MODDIR" 2>"$dir/stderr" &
            pid=$!
            ;;
    esac
    # Ready when the port accepts.
    for _ in $(seq 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),timeout=1)" 2>/dev/null && break
        sleep 0.05
    done
    # The probe above may have delivered nothing (no line): start from here.
    local t0 t1 connect_s
    t0=$(date +%s.%N)
    # The fleet reports its connect time on a file and holds its
    # connections until its stdin (a FIFO we hold open) closes.
    rm -f "$dir/fleet.in" && mkfifo "$dir/fleet.in"
    python3 "$WORK/fleet.py" "$port" "$N" <"$dir/fleet.in" >"$dir/fleet.out" &
    local fleet=$!
    exec {hold}>"$dir/fleet.in"
    local deadline=$((SECONDS + TIMEOUT_S))
    while (( $(lines "$dir/out.log") < N )) && (( SECONDS < deadline )); do sleep 0.05; done
    t1=$(date +%s.%N)
    local got; got=$(lines "$dir/out.log")
    exec {hold}>&-
    wait "$fleet" 2>/dev/null || true
    connect_s=$(head -1 "$dir/fleet.out" 2>/dev/null || true)
    connect_s=${connect_s:-NA}
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    if (( got < N )); then
        echo "$target rep=$rep connect_s=$connect_s deliver_s=timeout lines=$got/$N"
    else
        echo "$target rep=$rep connect_s=$connect_s deliver_s=$(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") lines=$got/$N"
    fi
}

for target in $TARGETS; do
    if [[ $target == rsyslog && ! -x $RSYSLOGD ]]; then
        log "no rsyslogd at $RSYSLOGD: skipped"
        continue
    fi
    for rep in $(seq "$REPS"); do
        log "$target rep $rep (N=$N)"
        run "$target" "$rep"
    done
done
