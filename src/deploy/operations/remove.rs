//! `remove`: deleting a bundle's objects and revision records, keeping its data and
//! credentials unless told to destroy them.

use std::collections::BTreeSet;

use serde::Serialize;

use super::prune::Deletion;
use crate::contract::{object_id, ObjectId, KEPT_FROM_LABEL};
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::events::Progress;
use crate::deploy::model::kinds::Kinds;
use crate::deploy::state::keep::{Keep, KeptObjects};
use crate::deploy::state::lock::LockOptions;
use crate::deploy::state::record::{self, inventory_groups, with_kinds, Entry};

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
}
