//! Merging a bundle file or overlay into the [`Bundle`] being built, with Juju's overlay
//! rules: a null or empty application body removes the application and every relation
//! naming it; other fields merge only where the overlay sets them (scalars and lists are
//! replaced, maps merge key by key, an empty map clears); `options: {foo: null}` removes
//! `foo` so the charm default applies again; relations are appended.

use std::collections::BTreeMap;
use std::path::Path;

use super::raw::{RawApp, RawFile};
use super::{AppSpec, Bundle, CharmRef, OptionSetting, RawValue, RelationSpec, Source};
use crate::diag::{Problem, Problems};

pub(super) fn apply(bundle: &mut Bundle, file: RawFile, source: &Source, problems: &mut Problems) {
    let label = file.path.display().to_string();
    let dir = file.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    for (name, body) in file.applications {
        let key = format!("applications.{name}");
        let Some(raw) = body else {
            bundle.applications.remove(&name);
            bundle.relations.retain(|r| r.ends.iter().all(|end| end.app != name));
            continue;
        };
        let existing = bundle.applications.remove(&name);
        let mut app = match existing {
            Some(app) => app,
            None => match &raw.charm {
                Some(_) => AppSpec {
                    charm: CharmRef::Name(String::new()),
                    version: None,
                    channel: None,
                    revision: None,
                    constraints: None,
                    scale: 1,
                    trust: false,
                    options: BTreeMap::new(),
                    resources: BTreeMap::new(),
                    required_secrets: Vec::new(),
                    file: file.path.clone(),
                },
                None => {
                    problems.push(
                        Problem::new(&label, format!("{key}.charm"), "missing")
                            .hint("name the charm this application runs: charm: <name>"),
                    );
                    continue;
                }
            },
        };
        merge_app(&mut app, raw, &dir, &label, &key, source, problems);
        bundle.applications.insert(name, app);
    }
    for (index, ends) in file.relations {
        let spec = RelationSpec { ends, file: file.path.clone(), index };
        let same = |r: &RelationSpec| {
            r.ends == spec.ends || (r.ends[0] == spec.ends[1] && r.ends[1] == spec.ends[0])
        };
        if !bundle.relations.iter().any(same) {
            bundle.relations.push(spec);
        }
    }
}

fn merge_app(
    app: &mut AppSpec,
    raw: RawApp,
    dir: &Path,
    label: &str,
    key: &str,
    source: &Source,
    problems: &mut Problems,
) {
    if let Some(charm) = raw.charm {
        app.charm = if charm.starts_with('.') || charm.starts_with('/') {
            CharmRef::Path(dir.join(charm))
        } else {
            CharmRef::Name(charm.strip_prefix("ch:").unwrap_or(&charm).to_string())
        };
        app.file = Path::new(label).to_path_buf();
    }
    if let Some(version) = raw.version {
        match semver::VersionReq::parse(&version) {
            Ok(req) => app.version = Some(req),
            Err(e) => problems.push(
                Problem::new(
                    label,
                    format!("{key}.version"),
                    format!("{version:?} is not a semver requirement: {e}"),
                )
                .hint("write e.g. \"^1.2\" or \">=1.0, <2\""),
            ),
        }
    }
    if let Some(channel) = raw.channel {
        app.channel = Some(channel);
    }
    if let Some(revision) = raw.revision {
        match u64::try_from(revision) {
            Ok(revision) => app.revision = Some(revision),
            Err(_) => problems.push(
                Problem::new(
                    label,
                    format!("{key}.revision"),
                    format!("{revision} is not a revision"),
                )
                .hint("a Charmhub revision is a whole number, 0 or more"),
            ),
        }
    }
    if let Some(constraints) = raw.constraints {
        app.constraints = Some(constraints);
    }
    if let Some(scale) = raw.scale.or(raw.num_units) {
        match u32::try_from(scale) {
            Ok(scale) => app.scale = scale,
            Err(_) => problems.push(
                Problem::new(
                    label,
                    format!("{key}.scale"),
                    format!("{scale} is not a valid scale"),
                )
                .hint("scale is a whole number, 0 or more"),
            ),
        }
    }
    if let Some(trust) = raw.trust {
        app.trust = trust;
    }
    if let Some(options) = raw.options {
        if options.is_empty() {
            app.options.clear();
        }
        for (name, value) in options {
            if value.is_null() {
                app.options.remove(&name);
            } else {
                app.options.insert(
                    name,
                    OptionSetting { value: RawValue::Yaml(value), source: source.clone() },
                );
            }
        }
    }
    if let Some(resources) = raw.resources {
        if resources.is_empty() {
            app.resources.clear();
        }
        for (name, value) in resources {
            match value {
                serde_yaml::Value::Null => {
                    app.resources.remove(&name);
                }
                serde_yaml::Value::String(s) => {
                    app.resources.insert(name, s);
                }
                serde_yaml::Value::Number(n) => {
                    app.resources.insert(name, n.to_string());
                }
                _ => problems.push(Problem::new(
                    label,
                    format!("{key}.resources.{name}"),
                    "expected an image reference or a revision number",
                )),
            }
        }
    }
    if let Some(secrets) = raw.required_secrets {
        app.required_secrets = secrets;
    }
}
