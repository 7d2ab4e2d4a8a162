# The e2e cluster's node, sourced by tests/e2e/run.sh: containerd and runc, the CNI
# bridge and host-local plugins (Debian's packages), the kubelet, kube-scheduler and
# CoreDNS. `node_packages` runs before the network namespace is entered (it installs);
# `node_start` runs inside it, after the control plane is up. Uses run.sh's variables
# and functions (work, logs, pki, bin_dir, host_ip, node_name, node_taint, pod_cidr,
# kubeconfig, api, pids, wait_for, write_kubeconfig).

node_packages() {
  local missing=()
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  local linkage
  linkage=$(ldd /bin/busybox 2>&1 || true)
  [[ $linkage == *"not a dynamic executable"* ]] || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "e2e: installing ${missing[*]}" >&2
    apt-get update >"$logs/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
      >>"$logs/apt.log" 2>&1
  fi
}

node_start() {
  local node_dir="$work/node"
  mkdir -p "$node_dir/cni/net.d" "$node_dir/pod-logs"

  # The pod network: one bridge, cni0, whose address is the pods' gateway; pods reach
  # the namespace's own addresses (the host IP, CoreDNS, the API server) through it.
  # No masquerading and no iptables: nothing is routed out of the namespace.
  cat >"$node_dir/cni/net.d/10-e2e.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node_dir/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
CNI

  # containerd 1.6 with the CRI plugin. restrict_oom_score_adj: this machine's root
  # lacks CAP_SYS_RESOURCE, and runc fails opaquely when asked to lower the score.
  local ctrd="$node_dir/containerd"
  mkdir -p "$ctrd"
  cat >"$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$ctrd/containerd.sock"
[ttrpc]
  address = "$ctrd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/local/pause:e2e"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$ctrd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node_dir/cni/net.d"
TOML
  containerd --config "$ctrd/config.toml" >"$logs/containerd.log" 2>&1 &
  pids+=($!)
  containerd_pid=$!
  wait_for containerd "$containerd_pid" 60 ctr --address "$ctrd/containerd.sock" version
  local archive
  for archive in "$work/images"/*.tar; do
    if ! ctr --address "$ctrd/containerd.sock" -n k8s.io images import "$archive" >>"$logs/images.log" 2>&1; then
      echo "e2e: importing $archive into containerd failed" >&2
      return 1
    fi
  done
  ctr --address "$ctrd/containerd.sock" -n k8s.io images ls -q >>"$logs/images.log"

  # CoreDNS on the host IP: the kubelet gives pods this address as their nameserver
  # (clusterDNS), so it needs no Service and no kube-proxy in front of it.
  cat >"$node_dir/Corefile" <<COREFILE
.:53 {
  bind $host_ip
  errors
  log
  ready 127.0.0.1:8181
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $kubeconfig e2e
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
}
COREFILE
  "$bin_dir/coredns" -conf "$node_dir/Corefile" >"$logs/coredns.log" 2>&1 &
  pids+=($!)
  wait_for coredns "${pids[-1]}" 60 curl -sf http://127.0.0.1:8181/ready

  "$bin_dir/kube-scheduler" --kubeconfig "$kubeconfig" --leader-elect=false --secure-port 0 \
    >"$logs/kube-scheduler.log" 2>&1 &
  pids+=($!)

  # The kubelet: its own client certificate (system:node:NAME, for the Node
  # authorizer), serving on the host IP so the API server reaches it for logs. The node
  # carries a NoSchedule taint that only the pods meant to run tolerate: the other
  # end-to-end tests create pods that should stay Pending (images that exist nowhere,
  # hundreds of pods for latency figures).
  write_kubeconfig "$node_dir/kubelet.kubeconfig" kubelet
  printf 'nameserver %s\n' "$host_ip" >"$node_dir/resolv.conf"
  # cgroup v1 and no CAP_SYS_RESOURCE here: no per-QoS cgroups, no node allocatable
  # enforcement, no local-storage accounting; eviction thresholds at zero so a busy
  # CI disk cannot taint the node.
  cat >"$node_dir/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
containerRuntimeEndpoint: unix://$ctrd/containerd.sock
address: $host_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: $pki/ca.crt
authorization:
  mode: AlwaysAllow
clusterDomain: cluster.local
clusterDNS: [$host_ip]
resolvConf: $node_dir/resolv.conf
podLogsDir: $node_dir/pod-logs
evictionHard:
  memory.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
registerWithTaints:
- key: $node_taint
  effect: NoSchedule
KUBELET
  "$bin_dir/kubelet" --config "$node_dir/kubelet.yaml" --kubeconfig "$node_dir/kubelet.kubeconfig" \
    --root-dir "$node_dir/kubelet" --cert-dir "$node_dir/kubelet-pki" \
    --hostname-override "$node_name" --node-ip "$host_ip" \
    >"$logs/kubelet.log" 2>&1 &
  pids+=($!)
  kubelet_pid=$!
  wait_for "node $node_name Ready" "$kubelet_pid" 120 node_ready
}

node_ready() {
  curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$api/api/v1/nodes/$node_name" |
    python3 -c 'import json, sys
node = json.load(sys.stdin)
ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
not_ready = [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
sys.exit(0 if ready and ready[0]["status"] == "True" and not not_ready else 1)'
}

# node_stop: the kubelet first (so it restarts nothing), then every task containerd
# still runs, then containerd; then whatever the node left mounted under the work dir.
node_stop() {
  local ctrd="$work/node/containerd"
  if [ -n "${kubelet_pid:-}" ]; then
    kill "$kubelet_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$kubelet_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  local containers=()
  if [ -n "${containerd_pid:-}" ] && kill -0 "$containerd_pid" 2>/dev/null; then
    local task
    mapfile -t containers < <(timeout 10 ctr --address "$ctrd/containerd.sock" -n k8s.io containers ls -q 2>/dev/null)
    for task in $(timeout 10 ctr --address "$ctrd/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      timeout 5 ctr --address "$ctrd/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    kill "$containerd_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # The shims outlive containerd by design; each names our socket in its arguments.
  local shim
  for shim in $(pgrep -f "containerd-shim-runc-v2 .*-address $ctrd/containerd.sock" || true); do
    kill -9 "$shim" 2>/dev/null || true
  done
  # runc leaves the cgroups of killed containers behind (cgroup v1, cgroupfs): empty
  # directories named by container id.
  local id dir
  for id in "${containers[@]}"; do
    for dir in /sys/fs/cgroup/*/k8s.io/"$id"; do
      [ -d "$dir" ] && rmdir "$dir" 2>/dev/null || true
    done
  done
  node_unmount
}

node_unmount() {
  local mount
  for mount in $(awk -v dir="$work/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
}
