//! The gate before the first write: every object of a plan is sent to the API server as a
//! server-side apply with `dryRun=All`, with the field manager and force of the real apply, so
//! the server's own validation and admission judge the whole change before any of it is made.
//! Every refusal is reported at once, each mapped to its application, object, field (the
//! answer's `details.causes`) and the option that produced the value (`model::origin`).
//! StatefulSets refused for fields Kubernetes will not change in place are handed to
//! `immutable`: claim templates that only grow become a re-creation with the claims expanded
//! (each expansion dry-run too), anything else a refusal with its way forward.
//!
//! Objects whose namespace does not exist yet cannot be dry-run (the server answers 404 for
//! the namespace); `apply` creates the namespace and passes the gate again before writing
//! anything else. Custom resources whose definition the same plan applies are checked by the
//! real apply only, after their definitions are served.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::immutable::{fixed_field, set_verdict, template_storage_path, Change, SetVerdict};
use super::preflight::Prepared;
use crate::contract::{object_id, ObjectId};
use crate::deploy::cluster::client::{Cluster, FIELD_MANAGER, REQUESTS_AT_ONCE};
use crate::deploy::cluster::ownership::{managers, managing_bundle};
use crate::deploy::error::{answer, DeployError, OwnedBy};
use crate::deploy::model::events::{Event, Progress};
use crate::deploy::model::kinds::Kind;
use crate::deploy::model::origin::{value_at, Origin};
use crate::deploy::model::plan::PlanApp;
use crate::deploy::model::targets::Target;
use crate::deploy::state::keep::{is_claim_of_set, set_claim_selector};
use crate::diag::{Problem, Problems};

/// How long a StatefulSet deleted with its pods orphaned may take to go (the garbage
/// collector takes the owner references off its pods first).
const ORPHAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What the dry run found: the server's answer for each target, and the StatefulSets to
/// re-create.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// The object the server would store, per target (`None`: not checked, or re-created).
    pub(crate) answers: Vec<Option<Value>>,
    /// StatefulSets to delete (orphaning pods and claims) and apply again, with the claims to
    /// expand first.
    pub(crate) recreate: BTreeMap<ObjectId, Vec<Expansion>>,
    /// Objects the dry run could not check, and why.
    pub(crate) unchecked: Vec<(ObjectId, &'static str)>,
}

/// A claim to expand before its StatefulSet is re-created.
#[derive(Debug, Clone)]
pub(crate) struct Expansion {
    /// The claim.
    pub(crate) claim: ObjectId,
    /// Its kind, for the request.
    pub(crate) kind: Kind,
    /// Its storage request now.
    pub(crate) from: String,
    /// The request its template asks for.
    pub(crate) to: String,
}

impl Gate {
    /// One line per object the dry run could not check, for the outcome's warnings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.unchecked
            .iter()
            .map(|(id, why)| format!("{id}: not checked by the dry run before the first write ({why}); the apply checks it"))
            .collect()
    }
}

