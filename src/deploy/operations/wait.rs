//! Waiting until applied objects are Current (as `health` judges them), failing fast when a
//! pod of a workload's current revision cannot start.
//!
//! The wait lists and then watches each kind in each namespace (with the bundle's label
//! selector), plus the bundle's pods and ReplicaSets: its requests do not grow with the
//! number of objects, and it sees the last object become Current when the API server says
//! so, not at the next poll. Pods are judged only when they run a workload's current
//! revision. A problem the kubelet retries (image pull, configuration error, crash loop)
//! fails the wait at once when it arose during this operation; a pod already failing so
//! before the operation began (its [`Baseline`]) gets one kubelet retry window first, so
//! fixing a Secret or pushing an image and deploying again works. A pod the scheduler cannot
//! place fails the wait after the unschedulable grace.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::contract::BUNDLE_LABEL;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::cluster::watch::{Update, WatchSpec};
use crate::deploy::error::DeployError;
use crate::deploy::health::kstatus::{health, Health, KNATIVE_SERVING};
use crate::deploy::health::pods::{pod_problems, restarts, PodProblem, Severity};
use crate::deploy::health::revision;
use crate::deploy::model::events::{Event, Progress};
use crate::deploy::model::kinds::{Kind, Kinds, Lookup};
use crate::deploy::model::targets::Target;

/// How long to wait, and how patient to be with pods that do not start.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Give up after this long, naming what never became ready.
    pub timeout: Duration,
    /// How long a pod of a current revision may stay unschedulable (reported meanwhile with
    /// the scheduler's reason) before the wait fails.
    pub unschedulable_grace: Duration,
    /// How long a pod that was already failing in a state the kubelet retries before the
    /// operation began gets to recover before it counts as failed.
    pub retry_window: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(600),
            unschedulable_grace: Duration::from_secs(120),
            retry_window: Duration::from_secs(60),
        }
    }
}

/// The shortest timeout a wait accepts: a list, a watch and a controller's first status
/// take longer than that, so a shorter one can only time out after applying.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

impl WaitOptions {
    /// Refuses options that cannot succeed, before anything is applied.
    pub fn check(&self) -> Result<(), DeployError> {
        if self.timeout < MIN_TIMEOUT {
            return Err(DeployError::WaitTimeout { timeout: self.timeout, minimum: MIN_TIMEOUT });
        }
        Ok(())
    }
}

/// How long a Knative Service must report `Ready=False` before the wait fails: Knative may
/// report `False` on the way to `True` (its own client, `kn`, waits a `--wait-window` after
/// a `False` for the same reason).
const KNATIVE_GRACE: Duration = Duration::from_secs(10);

/// Pods already failing in a state the kubelet retries when the operation began, by uid:
/// the reasons, and how often their containers had restarted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Baseline {
    failing: BTreeMap<String, (BTreeSet<String>, i64)>,
}

impl Baseline {
    /// The bundle's pods in `namespace` as they are before the operation changes anything
    /// (one list).
    pub(crate) async fn read(
        cluster: &Cluster,
        kinds: &Kinds,
        bundle: &str,
        namespace: &str,
    ) -> Result<Baseline, DeployError> {
        let Lookup::Served(pods) = kinds.find("v1", "Pod") else {
            return Ok(Baseline::default());
        };
        let selector = format!("{BUNDLE_LABEL}={bundle}");
        let mut failing = BTreeMap::new();
        for pod in cluster.list(&pods, Some(namespace), &selector).await? {
            let reasons: BTreeSet<String> = pod_problems(&pod)
                .into_iter()
                .filter(|p| p.severity == Severity::Retried)
                .map(|p| p.reason)
                .collect();
            if let (false, Some(uid)) = (reasons.is_empty(), pod["metadata"]["uid"].as_str()) {
                failing.insert(uid.to_string(), (reasons, restarts(&pod)));
            }
        }
        Ok(Baseline { failing })
    }

