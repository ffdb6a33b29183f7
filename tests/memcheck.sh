#!/bin/sh
# memcheck.sh BUILD [SUITE...]: integration suites with relayqd under
# valgrind's memcheck (default: the suites that relay).  ASan does not see
# every bad access: a credential wiped with explicit_bzero after its entry
# was freed went unseen by `make sanitize` and was caught by memcheck.
#
# BUILD/memcheck mirrors BUILD with links, except that relayqd is a
# wrapper running the real one under valgrind.  A memcheck error or a
# definite leak makes relayqd exit 99 on SIGTERM, which every suite's
# teardown fails on, printing the daemon's log with valgrind's report.
set -eu

build=$(cd "$1" && pwd)
shift
suites=${*:-delivery dots auth_fail tempfail reject_rcpt drop restart gmail sendmail shutdown service}
if ! command -v valgrind >/dev/null 2>&1; then
	echo "memcheck: valgrind is not installed (apt-get install valgrind)" >&2
	exit 69
fi

dir=$build/memcheck
rm -rf "$dir"
mkdir -p "$dir/tests"
for f in "$build"/*; do
	case ${f##*/} in
	relayqd|memcheck|tests) ;;
	*) ln -s "$f" "$dir/" ;;
	esac
done
for f in "$build"/tests/*; do
	ln -s "$f" "$dir/tests/"
done
cat > "$dir/relayqd" <<WRAP
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full \\
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \\
    "$build/relayqd" "\$@"
WRAP
chmod 0755 "$dir/relayqd"

status=0
for s in $suites; do
	echo "== memcheck: suite $s"
	if ! CK_RUN_SUITE=$s CK_TIMEOUT_MULTIPLIER=10 RELAYQ_SRC="$(pwd)" \
	    RELAYQ_BUILD="$dir" "$build/tests/integration"; then
		status=1
	fi
done
rm -rf "$dir"
exit $status
