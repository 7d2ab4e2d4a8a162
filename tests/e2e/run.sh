#!/usr/bin/env bash
# End-to-end tests against a real cluster of one node: builds (or reuses) etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, the kubelet, CoreDNS and
# helm from their Go modules, installs containerd, runc and the CNI plugins from
# Debian's packages when they are missing, builds the images without Docker, then
# starts the cluster inside a network namespace of its own (`unshare --net`), with a
# fresh CA, client certificates and RBAC, writes a kubeconfig and runs every
# `tests/e2e*.rs` target with `cargo test --features e2e`. Everything is torn down on
# exit. Logs of every component stay in target/e2e-logs/ (their tails are printed when
# anything fails). tests/e2e/README.md says what the node is made of and why.
#
# The script runs in two halves. The first, on the machine's network, does everything
# that may download: the Go builds, apt, the release binary and the Rust test
# binaries, the images. The second re-runs this script under `unshare --net`: inside,
# `lo` has 127.0.0.1, one private address (INIT_INJECTOR_E2E_HOST_IP) where the
# API server, the kubelet and CoreDNS listen and tests may listen and publish
# EndpointSlice addresses (they may not be loopback), and the `kubernetes` Service's
# ClusterIP, so pods reach the API server without kube-proxy. Pods get addresses on a
# bridge in the same namespace. No traffic leaves it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

# The namespace's private address, on its `lo`; the node's InternalIP.
host_ip=10.100.0.1
# The Service range; its first address is the `kubernetes` Service's ClusterIP.
service_cidr=10.0.0.0/24
kubernetes_service_ip=10.0.0.1
pod_cidr=10.244.0.0/24
node_name=e2e-node
# Only pods that tolerate this NoSchedule taint run on the node (INIT_INJECTOR_E2E_NODE_TAINT).
node_taint=init-injector.e2e/node
# shellcheck source=tests/e2e/node.sh
. "$here/node.sh"

# Every e2e test target: tests/e2e.rs, tests/e2e_*.rs; or only those that E2E_TARGETS
# names (space-separated, such as `E2E_TARGETS="e2e_policy e2e_chart"`).
test_targets=()
if [ -n "${E2E_TARGETS:-}" ]; then
  for target in $E2E_TARGETS; do
    if [ ! -f "$repo/tests/$target.rs" ]; then
      echo "e2e: E2E_TARGETS names $target, but tests/$target.rs does not exist" >&2
      exit 2
    fi
    test_targets+=(--test "$target")
  done
else
  for file in "$repo"/tests/e2e*.rs; do
    test_targets+=(--test "$(basename "$file" .rs)")
  done
fi

if [ "${1:-}" != "--inside-netns" ]; then
  logs=${E2E_LOG_DIR:-$repo/target/e2e-logs}
  rm -rf "$logs"
  mkdir -p "$logs"

  if ! command -v go >/dev/null 2>&1; then
    echo "e2e: the Go toolchain (go) is required to build the control plane, and is not on PATH" >&2
    exit 1
  fi
  if ! command -v unshare >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    echo "e2e: unshare (util-linux) and ip (iproute2) are required for the network namespace" >&2
    exit 1
  fi

  bin_dir=$("$here/build.sh" | tail -n 1)
  node_packages
  work=$(mktemp -d "${TMPDIR:-/tmp}/init-injector-e2e.XXXXXX")
  trap 'node_unmount; rm -rf "$work"' EXIT

  # The certificate tool, the release binary, the images and the test binaries are
  # built here, where the network is.
  (cd "$here/cluster" && go build -o "$work/pki-tool" ./pki)
  (cd "$repo" && cargo build --release --locked --bin init-injector)
  "$here/images.sh" "$work/images"
  (cd "$repo" && cargo test --locked --features e2e "${test_targets[@]}" --no-run)

  status=0
  E2E_BIN_DIR="$bin_dir" E2E_WORK="$work" E2E_LOGS="$logs" \
    unshare --net -- bash "${BASH_SOURCE[0]}" --inside-netns || status=$?
  exit "$status"
fi

