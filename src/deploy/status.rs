//! `status`, `remove` and the plan `rollback` re-applies, all read from revision records.

use std::collections::BTreeSet;

use serde::Serialize;

use super::apply::{with_kinds, Deletion};
use super::cluster::{Cluster, Kinds};
use super::keep::{Keep, KeptObjects};
use super::lock::LockOptions;
use super::plan::Plan;
use super::record::{self, Entry, Record, RecordStatus, Revision};
use super::wait::{readiness, waits_for, Readiness};
use super::{DeployError, Progress};
use crate::contract::{object_id, ObjectId, KEPT_FROM_LABEL};

/// A deployed bundle as the cluster has it now.
#[derive(Debug, Clone, Serialize)]
pub struct BundleStatus {
    /// The bundle.
    pub bundle: String,
    /// The namespace.
    pub namespace: String,
    /// The latest revision.
    pub revision: u32,
    /// The latest revision's state.
    pub state: RecordStatus,
    /// Every recorded revision, oldest first.
    pub revisions: Vec<Revision>,
    /// Applications of the latest revision.
    pub apps: Vec<AppStatus>,
}

/// One application's state.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// Application name.
    pub name: String,
    /// Charm name.
    pub charm: String,
    /// Charm version.
    pub version: String,
    /// Images it runs.
    pub images: Vec<String>,
    /// Objects waited for that are ready.
    pub ready: usize,
    /// Objects waited for (workloads, claims, jobs).
    pub total: usize,
    /// What is not ready, and why.
    pub waiting: Vec<String>,
}

/// How to remove a bundle.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// Also delete what is otherwise kept: claims (the data), generated credentials of
    /// applications with storage, objects annotated `charmer.io/resource-policy: keep`, and
    /// objects kept from the bundle by earlier prunes and removes.
    pub destroy_storage: bool,
    /// How to take the bundle's lock.
    pub lock: LockOptions,
}

/// What `remove` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removal {
    /// Objects deleted.
    pub deleted: Vec<ObjectId>,
    /// Objects deleted that finalizers still hold, with the finalizers (every claim has
    /// `kubernetes.io/pvc-protection`, which lets go once no pod mounts it).
    pub terminating: Vec<(ObjectId, Vec<String>)>,
    /// Inventory objects not deleted, and why.
    pub kept: Vec<(ObjectId, String)>,
    /// Objects left in place with their data, marked as kept from the bundle.
    pub retained: Vec<(ObjectId, Keep)>,
    /// Revision records deleted.
    pub records: Vec<String>,
    /// Things the user should know (a lock taken over from a holder that died).
    pub warnings: Vec<String>,
}

impl Cluster {
    async fn records(
        &self,
        bundle: &str,
        namespace: &str,
        groups: impl Fn(&[Record]) -> BTreeSet<String>,
    ) -> Result<(Vec<Record>, Kinds), DeployError> {
        let core = self.kinds(&BTreeSet::new()).await?;
        let records = record::load(self, &core, bundle, namespace).await?;
        if records.is_empty() {
            return Err(DeployError::NotDeployed {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
            });
        }
        let kinds = self.kinds(&groups(&records)).await?;
        Ok((records, kinds))
    }

    /// The bundle's applications, versions, images and readiness.
    pub async fn status(&self, bundle: &str, namespace: &str) -> Result<BundleStatus, DeployError> {
        let (records, kinds) = self.records(bundle, namespace, inventory_groups).await?;
        let Some(latest) = records.last() else {
            return Err(DeployError::NotDeployed {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
            });
        };
        let entries = with_kinds(
            &kinds,
            latest.inventory.iter().filter(|e| waits_for(&e.id.kind)).cloned().collect(),
        );
        let mut apps = Vec::new();
        for app in &latest.plan.apps {
            let mut status = AppStatus {
                name: app.name.clone(),
                charm: app.charm.clone(),
                version: app.version.clone(),
                images: app.images.clone(),
                ready: 0,
                total: 0,
                waiting: Vec::new(),
            };
            for (entry, kind) in entries.iter().filter(|(e, _)| e.app == app.name) {
                status.total += 1;
                match self.get(kind, &entry.id).await? {
                    None => status.waiting.push(format!("{} (missing)", entry.id)),
                    Some(live) => match readiness(&entry.id.kind, &live) {
                        Readiness::Ready => status.ready += 1,
                        Readiness::Pending(why) | Readiness::Failed(why) => {
                            status.waiting.push(format!("{} ({why})", entry.id))
                        }
                    },
                }
            }
            status.waiting.sort();
            apps.push(status);
        }
        Ok(BundleStatus {
            bundle: bundle.to_string(),
            namespace: namespace.to_string(),
            revision: latest.revision,
            state: latest.status,
            revisions: records
                .iter()
                .map(|r| Revision {
                    revision: r.revision,
                    status: r.status,
                    reason: r.reason.clone(),
                })
                .collect(),
            apps,
        })
    }

