//! Applying a prepared plan: namespace, lock, revision record, CRDs, then every object with
//! server-side apply; generated credentials; adoption of kept objects; prune (keeping data);
//! wait; and the record's final state (deployed, failed or interrupted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::gate::Gate;
use super::generate;
use super::preflight::{namespace_id, namespace_object, Prepared};
use super::prune::{stale_entries, Deletion};
use super::wait::{self, Baseline, Scope, WaitOptions};
use crate::contract::{generated_keys, object_id, ObjectId, KEPT_FROM_LABEL};
use crate::deploy::cluster::client::{Cluster, FIELD_MANAGER};
use crate::deploy::error::DeployError;
use crate::deploy::health::kstatus::waits_for;
use crate::deploy::model::events::{Action, Event, NoProgress, Progress};
use crate::deploy::model::kinds::Lookup;
use crate::deploy::model::targets::{phase, Phase, Target};
use crate::deploy::state::keep::{claim_templates, is_set_claim, kept_from, Keep, KeptObjects};
use crate::deploy::state::lock::LockOptions;
use crate::deploy::state::record::{self, Entry, Record, RecordStatus};

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Delete objects of earlier revisions that are no longer rendered (data is kept).
    pub prune: bool,
    /// Wait for readiness (`None`: return once applied).
    pub wait: Option<WaitOptions>,
    /// How to take the bundle's lock.
    pub lock: LockOptions,
    /// Stops the operation cleanly when triggered (the CLI triggers it on SIGINT/SIGTERM).
    pub interrupt: Option<Interrupt>,
    /// When applying or waiting fails, re-apply the last deployed revision.
    pub rollback_on_failure: bool,
}

