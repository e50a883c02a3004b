//! istiod pre-flight: an application with an `istiod_address` option (istio-gateway) runs a
//! proxy that becomes ready only once istiod at that address has sent it its configuration.
//! When the address names a Service of the cluster (`NAME.NAMESPACE.svc[.cluster.local]:PORT`)
//! pre-flight reads whether that Service exists: missing, it warns (the deploy could only
//! wait out its timeout); unreadable (no permission in that namespace, typically
//! `istio-system`), it warns that it could not check. Either way the wait names the
//! dependency when such an application is not ready.

use std::collections::BTreeMap;

use crate::contract::ObjectId;
use crate::deploy::cluster::access::{access, Access};
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;

/// The option naming the Istio control plane's address.
const OPTION: &str = "istiod_address";

/// The Service an address names: (name, namespace), when it is a cluster Service address.
fn service_of(address: &str) -> Option<(&str, &str)> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.strip_suffix(".cluster.local").unwrap_or(host);
    let mut parts = host.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(namespace), Some("svc"), None) => Some((name, namespace)),
        _ => None,
    }
}

/// Each application with the option, with its address.
fn dependents(plan: &DeployPlan) -> Vec<(&str, String)> {
    plan.apps
        .iter()
        .filter_map(|app| Some((app.name.as_str(), app.config.get(OPTION)?.as_text())))
        .collect()
}

impl Cluster {
    /// Warnings about istiod for the applications that need it, and per such application
    /// the note the wait adds while it is not ready.
    pub(super) async fn check_istiod(
        &self,
        kinds: &Kinds,
        plan: &DeployPlan,
    ) -> Result<(Vec<String>, BTreeMap<String, String>), DeployError> {
        let mut warnings = Vec::new();
        let mut notes = BTreeMap::new();
        let Lookup::Served(services) = kinds.find("v1", "Service") else {
            return Ok((warnings, notes));
        };
        for (app, address) in dependents(plan) {
            let mut note = format!("it needs istiod at {address} ({OPTION})");
            if let Some((name, namespace)) = service_of(&address) {
                let id = ObjectId {
                    group: String::new(),
                    kind: "Service".into(),
                    namespace: Some(namespace.to_string()),
                    name: name.to_string(),
                };
                match access(self.get(&services, &id).await)? {
                    Access::Allowed(Some(_)) => {}
                    Access::Allowed(None) => {
                        warnings.push(format!(
                            "application {app} needs istiod at {address}, but Service {name} does not exist in namespace {namespace}: it cannot become ready until Istio's control plane is installed there (or set {OPTION} to where it runs)"
                        ));
                        note.push_str(&format!("; pre-flight found no Service {name} in namespace {namespace}"));
                    }
                    Access::Forbidden(message) => warnings.push(format!(
                        "application {app} needs istiod at {address}; not verified: {message} (its readiness depends on istiod)"
                    )),
                }
            }
            notes.insert(app.to_string(), note);
        }
        Ok((warnings, notes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_service_addresses_name_their_service() {
        assert_eq!(service_of("istiod.istio-system.svc:15012"), Some(("istiod", "istio-system")));
        assert_eq!(service_of("istiod.mesh.svc.cluster.local:15012"), Some(("istiod", "mesh")));
        assert_eq!(service_of("10.0.0.7:15012"), None);
        assert_eq!(service_of("istiod.example.com:15012"), None);
    }
}
