//! Preflight: everything that would make a deploy fail half-way is checked before the first
//! write, and every problem is reported at once with its fix.

mod images;
mod istiod;
mod ownership;
mod ports;
mod secrets;
mod storage;
mod versions;

use std::collections::{BTreeMap, BTreeSet};

pub use images::RegistryAccess;

use serde_json::Value;

use crate::contract::{group_of, ObjectId};
use crate::deploy::cluster::access::{access, Access, Unverified};
use crate::deploy::cluster::client::{Cluster, FIELD_MANAGER};
use crate::deploy::error::{answer, DeployError};
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;
use crate::deploy::model::targets::{self, Target};
use crate::deploy::model::versions::KubeVersion;
use crate::deploy::state::record::{self, Record};
use crate::diag::{Problem, Problems};

/// A plan checked against the cluster: every kind mapped, every preflight check passed.
/// Only [`Cluster::prepare`] makes one.
pub struct Prepared {
    pub(crate) plan: DeployPlan,
    pub(crate) targets: Vec<Target>,
    pub(crate) kinds: Kinds,
    pub(crate) namespace_exists: bool,
    pub(crate) records: Vec<Record>,
    pub(crate) version: KubeVersion,
    pub(crate) notes: Vec<String>,
    pub(crate) warnings: Vec<String>,
    /// Objects other bundles manage may be taken over (`--adopt`), also at write time.
    pub(crate) adopt: bool,
    /// Per application, what the wait says about it while it is not ready (a dependency).
    pub(crate) wait_notes: BTreeMap<String, String>,
}

/// How to run preflight.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// Take over objects that another bundle, or another tool (field manager), manages,
    /// instead of failing preflight naming them.
    pub adopt: bool,
    /// Fail on checks the identity has no permission to make (reading StorageClasses,
    /// PersistentVolumes, the Namespace) instead of warning that they were not verified.
    pub strict: bool,
    /// Look every image up in the registry it is pulled from (a `HEAD` of its manifest)
    /// through this access; `None`: images are not looked up (`--skip-image-check`).
    pub registries: Option<RegistryAccess>,
    /// Let images move to another registry than the deployed revision's (refused otherwise).
    pub allow_registry_change: bool,
}

impl Prepared {
    /// The plan.
    pub fn plan(&self) -> &DeployPlan {
        &self.plan
    }

    /// The cluster's Kubernetes version.
    pub fn cluster_version(&self) -> KubeVersion {
        self.version
    }

    /// Whether the namespace already exists (deploy creates it otherwise).
    pub fn namespace_exists(&self) -> bool {
        self.namespace_exists
    }

    /// What preflight found worth saying that is not a problem: claims a pre-created
    /// PersistentVolume will bind, objects taken over with `adopt`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Checks that could not be made for want of a permission, one line each ("storage class
    /// not verified: no permission to list storageclasses.storage.k8s.io at the cluster
    /// scope"); empty with `strict`, where they are problems instead.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Per application, what the wait adds while it is not ready.
    pub(crate) fn wait_notes(&self) -> BTreeMap<String, String> {
        self.wait_notes.clone()
    }
}

impl Cluster {
    /// Validates the plan, discovers the kinds it uses and runs every preflight check; only
    /// reads from the cluster (and one dry-run namespace create when the namespace is
    /// missing). Fails with every problem found.
    pub async fn prepare(&self, plan: DeployPlan) -> Result<Prepared, DeployError> {
        self.prepare_with(plan, &PrepareOptions::default()).await
    }

