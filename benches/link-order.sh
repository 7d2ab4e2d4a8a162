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
  python3 - "$map" "$order" "$min_found_percent" <<'EOF'
import re, sys
map_path, order_path, min_percent = sys.argv[1], sys.argv[2], float(sys.argv[3])
wanted = [l.strip() for l in open(order_path) if l.strip() and not l.startswith('#')]
# A map line: address, load address, size, alignment, then the name, indented by its
# kind: 0 for an output section, 8 for an input section, 16 for a symbol.
entry = re.compile(r'^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ ( *)(\S.*)$')
text_start = text_end = None
defined = {}  # symbol -> address, in .text
in_text = False
with open(map_path) as f:
    for line in f:
        m = entry.match(line.rstrip('\n'))
        if not m:
            continue
        addr, size, indent, name = int(m[1], 16), int(m[2], 16), len(m[3]), m[4]
        if indent == 0:
            in_text = name == '.text'
            if in_text:
                text_start, text_end = addr, addr + size
        elif in_text and indent == 16:
            defined.setdefault(name, addr)
if text_start is None:
    sys.exit(f'link-order.sh: {map_path} has no .text section')
found = [defined[name] for name in wanted if name in defined]
percent = 100 * len(found) / len(wanted) if wanted else 0
span = (max(found) - text_start) / 1024 if found else 0
print(f'link order: {len(found)} of the {len(wanted)} functions of {order_path} '
      f'({percent:.1f} %) in the release binary, all starting in the first {span:,.0f} KiB '
      f'of its {(text_end - text_start) / 1024:,.0f} KiB of code')
if percent < min_percent:
    sys.exit(f'link-order.sh: under {min_percent:.0f} % of {order_path} found: the toolchain '
             'or a dependency renamed the functions; run bash benches/link-order.sh and '
             'commit the new list')
EOF
}

if [ "${1:-}" = "--check" ]; then
  check
  exit 0
elif [ $# -gt 0 ]; then
  echo "link-order.sh: unknown argument $1 (expected nothing or --check)" >&2
  exit 2
fi

for tool in valgrind jq curl; do
  command -v "$tool" >/dev/null 2>&1 && continue
  echo "link-order.sh: installing $tool from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$tool" >/dev/null; fi
done

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

jq -c . examples/review-unannotated.json >"$work/unannotated.json"
jq -c . examples/review.json >"$work/annotated.json"
jq -c . tests/fixtures/review-reinvoked.json >"$work/reinvoked.json"
jq -c '.request.object.spec.containers[0].env += [range(2000) |
    {name: "SETTING_\(. + 10000)", value: "value-\(. * 7919 % 90000 + 10000)"}]' \
  examples/review.json >"$work/large.json"
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
trace() { # log-format
  valgrind --tool=callgrind --dump-instr=yes --compress-pos=no \
    --callgrind-out-file="$work/callgrind.$1.out" \
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
  valgrind --tool=callgrind --dump-instr=yes --compress-pos=no \
    --callgrind-out-file="$work/callgrind.$1.wait.out" \
    "$binary" wait --log-format "$1" --timeout 60s --step 1/2 --ca-file "$work/tls/ca.pem" \
    --termination-log "$work/termination-log" "127.0.0.1:$port" \
    "https://localhost:$port/healthz" "http://127.0.0.1:$metrics_port/metrics" 2>"$work/wait.log" ||
    { echo "link-order.sh: wait did not find serve ready; its log:" >&2; cat "$work/wait.log" >&2; exit 1; }
  local status=0
  valgrind --tool=callgrind --dump-instr=yes --compress-pos=no \
    --callgrind-out-file="$work/callgrind.$1.wait-deadline.out" \
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

python3 - "$binary" "$map" "$order" "$work"/callgrind.*.out <<'EOF'
import bisect, re, sys
binary, map_path, order_path, *traces = sys.argv[1:]

# Every instruction of the binary that the process ran: with --dump-instr=yes
# --compress-pos=no each cost line starts with its instruction's address, as linked (the
# object's load address taken off), under the last fn= line, whose object is the last
# ob= line's. A name is given once, on its first ob= or cob= line (a callee's object),
# and then referred to by number: ob=(1) /path, later ob=(1). serve's traces and wait's
# are kept apart: serve's functions go first, then those only wait runs.
addresses = {'serve': set(), 'wait': set()}
named = re.compile(r'^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$')
for trace in traces:
    job = addresses['wait' if '.wait' in trace else 'serve']
    objects, current_object, in_binary = {}, None, False
    for line in open(trace):
        if line.startswith('0x'):
            if in_binary:
                job.add(int(line.split(None, 1)[0], 16))
            continue
        m = named.match(line.rstrip('\n'))
        if not m:
            continue
        if m[1].endswith('ob') and m[3] is not None:
            objects[m[2]] = m[3]
        if m[1] == 'ob':
            current_object = objects[m[2]]
        elif m[1] == 'fn':
            in_binary = current_object == binary

# The map's input sections in .text and the symbols each defines (the line format is
# described in the check above).
starts, sections = [], []
entry = re.compile(r'^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ ( *)(\S.*)$')
in_text = False
with open(map_path) as f:
    for line in f:
        m = entry.match(line.rstrip('\n'))
        if not m:
            continue
        addr, size, indent, name = int(m[1], 16), int(m[2], 16), len(m[3]), m[4]
        if indent == 0:
            in_text = name == '.text'
        elif in_text and indent == 8:
            starts.append(addr)
            sections.append((addr + size, []))
        elif in_text and indent == 16 and sections:
            sections[-1][1].append(name)
if not sections:
    sys.exit(f'link-order.sh: no .text input sections in {map_path}')

def functions(job):
    names, instructions = set(), 0
    for address in addresses[job]:
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < sections[i][0]:
            instructions += 1
            names.update(sections[i][1])
    return names, instructions

serve, serve_instructions = functions('serve')
wait, wait_instructions = functions('wait')
wait -= serve
if len(serve) < 100 or len(wait) < 10:
    sys.exit(f'link-order.sh: only {len(serve)} functions of serve and {len(wait)} of wait '
             f'traced; is {binary} the binary {map_path} describes?')
with open(order_path, 'w') as out:
    out.write('# The functions `serve` runs, then those only `wait` runs, first in the release\n'
              '# binary\'s code (build.rs). Written by benches/link-order.sh from a trace of the\n'
              '# release build; do not edit: run it again after a toolchain or dependency update.\n')
    for name in sorted(serve) + sorted(wait):
        out.write(name + '\n')
print(f'link-order.sh: serve ran {serve_instructions} of the binary\'s instructions, in '
      f'{len(serve)} functions; wait {wait_instructions}, in {len(wait)} more; written to '
      f'{order_path}')
EOF

cargo build --release --locked --quiet --bin init-injector
check
