//! An image archive from an untrusted source: the tar index (plain or gzip'd), OCI layout
//! (index.json, manifests) and docker-save manifest.json.
#![no_main]
use std::cell::RefCell;

use charmer::registry::archive::ImageArchive;
use charmer::registry::tarindex::Limits;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DIR: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    DIR.with(|dir| {
        let mut dir = dir.borrow_mut();
        let dir = dir.get_or_insert_with(|| tempfile::tempdir().expect("temp dir"));
        let path = dir.path().join("images.tar");
        std::fs::write(&path, data).expect("write archive");
        let limits =
            Limits { max_members: 10_000, max_inflated_bytes: 64 << 20, max_document_bytes: 1 << 20 };
        let _ = ImageArchive::open(&path, &limits);
    });
});
