#!/bin/sh
# deps.sh CC: can CC link a libFuzzer harness with ASan and UBSan?
# On Debian 12 that takes clang (clang-14) and libclang-rt-14-dev, which
# holds libclang_rt.fuzzer and the sanitizer runtimes; clang only
# recommends it, so an install without recommends lacks it.  As root with
# apt-get the packages are installed; otherwise they are named.
cc=$1
packages="clang libclang-rt-14-dev"

probe() {
	dir=$(mktemp -d) || return 1
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	    '{ (void)d; (void)n; return 0; }' > "$dir/p.c"
	"$cc" -fsanitize=fuzzer,address,undefined -o "$dir/p" "$dir/p.c" \
	    >/dev/null 2>&1
	rc=$?
	rm -rf "$dir"
	return $rc
}

probe && exit 0
echo "relayq: $cc cannot build -fsanitize=fuzzer,address,undefined"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "relayq: running as root: installing Debian packages: $packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q && apt-get install -y -q $packages && probe && exit 0
	echo "relayq: the fuzzing toolchain is still not usable" >&2
	exit 1
fi
echo "relayq: please install these Debian packages, then run make fuzz:" >&2
echo "    apt-get install $packages" >&2
exit 1
