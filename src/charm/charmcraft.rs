//! `charmcraft.yaml`: a charm source as charmcraft lays it out, completed into the files a
//! packed charm holds, the way `charmcraft pack` writes them (its `PackageService`):
//!
//! - `manifest.yaml` from `bases:` (the run-on bases of the first entry) or from
//!   `base:`/`platforms:` (the first platform), when the folder has none;
//! - `metadata.yaml`, `config.yaml` and `actions.yaml` from the unified form (name, summary,
//!   containers, resources, ... and `config:`/`actions:` inside `charmcraft.yaml`), when the
//!   folder has no such file; a key in both places is an error, as in charmcraft;
//! - `dispatch` running `src/charm.py`, when the folder has none and that file exists.
//!
//! `charmcraft.yaml` itself is not packed (Charmhub's archives do not hold it). charmcraft
//! also builds `parts` (a Python virtualenv, compiled dependencies); charmer does not run
//! them, and says so in a warning per part that builds something.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::CharmFile;
use crate::contract::parse_yaml;
use crate::diag::{Problem, Problems};

/// The file this module reads.
pub const FILE: &str = "charmcraft.yaml";

/// Keys of `charmcraft.yaml` that charmcraft writes to `metadata.yaml` (its
/// `CHARM_METADATA_KEYS`, plus `charm-user` and the `title` and `links` it renames).
const METADATA_KEYS: &[&str] = &[
    "assumes",
    "charm-user",
    "containers",
    "description",
    "devices",
    "extra-bindings",
    "links",
    "name",
    "peers",
    "provides",
    "requires",
    "resources",
    "storage",
    "subordinate",
    "summary",
    "terms",
    "title",
];

/// Every other top-level key charmcraft accepts for a charm.
const PROJECT_KEYS: &[&str] = &[
    "actions",
    "analysis",
    "base",
    "bases",
    "build-base",
    "charm-libs",
    "charmhub",
    "config",
    "extensions",
    "parts",
    "platforms",
    "type",
];

/// Plugins whose part only copies files, which charmer's packing of the folder covers.
const COPYING_PLUGINS: &[&str] = &["nil", "dump"];

/// `dispatch` as charmcraft writes it (its `DISPATCH_CONTENT`) for the default entrypoint.
const DISPATCH: &str = "#!/bin/sh\n\nJUJU_DISPATCH_PATH=\"${JUJU_DISPATCH_PATH:-$0}\" PYTHONPATH=lib:venv \\\n  exec ./src/charm.py\n";

/// The architecture assumed when charmcraft would take the build machine's: charmer's
/// archives must not depend on the machine that packs them.
const DEFAULT_ARCH: &str = "amd64";