    /// Whether `problem` of `pod` was there before the operation and has not been retried
    /// since (a crash loop that restarted again is a new failure).
    fn predates(&self, pod: &serde_json::Value, problem: &PodProblem) -> bool {
        let Some(uid) = pod["metadata"]["uid"].as_str() else { return false };
        self.failing.get(uid).is_some_and(|(reasons, before)| {
            reasons.contains(&problem.reason) && restarts(pod) <= *before
        })
    }
}

/// What a wait is about: the bundle (whose label selects what is watched), the pods failing
/// before it, and per application a note to add when it is not ready (a dependency
/// pre-flight could not find).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub bundle: String,
    pub baseline: Baseline,
    pub notes: BTreeMap<String, String>,
}

/// Kills the watch tasks when the wait ends, however it ends.
struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What is watched for the wait: one set per kind and namespace of the targets, the pods of
/// each namespace holding workloads, and its ReplicaSets when it holds Deployments.
struct Plan {
    specs: Vec<WatchSpec>,
    /// Per target: the set holding it.
    target_set: Vec<usize>,
    /// Per namespace: the sets of its pods and ReplicaSets.
    pods: BTreeMap<Option<String>, usize>,
    replica_sets: BTreeMap<Option<String>, usize>,
}

fn plan(kinds: &Kinds, targets: &[&Target], scope: &Scope) -> Plan {
    let mut specs: Vec<WatchSpec> = Vec::new();
    let bundle = format!("{BUNDLE_LABEL}={}", scope.bundle);
    let mut index = |kind: &Kind, namespace: Option<String>, labelled: bool| -> usize {
        let selector = if labelled { bundle.clone() } else { String::new() };
        let found = specs.iter().position(|s| {
            s.kind.resource == kind.resource && s.namespace == namespace && s.selector == selector
        });
        found.unwrap_or_else(|| {
            specs.push(WatchSpec { kind: kind.clone(), namespace, selector });
            specs.len() - 1
        })
    };
    let mut target_set = Vec::new();
    let mut pods = BTreeMap::new();
    let mut replica_sets = BTreeMap::new();
    let pod_kind = match kinds.find("v1", "Pod") {
        Lookup::Served(kind) => Some(kind),
        _ => None,
    };
    let rs_kind = match kinds.find("apps/v1", "ReplicaSet") {
        Lookup::Served(kind) => Some(kind),
        _ => None,
    };
    for t in targets {
        // Objects restart names carry no rendered body; deploy's always carry the label.
        let labelled = t.object.is_null()
            || t.object["metadata"]["labels"][BUNDLE_LABEL].as_str() == Some(scope.bundle.as_str());
        let namespace = t.id.namespace.clone().filter(|_| t.kind.namespaced);
        target_set.push(index(&t.kind, namespace.clone(), labelled));
        if matches!(t.id.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet" | "Job") {
            if let Some(kind) = &pod_kind {
                let set = index(kind, namespace.clone(), true);
                pods.insert(namespace.clone(), set);
            }
        }
        if t.id.kind == "Deployment" {
            if let Some(kind) = &rs_kind {
                let set = index(kind, namespace.clone(), true);
                replica_sets.insert(namespace, set);
            }
        }
    }
    Plan { specs, target_set, pods, replica_sets }
}

/// Where one target stands in the wait.
enum Verdict {
    Done,
    Pending(String),
    /// Not ready; fails at this instant unless it changes.
    PendingUntil(String, Instant),
    Fail(DeployError),
}

/// When grace periods started: per Knative Service (target index) reporting `False`, per
/// unschedulable pod (uid).
#[derive(Default)]
struct Clocks {
    knative_false: BTreeMap<usize, Instant>,
    unschedulable: BTreeMap<String, Instant>,
}

