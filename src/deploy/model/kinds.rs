//! The kinds a cluster serves, as discovery found them: where to send requests for each and
//! whether it is namespaced.

use kube::discovery::{ApiResource, Discovery, Scope};

use crate::contract::{group_of, version_of};

/// A kind as the cluster serves it: where to send requests and whether it is namespaced.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// What discovery found for the API groups a deploy touches.
pub(crate) struct Kinds {
    pub(crate) discovery: Discovery,
}

/// The answer to "is this kind served at this version".
pub(crate) enum Lookup {
    /// Served.
    Served(Kind),
    /// The kind is served, but only at these other versions.
    OtherVersions(Vec<String>),
    /// Not served at all.
    Missing,
}

impl Kinds {
    /// Looks up `kind` at `api_version`.
    pub(crate) fn find(&self, api_version: &str, kind: &str) -> Lookup {
        let group = group_of(api_version);
        let version = version_of(api_version);
        let Some(api_group) = self.discovery.get(group) else {
            return Lookup::Missing;
        };
        let found =
            api_group.versioned_resources(version).into_iter().find(|(r, _)| r.kind == kind);
        if let Some((resource, caps)) = found {
            return Lookup::Served(Kind { resource, namespaced: caps.scope == Scope::Namespaced });
        }
        let others: Vec<String> = api_group
            .versions()
            .filter(|v| api_group.versioned_resources(v).iter().any(|(r, _)| r.kind == kind))
            .map(str::to_string)
            .collect();
        if others.is_empty() {
            Lookup::Missing
        } else {
            Lookup::OtherVersions(others)
        }
    }

    /// The group's preferred version of `kind`, for objects known only by group and kind
    /// (inventory entries).
    pub(crate) fn preferred(&self, group: &str, kind: &str) -> Option<Kind> {
        let (resource, caps) = self.discovery.get(group)?.recommended_kind(kind)?;
        Some(Kind { resource, namespaced: caps.scope == Scope::Namespaced })
    }
}

impl Kind {
    /// A kind the cluster does not serve yet, described by a CustomResourceDefinition of the
    /// same deploy.
    pub(crate) fn from_crd(api_version: &str, kind: &str, plural: &str, namespaced: bool) -> Kind {
        let gvk =
            kube::api::GroupVersionKind::gvk(group_of(api_version), version_of(api_version), kind);
        Kind { resource: ApiResource::from_gvk_with_plural(&gvk, plural), namespaced }
    }
}
