//! Prune: deleting objects a bundle no longer renders (or, for `remove`, all of them), while
//! keeping data, credentials and objects marked keep, and never deleting what others took
//! over.

use std::collections::BTreeSet;

use super::preflight::Prepared;
use crate::contract::{object_id, ObjectId, BUNDLE_LABEL};
use crate::deploy::cluster::client::{Cluster, Removed};
use crate::deploy::error::DeployError;
use crate::deploy::model::events::{Event, Progress};
use crate::deploy::model::kinds::{Kind, Kinds};
use crate::deploy::state::keep::{owned_by, Keep, KeptObjects};
use crate::deploy::state::record::{self, with_kinds, Entry};

/// What happened when deleting an inventory entry.
pub(crate) enum Deletion {
    Deleted,
    /// Deleted, but these finalizers hold it until their controllers let go (a claim stays
    /// while a pod mounts it).
    Terminating(Vec<String>),
    Gone,
    Kept(String),
    /// Left in place and marked as kept from the bundle.
    Retained(Keep),
}

impl From<Removed> for Deletion {
    fn from(removed: Removed) -> Deletion {
        match removed {
            Removed::Deleted => Deletion::Deleted,
            Removed::Terminating(finalizers) => Deletion::Terminating(finalizers),
            Removed::Missing => Deletion::Gone,
        }
    }
}

impl Cluster {
    /// Deletes an inventory object if it still carries the bundle's label; CRDs and
    /// namespaces are never deleted. An object with a `keep` reason is left in place and
    /// marked as kept from the bundle instead (pass `None` to destroy it).
    pub(crate) async fn delete_owned(
        &self,
        kind: &Kind,
        id: &ObjectId,
        bundle: &str,
        keep: Option<Keep>,
    ) -> Result<Deletion, DeployError> {
        if let Some(why) = never_deleted(&id.kind) {
            return Ok(Deletion::Kept(why.to_string()));
        }
        let Some(live) = self.get(kind, id).await? else { return Ok(Deletion::Gone) };
        if !owned_by(&live, bundle) {
            return Ok(Deletion::Kept(format!("it is no longer labelled {BUNDLE_LABEL}={bundle}")));
        }
        if let Some(keep) = keep {
            self.mark_kept(kind, id, bundle, keep).await?;
            return Ok(Deletion::Retained(keep));
        }
        Ok(self.delete(kind, id).await?.into())
    }

    /// Deletes inventory entries (in the order given) with [`Cluster::delete_owned`], keeping
    /// what `kept` says is kept unless `destroy`; then the claims the StatefulSet controller
    /// made for the StatefulSets among them, which Kubernetes leaves behind: marked as kept,
    /// or deleted with `destroy`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn dispose(
        &self,
        kinds: &Kinds,
        entries: Vec<(Entry, Kind)>,
        bundle: &str,
        namespace: &str,
        kept: &KeptObjects,
        destroy: bool,
        progress: &dyn Progress,
    ) -> Result<Vec<(ObjectId, Deletion)>, DeployError> {
        let mut done = Vec::new();
        let mut sets = Vec::new();
        for (entry, kind) in entries {
            let keep = kept.reason(&entry.id).filter(|_| !destroy);
            let deletion = self.delete_owned(&kind, &entry.id, bundle, keep).await?;
            if entry.id.kind == "StatefulSet"
                && matches!(deletion, Deletion::Deleted | Deletion::Terminating(_) | Deletion::Gone)
            {
                sets.push(entry.id.name.clone());
            }
            done.push((entry.id, deletion));
        }
        let Some(claim_kind) = kinds.preferred("", "PersistentVolumeClaim") else {
            return Ok(done);
        };
        if !sets.is_empty() {
            for claim in self.list(&claim_kind, Some(namespace), "").await? {
                let Ok(id) = object_id(&claim, Some(namespace)) else { continue };
                if !kept.is_claim_of(&claim, &sets, bundle) {
                    continue;
                }
                let deletion = if destroy {
                    self.delete(&claim_kind, &id).await?.into()
                } else {
                    self.mark_kept(&claim_kind, &id, bundle, Keep::Data).await?;
                    Deletion::Retained(Keep::Data)
                };
                done.push((id, deletion));
            }
        }
        for (id, deletion) in &done {
            if matches!(deletion, Deletion::Deleted | Deletion::Terminating(_)) {
                progress.event(Event::Pruned { id: id.clone() });
            }
        }
        Ok(done)
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
