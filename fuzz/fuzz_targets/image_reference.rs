//! The image reference grammar, registries, relocation, image lists and retagged-images.txt.
#![no_main]
use charmer::images::{parse_list, ImageMap, Reference, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(reference) = text.parse::<Reference>() {
        // What charmer prints must parse back to the same reference.
        let again: Reference = reference.to_string().parse().expect("a printed reference parses");
        assert_eq!(again, reference);
        let registry: Registry = "registry.internal:5000/mirror".parse().expect("registry");
        let moved = reference.relocate(&registry);
        assert!(moved.is_in(&registry));
    }
    let _ = text.parse::<Registry>();
    let _ = parse_list("images.txt", text);
    let _ = ImageMap::parse("retagged-images.txt", text);
});
