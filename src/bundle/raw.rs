//! Reading one bundle or overlay file into raw, untyped-option structures, with
//! `include-file://` and `include-base64://` values read relative to the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::{BundleError, NetworkPolicies, RelationEnd};
use crate::diag::{Problem, Problems};

/// A file's role: the bundle itself or an overlay on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Bundle,
    Overlay,
}

/// One file as written.
#[derive(Debug)]
pub(super) struct RawFile {
    pub path: PathBuf,
    pub name: Option<String>,
    /// `None` body: the application is removed (overlay null/empty body).
    pub applications: BTreeMap<String, Option<RawApp>>,
    pub relations: Vec<(usize, [RelationEnd; 2])>,
    /// Juju keys the file sets that charmer does not act on, one warning per key.
    pub warnings: Vec<Problem>,
    /// `network-policies:`, when this file sets it.
    pub network_policies: Option<NetworkPolicies>,
}

/// One application body as written; `None` fields were not set by this file.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawApp {
    pub charm: Option<String>,
    pub version: Option<String>,
    pub channel: Option<String>,
    pub revision: Option<i64>,
    pub constraints: Option<String>,
    pub scale: Option<i64>,
    pub num_units: Option<i64>,
    pub trust: Option<bool>,
    pub options: Option<BTreeMap<String, serde_yaml::Value>>,
    pub resources: Option<BTreeMap<String, serde_yaml::Value>>,
    #[serde(rename = "required-secrets")]
    pub required_secrets: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct FileShape {
    #[serde(default)]
    bundle: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    applications: Option<BTreeMap<String, serde_yaml::Value>>,
    #[serde(default)]
    relations: Option<Vec<serde_yaml::Value>>,
    #[serde(default, rename = "network-policies")]
    network_policies: Option<String>,
}

/// The largest file `include-file://` may pull in.
const MAX_INCLUDE_BYTES: u64 = 4 << 20;

/// What charmer does with one key of Juju's bundle schema.
enum KeyUse {
    /// charmer acts on it.
    Acted,
    /// Juju's, but changes nothing a deploy does (descriptions, GUI annotations): accepted.
    Quiet,
    /// Juju's, and it would change what Juju deploys; charmer does not act on it, so a
    /// warning says so (once per file and key).
    Ignored(&'static str),
}

/// Top-level keys of a bundle or overlay: Juju's `BundleData` (juju/charm bundledata.go),
/// charmer's `name` and `network-policies`, and the Charmhub metadata keys.
const TOP_LEVEL_KEYS: &[(&str, KeyUse)] = &[
    ("bundle", KeyUse::Acted),
    ("name", KeyUse::Acted),
    ("applications", KeyUse::Acted),
    ("relations", KeyUse::Acted),
    ("network-policies", KeyUse::Acted),
    ("description", KeyUse::Quiet),
    ("tags", KeyUse::Quiet),
    ("docs", KeyUse::Quiet),
    ("issues", KeyUse::Quiet),
    ("source", KeyUse::Quiet),
    ("website", KeyUse::Quiet),
    ("machines", KeyUse::Ignored("charmer deploys into Kubernetes and has no machines")),
    (
        "saas",
        KeyUse::Ignored("charmer has no cross-model relations; relate applications of one bundle"),
    ),
    (
        "default-base",
        KeyUse::Ignored("charmer does not choose a charm base; the charm's images decide"),
    ),
    ("series", KeyUse::Ignored("charmer does not choose a charm base; the charm's images decide")),
];

/// Keys of one application: Juju's `ApplicationSpec` plus charmer's `version` and
/// `required-secrets`.
const APPLICATION_KEYS: &[(&str, KeyUse)] = &[
    ("charm", KeyUse::Acted),
    ("scale", KeyUse::Acted),
    ("num_units", KeyUse::Acted),
    ("options", KeyUse::Acted),
    ("resources", KeyUse::Acted),
    ("trust", KeyUse::Acted),
    ("version", KeyUse::Acted),
    ("required-secrets", KeyUse::Acted),
    ("annotations", KeyUse::Quiet),
    ("channel", KeyUse::Acted),
    ("revision", KeyUse::Acted),
    ("base", KeyUse::Ignored("charmer does not choose a charm base; the charm's images decide")),
    ("series", KeyUse::Ignored("charmer does not choose a charm base; the charm's images decide")),
    ("constraints", KeyUse::Acted),
    ("storage", KeyUse::Ignored("charmer provisions no Juju storage; size volumes with the charm's options")),
    ("devices", KeyUse::Ignored("charmer allocates no Juju devices")),
    ("bindings", KeyUse::Ignored("charmer has no network spaces")),
    ("expose", KeyUse::Ignored("charmer does not expose applications; use the charm's service options (e.g. service_type)")),
    ("exposed-endpoints", KeyUse::Ignored("charmer does not expose applications; use the charm's service options (e.g. service_type)")),
    ("to", KeyUse::Ignored("charmer does not place pods; use the charm's options for node selection")),
    ("placement", KeyUse::Ignored("charmer does not place pods; use the charm's options for node selection")),
    ("offers", KeyUse::Ignored("charmer has no cross-model offers")),
    ("plan", KeyUse::Ignored("charmer has no Juju plans")),
];

/// Checks the keys of one mapping against a schema: unknown keys are problems with a
/// did-you-mean hint, keys starting with `_` (CKF's `_github_repo_name`) are skipped, and
/// the Juju keys charmer ignores are returned with why.
fn check_keys<'a>(
    label: &str,
    prefix: &str,
    map: &'a serde_yaml::Mapping,
    schema: &[(&str, KeyUse)],
    problems: &mut Problems,
) -> Vec<(&'a str, &'static str)> {
    let mut ignored = Vec::new();
    for key in map.keys() {
        let Some(key) = key.as_str() else {
            problems.push(Problem::new(label, prefix, format!("key {key:?} is not text")));
            continue;
        };
        if key.starts_with('_') {
            continue;
        }
        match schema.iter().find(|(k, _)| *k == key) {
            Some((_, KeyUse::Ignored(why))) => ignored.push((key, *why)),
            Some(_) => {}
            None => {
                let known: Vec<&str> = schema.iter().map(|(k, _)| *k).collect();
                let full =
                    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
                let hint = match (crate::diag::closest(key, &known), prefix.is_empty()) {
                    (_, true) if key == "required-secrets" => {
                        "required-secrets belongs to an application: applications.<app>.required-secrets".to_string()
                    }
                    (Some(c), _) => format!("did you mean {c:?}?"),
                    (None, _) => format!("known keys: {}", known.join(", ")),
                };
                problems.push(Problem::new(label, full, format!("unknown key {key:?}")).hint(hint));
            }
        }
    }
    ignored
}

