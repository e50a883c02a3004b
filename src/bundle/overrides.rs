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
    let text = match crate::contract::read_yaml_file(&o.file) {
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

#[cfg(test)]
mod tests {
    use super::super::overlay::tests::{folder, input, option, text};
    use super::*;
    use crate::bundle::Bundle;

    fn with_overrides(
        dir: &tempfile::TempDir,
        overlays: &[&str],
        config_files: &[&str],
        config: &[&str],
    ) -> (Bundle, Problems) {
        let mut input = input(dir, overlays);
        input.config_files = config_files
            .iter()
            .map(|c| {
                let o: ConfigFileOverride = c.parse().unwrap();
                ConfigFileOverride { file: dir.path().join(o.file), ..o }
            })
            .collect();
        input.config = config.iter().map(|c| c.parse().unwrap()).collect();
        Bundle::load_partial(&input).unwrap()
    }

    #[test]
    fn config_splits_at_the_first_dot_and_the_first_equals_sign() {
        let parsed: ConfigOverride = "istio-gateway.gateway_service_type=NodePort".parse().unwrap();
        assert_eq!(
            (parsed.app.as_str(), parsed.key.as_str(), parsed.value.as_str()),
            ("istio-gateway", "gateway_service_type", "NodePort")
        );
        let parsed: ConfigOverride = "backend.url=http://x/?a=b".parse().unwrap();
        assert_eq!((parsed.key.as_str(), parsed.value.as_str()), ("url", "http://x/?a=b"));
        let empty: ConfigOverride = "backend.title=".parse().unwrap();
        assert_eq!(empty.value, "");
    }

    #[test]
    fn malformed_overrides_are_rejected_with_the_expected_form() {
        for bad in ["backend", "backend.port", "backend=1", ".port=1", "backend.=1"] {
            let err = bad.parse::<ConfigOverride>().unwrap_err();
            assert!(err.starts_with(&format!("{bad:?} is not APP.KEY=VALUE")), "{err}");
        }
        let parsed: ConfigFileOverride = "backend=values/backend.yaml".parse().unwrap();
        assert_eq!(parsed.file, PathBuf::from("values/backend.yaml"));
        for bad in ["backend", "=values.yaml", "backend="] {
            let err = bad.parse::<ConfigFileOverride>().unwrap_err();
            assert!(err.starts_with(&format!("{bad:?} is not APP=FILE")), "{err}");
        }
    }

    #[test]
    fn later_sources_win_bundle_then_overlays_in_order_then_config_files_then_config() {
        let dir = folder(&[
            ("a.yaml", "applications:\n  frontend: {options: {theme: light, size: s, lang: de}}\n"),
            ("b.yaml", "applications:\n  frontend: {options: {theme: blue, size: m}}\n"),
            ("values.yaml", "size: l\nlang: en\n"),
        ]);
        let (bundle, problems) = with_overrides(
            &dir,
            &["a.yaml", "b.yaml"],
            &["frontend=values.yaml"],
            &["frontend.lang=fr"],
        );
        assert!(problems.is_empty(), "{problems}");
        let at = |f: &str| dir.path().join(f);
        assert_eq!(
            option(&bundle, "frontend", "title"),
            Some((text("Shop"), Source::Bundle(at("bundle.yaml"))))
        );
        assert_eq!(
            option(&bundle, "frontend", "theme"),
            Some((text("blue"), Source::Overlay(at("b.yaml"))))
        );
        assert_eq!(
            option(&bundle, "frontend", "size"),
            Some((text("l"), Source::ConfigFile(at("values.yaml"))))
        );
        assert_eq!(
            option(&bundle, "frontend", "lang"),
            Some((RawValue::Text("fr".into()), Source::CommandLine))
        );
        let read = ["a.yaml", "b.yaml", "bundle.yaml", "values.yaml"].map(at);
        assert_eq!(bundle.files_read, read);
    }

    #[test]
    fn a_config_file_may_be_keyed_by_the_application_and_null_restores_the_default() {
        let dir = folder(&[("values.yaml", "frontend:\n  theme: null\n  title: Big Shop\n")]);
        let (bundle, problems) = with_overrides(&dir, &[], &["frontend=values.yaml"], &[]);
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(option(&bundle, "frontend", "theme"), None);
        let title = option(&bundle, "frontend", "title");
        assert_eq!(
            title,
            Some((text("Big Shop"), Source::ConfigFile(dir.path().join("values.yaml"))))
        );
        assert!(option(&bundle, "frontend", "frontend").is_none());
    }

    #[test]
    fn overrides_for_unknown_applications_name_the_flag_and_the_applications() {
        let dir = folder(&[("values.yaml", "size: 1\n")]);
        let (_, problems) = with_overrides(&dir, &[], &["cache=values.yaml"], &["cache.size=1"]);
        let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        let hint = "(hint: applications: backend, frontend, mongodb)";
        assert_eq!(
            lines,
            [
                format!(
                    "--config-file: cache: the bundle has no application named \"cache\" {hint}"
                ),
                format!("--config: cache: the bundle has no application named \"cache\" {hint}"),
            ]
        );
    }

    #[test]
    fn an_unreadable_or_malformed_config_file_is_reported_by_name() {
        let dir = folder(&[("list.yaml", "- size\n- lang\n")]);
        let (_, problems) =
            with_overrides(&dir, &[], &["frontend=missing.yaml", "backend=list.yaml"], &[]);
        let files: Vec<&str> = problems.0.iter().map(|p| p.file.as_str()).collect();
        let (missing, list) = (dir.path().join("missing.yaml"), dir.path().join("list.yaml"));
        assert_eq!(files, [missing.display().to_string(), list.display().to_string()]);
        assert!(problems.0[0].message.starts_with("cannot read: "), "{problems}");
    }
}
