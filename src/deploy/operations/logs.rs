//! `logs`: the logs of every pod of an application (the pods its workloads select), each line
//! labelled with its pod and container, like stern; following keeps looking for new pods (a
//! rollout, a restart) and follows them too. A new pod's container is often still being
//! created when it is first seen (the server answers 400, "waiting to start"): it is looked
//! at again at each poll until it starts, never dropped (#31: after a restart, one new pod in
//! three was never followed). A pod deleted meanwhile (404) ends quietly; any other failure
//! ends the command with it.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde_json::Value;

use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::health::pods::pod_selector;
use crate::deploy::model::kinds::Lookup;
use crate::deploy::state::record::with_kinds;

/// Which lines `logs` shows.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only this container of each pod (default: every container).
    pub container: Option<String>,
    /// Only lines newer than this.
    pub since: Option<Duration>,
    /// Only the last N lines of each container (pods found while following show everything).
    pub tail: Option<i64>,
    /// Keep streaming, and follow pods that appear later, until the receiver stops.
    pub follow: bool,
    /// How often to look for new pods while following.
    pub poll: Duration,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// The line, without its newline.
    pub text: String,
}

/// Whoever receives log lines: returns `false` to stop (its output went away).
pub trait LogSink {
    /// Called for each line, in order per container.
    fn line(&mut self, line: LogLine) -> bool;
}

impl Cluster {
    /// Sends the logs of every pod of application `app` (of the latest revision of `bundle`)
    /// to `sink`: pod by pod, container by container; with `follow`, as they come, until the
    /// sink returns `false`. Returns how many containers were read.
    pub async fn logs(
        &self,
        bundle: &str,
        namespace: &str,
        app: &str,
        options: &LogOptions,
        sink: &mut dyn LogSink,
    ) -> Result<usize, DeployError> {
        let entries = self.app_entries(bundle, namespace, app).await?;
        let kinds = self.kinds(&entries.iter().map(|e| e.id.group.clone()).collect()).await?;
        let Lookup::Served(pod_kind) = kinds.find("v1", "Pod") else {
            return Err(DeployError::NotServed("Pods"));
        };
        let mut selectors = Vec::new();
        for (entry, kind) in with_kinds(&kinds, entries) {
            if let Some(live) = self.get(&kind, &entry.id).await? {
                selectors.extend(pod_selector(&live).filter(|_| has_pods(&entry.id.kind)));
            }
        }
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Followed>(256);
        let mut first_round = true;
        // One task per followed container; dropping the set (whenever this returns) aborts
        // those still running, so none outlives the call.
        let mut followers = tokio::task::JoinSet::new();
        loop {
            let mut streams = Vec::new();
            let mut all_containers = BTreeSet::new();
            for selector in &selectors {
                for pod in self.list(&pod_kind, Some(namespace), selector).await? {
                    for (pod_name, container) in containers(&pod) {
                        all_containers.insert(container.clone());
                        let wanted = options.container.as_ref().is_none_or(|c| *c == container);
                        if wanted && seen.insert((pod_name.clone(), container.clone())) {
                            streams.push((pod_name, container));
                        }
                    }
                }
            }
            if let Some(container) = options.container.as_ref().filter(|c| {
                first_round
                    && seen.is_empty()
                    && !all_containers.is_empty()
                    && !all_containers.contains(*c)
            }) {
                return Err(DeployError::NoContainer {
                    app: app.to_string(),
                    container: container.clone(),
                    known: all_containers.into_iter().collect(),
                });
            }
            streams.sort();
            let params = |container: &str| LogParams {
                container: Some(container.to_string()),
                follow: options.follow,
                since_seconds: options.since.map(|s| s.as_secs().max(1) as i64),
                tail_lines: options.tail.filter(|_| first_round),
                ..LogParams::default()
            };
            for (pod, container) in streams {
                let lp = params(&container);
                if !options.follow {
                    let what = format!("pod {pod} container {container}");
                    let text =
                        self.retried("read the log of", &what, || pods_api.logs(&pod, &lp)).await?;
                    for line in text.lines() {
                        let line = LogLine {
                            pod: pod.clone(),
                            container: container.clone(),
                            text: line.into(),
                        };
                        if !sink.line(line) {
                            return Ok(seen.len());
                        }
                    }
                    continue;
                }
                let api = pods_api.clone();
                let server = self.server.clone();
                let sender = sender.clone();
                followers.spawn(follow(api, server, pod, container, lp, sender));
            }
            if !options.follow {
                return Ok(seen.len());
            }
            first_round = false;
            let next_look = tokio::time::sleep(options.poll);
            tokio::pin!(next_look);
            loop {
                tokio::select! {
                    _ = &mut next_look => break,
                    // Reap followers whose stream ended, so the set holds only live ones.
                    Some(joined) = followers.join_next(), if !followers.is_empty() => {
                        // A follower that panicked is a bug: surface it, never lose it quietly.
                        if let Err(e) = joined {
                            if e.is_panic() {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                    }
                    received = receiver.recv() => match received {
                        Some(Followed::Line(line)) => if !sink.line(line) { return Ok(seen.len()) },
                        Some(Followed::NotStarted { pod, container, answer }) => {
                            tracing::debug!("pod {pod} container {container}: {answer}; looking again at the next poll");
                            seen.remove(&(pod, container));
                        }
                        Some(Followed::Failed(e)) => return Err(e),
                        None => break,
                    },
                }
            }
        }
    }
}

/// What a follower reports.
enum Followed {
    /// A line.
    Line(LogLine),
    /// The container has not started yet (or the pod is not scheduled): follow it later.
    NotStarted {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// What the server said.
        answer: String,
    },
    /// Following failed for good.
    Failed(DeployError),
}

/// Follows one container until its log ends (it exited, its pod went away) or the receiver
/// stops listening.
async fn follow(
    api: Api<Pod>,
    server: String,
    pod: String,
    container: String,
    params: LogParams,
    sender: tokio::sync::mpsc::Sender<Followed>,
) {
    let what = || format!("pod {pod} container {container}");
    let failed =
        |e| Followed::Failed(DeployError::from_kube(&server, "follow the log of", what(), e));
    let stream = match api.log_stream(&pod, &params).await {
        Ok(stream) => stream,
        // The pod went away before its log was read: nothing left to follow.
        Err(kube::Error::Api(status)) if status.code == 404 => return,
        Err(kube::Error::Api(status)) if status.code == 400 => {
            let answer = status.message.clone();
            let _ = sender.send(Followed::NotStarted { pod, container, answer }).await;
            return;
        }
        Err(e) => {
            let _ = sender.send(failed(e)).await;
            return;
        }
    };
    let mut lines = stream.lines();
    loop {
        let report = match lines.try_next().await {
            Ok(Some(text)) => {
                Followed::Line(LogLine { pod: pod.clone(), container: container.clone(), text })
            }
            Ok(None) => return,
            Err(e) => failed(kube::Error::ReadEvents(e)),
        };
        let last = matches!(report, Followed::Failed(_));
        if sender.send(report).await.is_err() || last {
            return;
        }
    }
}

/// Whether pods of this kind are the application's running pods (a CronJob's, a Job's too).
fn has_pods(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet")
}

/// (pod, container) pairs of a pod.
fn containers(pod: &Value) -> Vec<(String, String)> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .map(|c| (name.clone(), c.to_string()))
        .collect()
}
