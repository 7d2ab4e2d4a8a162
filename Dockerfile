# One image for both jobs of init-injector: the webhook (`serve`, the default command)
# and the injected wait steps (`wait`, which the engine runs as
# /usr/local/bin/init-injector wait …). A static musl binary on distroless/static: no
# shell at run time, a numeric non-root user, nothing to write on the root filesystem.
#
#   docker build -t ghcr.io/init-injector/init-injector:$(cargo pkgid | cut -d'#' -f2) .
#
# The tag is the crate version: the engine's default --wait-image is
# ghcr.io/init-injector/init-injector:<version of the running binary>, so a webhook
# injects wait steps from its own release.
#
# Without Docker, image/build-oci.sh makes the same image (binary path, user 65532, no
# shell, entrypoint and command) from target/release/init-injector as an OCI archive,
# for `ctr images import` or `skopeo copy oci-archive:...`; the end-to-end node runs it.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin init-injector

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/init-injector /usr/local/bin/init-injector
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/init-injector"]
CMD ["serve"]
