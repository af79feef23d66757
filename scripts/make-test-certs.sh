#!/usr/bin/env bash
# Makes a test CA and certificates for a Comb cluster with the openssl command: EC P-256 keys,
# each certificate valid for TLS server and client use (nodes are both), with SANs for
# localhost, 127.0.0.1 and ::1 plus any given with a NAME=ADDR argument.
#
#   scripts/make-test-certs.sh DIR [NODE[=IP[,IP...]]...]
#
# DIR/ca.pem and DIR/ca.key (the CA), DIR/NODE.pem and DIR/NODE.key for each NODE (default:
# node1 node2 node3) and DIR/client.pem, DIR/client.key for `comb call`. Keys are written 0600.
# For tests and trials: a real cluster's CA key belongs offline, not beside the nodes.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit $(( $# < 1 ? 2 : 0 ))
fi
dir=$1
shift
nodes=("$@")
[[ ${#nodes[@]} -gt 0 ]] || nodes=(node1 node2 node3)
command -v openssl >/dev/null || { echo "make-test-certs: the openssl command is missing (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir"
umask 077
days=825

if [[ ! -f $dir/ca.pem || ! -f $dir/ca.key ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$days" -subj "/CN=Comb test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
fi

make_cert() { # NAME SAN-LIST
  local name=$1 san=$2 ext
  ext=$(mktemp)
  trap 'rm -f "$ext"' RETURN
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyAgreement" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$san" >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/$name.pem" -days "$days" -extfile "$ext" 2>/dev/null
  rm -f "$dir/$name.csr"
  chmod 600 "$dir/$name.key"
  chmod 644 "$dir/$name.pem"
}

for spec in "${nodes[@]}" client; do
  name=${spec%%=*}
  [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "make-test-certs: bad name '$name' (letters, digits, . _ -)" >&2; exit 2; }
  san="DNS:$name,DNS:localhost,IP:127.0.0.1,IP:::1"
  if [[ $spec == *=* ]]; then
    IFS=, read -ra ips <<<"${spec#*=}"
    for ip in "${ips[@]}"; do san+=",IP:$ip"; done
  fi
  make_cert "$name" "$san"
done
chmod 644 "$dir/ca.pem"
echo "make-test-certs: CA and certificates for ${nodes[*]} client in $dir"
