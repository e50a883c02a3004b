//! The emulator's Deployment and StatefulSet controllers, enough of them to produce pods of
//! earlier revisions:
//! - Deployment: each pod template gets a ReplicaSet `<name>-<hash>` labelled
//!   `pod-template-hash` (a hash of the template; a rollback to an earlier template reuses
//!   that template's ReplicaSet), whose `deployment.kubernetes.io/revision` annotation, also
//!   set on the Deployment, is the rollout's revision. The new ReplicaSet's pods (named
//!   `<name>-g<generation>-<i>`, owned by the ReplicaSet) are created at once; the old
//!   ReplicaSets' pods are kept while the new ones are not ready (as a rolling update with
//!   `maxUnavailable: 0` keeps them), and marked terminating and then removed a few ticks
//!   after they are;
//! - StatefulSet: `status.updateRevision` is `<name>-<hash>` of the current template; pods
//!   `<name>-<i>` carry `controller-revision-hash`. A pod of an earlier revision is replaced
//!   only when it is ready: a broken one is left as it is, as the real controller leaves it
//!   (the documented forced-rollback limitation: it waits for the pod to become ready, which
//!   it never does, until someone deletes it). A missing pod is re-created from the update
//!   revision on the next tick; `currentRevision` becomes the update revision once every pod
//!   runs it;
//! - statuses of both are computed from their pods on every tick (replicas, updated, ready,
//!   available, current/update revisions, `observedGeneration` once the change was seen);
//! - the kubelet: [`KubeEmulator::kubelet_retry`] makes a failing workload's existing pods
//!   start after a delay (a Secret fixed, an image pushed).
//!
//! A ticker runs these controllers every 20 ms (and publishes statuses of other kinds, which
//! otherwise wait for a read), so watches see workloads become ready without anyone polling.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{key, Behaviour, KubeEmulator, State, Stored};

pub(super) const TICK: Duration = Duration::from_millis(20);
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const REVISION_HASH: &str = "controller-revision-hash";
const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";
/// Ticks a terminating pod lingers (graceful termination).
const TERMINATION_TICKS: u32 = 3;

/// A stable hash of a pod template (FNV-1a over its JSON), as a short name suffix.
fn template_hash(template: &Value) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in template.to_string().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

fn uid(object: &Value) -> &Value {
    &object["metadata"]["uid"]
}

fn owned_by(object: &Value, owner: &Value) -> bool {
    object["metadata"]["ownerReferences"][0]["uid"] == *uid(owner)
}

fn is_ready(pod: &Value) -> bool {
    let statuses = pod["status"]["containerStatuses"].as_array();
    pod["metadata"].get("deletionTimestamp").is_none()
        && statuses.is_some_and(|s| !s.is_empty() && s.iter().all(|c| c["ready"] == true))
}

/// A kubelet retry scheduled by a test.
pub(super) struct Retry {
    workload: String,
    at: Instant,
}