pub(super) fn read_file(path: &Path, kind: Kind) -> Result<RawFile, BundleError> {
    let label = path.display().to_string();
    let text = crate::contract::read_yaml_file(path).map_err(|e| {
        let hint = match kind {
            Kind::Bundle => "give a bundle.yaml or a folder holding one",
            Kind::Overlay => "check the --overlay path",
        };
        Problems::from(Problem::new(&label, "", format!("cannot read: {e}")).hint(hint))
    })?;
    // Read as a plain value first: its mappings refuse duplicate keys (a second definition
    // of an application would otherwise silently replace the first).
    let value: serde_yaml::Value =
        crate::contract::parse_yaml(&label, &text).map_err(Problems::from)?;
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    if let Some(top) = value.as_mapping() {
        for (key, why) in check_keys(&label, "", top, TOP_LEVEL_KEYS, &mut problems) {
            warnings.push(Problem::new(&label, key, format!("ignored: {why}")));
        }
    }
    let shape: FileShape = serde_yaml::from_value(value)
        .map_err(|e| Problems::from(crate::contract::yaml_problem(&label, &e)))?;
    if let Some(b) = &shape.bundle {
        if b != "kubernetes" {
            problems.push(
                Problem::new(&label, "bundle", format!("{b:?} bundles are not supported"))
                    .hint("charmer deploys Kubernetes bundles: bundle: kubernetes"),
            );
        }
    }
    if kind == Kind::Bundle && shape.applications.as_ref().is_none_or(BTreeMap::is_empty) {
        problems.push(Problem::new(&label, "applications", "the bundle has no applications"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut applications = BTreeMap::new();
    // Ignored keys are reported once per file and key, naming the applications that set them.
    let mut ignored: BTreeMap<(String, &str), Vec<String>> = BTreeMap::new();
    for (app, body) in shape.applications.unwrap_or_default() {
        let key = format!("applications.{app}");
        if !crate::contract::is_valid_name(&app) {
            problems.push(
                Problem::new(&label, &key, format!("{app:?} is not a valid application name"))
                    .hint("use lowercase letters, digits and '-'"),
            );
        }
        let removed =
            body.is_null() || body.as_mapping().is_some_and(serde_yaml::Mapping::is_empty);
        if removed {
            applications.insert(app, None);
            continue;
        }
        if let Some(map) = body.as_mapping() {
            for (field, why) in check_keys(&label, &key, map, APPLICATION_KEYS, &mut problems) {
                ignored.entry((field.to_string(), why)).or_default().push(app.clone());
            }
            if map.contains_key("scale") && map.contains_key("num_units") {
                problems.push(
                    Problem::new(
                        &label,
                        format!("{key}.num_units"),
                        "both scale and num_units are set",
                    )
                    .hint("num_units is Juju's alias of scale; keep one"),
                );
            }
        }
        match serde_yaml::from_value::<RawApp>(body) {
            Ok(mut raw) => {
                if let Some(options) = &mut raw.options {
                    for (option, value) in options.iter_mut() {
                        if let Err(p) =
                            expand_include(&label, dir, &format!("{key}.options.{option}"), value)
                        {
                            problems.push(p);
                        }
                    }
                }
                applications.insert(app, Some(raw));
            }
            Err(e) => problems.push(Problem::new(&label, &key, e.to_string())),
        }
    }
    for ((field, why), apps) in ignored {
        let on = if apps.len() <= 3 {
            apps.join(", ")
        } else {
            format!("{} and {} more", apps[..3].join(", "), apps.len() - 3)
        };
        warnings.push(Problem::new(
            &label,
            format!("applications.*.{field}"),
            format!("ignored (set on {on}): {why}"),
        ));
    }
    let network_policies = shape.network_policies.as_deref().and_then(|mode| {
        mode.parse::<NetworkPolicies>()
            .map_err(|e| {
                problems.push(
                    Problem::new(&label, "network-policies", e)
                        .hint("write network-policies: relations (or none, the default)"),
                )
            })
            .ok()
    });
    let mut relations = Vec::new();
    for (index, relation) in shape.relations.unwrap_or_default().into_iter().enumerate() {
        match parse_relation(&relation) {
            Some(ends) => relations.push((index, ends)),
            None => problems.push(
                Problem::new(
                    &label,
                    format!("relations[{index}]"),
                    "a relation is a pair of \"app\" or \"app:endpoint\"",
                )
                .hint("write it as [backend:database, mongodb:database]"),
            ),
        }
    }
    problems
        .into_result(RawFile {
            path: path.to_path_buf(),
            name: shape.name,
            applications,
            relations,
            warnings,
            network_policies,
        })
        .map_err(BundleError::from)
}

fn parse_relation(value: &serde_yaml::Value) -> Option<[RelationEnd; 2]> {
    let list = value.as_sequence()?;
    let ends: Vec<RelationEnd> = list
        .iter()
        .map(|v| {
            let text = v.as_str()?;
            let (app, endpoint) = match text.split_once(':') {
                Some((a, e)) if !e.is_empty() => (a, Some(e.to_string())),
                Some(_) => return None,
                None => (text, None),
            };
            (!app.is_empty()).then(|| RelationEnd { app: app.to_string(), endpoint })
        })
        .collect::<Option<_>>()?;
    <[RelationEnd; 2]>::try_from(ends).ok()
}

/// Replaces an `include-file://path` or `include-base64://path` string value by the file's
/// content (as text, or base64-encoded), the path being relative to the bundle or overlay.
pub(super) fn expand_include(
    label: &str,
    dir: &Path,
    key: &str,
    value: &mut serde_yaml::Value,
) -> Result<(), Problem> {
    let Some(text) = value.as_str() else { return Ok(()) };
    let (path, encode) = if let Some(p) = text.strip_prefix("include-file://") {
        (p, false)
    } else if let Some(p) = text.strip_prefix("include-base64://") {
        (p, true)
    } else {
        return Ok(());
    };
    let full = dir.join(path);
    let bytes = read_bounded(&full).map_err(|e| {
        Problem::new(label, key, format!("cannot include {}: {e}", full.display()))
            .hint("paths are relative to the file that holds them")
    })?;
    *value = serde_yaml::Value::String(if encode {
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    } else {
        String::from_utf8(bytes).map_err(|_| {
            Problem::new(label, key, format!("{} is not UTF-8 text", full.display()))
                .hint("use include-base64:// for binary files")
        })?
    });
    Ok(())
}

/// A file's bytes, refusing files larger than an include may be.
pub(super) fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::contract::read_bounded(path, MAX_INCLUDE_BYTES, "an included file")
}
