#!/usr/bin/env bash
# Soak and chaos run: two release `serve` replicas on 127.0.0.1, a steady rate of
# well-formed AdmissionReviews to both, three certificate rotations by `..data` symlink
# swap, a SIGTERM and restart of one replica, and hostile requests, slow-loris and a
# connection flood interleaved. benches/soak.py runs it and says what it counts.
#
#   SOAK_SECONDS=30 bash benches/soak.sh     # the short mode CI runs
#   SOAK_SECONDS=300 bash benches/soak.sh    # the long mode
#
# Other knobs: SOAK_BINARY (a binary to run instead of building), SOAK_RATE (requests/s,
# default 100), SOAK_WORKERS (4), SOAK_FLOOD (connections held open, 1000),
# SOAK_SLOW_LORIS (50), SOAK_NOFILE (the replicas' open-file limit; default inherited),
# SOAK_PORT_A/B (18543/18544).
# Loopback only; bounded by SOAK_SECONDS (plus start-up and a 30 s drain at most); exits
# non-zero on any failed well-formed request, a replica crash, a wrong answer to a
# hostile request, or a hostile connection excused as closed at the connection cap by a
# replica whose init_injector_connections_refused_total did not count it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${SOAK_SECONDS:-30}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 10 ] || [ "$seconds" -gt 3600 ]; then
  echo "soak.sh: SOAK_SECONDS must be 10..3600, got $seconds" >&2
  exit 2
fi

# SOAK_BINARY runs a binary built elsewhere instead of building the release one.
bin=${SOAK_BINARY:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet --bin init-injector
  bin=target/release/init-injector
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One CA, and a serving certificate for the start and for each of three rotations, as
# cert-manager renews a certificate under the same issuer (the webhook's caBundle stays).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=init-injector soak CA" -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
for version in 0 1 2 3; do
  dir="$work/cert-$version"
  mkdir -p "$dir"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >"$dir/ext"
  openssl x509 -req -in "$dir/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
    -CAcreateserial -days 2 -extfile "$dir/ext" -out "$dir/tls.crt" 2>/dev/null
done

# Hard bound on the whole run, whatever happens inside. The replicas' logs are kept in
# target/soak-logs/ for a look after a failure.
status=0
SOAK_WORK="$work" SOAK_SECONDS="$seconds" SOAK_BINARY="$bin" \
  timeout --kill-after=10 $((seconds + 120)) python3 benches/soak.py || status=$?
mkdir -p target/soak-logs
cp "$work"/replica-*.log target/soak-logs/ 2>/dev/null || true
exit "$status"
