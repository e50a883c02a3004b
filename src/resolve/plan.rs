//! The short plan `charmer check` prints: each application with its exact charm, the config
//! that differs from the charm's defaults (and where each value came from), its relations and
//! its images. Secrets are shown as `<secret>`. Every part is structured data for
//! `--output json`; its `Display` is the text `check` prints.

use std::fmt;

use serde::Serialize;

use super::model::{Model, Source};
use crate::images::Reference;

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
    /// The bundle's `network-policies:` mode.
    pub network_policies_mode: String,
    /// Every NetworkPolicy the render holds (filled by `check` after rendering, which comes
    /// after this stage).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_policies: Vec<PolicySummary>,
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
    /// The application's relations, from its own end.
    pub relations: Vec<RelationLine>,
    /// The images it runs, by resource.
    pub images: Vec<ImageLine>,
}

/// One relation of an application, seen from its own end:
/// `endpoint -> remote_app:remote_endpoint (interface)`.
#[derive(Debug, Serialize)]
pub struct RelationLine {
    /// The application's own endpoint.
    pub endpoint: String,
    /// The application at the other end.
    pub remote_app: String,
    /// Its endpoint.
    pub remote_endpoint: String,
    /// The shared interface.
    pub interface: String,
}

/// One image of an application: `resource: source -> target` (`resource: source` when it is
/// not relocated).
#[derive(Debug, Serialize)]
pub struct ImageLine {
    /// The charm's resource name.
    pub resource: String,
    /// The upstream image.
    pub source: Reference,
    /// What the manifests run.
    pub target: Reference,
}

/// What one NetworkPolicy admits: `name (application): admits RULE; RULE`.
#[derive(Debug, Serialize)]
pub struct PolicySummary {
    /// The NetworkPolicy's name.
    pub name: String,
    /// The application that rendered it.
    pub application: String,
    /// Its ingress rules, in order; none admits nobody.
    pub ingress: Vec<IngressRule>,
}

/// One ingress rule: who may connect, on which ports. As in Kubernetes, a rule without
/// `from` admits any source and one with no ports admits every port.
#[derive(Debug, Serialize)]
pub struct IngressRule {
    /// The peers admitted; absent: anyone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<PolicyPeer>>,
    /// The pod ports admitted; empty: any port.
    pub ports: Vec<PolicyPort>,
}

/// A peer of an ingress rule: an application of the bundle (its pods by the instance label),
/// or any other peer as the policy writes it.
#[derive(Debug, Serialize)]
pub struct PolicyPeer {
    /// The application whose pods are admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The peer as written in the policy, when it does not name one application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<serde_json::Value>,
}

/// A pod port of an ingress rule.
#[derive(Debug, Serialize)]
pub struct PolicyPort {
    /// A number or a named container port (null: every port of the protocol).
    pub port: serde_json::Value,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
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
                        let (own, remote) = r.ends_of(&app.name)?;
                        Some(RelationLine {
                            endpoint: own.1.clone(),
                            remote_app: remote.0.clone(),
                            remote_endpoint: remote.1.clone(),
                            interface: r.interface.clone(),
                        })
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
                        .map(|(r, i)| ImageLine {
                            resource: r.clone(),
                            source: i.source.clone(),
                            target: i.target.clone(),
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
            network_policies_mode: model.network_policies.to_string(),
            network_policies: Vec::new(),
        }
    }
}

impl fmt::Display for RelationLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RelationLine { endpoint, remote_app, remote_endpoint, interface } = self;
        write!(f, "{endpoint} -> {remote_app}:{remote_endpoint} ({interface})")
    }
}

impl fmt::Display for ImageLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source == self.target {
            write!(f, "{}: {}", self.resource, self.source)
        } else {
            write!(f, "{}: {} -> {}", self.resource, self.source, self.target)
        }
    }
}

impl fmt::Display for PolicySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): admits ", self.name, self.application)?;
        if self.ingress.is_empty() {
            return write!(f, "nobody");
        }
        for (n, rule) in self.ingress.iter().enumerate() {
            if n > 0 {
                write!(f, "; ")?;
            }
            match &rule.from {
                None => write!(f, "anyone")?,
                Some(peers) => {
                    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
                    write!(f, "{}", peers.join(", "))?;
                }
            }
            if rule.ports.is_empty() {
                write!(f, " on any port")?;
            } else {
                let ports: Vec<String> = rule.ports.iter().map(ToString::to_string).collect();
                write!(f, " on {}", ports.join(" "))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for PolicyPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.application, &self.peer) {
            (Some(app), _) => write!(f, "{app}"),
            (None, Some(peer)) => write!(f, "{peer}"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Display for PolicyPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port.as_str() {
            Some(name) => write!(f, "{name}/{}", self.protocol),
            None => write!(f, "{}/{}", self.port, self.protocol),
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
        writeln!(f, "\nnetwork policies: {}", self.network_policies_mode)?;
        for p in &self.network_policies {
            writeln!(f, "  {p}")?;
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
