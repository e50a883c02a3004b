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
            let hint = match crate::diag::closest(name, &known) {
                Some(c) => format!(
                    "did you mean {c:?}? (charm {} options: {})",
                    charm.name(),
                    known.join(", ")
                ),
                None => format!("charm {} options: {}", charm.name(), known.join(", ")),
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
            Err(message) => problems.push(Problem::new(
                file,
                key,
                format!("{message} (option type {})", option.kind),
            )),
        }
    }
    config
}
