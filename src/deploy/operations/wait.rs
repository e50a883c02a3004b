//! Waiting until applied objects are really ready (as `health` judges them), failing fast
//! when a pod cannot start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::health::pods::{pod_failure, pod_selector};
use crate::deploy::health::readiness::{readiness, Readiness, KNATIVE_SERVING};
use crate::deploy::model::events::{Event, Progress};
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::targets::Target;

/// How long and how often to poll.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Give up after this long, naming what never became ready.
    pub timeout: Duration,
    /// Time between polls.
    pub poll: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions { timeout: Duration::from_secs(600), poll: Duration::from_secs(2) }
    }
}

/// Polls in a row on which a Knative Service must report `Ready=False` before deploy fails
/// (10 s at the default 2 s interval). Knative may report `False` on the way to `True` (its
/// own client, `kn`, waits a `--wait-window` after a `False` for the same reason).
const KNATIVE_FALSE_POLLS: u32 = 5;

/// Polls `targets` until all are ready, one fails, or the timeout passes.
pub(crate) async fn wait(
    cluster: &Cluster,
    kinds: &Kinds,
    targets: &[&Target],
    options: &WaitOptions,
    progress: &dyn Progress,
) -> Result<(), DeployError> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    let pods = match kinds.find("v1", "Pod") {
        Lookup::Served(kind) => Some(kind),
        _ => None,
    };
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for t in targets {
        *totals.entry(t.app.as_str()).or_default() += 1;
    }
    let mut ready: BTreeSet<usize> = BTreeSet::new();
    let mut reported: BTreeMap<&str, usize> = BTreeMap::new();
    // Knative Services reporting `Ready=False`: on how many polls in a row.
    let mut false_polls: BTreeMap<usize, u32> = BTreeMap::new();
    loop {
        let mut pending: Vec<(usize, String)> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if ready.contains(&i) {
                continue;
            }
            match cluster.get(&t.kind, &t.id).await? {
                None => pending.push((i, "not found".into())),
                Some(live) => match readiness(&t.id.group, &t.id.kind, &live) {
                    Readiness::Ready => {
                        ready.insert(i);
                    }
                    Readiness::Pending(why) => {
                        false_polls.remove(&i);
                        pending.push((i, why));
                        if let (Some(pods), Some(selector)) = (&pods, pod_selector(&live)) {
                            for pod in
                                cluster.list(pods, t.id.namespace.as_deref(), &selector).await?
                            {
                                if let Some(failure) = pod_failure(&pod) {
                                    return Err(DeployError::PodFailing {
                                        object: t.id.to_string(),
                                        pod: failure.pod,
                                        container: failure.container.unwrap_or_default(),
                                        reason: failure.reason,
                                        message: failure.message.unwrap_or_default(),
                                    });
                                }
                            }
                        }
                    }
                    Readiness::Failed(message) if t.id.group == KNATIVE_SERVING => {
                        let seen = false_polls.entry(i).or_default();
                        *seen += 1;
                        if *seen >= KNATIVE_FALSE_POLLS {
                            return Err(DeployError::Failed { object: t.id.to_string(), message });
                        }
                        pending.push((i, message));
                    }
                    Readiness::Failed(message) => {
                        return Err(DeployError::Failed { object: t.id.to_string(), message })
                    }
                },
            }
        }
        for (app, total) in &totals {
            let done = ready.iter().filter(|i| targets[**i].app == *app).count();
            if reported.insert(app, done) != Some(done) {
                progress.event(Event::Waiting { app: app.to_string(), ready: done, total: *total });
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let pending =
                pending.into_iter().map(|(i, why)| format!("{} ({why})", targets[i].id)).collect();
            return Err(DeployError::Timeout { timeout: options.timeout, pending });
        }
        tokio::time::sleep(options.poll).await;
    }
}
