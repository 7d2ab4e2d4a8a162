#!/usr/bin/env bash
# Load run: `init-injector serve` beside a bare-stack baseline (benches/baseline: kube-rs's
# admission controller example, axum + axum-server/rustls + kube-core, adding one label)
# in the same run, on the same certificate, with the same reviews and the same wrk load
# over HTTPS/1.1 keep-alive connections to loopback:
#
#   unannotated  examples/review-unannotated.json, compact (~4 KB)
#   annotated    examples/review.json, compact (~4.4 KB): 3 waits, 2 run steps, 2 volumes
#   reinvoked    tests/fixtures/review-reinvoked.json, compact (~5.2 KB): a pod the webhook
#                injected, as the API server sends it back for review (reinvocation:
#                defaults filled in, three steps and two volumes already there), which
#                every injected pod costs a second time; ours answers it with no patch
#   large        the annotated review with 2,000 env vars on the app container (~98 KB),
#                which both run steps copy
#
# Each case runs on each server back to back (the order alternates between rounds), so
# that other load on the machine falls on both alike. Prints requests/s, p50/p99, the
# server's CPU time per review (less sensitive than requests/s to other load on the
# machine), RSS (idle and its file-backed part, peak after the small reviews, peak over
# the run, the anonymous part's peak, after the run),
# and the ratios that docs/performance.md tracks.
#
#   bash benches/load.sh     # DURATION=5s CONNECTIONS=16 THREADS=1 ROUNDS=2
#                            # BASELINE_FEATURES=mimalloc gives the baseline mimalloc
#                            # BEFORE=path/to/init-injector runs an earlier build too, for
#                            # before/after figures from one run
#                            # OURS=path/to/init-injector runs that build instead of
#                            # target/release's (two builds of one kind side by side)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=${DURATION:-5s}
connections=${CONNECTIONS:-16}
threads=${THREADS:-1}
rounds=${ROUNDS:-2}
port=${PORT:-18443}
baseline_port=${BASELINE_PORT:-18444}
baseline_features=${BASELINE_FEATURES:-}
before_bin=${BEFORE:-}

# shellcheck source=benches/lib.sh
. benches/lib.sh
install_missing load.sh wrk jq curl

ours_bin=${OURS:-target/release/init-injector}
[ -n "${OURS:-}" ] || cargo build --release --quiet
cargo build --release --quiet --manifest-path benches/baseline/Cargo.toml \
  --target-dir target/baseline ${baseline_features:+--features "$baseline_features"}
baseline_bin=target/baseline/release/admission-baseline

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

write_reviews "$work"

"$ours_bin" certs --out "$work/tls" --dns-name localhost --ip 127.0.0.1 >/dev/null
declare -A pid_of port_of
serve() { # server binary port
  "$2" serve --addr "127.0.0.1:$3" --metrics-addr 127.0.0.1:0 \
    --tls-cert "$work/tls/tls.crt" --tls-key "$work/tls/tls.key" 2>"$work/$1.log" &
  pids+=($!); pid_of[$1]=$!; port_of[$1]=$3
}
servers=(ours baseline)
serve ours "$ours_bin" "$port"
"$baseline_bin" "127.0.0.1:$baseline_port" "$work/tls/tls.crt" "$work/tls/tls.key" \
  2>"$work/baseline.log" &
pids+=($!); pid_of[baseline]=$!; port_of[baseline]=$baseline_port
if [ -n "$before_bin" ]; then servers+=(before); serve before "$before_bin" "$((port + 2))"; fi

post() { # port body-file
  curl -sf --max-time 5 --cacert "$work/tls/ca.pem" -H 'Content-Type: application/json' \
    --data-binary "@$2" "https://localhost:$1/mutate"
}
for s in "${servers[@]}"; do
  p=${port_of[$s]}
  for _ in $(seq 1 50); do post "$p" "$work/unannotated.json" >/dev/null 2>&1 && break; sleep 0.1; done
done
kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_s=$(getconf CLK_TCK)
sleep 1
declare -A idle idle_file hwm_small hwm after anon_peak
for s in "${servers[@]}"; do
  idle[$s]=$(kib "${pid_of[$s]}" VmRSS); idle_file[$s]=$(kib "${pid_of[$s]}" RssFile)
done

