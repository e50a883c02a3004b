//! `restart`: a rollout restart of an application's workloads, as `kubectl rollout restart`
//! does it (a `kubectl.kubernetes.io/restartedAt` pod-template annotation), applied under its
//! own field manager so that later deploys, which apply as the bundle's manager ([`bundle_manager`](crate::deploy::cluster::ownership::bundle_manager)) and never
//! name that annotation, leave it in place and do not roll the pods a second time.

use serde_json::{json, Value};

use super::wait::{self, Baseline, Scope, WaitOptions};
use crate::contract::ObjectId;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::events::Progress;
use crate::deploy::model::targets::Target;
use crate::deploy::state::record::{with_kinds, Entry};

/// The field manager of the restart annotation.
pub const RESTART_MANAGER: &str = "charmer-restart";
/// The pod-template annotation whose change makes the controllers replace every pod.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// What a restart did.
#[derive(Debug, Clone, Default)]
pub struct Restarted {
    /// The workloads restarted.
    pub workloads: Vec<ObjectId>,
    /// Failing pods of earlier StatefulSet revisions the wait deleted so their controller
    /// re-creates them (see `Outcome::replaced`).
    pub replaced: Vec<String>,
}

/// Kinds whose pods a restart replaces.
const RESTARTABLE: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

impl Cluster {
    /// Restarts every Deployment, StatefulSet and DaemonSet of application `app` of the
    /// latest revision of `bundle`, stamping `restarted_at` (RFC 3339) on their pod templates;
    /// with `wait`, waits until the new pods are ready (deleting failing pods of earlier
    /// StatefulSet revisions, which their controller would wait on for ever).
    pub async fn restart(
        &self,
        bundle: &str,
        namespace: &str,
        app: &str,
        restarted_at: &str,
        wait: Option<&WaitOptions>,
        progress: &dyn Progress,
    ) -> Result<Restarted, DeployError> {
        if let Some(wait) = wait {
            wait.check()?;
        }
        let workloads = self.app_entries(bundle, namespace, app).await?;
        let workloads: Vec<Entry> =
            workloads.into_iter().filter(|e| RESTARTABLE.contains(&e.id.kind.as_str())).collect();
        if workloads.is_empty() {
            return Err(DeployError::NothingToRestart { app: app.to_string() });
        }
        let kinds = self.kinds(&workloads.iter().map(|e| e.id.group.clone()).collect()).await?;
        let patches: Vec<_> = with_kinds(&kinds, workloads)
            .into_iter()
            .map(|(entry, kind)| {
                let patch = restart_patch(&kind.resource.api_version, &entry.id, restarted_at);
                (entry.app, kind, entry.id, patch)
            })
            .collect();
        // The dry-run gate: no workload restarts unless the server accepts every patch.
        self.gate_patches(&patches, RESTART_MANAGER).await?;
        let baseline = match wait {
            Some(_) => Baseline::read(self, &kinds, bundle, namespace).await?,
            None => Baseline::default(),
        };
        let mut targets = Vec::new();
        for (app, kind, id, patch) in patches {
            let entry = Entry { app, id };
            self.apply_object(&kind, &entry.id, &patch, RESTART_MANAGER, false).await?;
            targets.push(Target {
                id: entry.id,
                app: entry.app,
                kind,
                served: true,
                object: Value::Null,
            });
        }
        let mut replaced = Vec::new();
        if let Some(options) = wait {
            let waited: Vec<&Target> = targets.iter().collect();
            let scope = Scope { bundle: bundle.to_string(), baseline, ..Scope::default() };
            replaced = wait::wait(self, &kinds, &waited, &scope, options, progress).await?;
        }
        Ok(Restarted { workloads: targets.into_iter().map(|t| t.id).collect(), replaced })
    }
}

/// The partial object that sets only the restart annotation (server-side apply merges it).
fn restart_patch(api_version: &str, id: &ObjectId, restarted_at: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": id.kind,
        "metadata": {"name": id.name, "namespace": id.namespace},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: restarted_at}}}},
    })
}
