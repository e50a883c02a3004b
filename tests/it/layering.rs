//! The one-way data flow of docs/architecture.md, checked on the source: each module of
//! `src/` may import only modules of a lower layer (Helm checks its `pkg/` imports the same
//! way), the layers inside `src/deploy/` likewise, and no files of `src/` import each other in
//! a circle. A new module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers, lowest first: a module may use modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &["diag", "digest", "io_error", "parallel"],
    &["contract", "transport", "images", "kube_rules", "output"],
    &["charm"],
    &["template", "bundle", "registry"],
    &["publish"],
    &["repo"],
    &["resolve"],
    &["render", "juju", "sbom"],
    &["airgap", "deploy", "graph"],
    &["ops"],
    &["cli"],
];

/// The layers of `src/deploy/`, lowest first: a file of one may use files of its own layer
/// and of earlier ones, and names the layer (never the re-exports of `deploy/mod.rs`).
const DEPLOY_LAYERS: &[&str] = &["error", "model", "cluster", "state", "health", "operations"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One source file: its module path (`deploy::state::record`) and the non-test part of it.
struct File {
    relative: String,
    module: Vec<String>,
    code: String,
}

fn files() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let mut module: Vec<String> =
            relative.trim_end_matches(".rs").split('/').map(str::to_string).collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
        found.push(File { relative, module, code });
    }
    found
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Other,
}

/// The tokens of a path at the start of `text`, up to its end (outside braces).
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => continue,
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = c.to_string();
                while let Some(&n) =
                    chars.peek().filter(|n| n.is_ascii_alphanumeric() || **n == '_')
                {
                    word.push(n);
                    chars.next();
                }
                out.push(Token::Ident(word));
            }
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                out.push(Token::Sep);
            }
            '{' => {
                depth += 1;
                out.push(Token::Open);
            }
            '}' => {
                out.push(Token::Close);
                depth -= 1;
                if depth <= 0 {
                    break;
                }
            }
            ',' => out.push(Token::Comma),
            _ => {
                out.push(Token::Other);
                if depth == 0 {
                    break;
                }
            }
        }
    }
    out
}

