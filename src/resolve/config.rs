//! Effective config of one application: charm defaults overlaid by the bundle's settings
//! (which already carry overlays and command-line overrides in merge order), each
//! type-checked against the charm's `config.yaml`.

use std::collections::BTreeMap;

use super::model::Setting;
use crate::bundle::{AppSpec, RawValue, Source};
use crate::charm::Charm;
use crate::diag::{Problem, Problems};

pub(super) fn effective(
    app: &str,
    spec: &AppSpec,
    charm: &Charm,
    problems: &mut Problems,
) -> BTreeMap<String, Setting> {
    let mut config: BTreeMap<String, Setting> = charm
        .config
        .options
        .iter()
        .filter_map(|(name, o)| {
            o.default
                .clone()
                .map(|value| (name.clone(), Setting { value, source: Source::Default }))
        })
        .collect();
    for (name, setting) in &spec.options {
        let file = setting.source.file_label();
        let key = format!("applications.{app}.options.{name}");
        let Some(option) = charm.config.options.get(name) else {
            let known: Vec<&str> = charm.config.options.keys().map(String::as_str).collect();
            // Juju charms set images as resources; an option of that name is a habit from them.
            let resource = charm
                .metadata
                .resources
                .keys()
                .find(|r| r.replace('_', "-") == name.replace('_', "-"));
            let helm_image = name == "image"
                && matches!(&setting.value, RawValue::Yaml(serde_yaml::Value::Mapping(_)));
            let from_file = matches!(setting.source, Source::ConfigFile(_));
            let resources: Vec<&str> =
                charm.metadata.resources.keys().map(String::as_str).collect();
            let hint = match (resource, crate::diag::closest(name, &known)) {
                // A Helm values file given to --config-file: point to where its parts go.
                _ if from_file && name == "applications" => format!(
                    "{file} looks like an overlay (it has applications:); give it with --overlay {file}, not --config-file"
                ),
                _ if helm_image => format!(
                    "this looks like a Helm values file; charmer sets images as resources: in an overlay, applications.{app}.resources.<resource>: <image reference> (charm {} resources: {})",
                    charm.name(),
                    resources.join(", ")
                ),
                (Some(r), _) => format!(
                    "{r} is a resource of charm {}, not an option: set it under \
                     applications.{app}.resources.{r} (an image reference)",
                    charm.name()
                ),
                (None, Some(c)) => format!(
                    "did you mean {c:?}? (charm {} options: {})",
                    charm.name(),
                    known.join(", ")
                ),
                (None, None) => {
                    format!("charm {} options: {}", charm.name(), known.join(", "))
                }
            };
            problems.push(Problem::new(file, key, format!("unknown option {name:?}")).hint(hint));
            continue;
        };
        let typed = match &setting.value {
            RawValue::Yaml(v) => option.check_yaml(v),
            RawValue::Text(t) => option.parse_str(t).map(Some),
        };
        match typed {
            Ok(Some(value)) => {
                config.insert(name.clone(), Setting { value, source: setting.source.clone() });
            }
            Ok(None) => {}
            Err(message) => {
                let problem =
                    Problem::new(file, key, format!("{message} (option type {})", option.kind));
                let rules = option.constraints.describe();
                problems.push(match rules.is_empty() {
                    true => problem,
                    false => problem.hint(format!("{name}: {}", rules.join(", "))),
                });
            }
        }
    }
    for cross in charm.config.cross_check(value_of(&config)).into_iter().filter(|c| !c.ignored) {
        let file = config.get(&cross.option).map(|s| source_file(charm, &s.source));
        problems.push(Problem::new(
            file.unwrap_or_default(),
            format!("applications.{app}.options.{}", cross.option),
            cross.message,
        ));
    }
    config
}

/// Options a user set (not charm defaults) that do not take effect under the values of the
/// options they depend on (`only-when`): warnings, one per option.
pub(super) fn ignored(app: &super::Application) -> Vec<Problem> {
    app.charm
        .config
        .cross_check(value_of(&app.config))
        .into_iter()
        .filter(|c| c.ignored)
        .filter_map(|c| {
            let setting = app.config.get(&c.option).filter(|s| s.source != Source::Default)?;
            Some(Problem::new(
                source_file(&app.charm, &setting.source),
                format!("applications.{}.options.{}", app.name, c.option),
                c.message,
            ))
        })
        .collect()
}