    /// Deletes exactly the bundle's inventory (objects still labelled with the bundle; never
    /// CRDs or the namespace), then its revision records, under the bundle's lock. Claims,
    /// generated credentials of applications with storage and objects marked keep are left in
    /// place, marked as kept from the bundle, unless `destroy_storage`, which also deletes
    /// what earlier prunes and removes kept.
    pub async fn remove(
        &self,
        bundle: &str,
        namespace: &str,
        options: &RemoveOptions,
        progress: &dyn Progress,
    ) -> Result<Removal, DeployError> {
        let core = self.kinds(&BTreeSet::new()).await?;
        if record::load(self, &core, bundle, namespace).await?.is_empty() {
            let kept = self.kept_objects(&core, bundle, namespace).await?;
            let (bundle, namespace) = (bundle.to_string(), namespace.to_string());
            if kept.is_empty() {
                return Err(DeployError::NotDeployed { bundle, namespace });
            }
            if !options.destroy_storage {
                let kept = kept.iter().map(ToString::to_string).collect();
                return Err(DeployError::OnlyKept { bundle, namespace, kept });
            }
        }
        let lock = self.lock(bundle, namespace, &options.lock).await?;
        let result = self.remove_locked(&core, bundle, namespace, options, progress).await;
        let (mut removal, taken_over) = lock.release_after(result).await?;
        removal.warnings.extend(taken_over);
        Ok(removal)
    }

    /// `remove` once the lock is held: the records are read again, as they may have changed
    /// while waiting for it.
    async fn remove_locked(
        &self,
        core: &Kinds,
        bundle: &str,
        namespace: &str,
        options: &RemoveOptions,
        progress: &dyn Progress,
    ) -> Result<Removal, DeployError> {
        let records = record::load(self, core, bundle, namespace).await?;
        let kinds = self.kinds(&inventory_groups(&records)).await?;
        let kept = KeptObjects::of(&records);
        let mut entries = record::current_inventory(&records);
        if options.destroy_storage {
            let known: BTreeSet<ObjectId> = entries.iter().map(|e| e.id.clone()).collect();
            for id in self.kept_objects(core, bundle, namespace).await? {
                if !known.contains(&id) {
                    entries.push(Entry { app: String::new(), id });
                }
            }
        }
        let mut removal = Removal::default();
        let entries = with_kinds(&kinds, entries);
        let destroy = options.destroy_storage;
        for (id, deletion) in
            self.dispose(&kinds, entries, bundle, namespace, &kept, destroy, progress).await?
        {
            match deletion {
                Deletion::Deleted => removal.deleted.push(id),
                Deletion::Terminating(finalizers) => removal.terminating.push((id, finalizers)),
                Deletion::Gone => {}
                Deletion::Kept(why) => removal.kept.push((id, why)),
                Deletion::Retained(keep) => removal.retained.push((id, keep)),
            }
        }
        for r in &records {
            record::delete(self, &kinds, bundle, namespace, r.revision).await?;
            removal.records.push(record::name(bundle, r.revision));
        }
        Ok(removal)
    }

    /// Objects earlier prunes and removes kept from the bundle (claims, Secrets and
    /// ConfigMaps: the kinds data and credentials live in).
    async fn kept_objects(
        &self,
        kinds: &Kinds,
        bundle: &str,
        namespace: &str,
    ) -> Result<Vec<ObjectId>, DeployError> {
        let mut found = Vec::new();
        for kind_name in ["PersistentVolumeClaim", "Secret", "ConfigMap"] {
            let Some(kind) = kinds.preferred("", kind_name) else { continue };
            let selector = format!("{KEPT_FROM_LABEL}={bundle}");
            for object in self.list(&kind, Some(namespace), &selector).await? {
                if let Ok(id) = object_id(&object, Some(namespace)) {
                    found.push(id);
                }
            }
        }
        Ok(found)
    }

    /// The plan of revision `revision`, or of the last good revision before the current one
    /// when `None`, with the revision number.
    pub async fn rollback_plan(
        &self,
        bundle: &str,
        namespace: &str,
        revision: Option<u32>,
    ) -> Result<(Plan, u32), DeployError> {
        let (records, _) = self.records(bundle, namespace, |_| BTreeSet::new()).await?;
        let current = records
            .iter()
            .rev()
            .find(|r| r.status == RecordStatus::Deployed)
            .map_or(u32::MAX, |r| r.revision);
        let found = match revision {
            Some(n) => records.iter().find(|r| r.revision == n),
            None => records.iter().rev().find(|r| {
                r.revision < current
                    && matches!(r.status, RecordStatus::Deployed | RecordStatus::Superseded)
            }),
        };
        match found {
            Some(r) => Ok((r.plan.clone(), r.revision)),
            None => Err(DeployError::NoRevision {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
                revision: revision.unwrap_or(0),
            }),
        }
    }
}

fn inventory_groups(records: &[Record]) -> BTreeSet<String> {
    records.iter().flat_map(|r| r.inventory.iter().map(|e| e.id.group.clone())).collect()
}