/// Watches `targets` until all are Current, one fails, or the timeout passes. Returns what
/// it did on the way: failing pods of earlier StatefulSet revisions it deleted (see
/// [`Stale`]), one line each (also logged, since a failed wait returns only its error).
pub(crate) async fn wait(
    cluster: &Cluster,
    kinds: &Kinds,
    targets: &[&Target],
    scope: &Scope,
    options: &WaitOptions,
    progress: &dyn Progress,
) -> Result<Vec<String>, DeployError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let deadline = started + options.timeout;
    let plan = plan(kinds, targets, scope);
    let (sender, mut updates) = mpsc::unbounded_channel();
    let _watches = Watches(
        plan.specs
            .iter()
            .enumerate()
            .map(|(tag, spec)| {
                let (cluster, spec, sender) = (cluster.clone(), spec.clone(), sender.clone());
                tokio::spawn(async move { cluster.watch(spec, tag, sender).await })
            })
            .collect(),
    );
    drop(sender);
    let mut sets: Vec<Option<BTreeMap<String, serde_json::Value>>> = vec![None; plan.specs.len()];
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for t in targets {
        *totals.entry(t.app.as_str()).or_default() += 1;
    }
    let mut reported: BTreeMap<&str, (usize, Option<String>)> = BTreeMap::new();
    let mut clocks = Clocks::default();
    // Stale failing StatefulSet pods deleted (by uid), and what was said about each.
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut replaced: Vec<String> = Vec::new();
    let mut wake: Option<Instant> = None;
    loop {
        let until = wake.map_or(deadline, |w| w.min(deadline));
        tokio::select! {
            update = updates.recv() => match update {
                Some(update) => absorb(&mut sets, update)?,
                None => return Err(DeployError::WatchEnded),
            },
            () = tokio::time::sleep_until(until) => {}
        }
        // Everything that arrived meanwhile, judged at once.
        while let Ok(update) = updates.try_recv() {
            absorb(&mut sets, update)?;
        }
        if sets.iter().any(Option::is_none) && Instant::now() < deadline {
            continue;
        }
        let now = Instant::now();
        let owned = by_owner(&plan, &sets);
        let mut pending: Vec<(usize, String)> = Vec::new();
        let mut stale = Vec::new();
        wake = None;
        for (i, t) in targets.iter().enumerate() {
            let verdict = judge(
                i,
                t,
                &plan,
                &sets,
                &owned,
                scope,
                options,
                &mut clocks,
                started,
                now,
                &mut stale,
            );
            match verdict {
                Verdict::Done => {}
                Verdict::Pending(why) => pending.push((i, why)),
                Verdict::PendingUntil(why, at) => {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                    pending.push((i, why));
                }
                Verdict::Fail(error) => return Err(error),
            }
        }
        for pod in stale {
            if let (true, Lookup::Served(kind)) = (deleted.insert(pod.uid), kinds.find("v1", "Pod"))
            {
                cluster.delete(&kind, &pod.id).await?;
                tracing::info!("{}", pod.note);
                replaced.push(pod.note);
            }
        }
        for (app, total) in &totals {
            let waiting: Vec<&(usize, String)> =
                pending.iter().filter(|(i, _)| targets[*i].app == *app).collect();
            let why = waiting.first().map(|(i, why)| {
                let note = scope.notes.get(*app).map(|n| format!("; {n}")).unwrap_or_default();
                format!("{} ({why}){note}", targets[*i].id)
            });
            let now = (total - waiting.len(), why);
            if reported.get(app) != Some(&now) {
                let (ready, why) = now.clone();
                reported.insert(app, now);
                progress.event(Event::Waiting { app: app.to_string(), ready, total: *total, why });
            }
        }
        if pending.is_empty() {
            return Ok(replaced);
        }
        if now >= deadline {
            let pending = pending
                .into_iter()
                .map(|(i, why)| {
                    let t = targets[i];
                    let note =
                        scope.notes.get(&t.app).map(|n| format!("; {n}")).unwrap_or_default();
                    format!("{} ({why}){note}", t.id)
                })
                .collect();
            return Err(DeployError::Timeout { timeout: options.timeout, pending });
        }
    }
}