/// The paths of a use tree (`a::{b, c::{d, self}}` gives `a::b`, `a::c::d`, `a::c`).
fn tree(tokens: &[Token], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match tokens.get(*at) {
            Some(Token::Ident(word)) => {
                *at += 1;
                if word != "self" {
                    path.push(word.clone());
                }
                if tokens.get(*at) == Some(&Token::Sep) {
                    *at += 1;
                    continue;
                }
                out.push(path);
                return;
            }
            Some(Token::Open) => {
                *at += 1;
                loop {
                    tree(tokens, at, path.clone(), out);
                    // Skip `as name` and the like up to the next item.
                    while !matches!(tokens.get(*at), None | Some(Token::Comma | Token::Close)) {
                        *at += 1;
                    }
                    match tokens.get(*at) {
                        Some(Token::Comma) => {
                            *at += 1;
                            if tokens.get(*at) == Some(&Token::Close) {
                                *at += 1;
                                return;
                            }
                        }
                        Some(Token::Close) => {
                            *at += 1;
                            return;
                        }
                        _ => return,
                    }
                }
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// Every `crate::` and `super::` path of a file, as a path from the crate root.
fn used_paths(file: &File) -> Vec<Vec<String>> {
    let code = &file.code;
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let tokens = tokens(&code[at..]);
            let mut base: Vec<String> = Vec::new();
            let mut i = 0;
            if start == "crate::" {
                i = 2;
            } else {
                base = file.module.clone();
                while tokens.get(i) == Some(&Token::Ident("super".into()))
                    && tokens.get(i + 1) == Some(&Token::Sep)
                {
                    base.pop();
                    i += 2;
                }
            }
            tree(&tokens, &mut i, base, &mut out);
        }
    }
    out
}

#[test]
fn stages_only_import_earlier_stages() {
    let mut wrong = Vec::new();
    for file in files() {
        let module = &file.module[0];
        let Some(own) = layer_of(module) else {
            wrong.push(format!("src/{module}: not in a layer of tests/it/layering.rs"));
            continue;
        };
        let used: BTreeSet<String> = used_paths(&file)
            .into_iter()
            .filter_map(|p| p.first().cloned())
            .filter(|m| m != module && m.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .collect();
        for other in used {
            match layer_of(&other) {
                Some(layer) if layer < own => {}
                _ => wrong.push(format!("src/{}: {module} uses crate::{other}", file.relative)),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow of docs/architecture.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn deploy_layers_only_import_their_own_and_lower_layers() {
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files().into_iter().filter(|f| f.module[0] == "deploy" && f.module.len() > 1) {
        let own_name = &file.module[1];
        seen.insert(own_name.clone());
        let Some(own) = DEPLOY_LAYERS.iter().position(|l| l == own_name) else {
            wrong.push(format!("src/{}: deploy::{own_name} is not a layer", file.relative));
            continue;
        };
        for path in used_paths(&file).into_iter().filter(|p| p[0] == "deploy") {
            let target = path.get(1).map(String::as_str).unwrap_or_default();
            match DEPLOY_LAYERS.iter().position(|l| *l == target) {
                Some(layer) if layer <= own => {}
                Some(_) => wrong.push(format!(
                    "src/{}: deploy::{own_name} uses the higher layer deploy::{target}",
                    file.relative
                )),
                None => wrong.push(format!(
                    "src/{}: uses deploy::{} through deploy/mod.rs; name its layer",
                    file.relative,
                    path[1..].join("::")
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against deploy's layers:\n{}", wrong.join("\n"));
    assert_eq!(seen, DEPLOY_LAYERS.iter().map(|l| l.to_string()).collect(), "deploy's folders");
}

/// Resolving a bundle is orchestration: only `ops::resolve` calls the resolver, so the
/// imported-folder verification around it is never skipped (`airgap` import used to resolve
/// a staged bundle itself).
#[test]
fn only_ops_runs_the_resolver() {
    let callers: Vec<String> = files()
        .into_iter()
        .filter(|f| !matches!(f.module[0].as_str(), "ops" | "resolve"))
        .filter(|f| used_paths(f).iter().any(|p| p.starts_with(&["resolve".into(), "load".into()])))
        .map(|f| format!("src/{}", f.relative))
        .collect();
    assert!(callers.is_empty(), "call crate::ops::resolve instead of resolve::load: {callers:?}");
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let files = files();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        for mut path in used_paths(file) {
            // The file that defines what the path names: its longest prefix that is a file.
            while !path.is_empty() && !modules.contains(&path) {
                path.pop();
            }
            if !path.is_empty() && path != file.module {
                edges.entry(file.module.clone()).or_default().insert(path);
            }
        }
    }
    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "files of src/ that import each other:\n{}",
        circles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

type Module = Vec<String>;

/// Each circle of imports, as its modules in order from the smallest name.
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeSet<String> {
    // A circle shows as a module that reaches itself.
    let mut circles = BTreeSet::new();
    for start in edges.keys() {
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> = vec![(start.clone(), vec![])];
        let mut visited = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                let mut trail = trail.clone();
                trail.push(node.clone());
                if next == start {
                    let mut names: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
                    // One text per circle, whichever file it starts at.
                    let first =
                        names.iter().enumerate().min_by_key(|(_, n)| *n).map_or(0, |(i, _)| i);
                    names.rotate_left(first);
                    circles.insert(names.join(" → "));
                } else if visited.insert(next.clone()) {
                    stack.push((next.clone(), trail));
                }
            }
        }
    }
    circles
}

#[test]
fn circles_are_found_whichever_file_they_start_at() {
    let module = |name: &str| -> Module { name.split("::").map(str::to_string).collect() };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, to) in [
        ("d::plan", "d::config"),
        ("d::config", "d::cluster"),
        ("d::cluster", "d::plan"),
        ("d::apply", "d::plan"),
    ] {
        edges.entry(module(from)).or_default().insert(module(to));
    }
    assert_eq!(
        circles(&edges).into_iter().collect::<Vec<_>>(),
        ["d::cluster → d::plan → d::config"]
    );
    edges.remove(&module("d::cluster"));
    assert!(circles(&edges).is_empty());
}

#[test]
fn use_trees_are_read_with_their_groups() {
    let file = File {
        relative: "deploy/state/lock.rs".into(),
        module: vec!["deploy".into(), "state".into(), "lock".into()],
        code: "use super::record::{self, Entry as E, Record};\nuse crate::deploy::{cluster::client::Cluster, model::plan::Plan};\nfn f() { crate::diag::x(); }".into(),
    };
    let paths: Vec<String> = used_paths(&file).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        [
            "deploy::cluster::client::Cluster",
            "deploy::model::plan::Plan",
            "diag::x",
            "deploy::state::record",
            "deploy::state::record::Entry",
            "deploy::state::record::Record",
        ]
    );
}
