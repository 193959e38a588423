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

exec cargo test --release --all-targets "$@"
