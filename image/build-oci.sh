#!/usr/bin/env bash
# Builds the init-injector image without Docker: a single-layer OCI image archive
# with the release binary at /usr/local/bin/init-injector (the path the engine
# injects), the non-root user 65532, no shell, and the binary as entrypoint with
# `serve` as the default command, as the Dockerfile's image has.
#
#   image/build-oci.sh [--binary PATH] [--name NAME] [--out FILE]
#
# Defaults: target/release/init-injector (build it with `cargo build --release`),
# ghcr.io/init-injector/init-injector:<crate version> (the engine's default wait
# image), target/oci/init-injector.tar. Load the archive with
# `ctr -n k8s.io images import FILE` (containerd) or
# `skopeo copy oci-archive:FILE docker-daemon:NAME`.
#
# A glibc binary is dynamically linked: the image carries the libraries ldd names
# (libc, libm, libgcc_s, the loader) at their own paths. glibc 2.34 and later has the
# `files` and `dns` name services built into libc, so /etc/nsswitch.conf (hosts:
# files dns) and the /etc/resolv.conf the kubelet mounts are all a DNS lookup needs.
# A static (musl) binary is copied alone.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=image/oci-lib.sh
. "$here/oci-lib.sh"

binary=$repo/target/release/init-injector
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
name=ghcr.io/init-injector/init-injector:$version
out=$repo/target/oci/init-injector.tar
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "build-oci.sh: unknown argument $1 (expected --binary, --name or --out)" >&2; exit 2 ;;
  esac
done
if [ ! -x "$binary" ]; then
  echo "build-oci.sh: $binary is not an executable; run cargo build --release --bin init-injector" >&2
  exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
oci_copy_with_libraries "$rootfs" "$binary" /usr/local/bin/init-injector
oci_etc "$rootfs"
oci_archive "$rootfs" "$out" "$name" 65532:65532 '["/usr/local/bin/init-injector"]' '["serve"]'
echo "build-oci.sh: wrote $name to $out" >&2
