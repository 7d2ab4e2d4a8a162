#!/usr/bin/env bash
# Fuzz smoke for CI: builds the three libFuzzer targets and runs each briefly from the
# seeds (fuzz/seed.sh) and the recorded crashes (fuzz/regressions/). Exits non-zero
# when a target crashes; the input is left in fuzz/artifacts/<target>/.
#
#   bash fuzz/smoke.sh                 # FUZZ_SECONDS=20 per target
#   FUZZ_SECONDS=600 bash fuzz/smoke.sh  # a real run (docs/reliability.md)
#
# cargo-fuzz drives libFuzzer through unstable rustc flags (-Zsanitizer, coverage
# instrumentation); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them, so no
# nightly toolchain is needed. cargo-fuzz itself is installed when missing.
#
# The instrumented build goes to a cache outside the repository (FUZZ_TARGET_DIR, by
# default ~/.cache/init-injector-fuzz/target), so that a fresh clone rebuilds only this
# crate and the targets, not the whole instrumented dependency tree (about a quarter of
# an hour here); the first run on a machine fills it. Each clone builds this crate and
# the targets under a hash of its own path (about 600 MB); only the newest such build is
# kept, so the cache does not grow by one per clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${FUZZ_SECONDS:-20}
# A fixed seed by default, so that CI's short run of a commit tries the same inputs each
# time (a finding is then reproducible, not luck); FUZZ_SEED=0 picks a random one.
seed=${FUZZ_SEED:-1}
export RUSTC_BOOTSTRAP=1
target_dir=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/init-injector-fuzz/target}
mkdir -p "$target_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=(annotations review inject_yaml)
bash seed.sh
for target in "${targets[@]}"; do
  mkdir -p "regressions/$target"
done

# Runs `cargo fuzz run TARGET ARGS...` quietly; on failure shows the end of its log.
fuzz() {
  local target=$1 log status=0
  log=$(mktemp)
  cargo fuzz run --target-dir "$target_dir" "$@" >"$log" 2>&1 || status=$?
  grep -E "^stat::number_of_executed_units" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -60 "$log" >&2
    echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  rm -f "$log"
}

# Deletes every build of this repository's crates in the cache but the newest.
prune_older_builds() {
  local deps name newest hash file
  deps="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release/deps"
  for name in libinit_injector init_injector "${targets[@]}"; do
    newest=$(ls -t "$deps/$name"-* 2>/dev/null | head -1 || true)
    [ -n "$newest" ] || continue
    hash=${newest##*-}
    hash=${hash%%.*}
    for file in "$deps/$name"-*; do
      case $file in
        *"-$hash" | *"-$hash".*) ;;
        *) rm -f "$file" ;;
      esac
    done
  done
}

echo "== cargo fuzz build (into $target_dir)"
cargo fuzz build --target-dir "$target_dir"
prune_older_builds
for target in "${targets[@]}"; do
  dict=()
  [ -f "dicts/$target.dict" ] && dict=("-dict=dicts/$target.dict")
  echo "== $target: the recorded crashes, then ${seconds}s from the corpus"
  fuzz "$target" "regressions/$target" -- -runs=0
  fuzz "$target" "corpus/$target" -- -max_total_time="$seconds" -timeout=10 \
    -seed="$seed" -print_final_stats=1 "${dict[@]}"
done
echo "fuzz smoke: 3 targets passed"
