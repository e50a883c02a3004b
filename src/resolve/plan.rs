//! The short plan `charmer check` prints: each application with its exact charm, the config
//! that differs from the charm's defaults (and where each value came from), its relations and
//! its images. Secrets are shown as `<secret>`.

use std::fmt;

use serde::Serialize;

use super::model::{Model, Source};

/// The plan of a resolved model.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Bundle name.
    pub bundle: String,
    /// Namespace.
    pub namespace: String,
    /// Registry images are relocated to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Applications.
    pub applications: Vec<AppPlan>,
    /// Secrets that must exist in the namespace before deploy (`secret-ref` options and
    /// `required-secrets:`), by name, with the applications needing each.
    pub required_secrets: std::collections::BTreeMap<String, Vec<String>>,
}

/// One application of the plan.
#[derive(Debug, Serialize)]
pub struct AppPlan {
    /// Application name.
    pub name: String,
    /// Charm name.
    pub charm: String,
    /// Exact version.
    pub version: String,
    /// Folder or archive the charm came from.
    pub path: String,
    /// Units.
    pub scale: u32,
    /// Options whose value is not the charm default.
    pub config: Vec<ConfigLine>,
    /// `endpoint -> app:endpoint (interface)`.
    pub relations: Vec<String>,
    /// `resource: source -> target`.
    pub images: Vec<String>,
}

/// One changed option.
#[derive(Debug, Serialize)]
pub struct ConfigLine {
    /// Option name.
    pub key: String,
    /// Value, secrets redacted.
    pub value: serde_yaml::Value,
    /// Where it came from.
    pub source: Source,
}

impl Plan {
    /// The plan of a model.
    pub fn of(model: &Model) -> Plan {
        let applications = model
            .applications
            .values()
            .map(|app| {
                let relations = model
                    .relations
                    .iter()
                    .filter_map(|r| {
                        if r.a.0 == app.name {
                            Some(format!("{} -> {}:{} ({})", r.a.1, r.b.0, r.b.1, r.interface))
                        } else if r.b.0 == app.name {
                            Some(format!("{} -> {}:{} ({})", r.b.1, r.a.0, r.a.1, r.interface))
                        } else {
                            None
                        }
                    })
                    .collect();
                AppPlan {
                    name: app.name.clone(),
                    charm: app.charm.name().to_string(),
                    version: app.charm.version_label(),
                    path: app.charm.origin.path().display().to_string(),
                    scale: app.scale,
                    config: app
                        .config
                        .iter()
                        .filter(|(_, s)| s.source != Source::Default)
                        .map(|(k, s)| ConfigLine {
                            key: k.clone(),
                            value: s.value.to_display_yaml(),
                            source: s.source.clone(),
                        })
                        .collect(),
                    relations,
                    images: app
                        .images
                        .iter()
                        .map(|(r, i)| {
                            if i.source == i.target {
                                format!("{r}: {}", i.source)
                            } else {
                                format!("{r}: {} -> {}", i.source, i.target)
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let mut required_secrets: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for app in model.applications.values() {
            for secret in &app.required_secrets {
                required_secrets.entry(secret.clone()).or_default().push(app.name.clone());
            }
        }
        Plan {
            required_secrets,
            bundle: model.name.clone(),
            namespace: model.namespace.clone(),
            registry: model.registry.as_ref().map(ToString::to_string),
            applications,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bundle {} -> namespace {}", self.bundle, self.namespace)?;
        if let Some(r) = &self.registry {
            write!(f, ", images from {r}")?;
        }
        writeln!(f)?;
        for app in &self.applications {
            writeln!(
                f,
                "\n{}: charm {} {} ({}), scale {}",
                app.name, app.charm, app.version, app.path, app.scale
            )?;
            if !app.config.is_empty() {
                writeln!(f, "  config:")?;
                for c in &app.config {
                    let value = serde_yaml::to_string(&c.value).unwrap_or_default();
                    writeln!(f, "    {} = {}  ({})", c.key, value.trim_end(), c.source)?;
                }
            }
            if !app.relations.is_empty() {
                writeln!(f, "  relations:")?;
                for r in &app.relations {
                    writeln!(f, "    {r}")?;
                }
            }
            if !app.images.is_empty() {
                writeln!(f, "  images:")?;
                for i in &app.images {
                    writeln!(f, "    {i}")?;
                }
            }
        }
        if !self.required_secrets.is_empty() {
            writeln!(
                f,
                "\nSecrets that must exist in namespace {} before deploy:",
                self.namespace
            )?;
            for (secret, apps) in &self.required_secrets {
                writeln!(f, "  {secret}  (needed by {})", apps.join(", "))?;
            }
        }
        Ok(())
    }
}
