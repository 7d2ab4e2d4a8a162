#!/usr/bin/env bash
# Builds the images the e2e node runs, without Docker, as OCI archives in DIR:
#   init-injector.tar  the release binary (image/build-oci.sh), under the engine's
#                      default wait image name
#   pause.tar          the pod sandbox: Debian's static busybox sleeping
#   busybox.tar        the test pods' image: the static busybox with its applets
#                      linked in /bin, user 65532
#
#   tests/e2e/images.sh DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=image/oci-lib.sh
. "$repo/image/oci-lib.sh"

out=${1:?usage: tests/e2e/images.sh DIR}
busybox=/bin/busybox
linkage=$(ldd "$busybox" 2>&1 || true)
if [[ $linkage != *"not a dynamic executable"* ]]; then
  echo "images.sh: $busybox is not Debian's static busybox (install busybox-static)" >&2
  exit 1
fi

"$repo/image/build-oci.sh" --out "$out/init-injector.tar"

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
install -D -m 0755 "$busybox" "$rootfs/bin/busybox"
oci_archive "$rootfs" "$out/pause.tar" docker.io/local/pause:e2e 65535:65535 \
  '["/bin/busybox","sleep","2147483647"]' '[]'

for applet in $("$busybox" --list); do
  [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
oci_etc "$rootfs"
mkdir -p "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
oci_archive "$rootfs" "$out/busybox.tar" docker.io/local/busybox:e2e 65532:65532 '["/bin/sh"]' '[]'
echo "images.sh: wrote pause, busybox and init-injector archives to $out" >&2
