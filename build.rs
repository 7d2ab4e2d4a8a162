//! Link order of the `init-injector` release binary.
//!
//! `link/serve.order` lists, by their symbol names, the functions that `serve` runs (its
//! start, the reviews of the load run, /healthz, /readyz, /metrics, a SIGTERM), then
//! those that only `wait` (an injected wait step) runs, as traced from the release build
//! by `benches/link-order.sh`. rust-lld puts them first in `.text`, in that order, so the
//! code a running webhook touches sits in about 2 MiB at its start instead of being spread
//! over all 13 MB: the kernel maps a binary's code 64 KiB at a time around each page that
//! runs (fault-around), and the spread-out code kept 8 MiB of it resident. See
//! docs/performance.md, "Twelfth round".
//!
//! Names the build does not define (another toolchain or a changed dependency renames
//! them) are skipped without a warning: the binary works the same, its layout is just
//! less compact. `benches/link-order.sh --check`, which CI runs, says how many of the
//! names the last release build found, from the map the link writes beside the build
//! script's output (`target/release/build/init-injector-*/out/init-injector.map`).
//!
//! Release builds only (`cargo build --release`, the image's): the names carry the
//! release profile's hashes. Only rust-lld takes a symbol ordering file, and rustc links
//! with it by default on x86_64-unknown-linux-gnu since 1.90; with another target, an
//! older rustc or a linker of one's own the order is left out, with a warning.
//! `INIT_INJECTOR_LINK_ORDER=0` leaves it out too.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link/serve.order");
    println!("cargo:rerun-if-env-changed=INIT_INJECTOR_LINK_ORDER");
    // The names are the release profile's (its settings are part of every symbol's
    // hash); a debug build would find none of them.
    if env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    if let Some(reason) = skip_reason() {
        println!("cargo:warning=link/serve.order not used: {reason}");
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let order = manifest.join("link/serve.order");
    // The list's contents are not part of any compiler input cargo sees; this makes a
    // new list relink the binary. (An unreadable list fails the link, which reads it.)
    let digest = std::fs::read(&order)
        .map(|bytes| fnv1a(&bytes))
        .unwrap_or_default();
    println!("cargo:rustc-env=INIT_INJECTOR_LINK_ORDER_DIGEST={digest:016x}");
    // -Xlinker passes each argument whole (-Wl, would split a path at its commas).
    for arg in [
        format!("--symbol-ordering-file={}", order.display()),
        "--no-warn-symbol-ordering".to_owned(),
        // The map names each function and where it went; mangled, for the check.
        "--no-demangle".to_owned(),
        format!("-Map={}", out.join("init-injector.map").display()),
    ] {
        println!("cargo:rustc-link-arg-bin=init-injector=-Xlinker");
        println!("cargo:rustc-link-arg-bin=init-injector={arg}");
    }
}

/// Why the order cannot be handed to the linker, if it cannot.
fn skip_reason() -> Option<String> {
    if !std::path::Path::new("link/serve.order").is_file() {
        return Some("the file is missing".to_owned());
    }
    if env::var("INIT_INJECTOR_LINK_ORDER").as_deref() == Ok("0") {
        return Some("INIT_INJECTOR_LINK_ORDER=0".to_owned());
    }
    let target = env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return Some(format!(
            "target {target} (rustc links with rust-lld by default on x86_64-unknown-linux-gnu only)"
        ));
    }
    if env::var_os("RUSTC_LINKER").is_some() {
        return Some("a linker is configured for the target".to_owned());
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") {
        return Some("RUSTFLAGS choose the linker".to_owned());
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= 90 => None,
        _ => Some(format!(
            "rustc before 1.90 links with the system linker ({})",
            version.trim()
        )),
    }
}

/// FNV-1a, 64 bits: enough to tell one list from the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