/// Applies one watch update to the sets it was tagged with.
fn absorb(
    sets: &mut [Option<BTreeMap<String, serde_json::Value>>],
    (tag, update): (usize, Result<Update, DeployError>),
) -> Result<(), DeployError> {
    let key = |o: &serde_json::Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    match update? {
        Update::Listed(items) => {
            sets[tag] = Some(items.into_iter().map(|o| (key(&o), o)).collect());
        }
        Update::Applied(o) => {
            sets[tag].get_or_insert_with(BTreeMap::new).insert(key(&o), o);
        }
        Update::Deleted(o) => {
            if let Some(set) = &mut sets[tag] {
                set.remove(&key(&o));
            }
        }
    }
    Ok(())
}

/// The watched pods by the uid of their controller, so each workload's are found at once.
fn by_owner<'a>(
    plan: &Plan,
    sets: &'a [Option<BTreeMap<String, serde_json::Value>>],
) -> BTreeMap<String, Vec<&'a serde_json::Value>> {
    let mut owned: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for set in plan.pods.values().filter_map(|s| sets[*s].as_ref()) {
        for pod in set.values() {
            for owner in pod["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
                if let Some(uid) = owner["uid"].as_str() {
                    owned.entry(uid.to_string()).or_default().push(pod);
                }
            }
        }
    }
    owned
}

#[allow(clippy::too_many_arguments)]
fn judge(
    i: usize,
    t: &Target,
    plan: &Plan,
    sets: &[Option<BTreeMap<String, serde_json::Value>>],
    owned: &BTreeMap<String, Vec<&serde_json::Value>>,
    scope: &Scope,
    options: &WaitOptions,
    clocks: &mut Clocks,
    started: Instant,
    now: Instant,
    stale: &mut Vec<Stale>,
) -> Verdict {
    let set = |index: Option<&usize>| index.and_then(|s| sets[*s].as_ref());
    let key = format!("{}/{}", t.id.namespace.as_deref().unwrap_or_default(), t.id.name);
    let live = set(Some(&plan.target_set[i])).and_then(|s| s.get(&key));
    let Some(live) = live else { return Verdict::Pending(Health::NotFound.to_string()) };
    let why = match health(&t.id.group, &t.id.kind, live) {
        Health::Current => {
            clocks.knative_false.remove(&i);
            return Verdict::Done;
        }
        Health::Failed(message) if t.id.group == KNATIVE_SERVING => {
            let since = *clocks.knative_false.entry(i).or_insert(now);
            if now >= since + KNATIVE_GRACE {
                return Verdict::Fail(DeployError::Failed { object: t.id.to_string(), message });
            }
            return Verdict::PendingUntil(message, since + KNATIVE_GRACE);
        }
        Health::Failed(message) => {
            return Verdict::Fail(DeployError::Failed { object: t.id.to_string(), message })
        }
        other => {
            clocks.knative_false.remove(&i);
            other.to_string()
        }
    };
    let namespace = t.id.namespace.clone().filter(|_| t.kind.namespaced);
    if set(plan.pods.get(&namespace)).is_none() {
        return Verdict::Pending(why);
    }
    let pods_of = |uid: &serde_json::Value| {
        uid.as_str().and_then(|u| owned.get(u)).map(Vec::as_slice).unwrap_or_default()
    };
    let replica_sets = set(plan.replica_sets.get(&namespace)).into_iter().flat_map(|s| s.values());
    let Some(current) = revision::current(live, replica_sets) else {
        return Verdict::Pending(why);
    };
    if t.id.kind == "StatefulSet" {
        stale.extend(stale_failing(
            live,
            &current,
            pods_of(&live["metadata"]["uid"]).iter().copied(),
        ));
    }
    let mut later: Option<(String, Instant)> = None;
    let mut noted: Option<String> = None;
    for pod in pods_of(current.owner()).iter().filter(|p| current.has(p)) {
        if pod["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
            continue;
        }
        for problem in pod_problems(pod) {
            let failing = |problem: PodProblem, message: String| {
                Verdict::Fail(DeployError::PodFailing {
                    object: t.id.to_string(),
                    pod: problem.pod,
                    container: problem.container.unwrap_or_default(),
                    reason: problem.reason,
                    message,
                })
            };
            match problem.severity {
                Severity::Fatal => {
                    let message = problem.message.clone().unwrap_or_default();
                    return failing(problem, message);
                }
                Severity::Retried if scope.baseline.predates(pod, &problem) => {
                    let until = started + options.retry_window;
                    if now >= until {
                        let message = format!(
                            "{} (failing since before this operation; still failing after the kubelet retry window of {})",
                            problem.message.clone().unwrap_or_default(),
                            humantime::format_duration(options.retry_window)
                        );
                        return failing(problem, message);
                    }
                    let note = format!(
                        "{problem} (was failing before this operation; giving the kubelet until {} to retry)",
                        humantime::format_duration(options.retry_window)
                    );
                    later = Some(earliest(later, note, until));
                }
                Severity::Retried => {
                    let message = problem.message.clone().unwrap_or_default();
                    return failing(problem, message);
                }
                Severity::Unschedulable => {
                    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
                    let since = *clocks.unschedulable.entry(uid).or_insert(now);
                    let until = since + options.unschedulable_grace;
                    if now >= until {
                        return Verdict::Fail(DeployError::Unschedulable {
                            object: t.id.to_string(),
                            pod: problem.pod,
                            grace: options.unschedulable_grace,
                            message: problem.message.unwrap_or_default(),
                        });
                    }
                    later = Some(earliest(later, problem.to_string(), until));
                }
                Severity::Waiting => {
                    noted.get_or_insert_with(|| problem.to_string());
                }
            }
        }
    }
    match (later, noted) {
        (Some((note, at)), _) => Verdict::PendingUntil(format!("{why}; {note}"), at),
        (None, Some(note)) => Verdict::Pending(format!("{why}; {note}")),
        (None, None) => Verdict::Pending(why),
    }
}

