#!/bin/sh
# demo.sh BUILD: the whole pipeline on this machine, against the local
# Gmail stand-in on 127.0.0.1 (never the real smtp.gmail.com).
set -eu
build=${1:-build}
dir=$build/demo
rm -rf "$dir"
mkdir -p "$dir/queue" "$dir/received"
chmod 700 "$dir/queue"
dir=$(cd "$dir" && pwd)
bin=$(cd "$build" && pwd)
certs=$bin/tests/certs
standin_pid=
daemon_pid=

cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null && wait "$standin_pid" 2>/dev/null
	return 0
}
trap cleanup EXIT INT TERM

# wait_for FILE SECONDS: bounded wait for a file to appear.
wait_for() {
	i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ "$i" -gt $(($2 * 20)) ] && { echo "demo: timed out waiting for $1" >&2; return 1; }
		sleep 0.05
	done
}

echo "== 1. The Gmail stand-in: STARTTLS with a test certificate for 'localhost'"
"$bin/tests/standin" --port-file "$dir/standin.port" --mail-dir "$dir/received" \
    --cert "$certs/server.pem" --key "$certs/server.key" \
    --password 'abcd efgh ijkl mnop' 2>"$dir/standin.log" &
standin_pid=$!
wait_for "$dir/standin.port" 10
port=$(cat "$dir/standin.port")
echo "   listening on 127.0.0.1:$port"

echo "== 2. relayqd, relaying to localhost:$port and trusting only the test CA"
"$bin/relayqd" --foreground --socket "$dir/relayq.sock" --queue-dir "$dir/queue" \
    --relay "localhost:$port" --ca-file "$certs/ca.pem" \
    --retry-min 1 --retry-max 5 2>"$dir/relayqd.log" &
daemon_pid=$!
wait_for "$dir/relayq.sock" 10

echo "== 3. relayq demo@gmail.com <app-password> friend@example.com"
echo "   (the password is read from standard input, so ps never shows it)"
set +e
echo 'abcd efgh ijkl mnop' | "$bin/relayq" --socket "$dir/relayq.sock" \
    demo@gmail.com - friend@example.com >"$dir/client.out" 2>&1
rc=$?
set -e
# Collapse the image's base64 lines so the dialogue fits on a screen.
awk '/^C: [A-Za-z0-9+\/=]+$/ && length($0) > 60 { n++; if (n <= 2) print; next }
     n > 2 { printf "C: [... %d more lines of base64 ...]\n", n - 2 }
     { n = 0; print }' "$dir/client.out"
if [ "$rc" -ne 0 ]; then
	echo "demo: relayq exited $rc" >&2
	exit 1
fi

echo "== 4. Waiting for the stand-in to receive the message"
wait_for "$dir/received/msg-000001.meta" 30
# Give relayqd a moment to log the delivery and remove the entry.
i=0
while ! grep -q ' delivered ' "$dir/relayqd.log" && [ $i -lt 100 ]; do
	i=$((i + 1)); sleep 0.05
done

echo "== 5. relayqd's log"
sed 's/^/   /' "$dir/relayqd.log"

eml=$dir/received/msg-000001.eml
png=$dir/received/msg-000001-relayq.png
awk 'BEGIN { inpart = 0; body = 0 }
     /^Content-Type: image\/png/ { inpart = 1; next }
     inpart && !body && /^\r?$/ { body = 1; next }
     inpart && body && /^--/ { exit }
     inpart && body { sub(/\r$/, ""); print }' "$eml" | base64 -d >"$png"

echo "== 6. What arrived"
sed 's/^/   /' "$dir/received/msg-000001.meta"
echo "   message:      $eml"
echo "   image part:   $png ($(wc -c <"$png") bytes, $(file -b "$png" 2>/dev/null || echo PNG))"
echo "   queue/ now holds $(ls "$dir/queue/queue" | wc -l) entries"
echo
echo "Against the real Gmail: start relayqd with its defaults (relay"
echo "smtp.gmail.com:587, the system CA store), for example"
echo "    relayqd --foreground --socket /tmp/relayq.sock --queue-dir /var/tmp/relayq"
echo "and submit with a Google app password (myaccount.google.com/apppasswords):"
echo "    relayq --socket /tmp/relayq.sock you@gmail.com - friend@example.com"