/// A stop request shared between a signal handler and a running operation.
#[derive(Debug, Clone)]
pub struct Interrupt(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Interrupt {
    /// Asks the operation to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`Interrupt::trigger`] has been called.
    pub async fn triggered(&self) {
        let mut receiver = self.0.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Runs `work` until it ends or `interrupt` (if any) is triggered; then `work` is dropped
    /// at its next await point and the result is [`DeployError::Interrupted`], `during`
    /// saying what was going on.
    async fn around<T>(
        interrupt: Option<&Interrupt>,
        work: impl std::future::Future<Output = Result<T, DeployError>>,
        during: impl FnOnce() -> String,
    ) -> Result<T, DeployError> {
        let Some(interrupt) = interrupt else { return work.await };
        tokio::select! {
            result = work => result,
            () = interrupt.triggered() => Err(DeployError::Interrupted { during: during() }),
        }
    }
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
    /// Objects of earlier revisions no longer rendered but left in place (data, credentials,
    /// resource policy), marked as kept from the bundle.
    pub retained: Vec<(ObjectId, Keep)>,
    /// Objects an earlier remove or prune kept (data, credentials) that belong to this deploy
    /// again, with the bundle they were kept from.
    pub adopted: Vec<(ObjectId, String)>,
    /// Secrets whose generated keys were created now, with the key names.
    pub generated: Vec<(ObjectId, Vec<String>)>,
    /// Claims expanded because their StatefulSet's claim template grew: (claim, from, to).
    pub expanded: Vec<(ObjectId, String, String)>,
    /// Things the user should know (a lock taken over from a holder that died).
    pub warnings: Vec<String>,
    /// Failing pods of earlier StatefulSet revisions the wait deleted so their controller
    /// re-creates them from the current template (forced rollback), one line each.
    pub replaced: Vec<String>,
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
        !self.pruned.is_empty()
            || !self.retained.is_empty()
            || self.applied.iter().any(|a| a.action != Action::Unchanged)
    }
}

impl Cluster {
    /// Applies a prepared plan under the bundle's lock. A revision is recorded (created as
    /// pending, then deployed, failed or interrupted) unless plan and inventory equal the
    /// currently deployed revision's, so re-deploying an unchanged bundle changes nothing.
    pub async fn apply(
        &self,
        prepared: &Prepared,
        options: &ApplyOptions,
        progress: &dyn Progress,
    ) -> Result<Outcome, DeployError> {
        let plan = &prepared.plan;
        if let Some(wait) = &options.wait {
            wait.check()?;
        }
        // The dry-run gate: nothing is written unless the server accepts every object.
        let mut gate = self.gate(prepared, prepared.namespace_exists).await?;
        if !prepared.namespace_exists {
            // The lock lives in the namespace, so it comes first.
            if let Lookup::Served(kind) = prepared.kinds.find("v1", "Namespace") {
                self.apply_object(
                    &kind,
                    &namespace_id(&plan.namespace),
                    &namespace_object(&plan.namespace),
                    FIELD_MANAGER,
                    false,
                )
                .await?;
            }
            // Objects in the namespace can only be dry-run now that it exists.
            gate = self.gate(prepared, true).await.map_err(|error| match error {
                DeployError::Refused { problems, .. } => DeployError::Refused {
                    problems,
                    created_namespace: Some(plan.namespace.clone()),
                },
                other => other,
            })?;
        }
        let locking = self.lock(&plan.bundle, &plan.namespace, &options.lock);
        let lock = Interrupt::around(options.interrupt.as_ref(), locking, || {
            "while waiting for the lock; nothing was applied".to_string()
        })
        .await?;
        let result = match self.apply_locked(prepared, &gate, options, progress).await {
            Err(error) if options.rollback_on_failure && rolls_back(&error) => {
                self.roll_back(prepared, options, progress, error).await
            }
            result => result,
        };
        let (mut outcome, taken_over) = lock.release_after(result).await?;
        outcome.warnings.extend(taken_over);
        outcome.warnings.extend(gate.warnings());
        Ok(outcome)
    }

    async fn apply_locked(
        &self,
        prepared: &Prepared,
        gate: &Gate,
        options: &ApplyOptions,
        progress: &dyn Progress,
    ) -> Result<Outcome, DeployError> {
        let plan = &prepared.plan;
        let kinds = &prepared.kinds;
        self.check_unchanged_since_preflight(prepared).await?;
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
            reason: None,
            applied: Some(record::now()),
        });
        if let Some(r) = &record {
            record::create(self, kinds, r).await?;
        }
        let applied = AtomicUsize::new(0);
        let work = self.apply_targets(prepared, gate, options, progress, &applied);
        let result = Interrupt::around(options.interrupt.as_ref(), work, || {
            let total = prepared.targets.len();
            match applied.load(Ordering::SeqCst) {
                done if done < total => format!("after applying {done} of {total} objects"),
                _ => format!("while waiting (all {total} objects applied)"),
            }
        })
        .await;
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
                let error = match error {
                    DeployError::Interrupted { during } => {
                        r.status = RecordStatus::Interrupted;
                        r.reason = Some(format!("interrupted {during}"));
                        let during =
                            format!("{during}; revision {} is recorded as interrupted", r.revision);
                        DeployError::Interrupted { during }
                    }
                    other => {
                        r.status = RecordStatus::Failed;
                        r.reason = Some(other.to_string());
                        other
                    }
                };
                // The deploy's own error matters more than a failure to note it.
                if let Err(e) = record::save(self, kinds, r).await {
                    tracing::warn!("{e}");
                }
                Err(error)
            }
        }
    }

    /// Preflight read the records before the lock was taken; another operation may have
    /// recorded a revision in between, which would make this plan's revision number and
    /// inventory wrong.
    async fn check_unchanged_since_preflight(
        &self,
        prepared: &Prepared,
    ) -> Result<(), DeployError> {
        let plan = &prepared.plan;
        let now = record::load(self, &prepared.kinds, &plan.bundle, &plan.namespace).await?;
        let states = |records: &[Record]| -> Vec<(u32, RecordStatus)> {
            records.iter().map(|r| (r.revision, r.status)).collect()
        };
        if states(&now) == states(&prepared.records) {
            return Ok(());
        }
        Err(DeployError::Changed {
            bundle: plan.bundle.clone(),
            namespace: plan.namespace.clone(),
            revision: record::next_revision(&now) - 1,
        })
    }

    /// `rollback_on_failure`: re-applies the last deployed revision after `error`.
    async fn roll_back(
        &self,
        failed: &Prepared,
        options: &ApplyOptions,
        progress: &dyn Progress,
        error: DeployError,
    ) -> Result<Outcome, DeployError> {
        let previous = failed.records.iter().rev().find(|r| r.status == RecordStatus::Deployed);
        // Nothing to go back to: no earlier revision, or it is this very plan.
        let Some(previous) = previous.filter(|r| r.plan != failed.plan) else {
            return Err(error);
        };
        tracing::warn!("{error}; rolling back to revision {}", previous.revision);
        let prepared = self.prepare(previous.plan.clone()).await?;
        let gate = self.gate(&prepared, true).await?;
        let options = ApplyOptions { rollback_on_failure: false, ..options.clone() };
        let outcome = Box::pin(self.apply_locked(&prepared, &gate, &options, progress)).await?;
        Err(DeployError::RolledBack {
            error: Box::new(error),
            to: previous.revision,
            revision: outcome.revision.unwrap_or(previous.revision),
        })
    }

    async fn apply_targets(
        &self,
        prepared: &Prepared,
        gate: &Gate,
        options: &ApplyOptions,
        progress: &dyn Progress,
        applied: &AtomicUsize,
    ) -> Result<Outcome, DeployError> {
        let mut outcome = Outcome::default();
        let plan = &prepared.plan;
        // Which pods already fail before anything changes: they get a kubelet retry window.
        let baseline = match (&options.wait, prepared.namespace_exists) {
            (Some(_), true) => {
                Baseline::read(self, &prepared.kinds, &plan.bundle, &plan.namespace).await?
            }
            _ => Baseline::default(),
        };
        let scope = Scope { bundle: plan.bundle.clone(), baseline, notes: prepared.wait_notes() };
        let crds: Vec<&Target> =
            prepared.targets.iter().filter(|t| phase(&t.id) == Phase::Definitions).collect();
        let mut established = crds.is_empty();
        for t in &prepared.targets {
            if !established && phase(&t.id) == Phase::Objects {
                // Custom resources can only be applied once their definitions are served.
                let wait = options.wait.unwrap_or_default();
                wait::wait(self, &prepared.kinds, &crds, &scope, &wait, &NoProgress).await?;
                established = true;
            }
            let recreated = gate.recreate.get(&t.id);
            if let Some(expansions) = recreated {
                self.recreate_set(t, expansions, progress).await?;
                outcome.expanded.extend(
                    expansions.iter().map(|e| (e.claim.clone(), e.from.clone(), e.to.clone())),
                );
            }
            let before = self.get(&t.kind, &t.id).await?;
            let plan = &prepared.plan;
            let mut after = match self
                .apply_owned(&plan.bundle, &plan.namespace, t, prepared.adopt, false)
                .await
            {
                Ok(after) => after,
                Err(DeployError::OwnedByBundle(mut owned)) => {
                    let done = applied.load(Ordering::SeqCst);
                    let rest = &prepared.targets[done + 1..];
                    owned.objects.extend(self.managed_by(&owned.other, rest).await?);
                    owned.applied = done;
                    owned.total = prepared.targets.len();
                    return Err(DeployError::OwnedByBundle(owned));
                }
                Err(error) => return Err(error),
            };
            if let Some(from) = before.as_ref().and_then(kept_from) {
                // Kept by an earlier remove or prune (preflight checked whose): it is this
                // deploy's again, with its data and credentials.
                outcome.adopted.push((t.id.clone(), from.to_string()));
                after = self.unmark_kept(&t.kind, &t.id).await?;
            }
            let mut action = match &before {
                None if recreated.is_some() => Action::Recreated,
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
            applied.fetch_add(1, Ordering::SeqCst);
            progress.event(Event::Applied { app: t.app.clone(), id: t.id.clone(), action });
            outcome.applied.push(Applied { app: t.app.clone(), id: t.id.clone(), action });
        }
        if options.prune {
            let kept = KeptObjects::of(&prepared.records);
            let stale = stale_entries(prepared);
            let disposed = self
                .dispose(
                    &prepared.kinds,
                    stale,
                    &plan.bundle,
                    &plan.namespace,
                    &kept,
                    false,
                    progress,
                )
                .await?;
            for (id, deletion) in disposed {
                match deletion {
                    Deletion::Deleted | Deletion::Terminating(_) => outcome.pruned.push(id),
                    Deletion::Gone => {}
                    Deletion::Kept(why) => outcome.kept.push((id, why)),
                    Deletion::Retained(keep) => outcome.retained.push((id, keep)),
                }
            }
        }
        outcome.adopted.extend(self.adopt_set_claims(prepared).await?);
        if let Some(wait) = &options.wait {
            let waited: Vec<&Target> =
                prepared.targets.iter().filter(|t| waits_for(&t.id)).collect();
            outcome.replaced =
                wait::wait(self, &prepared.kinds, &waited, &scope, wait, progress).await?;
            outcome.warnings.extend(self.pending_load_balancers(&prepared.targets).await?);
        }
        Ok(outcome)
    }
}

