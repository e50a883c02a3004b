//! A charm's metadata.yaml and config.yaml (the YAML bounds check, then the typed parse).
#![no_main]
use charmer::charm::{ConfigSchema, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = Metadata::parse("metadata.yaml", text);
    let _ = ConfigSchema::parse("config.yaml", text);
});
