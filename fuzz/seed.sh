#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds from the test fixtures and examples:
#   annotations  one file per manifest: its annotation lines, as `key=value` lines
#                (the input format of oracles::annotations), plus hand-picked edge values
#   review       the example AdmissionReviews, and the annotated one again with the
#                annotations of each annotation seed
#   inject_yaml  every fixture and example manifest as it is
# Seeds are added, never removed: a corpus the fuzzer grew stays as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=..
mkdir -p corpus/annotations corpus/review corpus/inject_yaml

manifests=("$root"/tests/fixtures/*.yaml "$root"/examples/*.yaml)

for file in "${manifests[@]}" "$root"/examples/*.json; do
  name=$(basename "$file")
  # `key: value` lines (YAML) and `"key": "value",` lines (JSON) of annotations that
  # look like ours (typos included: the parser has advice for near misses).
  sed -nE 's/^[[:space:]]*"?([a-z.-]+\/[A-Za-z0-9._-]+)"?:[[:space:]]*(.*)$/\1=\2/p' "$file" |
    grep -E '^init[.-]exa|^init\.example' |
    sed -E 's/,$//; s/=["'\'']/=/; s/["'\'']$//' >"corpus/annotations/$name.txt" || true
  [ -s "corpus/annotations/$name.txt" ] || rm -f "corpus/annotations/$name.txt"
done
# Values at the edges of each grammar.
printf '%s\n' 'wait-for=[::1]:5432,tcp://db:1,https://h:65535/p?q=1' 'wait-timeout=1ns' \
  'wait-interval=584542046090y' >corpus/annotations/edges-1.txt
printf '%s\n' 'run.a=sh -c '\''echo "$X"'\''' 'run.a.image=busybox' 'run.a.container=app' \
  'steps=a' 'position=before:a' 'volumes=v:/v:Memory:1Gi' >corpus/annotations/edges-2.txt

for file in "$root"/examples/*.json; do
  cp "$file" "corpus/review/$(basename "$file")"
done

# The annotated example review carrying each annotation seed's annotations instead.
python3 - "$root/examples/review.json" corpus/annotations corpus/review <<'PY'
import json, os, sys
review_path, seeds, out = sys.argv[1:]
for name in sorted(os.listdir(seeds)):
    review = json.load(open(review_path))
    annotations = {}
    for line in open(os.path.join(seeds, name), encoding="utf-8", errors="replace"):
        key, _, value = line.rstrip("\n").partition("=")
        annotations[key if "/" in key else "init.example/" + key] = value
    review["request"]["object"]["metadata"]["annotations"] = annotations
    with open(os.path.join(out, "with-" + name + ".json"), "w") as f:
        json.dump(review, f, separators=(",", ":"))
PY

for file in "${manifests[@]}"; do
  cp "$file" "corpus/inject_yaml/$(basename "$file")"
done

for target in annotations review inject_yaml; do
  echo "corpus/$target: $(find "corpus/$target" -type f | wc -l) files"
done