impl Cluster {
    /// Dry-runs every target of `prepared` (objects in the namespace only when it exists)
    /// and fails with every refusal, or answers what the server would store and which
    /// StatefulSets to re-create.
    pub(crate) async fn gate(
        &self,
        prepared: &Prepared,
        namespace_exists: bool,
    ) -> Result<Gate, DeployError> {
        let unchecked = |t: &Target| match (t.served, !t.kind.namespaced || namespace_exists) {
            (false, _) => Some("its kind is defined by a CustomResourceDefinition of this plan"),
            (_, false) => Some("its namespace does not exist yet"),
            _ => None,
        };
        let answers: Vec<Result<Option<Value>, DeployError>> = stream::iter(&prepared.targets)
            .map(|t| async move {
                if unchecked(t).is_some() {
                    return Ok(None);
                }
                let plan = &prepared.plan;
                self.apply_owned(&plan.bundle, &plan.namespace, t, prepared.adopt, true)
                    .await
                    .map(Some)
            })
            .buffered(REQUESTS_AT_ONCE)
            .collect()
            .await;
        let mut gate = Gate::default();
        let mut problems = Problems::default();
        // Objects another bundle manages: every one of them named in one refusal.
        let mut owned: Option<Box<OwnedBy>> = None;
        for (t, answer) in prepared.targets.iter().zip(answers) {
            if let Some(why) = unchecked(t) {
                gate.unchecked.push((t.id.clone(), why));
            }
            let error = match answer {
                Ok(answer) => {
                    gate.answers.push(answer);
                    continue;
                }
                Err(DeployError::OwnedByBundle(other)) => {
                    gate.answers.push(None);
                    match &mut owned {
                        Some(first) => first.objects.extend(other.objects),
                        None => owned = Some(other),
                    }
                    continue;
                }
                Err(error) if error.status().is_some() => error,
                Err(error) => return Err(error),
            };
            gate.answers.push(None);
            let app = prepared.plan.app(&t.app);
            match self.judge(prepared, t, app, &error).await? {
                Judged::Recreate(expansions) => {
                    gate.recreate.insert(t.id.clone(), expansions);
                }
                Judged::Refused(refused) => refused.into_iter().for_each(|p| problems.push(p)),
            }
        }
        if let Some(mut owned) = owned {
            // Others may have passed their dry run a moment before the other bundle wrote them.
            owned.objects = self.managed_by(&owned.other, &prepared.targets).await?;
            owned.total = prepared.targets.len();
            return Err(DeployError::OwnedByBundle(owned));
        }
        if problems.is_empty() {
            return Ok(gate);
        }
        Err(DeployError::Refused { problems, created_namespace: None })
    }

    /// The targets another bundle manages too, for an error that names them all.
    pub(crate) async fn managed_by(
        &self,
        other: &str,
        targets: &[Target],
    ) -> Result<Vec<String>, DeployError> {
        let mut found = Vec::new();
        for t in targets {
            let live = self.get(&t.kind, &t.id).await?;
            if live.is_some_and(|l| managers(&l).any(|m| managing_bundle(m) == Some(other))) {
                found.push(t.id.to_string());
            }
        }
        Ok(found)
    }

