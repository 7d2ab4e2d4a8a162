//! libFuzzer target: see [`oracles::annotations`].
#![no_main]

#[path = "../oracles.rs"]
#[allow(dead_code)] // each target uses one of the oracles
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::annotations(data));
