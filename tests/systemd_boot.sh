#!/bin/sh
# The installed units under a real systemd: boots a minimal Debian 12
# rootfs with systemd-nspawn -b (systemd as PID 1), installs relayq into
# it with make install, and checks at run time what systemd-analyze cannot:
# sysusers/tmpfiles, socket activation, the daemon writing its queue as
# user relayq under the sandbox (0700/0600), deferral, stop/restart by the
# socket, reload, no SIGSYS from SystemCallFilter, and a full delivery to
# the Gmail stand-in inside the container (TLS, AUTH) under the sandbox.
#
# Usage: systemd_boot.sh MAKE BUILD_DIR.  Needs root and the Debian
# packages systemd-container and debootstrap; the rootfs comes from the
# Debian mirror ($RELAYQ_DEBIAN_MIRROR, default deb.debian.org) and is
# cached under BUILD_DIR/systemd-root/, keyed by a hash of the package
# list.  Each run boots a fresh copy of it and powers it off at the end.
# The container has its own network namespace (loopback only).
set -eu
make=${1:-make}
build=$(cd "${2:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)

suite=bookworm
variant=minbase
mirror=${RELAYQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
pkgs="systemd libssl3 libevent-2.1-7 libevent-core-2.1-7 libevent-openssl-2.1-7"
machine=relayqtest-$$
password=abcdefghijklmnop
standin_port=2587

t0=$(date +%s.%N)
timeout_pid=
nspawn_pid=
ct_pid=
run=

say() { echo "systemd-test: $*"; }
elapsed() { echo "$(date +%s.%N) $t0" | awk '{ printf "%.1f", $1 - $2 }'; }
ok() { say "ok: $*"; }

# in_ct CMD...: run a command inside the container (its mount, UTS, IPC,
# network and PID namespaces and root), bounded to 60 s.
in_ct() {
	timeout 60 nsenter -t "$ct_pid" -m -u -i -n -p -r -w \
	    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	    LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# fail MSG: keep the evidence (journal, console) and stop; the trap cleans up.
fail() {
	say "FAILED: $*" >&2
	if [ -n "$ct_pid" ] && alive "$ct_pid"; then
		in_ct journalctl -b --no-pager >"$run/journal.txt" 2>&1 || :
		say "container journal: $run/journal.txt" >&2
		in_ct journalctl -b --no-pager -u relayqd -u relayqd.socket \
		    -u relayq-standin 2>&1 | tail -40 | sed 's/^/    /' >&2 || :
	fi
	[ -n "$run" ] && say "console log: $run/console.log; rootfs kept" \
	    "in $run/root" >&2
	exit 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	[ -r "/proc/$1/stat" ] &&
	    [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# cleanup: power the container off (nspawn turns SIGTERM into an orderly
# shutdown of PID 1; timeout passes SIGTERM on to nspawn), bounded; then
# remove this run's rootfs on success.
cleanup() {
	rc=$?
	p=${nspawn_pid:-$timeout_pid}
	if [ -n "$p" ] && alive "$p"; then
		kill -TERM "$p" 2>/dev/null || :
		i=0
		while alive "$p" && [ $i -lt 100 ]; do
			i=$((i + 1)); sleep 0.2
		done
		if alive "$p"; then
			say "container did not power off in 20 s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || :
			sleep 1
		fi
	fi
	if [ "$rc" -eq 0 ] && [ -n "$run" ] && [ -d "$run" ]; then
		if grep -q " $run/" /proc/self/mountinfo; then
			say "$run still has mounts; not removing it" >&2
		else
			rm -rf "$run"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS DESC CMD...: poll CMD every 0.2 s, at most SECONDS.
wait_until() {
	limit=$(($1 * 5)); desc=$2; shift 2
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -ge "$limit" ] && fail "timed out waiting for $desc"
		sleep 0.2
	done
}

# --- prerequisites -----------------------------------------------------

[ "$(id -u)" = 0 ] || { say "needs root (systemd-nspawn, debootstrap)" >&2; exit 1; }
for c in debootstrap systemd-nspawn nsenter timeout; do
	command -v "$c" >/dev/null 2>&1 || {
		say "$c not found: apt-get install systemd-container debootstrap" >&2
		exit 1
	}
done
[ -x "$build/tests/standin" ] && [ -f "$build/tests/certs/ca.pem" ] ||
	fail "$build/tests/standin or its certificates missing (make all certs)"

# --- the rootfs, built once per package list ---------------------------

key=$(printf '%s\n' "$suite" "$variant" "$mirror" $pkgs | sha256sum | cut -c1-12)
cache=$build/systemd-root
base=$cache/$suite-$key
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
base=$cache/$suite-$key
if [ ! -e "$base/.relayq-rootfs-ok" ]; then
	say "building $base with debootstrap ($pkgs)"
	rm -rf "$base.tmp" "$base"
	# Other package lists are stale.
	for d in "$cache"/$suite-*; do
		[ -d "$d" ] && [ "$d" != "$base" ] && rm -rf "$d"
	done
	timeout 900 debootstrap --variant="$variant" \
	    --include="$(echo $pkgs | tr ' ' ,)" "$suite" "$base.tmp" \
	    "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		fail "debootstrap failed, see $cache/debootstrap.log"
	mv "$base.tmp" "$base"
	touch "$base/.relayq-rootfs-ok"
	say "rootfs built in $(elapsed) s ($(du -sm "$base" | cut -f1) MB)"
else
	say "reusing $base"
fi

# --- this run's copy, with relayq installed ----------------------------

run=$cache/run
if [ -d "$run" ]; then
	grep -q " $run/" /proc/self/mountinfo && fail "$run is still mounted"
	rm -rf "$run"
fi
mkdir -p "$run"
cp -a "$base" "$run/root"
root=$run/root
$make -s -C "$src" install DESTDIR="$root" PREFIX=/usr/local \
    BUILD="$build" >/dev/null || fail "make install DESTDIR=$root"
# The network is private (loopback only): the relay is a closed port.
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
cat >>"$root/etc/relayq/relayqd.conf" <<EOF

# systemd_boot.sh: nothing listens on 127.0.0.1:1 in the container.
relay = 127.0.0.1:1
retry-min = 2
retry-max = 4
EOF
# The stand-in, started later as a unit of its own.
mkdir -p "$root/opt/relayq-test"
cp "$build/tests/standin" "$build/tests/certs/server.pem" \
    "$build/tests/certs/server.key" "$root/opt/relayq-test/"
install -m 0644 "$build/tests/certs/ca.pem" "$root/etc/relayq/test-ca.pem"
cat >"$root/etc/systemd/system/relayq-standin.service" <<EOF
[Unit]
Description=Gmail stand-in for systemd_boot.sh

[Service]
ExecStart=/opt/relayq-test/standin --port $standin_port --mail-dir /var/lib/relayq-standin --cert /opt/relayq-test/server.pem --key /opt/relayq-test/server.key --password $password
StateDirectory=relayq-standin
EOF
say "installed into $root ($(elapsed) s)"

# --- boot --------------------------------------------------------------

tb=$(date +%s.%N)
# --register=no --keep-unit: no machined or host systemd needed.
timeout 600 systemd-nspawn --quiet --register=no --keep-unit --settings=no \
    --link-journal=no -D "$root" -M "$machine" -b --private-network \
    --console=read-only >"$run/console.log" 2>&1 &
timeout_pid=$!
# nspawn is timeout's child, the container's PID 1 nspawn's child.
i=0
while [ -z "$ct_pid" ]; do
	i=$((i + 1))
	[ $i -gt 150 ] && fail "no container init after 30 s (see $run/console.log)"
	alive "$timeout_pid" ||
		fail "systemd-nspawn exited: $(tail -5 "$run/console.log")"
	[ -z "$nspawn_pid" ] &&
	    nspawn_pid=$(cat /proc/$timeout_pid/task/*/children 2>/dev/null |
	    awk '{ print $1 }')
	if [ -n "$nspawn_pid" ]; then
		for p in $(cat /proc/$nspawn_pid/task/*/children 2>/dev/null); do
			# The container's init is PID 1 in its namespace.
			grep -q '^NSpid:.*[[:space:]]1$' /proc/$p/status 2>/dev/null &&
			    ct_pid=$p
		done
	fi
	[ -z "$ct_pid" ] && sleep 0.2
done
wait_until 30 "systemd's private bus" test -S /proc/$ct_pid/root/run/systemd/private
state=$(in_ct systemctl is-system-running --wait 2>&1) || :
case $state in
running|degraded) ;;
*) fail "system state after boot: $state" ;;
esac
[ "$(in_ct cat /proc/1/comm)" = systemd ] || fail "PID 1 is not systemd"
ok "booted: systemd $(in_ct systemctl --version | awk 'NR == 1 { print $2 }')" \
    "is PID 1, state $state, $(echo "$(date +%s.%N) $tb" |
    awk '{ printf "%.1f", $1 - $2 }') s"

# --- sysusers, tmpfiles, socket ----------------------------------------

in_ct systemd-sysusers || fail "systemd-sysusers"
in_ct systemd-tmpfiles --create || fail "systemd-tmpfiles --create"
uid=$(in_ct id -u relayq) || fail "no user relayq after systemd-sysusers"
gid=$(in_ct id -g relayq)
sp=$(in_ct stat -c '%a %U %G' /var/spool/relayq)
[ "$sp" = "700 relayq relayq" ] || fail "/var/spool/relayq is $sp"
ok "sysusers made relayq ($uid:$gid), tmpfiles /var/spool/relayq $sp"

in_ct systemctl daemon-reload || fail "systemctl daemon-reload"
in_ct systemctl enable --now relayqd.socket >/dev/null 2>&1 ||
	fail "systemctl enable --now relayqd.socket"
[ "$(in_ct systemctl is-active relayqd.socket)" = active ] ||
	fail "relayqd.socket is not active"
[ "$(in_ct systemctl is-active relayqd.service)" = inactive ] ||
	fail "relayqd.service started before any submission"
sk=$(in_ct stat -c '%F %a' /run/relayq/relayq.sock)
[ "$sk" = "socket 666" ] || fail "/run/relayq/relayq.sock is $sk"
ok "relayqd.socket active and enabled, /run/relayq/relayq.sock is a $sk, relayqd.service inactive"

# show P1,P2...: relayqd.service's properties as "P1=v1 P2=v2", in that order.
show() {
	for p in $(echo "$1" | tr , ' '); do
		printf '%s=%s\n' "$p" "$(in_ct systemctl show -p "$p" --value \
		    relayqd.service)"
	done | tr '\n' ' ' | sed 's/ $//'
}
# jcount PATTERN: how many journal lines of relayqd.service match.
jcount() {
	in_ct journalctl -b --no-pager -o cat -u relayqd.service |
	    grep -c -- "$1" || :
}
jhas() { [ "$(jcount "$1")" -ge "$2" ]; }
# submit: one message through the socket; prints the queue ID.
submit() {
	echo "$password" | in_ct timeout 30 relayq demo@gmail.com - \
	    friend@example.com >"$run/submit.out" 2>&1 || return 1
	sed -n 's/.*queued as \([^ ]*\).*/\1/p' "$run/submit.out" | tail -1
}

# --- socket activation, queue as user relayq, deferral -------------------

id1=$(submit) || fail "relayq: $(cat "$run/submit.out")"
[ -n "$id1" ] || fail "relayq printed no queue ID"
[ "$(in_ct systemctl is-active relayqd.service)" = active ] ||
	fail "relayqd.service not active after a submission"
ok "submission $id1 accepted through the socket; it started relayqd.service"
wait_until 20 "$id1 deferred in the journal" jhas "^$id1 deferred" 1
jl=$(in_ct journalctl -b --no-pager -o cat -u relayqd.service |
    grep -E "^$id1 (accepted|deferred)" | head -2)
echo "$jl" | sed 's/^/    journal: /'
echo "$jl" | grep -q "^$id1 accepted" || fail "no '$id1 accepted' line"
ok "journal has '$id1 accepted' and '$id1 deferred'"

props=$(show NRestarts,ActiveState,SubState,Result,MainPID)
echo "    $props"
case $props in
"NRestarts=0 ActiveState=active SubState=running Result=success MainPID="[1-9]*) ;;
*) fail "relayqd.service: $props" ;;
esac
pid=$(show MainPID | sed 's/MainPID=//')
st=$(in_ct grep -E '^(Uid|Gid|NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/$pid/status |
    awk '{ printf "%s%s ", $1, $2 }')