    /// Dry-runs partial objects applied as `manager` (restart's annotations) and fails with
    /// every refusal.
    pub(crate) async fn gate_patches(
        &self,
        patches: &[(String, Kind, ObjectId, Value)],
        manager: &str,
    ) -> Result<(), DeployError> {
        let answers: Vec<Result<Value, DeployError>> = stream::iter(patches)
            .map(|(_, kind, id, patch)| self.apply_object(kind, id, patch, manager, true))
            .buffered(REQUESTS_AT_ONCE)
            .collect()
            .await;
        let mut problems = Problems::default();
        for ((app, _, id, _), result) in patches.iter().zip(answers) {
            match result {
                Ok(_) => {}
                Err(error) => match error.status() {
                    Some(status) => problems.push(Problem::new(
                        format!("application {app}"),
                        id.to_string(),
                        answer(status).to_string(),
                    )),
                    None => return Err(error),
                },
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(DeployError::Refused { problems, created_namespace: None })
    }

    /// What a refusal means: a StatefulSet to re-create, or problems to report.
    async fn judge(
        &self,
        prepared: &Prepared,
        t: &Target,
        app: Option<&PlanApp>,
        error: &DeployError,
    ) -> Result<Judged, DeployError> {
        let causes = match error {
            DeployError::InvalidObject { causes, .. } => causes.clone(),
            _ => Vec::new(),
        };
        let status = error.status().map(answer).unwrap_or_default().to_string();
        let about_values = error.status().is_some_and(|s| matches!(s.code, 400 | 422));
        let refusal = |field: &str, message: &str, change: Option<&Change>| {
            refusal(t, app, field, message, change, about_values)
        };
        if causes.is_empty() {
            return Ok(Judged::Refused(vec![refusal("", &status, None)]));
        }
        let immutable_set = |c: &&kube::core::response::StatusCause| {
            t.id.kind == "StatefulSet" && c.field == "spec"
        };
        let mut problems = Vec::new();
        let live = if causes.iter().any(|c| immutable_set(&c) || fixed(t, &c.field)) {
            self.get(&t.kind, &t.id).await?
        } else {
            None
        };
        let mut verdict = None;
        for cause in &causes {
            match &live {
                Some(live) if immutable_set(&cause) => verdict = Some(set_verdict(live, &t.object)),
                Some(live) if fixed(t, &cause.field) => {
                    let change = fixed_field(&t.id.kind, &cause.field, live);
                    problems.push(refusal(&cause.field, &cause.message, change.as_ref()));
                }
                _ => problems.push(refusal(&cause.field, &cause.message, None)),
            }
        }
        match verdict {
            Some(SetVerdict::Refuse(changes)) => {
                for change in &changes {
                    problems.push(refusal(&change.field, &change.message, Some(change)));
                }
            }
            Some(SetVerdict::Recreate(growths)) if problems.is_empty() => {
                let live = live.unwrap_or_default();
                return self.expansions(prepared, t, app, &live, &growths).await;
            }
            _ => {}
        }
        Ok(Judged::Refused(problems))
    }

    /// The claims of a StatefulSet whose templates grow, each expansion dry-run: the claims
    /// to expand, or why they cannot be.
    async fn expansions(
        &self,
        prepared: &Prepared,
        t: &Target,
        app: Option<&PlanApp>,
        live: &Value,
        growths: &[super::immutable::Growth],
    ) -> Result<Judged, DeployError> {
        let Some(kind) = prepared.kinds.preferred("", "PersistentVolumeClaim") else {
            return Ok(Judged::Recreate(Vec::new()));
        };
        let selector = &live["spec"]["selector"]["matchLabels"];
        let Some(labels) = set_claim_selector(live) else {
            return Ok(Judged::Recreate(Vec::new()));
        };
        let claims = self.list(&kind, t.id.namespace.as_deref(), &labels).await?;
        let mut expansions = Vec::new();
        let mut problems = Vec::new();
        for growth in growths {
            let templates: BTreeSet<String> = [growth.template.clone()].into();
            let index = t.object["spec"]["volumeClaimTemplates"]
                .as_array()
                .and_then(|all| {
                    all.iter().position(|v| v["metadata"]["name"] == growth.template.as_str())
                })
                .unwrap_or_default();
            for claim in &claims {
                if !is_claim_of_set(claim, &t.id.name, selector, &templates, &prepared.plan.bundle)
                {
                    continue;
                }
                let Ok(id) = object_id(claim, t.id.namespace.as_deref()) else { continue };
                let from = claim["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap_or(&growth.from)
                    .to_string();
                let size = |q: &str| crate::kube_rules::parse_quantity(q).map(|q| q.0).ok();
                if size(&from) >= size(&growth.to) {
                    // Already as big (expanded by hand): nothing to ask of it.
                    continue;
                }
                let patch = expansion_patch(&id, &growth.to);
                if let Err(error) = self.apply_object(&kind, &id, &patch, FIELD_MANAGER, true).await
                {
                    let Some(status) = error.status() else { return Err(error) };
                    let change = Change {
                        field: template_storage_path(index),
                        message: format!(
                            "claim template {} grows from {} to {}, but claim {} cannot be expanded: {}",
                            growth.template, growth.from, growth.to, id.name, answer(status)
                        ),
                        back_to: Some(growth.from.clone()),
                        otherwise: "or have the claim's StorageClass allow expansion (allowVolumeExpansion: true)",
                    };
                    problems.push(refusal(
                        t,
                        app,
                        &change.field,
                        &change.message,
                        Some(&change),
                        true,
                    ));
                    continue;
                }
                expansions.push(Expansion {
                    claim: id,
                    kind: kind.clone(),
                    from,
                    to: growth.to.clone(),
                });
            }
        }
        if problems.is_empty() {
            Ok(Judged::Recreate(expansions))
        } else {
            Ok(Judged::Refused(problems))
        }
    }

    /// The immutable-field strategy for one StatefulSet, just before it is applied: its claims
    /// expanded, then the set deleted with its pods and claims orphaned (the apply that follows
    /// creates it again and its controller adopts them).
    pub(crate) async fn recreate_set(
        &self,
        t: &Target,
        expansions: &[Expansion],
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
        for e in expansions {
            let patch = expansion_patch(&e.claim, &e.to);
            self.apply_object(&e.kind, &e.claim, &patch, FIELD_MANAGER, false).await?;
            progress.event(Event::Expanded {
                id: e.claim.clone(),
                from: e.from.clone(),
                to: e.to.clone(),
            });
        }
        progress.event(Event::Recreating { app: t.app.clone(), id: t.id.clone() });
        self.delete_orphaning(&t.kind, &t.id).await?;
        let deadline = tokio::time::Instant::now() + ORPHAN_TIMEOUT;
        while self.get(&t.kind, &t.id).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(DeployError::Timeout {
                    timeout: ORPHAN_TIMEOUT,
                    pending: vec![format!("{}: deleted with its pods orphaned, still there (the garbage collector has not let it go)", t.id)],
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        Ok(())
    }
}

/// What one refusal comes to.
enum Judged {
    Recreate(Vec<Expansion>),
    Refused(Vec<Problem>),
}

/// Whether a refused field is one Kubernetes keeps fixed on this kind (other than a
/// StatefulSet's spec).
fn fixed(t: &Target, field: &str) -> bool {
    matches!((t.id.kind.as_str(), field), ("Deployment", "spec.selector"))
        || (t.id.kind == "Service" && field.starts_with("spec.clusterIP"))
}

/// The partial claim that sets only its storage request (server-side apply merges it).
fn expansion_patch(claim: &ObjectId, storage: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim.name, "namespace": claim.namespace},
        "spec": {"resources": {"requests": {"storage": storage}}},
    })
}

/// One refused field as a problem: application, object and field, the server's reason and
/// where the value came from (only for refusals of values: 400 and 422, not a 403); the hint
/// is the way forward.
fn refusal(
    t: &Target,
    app: Option<&PlanApp>,
    field: &str,
    message: &str,
    change: Option<&Change>,
    about_values: bool,
) -> Problem {
    let key = if field.is_empty() { t.id.to_string() } else { format!("{} {field}", t.id) };
    let origin = app.filter(|_| about_values).map(|app| origin(app, &t.object, field, message));
    let text = match &origin {
        Some(origin) => format!("{message}; {}", origin.describe(&t.app)),
        None => message.to_string(),
    };
    let problem = Problem::new(format!("application {}", t.app), key, text);
    let option = origin.as_ref().and_then(|o| o.option(&t.app));
    match (change, option) {
        (Some(change), option) => problem.hint(change.way_forward(option.as_deref())),
        (None, Some(option)) => {
            problem.hint(format!("give {option} a value the API server accepts"))
        }
        (None, None) => problem,
    }
}

/// The options that produced a refused value: the value at the refused field, else each
/// value the server's message quotes (a webhook names no field: `domain name "bad_host"
/// invalid`), tried in turn.
fn origin(app: &PlanApp, object: &Value, field: &str, message: &str) -> Origin {
    let at_field = (!field.is_empty()).then(|| value_at(object, field).cloned()).flatten();
    let quoted = message.split('"').skip(1).step_by(2).map(|q| Value::String(q.to_string()));
    at_field
        .into_iter()
        .chain(quoted)
        .map(|value| Origin::of(app, Some(&value)))
        .find(|o| matches!(o, Origin::Options(_)))
        .unwrap_or_else(|| Origin::of(app, None))
}
