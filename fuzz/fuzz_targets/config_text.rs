//! Fuzz target: see `redmux::fuzz_entry::config_text`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| redmux::fuzz_entry::config_text(data));