/// The options that do not take effect under the others' values (`only-when`).
pub(super) fn inactive(charm: &Charm, config: &BTreeMap<String, Setting>) -> Vec<String> {
    let found = charm.config.cross_check(value_of(config));
    found.into_iter().filter(|c| c.ignored).map(|c| c.option).collect()
}

/// An option's value and where it was set, for [`crate::charm::ConfigSchema::cross_check`].
fn value_of<'a>(
    config: &'a BTreeMap<String, Setting>,
) -> impl Fn(&str) -> Option<(&'a crate::charm::ConfigValue, String)> {
    move |name: &str| config.get(name).map(|s| (&s.value, s.source.to_string()))
}

/// The file to name for a value: a charm default is the charm's `config.yaml`.
fn source_file(charm: &Charm, source: &Source) -> String {
    match source {
        Source::Default => format!("{}/config.yaml", charm.origin.path().display()),
        other => other.file_label(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::bundle::OptionSetting;
    use crate::charm::ConfigValue;
    use crate::resolve::testing::{app_spec, charm, lines};

    const CONFIG: &str = "options:\n  port: {type: int, default: 8080}\n  \
                          title: {type: string, default: Shop}\n  theme: {type: string}\n  \
                          debug: {type: boolean, default: false}\n  \
                          mode: {type: string, default: fast, enum: [fast, safe]}\n";

    /// The effective config of application `backend` with `options` set, and the problems.
    fn effective_with(
        options: &[(&str, RawValue, Source)],
    ) -> (BTreeMap<String, Setting>, Problems) {
        let mut spec = app_spec("backend");
        for (name, value, source) in options {
            let setting = OptionSetting { value: value.clone(), source: source.clone() };
            spec.options.insert(name.to_string(), setting);
        }
        let mut problems = Problems::default();
        let config = effective("backend", &spec, &charm("backend", "", CONFIG), &mut problems);
        (config, problems)
    }

    fn yaml(text: &str) -> RawValue {
        RawValue::Yaml(serde_yaml::from_str(text).unwrap())
    }

    fn overlay() -> Source {
        Source::Overlay(PathBuf::from("overlays/prod.yaml"))
    }

    #[test]
    fn defaults_fill_every_option_left_unset_and_say_so() {
        let (config, problems) = effective_with(&[]);
        assert!(problems.is_empty(), "{problems}");
        let shown: Vec<String> =
            config.iter().map(|(k, s)| format!("{k}={} ({})", s.value, s.source)).collect();
        // theme has no default, so it has no value at all.
        assert_eq!(
            shown,
            [
                "debug=false (charm default)",
                "mode=\"fast\" (charm default)",
                "port=8080 (charm default)",
                "title=\"Shop\" (charm default)"
            ]
        );
    }

    #[test]
    fn each_value_set_keeps_the_source_that_set_it() {
        let (config, problems) = effective_with(&[
            ("port", yaml("9090"), overlay()),
            ("theme", yaml("dark"), Source::ConfigFile(PathBuf::from("values.yaml"))),
            ("title", RawValue::Text("Big Shop".into()), Source::CommandLine),
            ("mode", yaml("safe"), Source::Bundle(PathBuf::from("bundle.yaml"))),
        ]);
        assert!(problems.is_empty(), "{problems}");
        let got = |k: &str| (config[k].value.clone(), config[k].source.to_string());
        assert_eq!(got("port"), (ConfigValue::Int(9090), "overlay overlays/prod.yaml".into()));
        assert_eq!(
            got("theme"),
            (ConfigValue::String("dark".into()), "config file values.yaml".into())
        );
        assert_eq!(got("title"), (ConfigValue::String("Big Shop".into()), "--config".into()));
        assert_eq!(got("mode"), (ConfigValue::String("safe".into()), "bundle bundle.yaml".into()));
        assert_eq!(got("debug"), (ConfigValue::Boolean(false), "charm default".into()));
    }

    #[test]
    fn command_line_text_is_parsed_by_the_options_type() {
        let (config, problems) = effective_with(&[
            ("debug", RawValue::Text("True".into()), Source::CommandLine),
            ("port", RawValue::Text("80a".into()), Source::CommandLine),
        ]);
        assert_eq!(config["debug"].value, ConfigValue::Boolean(true));
        assert_eq!(
            lines(&problems),
            ["--config: applications.backend.options.port: expected an int (base 10), got \
              \"80a\" (option type int)"]
        );
        // The bad value does not replace the default.
        assert_eq!(
            config["port"],
            Setting { value: ConfigValue::Int(8080), source: Source::Default }
        );
    }

    #[test]
    fn wrong_types_and_values_name_the_file_that_set_them() {
        let (_, problems) = effective_with(&[
            ("port", yaml("'8080'"), overlay()),
            ("mode", yaml("slow"), Source::Bundle(PathBuf::from("bundle.yaml"))),
        ]);
        let lines = lines(&problems);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("bundle.yaml: applications.backend.options.mode: "),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("allowed values: \"fast\", \"safe\""), "{}", lines[0]);
        assert!(
            lines[1].starts_with("overlays/prod.yaml: applications.backend.options.port: "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("(option type int)"), "{}", lines[1]);
    }

    #[test]
    fn unknown_options_are_reported_with_the_closest_name_when_there_is_one() {
        let (config, problems) = effective_with(&[
            ("prot", yaml("1"), overlay()),
            ("colour", yaml("red"), Source::CommandLine),
        ]);
        assert!(!config.contains_key("prot"));
        assert_eq!(
            lines(&problems),
            [
                "--config: applications.backend.options.colour: unknown option \"colour\" (hint: \
                 charm backend options: debug, mode, port, theme, title)",
                "overlays/prod.yaml: applications.backend.options.prot: unknown option \"prot\" \
                 (hint: did you mean \"port\"? (charm backend options: debug, mode, port, theme, \
                 title))",
            ]
        );
    }

    #[test]
    fn constraints_name_the_source_of_the_value_and_bounds_between_options_are_checked() {
        let config = "options:\n  port: {type: int, default: 8080, format: port}\n  \
                      min_scale: {type: int, default: 0, minimum: 0}\n  \
                      max_scale: {type: int, default: 3, at-least: min_scale}\n";
        let mut spec = app_spec("serving");
        for (name, value, source) in [
            ("port", RawValue::Text("70000".into()), Source::CommandLine),
            ("min_scale", yaml("5"), overlay()),
        ] {
            spec.options.insert(name.into(), OptionSetting { value, source });
        }
        let mut problems = Problems::default();
        effective("serving", &spec, &charm("serving", "", config), &mut problems);
        assert_eq!(
            lines(&problems),
            [
                "--config: applications.serving.options.port: 70000 is not a port (1-65535) \
                 (option type int) (hint: port: format port)",
                "charms/serving/config.yaml: applications.serving.options.max_scale: max_scale=3 \
                 is below min_scale=5 (set by overlay overlays/prod.yaml); max_scale must be at \
                 least min_scale",
            ]
        );
    }

    #[test]
    fn an_option_named_like_a_resource_points_to_resources() {
        let metadata =
            "resources:\n  proxy-image: {type: oci-image, upstream-source: \"nginx:1\"}\n";
        let mut spec = app_spec("backend");
        let setting = OptionSetting { value: yaml("nginx:2"), source: overlay() };
        spec.options.insert("proxy_image".into(), setting);
        let mut problems = Problems::default();
        effective("backend", &spec, &charm("backend", metadata, CONFIG), &mut problems);
        assert_eq!(
            lines(&problems),
            ["overlays/prod.yaml: applications.backend.options.proxy_image: unknown option \
              \"proxy_image\" (hint: proxy-image is a resource of charm backend, not an option: \
              set it under applications.backend.resources.proxy-image (an image reference))"]
        );
    }
}
