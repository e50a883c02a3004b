//! A published release: index.yaml and SHA256SUMS.
#![no_main]
use charmer::publish::{sums, Index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = Index::parse("index.yaml", text);
    let _ = sums::parse("SHA256SUMS", text);
});
