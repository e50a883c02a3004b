//! What a registry answers: manifests and indexes (with and without a declared media type),
//! digests, platforms, WWW-Authenticate challenges and token services' answers.
#![no_main]
use charmer::registry::auth::{Challenge, TokenAnswer};
use charmer::registry::manifest::{Digest, ManifestDoc, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for declared in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        if let Ok(doc) = ManifestDoc::parse(data.to_vec(), declared) {
            let _ = doc.blobs();
            let _ = doc.descriptor();
        }
    }
    // A token service's answer: the lifetime it states is later added to the clock.
    if let Ok(answer) = TokenAnswer::parse(data) {
        assert!(std::time::Instant::now().checked_add(answer.lifetime).is_some());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Challenge::parse(text);
        let _ = text.parse::<Digest>();
        let _ = text.parse::<Platform>();
    }
});
