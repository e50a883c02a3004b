//! The configuration each revision deployed, with where every value came from: recorded in
//! the revision's plan, shown by `charmer config`, carried forward by `deploy
//! --reuse-config`, and compared on the next deploy so that a value an earlier override set
//! never changes without a word.
//!
//! Records are Secrets, so values are kept as they are (a `--reuse-config` must be able to
//! give a secret option again); everything shown masks them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::record::{self, RecordStatus};
use crate::bundle::{ConfigOverride, Source};
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::plan::DeployPlan;
use crate::deploy::model::settings::RecordedSetting;
use crate::diag::Problem;

/// The configuration of the deployed revision of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedConfig {
    /// The revision.
    pub revision: u32,
    /// Option settings by application, then option.
    pub apps: BTreeMap<String, BTreeMap<String, RecordedSetting>>,
}

impl DeployedConfig {
    /// The `--config` and `--config-file` values of this revision, as `--config` overrides
    /// for the applications in `apps` (what `deploy --reuse-config` gives before the new
    /// flags, so later flags win).
    pub fn reusable(&self, apps: &BTreeSet<String>) -> Vec<ConfigOverride> {
        self.apps
            .iter()
            .filter(|(app, _)| apps.contains(*app))
            .flat_map(|(app, settings)| {
                settings
                    .iter()
                    .filter(|(_, s)| {
                        matches!(s.source, Source::ConfigFile(_) | Source::CommandLine)
                    })
                    .map(|(key, s)| ConfigOverride {
                        app: app.clone(),
                        key: key.clone(),
                        value: s.as_text(),
                        literal: true,
                    })
            })
            .collect()
    }

    /// One warning per value an override set in this revision that `next` changes (to
    /// another value, or back to the charm's or bundle's).
    pub fn changed_by(&self, next: &DeployPlan) -> Vec<Problem> {
        let mut warnings = Vec::new();
        for (app, settings) in &self.apps {
            let Some(next_app) = next.app(app) else { continue };
            for (key, before) in settings.iter().filter(|(_, s)| s.is_override()) {
                let after = next_app.config.get(key);
                if after.is_some_and(|a| a.value == before.value) {
                    continue;
                }
                let now = match after {
                    Some(a) => format!("becomes {} ({})", a.display(), a.source),
                    None => "is unset".to_string(),
                };
                warnings.push(
                    Problem::new(
                        format!("revision {}", self.revision),
                        format!("{app}.{key}"),
                        format!("{} (set by {}) {now}", before.display(), before.source),
                    )
                    .hint("give the override again, or deploy with --reuse-config to keep the deployed overrides"),
                );
            }
        }
        warnings
    }
}

impl Cluster {
    /// The configuration of the bundle's deployed revision; `None` when none is deployed.
    pub async fn deployed_config(
        &self,
        bundle: &str,
        namespace: &str,
    ) -> Result<Option<DeployedConfig>, DeployError> {
        let core = self.kinds(&BTreeSet::new()).await?;
        let records = record::load(self, &core, bundle, namespace).await?;
        Ok(records.into_iter().rev().find(|r| r.status == RecordStatus::Deployed).map(|r| {
            DeployedConfig {
                revision: r.revision,
                apps: r.plan.apps.into_iter().map(|a| (a.name, a.config)).collect(),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::plan::PlanApp;

    fn setting(value: serde_json::Value, source: Source) -> RecordedSetting {
        RecordedSetting { value, source, secret: false }
    }

    #[test]
    fn reused_values_are_literal_and_only_command_line_and_values_file_ones() {
        let deployed = DeployedConfig {
            revision: 2,
            apps: BTreeMap::from([
                (
                    "web".to_string(),
                    BTreeMap::from([
                        ("motd".to_string(), setting("@not-a-file".into(), Source::CommandLine)),
                        (
                            "port".to_string(),
                            setting(8080.into(), Source::ConfigFile("v.yaml".into())),
                        ),
                        (
                            "debug".to_string(),
                            setting(true.into(), Source::Overlay("o.yaml".into())),
                        ),
                    ]),
                ),
                (
                    "gone".to_string(),
                    BTreeMap::from([("x".to_string(), setting(1.into(), Source::CommandLine))]),
                ),
            ]),
        };
        let reused = deployed.reusable(&BTreeSet::from(["web".to_string()]));
        let texts: Vec<(&str, &str, bool)> =
            reused.iter().map(|o| (o.key.as_str(), o.value.as_str(), o.literal)).collect();
        assert_eq!(texts, [("motd", "@not-a-file", true), ("port", "8080", true)]);
    }

    #[test]
    fn only_changed_override_values_are_reported() {
        let deployed = DeployedConfig {
            revision: 3,
            apps: BTreeMap::from([(
                "web".to_string(),
                BTreeMap::from([
                    ("a".to_string(), setting(1.into(), Source::CommandLine)),
                    ("b".to_string(), setting(2.into(), Source::CommandLine)),
                    ("c".to_string(), setting(3.into(), Source::Bundle("b.yaml".into()))),
                ]),
            )]),
        };
        let mut app = PlanApp::new("web", "web", "1.0.0");
        app.config = BTreeMap::from([
            ("a".to_string(), setting(1.into(), Source::Bundle("b.yaml".into()))),
            ("b".to_string(), setting(5.into(), Source::Default)),
            ("c".to_string(), setting(4.into(), Source::Bundle("b.yaml".into()))),
        ]);
        let plan = DeployPlan {
            bundle: "shop".into(),
            namespace: "shop".into(),
            registry: None,
            apps: vec![app],
            objects: vec![],
        };
        let lines: Vec<String> = deployed.changed_by(&plan).iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0]
            .starts_with("revision 3: web.b: 2 (set by --config) becomes 5 (charm default)"));
    }
}
