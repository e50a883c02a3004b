//! Applying a prepared plan: namespace, revision record, CRDs, then every object with
//! server-side apply; generated credentials; prune; wait; and the record's final state.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::cluster::{Cluster, Kind, Kinds, Lookup};
use super::preflight::{namespace_id, namespace_object, Prepared};
use super::record::{self, Entry, Record, RecordStatus};
use super::targets::{kind_rank, phase, Phase, Target};
use super::wait::{self, WaitOptions};
use super::{generate, Action, DeployError, Event, Progress, FIELD_MANAGER};
use crate::contract::{generated_keys, ObjectId, BUNDLE_LABEL};

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Delete objects of earlier revisions that are no longer rendered.
    pub prune: bool,
    /// Wait for readiness (`None`: return once applied).
    pub wait: Option<WaitOptions>,
}

/// What a deploy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The revision recorded; `None` when the plan equals the deployed revision's.
    pub revision: Option<u32>,
    /// Every applied object with what the apply did, in apply order.
    pub applied: Vec<Applied>,
    /// Objects of earlier revisions deleted.
    pub pruned: Vec<ObjectId>,
    /// Objects of earlier revisions not deleted, and why.
    pub kept: Vec<(ObjectId, String)>,
    /// Secrets whose generated keys were created now, with the key names.
    pub generated: Vec<(ObjectId, Vec<String>)>,
}

/// One applied object.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Its application.
    pub app: String,
    /// The object.
    pub id: ObjectId,
    /// What the apply did.
    pub action: Action,
}

impl Outcome {
    /// True when the cluster was changed.
    pub fn changed(&self) -> bool {
        !self.pruned.is_empty() || self.applied.iter().any(|a| a.action != Action::Unchanged)
    }
}

/// What happened when deleting an inventory entry.
pub(crate) enum Deletion {
    Deleted,
    Gone,
    Kept(String),
}

impl Cluster {
    /// Applies a prepared plan. A revision is recorded (pending, then deployed or failed)
    /// unless plan and inventory equal the currently deployed revision's, so re-deploying an
    /// unchanged bundle changes nothing.
    pub async fn apply(
        &self,
        prepared: &Prepared,
        options: &ApplyOptions,
        progress: &dyn Progress,
    ) -> Result<Outcome, DeployError> {
        let plan = &prepared.plan;
        let kinds = &prepared.kinds;
        if !prepared.namespace_exists {
            if let Lookup::Served(kind) = kinds.find("v1", "Namespace") {
                self.apply_object(
                    &kind,
                    &namespace_id(&plan.namespace),
                    &namespace_object(&plan.namespace),
                    FIELD_MANAGER,
                    false,
                )
                .await?;
            }
        }
        // Objects left in place by --no-prune stay in the inventory, so a later deploy or
        // `remove` still deletes them.
        let mut inventory: Vec<Entry> = prepared
            .targets
            .iter()
            .map(|t| Entry { app: t.app.clone(), id: t.id.clone() })
            .collect();
        if !options.prune {
            inventory.extend(stale_entries(prepared).into_iter().map(|(entry, _)| entry));
        }
        let latest = prepared.records.last();
        let unchanged = latest.is_some_and(|r| {
            r.status == RecordStatus::Deployed && r.plan == *plan && r.inventory == inventory
        });
        let mut record = (!unchanged).then(|| Record {
            revision: record::next_revision(&prepared.records),
            status: RecordStatus::Pending,
            plan: plan.clone(),
            inventory,
        });
        if let Some(r) = &record {
            record::save(self, kinds, r).await?;
        }
        let result = self.apply_targets(prepared, options, progress).await;
        let Some(r) = record.as_mut() else { return result };
        match result {
            Ok(mut outcome) => {
                r.status = RecordStatus::Deployed;
                record::save(self, kinds, r).await?;
                record::settle(self, kinds, &prepared.records, r.revision).await?;
                outcome.revision = Some(r.revision);
                Ok(outcome)
            }
            Err(error) => {
                r.status = RecordStatus::Failed;
                // The deploy's own error matters more than a failure to note it.
                if let Err(e) = record::save(self, kinds, r).await {
                    tracing::warn!("{e}");
                }
                Err(error)
            }
        }
    }