impl State {
    /// Creates pod `pod_name` of `workload` (from its template, in `behaviour`), owned by
    /// `owner`, with `labels` added to the template's; `ordinal`: a StatefulSet pod's.
    pub(super) fn add_pod(
        &mut self,
        workload: &Value,
        owner: &Value,
        pod_name: &str,
        behaviour: Behaviour,
        labels: &Value,
        ordinal: Option<i64>,
    ) {
        let ns = workload["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let name = workload["metadata"]["name"].as_str().unwrap_or_default();
        let template = &workload["spec"]["template"];
        let statuses: Vec<Value> = template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let config_error = super::pods::config_error(&self.objects, &ns, c);
                container_status(c, behaviour, pod_name, config_error)
            })
            .collect();
        let mut spec = template["spec"].clone();
        if let Some(i) = ordinal {
            // Each replica mounts its own claim of every claim template.
            for t in workload["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
                let claim = format!("{}-{name}-{i}", t["metadata"]["name"].as_str().unwrap_or("?"));
                let volume = json!({"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}});
                match spec["volumes"].as_array_mut() {
                    Some(volumes) => volumes.push(volume),
                    None => spec["volumes"] = json!([volume]),
                }
            }
        }
        let mut pod_labels = template["metadata"]["labels"].clone();
        for (k, v) in labels.as_object().into_iter().flatten() {
            pod_labels[k] = v.clone();
        }
        self.resource_version += 1;
        self.uids += 1;
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod_name, "namespace": ns, "labels": pod_labels,
                "uid": format!("00000000-0000-0000-0000-{:012}", self.uids),
                "resourceVersion": self.resource_version.to_string(),
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                    "name": owner["metadata"]["name"], "uid": uid(owner), "controller": true}],
                "creationTimestamp": "2024-01-01T00:00:00Z",
            },
            "spec": spec,
            "status": pod_status(behaviour, statuses),
        });
        for c in template["spec"]["containers"].as_array().into_iter().flatten() {
            let container = c["name"].as_str().unwrap_or("?").to_string();
            let line = format!("started {}", c["image"].as_str().unwrap_or("?"));
            self.logs.insert((ns.clone(), pod_name.to_string(), container), vec![line]);
        }
        self.objects.insert(
            (String::new(), "pods".into(), ns, pod_name.to_string()),
            Stored { object: pod, managers: Default::default(), status_lag: None },
        );
    }

    /// The Deployment and StatefulSet controllers' answer to a spec change; `false` for
    /// other kinds.
    pub(super) fn roll_out(&mut self, workload: &mut Value, behaviour: Behaviour) -> bool {
        match workload["kind"].as_str() {
            Some("Deployment") => {
                let revision = self.roll_out_deployment(workload, behaviour);
                workload["metadata"]["annotations"][DEPLOYMENT_REVISION] = json!(revision);
            }
            Some("StatefulSet") => self.roll_out_set(workload, behaviour),
            _ => return false,
        }
        self.release_claims();
        true
    }

    /// The objects of resource `group`/`plural` `owner` controls. Only the owner's namespace
    /// is scanned (the objects are keyed by group, plural and namespace first): a tick looks
    /// at every workload, and scanning every object for each made the benchmarks' emulator,
    /// holding hundreds of Deployments, spend its time in ticks instead of answering.
    fn owned(&self, group: &str, plural: &str, owner: &Value) -> Vec<Value> {
        let ns = owner["metadata"]["namespace"].as_str().unwrap_or("default");
        let first = (group.to_string(), plural.to_string(), ns.to_string(), String::new());
        self.objects
            .range(first..)
            .take_while(|(k, _)| k.0 == group && k.1 == plural && k.2 == ns)
            .filter(|(_, s)| owned_by(&s.object, owner))
            .map(|(_, s)| s.object.clone())
            .collect()
    }

    fn pods_of(&self, owner: &Value) -> Vec<Value> {
        self.owned("", "pods", owner)
    }

    fn replica_sets_of(&self, deployment: &Value) -> Vec<Value> {
        self.owned("apps", "replicasets", deployment)
    }

    /// Rolls a Deployment out to its template's ReplicaSet; returns the rollout revision.
    fn roll_out_deployment(&mut self, d: &Value, behaviour: Behaviour) -> String {
        let ns = d["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let hash = template_hash(&d["spec"]["template"]);
        let sets = self.replica_sets_of(d);
        let revision = sets
            .iter()
            .filter_map(|rs| {
                rs["metadata"]["annotations"][DEPLOYMENT_REVISION].as_str()?.parse::<i64>().ok()
            })
            .max()
            .unwrap_or(0)
            + 1;
        let rs_name = format!("{name}-{hash}");
        let Some(t) = self.types.iter().find(|t| t.kind == "ReplicaSet").cloned() else {
            return revision.to_string();
        };
        let existing = sets.iter().find(|rs| rs["metadata"]["name"] == rs_name.as_str()).cloned();
        let mut labels = d["spec"]["template"]["metadata"]["labels"].clone();
        labels[POD_TEMPLATE_HASH] = json!(hash);
        self.resource_version += 1;
        let rs = match existing {
            Some(mut rs) => {
                rs["metadata"]["annotations"][DEPLOYMENT_REVISION] = json!(revision.to_string());
                rs["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
                rs
            }
            None => {
                self.uids += 1;
                let mut template = d["spec"]["template"].clone();
                template["metadata"]["labels"] = labels.clone();
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                        "uid": format!("00000000-0000-0000-0000-{:012}", self.uids),
                        "resourceVersion": self.resource_version.to_string(),
                        "creationTimestamp": "2024-01-01T00:00:00Z",
                        "annotations": {DEPLOYMENT_REVISION: revision.to_string()},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid(d), "controller": true}]},
                    "spec": {"replicas": d["spec"]["replicas"].as_i64().unwrap_or(1), "selector": d["spec"]["selector"], "template": template},
                    "status": {}})
            }
        };
        self.objects.insert(
            key(&t, &ns, &rs_name),
            Stored { object: rs.clone(), managers: Default::default(), status_lag: None },
        );
        // Existing pods of the template take the workload's behaviour from now on (the
        // emulator's way of saying "this change fixed or broke them"), then it is scaled.
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let mut pods = self.pods_of(&rs);
        pods.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string());
        for (i, pod) in pods.iter().enumerate() {
            let k = pod_key(pod);
            if i64::try_from(i).unwrap_or(i64::MAX) >= desired {
                self.objects.remove(&k);
            } else {
                self.set_pod_behaviour(&k, behaviour);
            }
        }
        let extra = json!({POD_TEMPLATE_HASH: hash});
        for i in i64::try_from(pods.len()).unwrap_or(0)..desired {
            self.add_pod(d, &rs, &format!("{name}-g{generation}-{i}"), behaviour, &extra, None);
        }
        revision.to_string()
    }

    /// Rewrites a pod's container statuses for `behaviour`.
    fn set_pod_behaviour(&mut self, k: &super::Key, behaviour: Behaviour) {
        self.resource_version += 1;
        let rv = self.resource_version.to_string();
        let Some(containers) = self.objects.get(k).map(|s| s.object["spec"]["containers"].clone())
        else {
            return;
        };
        let statuses: Vec<Value> = containers
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let config_error = super::pods::config_error(&self.objects, &k.2, c);
                container_status(c, behaviour, &k.3, config_error)
            })
            .collect();
        let Some(stored) = self.objects.get_mut(k) else { return };
        let status = pod_status(behaviour, statuses);
        if stored.object["status"] != status {
            stored.object["status"] = status;
            stored.object["metadata"]["resourceVersion"] = json!(rv);
        }
    }

    fn roll_out_set(&mut self, set: &Value, behaviour: Behaviour) {
        let name = set["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let revision = format!("{name}-{}", template_hash(&set["spec"]["template"]));
        for pod in self.pods_of(set) {
            // A ready pod of another revision is replaced; a broken one is waited on.
            if pod["metadata"]["labels"][REVISION_HASH] != revision.as_str() && is_ready(&pod) {
                let k = (
                    String::new(),
                    "pods".to_string(),
                    pod["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                    pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
                );
                self.objects.remove(&k);
            }
        }
        self.create_set_pods(set, &revision, behaviour);
    }

    /// Creates the missing pods of a StatefulSet from its update revision.
    fn create_set_pods(&mut self, set: &Value, revision: &str, behaviour: Behaviour) {
        let name = set["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ns = set["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        for i in 0..set["spec"]["replicas"].as_i64().unwrap_or(1) {
            let pod_name = format!("{name}-{i}");
            let k = (String::new(), "pods".to_string(), ns.clone(), pod_name.clone());
            if !self.objects.contains_key(&k) {
                self.add_pod(
                    set,
                    set,
                    &pod_name,
                    behaviour,
                    &json!({REVISION_HASH: revision}),
                    Some(i),
                );
            }
        }
    }

    /// The status a Deployment's or StatefulSet's controller publishes from its pods.
    pub(super) fn controller_status(&self, workload: &Value) -> Option<Value> {
        let generation = workload["metadata"]["generation"].as_i64().unwrap_or(1);
        let desired = workload["spec"]["replicas"].as_i64().unwrap_or(1);
        let count = |pods: &[Value]| i64::try_from(pods.len()).unwrap_or(0);
        let ready = |pods: &[Value]| {
            count(&pods.iter().filter(|p| is_ready(p)).cloned().collect::<Vec<_>>())
        };
        match workload["kind"].as_str()? {
            "Deployment" => {
                let hash = template_hash(&workload["spec"]["template"]);
                let sets = self.replica_sets_of(workload);
                let current = sets
                    .iter()
                    .find(|rs| rs["metadata"]["labels"][POD_TEMPLATE_HASH] == hash.as_str())?;
                let all: Vec<Value> = sets.iter().flat_map(|rs| self.pods_of(rs)).collect();
                let new = self.pods_of(current);
                let ready_all = ready(&all);
                let available = if ready(&new) == desired { "True" } else { "False" };
                Some(json!({
                    "observedGeneration": generation, "replicas": count(&all), "updatedReplicas": count(&new),
                    "readyReplicas": ready_all, "availableReplicas": ready_all,
                    "conditions": [{"type": "Available", "status": available}],
                }))
            }
            "StatefulSet" => {
                let name = workload["metadata"]["name"].as_str().unwrap_or_default();
                let update = format!("{name}-{}", template_hash(&workload["spec"]["template"]));
                let pods = self.pods_of(workload);
                let updated: Vec<Value> = pods
                    .iter()
                    .filter(|p| p["metadata"]["labels"][REVISION_HASH] == update.as_str())
                    .cloned()
                    .collect();
                let previous = workload["status"]["currentRevision"].as_str().map(str::to_string);
                let current = if count(&updated) == desired && count(&pods) == desired {
                    update.clone()
                } else {
                    previous.unwrap_or_else(|| update.clone())
                };
                let at_current = pods
                    .iter()
                    .filter(|p| p["metadata"]["labels"][REVISION_HASH] == current.as_str())
                    .count();
                Some(json!({
                    "observedGeneration": generation, "replicas": count(&pods), "readyReplicas": ready(&pods),
                    "availableReplicas": ready(&pods), "currentReplicas": at_current, "updatedReplicas": count(&updated),
                    "currentRevision": current, "updateRevision": update,
                }))
            }
            _ => None,
        }
    }

    /// One pass of every controller: statuses, StatefulSet pods, rollouts finishing,
    /// terminating pods, kubelet retries. Workloads are only looked at in namespaces where
    /// something changed since the last pass (a pass that changes nothing has brought its
    /// namespace to rest, and the next would change nothing either): a pass over hundreds
    /// of settled Deployments held the state long enough to slow every request down.
    pub(super) fn tick(&mut self) {
        let active = self.namespaces_changed_after(self.ticked);
        self.ticked = self.last_change();
        let is_active = |ns: &str| active.as_ref().is_none_or(|a| a.contains(ns));
        let lagging: Vec<super::Key> = self
            .objects
            .iter()
            .filter(|(_, s)| s.status_lag.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for (group, plural, ns, name) in lagging {
            let t = self.types.iter().find(|t| t.group == group && t.plural == plural).cloned();
            if let Some(t) = t {
                self.read(&t, &ns, &name);
            }
        }
        self.kubelet();
        let workloads: Vec<Value> = self
            .objects
            .values()
            .filter(|s| {
                s.status_lag.is_none()
                    && matches!(s.object["kind"].as_str(), Some("Deployment" | "StatefulSet"))
                    && is_active(s.object["metadata"]["namespace"].as_str().unwrap_or(""))
            })
            .map(|s| s.object.clone())
            .collect();
        for w in workloads {
            if w["kind"] == "StatefulSet" {
                let revision = format!(
                    "{}-{}",
                    w["metadata"]["name"].as_str().unwrap_or(""),
                    template_hash(&w["spec"]["template"])
                );
                let behaviour = self.behaviour_of(&w);
                self.create_set_pods(&w, &revision, behaviour);
            } else {
                self.retire_old_replica_sets(&w);
            }
            self.publish_status(&w);
        }
        self.finish_terminating();
    }

    fn publish_status(&mut self, workload: &Value) {
        let Some(status) = self.controller_status(workload) else { return };
        let ns = workload["metadata"]["namespace"].as_str().unwrap_or("").to_string();
        let name = workload["metadata"]["name"].as_str().unwrap_or("").to_string();
        let Some(t) =
            self.types.iter().find(|t| Some(t.kind.as_str()) == workload["kind"].as_str()).cloned()
        else {
            return;
        };
        self.resource_version += 1;
        let rv = self.resource_version.to_string();
        let Some(stored) = self.objects.get_mut(&key(&t, &ns, &name)) else { return };
        if stored.object["status"] == status {
            self.resource_version -= 1;
            return;
        }
        stored.object["status"] = status;
        stored.object["metadata"]["resourceVersion"] = json!(rv);
    }

    /// Once a Deployment's new pods are all ready, its other ReplicaSets' pods terminate.
    fn retire_old_replica_sets(&mut self, d: &Value) {
        let hash = template_hash(&d["spec"]["template"]);
        let sets = self.replica_sets_of(d);
        let Some(current) =
            sets.iter().find(|rs| rs["metadata"]["labels"][POD_TEMPLATE_HASH] == hash.as_str())
        else {
            return;
        };
        let new = self.pods_of(current);
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        if i64::try_from(new.iter().filter(|p| is_ready(p)).count()).unwrap_or(0) < desired {
            return;
        }
        for rs in sets.iter().filter(|rs| rs["metadata"]["uid"] != current["metadata"]["uid"]) {
            for pod in self.pods_of(rs) {
                if pod["metadata"].get("deletionTimestamp").is_some() {
                    continue;
                }
                self.resource_version += 1;
                let rv = self.resource_version.to_string();
                let k = pod_key(&pod);
                if let Some(stored) = self.objects.get_mut(&k) {
                    stored.object["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
                    stored.object["metadata"]["resourceVersion"] = json!(rv);
                    stored.status_lag = None;
                    self.terminating.insert(k, TERMINATION_TICKS);
                }
            }
        }
    }

    /// Removes terminating pods whose grace ran out.
    fn finish_terminating(&mut self) {
        let mut done = Vec::new();
        for (k, ticks) in self.terminating.iter_mut() {
            *ticks = ticks.saturating_sub(1);
            if *ticks == 0 {
                done.push(k.clone());
            }
        }
        for k in done {
            self.terminating.remove(&k);
            self.objects.remove(&k);
        }
    }

    /// Kubelet retries that are due: the workload's failing pods start.
    fn kubelet(&mut self) {
        let now = Instant::now();
        let due: Vec<String> =
            self.retries.iter().filter(|r| r.at <= now).map(|r| r.workload.clone()).collect();
        self.retries.retain(|r| r.at > now);
        for workload in due {
            let pods: Vec<super::Key> = self
                .objects
                .iter()
                .filter(|(_, s)| s.object["kind"] == "Pod" && pod_of(&s.object, &workload))
                .map(|(k, _)| k.clone())
                .collect();
            for k in pods {
                self.set_pod_behaviour(&k, Behaviour::Ready);
            }
        }
    }

    /// Deletes everything `uid` owns, and what that owns, and so on (background cascade).
    pub(super) fn cascade(&mut self, uid: &Value) {
        let mut owners = vec![uid.clone()];
        while let Some(owner) = owners.pop() {
            let owned: Vec<super::Key> = self
                .objects
                .iter()
                .filter(|(_, s)| s.object["metadata"]["ownerReferences"][0]["uid"] == owner)
                .map(|(k, _)| k.clone())
                .collect();
            for k in owned {
                if let Some(s) = self.objects.remove(&k) {
                    owners.push(s.object["metadata"]["uid"].clone());
                }
            }
        }
    }
}

/// Whether a pod belongs to workload `name` (by the pod name's prefix, as its controllers
/// name them).
fn pod_of(pod: &Value, name: &str) -> bool {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    pod_name.strip_prefix(name).is_some_and(|rest| rest.starts_with('-'))
}

fn pod_key(pod: &Value) -> super::Key {
    (
        String::new(),
        "pods".into(),
        pod["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
        pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// A pod's status in `behaviour`, with its containers' statuses.
fn pod_status(behaviour: Behaviour, statuses: Vec<Value>) -> Value {
    match behaviour {
        Behaviour::Unschedulable(message) => json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}),
        Behaviour::Failing(_) => json!({"phase": "Pending", "containerStatuses": statuses}),
        _ => json!({"phase": "Running", "containerStatuses": statuses}),
    }
}

/// A container's status in a pod of `behaviour`.
/// `config_error`: why the kubelet cannot make the container's configuration (the message a
/// failing container waits with then).
fn container_status(
    c: &Value,
    behaviour: Behaviour,
    pod_name: &str,
    config_error: Option<String>,
) -> Value {
    let container = c["name"].as_str().unwrap_or("?");
    let image = c["image"].as_str().unwrap_or("?");
    let running = json!({"running": {"startedAt": "2024-01-01T00:00:00Z"}});
    let (ready, state) = match behaviour {
        Behaviour::Ready | Behaviour::BrieflyFailing(_) => (true, running),
        Behaviour::NeverReady | Behaviour::Unschedulable(_) => (false, running),
        Behaviour::Failing(reason) => {
            let message = if let Some(error) = config_error {
                error
            } else if reason.contains("Image") {
                format!("Back-off pulling image \"{image}\"")
            } else {
                format!("back-off 10s restarting failed container={container} pod={pod_name}")
            };
            (false, json!({"waiting": {"reason": reason, "message": message}}))
        }
    };
    json!({"name": container, "image": image, "ready": ready, "restartCount": 0, "state": state})
}

impl KubeEmulator {
    /// The kubelet's next retry of workload `name`'s failing pods succeeds after `delay`
    /// (the Secret was fixed, the image pushed): they start and become ready.
    pub fn kubelet_retry(&self, name: &str, delay: Duration) {
        self.state().retries.push(Retry { workload: name.to_string(), at: Instant::now() + delay });
    }
}
