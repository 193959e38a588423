#!/usr/bin/env bash
# relay.sh - the relay tier side by side: logrelay, rsyslog and syslog-ng each run as
# a relay between a generator and a sink on 127.0.0.1, and only the relay is measured.
#
#   r1  tcp -> relay -> tcp    gen: benchtool gen tcp (CONNS connections, LF-framed RFC 3164)
#                              sink: benchtool sink (counts LF-terminated lines)
#                              relays: logrelay (tcp source, tcp destination framing=lf
#                              format=rfc3164), rsyslog (imtcp -> omfwd tcp, traditional
#                              forward format), syslog-ng (network() tcp -> network() tcp,
#                              flow-control)
#   r2  relp -> relay -> relp  gen: a logrelay client tailing a prepared file, relp out
#                              sink: a logrelay server, relp in, one file (benchtool wait)
#                              relays: logrelay (relp source, relp destination),
#                              logrelay+disk (the same with disk_buffer, fsync per batch),
#                              rsyslog (imrelp -> omrelp, tuned: windowSize 1024 like
#                              logrelay's default, and a LinkedList action queue dequeued in
#                              batches of 1024; with omrelp's defaults it managed ~2,400
#                              msgs/s here). syslog-ng has no RELP (only its
#                              commercial edition does), so it is not in r2.
#   r3  tls -> relay -> tls    gen and sink as r2 with `tls` instead of `relp` (RFC 5425
#                              octet counting, RFC 5424); the sink has only a tls listener,
#                              so a relay that forwarded in plaintext would deliver nothing.
#                              Certificates: a CA and one leaf for 127.0.0.1/localhost (SAN
#                              IP:127.0.0.1, DNS:localhost), made with the openssl CLI once
#                              per run in $WORK/tls, presented by the relay's listener and the
#                              sink; every client verifies the server's chain and name, no
#                              client certificates (server authentication only).
#                              relays: logrelay (tls source, tls destination), rsyslog (imtcp
#                              with the gtls driver -> omfwd gtls, x509/name, octet-counted),
#                              syslog-ng (syslog() tls -> syslog() tls, flow-control)
#
# Per run: wall time from the generator's first message (r3: the sink's first line, see
# run_one) to the sink's last, the relay's
# CPU (utime+stime from /proc/PID/stat, ready -> end) per message, its peak RSS (VmHWM),
# and loss (lines missing at the sink). REPS runs per cell; the report shows medians.
#
# Usage: LOGRELAY_BIN=target/release/logrelay benches/relay.sh
# Knobs: RELAYS="logrelay logrelay+disk rsyslog syslog-ng"  WORKLOADS="r1 r2 r3"  REPS=3
#        N_R1=1000000 N_R2=500000 N_R3=3000000 SIZE=200 CONNS=4
#        BENCHTOOL (default: built from ../shared/bench/src/benchtool.c into $BENCH_WORK/bin)
#        RSYSLOGD, RSYSLOG_MODDIR (default: target/peers/rsyslog, which tests/run.sh unpacks)
#        SYSLOGNG (default: syslog-ng on PATH)   BENCH_WORK (default: /tmp/logrelay-relay-bench)
set -Eeuo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${BENCH_WORK:-/tmp/logrelay-relay-bench}
RELAYS=${RELAYS:-"logrelay logrelay+disk rsyslog syslog-ng"}
WORKLOADS=${WORKLOADS:-"r1 r2 r3"}
REPS=${REPS:-3}
N_R1=${N_R1:-1000000}
N_R2=${N_R2:-500000}
N_R3=${N_R3:-3000000}
SIZE=${SIZE:-200}
CONNS=${CONNS:-4}
STALL_S=${STALL_S:-10}
TIMEOUT_S=${TIMEOUT_S:-240}
LOGRELAY_BIN=${LOGRELAY_BIN:-$ROOT/target/release/logrelay}
RSYSLOGD=${RSYSLOGD:-$ROOT/target/peers/rsyslog/usr/sbin/rsyslogd}
RSYSLOG_MODDIR=${RSYSLOG_MODDIR:-$(ls -d "$ROOT"/target/peers/rsyslog/usr/lib/*/rsyslog 2>/dev/null | head -1)}
SYSLOGNG=${SYSLOGNG:-$(command -v syslog-ng || true)}
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$WORK/bin" "$WORK/results"
BT=${BENCHTOOL:-$WORK/bin/benchtool}
if [[ ! -x $BT ]]; then
    src="$ROOT/../shared/bench/src/benchtool.c"
    [[ -r $src ]] || { echo "relay.sh: no benchtool: set BENCHTOOL or provide $src" >&2; exit 1; }
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
wait_listen() { # port pid
    local i
    for ((i = 0; i < 200; i++)); do
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
        alive "$2" || return 1
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ relays
# relay_config NAME W DIR IN OUT: writes DIR/relay.conf; relay_start NAME DIR: sets PID
relay_config() {
    local r=$1 w=$2 d=$3 in=$4 out=$5
    case $r in
    logrelay | logrelay+disk)
        if [[ $w == r1 ]]; then
            printf '[sources.in]\ntype = "tcp"\nlisten = "127.0.0.1:%s"\n\n' "$in"
            printf '[destinations.out]\ntype = "tcp"\nservers = ["127.0.0.1:%s"]\nframing = "lf"\nformat = "rfc3164"\n' "$out"
        elif [[ $w == r3 ]]; then
            printf '[sources.in]\ntype = "tls"\nlisten = "127.0.0.1:%s"\ncert = "%s"\nkey = "%s"\n\n' "$in" "$TLS/server.pem" "$TLS/server.key"
            printf '[destinations.out]\ntype = "tls"\nservers = ["127.0.0.1:%s"]\ntls = { ca = "%s" }\n' "$out" "$TLS/ca.pem"
        else
            printf '[sources.in]\ntype = "relp"\nlisten = "127.0.0.1:%s"\n\n' "$in"
            printf '[destinations.out]\ntype = "relp"\nservers = ["127.0.0.1:%s"]\n' "$out"
        fi >"$d/relay.conf"
        [[ $r == logrelay+disk ]] && printf 'disk_buffer = { max_bytes = "4GiB" }\n' >>"$d/relay.conf"
        printf '\n[global]\nstate_dir = "%s/state"\n\n[[paths]]\nsources = ["in"]\ndestinations = ["out"]\n' "$d" >>"$d/relay.conf" ;;
    rsyslog)
        mkdir -p "$d/state"
        {
            echo "global(workDirectory=\"$d/state\")"
            if [[ $w == r1 ]]; then
                echo 'module(load="imtcp")'
                echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$in\" ruleset=\"relay\")"
                echo "ruleset(name=\"relay\") { action(type=\"omfwd\" target=\"127.0.0.1\" port=\"$out\" protocol=\"tcp\" template=\"RSYSLOG_TraditionalForwardFormat\") }"
            elif [[ $w == r3 ]]; then
                # the gtls driver: the listener presents the leaf (anon: no client
                # certificate asked), omfwd checks the sink's chain and its name (localhost)
                echo "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"$TLS/ca.pem\" DefaultNetstreamDriverCertFile=\"$TLS/server.pem\" DefaultNetstreamDriverKeyFile=\"$TLS/server.key\")"
                echo 'module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")'
                echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$in\" ruleset=\"relay\")"
                echo "ruleset(name=\"relay\") { action(type=\"omfwd\" target=\"127.0.0.1\" port=\"$out\" protocol=\"tcp\" StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\") }"
            else
                echo 'module(load="imrelp")'
                echo 'module(load="omrelp")'
                echo "input(type=\"imrelp\" address=\"127.0.0.1\" port=\"$in\" ruleset=\"relay\")"
                echo "ruleset(name=\"relay\") { action(type=\"omrelp\" target=\"127.0.0.1\" port=\"$out\" template=\"RSYSLOG_SyslogProtocol23Format\" windowSize=\"1024\" queue.type=\"LinkedList\" queue.size=\"100000\" queue.dequeueBatchSize=\"1024\") }"
            fi
        } >"$d/relay.conf" ;;
    syslog-ng)
        {
            echo '@version: 3.38'
            echo 'options { keep-hostname(yes); use-dns(no); dns-cache(no); use-fqdn(no); chain-hostnames(no); stats-freq(0); };'
            if [[ $w == r3 ]]; then
                # syslog(): RFC 5425 (octet counting, RFC 5424) both ways
                echo "source s_in { syslog(ip(\"127.0.0.1\") port($in) transport(\"tls\") tls(key-file(\"$TLS/server.key\") cert-file(\"$TLS/server.pem\") peer-verify(optional-untrusted)) log-fetch-limit(1000) log-iw-size(100000)); };"
                echo "destination d_out { syslog(\"127.0.0.1\" port($out) transport(\"tls\") tls(ca-file(\"$TLS/ca.pem\") peer-verify(required-trusted))); };"
            else
                echo "source s_in { network(ip(\"127.0.0.1\") port($in) transport(\"tcp\") log-fetch-limit(1000) log-iw-size(100000)); };"
                echo "destination d_out { network(\"127.0.0.1\" port($out) transport(\"tcp\")); };"
            fi
            echo 'log { source(s_in); destination(d_out); flags(flow-control); };'
        } >"$d/relay.conf" ;;
    esac
}
relay_start() {
    local r=$1 d=$2
    case $r in
    logrelay | logrelay+disk) start_bg "$d/relay.log" "$LOGRELAY_BIN" relay -c "$d/relay.conf" ;;
    rsyslog)
        local a=(-n -f "$d/relay.conf" -i "$d/rsyslogd.pid")
        [[ -n $RSYSLOG_MODDIR ]] && a+=(-M "$RSYSLOG_MODDIR")
        start_bg "$d/relay.log" "$RSYSLOGD" "${a[@]}" ;;
    syslog-ng) start_bg "$d/relay.log" "$SYSLOGNG" -F -f "$d/relay.conf" -p "$d/sng.pid" -R "$d/sng.persist" -c "$d/sng.ctl" ;;
    esac
    PID=$BG_PID
}
relay_available() {
    case $1 in
    logrelay | logrelay+disk) [[ -x $LOGRELAY_BIN ]] ;;
    rsyslog) [[ -x $RSYSLOGD && ($2 != r3 || -e $RSYSLOG_MODDIR/lmnsd_gtls.so) ]] ;;
    syslog-ng) [[ $2 != r2 && -n $SYSLOGNG ]] ;;
    esac
}
relay_version() {
    case $1 in
    logrelay | logrelay+disk) "$LOGRELAY_BIN" --version | head -1 ;;
    rsyslog) "$RSYSLOGD" -v 2>/dev/null | head -1 ;;
    syslog-ng) "$SYSLOGNG" --version 2>/dev/null | head -1 ;;
    esac
}

# ------------------------------------------------------------------ one run
run_one() { # relay workload rep -> one CSV row
    local r=$1 w=$2 rep=$3 d n in out gen_pid sink_pid cpu0 cpu1 rss status=ok
    d="$WORK/run/$r-$w-$rep"
    rm -rf "$d"; mkdir -p "$d"
    in=$(free_port); out=$(free_port)
    case $w in r1) n=$N_R1 ;; r2) n=$N_R2 ;; *) n=$N_R3 ;; esac
    relay_config "$r" "$w" "$d" "$in" "$out"
    # the sink first, so the relay connects at once
    if [[ $w == r1 ]]; then
        "$BT" sink "$out" "$n" "$STALL_S" "$TIMEOUT_S" >"$d/sink.out" 2>"$d/sink.err" </dev/null &
        sink_pid=$!; OWN[$sink_pid]=1
    else
        # r2: relp in; r3: tls in, and nothing else, so only a TLS peer gets through
        local sink_src='type = "relp"'
        [[ $w == r3 ]] && sink_src=$(printf 'type = "tls"\ncert = "%s"\nkey = "%s"' "$TLS/server.pem" "$TLS/server.key")
        printf '[global]\nstate_dir = "%s/sink-state"\n[sources.in]\n%s\nlisten = "127.0.0.1:%s"\n[destinations.out]\ntype = "file"\npath = "%s/sink.log"\n[[paths]]\nsources = ["in"]\ndestinations = ["out"]\n' \
            "$d" "$sink_src" "$out" "$d" >"$d/sink.conf"
        start_bg "$d/sinkd.log" "$LOGRELAY_BIN" server -c "$d/sink.conf"
        local sinkd=$BG_PID
    fi
    wait_listen "$out" "${sink_pid:-$sinkd}" || status=sink-failed
    relay_start "$r" "$d"
    wait_listen "$in" "$PID" || status=relay-failed
    if [[ $status != ok ]]; then
        log "$r/$w#$rep: $status: $(tail -3 "$d/relay.log" | tr '\n' ' ')"
        stop_pid "$PID"; [[ -n ${sinkd:-} ]] && stop_pid "$sinkd"; [[ -n ${sink_pid:-} ]] && stop_pid "$sink_pid"
        echo "$w,$r,$rep,$status,$n,0,0,0,0" >>"$CSV"; return 0
    fi
    cpu0=$(cpu_ticks "$PID")
    if [[ $w == r1 ]]; then
        "$BT" gen tcp "$in" "$MSGS" 0 "$CONNS" >"$d/gen.out" 2>"$d/gen.err" </dev/null || status=gen-failed
        wait "$sink_pid" 2>/dev/null || true; unset "OWN[$sink_pid]"
        local waitout="$d/sink.out"
    else
        "$BT" wait "$d/sink.log" "$n" "$STALL_S" "$TIMEOUT_S" >"$d/wait.out" 2>"$d/wait.err" </dev/null &
        local waiter=$!; OWN[$waiter]=1
        local gen_dst='type = "relp"' gen_msgs=$MSGS_PLAIN
        [[ $w == r3 ]] && gen_dst=$(printf 'type = "tls"\ntls = { ca = "%s" }' "$TLS/ca.pem") gen_msgs=$MSGS_R3
        printf '[global]\nstate_dir = "%s/gen-state"\n[sources.in]\ntype = "file"\npaths = ["%s"]\nstart_at = "beginning"\n[destinations.out]\n%s\nservers = ["127.0.0.1:%s"]\n[[paths]]\nsources = ["in"]\ndestinations = ["out"]\n' \
            "$d" "$gen_msgs" "$gen_dst" "$in" >"$d/gen.conf"
        python3 -c 'import time; print("start_ns=%d" % time.monotonic_ns())' >"$d/gen.out"
        start_bg "$d/gend.log" "$LOGRELAY_BIN" client -c "$d/gen.conf"
        local gend=$BG_PID
        wait "$waiter" 2>/dev/null || true; unset "OWN[$waiter]"
        stop_pid "$gend"
        local waitout="$d/wait.out"
    fi
    cpu1=$(cpu_ticks "$PID")
    rss=$(peak_rss_kb "$PID")
    alive "$PID" || status=relay-died
    stop_pid "$PID"
    [[ -n ${sinkd:-} ]] && stop_pid "$sinkd"
    # r3: the sink's listener counts handshakes that failed (a plaintext or untrusting peer)
    if [[ $w == r3 ]] && grep -q 'tls_handshake_failures=[1-9]' "$d/sinkd.log"; then status=tls-handshake-failed; fi
    local got start last secs rate us
    got=$(kv lines "$waitout"); got=${got:-0}
    [[ $w != r1 ]] && got=$(wc -l <"$d/sink.log")
    start=$(kv start_ns "$d/gen.out"); last=$(kv last_ns "$waitout")
    # r3: from the sink's first line, not the generator's start: the generator (a logrelay
    # tls destination) waits after a TLS 1.3 handshake for a session ticket or an alert (8
    # handshakes, 1-5 s), and syslog-ng's listener sends neither, so its runs would carry
    # that idle second (5 s before b93d865); the log line shows it
    local idle=""
    if [[ $w == r3 ]]; then
        idle=$(awk -v a="$(kv start_ns "$d/gen.out")" -v b="$(kv first_ns "$waitout")" 'BEGIN{printf ", first line after %.2f s", (b-a)/1e9}')
        start=$(kv first_ns "$waitout")
    fi
    secs=$(awk -v a="${start:-0}" -v b="${last:-0}" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    rate=$(awk -v n="$got" -v s="$secs" 'BEGIN{printf "%.0f", (s>0)? n/s : 0}')
    us=$(awk -v c=$((cpu1 - cpu0)) -v t="$CLK_TCK" -v n="$got" 'BEGIN{printf "%.3f", (n>0)? c/t*1e6/n : 0}')
    log "$r/$w#$rep: $status $got/$n lines, $secs s, $rate msgs/s, $us µs/msg, RSS $((rss / 1024)) MiB$idle"
    echo "$w,$r,$rep,$status,$n,$got,$rate,$us,$rss" >>"$CSV"
    [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$d"
}

# ------------------------------------------------------------------ main
stamp=$(date +%Y-%m-%d_%H%M%S)
CSV="$WORK/results/relay-$stamp.csv"
echo "workload,relay,rep,status,sent,received,msgs_per_s,cpu_us_per_msg,rss_kb" >"$CSV"
nmax=$((N_R1 > N_R2 ? N_R1 : N_R2))
MSGS="$WORK/msgs-net-$N_R1-$SIZE.txt"
[[ -s $MSGS ]] || "$BT" mkmsgs "$N_R1" "$SIZE" "$MSGS" net
MSGS_PLAIN="$WORK/msgs-plain-$N_R2-$SIZE.txt"
[[ -s $MSGS_PLAIN ]] || "$BT" mkmsgs "$N_R2" "$SIZE" "$MSGS_PLAIN" plain
MSGS_R3="$WORK/msgs-plain-$N_R3-$SIZE.txt"
TLS="$WORK/tls"
if [[ " $WORKLOADS " == *" r3 "* ]]; then
    [[ -s $MSGS_R3 ]] || "$BT" mkmsgs "$N_R3" "$SIZE" "$MSGS_R3" plain
    # a fresh CA and leaf per run (RSA 2048, 2 days): what every peer here can load
    rm -rf "$TLS"; mkdir -p "$TLS"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=relay-bench CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$TLS/ca.key" -out "$TLS/ca.pem"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$TLS/server.key" -out "$TLS/server.csr"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$TLS/server.ext"
        openssl x509 -req -days 2 -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
            -extfile "$TLS/server.ext" -out "$TLS/server.pem"
    } >"$TLS/openssl.log" 2>&1 || { echo "relay.sh: openssl failed: $(tail -3 "$TLS/openssl.log")" >&2; exit 1; }
fi
: "$nmax"
for w in $WORKLOADS; do
    for rep in $(seq 1 "$REPS"); do
        for r in $RELAYS; do
            relay_available "$r" "$w" || continue
            run_one "$r" "$w" "$rep"
        done
    done
done

REPORT="$WORK/results/relay-$stamp.md"
{
    echo "# relay benchmark $stamp ($(nproc) cores; medians of $REPS)"
    echo
    for r in $RELAYS; do relay_available "$r" r1 || relay_available "$r" r2 || relay_available "$r" r3 || continue; echo "- $r: $(relay_version "$r")"; done
    echo
    echo "| workload | relay | msgs/s | CPU µs/msg | peak RSS MiB | received/sent |"
    echo "|---|---|---:|---:|---:|---|"
    tail -n +2 "$CSV" | sort -t, -k1,1 -k2,2 | awk -F, '
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
