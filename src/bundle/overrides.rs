//! Per-application config overrides from the command line: `--config APP.KEY=VALUE` and
//! `--config-file APP=FILE.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{Bundle, OptionSetting, RawValue, Source};
use crate::diag::{Problem, Problems};

/// `--config APP.KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOverride {
    /// Application name.
    pub app: String,
    /// Option name.
    pub key: String,
    /// The value as typed; parsed by the option's type.
    pub value: String,
    /// The value is taken as it is, never as `@FILE` (a value `deploy --reuse-config` gives
    /// again was read from its file the first time).
    pub literal: bool,
}

impl FromStr for ConfigOverride {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = text.split_once('=').and_then(|(target, value)| {
            let (app, key) = target.split_once('.')?;
            (!app.is_empty() && !key.is_empty()).then(|| ConfigOverride {
                app: app.into(),
                key: key.into(),
                value: value.into(),
                literal: false,
            })
        });
        parsed.ok_or_else(|| {
            format!(
                "{text:?} is not APP.KEY=VALUE (e.g. istio-gateway.gateway_service_type=NodePort)"
            )
        })
    }
}

/// `--config-file APP=FILE.yaml`: a YAML map of option → value for one application (or,
/// as `juju config --file` writes it, a map with the application's name as its only key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileOverride {
    /// Application name.
    pub app: String,
    /// The values file.
    pub file: PathBuf,
}

impl FromStr for ConfigFileOverride {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((app, file)) if !app.is_empty() && !file.is_empty() => {
                Ok(ConfigFileOverride { app: app.into(), file: file.into() })
            }
            _ => Err(format!("{text:?} is not APP=FILE (e.g. backend=backend-values.yaml)")),
        }
    }
}

pub(super) fn apply_file(bundle: &mut Bundle, o: &ConfigFileOverride, problems: &mut Problems) {
    let label = o.file.display().to_string();
    let Some(app) = bundle.applications.get_mut(&o.app) else {
        problems.push(unknown_app("--config-file", &o.app, bundle));
        return;
    };
    let text = match std::fs::read_to_string(&o.file) {
        Ok(t) => t,
        Err(e) => return problems.push(Problem::new(&label, "", format!("cannot read: {e}"))),
    };
    let mut values: BTreeMap<String, serde_yaml::Value> =
        match crate::contract::parse_yaml(&label, &text) {
            Ok(v) => v,
            Err(p) => return problems.push(p),
        };
    if values.len() == 1 {
        if let Some(serde_yaml::Value::Mapping(inner)) = values.get(&o.app) {
            match serde_yaml::from_value(serde_yaml::Value::Mapping(inner.clone())) {
                Ok(v) => values = v,
                Err(e) => return problems.push(Problem::new(&label, &o.app, e.to_string())),
            }
        }
    }
    // `include-file://` and `include-base64://` are read relative to the values file, as in
    // bundles and overlays.
    let dir = o.file.parent().unwrap_or(Path::new("."));
    for (key, value) in values.iter_mut() {
        if let Err(p) = super::raw::expand_include(&label, dir, key, value) {
            problems.push(p);
        }
    }
    for (key, value) in values {
        if value.is_null() {
            app.options.remove(&key);
        } else {
            app.options.insert(
                key,
                OptionSetting {
                    value: RawValue::Yaml(value),
                    source: Source::ConfigFile(o.file.clone()),
                },
            );
        }
    }
}

pub(super) fn apply_one(bundle: &mut Bundle, o: &ConfigOverride, problems: &mut Problems) {
    let Some(app) = bundle.applications.get_mut(&o.app) else {
        problems.push(unknown_app("--config", &o.app, bundle));
        return;
    };
    // `KEY=@FILE` takes the value from a file, as `juju config` does.
    let value = match o.value.strip_prefix('@').filter(|_| !o.literal) {
        Some(path) => match super::raw::read_bounded(Path::new(path)) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    return problems.push(
                        Problem::new(
                            "--config",
                            format!("{}.{}", o.app, o.key),
                            format!("{path} is not UTF-8 text"),
                        )
                        .hint("put binary data in a values file with include-base64://"),
                    )
                }
            },
            Err(e) => {
                return problems.push(
                    Problem::new(
                        "--config",
                        format!("{}.{}", o.app, o.key),
                        format!("cannot read {path}: {e}"),
                    )
                    .hint("KEY=@FILE reads the value from FILE (relative to the current folder)"),
                )
            }
        },
        None => o.value.clone(),
    };
    app.options.insert(
        o.key.clone(),
        OptionSetting { value: RawValue::Text(value), source: Source::CommandLine },
    );
}

fn unknown_app(flag: &str, app: &str, bundle: &Bundle) -> Problem {
    let known: Vec<&str> = bundle.applications.keys().map(String::as_str).collect();
    Problem::new(flag, app, format!("the bundle has no application named {app:?}"))
        .hint(format!("applications: {}", known.join(", ")))
}