    async fn apply_targets(
        &self,
        prepared: &Prepared,
        options: &ApplyOptions,
        progress: &dyn Progress,
    ) -> Result<Outcome, DeployError> {
        let mut outcome = Outcome::default();
        let crds: Vec<&Target> =
            prepared.targets.iter().filter(|t| phase(&t.id) == Phase::Definitions).collect();
        let mut established = crds.is_empty();
        for t in &prepared.targets {
            if !established && phase(&t.id) == Phase::Objects {
                // Custom resources can only be applied once their definitions are served.
                let wait = options.wait.unwrap_or_default();
                wait::wait(self, &prepared.kinds, &crds, &wait, &super::NoProgress).await?;
                established = true;
            }
            let before = self.get(&t.kind, &t.id).await?;
            let after = self.apply_object(&t.kind, &t.id, &t.object, FIELD_MANAGER, false).await?;
            let mut action = match &before {
                None => Action::Created,
                Some(b)
                    if b["metadata"]["resourceVersion"] != after["metadata"]["resourceVersion"] =>
                {
                    Action::Configured
                }
                Some(_) => Action::Unchanged,
            };
            if t.id.kind == "Secret" && !generated_keys(&t.object).is_empty() {
                let generated = generate::ensure(self, t, &after).await?;
                if !generated.is_empty() {
                    if action == Action::Unchanged {
                        action = Action::Configured;
                    }
                    outcome.generated.push((t.id.clone(), generated));
                }
            }
            progress.event(Event::Applied { app: t.app.clone(), id: t.id.clone(), action });
            outcome.applied.push(Applied { app: t.app.clone(), id: t.id.clone(), action });
        }
        if options.prune {
            for (entry, kind) in stale_entries(prepared) {
                match self.delete_owned(&kind, &entry.id, &prepared.plan.bundle).await? {
                    Deletion::Deleted => {
                        progress.event(Event::Pruned { id: entry.id.clone() });
                        outcome.pruned.push(entry.id);
                    }
                    Deletion::Gone => {}
                    Deletion::Kept(why) => outcome.kept.push((entry.id, why)),
                }
            }
        }
        if let Some(wait) = &options.wait {
            let waited: Vec<&Target> =
                prepared.targets.iter().filter(|t| wait::waits_for(&t.id.kind)).collect();
            wait::wait(self, &prepared.kinds, &waited, wait, progress).await?;
        }
        Ok(outcome)
    }

    /// Deletes an inventory object if it still carries the bundle's label; CRDs and
    /// namespaces are never deleted.
    pub(crate) async fn delete_owned(
        &self,
        kind: &Kind,
        id: &ObjectId,
        bundle: &str,
    ) -> Result<Deletion, DeployError> {
        if let Some(why) = never_deleted(&id.kind) {
            return Ok(Deletion::Kept(why.to_string()));
        }
        let Some(live) = self.get(kind, id).await? else { return Ok(Deletion::Gone) };
        if !owned_by(&live, bundle) {
            return Ok(Deletion::Kept(format!("it is no longer labelled {BUNDLE_LABEL}={bundle}")));
        }
        Ok(if self.delete(kind, id).await? { Deletion::Deleted } else { Deletion::Gone })
    }
}

/// Why objects of a kind are never deleted by prune or remove, if they are not.
fn never_deleted(kind: &str) -> Option<&'static str> {
    match kind {
        "CustomResourceDefinition" => Some("CustomResourceDefinitions are never deleted: that would delete every resource of the kind in the cluster"),
        "Namespace" => Some("namespaces are never deleted: that would delete everything in them"),
        _ => None,
    }
}

/// Whether a live object carries the bundle's label (the inventory's second safety check).
pub(crate) fn owned_by(live: &Value, bundle: &str) -> bool {
    live["metadata"]["labels"][BUNDLE_LABEL].as_str() == Some(bundle)
}

/// Inventory entries of earlier revisions that the prepared plan no longer renders, with
/// their kinds, in deletion order (workloads before what they use).
pub(crate) fn stale_entries(prepared: &Prepared) -> Vec<(Entry, Kind)> {
    let rendered: BTreeSet<&ObjectId> = prepared.targets.iter().map(|t| &t.id).collect();
    let stale: Vec<Entry> = record::current_inventory(&prepared.records)
        .into_iter()
        .filter(|e| !rendered.contains(&e.id))
        .collect();
    with_kinds(&prepared.kinds, stale)
}

/// Inventory entries with the kinds to address them by, in deletion order; entries whose
/// kind the cluster no longer serves are left out (there is nothing to delete).
pub(crate) fn with_kinds(kinds: &Kinds, mut entries: Vec<Entry>) -> Vec<(Entry, Kind)> {
    entries.sort_by_key(|e| (std::cmp::Reverse(kind_rank(&e.id.kind)), e.id.clone()));
    entries
        .into_iter()
        .filter_map(|e| kinds.preferred(&e.id.group, &e.id.kind).map(|k| (e, k)))
        .collect()
}