echo "    /proc/$pid/status: $st"
case $st in
"Uid:$uid Gid:$gid CapEff:0000000000000000 CapBnd:0000000000000000 NoNewPrivs:1 Seccomp:2 ") ;;
*) fail "relayqd runs with $st" ;;
esac
ok "relayqd runs as relayq, no capabilities, NoNewPrivs, seccomp filter on"
status=$(show StatusText)
echo "    $status"
case $status in
StatusText=?*) ;;
*) fail "relayqd sent no STATUS=" ;;
esac
ok "sd_notify STATUS= reached systemd"

# The entry: directories 0700, files 0600, all owned by relayq.
perms=$(in_ct find /var/spool/relayq -printf '%y %m %u:%g %P\n' | sort -k4)
echo "$perms" | sed 's/^/    /'
echo "$perms" | grep -q "^f 600 relayq:relayq queue/$id1/message.eml$" ||
	fail "no queue/$id1/message.eml 0600 relayq"
bad=$(echo "$perms" | awk '!($1 == "d" && $2 == "700" || $1 == "f" && $2 == "600") ||
    $3 != "relayq:relayq"')
[ -z "$bad" ] || fail "queue entries with other modes or owners: $bad"
env=$(in_ct cat /var/spool/relayq/queue/$id1/envelope)
echo "$env" | grep -E '^(attempts|last-reply):' | sed 's/^/    envelope: /'
echo "$env" | grep -Eq '^attempts: [1-9]' ||
	fail "the envelope of $id1 counts no attempt"
ok "queue written by relayq: dirs 0700, files 0600; $id1 stays queued, deferred"
# The queue tool, as the daemon's user, with the installed configuration.
list=$(in_ct setpriv --reuid=relayq --regid=relayq --clear-groups \
    relayq -q 2>&1) || fail "relayq -q as relayq: $list"
echo "$list" | grep -q "$id1" || fail "relayq -q does not list $id1: $list"
ok "relayq -q as user relayq lists $id1"

# --- stop: the socket stays, a submission starts the service again -------

in_ct systemctl stop relayqd.service 2>/dev/null ||
	fail "systemctl stop relayqd.service"
props=$(show ActiveState,Result,ExecMainCode,ExecMainStatus)
echo "    after stop: $props"
[ "$props" = "ActiveState=inactive Result=success ExecMainCode=1 ExecMainStatus=0" ] ||
	fail "after stop: $props"
[ "$(in_ct systemctl is-active relayqd.socket)" = active ] ||
	fail "relayqd.socket inactive after stopping the service"
in_ct test -S /run/relayq/relayq.sock || fail "the socket file vanished"
id2=$(submit) || fail "relayq: $(cat "$run/submit.out")"
[ -n "$id2" ] || fail "no queue ID after restart by the socket"
[ "$(in_ct systemctl is-active relayqd.service)" = active ] ||
	fail "relayqd.service not started again by the socket"
jhas "^stopped" 1 || fail "no 'stopped' line from relayqd"
ok "stopped cleanly (exit 0); socket still active; $id2 accepted and started it again"

# --- reload --------------------------------------------------------------

pid=$(show MainPID | sed 's/MainPID=//')
n=$(jcount '^reloaded ')
in_ct systemctl reload relayqd.service || fail "systemctl reload relayqd"
wait_until 10 "the reloaded line" jhas '^reloaded ' $((n + 1))
props=$(show ActiveState,SubState,Result,MainPID)
[ "$props" = "ActiveState=active SubState=running Result=success MainPID=$pid" ] ||
	fail "after reload: $props"
ok "systemctl reload: 'reloaded' logged, same MainPID $pid, still running"

# --- delivery to the stand-in under the sandbox --------------------------

in_ct systemctl start relayq-standin.service || fail "cannot start the stand-in"
mkdir -p "$root/etc/systemd/system/relayqd.service.d"
cat >"$root/etc/systemd/system/relayqd.service.d/standin.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/local/sbin/relayqd --foreground --relay localhost:$standin_port --ca-file /etc/relayq/test-ca.pem
WatchdogSec=2s
EOF
in_ct systemctl daemon-reload || fail "systemctl daemon-reload"
in_ct systemctl restart relayqd.service || fail "restart with the drop-in"
id3=$(submit) || fail "relayq: $(cat "$run/submit.out")"
[ -n "$id3" ] || fail "no queue ID for the third message"
# The two deferred ones go now too (a flush at start-up is not limited).
in_ct timeout 20 relayq --flush >/dev/null 2>&1 || :
wait_until 40 "three deliveries" jhas ' delivered ' 3
for id in "$id1" "$id2" "$id3"; do
	jhas "^$id delivered " 1 || fail "$id not delivered"
done
in_ct journalctl -b --no-pager -o cat -u relayqd.service |
    grep -E "^$id3 delivered" | sed 's/^/    journal: /'
got=$(in_ct sh -c 'ls /var/lib/relayq-standin/*.eml | wc -l')
[ "$got" -eq 3 ] || fail "the stand-in holds $got messages, not 3"
left=$(in_ct sh -c 'ls /var/spool/relayq/queue | wc -l')
[ "$left" -eq 0 ] || fail "$left entries still queued after delivery"
ok "STARTTLS + AUTH + MAIL, RCPT, BDAT to the stand-in under the sandbox: 3 delivered," \
    "queue empty"

# The watchdog: with WatchdogSec=2s, relayqd must keep pinging from its
# loop; a missed ping would kill it (SIGABRT) and restart it.
jhas '^watchdog: WATCHDOG=1 every 1000 ms' 1 ||
	fail "relayqd did not take WatchdogSec=2s"
sleep 5
props=$(show ActiveState,SubState,NRestarts,WatchdogTimestampMonotonic)
case $props in
"ActiveState=active SubState=running NRestarts=0 WatchdogTimestampMonotonic="[1-9]*) ;;
*) fail "with WatchdogSec=2s: $props" ;;
esac
ok "WatchdogSec=2s: still running after 5 s, pings reach systemd"

