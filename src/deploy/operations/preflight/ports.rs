//! Node port preflight: a node port is unique in the whole cluster, so a port any other
//! Service holds (in any namespace) would fail the Service's apply half-way through a deploy
//! with "provided port is already allocated".

use std::collections::BTreeMap;

use serde_json::Value;

use crate::deploy::cluster::access::Unverified;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;
use crate::diag::Problem;

/// A Service's name and namespace.
type ServiceId = (String, String);

impl Cluster {
    /// A problem for each node port of the plan's Services that another Service holds (or
    /// that two of the plan's Services ask for). Services the plan applies over (same
    /// namespace and name) are not others.
    pub(super) async fn check_node_ports(
        &self,
        kinds: &Kinds,
        plan: &DeployPlan,
        unverified: &mut Unverified,
    ) -> Result<Vec<Problem>, DeployError> {
        let wanted = wanted_ports(plan);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let Lookup::Served(kind) = kinds.find("v1", "Service") else { return Ok(Vec::new()) };
        let permission = "list services at the cluster scope";
        let live = self
            .list_all_or_note(&kind, "node ports", permission, unverified)
            .await?
            .unwrap_or_default();
        let mut holders: BTreeMap<i64, ServiceId> = BTreeMap::new();
        for service in &live {
            let id = service_id(service, "");
            for port in node_ports(service) {
                holders.entry(port).or_insert_with(|| id.clone());
            }
        }
        let mut problems = Vec::new();
        let mut asked: BTreeMap<i64, &ServiceId> = BTreeMap::new();
        for (id, port) in &wanted {
            let subject = format!("Service/{}/{}", id.1, id.0);
            let other = match (holders.get(port).filter(|h| *h != id), asked.get(port)) {
                (Some(holder), _) => Some(format!("another Service, {}/{},", holder.1, holder.0)),
                (None, Some(first)) if *first != id => {
                    Some(format!("Service {}/{} of this deploy", first.1, first.0))
                }
                _ => None,
            };
            asked.entry(*port).or_insert(id);
            if let Some(other) = other {
                problems.push(
                    Problem::new("preflight", subject, format!("node port {port} is already allocated: {other} holds it (node ports are unique in the whole cluster)"))
                        .hint("set another node port for this application (or leave it unset for one the cluster picks), or free the port first"),
                );
            }
        }
        Ok(problems)
    }
}

/// Every (Service, node port) the plan asks for, in plan order.
fn wanted_ports(plan: &DeployPlan) -> Vec<(ServiceId, i64)> {
    plan.objects
        .iter()
        .filter(|o| o.object["kind"] == "Service" && o.object["apiVersion"] == "v1")
        .flat_map(|o| {
            let id = service_id(&o.object, &plan.namespace);
            node_ports(&o.object).into_iter().map(move |p| (id.clone(), p))
        })
        .collect()
}

fn service_id(service: &Value, namespace: &str) -> ServiceId {
    let meta = &service["metadata"];
    (
        meta["name"].as_str().unwrap_or_default().to_string(),
        meta["namespace"].as_str().unwrap_or(namespace).to_string(),
    )
}

fn node_ports(service: &Value) -> Vec<i64> {
    let ports = service["spec"]["ports"].as_array().into_iter().flatten();
    ports.filter_map(|p| p["nodePort"].as_i64()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::operations::preflight::testing::plan;
    use serde_json::json;

    #[test]
    fn only_services_node_ports_are_wanted() {
        let svc = |name: &str, port: i64| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}, {"port": 81}]}})
        };
        let p = plan(vec![svc("a", 30001), svc("b", 30002)]);
        let wanted = wanted_ports(&p);
        assert_eq!(
            wanted,
            [(("a".into(), "ns".into()), 30001), (("b".into(), "ns".into()), 30002)]
        );
    }
}
