//! The image reference grammar, registries, relocation, image lists and retagged-images.txt,
//! and the images config option values name (`images::config`).
#![no_main]
use charmer::images::config::{find, Found};
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
    // Whatever a value names, relocating every image to one registry can be written back.
    let registry: Registry = "registry.internal:5000/mirror".parse().expect("registry");
    for option in ["custom_images", "proxy-image", "image-configuration", "settings"] {
        if let Found::Images(found) = find(option, text) {
            let targets = found.parts.iter().map(|(k, r)| (k.clone(), r.relocate(&registry)));
            found.rewrite(text, &targets.collect()).expect("relocated images are written back");
        }
    }
});
