//! Applying a prepared plan: namespace, lock, revision record, CRDs, then every object with
//! server-side apply, wave by wave (`targets::waves`: the objects of one wave at once, a
//! bounded number in flight); generated credentials; adoption of kept objects; prune
//! (keeping data); wait; and the record's final state (deployed, failed or interrupted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use super::gate::Gate;
use super::generate;
use super::preflight::{namespace_id, namespace_object, Prepared};
use super::prune::{stale_entries, Deletion};
use super::wait::{self, Baseline, Scope, WaitOptions};
use crate::contract::{generated_keys, object_id, ObjectId, KEPT_FROM_LABEL};
use crate::deploy::cluster::client::{Cluster, FIELD_MANAGER, REQUESTS_AT_ONCE};
use crate::deploy::error::DeployError;
use crate::deploy::health::kstatus::waits_for;
use crate::deploy::model::events::{Action, Event, NoProgress, Progress};
use crate::deploy::model::kinds::Lookup;
use crate::deploy::model::targets::{phase, waves, Phase, Target};
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
        // Each wave's objects are applied at once, a bounded number in flight; results are
        // taken in apply order, so events and the outcome read as if one at a time.
        for wave in waves(plan, &prepared.targets) {
            if !established && phase(&prepared.targets[wave.start].id) == Phase::Objects {
                // Custom resources can only be applied once their definitions are served.
                let wait = options.wait.unwrap_or_default();
                wait::wait(self, &prepared.kinds, &crds, &scope, &wait, &NoProgress).await?;
                established = true;
            }
            // Counted as each apply is answered, for an interrupt's message: the objects
            // known to be applied, whatever order their answers came in.
            let mut results = stream::iter(wave)
                .map(|i| async move {
                    let result = self.apply_target(prepared, gate, i, progress).await;
                    if result.is_ok() {
                        applied.fetch_add(1, Ordering::SeqCst);
                    }
                    (i, result)
                })
                .buffered(REQUESTS_AT_ONCE);
            while let Some((i, result)) = results.next().await {
                let t = &prepared.targets[i];
                let done = match result {
                    Ok(done) => done,
                    Err(DeployError::OwnedByBundle(mut owned)) => {
                        drop(results);
                        let rest = &prepared.targets[i + 1..];
                        owned.objects.extend(self.managed_by(&owned.other, rest).await?);
                        owned.applied = applied.load(Ordering::SeqCst);
                        owned.total = prepared.targets.len();
                        return Err(DeployError::OwnedByBundle(owned));
                    }
                    Err(error) => return Err(error),
                };
                outcome.expanded.extend(done.expanded);
                if let Some(from) = done.adopted_from {
                    outcome.adopted.push((t.id.clone(), from));
                }
                if !done.generated.is_empty() {
                    outcome.generated.push((t.id.clone(), done.generated));
                }
                let action = done.action;
                progress.event(Event::Applied { app: t.app.clone(), id: t.id.clone(), action });
                outcome.applied.push(Applied { app: t.app.clone(), id: t.id.clone(), action });
            }
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

/// What applying one target did.
struct TargetApplied {
    action: Action,
    /// Claims expanded before its StatefulSet was re-created: (claim, from, to).
    expanded: Vec<(ObjectId, String, String)>,
    /// The bundle an earlier remove or prune kept it from, now adopted.
    adopted_from: Option<String>,
    /// Keys generated into it now (a Secret's credentials).
    generated: Vec<String>,
}

impl Cluster {
    /// Applies target `i` of `prepared`: re-creates it first when the gate said so, adopts it
    /// when it was kept from the bundle, generates its credentials.
    async fn apply_target(
        &self,
        prepared: &Prepared,
        gate: &Gate,
        i: usize,
        progress: &dyn Progress,
    ) -> Result<TargetApplied, DeployError> {
        let t = &prepared.targets[i];
        let plan = &prepared.plan;
        let mut expanded = Vec::new();
        let recreated = gate.recreate.get(&t.id);
        if let Some(expansions) = recreated {
            self.recreate_set(t, expansions, progress).await?;
            expanded = expansions
                .iter()
                .map(|e| (e.claim.clone(), e.from.clone(), e.to.clone()))
                .collect();
        }
        // The version the object had before, for what the apply did: the gate's dry run
        // answered it (none when the apply creates the object), so only targets the gate did
        // not check are read.
        let before: Option<Option<String>> = if recreated.is_some() {
            None
        } else if let Some(Some(answer)) = gate.answers.get(i) {
            resource_version(answer).map(Some)
        } else {
            self.get(&t.kind, &t.id).await?.map(|live| resource_version(&live))
        };
        let mut after =
            self.apply_owned(&plan.bundle, &plan.namespace, t, prepared.adopt, false).await?;
        // The keep manager's label outlives the bundle's apply, which does not set it.
        let adopted_from = kept_from(&after).map(str::to_string);
        if adopted_from.is_some() {
            // Kept by an earlier remove or prune (preflight checked whose): it is this
            // deploy's again, with its data and credentials.
            after = self.unmark_kept(&t.kind, &t.id).await?;
        }
        let mut action = match before {
            None if recreated.is_some() => Action::Recreated,
            None => Action::Created,
            Some(version) if version != resource_version(&after) => Action::Configured,
            Some(_) => Action::Unchanged,
        };
        let mut generated = Vec::new();
        if t.id.kind == "Secret" && !generated_keys(&t.object).is_empty() {
            generated = generate::ensure(self, t, &after).await?;
            if !generated.is_empty() && action == Action::Unchanged {
                action = Action::Configured;
            }
        }
        Ok(TargetApplied { action, expanded, adopted_from, generated })
    }

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

/// An object's resourceVersion (`None` in a dry run's answer for an object it would create).
fn resource_version(object: &Value) -> Option<String> {
    object["metadata"]["resourceVersion"].as_str().map(str::to_string)
}
