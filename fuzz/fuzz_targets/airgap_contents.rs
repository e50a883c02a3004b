//! An air-gap archive's airgap.json and bundle.lock.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = charmer::airgap::parse_contents("a.tar", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = charmer::airgap::parse_lock("bundle.lock", text);
    }
});
