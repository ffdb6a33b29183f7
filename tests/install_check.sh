#!/bin/sh
# make install into a temporary DESTDIR, then check the tree: binaries,
# units, sysusers/tmpfiles entries, the example config (valid, every key
# commented out at its default), the man pages (they render without
# warnings), that the sendmail and mailq links come only with
# install-sendmail, that a second install keeps an edited config, and that
# uninstall removes what install put there.
# Usage: install_check.sh MAKE BUILD_DIR
set -eu
make=${1:-make}
build=${2:-build}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT INT TERM
fail() { echo "install_check: FAILED: $*" >&2; exit 1; }

$make -s install DESTDIR="$dest" PREFIX=/usr BUILD="$build" >/dev/null

check_mode() {	# path mode
	[ -f "$dest$1" ] || fail "$1 missing"
	m=$(stat -c %a "$dest$1")
	[ "$m" = "$2" ] || fail "$1 has mode $m, not $2"
}
check_mode /usr/sbin/relayqd 755
check_mode /usr/bin/relayq 755
check_mode /lib/systemd/system/relayqd.service 644
check_mode /lib/systemd/system/relayqd.socket 644
check_mode /usr/lib/sysusers.d/relayqd.conf 644
check_mode /usr/lib/tmpfiles.d/relayqd.conf 644
check_mode /etc/relayq/relayqd.conf 644
check_mode /usr/share/man/man1/relayq.1 644
check_mode /usr/share/man/man5/relayqd.conf.5 644
check_mode /usr/share/man/man8/relayqd.8 644

grep -qx 'ExecStart=/usr/sbin/relayqd --foreground' \
    "$dest/lib/systemd/system/relayqd.service" ||
	fail "relayqd.service does not run /usr/sbin/relayqd"
grep -qx 'ListenStream=/run/relayq/relayq.sock' \
    "$dest/lib/systemd/system/relayqd.socket" ||
	fail "relayqd.socket does not listen on /run/relayq/relayq.sock"

conf="$dest/etc/relayq/relayqd.conf"
"$dest/usr/sbin/relayqd" -n -c "$conf" >/dev/null ||
	fail "the example config does not pass relayqd -n"
# Every key relayqd knows is in the example, commented out.
keys=$(sed -n 's/^#\([a-z-]*\) =.*/\1/p' "$conf" | sort)
for k in socket socket-mode queue-dir relay tls ca-file retry-min \
    retry-max max-age max-parallel helo relay-timeout max-message-size \
    max-recipients idle-timeout max-connections max-connections-per-uid \
    account password-file; do
	echo "$keys" | grep -qx -- "$k" || fail "key $k missing from $conf"
	# and relayqd accepts it at the value shown
	v=$(sed -n "s/^#$k = //p" "$conf")
	[ -z "$v" ] || "$dest/usr/sbin/relayqd" -n -c /dev/null "--$k" "$v" \
	    >/dev/null || fail "default $k = $v rejected"
done
[ "$(grep -c '^[a-z]' "$conf")" = 0 ] || fail "$conf sets keys"

if command -v man >/dev/null 2>&1; then
	for m in man1/relayq.1 man5/relayqd.conf.5 man8/relayqd.8; do
		w=$(MANWIDTH=80 man --warnings -l "$dest/usr/share/man/$m" \
		    2>&1 >/dev/null) || fail "man $m failed"
		[ -z "$w" ] || fail "man $m warns: $w"
	done
fi

# sendmail and mailq only with install-sendmail, as links to relayq.
[ ! -e "$dest/usr/sbin/sendmail" ] && [ ! -e "$dest/usr/sbin/mailq" ] ||
	fail "make install put sendmail or mailq in /usr/sbin"
$make -s install-sendmail DESTDIR="$dest" PREFIX=/usr BUILD="$build" >/dev/null
for l in sendmail mailq; do
	[ "$(readlink "$dest/usr/sbin/$l")" = /usr/bin/relayq ] ||
		fail "install-sendmail: /usr/sbin/$l is not a link to relayq"
done
$make -s uninstall-sendmail DESTDIR="$dest" PREFIX=/usr BUILD="$build" \
    >/dev/null
[ ! -e "$dest/usr/sbin/sendmail" ] && [ ! -L "$dest/usr/sbin/mailq" ] ||
	fail "uninstall-sendmail left a link"

# A second install keeps an administrator's config.
echo "retry-min = 120" >> "$conf"
$make -s install DESTDIR="$dest" PREFIX=/usr BUILD="$build" >/dev/null
grep -qx 'retry-min = 120' "$conf" || fail "install overwrote the config"

$make -s uninstall DESTDIR="$dest" PREFIX=/usr BUILD="$build" >/dev/null
left=$(find "$dest" -type f | sed "s|^$dest||")
[ "$left" = /etc/relayq/relayqd.conf ] ||
	fail "uninstall left: $left"
echo "install_check: OK"
