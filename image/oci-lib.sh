# Functions that write a single-layer OCI image archive from a root filesystem
# directory, with tar, sha256sum and nothing else: no Docker engine, no registry.
# Sourced by image/build-oci.sh and tests/e2e/images.sh.
#
# The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) in a
# tar file; `ctr images import` and `skopeo copy oci-archive:...` both read it. The
# layer is an uncompressed tar with fixed owners (0:0) and times, so the same input
# gives the same digest.

# oci_archive ROOTFS OUT NAME USER ENTRYPOINT_JSON CMD_JSON
#   ROOTFS          directory whose contents become the image's /
#   OUT             archive to write
#   NAME            full image name with tag, e.g. docker.io/local/pause:1 (stored as
#                   the io.containerd.image.name annotation)
#   USER            the config's User, e.g. 65532:65532
#   ENTRYPOINT_JSON JSON array, e.g. ["/usr/local/bin/init-injector"]
#   CMD_JSON        JSON array, e.g. ["serve"] (or [])
oci_archive() {
  local rootfs=$1 out=$2 name=$3 user=$4 entrypoint=$5 cmd=$6
  local layout
  layout=$(mktemp -d)
  mkdir -p "$layout/blobs/sha256"

  tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$rootfs" -cf "$layout/layer.tar" .
  local layer_digest layer_size
  layer_digest=$(sha256sum "$layout/layer.tar" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$layout/layer.tar")
  mv "$layout/layer.tar" "$layout/blobs/sha256/$layer_digest"

  local config
  config=$(printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"image/oci-lib.sh"}]}' \
    "$user" "$entrypoint" "$cmd" "$layer_digest")
  local config_digest config_size
  config_digest=$(_oci_blob "$layout" "$config")
  config_size=${#config}

  local manifest
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size")
  local manifest_digest manifest_size
  manifest_digest=$(_oci_blob "$layout" "$manifest")
  manifest_size=${#manifest}

  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$name" "${name##*:}" >"$layout/index.json"

  mkdir -p "$(dirname "$out")"
  tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$layout" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$layout"
}

# _oci_blob LAYOUT CONTENT: stores CONTENT (ASCII JSON) as a blob, prints its digest.
_oci_blob() {
  local layout=$1 content=$2 digest
  digest=$(printf '%s' "$content" | sha256sum | cut -d' ' -f1)
  printf '%s' "$content" >"$layout/blobs/sha256/$digest"
  echo "$digest"
}

# oci_copy_with_libraries ROOTFS FILE DEST: copies FILE to ROOTFS/DEST, and every
# shared library it loads (as ldd reports them, the dynamic loader included) to the
# same path inside ROOTFS. A static file copies alone.
oci_copy_with_libraries() {
  local rootfs=$1 file=$2 dest=$3
  install -D -m 0755 "$file" "$rootfs$dest"
  local lib
  for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
}

# oci_etc ROOTFS: /etc/passwd and /etc/group with root and the non-root user 65532
# (nonroot, as in distroless), and an nsswitch.conf that resolves host names from
# /etc/hosts, then DNS (the kubelet mounts both /etc/hosts and /etc/resolv.conf).
oci_etc() {
  local rootfs=$1
  mkdir -p "$rootfs/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
}