# ---- Second half: inside the network namespace.
bin_dir=$E2E_BIN_DIR
work=$E2E_WORK
logs=$E2E_LOGS
pids=()

tails() {
  for log in "$logs"/*.log; do
    [ -s "$log" ] || continue
    echo "---- last lines of $log" >&2
    tail -n 25 "$log" >&2
  done
}

cleanup() {
  local status=$?
  node_stop
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    tails
    echo "e2e: failed (exit $status); component logs are in $logs" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip link set lo up
ip addr add "$host_ip/32" dev lo
ip addr add "$kubernetes_service_ip/32" dev lo

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for NAME PID SECONDS COMMAND...: polls COMMAND until it succeeds, failing early
# when the component's process has exited.
wait_for() {
  local name=$1 pid=$2 seconds=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "e2e: $name exited during start-up" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "e2e: $name was not ready after ${seconds}s" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "e2e: $name ready" >&2
}

pki="$work/pki"
"$work/pki-tool" -out "$pki" -apiserver-ips "$host_ip,$kubernetes_service_ip" -node "$node_name"

etcd_port=$(free_port)
etcd_peer_port=$(free_port)
"$bin_dir/etcd" --name e2e --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" --unsafe-no-fsync --log-level warn \
  >"$logs/etcd.log" 2>&1 &
pids+=($!)
wait_for etcd "${pids[-1]}" 60 curl -sf "http://127.0.0.1:$etcd_port/health"

# --enable-aggregator-routing: a webhook's `clientConfig.service` is called at the
# addresses of the Service's EndpointSlices, not at its ClusterIP (there is no kube-proxy).
# Port 443 on every address of the namespace: pods dial the `kubernetes` Service's
# ClusterIP, which is on `lo`, at the Service's port. The Node authorizer lets the
# kubelet act for its node.
api_port=443
"$bin_dir/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 0.0.0.0 --advertise-address "$host_ip" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$service_cidr" --allow-privileged=true --endpoint-reconciler-type none \
  --enable-aggregator-routing=true \
  --cert-dir "$work/apiserver-certs" \
  >"$logs/kube-apiserver.log" 2>&1 &
pids+=($!)
api="https://127.0.0.1:$api_port"
wait_for kube-apiserver "${pids[-1]}" 120 \
  curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$api/readyz"

# write_kubeconfig FILE USER: a kubeconfig for $api with USER's client certificate
# ($pki/USER.crt and .key).
write_kubeconfig() {
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $api
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: e2e
  context:
    cluster: e2e
    user: $2
current-context: e2e
KUBECONFIG
}

kubeconfig="$work/kubeconfig"
write_kubeconfig "$kubeconfig" admin

"$bin_dir/kube-controller-manager" --kubeconfig "$kubeconfig" \
  --controllers deployment-controller,replicaset-controller,serviceaccount-controller,namespace-controller,garbage-collector-controller,endpointslice-controller,node-lifecycle-controller,root-ca-certificate-publisher-controller \
  --leader-elect=false --secure-port 0 --root-ca-file "$pki/ca.crt" \
  --service-account-private-key-file "$pki/sa.key" \
  >"$logs/kube-controller-manager.log" 2>&1 &
pids+=($!)
# The serviceaccount controller creates `default` in every namespace; pods need it.
wait_for kube-controller-manager "${pids[-1]}" 60 \
  curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "$api/api/v1/namespaces/default/serviceaccounts/default"

node_start

version=$(curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$api/version" | tr -d ' \n')
echo "e2e: cluster up, node $node_name Ready: $version" >&2

cd "$repo"
KUBECONFIG="$kubeconfig" INIT_INJECTOR_E2E_LOGS="$logs" INIT_INJECTOR_E2E_HOST_IP="$host_ip" \
  INIT_INJECTOR_E2E_HELM="$bin_dir/helm" INIT_INJECTOR_E2E_BIN="$bin_dir" INIT_INJECTOR_E2E_NODE="$node_name" \
  INIT_INJECTOR_E2E_NODE_TAINT="$node_taint" \
  cargo test --locked --offline --no-fail-fast --features e2e "${test_targets[@]}" -- --test-threads 2
