#!/usr/bin/env bash
# Generates a development CA and serving certificate into certs/dev/ for a webhook
# Service named init-injector in namespace init-injector, plus 127.0.0.1 for a local
# `serve` registered by URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --quiet --release -- certs --out certs/dev \
  --service "${SERVICE:-init-injector}" --namespace "${NAMESPACE:-init-injector}" \
  --dns-name localhost --ip 127.0.0.1 "$@"
