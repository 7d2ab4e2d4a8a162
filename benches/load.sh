#!/usr/bin/env bash
# Load run against a real `init-injector serve` (release build, self-signed TLS) with
# wrk over HTTPS/1.1: annotated and unannotated ~5 KB Pod reviews with keep-alive, and
# annotated reviews with a new connection (TLS handshake) per request. Prints requests/s,
# p50/p99 latency, and the server's RSS idle and at peak.
#
#   bash benches/load.sh            # DURATION=10s CONNECTIONS=16 THREADS=1 by default
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=${DURATION:-10s}
connections=${CONNECTIONS:-16}
threads=${THREADS:-1}
port=${PORT:-18443}

if ! command -v wrk >/dev/null 2>&1; then
  echo "load.sh: installing wrk from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi

cargo build --release --quiet
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

target/release/init-injector serve --addr "127.0.0.1:$port" --metrics-addr 127.0.0.1:0 \
  --self-signed-dir "$work/tls" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 50); do
  curl -sf --cacert "$work/tls/ca.pem" "https://localhost:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf --cacert "$work/tls/ca.pem" "https://localhost:$port/readyz" >/dev/null || { cat "$work/serve.log" >&2; exit 1; }

rss_kib() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$server_pid/status"; }
idle_rss=$(rss_kib VmRSS)

script() { # body-file connection-header
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$1", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
  if [ -n "$2" ]; then printf 'wrk.headers["Connection"] = "%s"\n' "$2" >>"$work/post.lua"; fi
  echo "$work/post.lua"
}

run() { # name body-file [connection-header]
  local name=$1 out
  out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$(script "$2" "${3:-}")" \
    "https://localhost:$port/mutate" 2>&1)
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  printf '%-28s %10s req/s   p50 %-8s p99 %-8s %s\n' "$name" "$rps" "$p50" "$p99" "$errors"
  eval "rps_${name//-/_}=$rps"
}

echo "wrk: $threads thread(s), $connections connections, $duration per run, $(nproc) cores"
echo "review sizes: annotated $(wc -c <examples/review.json) B, unannotated $(wc -c <examples/review-unannotated.json) B"
run unannotated examples/review-unannotated.json
run annotated examples/review.json
run annotated-no-keepalive examples/review.json close
peak_rss=$(rss_kib VmHWM)
ratio=$(awk -v a="$rps_annotated" -v u="$rps_unannotated" 'BEGIN { printf "%.2f", a / u }')
echo "annotated / unannotated throughput: ${ratio}x"
echo "server RSS: idle $((idle_rss / 1024)) MiB, peak $((peak_rss / 1024)) MiB"
