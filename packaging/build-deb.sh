#!/usr/bin/env bash
# Builds the Debian package of logrelay from an already built binary, with
# dpkg-deb alone (no debhelper, no cargo-deb): what goes in is listed here.
#
#   packaging/build-deb.sh [--binary target/release/logrelay] [--out target/debian]
#
# Prints the path of the .deb on its last line. Contents:
#   /usr/bin/logrelay                      the binary
#   /lib/systemd/system/logrelay@.service  one instance per role
#   /etc/logrelay/{client,relay,server}.toml   configs/*.toml (conffiles)
#   /etc/logrotate.d/logrelay              the server's archives (conffile)
#   /usr/share/man/man8/logrelay.8.gz      generated from the binary's --help
#   /usr/share/doc/logrelay/               copyright, README, docs/ (the reference)
# The maintainer scripts create the `logrelay` system user, /var/lib/logrelay
# and /var/log/remote (see packaging/debian/postinst).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
binary=$repo/target/release/logrelay
out=$repo/target/debian
while (($#)); do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--binary PATH] [--out DIR]" >&2; exit 2 ;;
    esac
done
[[ -x $binary ]] || { echo "build-deb.sh: $binary is not an executable (cargo build --release first)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n1)
[[ -n $version ]] || { echo "build-deb.sh: no version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(mktemp -d "$out/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"

install -D -m 0755 "$binary" "$root/usr/bin/logrelay"
# The release profile keeps line tables for backtraces: 45 MB, 7 without.
if command -v strip >/dev/null; then strip --strip-debug "$root/usr/bin/logrelay"; fi
install -D -m 0644 "$here/logrelay@.service" "$root/lib/systemd/system/logrelay@.service"
for mode in client relay server; do
    install -D -m 0644 "$repo/configs/$mode.toml" "$root/etc/logrelay/$mode.toml"
done
install -d -m 0755 "$root/etc/logrelay/tls"
install -D -m 0644 "$here/debian/logrotate" "$root/etc/logrotate.d/logrelay"
install -D -m 0644 "$here/debian/copyright" "$root/usr/share/doc/logrelay/copyright"
install -D -m 0644 "$repo/README.md" "$root/usr/share/doc/logrelay/README.md"
gzip -9n "$root/usr/share/doc/logrelay/README.md"
# The reference the README links to (docs/*.md).
for doc in "$repo"/docs/*.md; do
    install -D -m 0644 "$doc" "$root/usr/share/doc/logrelay/docs/$(basename "$doc")"
    gzip -9n "$root/usr/share/doc/logrelay/docs/$(basename "$doc")"
done

# The man page: a fixed frame around the --help of every command, so it
# always says what this binary does.
roff() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
man=$root/usr/share/man/man8/logrelay.8
mkdir -p "$(dirname "$man")"
{
    echo ".TH LOGRELAY 8 \"\" \"logrelay $version\" \"System Administration\""
    echo ".SH NAME"
    echo "logrelay \\- ship, relay and archive syslog (client, relay and server modes)"
    echo ".SH SYNOPSIS"
    for line in "client [-c FILE]" "relay [-c FILE]" "server [-c FILE]" "check -c FILE [--mode MODE]" "stats [-c FILE | --control PATH]"; do
        echo ".B logrelay"
        echo "$line"
        echo ".br"
    done
    echo ".SH DESCRIPTION"
    echo "One binary that ships syslog across a fleet. A \\fBclient\\fR tails files and"
    echo "local sockets and forwards; a \\fBrelay\\fR receives from many clients and"
    echo "forwards; a \\fBserver\\fR receives and archives to files and databases."
    echo "With \\fB-c\\fR the file is the whole pipeline; without it each mode runs an"
    echo "embedded default (\\fBlogrelay MODE --print-config\\fR prints it)."
    echo ".SH COMMANDS"
    echo ".SS logrelay --help"
    echo ".nf"
    "$binary" --help | roff
    echo ".fi"
    for command in client relay server check stats; do
        echo ".SS logrelay $command"
        echo ".nf"
        "$binary" "$command" --help | roff
        echo ".fi"
    done
    cat "$here/debian/man-tail.8"
} >"$man"
gzip -9n "$man"

# Control files.
mkdir -p "$root/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done
printf '%s\n' /etc/logrelay/client.toml /etc/logrelay/relay.toml /etc/logrelay/server.toml \
    /etc/logrotate.d/logrelay >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    "$here/debian/control" >"$root/DEBIAN/control"

deb=$out/logrelay_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