/// Completes `files` of a source folder holding `charmcraft.yaml` (see the module docs);
/// returns the warnings to show. `root` names the folder in problems. A folder without
/// `charmcraft.yaml` is left as it is.
pub fn complete(
    root: &str,
    files: &mut BTreeMap<String, CharmFile>,
) -> Result<Vec<Problem>, Problems> {
    let Some(file) = files.remove(FILE) else { return Ok(Vec::new()) };
    let label = format!("{root}/{FILE}");
    let text =
        String::from_utf8(file.data).map_err(|_| Problem::new(&label, "", "is not UTF-8 text"))?;
    let project: Mapping = parse_yaml(&label, &text)?;
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    let get = |key: &str| project.get(key).filter(|v| !v.is_null());

    match get("type").and_then(Value::as_str) {
        Some("charm") => {}
        Some(other) => problems.push(
            Problem::new(&label, "type", format!("{other:?} projects are not charms"))
                .hint("charmer packs charm projects (type: charm)"),
        ),
        None => problems.push(Problem::new(&label, "type", "missing").hint("add type: charm")),
    }
    for key in project.keys() {
        let known =
            key.as_str().is_some_and(|k| METADATA_KEYS.contains(&k) || PROJECT_KEYS.contains(&k));
        if !known {
            warnings.push(
                Problem::new(&label, yaml_key(key), "unknown key, ignored")
                    .hint("check its spelling against charmcraft's charmcraft.yaml reference"),
            );
        }
    }

    // metadata.yaml: from the unified form, unless the folder has its own.
    let unified: Vec<&str> = METADATA_KEYS.iter().copied().filter(|k| get(k).is_some()).collect();
    if files.contains_key("metadata.yaml") {
        for key in &unified {
            problems.push(
                Problem::new(&label, *key, "is also set by metadata.yaml")
                    .hint("keep it in one of the two files, as charmcraft requires"),
            );
        }
    } else if !unified.is_empty() {
        let metadata = metadata_of(&project, &label, &mut problems);
        files.insert("metadata.yaml".into(), generated(&metadata));
    }
    for (key, member) in [("config", "config.yaml"), ("actions", "actions.yaml")] {
        let Some(value) = get(key) else { continue };
        if files.contains_key(member) {
            problems.push(
                Problem::new(&label, key, format!("is also given as {member}"))
                    .hint("keep it in one of the two places, as charmcraft requires"),
            );
        } else {
            files.insert(member.into(), generated(value));
        }
    }
    if !files.contains_key("manifest.yaml") {
        if let Some(bases) = manifest_bases(&project, &label, &mut problems, &mut warnings) {
            let mut manifest = Mapping::new();
            manifest.insert("bases".into(), Value::Sequence(bases));
            files.insert("manifest.yaml".into(), generated(&Value::Mapping(manifest)));
        }
    }
    if !files.contains_key("dispatch") && files.contains_key("src/charm.py") {
        files.insert(
            "dispatch".into(),
            CharmFile { data: DISPATCH.as_bytes().to_vec(), executable: true },
        );
    }
    if let Some(parts) = get("parts").and_then(Value::as_mapping) {
        for (name, part) in parts {
            let name = yaml_key(name);
            // charmcraft's rule: a part without `plugin` uses the plugin named like it.
            let plugin = part.get("plugin").and_then(Value::as_str).unwrap_or(&name).to_string();
            let builds = !COPYING_PLUGINS.contains(&plugin.as_str())
                || part.as_mapping().is_some_and(|m| {
                    m.keys().any(|k| k.as_str().is_some_and(|k| k.starts_with("override-")))
                });
            if builds {
                warnings.push(
                    Problem::new(&label, format!("parts.{name}"), format!("charmer does not build parts (plugin {plugin}); the archive holds the folder's files as they are, without what the part would add (such as venv/)"))
                        .hint("for Juju, deploy the archive charmcraft pack builds, or Charmhub's"),
                );
            }
        }
    }
    problems.into_result(warnings)
}

/// `metadata.yaml` from the unified form, as charmcraft's `CharmMetadata.from_charm` maps it:
/// `title` becomes `display-name`; `links.documentation` becomes `docs`, `links.contact`
/// becomes `maintainers` (a list), the other links (`issues`, `source`, `website`) are
/// copied to the top level.
fn metadata_of(project: &Mapping, label: &str, problems: &mut Problems) -> Value {
    let mut metadata = BTreeMap::new();
    for key in METADATA_KEYS {
        let Some(value) = project.get(*key).filter(|v| !v.is_null()) else { continue };
        match *key {
            "title" => {
                metadata.insert("display-name".to_string(), value.clone());
            }
            "links" => {
                let Some(links) = value.as_mapping() else {
                    problems.push(Problem::new(label, "links", "expected a map"));
                    continue;
                };
                for (link, value) in links {
                    let link = yaml_key(link);
                    let (name, value) = match link.as_str() {
                        "documentation" => ("docs".to_string(), value.clone()),
                        "contact" => (
                            "maintainers".to_string(),
                            match value {
                                Value::String(_) => Value::Sequence(vec![value.clone()]),
                                other => other.clone(),
                            },
                        ),
                        "issues" | "source" | "website" => (link.clone(), value.clone()),
                        _ => {
                            problems.push(
                                Problem::new(label, format!("links.{link}"), "unknown link")
                                    .hint("use documentation, contact, issues, source or website"),
                            );
                            continue;
                        }
                    };
                    metadata.insert(name, value);
                }
            }
            _ => {
                metadata.insert((*key).to_string(), value.clone());
            }
        }
    }
    serde_yaml::to_value(metadata).unwrap_or_default()
}

