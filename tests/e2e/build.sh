#!/usr/bin/env bash
# Builds the local cluster used by the end-to-end tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and the kubelet from the Kubernetes Go
# modules pinned in cluster/go.mod, CoreDNS (the cluster's DNS) and helm from their
# own modules. Binaries go to a cache outside the repository, keyed by version, so
# later runs on the same machine reuse them.
#
# Prints the directory holding the binaries on its last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k8s_version=v1.36.3
helm_version=v3.19.0
coredns_version=v1.14.7
cache_root=${INIT_INJECTOR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/init-injector-e2e}
bin_dir="$cache_root/k8s-$k8s_version-helm-$helm_version/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: the Go toolchain (go) is required to build the control plane, and is not on PATH" >&2
  exit 1
fi

mkdir -p "$bin_dir"
log_dir="$cache_root/build-logs"
mkdir -p "$log_dir"

minor=${k8s_version#v1.}; minor=${minor%%.*}
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name import-path
  local name=$1 pkg=$2
  if [ -x "$bin_dir/$name" ]; then
    return 0
  fi
  echo "build.sh: building $name ($pkg)" >&2
  local start=$SECONDS
  if ! (cd "$here/cluster" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$version_flags" \
      -o "$bin_dir/$name.tmp" "$pkg") >"$log_dir/$name.log" 2>&1; then
    echo "build.sh: building $name failed; last lines of $log_dir/$name.log:" >&2
    tail -n 30 "$log_dir/$name.log" >&2
    rm -f "$bin_dir/$name.tmp"
    exit 1
  fi
  mv "$bin_dir/$name.tmp" "$bin_dir/$name"
  echo "build.sh: built $name in $((SECONDS - start))s" >&2
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubelet k8s.io/kubernetes/cmd/kubelet

if [ ! -x "$bin_dir/helm" ]; then
  echo "build.sh: building helm $helm_version" >&2
  start=$SECONDS
  if ! GOBIN="$bin_dir" CGO_ENABLED=0 go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
      "helm.sh/helm/v3/cmd/helm@$helm_version" >"$log_dir/helm.log" 2>&1; then
    echo "build.sh: building helm failed; last lines of $log_dir/helm.log:" >&2
    tail -n 30 "$log_dir/helm.log" >&2
    exit 1
  fi
  echo "build.sh: built helm in $((SECONDS - start))s" >&2
fi

# CoreDNS has no replace directives either; its version is checked, not keyed.
if ! "$bin_dir/coredns" -version 2>/dev/null | grep -qx "CoreDNS-${coredns_version#v}"; then
  echo "build.sh: building coredns $coredns_version" >&2
  start=$SECONDS
  if ! GOBIN="$bin_dir" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
      "github.com/coredns/coredns@$coredns_version" >"$log_dir/coredns.log" 2>&1; then
    echo "build.sh: building coredns failed; last lines of $log_dir/coredns.log:" >&2
    tail -n 30 "$log_dir/coredns.log" >&2
    exit 1
  fi
  echo "build.sh: built coredns in $((SECONDS - start))s" >&2
fi

echo "$bin_dir"
