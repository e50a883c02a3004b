//! Reading one bundle or overlay file into raw, untyped-option structures, with
//! `include-file://` and `include-base64://` values read relative to the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::{BundleError, RelationEnd};
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
}

/// The largest file `include-file://` may pull in.
const MAX_INCLUDE_BYTES: u64 = 4 << 20;

pub(super) fn read_file(path: &Path, kind: Kind) -> Result<RawFile, BundleError> {
    let label = path.display().to_string();
    let text = crate::contract::read_yaml_file(path).map_err(|e| {
        let hint = match kind {
            Kind::Bundle => "give a bundle.yaml or a folder holding one",
            Kind::Overlay => "check the --overlay path",
        };
        Problems::from(Problem::new(&label, "", format!("cannot read: {e}")).hint(hint))
    })?;
    let shape: FileShape = crate::contract::parse_yaml(&label, &text).map_err(Problems::from)?;
    let mut problems = Problems::default();
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
fn expand_include(
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
    let read = std::fs::metadata(&full).and_then(|m| {
        if m.len() > MAX_INCLUDE_BYTES {
            Err(std::io::Error::other(format!("larger than {MAX_INCLUDE_BYTES} bytes")))
        } else {
            std::fs::read(&full)
        }
    });
    let bytes = read.map_err(|e| {
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