/// The bases a packed charm runs on: with `bases:`, the `run-on` bases of the first entry
/// (a short entry `{name, channel, architectures}` runs where it builds); with `platforms:`,
/// the first platform, its base from `base:` or from a `ubuntu@24.04:amd64`-style name or
/// `build-for`. A project with more than one entry gets a warning: charmcraft packs one
/// archive per entry, charmer one for the first.
fn manifest_bases(
    project: &Mapping,
    label: &str,
    problems: &mut Problems,
    warnings: &mut Vec<Problem>,
) -> Option<Vec<Value>> {
    let mut more_than_one = |key: &str, count: usize, packed: &str| {
        if count > 1 {
            warnings.push(
                Problem::new(label, key, format!("{count} entries; charmer packs one archive, for the first ({packed}), where charmcraft packs one per entry"))
                    .hint("pack the others with charmcraft, or list them in manifest.yaml"),
            );
        }
    };
    if let Some(bases) = project.get("bases").and_then(Value::as_sequence) {
        let Some(first) = bases.first() else {
            problems.push(Problem::new(label, "bases", "is empty"));
            return None;
        };
        let run_on = match first.get("run-on").and_then(Value::as_sequence) {
            Some(run_on) => run_on.iter().collect(),
            None => vec![first],
        };
        let mut out = Vec::new();
        for (i, base) in run_on.into_iter().enumerate() {
            let name = base.get("name").and_then(Value::as_str);
            let channel = base.get("channel").and_then(|c| match c {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let (Some(name), Some(channel)) = (name, channel) else {
                problems.push(
                    Problem::new(label, format!("bases[0].run-on[{i}]"), "needs name and channel")
                        .hint("write {name: ubuntu, channel: '22.04'}"),
                );
                continue;
            };
            let architectures = match base.get("architectures").and_then(Value::as_sequence) {
                Some(archs) => archs.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                None => vec![DEFAULT_ARCH.to_string()],
            };
            out.push(base_value(name, &channel, architectures));
        }
        more_than_one("bases", bases.len(), "bases[0]");
        return Some(out);
    }
    let Some(platforms) = project.get("platforms").and_then(Value::as_mapping) else {
        problems.push(
            Problem::new(label, "platforms", "missing, and no bases either")
                .hint("add platforms: {ubuntu@24.04:amd64: }, or a manifest.yaml"),
        );
        return None;
    };
    let Some((name, platform)) = platforms.iter().next() else {
        problems.push(Problem::new(label, "platforms", "is empty"));
        return None;
    };
    let name = yaml_key(name);
    more_than_one("platforms", platforms.len(), &name);
    // Where the base and architecture are written, most specific first.
    let build_for = platform
        .get("build-for")
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .and_then(Value::as_str)
        .unwrap_or(&name);
    let (base, arch) = match build_for.rsplit_once(':') {
        Some((base, arch)) => (Some(base), arch),
        None => (None, build_for),
    };
    let base = base.or_else(|| project.get("base").and_then(Value::as_str));
    match base.and_then(|b| b.split_once('@')) {
        Some((distro, series)) => Some(vec![base_value(distro, series, vec![arch.to_string()])]),
        None => {
            problems.push(
                Problem::new(label, format!("platforms.{name}"), "names no base")
                    .hint("set base: ubuntu@24.04, or name the platform ubuntu@24.04:amd64"),
            );
            None
        }
    }
}

fn base_value(name: &str, channel: &str, architectures: Vec<String>) -> Value {
    let mut base = Mapping::new();
    base.insert("name".into(), name.into());
    base.insert("channel".into(), channel.into());
    base.insert(
        "architectures".into(),
        Value::Sequence(architectures.into_iter().map(Value::String).collect()),
    );
    Value::Mapping(base)
}

fn generated(value: &Value) -> CharmFile {
    let text = serde_yaml::to_string(value).unwrap_or_default();
    CharmFile { data: text.into_bytes(), executable: false }
}

fn yaml_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A charmcraft sample project from tests/fixtures/juju (see SOURCES.md there).
    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/juju/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn completed(charmcraft_yaml: &str) -> (BTreeMap<String, CharmFile>, Vec<String>) {
        let mut files = BTreeMap::from([(
            FILE.to_string(),
            CharmFile { data: charmcraft_yaml.as_bytes().to_vec(), executable: false },
        )]);
        let warnings = complete("p", &mut files).unwrap();
        (files, warnings.iter().map(ToString::to_string).collect())
    }

    fn yaml(file: &CharmFile) -> Value {
        serde_yaml::from_slice(&file.data).unwrap()
    }

    #[test]
    fn the_unified_form_gives_the_files_charmcraft_writes() {
        let (files, warnings) =
            completed(&fixture("charmcraft__complex-self-contained__charmcraft.yaml"));
        assert!(!files.contains_key(FILE), "charmcraft.yaml is not packed");
        for member in ["metadata", "config", "actions"] {
            let expected: Value = serde_yaml::from_str(&fixture(&format!(
                "charmcraft__complex-self-contained__prime-{member}.yaml"
            )))
            .unwrap();
            assert_eq!(yaml(&files[&format!("{member}.yaml")]), expected, "{member}.yaml");
        }
        let expected: Value = serde_yaml::from_str(&fixture(
            "charmcraft__complex-self-contained__prime-manifest.yaml",
        ))
        .unwrap();
        assert_eq!(yaml(&files["manifest.yaml"])["bases"], expected["bases"]);
        assert_eq!(
            warnings,
            [
                "p/charmcraft.yaml: bases: 2 entries; charmer packs one archive, for the first (bases[0]), where charmcraft packs one per entry (hint: pack the others with charmcraft, or list them in manifest.yaml)",
                "p/charmcraft.yaml: parts.im-not-calling-this-what-you-expect: charmer does not build parts (plugin charm); the archive holds the folder's files as they are, without what the part would add (such as venv/) (hint: for Juju, deploy the archive charmcraft pack builds, or Charmhub's)",
            ]
        );
    }

    #[test]
    fn manifests_follow_bases_and_platforms_as_charmcraft_packs_them() {
        for sample in ["basic", "basic-platforms"] {
            let (files, _) = completed(&fixture(&format!("charmcraft__{sample}__charmcraft.yaml")));
            let expected: Value = serde_yaml::from_str(&fixture(&format!(
                "charmcraft__{sample}__prime-manifest.yaml"
            )))
            .unwrap();
            assert_eq!(yaml(&files["manifest.yaml"])["bases"], expected["bases"], "{sample}");
        }
        // CKF's form: the base in the platform's name.
        let (files, warnings) = completed(&fixture("mlflow-operator__charmcraft.yaml"));
        assert_eq!(
            String::from_utf8_lossy(&files["manifest.yaml"].data),
            "bases:\n- name: ubuntu\n  channel: '24.04'\n  architectures:\n  - amd64\n"
        );
        assert!(!files.contains_key("metadata.yaml"), "not the unified form");
        assert_eq!(
            warnings.len(),
            2,
            "poetry-deps and charm-poetry build; files only copies: {warnings:#?}"
        );
        assert!(
            warnings[1]
                .contains("parts.charm-poetry: charmer does not build parts (plugin poetry)"),
            "{warnings:#?}"
        );
        // build-for names the base and architecture.
        let (files, _) = completed("type: charm\nplatforms:\n  jammy-arm:\n    build-on: [ubuntu@22.04:amd64]\n    build-for: [ubuntu@22.04:arm64]\n");
        assert_eq!(yaml(&files["manifest.yaml"])["bases"][0]["architectures"][0], "arm64");
    }

    #[test]
    fn conflicts_and_unknown_input_are_reported() {
        let mut files = BTreeMap::from([
            (
                FILE.to_string(),
                CharmFile {
                    data: b"type: bundle\nname: x\nconfig: {options: {}}\nplatforms: {amd64: }\n"
                        .to_vec(),
                    executable: false,
                },
            ),
            (
                "metadata.yaml".to_string(),
                CharmFile { data: b"name: x\n".to_vec(), executable: false },
            ),
            (
                "config.yaml".to_string(),
                CharmFile { data: b"options: {}\n".to_vec(), executable: false },
            ),
        ]);
        let problems = complete("p", &mut files).unwrap_err().to_string();
        for expected in [
            "p/charmcraft.yaml: type: \"bundle\" projects are not charms",
            "p/charmcraft.yaml: name: is also set by metadata.yaml",
            "p/charmcraft.yaml: config: is also given as config.yaml",
            "p/charmcraft.yaml: platforms.amd64: names no base",
        ] {
            assert!(problems.contains(expected), "{expected}\n{problems}");
        }
        let (_, warnings) =
            completed("type: charm\nbase: ubuntu@22.04\nplatforms: {amd64: }\nsumary: typo\n");
        assert_eq!(warnings, ["p/charmcraft.yaml: sumary: unknown key, ignored (hint: check its spelling against charmcraft's charmcraft.yaml reference)"]);
    }
}
