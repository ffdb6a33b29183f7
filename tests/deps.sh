#!/bin/sh
# deps.sh PKG_CONFIG "MODULES" "DEBIAN_PACKAGES"
# Installs the Debian packages when a pkg-config module or a tool is
# missing and we are root with apt-get; otherwise names what to install.
pkgconfig=$1
modules=$2
packages=$3

missing=
command -v cc >/dev/null 2>&1 || missing="cc"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if command -v "$pkgconfig" >/dev/null 2>&1; then
	for m in $modules; do
		"$pkgconfig" --exists "$m" || missing="$missing $m"
	done
else
	missing="$missing pkg-config"
fi
[ -z "$missing" ] && exit 0

echo "relayq: missing: $missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "relayq: running as root: installing Debian packages: $packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q && apt-get install -y -q $packages && exit 0
	echo "relayq: apt-get failed" >&2
	exit 1
fi
echo "relayq: please install these Debian packages, then run make again:" >&2
echo "    apt-get install $packages" >&2
exit 1