impl Cluster {
    /// Takes the kept marks off the claims of the rendered StatefulSets: their controller
    /// uses them again, with their data.
    async fn adopt_set_claims(
        &self,
        prepared: &Prepared,
    ) -> Result<Vec<(ObjectId, String)>, DeployError> {
        let sets: Vec<&Target> = prepared
            .targets
            .iter()
            .filter(|t| t.id.kind == "StatefulSet" && !claim_templates(&t.object).is_empty())
            .collect();
        let Some(claim_kind) = prepared.kinds.preferred("", "PersistentVolumeClaim") else {
            return Ok(Vec::new());
        };
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let plan = &prepared.plan;
        let selector = format!("{KEPT_FROM_LABEL}={}", plan.bundle);
        let mut adopted = Vec::new();
        for claim in self.list(&claim_kind, Some(&plan.namespace), &selector).await? {
            let Ok(id) = object_id(&claim, Some(&plan.namespace)) else { continue };
            let ours = sets
                .iter()
                .any(|set| is_set_claim(&id.name, &set.id.name, &claim_templates(&set.object)));
            if ours {
                self.unmark_kept(&claim_kind, &id).await?;
                adopted.push((id, plan.bundle.clone()));
            }
        }
        Ok(adopted)
    }
}

/// Whether a failed deploy is worth rolling back: something was applied and failed, as
/// opposed to stopping before any write, or on the user's request.
fn rolls_back(error: &DeployError) -> bool {
    !matches!(
        error,
        DeployError::Interrupted { .. }
            | DeployError::Changed { .. }
            | DeployError::OwnedByBundle(_)
            | DeployError::Locked { .. }
            | DeployError::Invalid(_)
    )
}