    /// [`Cluster::prepare`] with options.
    pub async fn prepare_with(
        &self,
        plan: DeployPlan,
        options: &PrepareOptions,
    ) -> Result<Prepared, DeployError> {
        plan.validate()?;
        let version = self.version().await?;
        let mut groups: BTreeSet<String> = plan
            .objects
            .iter()
            .filter_map(|o| o.object.get("apiVersion")?.as_str().map(|v| group_of(v).to_string()))
            .collect();
        groups.insert("storage.k8s.io".to_string());
        let mut kinds = self.kinds(&groups).await?;
        let mut unverified = Unverified::default();
        let namespace_exists =
            self.namespace_exists(&kinds, &plan.namespace, &mut unverified).await?;
        let records = if namespace_exists {
            record::load(self, &kinds, &plan.bundle, &plan.namespace).await?
        } else {
            Vec::new()
        };
        // Pruning needs the kinds of earlier revisions' objects too.
        let inventory_groups: BTreeSet<String> =
            record::current_inventory(&records).into_iter().map(|e| e.id.group).collect();
        if !inventory_groups.is_subset(&groups) {
            groups.extend(inventory_groups);
            kinds = self.kinds(&groups).await?;
        }

        let mut problems = Problems::default();
        let mut notes = Vec::new();
        for problem in versions::check(&plan, version) {
            problems.push(problem);
        }
        let (targets, kind_problems) = targets::resolve(&plan, &kinds);
        for problem in kind_problems {
            problems.push(problem);
        }
        for problem in images::check(&plan) {
            problems.push(problem);
        }
        let (moved, moved_notes) =
            images::registry_changes(&plan, &records, options.allow_registry_change);
        moved.into_iter().for_each(|p| problems.push(p));
        notes.extend(moved_notes);
        // The checks only read (but for one dry-run namespace create), each on its own: they
        // run at once, each with its own notes and unverified checks, merged in a fixed order.
        let namespace_check = async {
            if namespace_exists {
                return Ok(None);
            }
            self.check_namespace_creatable(&kinds, &plan.namespace).await
        };
        let secrets = async {
            let mut unverified = Unverified::default();
            let found = self.check_secrets(&kinds, &plan, namespace_exists, &mut unverified).await;
            found.map(|p| (p, unverified))
        };
        let storage = async {
            let (mut notes, mut unverified) = (Vec::new(), Unverified::default());
            let found = self.check_storage(&kinds, &plan, &mut notes, &mut unverified).await;
            found.map(|p| (p, notes, unverified))
        };
        let host_paths = async {
            let mut unverified = Unverified::default();
            let found = self.check_host_paths(&kinds, &plan, &mut unverified).await;
            found.map(|p| (p, unverified))
        };
        let node_ports = async {
            let mut unverified = Unverified::default();
            let found = self.check_node_ports(&kinds, &plan, &mut unverified).await;
            found.map(|p| (p, unverified))
        };
        let ownership = async {
            let mut notes = Vec::new();
            let found = self
                .check_ownership(
                    &plan.bundle,
                    &targets,
                    &records,
                    namespace_exists,
                    options.adopt,
                    &mut notes,
                )
                .await;
            found.map(|p| (p, notes))
        };
        let presence = async {
            match &options.registries {
                Some(access) => images::check_presence(&plan, access).await,
                None => images::Presence::default(),
            }
        };
        let lock = self.check_lock_access(&plan.bundle, &plan.namespace);
        let (namespace_check, lock, secrets, storage, host_paths, node_ports, ownership, presence) = tokio::join!(
            namespace_check,
            lock,
            secrets,
            storage,
            host_paths,
            node_ports,
            ownership,
            presence
        );
        namespace_check?.into_iter().for_each(|p| problems.push(p));
        lock?.into_iter().for_each(|p| problems.push(p));
        let (found, secrets_unverified) = secrets?;
        found.into_iter().for_each(|p| problems.push(p));
        let (found, storage_notes, storage_unverified) = storage?;
        found.into_iter().for_each(|p| problems.push(p));
        notes.extend(storage_notes);
        let (found, host_paths_unverified) = host_paths?;
        found.into_iter().for_each(|p| problems.push(p));
        let (found, ports_unverified) = node_ports?;
        found.into_iter().for_each(|p| problems.push(p));
        presence.problems.into_iter().for_each(|p| problems.push(p));
        let (found, ownership_notes) = ownership?;
        found.into_iter().for_each(|p| problems.push(p));
        notes.extend(ownership_notes);
        for checks in
            [secrets_unverified, storage_unverified, host_paths_unverified, ports_unverified]
        {
            unverified.append(checks);
        }
        let mut warnings = if options.strict {
            for problem in unverified.problems() {
                problems.push(problem);
            }
            Vec::new()
        } else {
            unverified.warnings()
        };
        warnings.extend(presence.warnings);
        let (istiod, wait_notes) = self.check_istiod(&kinds, &plan).await?;
        warnings.extend(istiod);
        problems.into_result(())?;
        let adopt = options.adopt;
        Ok(Prepared {
            plan,
            targets,
            kinds,
            namespace_exists,
            records,
            version,
            notes,
            warnings,
            adopt,
            wait_notes,
        })
    }

