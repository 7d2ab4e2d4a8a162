#!/usr/bin/env bash
# The link order of the release binary (build.rs, docs/performance.md "Twelfth round").
#
#   bash benches/link-order.sh          # trace `serve` and write link/serve.order
#   bash benches/link-order.sh --check  # how much of link/serve.order the last release
#                                       # build found, and where it put it (CI)
#
# Writing: builds the release binary, runs `serve` (embedded defaults, a certificate of
# its own) under valgrind's callgrind, which records every instruction that runs, twice:
# with text logs (serve's default), then JSON logs (the chart's). Each time it sends the
# reviews of the load run (unannotated, annotated, reinvoked, 2,000 env vars), an
# invalid one and a body that is not JSON, asks for /healthz, /readyz and /metrics, runs
# `wait` (what an injected wait step runs) on serve's ports and then on a port nothing
# listens on until its deadline, and ends serve with SIGTERM. The instructions'
# addresses are mapped to the functions' symbol names through the map the link wrote
# (build.rs); those names, sorted, are the new list. The release binary is then relinked
# with it and checked.
#
# The names are the release profile's (a profile's settings are part of each crate's
# symbol hashes), which is why the stripped release binary itself is traced. Run it
# again after a toolchain or dependency update (the check says when: names no longer
# found) and after changing what `serve` or `wait` runs. valgrind, jq and curl come from Debian's
# packages when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

order=link/serve.order
min_found_percent=${MIN_FOUND_PERCENT:-95}

newest_map() {
  local map
  map=$(ls -t target/release/build/init-injector-*/out/init-injector.map 2>/dev/null | head -n 1)
  if [ -z "$map" ]; then
    echo "link-order.sh: no link map under target/release/build; build.rs writes one when it hands" \
      "$order to rust-lld (cargo build --release on x86_64-unknown-linux-gnu)" >&2
    exit 1
  fi
  echo "$map"
}

check() {
  local map binary=target/release/init-injector
  map=$(newest_map)
  if [ -f "$binary" ] && (($(stat -c %Y "$binary") > $(stat -c %Y "$map") + 5)); then
    echo "link-order.sh: $binary is newer than $map: its build left the order out" \
      "(cargo printed why: INIT_INJECTOR_LINK_ORDER=0, the target, the linker or rustc)" >&2
    exit 1
  fi
  python3 benches/link_map.py check "$map" "$order" "$min_found_percent"
}

if [ "${1:-}" = "--check" ]; then
  check
  exit 0
elif [ $# -gt 0 ]; then
  echo "link-order.sh: unknown argument $1 (expected nothing or --check)" >&2
  exit 2
fi

# shellcheck source=benches/lib.sh
. benches/lib.sh
install_missing link-order.sh valgrind jq curl

cargo build --release --locked --quiet --bin init-injector
binary=$(realpath target/release/init-injector)
map=$(newest_map)

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

write_reviews "$work"
jq -c '.request.object.metadata.annotations["init.example/wait-for"] = "postgres"' \
  examples/review.json >"$work/invalid.json"
printf 'not json' >"$work/garbage.json"
"$binary" certs --out "$work/tls" --dns-name localhost --ip 127.0.0.1 >/dev/null

port=${PORT:-18643}
metrics_port=$((port + 1))
post() { # body-file
  curl -s --max-time 60 --cacert "$work/tls/ca.pem" -H 'Content-Type: application/json' \
    -o /dev/null -w '%{http_code}' --data-binary "@$1" "https://localhost:$port/mutate"
}
# callgrind, writing the address of every instruction that ran.
callgrind=(valgrind --tool=callgrind --dump-instr=yes --compress-pos=no)
trace() { # log-format
  "${callgrind[@]}" --callgrind-out-file="$work/callgrind.$1.out" \
    "$binary" serve --addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$metrics_port" \
    --log-format "$1" --tls-cert "$work/tls/tls.crt" --tls-key "$work/tls/tls.key" \
    2>"$work/serve.log" &
  pid=$!
  local up= code review
  for _ in $(seq 1 300); do
    if [ "$(post "$work/unannotated.json" 2>/dev/null)" = 200 ]; then up=1; break; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.2
  done
  if [ -z "$up" ]; then
    echo "link-order.sh: serve did not answer under valgrind; its log:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  for _ in 1 2 3; do
    for review in unannotated annotated reinvoked large invalid; do
      code=$(post "$work/$review.json")
      [ "$code" = 200 ] || { echo "link-order.sh: the $review review answered $code" >&2; exit 1; }
    done
  done
  code=$(post "$work/garbage.json")
  [ "$code" = 400 ] || { echo "link-order.sh: a body that is not JSON answered $code" >&2; exit 1; }
  for path in healthz readyz; do
    curl -sf --max-time 60 --cacert "$work/tls/ca.pem" "https://localhost:$port/$path" >/dev/null
  done
  curl -sf --max-time 60 "http://127.0.0.1:$metrics_port/metrics" >/dev/null
  # What an injected wait step runs, against serve's ports: a TCP, an HTTPS and an HTTP
  # target that answer, then one that never does, until its deadline.
  "${callgrind[@]}" --callgrind-out-file="$work/callgrind.$1.wait.out" \
    "$binary" wait --log-format "$1" --timeout 60s --step 1/2 --ca-file "$work/tls/ca.pem" \
    --termination-log "$work/termination-log" "127.0.0.1:$port" \
    "https://localhost:$port/healthz" "http://127.0.0.1:$metrics_port/metrics" 2>"$work/wait.log" ||
    { echo "link-order.sh: wait did not find serve ready; its log:" >&2; cat "$work/wait.log" >&2; exit 1; }
  local status=0
  "${callgrind[@]}" --callgrind-out-file="$work/callgrind.$1.wait-deadline.out" \
    "$binary" wait --log-format "$1" --timeout 3s --interval 200ms --step 2/2 \
    --termination-log "$work/termination-log" "127.0.0.1:$((port + 2))" 2>"$work/wait.log" ||
    status=$?
  if [ "$status" != 1 ]; then # 1: the deadline passed
    echo "link-order.sh: wait on a port nothing listens on exited $status, not 1; its log:" >&2
    cat "$work/wait.log" >&2
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}
# Both log formats: text is serve's default, JSON the chart's.
trace text
trace json

python3 benches/link_map.py write "$binary" "$map" "$order" "$work"/callgrind.*.out

cargo build --release --locked --quiet --bin init-injector
check
