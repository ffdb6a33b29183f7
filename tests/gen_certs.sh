#!/bin/sh
# gen_certs.sh OUTDIR: the test PKI for the stand-in and the integration
# tests.  POSIX sh and the openssl(1) CLI (OpenSSL 3.0); ECDSA P-256 keys.
# Every run regenerates everything.  OUTDIR/ca.pem is written last, so make
# can use it as the target: it exists only when the whole set is complete.
#
#	ca.pem ca.key			test CA
#	server.pem server.key		leaf for localhost, smtp.gmail.com,
#					127.0.0.1 and ::1, signed by the CA
#	wronghost.pem wronghost.key	leaf for wrong.example only, signed by the CA
#	rogue-ca.pem rogue-ca.key	another CA nobody trusts
#	rogue.pem rogue.key		leaf with server's names, signed by rogue-ca
#	expired.pem expired.key		leaf with server's names, signed by the CA,
#					valid only in January 2020
#
# Keys are for tests only and live under build/; they are never committed.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: gen_certs.sh OUTDIR" >&2
	exit 64
fi
out=$1
mkdir -p "$out"
rm -f "$out/ca.pem"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

# quiet CMD...: run CMD with its chatter kept back unless it fails.
quiet() {
	"$@" 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
}

server_san="DNS:localhost,DNS:smtp.gmail.com,IP:127.0.0.1,IP:::1"

# newkey NAME: a P-256 private key in $work/NAME.key (PKCS#8 PEM, mode 0600).
newkey() {
	(umask 077 && openssl genpkey -algorithm EC \
	    -pkeyopt ec_paramgen_curve:P-256 -out "$work/$1.key")
}

# extfile NAME SAN: the leaf extensions for NAME in $work/NAME.ext.
extfile() {
	cat >"$work/$1.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $2
EOF
}

# mkca NAME CN: a self-signed CA certificate in $work/NAME.pem.
mkca() {
	newkey "$1"
	openssl req -x509 -new -key "$work/$1.key" -out "$work/$1.pem" \
	    -days 3650 -sha256 -subj "/O=relayq tests/CN=$2" \
	    -addext "basicConstraints = critical, CA:TRUE" \
	    -addext "keyUsage = critical, keyCertSign, cRLSign" \
	    -addext "subjectKeyIdentifier = hash"
}

# mkleaf NAME CN SAN CA SERIAL: a leaf certificate signed by CA.
mkleaf() {
	newkey "$1"
	extfile "$1" "$3"
	openssl req -new -key "$work/$1.key" -out "$work/$1.csr" \
	    -subj "/O=relayq tests/CN=$2"
	quiet openssl x509 -req -in "$work/$1.csr" -out "$work/$1.pem" \
	    -CA "$work/$4.pem" -CAkey "$work/$4.key" -set_serial "$5" \
	    -days 825 -sha256 -extfile "$work/$1.ext"
}

# mkexpired NAME CN SAN: a leaf signed by the CA whose validity ended in
# 2020.  x509 -req in OpenSSL 3.0 cannot back-date, so use "openssl ca"
# with a throwaway configuration and database.
mkexpired() {
	newkey "$1"
	extfile "$1" "$3"
	openssl req -new -key "$work/$1.key" -out "$work/$1.csr" \
	    -subj "/O=relayq tests/CN=$2"
	mkdir "$work/db"
	: >"$work/db/index.txt"
	echo 1000 >"$work/db/serial"
	cat >"$work/ca.cnf" <<EOF
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = $work/db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $work/ca.pem
private_key = $work/ca.key
default_md = sha256
policy = test_policy
unique_subject = no
email_in_dn = no

[ test_policy ]
organizationName = optional
commonName = supplied
EOF
	quiet openssl ca -batch -notext -config "$work/ca.cnf" \
	    -startdate 20200101000000Z -enddate 20200201000000Z \
	    -extfile "$work/$1.ext" -in "$work/$1.csr" -out "$work/$1.pem"
}

mkca ca "relayq test CA"
mkca rogue-ca "relayq rogue CA"
mkleaf server localhost "$server_san" ca 101
mkleaf wronghost wrong.example "DNS:wrong.example" ca 102
mkleaf rogue localhost "$server_san" rogue-ca 201
mkexpired expired localhost "$server_san"

# Sanity: the good leaf verifies, the others fail for the intended reason.
openssl verify -CAfile "$work/ca.pem" "$work/server.pem" >/dev/null
if openssl verify -CAfile "$work/ca.pem" "$work/rogue.pem" >/dev/null 2>&1; then
	echo "gen_certs.sh: rogue.pem unexpectedly verifies" >&2
	exit 1
fi
if openssl verify -CAfile "$work/ca.pem" "$work/expired.pem" >/dev/null 2>&1; then
	echo "gen_certs.sh: expired.pem unexpectedly verifies" >&2
	exit 1
fi

for name in rogue-ca rogue server wronghost expired; do
	mv -f "$work/$name.key" "$out/$name.key"
	mv -f "$work/$name.pem" "$out/$name.pem"
done
mv -f "$work/ca.key" "$out/ca.key"
mv -f "$work/ca.pem" "$out/ca.pem"
