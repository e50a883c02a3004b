//! A bundle and an overlay (split at the first NUL), read from files as `charmer check`
//! reads them: YAML bounds, the bundle schema, overlay merging, include-file:// paths.
#![no_main]
use std::cell::RefCell;

use charmer::bundle::{Bundle, BundleInput};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DIR: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let (bundle, overlay) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    DIR.with(|dir| {
        let mut dir = dir.borrow_mut();
        let dir = dir.get_or_insert_with(|| tempfile::tempdir().expect("temp dir"));
        let bundle_file = dir.path().join("bundle.yaml");
        std::fs::write(&bundle_file, bundle).expect("write bundle");
        let mut input = BundleInput { bundle: bundle_file, ..BundleInput::default() };
        if let Some(overlay) = overlay {
            let overlay_file = dir.path().join("overlay.yaml");
            std::fs::write(&overlay_file, overlay).expect("write overlay");
            input.overlays.push(overlay_file);
        }
        let _ = Bundle::load(&input);
    });
});
