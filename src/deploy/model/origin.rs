//! Which option of an application produced a value the API server refused: rendered objects
//! do not say where their values came from, so the value at the refused field is compared with
//! the application's recorded option values. A match names the option and where it was set;
//! without one, the options set explicitly (not charm defaults) are named as candidates, worded
//! as such. No I/O.

use serde_json::Value;

use super::plan::PlanApp;
use super::settings::RecordedSetting;
use crate::bundle::Source;

/// Where a refused value most likely came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// These options' values are the refused value (or are part of it), with where each was
    /// set.
    Options(Vec<(String, Source)>),
    /// No option's value matches; these options were set explicitly.
    Candidates(Vec<(String, Source)>),
    /// No option's value matches and none was set explicitly: the charm's templates made it.
    Templates,
}

impl Origin {
    /// The options of `app` whose values produced `value` (the refused field's rendered value,
    /// when the field could be found in the object).
    pub(crate) fn of(app: &PlanApp, value: Option<&Value>) -> Origin {
        let text = value.and_then(scalar_text);
        let matching: Vec<(String, Source)> = app
            .config
            .iter()
            .filter(|(_, setting)| text.as_deref().is_some_and(|t| produced(setting, t)))
            .map(|(name, setting)| (name.clone(), setting.source.clone()))
            .collect();
        // An explicit value that matches beats a default that happens to be equal.
        let explicit: Vec<(String, Source)> =
            matching.iter().filter(|(_, s)| *s != Source::Default).cloned().collect();
        match (explicit.is_empty(), matching.is_empty()) {
            (false, _) => return Origin::Options(explicit),
            (true, false) => return Origin::Options(matching),
            _ => {}
        }
        let set: Vec<(String, Source)> = app
            .config
            .iter()
            .filter(|(_, s)| s.source != Source::Default)
            .map(|(name, s)| (name.clone(), s.source.clone()))
            .collect();
        if set.is_empty() {
            Origin::Templates
        } else {
            Origin::Candidates(set)
        }
    }

    /// The option to name in a way forward, when exactly one produced the value.
    pub(crate) fn option(&self, app: &str) -> Option<String> {
        match self {
            Origin::Options(options) if options.len() == 1 => {
                Some(format!("{app}.{}", options[0].0))
            }
            _ => None,
        }
    }

    /// How the origin reads after a refusal, e.g. `the value of option web.hostname (set by
    /// --config)`.
    pub(crate) fn describe(&self, app: &str) -> String {
        let list = |options: &[(String, Source)]| {
            options
                .iter()
                .map(|(name, source)| format!("{app}.{name} (set by {source})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Origin::Options(options) if options.len() == 1 => {
                format!("the value of option {}", list(options))
            }
            Origin::Options(options) => format!("the value of options {}", list(options)),
            Origin::Candidates(options) => format!(
                "not traceable to one option; options of {app} set explicitly: {}",
                list(options)
            ),
            Origin::Templates => {
                format!("made by the charm's templates (no option of {app} was set explicitly)")
            }
        }
    }
}

/// Whether a setting's value is `text` or a part of it (a host name inside a URL), ignoring
/// values too short to say (`1`, `on`) and empty ones.
fn produced(setting: &RecordedSetting, text: &str) -> bool {
    let Some(value) = scalar_text(&setting.value) else { return false };
    value == text || (value.chars().count() >= 4 && text.contains(&value))
}

/// A scalar as text (`2Gi`, `3`, `true`); objects and lists are no single value.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value at an API server field path (`spec.hosts[0]`,
/// `spec.volumeClaimTemplates[0].spec.resources.requests.storage`, `metadata.labels[a/b]`) of
/// an object, when the path leads to one.
pub(crate) fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut here = object;
    for part in path.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            here = here.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let index = index.strip_suffix(']')?;
            here = match index.parse::<usize>() {
                Ok(n) => here.get(n)?,
                Err(_) => here.get(index)?,
            };
        }
    }
    Some(here)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    fn app(settings: &[(&str, Value, Source)]) -> PlanApp {
        let mut app = PlanApp::new("web", "web", "1.0.0");
        for (name, value, source) in settings {
            let setting =
                RecordedSetting { value: value.clone(), source: source.clone(), secret: false };
            app.config.insert(name.to_string(), setting);
        }
        app
    }

    #[test]
    fn the_option_whose_value_was_refused_is_named_with_where_it_was_set() {
        let web = app(&[
            ("hostname", json!("bad_host"), Source::CommandLine),
            ("log_level", json!("debug"), Source::Overlay(PathBuf::from("dev.yaml"))),
            ("replicas", json!(2), Source::Default),
        ]);
        let object = json!({"spec": {"hosts": ["bad_host.example"], "replicas": 2}});
        let origin = Origin::of(&web, value_at(&object, "spec.hosts[0]"));
        assert_eq!(origin, Origin::Options(vec![("hostname".into(), Source::CommandLine)]));
        assert_eq!(origin.option("web").as_deref(), Some("web.hostname"));
        assert_eq!(origin.describe("web"), "the value of option web.hostname (set by --config)");
        // A default equal to the value still names the option.
        let origin = Origin::of(&web, value_at(&object, "spec.replicas"));
        assert_eq!(origin, Origin::Options(vec![("replicas".into(), Source::Default)]));
    }

    #[test]
    fn without_a_match_the_explicitly_set_options_are_candidates() {
        let web = app(&[
            ("hostname", json!("shop"), Source::CommandLine),
            ("size", json!("1Gi"), Source::Default),
        ]);
        let object = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}});
        let origin = Origin::of(&web, value_at(&object, "spec.selector"));
        assert_eq!(
            origin.describe("web"),
            "not traceable to one option; options of web set explicitly: web.hostname (set by --config)"
        );
        assert_eq!(origin.option("web"), None);
        let plain = app(&[("size", json!("1Gi"), Source::Default)]);
        assert_eq!(Origin::of(&plain, None), Origin::Templates);
    }

    #[test]
    fn field_paths_reach_list_items_and_keys() {
        let object = json!({"spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}]},
                            "metadata": {"labels": {"a/b": "c"}}});
        let path = "spec.volumeClaimTemplates[0].spec.resources.requests.storage";
        assert_eq!(value_at(&object, path), Some(&json!("2Gi")));
        assert_eq!(value_at(&object, "metadata.labels[a/b]"), Some(&json!("c")));
        assert_eq!(value_at(&object, "spec.volumeClaimTemplates[3]"), None);
        assert_eq!(value_at(&object, "spec"), object.get("spec"));
    }
}
