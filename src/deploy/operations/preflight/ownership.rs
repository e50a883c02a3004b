//! Ownership preflight: no object a deploy would overwrite belongs to another bundle or tool,
//! or is on its way out.

use std::collections::BTreeSet;

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use crate::contract::{ObjectId, BUNDLE_LABEL};
use crate::deploy::cluster::access::{access, Access};
use crate::deploy::cluster::client::{Cluster, FIELD_MANAGER, REQUESTS_AT_ONCE};
use crate::deploy::cluster::ownership::{bundle_manager, managers, managing_bundle};
use crate::deploy::error::DeployError;
use crate::deploy::model::targets::Target;
use crate::deploy::operations::generate::GENERATE_MANAGER;
use crate::deploy::state::keep::{kept_from, KEEP_MANAGER};
use crate::deploy::state::record::{self, Record};
use crate::diag::Problem;

impl Cluster {
    /// A problem for each target that exists and is not the bundle's (or cannot be read);
    /// with `adopt`, a note instead for those others manage.
    pub(super) async fn check_ownership(
        &self,
        bundle: &str,
        targets: &[Target],
        records: &[Record],
        namespace_exists: bool,
        adopt: bool,
        notes: &mut Vec<String>,
    ) -> Result<Vec<Problem>, DeployError> {
        let mut problems = Vec::new();
        let inventory: BTreeSet<ObjectId> =
            record::current_inventory(records).into_iter().map(|e| e.id).collect();
        // In a namespace that does not exist yet, only cluster-scoped objects can exist.
        let existing =
            targets.iter().filter(|t| t.served && (namespace_exists || !t.kind.namespaced));
        // One read per target, a few at once (a bundle of 100 applications has hundreds).
        let answers: Vec<_> = stream::iter(existing)
            .map(|target| async move { (target, access(self.get(&target.kind, &target.id).await)) })
            .buffered(REQUESTS_AT_ONCE)
            .collect()
            .await;
        for (target, answer) in answers {
            let live = match answer? {
                Access::Allowed(Some(live)) => live,
                Access::Allowed(None) => continue,
                Access::Forbidden(message) => {
                    problems.push(
                        Problem::new("preflight", target.id.to_string(), format!("cannot be read: {message}"))
                            .hint("deploying it needs permissions this identity lacks; `charmer rbac BUNDLE` prints the Role (and ClusterRole) to grant"),
                    );
                    continue;
                }
            };
            let in_inventory = inventory.contains(&target.id);
            match live_problem(bundle, &target.id, &live, in_inventory) {
                Some(LiveProblem::Terminating(problem)) => problems.push(problem),
                Some(LiveProblem::Owned(owner)) if adopt => {
                    notes.push(format!("adopting {}: {owner}", target.id));
                }
                Some(LiveProblem::Owned(owner)) => problems.push(
                    Problem::new("preflight", target.id.to_string(), format!("{owner}; deploy does not take it over silently"))
                        .hint("deploy with --adopt to take it over, or rename the object or deploy into another namespace"),
                ),
                None => {}
            }
        }
        Ok(problems)
    }
}

/// Why preflight stops at a live object a target would overwrite.
enum LiveProblem {
    /// It is being deleted.
    Terminating(Problem),
    /// Someone else manages it (the text names whom).
    Owned(String),
}

/// Whether a live object may be applied over: nobody else manages it, and it is not on its
/// way out. Objects of the bundle's inventory, labelled with the bundle or kept from it are
/// the bundle's own.
fn live_problem(
    bundle: &str,
    id: &ObjectId,
    live: &Value,
    in_inventory: bool,
) -> Option<LiveProblem> {
    let meta = &live["metadata"];
    if let Some(since) = meta["deletionTimestamp"].as_str() {
        let finalizers: Vec<&str> =
            meta["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let held = if finalizers.is_empty() {
            String::new()
        } else {
            format!(", held by finalizers {}", finalizers.join(", "))
        };
        let hint = if id.kind == "PersistentVolumeClaim" {
            "a claim goes once no pod mounts it; wait for its pods to end, then deploy again"
        } else {
            "wait until it is gone, then deploy again"
        };
        return Some(LiveProblem::Terminating(
            Problem::new("preflight", id.to_string(), format!("is being deleted (since {since}{held}); applying now would recreate nothing and lose it"))
                .hint(hint),
        ));
    }
    let label = meta["labels"][BUNDLE_LABEL].as_str();
    if let Some(other) = label.filter(|b| *b != bundle) {
        return Some(LiveProblem::Owned(format!(
            "bundle {other} manages it (label {}={other})",
            BUNDLE_LABEL
        )));
    }
    if let Some(other) = kept_from(live).filter(|b| *b != bundle) {
        return Some(LiveProblem::Owned(format!("it holds data kept from bundle {other}")));
    }
    if let Some(other) = managers(live).find_map(managing_bundle).filter(|b| *b != bundle) {
        return Some(LiveProblem::Owned(format!(
            "bundle {other} manages it (field manager {})",
            bundle_manager(other)
        )));
    }
    if in_inventory || label.is_some() || kept_from(live).is_some() {
        return None;
    }
    let foreign: BTreeSet<&str> = managers(live)
        .filter(|m| ![FIELD_MANAGER, GENERATE_MANAGER, KEEP_MANAGER].contains(m))
        .filter(|m| managing_bundle(m).is_none())
        .collect();
    (!foreign.is_empty()).then(|| {
        let managers: Vec<&str> = foreign.into_iter().collect();
        LiveProblem::Owned(format!(
            "it exists and is managed by {} (field manager {}), not by charmer",
            if managers.len() == 1 { "another tool" } else { "other tools" },
            managers.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_objects_of_others_or_on_their_way_out_are_problems() {
        let id = ObjectId {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "c".into(),
        };
        let managed =
            |manager: &str| json!({"metadata": {"managedFields": [{"manager": manager}]}});
        let owned = |live: &Value, in_inventory| match live_problem("b", &id, live, in_inventory) {
            Some(LiveProblem::Owned(owner)) => Some(owner),
            Some(LiveProblem::Terminating(p)) => Some(p.to_string()),
            None => None,
        };
        assert_eq!(owned(&managed(FIELD_MANAGER), false), None);
        assert_eq!(owned(&managed(GENERATE_MANAGER), false), None);
        assert_eq!(owned(&managed("charmer/b"), false), None);
        assert_eq!(
            owned(&managed("charmer/iot"), true).as_deref(),
            Some("bundle iot manages it (field manager charmer/iot)")
        );
        assert_eq!(
            owned(&managed("helm"), false).as_deref(),
            Some("it exists and is managed by another tool (field manager helm), not by charmer")
        );
        assert_eq!(owned(&managed("helm"), true), None, "our inventory: others may add fields");
        let other = json!({"metadata": {"labels": {BUNDLE_LABEL: "iot"}}});
        assert_eq!(
            owned(&other, true).as_deref(),
            Some("bundle iot manages it (label charmer.io/bundle=iot)")
        );
        let kept = json!({"metadata": {"labels": {crate::contract::KEPT_FROM_LABEL: "iot"}}});
        assert_eq!(owned(&kept, false).as_deref(), Some("it holds data kept from bundle iot"));
        let going = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x/y"]}});
        assert!(owned(&going, true)
            .unwrap()
            .contains("is being deleted (since 2026-01-01T00:00:00Z, held by finalizers x/y)"));
    }
}
