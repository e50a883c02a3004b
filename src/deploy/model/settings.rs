//! Each option value an application is deployed with and where it came from, as revision
//! records keep it (`charmer config`, `deploy --reuse-config`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bundle::Source;
use crate::charm::config::REDACTED;
use crate::charm::ConfigValue;
use crate::resolve::Application;

/// One option value of a deployed application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSetting {
    /// The value as YAML/JSON typed it (secrets included: records are Secrets).
    pub value: serde_json::Value,
    /// Where it came from.
    pub source: Source,
    /// The option is of type `secret`: never shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

impl RecordedSetting {
    /// The value as it may be shown: secrets masked, text as is, others as YAML writes them.
    pub fn display(&self) -> String {
        match (&self.value, self.secret) {
            (_, true) => REDACTED.to_string(),
            (serde_json::Value::String(s), _) => s.clone(),
            (other, _) => other.to_string(),
        }
    }

    /// The value as `--config` text, parsed again by the option's type.
    pub(crate) fn as_text(&self) -> String {
        match &self.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Set by an overlay, a values file or the command line rather than by the charm or
    /// the bundle.
    pub(crate) fn is_override(&self) -> bool {
        matches!(self.source, Source::Overlay(_) | Source::ConfigFile(_) | Source::CommandLine)
    }
}

/// The effective config of an application, for its revision record.
pub(crate) fn recorded_config(app: &Application) -> BTreeMap<String, RecordedSetting> {
    app.config
        .iter()
        .map(|(name, setting)| {
            let value = serde_json::to_value(setting.value.to_yaml()).unwrap_or_default();
            let secret = matches!(setting.value, ConfigValue::Secret(_));
            (name.clone(), RecordedSetting { value, source: setting.source.clone(), secret })
        })
        .collect()
}