    /// Whether the namespace exists. An identity that may not read it is assumed to work in
    /// an existing namespace (the check is reported as not verified): a missing one fails the
    /// first write, naming it.
    async fn namespace_exists(
        &self,
        kinds: &Kinds,
        namespace: &str,
        unverified: &mut Unverified,
    ) -> Result<bool, DeployError> {
        let Lookup::Served(kind) = kinds.find("v1", "Namespace") else {
            return Err(DeployError::NotServed("Namespaces"));
        };
        match access(self.get(&kind, &namespace_id(namespace)).await)? {
            Access::Allowed(found) => Ok(found.is_some()),
            Access::Forbidden(message) => {
                unverified.assume(
                    &format!("namespace {namespace}"),
                    &format!("get namespaces \"{namespace}\""),
                    "assuming it exists",
                    message,
                );
                Ok(true)
            }
        }
    }

    async fn check_namespace_creatable(
        &self,
        kinds: &Kinds,
        namespace: &str,
    ) -> Result<Option<Problem>, DeployError> {
        let Lookup::Served(kind) = kinds.find("v1", "Namespace") else { return Ok(None) };
        match self.apply_object(&kind, &namespace_id(namespace), &namespace_object(namespace), FIELD_MANAGER, true).await {
            Ok(_) => Ok(None),
            Err(error) => match error.status() {
                Some(status) => Ok(Some(
                    Problem::new("preflight", format!("namespace {namespace}"), format!("does not exist and cannot be created: {}", answer(status)))
                        .hint("ask an administrator to create it, or deploy into a namespace you may use with --namespace"),
                )),
                None => Err(error),
            },
        }
    }
}

pub(crate) fn namespace_id(namespace: &str) -> ObjectId {
    ObjectId {
        group: String::new(),
        kind: "Namespace".into(),
        namespace: None,
        name: namespace.to_string(),
    }
}

/// The namespace deploy creates when it is missing (not part of any inventory: removing a
/// bundle never deletes its namespace).
pub(crate) fn namespace_object(namespace: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"app.kubernetes.io/managed-by": "charmer"}},
    })
}

/// A plan for the preflight checks' tests.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    use crate::deploy::model::plan::{DeployPlan, PlanApp, PlanObject};
    use crate::deploy::model::versions::kubernetes_needs;

    /// A plan of application `web` (needing Kubernetes 1.20) in namespace `ns` with a
    /// registry, rendering `objects`.
    pub(crate) fn plan(objects: Vec<Value>) -> DeployPlan {
        DeployPlan {
            bundle: "b".into(),
            namespace: "ns".into(),
            registry: Some("registry.local:5000".parse().unwrap()),
            apps: vec![PlanApp {
                kubernetes: kubernetes_needs(&[serde_yaml::Value::String(
                    "k8s-api >= 1.20".into(),
                )]),
                ..PlanApp::new("web", "web", "1.0.0")
            }],
            objects: objects
                .into_iter()
                .map(|object| PlanObject { app: "web".into(), object })
                .collect(),
        }
    }
}
