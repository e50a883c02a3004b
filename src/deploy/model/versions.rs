//! Kubernetes versions: the cluster's, and the needs charms state in `assumes:` or the
//! `charmer.io/min-kubernetes` annotation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::deploy::error::UnreadableVersion;

/// A `major.minor` Kubernetes version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KubeVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

/// A constraint on the cluster's Kubernetes version and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionNeed {
    /// `>=` or `<`.
    pub op: VersionOp,
    /// The version compared with.
    pub version: KubeVersion,
    /// What asked for it, for the preflight message (`assumes: k8s-api >= 1.20`).
    pub source: String,
}

/// The comparisons Juju's `assumes` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionOp {
    /// `>=`
    AtLeast,
    /// `<`
    Below,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for KubeVersion {
    type Err = UnreadableVersion;

    /// Accepts `1.20`, `v1.20.3` and the `28+` minor some providers report.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim().trim_start_matches('v');
        let mut parts = trimmed.split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            let digits: String = part?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        match (number(parts.next()), number(parts.next())) {
            (Some(major), Some(minor)) => Ok(KubeVersion { major, minor }),
            _ => Err(UnreadableVersion(text.to_string())),
        }
    }
}

impl VersionNeed {
    /// Whether `version` satisfies this need.
    pub fn allows(&self, version: KubeVersion) -> bool {
        match self.op {
            VersionOp::AtLeast => version >= self.version,
            VersionOp::Below => version < self.version,
        }
    }
}

impl fmt::Display for VersionNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            VersionOp::AtLeast => ">=",
            VersionOp::Below => "<",
        };
        write!(f, "Kubernetes {op} {}", self.version)
    }
}

/// Kubernetes version constraints in a charm's `assumes:`: `k8s-api >= 1.20` and `k8s-api <
/// 1.30`, at the top level or inside `all-of` blocks. `any-of` blocks are alternatives deploy
/// cannot choose between, so they are left to the charm.
pub fn kubernetes_needs(assumes: &[serde_yaml::Value]) -> Vec<VersionNeed> {
    let mut needs = Vec::new();
    for item in assumes {
        match item {
            serde_yaml::Value::String(text) => needs.extend(parse_assumption(text)),
            serde_yaml::Value::Mapping(map) => {
                if let Some(serde_yaml::Value::Sequence(all)) = map.get("all-of") {
                    needs.extend(kubernetes_needs(all));
                }
            }
            _ => {}
        }
    }
    needs
}

fn parse_assumption(text: &str) -> Option<VersionNeed> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [feature, op, version] = words.as_slice() else {
        return None;
    };
    if *feature != "k8s-api" {
        return None;
    }
    let op = match *op {
        ">=" => VersionOp::AtLeast,
        "<" => VersionOp::Below,
        _ => return None,
    };
    Some(VersionNeed { op, version: version.parse().ok()?, source: format!("assumes: {text}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumes_gives_kubernetes_needs() {
        let assumes: Vec<serde_yaml::Value> =
            serde_yaml::from_str("[k8s-api, 'k8s-api >= 1.20', 'juju >= 3.1', {all-of: ['k8s-api < 1.40']}, {any-of: ['k8s-api >= 1.99']}]").unwrap();
        let needs = kubernetes_needs(&assumes);
        assert_eq!(needs.len(), 2);
        assert_eq!(needs[0].to_string(), "Kubernetes >= 1.20");
        assert!(needs[0].allows(KubeVersion { major: 1, minor: 20 }));
        assert!(!needs[0].allows(KubeVersion { major: 1, minor: 19 }));
        assert!(!needs[1].allows(KubeVersion { major: 1, minor: 40 }));
    }

    #[test]
    fn versions_parse_like_clusters_report_them() {
        assert_eq!("1.28+".parse::<KubeVersion>().unwrap(), KubeVersion { major: 1, minor: 28 });
        assert_eq!("v1.20.3".parse::<KubeVersion>().unwrap(), KubeVersion { major: 1, minor: 20 });
        assert!("one".parse::<KubeVersion>().is_err());
    }
}
