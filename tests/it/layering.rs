//! The one-way data flow of docs/architecture.md, checked on the source: each module of
//! `src/` may import only modules of a lower layer (Helm checks its `pkg/` imports the same
//! way). A new module must be given a layer here.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers, lowest first: a module may use modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &["diag", "digest", "output", "parallel"],
    &["contract", "transport", "images", "kube_rules"],
    &["charm"],
    &["template", "bundle", "registry"],
    &["publish"],
    &["repo"],
    &["resolve"],
    &["render", "juju"],
    &["airgap", "deploy", "graph"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `crate::x` paths in the non-test part of every file of each top-level module.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let used: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used != module && used.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.entry(module.clone()).or_default().insert(used, relative.clone());
            }
        }
    }
    found
}

#[test]
fn stages_only_import_earlier_stages() {
    let mut wrong = Vec::new();
    for (module, used) in imports() {
        let Some(own) = layer_of(&module) else {
            wrong.push(format!("src/{module}: not in a layer of tests/it/layering.rs"));
            continue;
        };
        for (other, file) in used {
            match layer_of(&other) {
                Some(layer) if layer < own => {}
                _ => wrong.push(format!("src/{file}: {module} uses crate::{other}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow of docs/architecture.md:\n{}",
        wrong.join("\n")
    );
}
