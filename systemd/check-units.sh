#!/bin/sh
# Static checks of the shipped units, run by make check:
#   systemd-analyze verify   (syntax, dependencies, ExecStart executable)
#   systemd-analyze security --offline=true: overall exposure <= 2.0
# ExecStart points at the just-built daemon in a temporary copy, since
# verify insists that the binary exists.  Usage: check-units.sh BUILD_DIR
set -eu
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-units: SKIPPED: systemd-analyze not found" \
	    "(Debian package systemd)"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
sed "s|/usr/local/sbin/relayqd|$build/relayqd|" "$here/relayqd.service" \
    > "$tmp/relayqd.service"
cp "$here/relayqd.socket" "$tmp/relayqd.socket"

echo "check-units: systemd-analyze verify relayqd.service relayqd.socket"
systemd-analyze verify --man=no "$tmp/relayqd.service" "$tmp/relayqd.socket"

# --threshold counts tenths: 20 is an exposure of 2.0.
out=$(systemd-analyze security --offline=true --threshold=20 \
    "$tmp/relayqd.service" 2>&1) || {
	echo "$out" | grep -v '^✓' >&2
	echo "check-units: FAILED: exposure above 2.0" >&2
	exit 1
}
echo "check-units: $(echo "$out" | grep 'Overall exposure level')"
echo "check-units: OK"