# VmHWM is the peak of all resident pages, the binary's mapped code among them. The
# anonymous part (heap, stacks: what a memory limit cannot reclaim) is sampled every
# 100 ms while the load runs (read with bash builtins, one `sleep` a tick, so that the
# sampling takes next to nothing from the servers), by a loop that ends when the
# servers do or after an hour.
sample_anon() { # out-dir server...
  local dir=$1 s key value i; shift
  declare -A peak
  for ((i = 0; i < 36000; i++)); do
    for s in "$@"; do
      [ -r "/proc/${pid_of[$s]}/status" ] || return 0
      while read -r key value _; do
        [ "$key" = RssAnon: ] || continue
        if ((value > ${peak[$s]:-0})); then peak[$s]=$value; echo "$value" >"$dir/$s.anon"; fi
        break
      done 2>/dev/null <"/proc/${pid_of[$s]}/status" # the server may end mid-read
    done
    sleep 0.1
  done
}
sample_anon "$work" "${servers[@]}" &
pids+=($!)

# Both answer every case as expected before that case's load is sent.
check() { # name port body-file jq-test
  post "$2" "$3" | jq -e ".response.allowed == true and ($4)" >/dev/null ||
    { echo "load.sh: $1 did not answer $3 as expected" >&2; cat "$work"/*.log >&2; exit 1; }
}
check_case() { # case
  local expect='.response.patch != null'
  case $1 in unannotated | reinvoked) expect='.response.patch == null' ;; esac
  check init-injector "$port" "$work/$1.json" "$expect"
  check baseline "$baseline_port" "$work/$1.json" '.response.patch != null'
  if [ -n "$before_bin" ]; then check before "${port_of[before]}" "$work/$1.json" "$expect"; fi
}

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
local f = io.open(os.getenv("BODY"), "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
LUA

# Latency as printed by wrk (850.00us, 1.23ms, 1.02s) in ms.
to_ms() { awk -v v="$1" 'BEGIN {
  n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
  printf "%.2f", n }'; }

declare -A rps p50 p99 cpu
run() { # server case round
  local server=$1 case=$2 round=$3 p pid out before requests
  p=${port_of[$server]} pid=${pid_of[$server]}
  before=$(cpu_ticks "$pid")
  out=$(BODY="$work/$case.json" wrk -t"$threads" -c"$connections" -d"$duration" --latency \
    -s "$work/post.lua" "https://localhost:$p/mutate" 2>&1)
  local key="$server,$case,$round"
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  rps[$key]=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
  p50[$key]=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p99[$key]=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  cpu[$key]=$(awk -v t="$(($(cpu_ticks "$pid") - before))" -v r="$requests" -v hz="$ticks_per_s" \
    'BEGIN { printf "%.0f", t * 1e6 / hz / r }')
  local errors
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)
  printf '  %-9s %-12s round %d: %7s req/s  p50 %6s ms  p99 %6s ms  %5s us CPU/review  %s\n' \
    "$server" "$case" "$round" "${rps[$key]}" "${p50[$key]}" "${p99[$key]}" "${cpu[$key]}" "$errors"
}

echo "wrk: $threads thread(s), $connections keep-alive HTTPS/1.1 connections, $duration per run," \
  "$rounds round(s), $(nproc) cores"
echo "reviews: unannotated $(wc -c <"$work/unannotated.json") B, annotated" \
  "$(wc -c <"$work/annotated.json") B, reinvoked $(wc -c <"$work/reinvoked.json") B," \
  "large $(wc -c <"$work/large.json") B;" \
  "baseline allocator: ${baseline_features:-system}"
for case in unannotated annotated reinvoked large; do
  if [ "$case" = large ]; then
    for s in "${servers[@]}"; do hwm_small[$s]=$(kib "${pid_of[$s]}" VmHWM); done
  fi
  check_case "$case"
  for round in $(seq 1 "$rounds"); do
    order=("${servers[@]}")
    if ! ((round % 2)); then order=(); for s in "${servers[@]}"; do order=("$s" "${order[@]}"); done; fi
    for s in "${order[@]}"; do run "$s" "$case" "$round"; done
  done
done
for s in "${servers[@]}"; do
  hwm[$s]=$(kib "${pid_of[$s]}" VmHWM); anon_peak[$s]=$(cat "$work/$s.anon" 2>/dev/null || echo 0)
done
sleep 2
for s in "${servers[@]}"; do after[$s]=$(kib "${pid_of[$s]}" VmRSS); done

# Means over the rounds; p99 is the worst round's.
mean() { # map-name server case
  local -n m=$1; local sum=0 r
  for r in $(seq 1 "$rounds"); do sum=$(awk -v a="$sum" -v b="${m[$2,$3,$r]}" 'BEGIN { print a + b }'); done
  awk -v s="$sum" -v n="$rounds" 'BEGIN { printf "%.0f", s / n }'
}
worst() { # map-name server case
  local -n m=$1; local w=0 r
  for r in $(seq 1 "$rounds"); do w=$(awk -v a="$w" -v b="${m[$2,$3,$r]}" 'BEGIN { print (b > a ? b : a) }'); done
  echo "$w"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "| review | init-injector req/s | p99 ms | CPU us | baseline req/s | p99 ms | CPU us | req/s ours / baseline | CPU ours / baseline |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
declare -A m
for case in unannotated annotated reinvoked large; do
  for s in "${servers[@]}"; do
    m[$s,$case]=$(mean rps "$s" "$case"); m[$s,$case,p99]=$(worst p99 "$s" "$case")
    m[$s,$case,cpu]=$(mean cpu "$s" "$case")
  done
  echo "| $case | ${m[ours,$case]} | ${m[ours,$case,p99]} | ${m[ours,$case,cpu]} |" \
    "${m[baseline,$case]} | ${m[baseline,$case,p99]} | ${m[baseline,$case,cpu]} |" \
    "$(ratio "${m[ours,$case]}" "${m[baseline,$case]}")x |" \
    "$(ratio "${m[ours,$case,cpu]}" "${m[baseline,$case,cpu]}")x |"
done
echo
echo "| RSS MiB | idle | of it file-backed (code) | peak after small reviews | peak over the run | anonymous peak (sampled) | after the run |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for s in "${servers[@]}"; do
  name=$s; [ "$s" = ours ] && name=init-injector; [ "$s" = before ] && name="init-injector before"
  echo "| $name | $(mib "${idle[$s]}") | $(mib "${idle_file[$s]}") | $(mib "${hwm_small[$s]}") |" \
    "$(mib "${hwm[$s]}") | $(mib "${anon_peak[$s]}") | $(mib "${after[$s]}") |"
done
echo
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
  ok = (op == ">=") ? v >= t : v <= t; printf "%s (target %s %s)", (ok ? "met" : "not met"), op, t }'; }
a_b=$(ratio "${m[ours,annotated]}" "${m[baseline,annotated]}")
a_u=$(ratio "${m[ours,annotated]}" "${m[ours,unannotated]}")
l_b=$(ratio "${m[ours,large]}" "${m[baseline,large]}")
l_p99=$(ratio "${m[ours,large,p99]}" "${m[baseline,large,p99]}")
rss_diff=$(awk -v a="${hwm[ours]}" -v b="${hwm[baseline]}" 'BEGIN { printf "%+.1f", (a - b) / 1024 }')
echo "annotated / baseline annotated:    ${a_b}x  $(verdict "$a_b" 1.2 '>=')"
echo "annotated / our unannotated:       ${a_u}x  $(verdict "$a_u" 0.8 '>=')"
echo "reinvoked / our unannotated:       $(ratio "${m[ours,reinvoked]}" "${m[ours,unannotated]}")x  (no target)"
echo "large / baseline large:            ${l_b}x  $(verdict "$l_b" 1.5 '>=')"
echo "large p99 / baseline large p99:    ${l_p99}x  $(verdict "$l_p99" 1.0 '<=')"
anon_diff=$(awk -v a="${anon_peak[ours]}" -v b="${anon_peak[baseline]}" 'BEGIN { printf "%+.1f", (a - b) / 1024 }')
echo "peak RSS - baseline peak RSS:      ${rss_diff} MiB  $(verdict "$rss_diff" 4 '<=')"
echo "  of which anonymous (sampled):    ${anon_diff} MiB"
if [ -n "$before_bin" ]; then
  echo
  echo "| review | before req/s | p99 ms | CPU us | req/s now / before | CPU now / before |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for case in unannotated annotated reinvoked large; do
    echo "| $case | ${m[before,$case]} | ${m[before,$case,p99]} | ${m[before,$case,cpu]} |" \
      "$(ratio "${m[ours,$case]}" "${m[before,$case]}")x |" \
      "$(ratio "${m[ours,$case,cpu]}" "${m[before,$case,cpu]}")x |"
  done
fi
