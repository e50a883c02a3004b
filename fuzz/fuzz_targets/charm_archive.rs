//! A `.charm` archive from an untrusted source: every zip and charm check.
#![no_main]
use charmer::charm::{Charm, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_total_bytes: 8 << 20, max_entries: 1_000 };
    let _ = Charm::from_archive_bytes(std::path::Path::new("x_1.0.0.charm"), data, &limits);
});
