//! `status`, `remove` and the plan `rollback` re-applies, all read from revision records.

use std::collections::BTreeSet;

use serde::Serialize;

use super::apply::{with_kinds, Deletion};
use super::cluster::{Cluster, Kinds};
use super::plan::Plan;
use super::record::{self, Record, RecordStatus, Revision};
use super::wait::{readiness, waits_for, Readiness};
use super::{DeployError, Event, Progress};
use crate::contract::ObjectId;

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

/// What `remove` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removal {
    /// Objects deleted.
    pub deleted: Vec<ObjectId>,
    /// Inventory objects not deleted, and why.
    pub kept: Vec<(ObjectId, String)>,
    /// Revision records deleted.
    pub records: Vec<String>,
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
                .map(|r| Revision { revision: r.revision, status: r.status })
                .collect(),
            apps,
        })
    }

    /// Deletes exactly the bundle's inventory (objects still labelled with the bundle; never
    /// CRDs or the namespace), then its revision records.
    pub async fn remove(
        &self,
        bundle: &str,
        namespace: &str,
        progress: &dyn Progress,
    ) -> Result<Removal, DeployError> {
        let (records, kinds) = self.records(bundle, namespace, inventory_groups).await?;
        let mut removal = Removal::default();
        for (entry, kind) in with_kinds(&kinds, record::current_inventory(&records)) {
            match self.delete_owned(&kind, &entry.id, bundle).await? {
                Deletion::Deleted => {
                    progress.event(Event::Pruned { id: entry.id.clone() });
                    removal.deleted.push(entry.id);
                }
                Deletion::Gone => {}
                Deletion::Kept(why) => removal.kept.push((entry.id, why)),
            }
        }
        for r in &records {
            record::delete(self, &kinds, bundle, namespace, r.revision).await?;
            removal.records.push(record::name(bundle, r.revision));
        }
        Ok(removal)
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
