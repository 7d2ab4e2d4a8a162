# Shared by benches/load.sh and benches/link-order.sh (sourced, not run).

# install_missing NAME TOOL...: installs from Debian's packages the tools not on PATH.
install_missing() {
  local name=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 && continue
    echo "$name: installing $tool from Debian's packages" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq "$tool" >/dev/null; fi
  done
}

# write_reviews DIR: the load run's reviews, compact as the API server sends them:
# unannotated.json, annotated.json, reinvoked.json and large.json (2,000 env vars).
write_reviews() {
  jq -c . examples/review-unannotated.json >"$1/unannotated.json"
  jq -c . examples/review.json >"$1/annotated.json"
  jq -c . tests/fixtures/review-reinvoked.json >"$1/reinvoked.json"
  jq -c '.request.object.spec.containers[0].env += [range(2000) |
      {name: "SETTING_\(. + 10000)", value: "value-\(. * 7919 % 90000 + 10000)"}]' \
    examples/review.json >"$1/large.json"
}
