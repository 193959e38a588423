#!/usr/bin/env bash
# The test command of the README: installs what the tests need when it is
# missing (as root, from Debian's packages), then runs the whole suite in
# release mode. Usage: tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests use, as "command:package".
NEEDED=(
    "logger:bsdutils"
    "logrotate:logrotate"
    "dpkg-deb:dpkg"
    "systemd-analyze:systemd"
    "zcat:gzip"
    "mkfs.ext4:e2fsprogs"     # disk buffer: an ext4 image that runs out of space under fsync
    "setpriv:util-linux"      # privilege and disk buffer tests: run without a capability
    "loggen:syslog-ng-core"   # interop: syslog-ng (/usr/sbin) and its loggen
    "/usr/lib/systemd/systemd-journal-remote:systemd-journal-remote"   # journald: writes real journal files
)

missing=()
for pair in "${NEEDED[@]}"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "tests/run.sh: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "tests/run.sh: missing ${missing[*]} (run as root on Debian to install them)" >&2
        exit 1
    fi
fi

# Building: the kafka source and destination link librdkafka, which the
# rdkafka crate builds from its bundled source with cmake, against
# OpenSSL (tls, SASL-SCRAM), zlib and zstd; libcurl is in its cmake
# build too.
build_pkgs=(cmake pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev)
if ! dpkg -s "${build_pkgs[@]}" >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "tests/run.sh: installing ${build_pkgs[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${build_pkgs[@]}" >/dev/null
    else
        echo "tests/run.sh: missing some of ${build_pkgs[*]} (run as root on Debian to install them)" >&2
        exit 1
    fi
fi

# PostgreSQL for the database tests: they run its initdb/pg_ctl (found on
# PATH or in /usr/lib/postgresql/*/bin) on a private cluster in a temp dir.
# Installed without a default cluster of its own.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "tests/run.sh: installing postgresql" >&2
        mkdir -p /etc/postgresql-common
        [[ -e /etc/postgresql-common/createcluster.conf ]] \
            || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "tests/run.sh: PostgreSQL is missing (run as root on Debian to install it): the database tests will fail" >&2
    fi
fi

# Real RELP and TLS peers: rsyslog's omrelp, imrelp and omfwd with the gtls
# netstream driver (rsyslog-gnutls). Debian's rsyslog conflicts
# with syslog-ng-core, so it is never installed: its packages are unpacked
# into target/peers/rsyslog, and the tests run rsyslogd from there in the
# foreground on private configs (they skip, saying so, when it is missing).
# librelp0 (imrelp/omrelp's library) is an ordinary install.
peers=target/peers/rsyslog
modules=$peers/usr/lib/x86_64-linux-gnu/rsyslog
if [[ ! -x $peers/usr/sbin/rsyslogd || ! -e $modules/imrelp.so || ! -e $modules/lmnsd_gtls.so ]]; then
    if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
        # rsyslogd's and imrelp's libraries (rsyslog's own Depends) are
        # ordinary installs that conflict with nothing.
        libs=(libestr0 libfastjson4 liblognorm5 librelp0 libzstd1 libuuid1 libgnutls30)
        if [[ $(id -u) -eq 0 ]] && ! dpkg -s "${libs[@]}" >/dev/null 2>&1; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${libs[@]}" >/dev/null
        fi
        debs=$(mktemp -d)
        chmod 755 "$debs"   # apt's download user must be able to write there
        download() { (cd "$debs" && apt-get download -qq rsyslog rsyslog-relp rsyslog-gnutls >/dev/null 2>&1); }
        if download || { apt-get update -qq && download; }; then
            mkdir -p "$peers"
            for deb in "$debs"/*.deb; do dpkg -x "$deb" "$peers"; done
        else
            echo "tests/run.sh: cannot download rsyslog rsyslog-relp rsyslog-gnutls: the real-peer tests will fail" >&2
        fi
        rm -rf "$debs"
    fi
fi

# The Kafka tests' broker: tansu, a Kafka-API broker in Rust, built once
# from crates.io into target/peers/tansu (in-memory storage needs
# `dynostore`, the SQLite storage that survives a restart `libsql`).
# About 11 minutes on 2 cores the first time (669 s measured); reused after.
tansu=target/peers/tansu/bin/tansu
if [[ ! -x $tansu ]]; then
    echo "tests/run.sh: building the Kafka broker tansu 0.6.0 into target/peers/tansu (once)" >&2
    start=$(date +%s)
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql \
        --root target/peers/tansu --quiet
    echo "tests/run.sh: tansu built in $(( $(date +%s) - start )) s" >&2
fi

exec cargo test --release --all-targets "$@"
