# One image for both jobs of init-injector: the webhook (`serve`, the default command)
# and the injected wait steps (`wait`, which the engine runs as
# /usr/local/bin/init-injector wait …). The release binary, linked against glibc, on
# distroless/cc (Debian 12's glibc and libgcc, CA certificates): no shell at
# run time, a numeric non-root user, nothing to write on the root filesystem.
#
#   docker build -t ghcr.io/init-injector/init-injector:$(cargo pkgid | cut -d'#' -f2) .
#
# The tag is the crate version: the engine's default --wait-image is
# ghcr.io/init-injector/init-injector:<version of the running binary>, so a webhook
# injects wait steps from its own release.
#
# Why not a static musl binary on distroless/static: the same code built for
# musl answered 2.2 to 3.1 times fewer reviews per second on the same machine, fewer
# than the bare kube-rs stack on every review. musl's allocator serializes allocations
# on one lock and maps and unmaps memory as a review's hundreds of allocations come and
# go: in a profile of the musl build, mmap and munmap took 23 % of the process's CPU and
# the lock (with its futex calls) 20 %. See docs/performance.md "Fifth round". The glibc
# build is also the one every test runs.
#
# Without Docker, image/build-oci.sh makes the same image (binary path, user 65532, no
# shell, entrypoint and command, the libraries `ldd` names) from
# target/release/init-injector as an OCI archive, for `ctr images import` or
# `skopeo copy oci-archive:...`; the end-to-end node runs it.

# Debian 12 on both sides: the binary needs glibc 2.34 and the run-time image has 2.36.
# The toolchain is pinned to the release CI builds with: link/serve.order names the
# functions serve runs by their symbols, whose hashes change with the compiler (build.rs;
# another compiler builds the same binary, its code just not laid out for serve).
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin init-injector

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/init-injector /usr/local/bin/init-injector
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/init-injector"]
CMD ["serve"]