# --- the configured account, handed over with LoadCredential= -----------

# Until now /etc/relayq/gmail-password did not exist: the unit's empty
# SetCredential= fallback let the service start without an account.
install -m 0600 /dev/null "$root/etc/relayq/gmail-password"
printf '%s\n' "$password" >"$root/etc/relayq/gmail-password"
printf 'account = account@gmail.com\npassword-file = gmail-password\n' \
    >>"$root/etc/relayq/relayqd.conf"
in_ct systemctl restart relayqd.service ||
	fail "restart with an account: $(in_ct journalctl -b --no-pager -o cat \
	    -u relayqd.service | tail -3)"
printf 'Subject: from cron\n\nno AUTH, the account\n' |
    in_ct timeout 30 relayq --sendmail friend@example.com >"$run/submit.out" 2>&1 ||
	fail "relayq --sendmail: $(cat "$run/submit.out")"
wait_until 40 "the account's delivery" jhas ' delivered ' 4
meta=$(in_ct sh -c 'grep -l "^user: account@gmail.com$" /var/lib/relayq-standin/*.meta' |
    wc -l)
[ "$meta" -eq 1 ] || fail "$meta messages reached the stand-in as account@gmail.com, not 1"
leak=$(in_ct sh -c "journalctl -b --no-pager -o cat; cat /var/spool/relayq/*/*/* 2>/dev/null" |
    grep -c -- "$password" || :)
[ "$leak" -eq 0 ] || fail "the password shows in the journal or the queue ($leak lines)"
ok "account via LoadCredential=: a message without AUTH went out as" \
    "account@gmail.com with the credential's password; not in the journal"

# --- no SIGSYS, no crash, nothing restarted -------------------------------

in_ct systemctl stop relayqd.service 2>/dev/null || fail "final stop"
props=$(show NRestarts,Result,ExecMainCode,ExecMainStatus)
[ "$props" = "NRestarts=0 Result=success ExecMainCode=1 ExecMainStatus=0" ] ||
	fail "at the end: $props"
sys=$(in_ct journalctl -b --no-pager -o cat |
    grep -Ei 'relayqd.*(SIGSYS|status=31|core-dump|dumped core|signal=|watchdog timeout|Failed with result|Scheduled restart)' || :)
[ -z "$sys" ] || fail "the journal shows a crash: $sys"
ok "no SIGSYS or crash in the journal; $props"
say "all checks passed in $(elapsed) s"