/// A pod of an earlier revision of a StatefulSet that is failing: the StatefulSet
/// controller waits for it to become ready before it replaces it, which it never will
/// (Kubernetes' documented "forced rollback" limitation), so the wait deletes it and the
/// controller re-creates it from the current template. Its claims stay.
pub(crate) struct Stale {
    pub uid: String,
    pub id: crate::contract::ObjectId,
    pub note: String,
}

fn stale_failing<'a>(
    set: &serde_json::Value,
    current: &revision::Revision,
    pods: impl Iterator<Item = &'a serde_json::Value>,
) -> Vec<Stale> {
    let update = set["status"]["updateRevision"].as_str().unwrap_or("?");
    let name = set["metadata"]["name"].as_str().unwrap_or("?");
    pods.filter(|p| revision::owned_by(p, set) && !current.has(p))
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none_or(serde_json::Value::is_null))
        .filter_map(|pod| {
            let problem = pod_problems(pod)
                .into_iter()
                .find(|p| matches!(p.severity, Severity::Retried | Severity::Fatal))?;
            let meta = &pod["metadata"];
            let old = meta["labels"][revision::REVISION_HASH].as_str().unwrap_or("?");
            Some(Stale {
                uid: meta["uid"].as_str()?.to_string(),
                id: crate::contract::ObjectId {
                    group: String::new(),
                    kind: "Pod".into(),
                    namespace: meta["namespace"].as_str().map(str::to_string),
                    name: meta["name"].as_str()?.to_string(),
                },
                note: format!(
                    "deleted pod {} of StatefulSet {name}: it runs earlier revision {old} and is failing ({}); the controller re-creates it from revision {update}, keeping its claims",
                    problem.pod, problem.reason
                ),
            })
        })
        .collect()
}

fn earliest(known: Option<(String, Instant)>, note: String, at: Instant) -> (String, Instant) {
    match known {
        Some((n, a)) if a <= at => (n, a),
        _ => (note, at),
    }
}
