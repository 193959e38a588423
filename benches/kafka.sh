#!/usr/bin/env bash
# kafka.sh - the Kafka side by side: logrelay, rsyslog and syslog-ng each between a
# generator and a Kafka-API broker (tansu, in memory, on 127.0.0.1), and only the system
# under test is measured.
#
#   k1  tcp -> kafka     gen: benchtool gen tcp (CONNS connections, LF-framed RFC 3164, 200 B)
#                        SUTs: logrelay (tcp source -> kafka destination, rfc5424, key ${HOST}),
#                        rsyslog (imtcp -> omkafka, RSYSLOG_SyslogProtocol23Format),
#                        syslog-ng (network() -> kafka-c(), an RFC 5424 template, key ${HOST}).
#                        Every producer: acks=all, idempotent, no compression.
#                        Done when the topic's high watermarks sum to N (examples/kafka_count).
#   k2  kafka -> file    the topic is filled with N records first (by logrelay, not measured);
#                        SUTs: logrelay (kafka source, group, -> one file), rsyslog (imkafka ->
#                        omfile). syslog-ng 3.38 has no Kafka source. Done when the file has N
#                        lines (benchtool wait).
#
# Per run: msgs/s (k1: generator start -> topic complete; k2: SUT start -> last line), the
# SUT's CPU (utime+stime from /proc/PID/stat) per message, its peak RSS (VmHWM), and loss.
# The broker runs on the same 2 cores for every SUT alike.
#
# Usage: cargo build --release --examples && benches/kafka.sh
# Needs: target/peers/tansu/bin/tansu (tests/run.sh builds it); for the peers, run as root
# once: benches/kafka.sh setup (installs syslog-ng-mod-rdkafka and librdkafka1, unpacks
# rsyslog-kafka into target/peers/rsyslog next to the rsyslog tests/run.sh unpacked).
# Knobs: SUTS="logrelay rsyslog syslog-ng"  WORKLOADS="k1 k2"  REPS=3  N=500000  SIZE=200
#        CONNS=4  PARTITIONS=4  BENCH_WORK (default /tmp/logrelay-kafka-bench)
#        PEER_RDKAFKA: where the peers' librdkafka.so.1 is (default target/peers/librdkafka,
#        2.6.0 from PyPI's confluent-kafka wheel: Debian's 2.0.2 cannot talk to tansu)
#        LOGRELAY_KAFKA_DEST: extra keys for logrelay's kafka destination, e.g. 'linger = "50ms"'
set -Eeuo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${BENCH_WORK:-/tmp/logrelay-kafka-bench}
SUTS=${SUTS:-"logrelay rsyslog syslog-ng"}
WORKLOADS=${WORKLOADS:-"k1 k2"}
REPS=${REPS:-3}
N=${N:-500000}
SIZE=${SIZE:-200}
CONNS=${CONNS:-4}
PARTITIONS=${PARTITIONS:-4}
STALL_S=${STALL_S:-15}
TIMEOUT_S=${TIMEOUT_S:-300}
LOGRELAY_BIN=${LOGRELAY_BIN:-$ROOT/target/release/logrelay}
KAFKA_COUNT=${KAFKA_COUNT:-$ROOT/target/release/examples/kafka_count}
TANSU=${TANSU:-$ROOT/target/peers/tansu/bin/tansu}
RSYSLOGD=${RSYSLOGD:-$ROOT/target/peers/rsyslog/usr/sbin/rsyslogd}
RSYSLOG_MODDIR=${RSYSLOG_MODDIR:-$( (ls -d "$ROOT"/target/peers/rsyslog/usr/lib/*/rsyslog 2>/dev/null || true) | head -1)}
SYSLOGNG=${SYSLOGNG:-$(command -v syslog-ng || true)}
PEER_RDKAFKA=${PEER_RDKAFKA:-$ROOT/target/peers/librdkafka}
CLK_TCK=$(getconf CLK_TCK)

if [[ ${1:-} == setup ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq syslog-ng-mod-rdkafka librdkafka1 >/dev/null
    debs=$(mktemp -d); chmod 755 "$debs"
    (cd "$debs" && apt-get download -qq rsyslog-kafka)
    mkdir -p "$ROOT/target/peers/rsyslog"
    dpkg -x "$debs"/rsyslog-kafka_*.deb "$ROOT/target/peers/rsyslog"
    rm -rf "$debs"
    # Debian's librdkafka 2.0.2 cannot talk to tansu 0.6.0 (every connection:
    # "Broker transport failure"); the peers run on librdkafka 2.6.0 instead,
    # the build confluent-kafka's wheel on PyPI carries (same soname, ABI-stable).
    wheel=$(mktemp -d)
    pip download -q --no-deps --only-binary=:all: -d "$wheel" confluent-kafka==2.6.0
    mkdir -p "$ROOT/target/peers/librdkafka"
    python3 - "$wheel" "$ROOT/target/peers/librdkafka/librdkafka.so.1" <<'PY'
import os, sys, zipfile
wheel = [f for f in os.listdir(sys.argv[1]) if f.endswith(".whl")][0]
z = zipfile.ZipFile(os.path.join(sys.argv[1], wheel))
name = [n for n in z.namelist() if "librdkafka" in n and ".so" in n][0]
open(sys.argv[2], "wb").write(z.read(name))
PY
    rm -rf "$wheel"
    echo "kafka.sh setup: syslog-ng-mod-rdkafka installed, omkafka/imkafka in $ROOT/target/peers/rsyslog, librdkafka 2.6.0 in $ROOT/target/peers/librdkafka" >&2
    exit 0
fi

for tool in "$TANSU" "$KAFKA_COUNT" "$LOGRELAY_BIN"; do
    [[ -x $tool ]] || { echo "kafka.sh: $tool is missing (tests/run.sh builds tansu; cargo build --release --examples)" >&2; exit 1; }
done
mkdir -p "$WORK/bin" "$WORK/results"
BT=${BENCHTOOL:-$WORK/bin/benchtool}
if [[ ! -x $BT ]]; then
    src="$ROOT/../shared/bench/src/benchtool.c"
    [[ -r $src ]] || { echo "kafka.sh: no benchtool: set BENCHTOOL or provide $src" >&2; exit 1; }
    gcc -O2 -pthread -o "$BT" "$src"
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
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
cleanup() { local p; for p in "${!OWN[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
cpu_ticks() { local s; s=$(< "/proc/$1/stat") || { echo 0; return; }; s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
peak_rss_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ns() { python3 -c 'import time; print(time.monotonic_ns())'; }
wait_listen() { # port pid
    local i
    for ((i = 0; i < 300; i++)); do
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
        alive "$2" || return 1
        sleep 0.1
    done
    return 1
}

broker_start() { # dir -> BROKER_PID, KPORT
    local d=$1
    KPORT=$(free_port)
    mkdir -p "$d/broker"
    (cd "$d/broker" && RUST_LOG=warn exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KPORT" --storage-engine memory://tansu/) \
        >"$d/broker.log" 2>&1 </dev/null &
    BROKER_PID=$!; OWN[$BROKER_PID]=1
    wait_listen "$KPORT" "$BROKER_PID"
    "$TANSU" topic create bench --partitions "$PARTITIONS" --broker "tcp://127.0.0.1:$KPORT" >>"$d/broker.log" 2>&1
}

# ------------------------------------------------------------------ SUT configs
# LOGRELAY_KAFKA_DEST: extra keys for logrelay's kafka destination (e.g. 'linger = "20ms"').
logrelay_producer_conf() { # dir in-port kport -> dir/sut.conf
    printf '[global]\nstate_dir = "%s/state"\n\n[sources.in]\ntype = "tcp"\nlisten = "127.0.0.1:%s"\n\n[destinations.bus]\ntype = "kafka"\nbrokers = ["127.0.0.1:%s"]\ntopic = "bench"\n%s\n\n[[paths]]\nsources = ["in"]\ndestinations = ["bus"]\n' \
        "$1" "$2" "$3" "${LOGRELAY_KAFKA_DEST:-}" >"$1/sut.conf"
}
sut_config() { # sut workload dir in-port kport
    local s=$1 w=$2 d=$3 in=$4 k=$5
    case $s/$w in
    logrelay/k1) logrelay_producer_conf "$d" "$in" "$k" ;;
    logrelay/k2)
        printf '[global]\nstate_dir = "%s/state"\n\n[sources.bus]\ntype = "kafka"\nbrokers = ["127.0.0.1:%s"]\ntopics = ["bench"]\ngroup = "bench"\nstart_at = "beginning"\n\n[destinations.out]\ntype = "file"\npath = "%s/out.log"\n\n[[paths]]\nsources = ["bus"]\ndestinations = ["out"]\n' \
            "$d" "$k" "$d" >"$d/sut.conf" ;;
    rsyslog/k1)
        mkdir -p "$d/state"
        {
            echo "global(workDirectory=\"$d/state\")"
            echo 'module(load="imtcp")'
            echo 'module(load="omkafka")'
            echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$in\" ruleset=\"r\")"
            echo "ruleset(name=\"r\") { action(type=\"omkafka\" broker=[\"127.0.0.1:$k\"] topic=\"bench\" template=\"RSYSLOG_SyslogProtocol23Format\" confParam=[\"acks=all\", \"enable.idempotence=true\", \"compression.codec=none\"]) }"
        } >"$d/sut.conf" ;;
    rsyslog/k2)
        mkdir -p "$d/state"
        {
            echo "global(workDirectory=\"$d/state\")"
            echo 'module(load="imkafka")'
            echo "input(type=\"imkafka\" broker=[\"127.0.0.1:$k\"] topic=\"bench\" consumergroup=\"bench\" confParam=[\"auto.offset.reset=smallest\"] ruleset=\"r\")"
            echo "ruleset(name=\"r\") { action(type=\"omfile\" file=\"$d/out.log\" template=\"RSYSLOG_FileFormat\") }"
        } >"$d/sut.conf" ;;
    syslog-ng/k1)
        {
            echo '@version: 3.38'
            echo 'options { keep-hostname(yes); use-dns(no); dns-cache(no); use-fqdn(no); chain-hostnames(no); stats-freq(0); };'
            echo "source s_in { network(ip(\"127.0.0.1\") port($in) transport(\"tcp\") log-fetch-limit(1000) log-iw-size(100000)); };"
            echo "destination d_bus { kafka-c(bootstrap-servers(\"127.0.0.1:$k\") topic(\"bench\") key(\"\${HOST}\")"
            echo "    config(\"acks\" => \"all\" \"enable.idempotence\" => \"true\" \"compression.codec\" => \"none\")"
            echo "    message(\"<\${PRI}>1 \${ISODATE} \${HOST} \${PROGRAM} \${PID} \${MSGID} \${SDATA} \${MSG}\")); };"
            echo 'log { source(s_in); destination(d_bus); flags(flow-control); };'
        } >"$d/sut.conf" ;;
    esac
}
sut_start() { # sut dir -> PID
    local s=$1 d=$2 mode=server
    case $s in
    logrelay) start_bg "$d/sut.log" "$LOGRELAY_BIN" "$mode" -c "$d/sut.conf" ;;
    rsyslog)
        local a=(-n -f "$d/sut.conf" -i "$d/rsyslogd.pid")
        [[ -n $RSYSLOG_MODDIR ]] && a+=(-M "$RSYSLOG_MODDIR")
        start_bg "$d/sut.log" env LD_LIBRARY_PATH="$PEER_RDKAFKA" "$RSYSLOGD" "${a[@]}" ;;
    syslog-ng) start_bg "$d/sut.log" env LD_LIBRARY_PATH="$PEER_RDKAFKA" "$SYSLOGNG" -F -f "$d/sut.conf" -p "$d/sng.pid" -R "$d/sng.persist" -c "$d/sng.ctl" ;;
    esac
    PID=$BG_PID
}
sut_available() { # sut workload
    case $1 in
    logrelay) true ;;
    rsyslog) [[ -x $RSYSLOGD && -e $RSYSLOG_MODDIR/omkafka.so && ( $2 == k1 || -e $RSYSLOG_MODDIR/imkafka.so ) ]] ;;
    syslog-ng) [[ $2 == k1 && -n $SYSLOGNG && -e /usr/lib/syslog-ng/3.38/libkafka.so ]] ;;
    esac
}
sut_version() {
    case $1 in
    logrelay) "$LOGRELAY_BIN" --version | head -1 ;;
    rsyslog) "$RSYSLOGD" -v 2>/dev/null | head -1 ;;
    syslog-ng) "$SYSLOGNG" --version 2>/dev/null | head -1 ;;
    esac
}

# ------------------------------------------------------------------ one run
run_one() { # sut workload rep -> one CSV row
    local s=$1 w=$2 rep=$3 d in status=ok cpu0 cpu1 rss got start last
    d="$WORK/run/$s-$w-$rep"
    rm -rf "$d"; mkdir -p "$d"
    broker_start "$d" || status=broker-failed
    in=$(free_port)
    if [[ $status == ok && $w == k2 ]]; then
        # fill the topic (not measured): logrelay's producer
        mkdir -p "$d/fill"
        logrelay_producer_conf "$d/fill" "$in" "$KPORT"
        start_bg "$d/fill.log" "$LOGRELAY_BIN" server -c "$d/fill/sut.conf"
        local filler=$BG_PID
        wait_listen "$in" "$filler" || status=fill-failed
        "$BT" gen tcp "$in" "$MSGS" 0 "$CONNS" >"$d/fill-gen.out" 2>&1 </dev/null || status=fill-failed
        "$KAFKA_COUNT" "127.0.0.1:$KPORT" bench "$PARTITIONS" "$N" "$TIMEOUT_S" >"$d/fill-count.out" 2>&1 || status=fill-failed
        stop_pid "$filler"
        in=$(free_port)
    fi
    [[ $status == ok ]] && sut_config "$s" "$w" "$d" "$in" "$KPORT"
    [[ $status == ok ]] && sut_start "$s" "$d"
    if [[ $status == ok && $w == k1 ]]; then wait_listen "$in" "$PID" || status=sut-failed; fi
    if [[ $status != ok ]]; then
        log "$s/$w#$rep: $status: $(tail -3 "$d/sut.log" "$d/broker.log" 2>/dev/null | tr '\n' ' ')"
        stop_pid "${PID:-}"; stop_pid "${BROKER_PID:-}"
        echo "$w,$s,$rep,$status,$N,0,0,0,0" >>"$CSV"; return 0
    fi
    cpu0=$(cpu_ticks "$PID")
    if [[ $w == k1 ]]; then
        start=$(now_ns)
        "$BT" gen tcp "$in" "$MSGS" 0 "$CONNS" >"$d/gen.out" 2>"$d/gen.err" </dev/null || status=gen-failed
        "$KAFKA_COUNT" "127.0.0.1:$KPORT" bench "$PARTITIONS" "$N" "$TIMEOUT_S" >"$d/count.out" 2>&1 || status=incomplete
        last=$(now_ns)
        got=$(kv count "$d/count.out")
    else
        start=$(now_ns)
        "$BT" wait "$d/out.log" "$N" "$STALL_S" "$TIMEOUT_S" >"$d/wait.out" 2>"$d/wait.err" </dev/null || status=incomplete
        last=$(kv last_ns "$d/wait.out")
        got=$(wc -l <"$d/out.log" 2>/dev/null || echo 0)
    fi
    cpu1=$(cpu_ticks "$PID")
    rss=$(peak_rss_kb "$PID")
    alive "$PID" || status=sut-died
    stop_pid "$PID"; stop_pid "$BROKER_PID"
    local secs rate us
    secs=$(awk -v a="$start" -v b="${last:-0}" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    rate=$(awk -v n="${got:-0}" -v s="$secs" 'BEGIN{printf "%.0f", (s>0)? n/s : 0}')
    us=$(awk -v c=$((cpu1 - cpu0)) -v t="$CLK_TCK" -v n="${got:-0}" 'BEGIN{printf "%.3f", (n>0)? c/t*1e6/n : 0}')
    log "$s/$w#$rep: $status ${got:-0}/$N, $secs s, $rate msgs/s, $us µs/msg, RSS $((rss / 1024)) MiB"
    echo "$w,$s,$rep,$status,$N,${got:-0},$rate,$us,$rss" >>"$CSV"
    [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$d"
}

# ------------------------------------------------------------------ main
stamp=$(date +%Y-%m-%d_%H%M%S)
CSV="$WORK/results/kafka-$stamp.csv"
echo "workload,sut,rep,status,sent,received,msgs_per_s,cpu_us_per_msg,rss_kb" >"$CSV"
MSGS="$WORK/msgs-net-$N-$SIZE.txt"
[[ -s $MSGS ]] || "$BT" mkmsgs "$N" "$SIZE" "$MSGS" net
for w in $WORKLOADS; do
    for rep in $(seq 1 "$REPS"); do
        for s in $SUTS; do
            sut_available "$s" "$w" || continue
            run_one "$s" "$w" "$rep"
        done
    done
done

REPORT="$WORK/results/kafka-$stamp.md"
{
    echo "# kafka benchmark $stamp ($(nproc) cores; medians of $REPS; N=$N, $SIZE-byte lines, $PARTITIONS partitions)"
    echo
    for s in $SUTS; do echo "- $s: $(sut_version "$s")"; done
    echo
    echo "| workload | system | msgs/s | CPU µs/msg | peak RSS MiB | received/sent |"
    echo "|---|---|---:|---:|---:|---|"
    tail -n +2 "$CSV" | awk -F, '
        function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
        { key = $1 "|" $2; if (!(key in seen)) { seen[key] = 1; order[++k] = key } r = ++cnt[key]
          R[key, r] = $7; U[key, r] = $8; M[key, r] = $9; got[key] = got[key] " " $6 "/" $5 }
        END { for (i = 1; i <= k; i++) { key = order[i]; n = cnt[key]
                for (j = 1; j <= n; j++) { ra[j] = R[key, j] + 0; ua[j] = U[key, j] + 0; ma[j] = M[key, j] + 0 }
                split(key, p, "|")
                printf "| %s | %s | %d | %.2f | %.0f |%s |\n", p[1], p[2], median(ra, n), median(ua, n), median(ma, n) / 1024, got[key] } }'
} >"$REPORT"
cat "$REPORT"
echo "results: $REPORT and $CSV" >&2
