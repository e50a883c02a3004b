//! A Kubernetes API EMULATOR for tests. It is not a Kubernetes API server and does not try
//! to be one: no Kubernetes server can run on the machines these tests run on, so this small
//! HTTP server on 127.0.0.1 answers the requests charmer's deploy stage makes, well enough
//! for the real `kube` client (reached through a generated kubeconfig) to run unchanged:
//!
//! - `/version` and discovery (`/api`, `/apis`, resource lists) for core v1, apps, batch,
//!   storage, apiextensions, networking, rbac and policy, plus groups tests add (as if CRDs
//!   were installed) and the kinds of CustomResourceDefinitions applied to it;
//! - server-side apply (`application/apply-patch+yaml` with `fieldManager`, `force`,
//!   `dryRun=All`): field ownership per manager at the level of leaf fields (lists are
//!   atomic), so fields a manager stops applying are removed and fields other managers own
//!   are kept; `metadata.generation` bumps on `spec` changes only; `resourceVersion` bumps
//!   on every real change and never on a no-op apply;
//! - get, list (with label selectors), create (409 `AlreadyExists` when the name is taken,
//!   also by an object being deleted), replace (`PUT`, 409 `Conflict` when
//!   `metadata.resourceVersion` is not the stored one: optimistic concurrency, as Leases use
//!   it), delete (owned pods go with their workload, everything in a namespace goes with it);
//! - finalizers: an object whose `metadata.finalizers` is not empty is not removed by a delete
//!   but gets `metadata.deletionTimestamp` (and the delete answers the object, not a Status).
//!   Every claim gets the `kubernetes.io/pvc-protection` finalizer when created, which the
//!   simulated controller removes (deleting the claim) once no Pod mounts it any more;
//! - the NodePort allocator: a Service asking for a node port another Service holds, in any
//!   namespace (node ports are cluster-wide), is refused with 422 `Invalid` (`provided port
//!   is already allocated`);
//! - `coordination.k8s.io/v1` Leases (plain objects: nothing expires them, as in a cluster);
//! - StatefulSet claim templates: the simulated controller creates claim `<template>-<set>-<i>`
//!   for each replica (bound, not owned by the set, so they outlive it, as in a cluster);
//! - a status simulator (chosen per workload name, or per image it runs): workloads become
//!   ready (one read after each change, so clients must look at `observedGeneration`),
//!   never become ready, or fail with a container waiting
//!   reason such as `ImagePullBackOff` (with Pods carrying container statuses); claims bind;
//!   CRDs become established; a served Knative `Service` gets its `Ready` condition (True,
//!   Unknown while "waiting for a Revision", or False with `RevisionFailed`) at once, for its
//!   generation — no revisions, routes or pods of its own;
//! - fault injection: the next N requests answer 503, or lose their connection with no
//!   answer at all; namespace creation can be forbidden (403);
//! - the `pods/log` subresource, served by the emulator itself from lines it keeps per
//!   container (a real API server proxies it to the node's kubelet): each container of a
//!   simulated pod logs `started <image>`, tests add lines with `append_log`; `container`
//!   (required when a pod has several, as the server requires), `tailLines` and
//!   `follow=true` are honoured — a followed log answers the lines so far and then ends, as
//!   for a container that exited; [`KubeEmulator::start_late`] makes a pod answer its first
//!   log reads with 400 "waiting to start: ContainerCreating", as a pod still being created
//!   does (kube_emulator_logs.rs);
//! - the kubelet's CreateContainerConfigError (`kube_emulator_pods.rs`): a simulated pod's
//!   container whose `env` reads a missing Secret or ConfigMap key (or whose `envFrom` names a
//!   missing object), not optional, waits with that reason and the kubelet's message
//!   (`couldn't find key KEY in Secret NS/NAME`), and its workload never becomes ready;
//! - a pod-template annotation change (such as the one `restart` applies) is a spec change:
//!   the workload's generation bumps and its pods are replaced, as the controllers do.
//! - RBAC for one user (`deployer`, the kubeconfig's): [`KubeEmulator::restrict_to`] gives it
//!   only the [`Grant`]s listed (verbs on resources of API groups, in one namespace as a
//!   RoleBinding grants them, or cluster-wide); every other object request answers 403
//!   `Forbidden` with the API server's message and details, before any existence check, as
//!   the real authorizer runs first. The request's verb follows the API server's request
//!   info (`get`, `list`, `create`, `patch`, `update`, `delete`), and a request for a
//!   Namespace object by name is in that namespace (so a RoleBinding can grant it). Discovery
//!   and `/version` are open to everyone. [`namespace_admin`] is the built-in aggregated
//!   `admin` ClusterRole's rules (Kubernetes' bootstrap policy) bound in one namespace.
//!   SelfSubjectAccessReviews are answered from the same grants (and not counted as writes);
//!   SelfSubjectRulesReviews are not emulated.
//! - update validation of immutable fields (StatefulSet spec beyond replicas/template/...,
//!   Deployment selector, a set Service clusterIP, claims) with the API server's 422 causes,
//!   claim expansion only where the StorageClass has `allowVolumeExpansion` (403 from the resize
//!   admission plugin otherwise), `propagationPolicy: Orphan` deletes, and a re-created
//!   StatefulSet adopting its orphaned pods: see kube_emulator_admission.rs. Claims made from a
//!   claim template carry the set's selector labels, as the controller makes them.
//!
//! - racing writers (kube_emulator_race.rs): [`KubeEmulator::hold_next`] holds one request
//!   until the test releases it; an apply naming `metadata.resourceVersion` is made only on
//!   that version (409 `Conflict` otherwise), a precondition as the API server has it.
//!
//! - watches and the Deployment → ReplicaSet → Pod and StatefulSet revision controllers, in
//!   kube_emulator_watch.rs and kube_emulator_controllers.rs (see their module docs): list +
//!   watch with resourceVersion, bookmarks, 410 `Expired`, request counts; ReplicaSets with
//!   `pod-template-hash`, old-revision pods kept until the new ones are ready, StatefulSet
//!   `currentRevision`/`updateRevision` and `controller-revision-hash`, a broken pod not
//!   replaced when the template is reverted; a 20 ms controller ticker (over the namespaces
//!   that changed since its last pass). Checked against
//!   /work/notes/real-cluster.md (kube-apiserver 1.32 with its controllers); what differs:
//!   Deployment pods are named `<name>-g<generation>-<i>` (real: `<replicaset>-<random>`) and a
//!   rollout creates every new pod at once (real: surge steps), StatefulSet pods of a ready
//!   revision are all replaced at once (real: highest ordinal first, one at a time), no
//!   `Progressing` condition, bookmarks every second (real: about every minute), a watch
//!   without resourceVersion starts now (1.32 with bookmarks sends the existing objects
//!   first), and DaemonSets and Jobs still replace their pods on each change.
//!
//! Not emulated: schemas and strict field validation, defaulting, admission (beyond the claim
//! finalizer and claim resize), finalizers of other controllers, graceful termination of pods
//! other than a Deployment's old ones, RBAC beyond one user's grants (no roles or bindings as
//! objects, no groups, no `resourceNames`, no subresources), subresources other than `pods/log`,
//! `sinceSeconds` of logs (every line counts as recent), list-map merging of SSA (lists are
//! replaced whole), conflicts between
//! managers other than value differences on the same leaf.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

#[path = "kube_emulator_logs.rs"]
mod late;
#[path = "kube_emulator_pods.rs"]
mod pods;
#[path = "kube_emulator_race.rs"]
mod race;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

#[path = "kube_emulator_admission.rs"]
mod admission;
#[path = "kube_emulator_controllers.rs"]
mod controllers;
#[path = "kube_emulator_watch.rs"]
mod watch;

/// How the simulated controllers treat a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Becomes ready one read after each change.
    Ready,
    /// Pods run but never become ready.
    NeverReady,
    /// Containers wait with this reason (`ImagePullBackOff`, `CrashLoopBackOff`, ...).
    Failing(&'static str),
    /// Knative Services only: `Ready=False` with this reason for the first two reads after a
    /// change, then `True` (Knative may report `False` on its way to ready).
    BrieflyFailing(&'static str),
    /// Pods stay Pending: the scheduler finds no node, with this message.
    Unschedulable(&'static str),
}

/// A running emulator; stops when dropped.
pub struct KubeEmulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Clone)]
struct ResourceType {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
}

impl ResourceType {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

type Key = (String, String, String, String);
type FieldPath = Vec<String>;

#[derive(Debug, Clone)]
struct Stored {
    object: Value,
    /// Leaf field paths each field manager owns.
    managers: BTreeMap<String, BTreeSet<FieldPath>>,
    /// Reads left before the simulated controller publishes status for the current spec.
    status_lag: Option<u32>,
}

struct State {
    version: (u32, u32),
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Stored>,
    resource_version: u64,
    uids: u64,
    default_behaviour: Behaviour,
    behaviours: BTreeMap<String, Behaviour>,
    image_behaviours: BTreeMap<String, Behaviour>,
    fail_next: u32,
    drop_next: u32,
    failures_served: u32,
    forbid_namespaces: bool,
    webhooks: Vec<admission::Webhook>,
    /// The user's permissions; `None`: everything is allowed.
    grants: Option<Vec<Grant>>,
    writes: Vec<String>,
    /// Log lines by (namespace, pod, container).
    logs: BTreeMap<(String, String, String), Vec<String>>,
    holds: race::Holds,
    late_starts: late::LateStarts,
    watches: watch::Watches,
    /// Pods being terminated, with the controller ticks left before they are gone.
    terminating: BTreeMap<Key, u32>,
    retries: Vec<controllers::Retry>,
    /// The last change the controllers' previous pass had seen.
    ticked: u64,
}

/// One permission of the emulated user: an RBAC rule (verbs on resources of API groups, `*`
/// matching any) bound in one namespace, or cluster-wide when `namespace` is `None`.
#[derive(Debug, Clone)]
pub struct Grant {
    /// API groups (`""` the core group).
    pub groups: Vec<String>,
    /// Resources (plurals).
    pub resources: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
    /// The namespace a RoleBinding grants it in; `None`: a ClusterRoleBinding.
    pub namespace: Option<String>,
}

impl Grant {
    /// A rule bound in `namespace` (or cluster-wide for `None`).
    pub fn new(
        namespace: Option<&str>,
        groups: &[&str],
        resources: &[&str],
        verbs: &[&str],
    ) -> Grant {
        let owned = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Grant {
            groups: owned(groups),
            resources: owned(resources),
            verbs: owned(verbs),
            namespace: namespace.map(str::to_string),
        }
    }

    fn allows(&self, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
        let matches = |items: &[String], item: &str| items.iter().any(|i| i == "*" || i == item);
        matches(&self.verbs, verb)
            && matches(&self.groups, group)
            && matches(&self.resources, resource)
            && (self.namespace.is_none() || self.namespace.as_deref() == namespace)
    }
}

/// The built-in aggregated `admin` ClusterRole (admin + edit + view of Kubernetes' bootstrap
/// policy, plugin/pkg/auth/authorizer/rbac/bootstrappolicy) bound by a RoleBinding in
/// `namespace`, with `leases`: whether the Kubernetes release grants edit leases.
pub fn namespace_admin(namespace: &str, leases: bool) -> Vec<Grant> {
    const READ: &[&str] = &["get", "list", "watch"];
    const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
    let ns = Some(namespace);
    let mut grants = vec![
        Grant::new(ns, &["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
        Grant::new(
            ns,
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            &[READ, WRITE].concat(),
        ),
        Grant::new(
            ns,
            &[""],
            &[
                "secrets",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "services/proxy",
            ],
            READ,
        ),
        Grant::new(
            ns,
            &[""],
            &[
                "pods",
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "secrets",
                "serviceaccounts",
                "services",
            ],
            WRITE,
        ),
        Grant::new(
            ns,
            &["apps"],
            &["daemonsets", "deployments", "replicasets", "statefulsets"],
            WRITE,
        ),
        Grant::new(ns, &["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        Grant::new(ns, &["batch"], &["cronjobs", "jobs"], WRITE),
        Grant::new(ns, &["policy"], &["poddisruptionbudgets"], WRITE),
        Grant::new(ns, &["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
        Grant::new(
            ns,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "pods",
                "replicationcontrollers",
                "serviceaccounts",
                "services",
                "events",
                "limitranges",
                "pods/log",
                "resourcequotas",
                "namespaces",
            ],
            READ,
        ),
        Grant::new(
            ns,
            &["apps"],
            &["controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets"],
            READ,
        ),
        Grant::new(ns, &["autoscaling"], &["horizontalpodautoscalers"], READ),
        Grant::new(ns, &["batch"], &["cronjobs", "jobs"], READ),
        Grant::new(ns, &["policy"], &["poddisruptionbudgets"], READ),
        Grant::new(ns, &["networking.k8s.io"], &["ingresses", "networkpolicies"], READ),
        Grant::new(ns, &["discovery.k8s.io"], &["endpointslices"], READ),
    ];
    if leases {
        grants.push(Grant::new(ns, &["coordination.k8s.io"], &["leases"], &[READ, WRITE].concat()));
    }
    grants
}

const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"];

impl KubeEmulator {
    /// Starts an emulator serving Kubernetes 1.29 on a free 127.0.0.1 port.
    pub fn start() -> KubeEmulator {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::new()));
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("emulator runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let ticked = served.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(controllers::TICK).await;
                        let mut state = ticked.lock().unwrap_or_else(|e| e.into_inner());
                        state.tick();
                        state.record_changes();
                    }
                });
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let state = served.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let emulator =
            KubeEmulator { addr, state, dir, shutdown: Some(shutdown), thread: Some(thread) };
        std::fs::write(emulator.kubeconfig(), emulator.kubeconfig_text())
            .expect("write kubeconfig");
        emulator
    }

    fn kubeconfig_text(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n\
             - name: elsewhere\n  context:\n    cluster: nowhere\n    user: emulator\n\
             current-context: emulator\nusers:\n- name: emulator\n  user: {{}}\n",
            addr = self.addr
        )
    }

    /// The kubeconfig pointing at this emulator (context `emulator`, current).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Client options for the library API.
    pub fn client_options(&self) -> charmer::deploy::ClientOptions {
        charmer::deploy::ClientOptions { kubeconfig: Some(self.kubeconfig()), context: None }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the Kubernetes version `/version` reports.
    pub fn set_version(&self, major: u32, minor: u32) {
        self.state().version = (major, minor);
    }

    /// Serves an extra group, as if its CRDs were installed: (kind, plural, namespaced).
    pub fn serve_group(&self, group: &str, version: &str, kinds: &[(&str, &str, bool)]) {
        let mut state = self.state();
        for (kind, plural, namespaced) in kinds {
            state.add_type(group, version, kind, plural, *namespaced);
        }
    }

    /// How workloads named `name` behave from their next change on.
    pub fn set_behaviour(&self, name: &str, behaviour: Behaviour) {
        self.state().behaviours.insert(name.to_string(), behaviour);
    }

    /// How workloads running `image` behave from their next change on (before their name's).
    pub fn set_image_behaviour(&self, image: &str, behaviour: Behaviour) {
        self.state().image_behaviours.insert(image.to_string(), behaviour);
    }

    /// The next `n` requests answer 503 Service Unavailable.
    pub fn fail_next(&self, n: u32) {
        self.state().fail_next = n;
    }

    /// The next `n` requests lose their connection before any answer.
    pub fn drop_next(&self, n: u32) {
        self.state().drop_next = n;
    }

    /// Refuses to create namespaces (403), as a cluster does for users without the right.
    pub fn forbid_namespaces(&self) {
        self.state().forbid_namespaces = true;
    }

    /// Installs a validating admission webhook `name` for objects of `kind`: `check` answers
    /// why an object is denied, or `None` (see kube_emulator_admission.rs).
    pub fn validating_webhook(&self, name: &str, kind: &str, check: fn(&Value) -> Option<String>) {
        self.state().webhooks.push(admission::Webhook::new(name, kind, check));
    }

    /// From now on the user may do only what `grants` allow (RBAC); see [`Grant`].
    pub fn restrict_to(&self, grants: Vec<Grant>) {
        self.state().grants = Some(grants);
    }

    /// How many injected failures (503s and dropped connections) were served.
    pub fn failures_served(&self) -> u32 {
        self.state().failures_served
    }

    /// Every write request (not dry-run) received, as `METHOD path`.
    pub fn writes(&self) -> Vec<String> {
        self.state().writes.clone()
    }

    /// Adds a line to the log of container `container` of pod `pod`.
    pub fn append_log(&self, namespace: &str, pod: &str, container: &str, line: &str) {
        let key = (namespace.to_string(), pod.to_string(), container.to_string());
        self.state().logs.entry(key).or_default().push(line.to_string());
    }

    /// Names of the stored pods in `namespace`, sorted.
    pub fn pods(&self, namespace: &str) -> Vec<String> {
        let state = self.state();
        state
            .objects
            .iter()
            .filter(|((_, plural, ns, _), _)| plural == "pods" && ns == namespace)
            .map(|((_, _, _, name), _)| name.clone())
            .collect()
    }

    /// Stores an object directly, as another tool (manager `kubectl`) would have created it.
    pub fn insert(&self, object: Value) {
        self.insert_as("kubectl", object);
    }

    /// Stores an object directly, applied (forced) by field manager `manager`.
    pub fn insert_as(&self, manager: &str, object: Value) {
        let mut state = self.state();
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let t = state
            .types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
            .expect("a served kind");
        let ns = if t.namespaced {
            object["metadata"]["namespace"].as_str().unwrap_or("default").to_string()
        } else {
            String::new()
        };
        let name = object["metadata"]["name"].as_str().expect("a name").to_string();
        state.apply(&t, &ns, &name, manager, object, false, true).expect("insert");
    }

    /// Deletes a stored object as another client would (finalizers apply).
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let mut state = self.state();
        let t = state.types.iter().find(|t| t.kind == kind).cloned().expect("a served kind");
        state.delete(&t, namespace, name);
    }

    /// The stored object of `kind` (`""` namespace for cluster-scoped kinds).
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.state();
        state
            .objects
            .iter()
            .find(|((_, _, ns, n), s)| s.object["kind"] == kind && ns == namespace && n == name)
            .map(|(_, s)| s.object.clone())
    }

    /// `Kind/namespace/name` → resourceVersion of every stored object except Pods (which the
    /// simulated controllers manage) and Events.
    pub fn resource_versions(&self) -> BTreeMap<String, String> {
        let state = self.state();
        state
            .objects
            .iter()
            .filter(|(_, s)| s.object["kind"] != "Pod")
            .map(|((_, _, ns, name), s)| {
                (
                    format!("{}/{ns}/{name}", s.object["kind"].as_str().unwrap_or("?")),
                    s.object["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Returned to hyper to close a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the emulator")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, std::convert::Infallible>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let query: BTreeMap<String, String> =
        parts.uri.query().map(|q| url_pairs(q).collect()).unwrap_or_default();
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let hold =
        state.lock().unwrap_or_else(|e| e.into_inner()).holds.take(&parts.method, parts.uri.path());
    if let Some(release) = hold {
        let _ = release.await;
    }
    let watching = watch::is_watch(&parts.method, &query);
    let (status, value) = {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        if guard.drop_next > 0 {
            guard.drop_next -= 1;
            guard.failures_served += 1;
            return Err(Dropped);
        }
        guard.count_request(&parts.method, parts.uri.path(), watching);
        if watching && guard.fail_next == 0 {
            drop(guard);
            return Ok(watch::serve(state.clone(), parts.uri.path(), &query));
        }
        let answer = guard.serve(&parts.method, parts.uri.path(), &query, &content_type, &body);
        guard.record_changes();
        answer
    };
    // A bare string is a log answer: plain text, as the kubelet sends it.
    let (body, content_type) = match value {
        Value::String(text) => (text, "text/plain"),
        value => (value.to_string(), "application/json"),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    Ok(response)
}

/// `a=b&c=d` with percent-decoding (enough for label selectors and field managers).
fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: u16, reason: &str, message: impl Into<String>) -> (StatusCode, Value) {
    let message = message.into();
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

type Answer = (StatusCode, Value);

impl State {
    fn new() -> State {
        let mut state = State {
            version: (1, 29),
            types: Vec::new(),
            objects: BTreeMap::new(),
            resource_version: 100,
            uids: 0,
            default_behaviour: Behaviour::Ready,
            behaviours: BTreeMap::new(),
            image_behaviours: BTreeMap::new(),
            fail_next: 0,
            drop_next: 0,
            failures_served: 0,
            forbid_namespaces: false,
            webhooks: Vec::new(),
            grants: None,
            writes: Vec::new(),
            logs: BTreeMap::new(),
            holds: race::Holds::default(),
            late_starts: late::LateStarts::default(),
            watches: Default::default(),
            terminating: BTreeMap::new(),
            retries: Vec::new(),
            ticked: 0,
        };
        let builtin: &[(&str, &str, &str, &str, bool)] = &[
            ("", "v1", "Namespace", "namespaces", false),
            ("", "v1", "ConfigMap", "configmaps", true),
            ("", "v1", "Secret", "secrets", true),
            ("", "v1", "Service", "services", true),
            ("", "v1", "ServiceAccount", "serviceaccounts", true),
            ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true),
            ("", "v1", "PersistentVolume", "persistentvolumes", false),
            ("", "v1", "Pod", "pods", true),
            ("apps", "v1", "Deployment", "deployments", true),
            ("apps", "v1", "StatefulSet", "statefulsets", true),
            ("apps", "v1", "DaemonSet", "daemonsets", true),
            ("apps", "v1", "ReplicaSet", "replicasets", true),
            ("batch", "v1", "Job", "jobs", true),
            ("batch", "v1", "CronJob", "cronjobs", true),
            ("storage.k8s.io", "v1", "StorageClass", "storageclasses", false),
            (
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
            ),
            ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
            ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false),
            ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true),
            ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
            ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
            ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false),
            ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
            ("coordination.k8s.io", "v1", "Lease", "leases", true),
        ];
        for (group, version, kind, plural, namespaced) in builtin {
            state.add_type(group, version, kind, plural, *namespaced);
        }
        for ns in ["default", "kube-system"] {
            let t = state.types[0].clone();
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = state.apply(&t, "", ns, "kube-apiserver", namespace, false, true);
        }
        state
    }

    fn add_type(&mut self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) {
        if !self.types.iter().any(|t| t.group == group && t.version == version && t.kind == kind) {
            self.types.push(ResourceType {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                namespaced,
            });
        }
    }

    fn serve(
        &mut self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            self.failures_served += 1;
            return status(503, "ServiceUnavailable", "the emulator was told to fail this request");
        }
        if *method == Method::POST
            && path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        {
            // A question, not a write: nothing is stored.
            return self.access_review(body);
        }
        let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
        if *method != Method::GET && !dry_run {
            self.writes.push(format!("{method} {path}"));
        }
        let segments: Vec<&str> =
            path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["version"]) => (StatusCode::OK, self.version_info()),
            (&Method::GET, ["api"]) => (
                StatusCode::OK,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ),
            (&Method::GET, ["apis"]) => (StatusCode::OK, self.group_list()),
            (&Method::GET, ["api", "v1"]) => self.resource_list("", "v1"),
            (&Method::GET, ["apis", group, version]) => self.resource_list(group, version),
            (&Method::GET, ["api", "v1", "namespaces", ns, "pods", pod, "log"]) => {
                let container = query.get("container").map(String::as_str);
                match self.late_starts.waiting(ns, pod, container) {
                    Some(answer) => answer,
                    None => self.pod_log(ns, pod, query),
                }
            }
            (_, ["api", "v1", rest @ ..]) => {
                self.objects_route(method, "", "v1", rest, query, content_type, body)
            }
            (_, ["apis", group, version, rest @ ..]) => {
                self.objects_route(method, group, version, rest, query, content_type, body)
            }
            _ => status(404, "NotFound", format!("the emulator does not serve {path}")),
        }
    }

    fn version_info(&self) -> Value {
        let (major, minor) = self.version;
        json!({
            "major": major.to_string(), "minor": minor.to_string(), "gitVersion": format!("v{major}.{minor}.0"),
            "gitCommit": "emulator", "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z",
            "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64",
        })
    }

    fn group_list(&self) -> Value {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(name, versions)| {
                let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
                json!({"name": name, "versions": versions.iter().map(gv).collect::<Vec<_>>(), "preferredVersion": gv(&versions[0])})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn resource_list(&self, group: &str, version: &str) -> Answer {
        let resources: Vec<Value> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .map(|t| {
                json!({"name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced, "kind": t.kind,
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect();
        if resources.is_empty() {
            return status(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({group}/{version})"),
            );
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        (
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn objects_route(
        &mut self,
        method: &Method,
        group: &str,
        version: &str,
        rest: &[&str],
        query: &BTreeMap<String, String>,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let find = |plural: &str| {
            self.types
                .iter()
                .find(|t| t.group == group && t.version == version && t.plural == plural)
                .cloned()
        };
        let (t, namespace, name) = match rest {
            [plural] => (find(plural), None, None),
            [plural, name] => (find(plural), None, Some(*name)),
            ["namespaces", ns, plural] => (find(plural), Some(*ns), None),
            ["namespaces", ns, plural, name] => (find(plural), Some(*ns), Some(*name)),
            _ => (None, None, None),
        };
        let Some(t) = t else {
            return status(404, "NotFound", "the server could not find the requested resource");
        };
        if t.namespaced == namespace.is_none() && name.is_some() {
            return status(404, "NotFound", "the server could not find the requested resource");
        }
        if let Some(answer) = self.authorize(method, &t, namespace, name, query) {
            return answer;
        }
        let ns = namespace.unwrap_or("").to_string();
        let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
        match (method, name) {
            (&Method::GET, Some(name)) => match self.read(&t, &ns, name) {
                Some(object) => (StatusCode::OK, object),
                None => not_found(&t, name),
            },
            (&Method::GET, None) => self.list(
                &t,
                namespace,
                query.get("labelSelector").map(String::as_str).unwrap_or(""),
            ),
            (&Method::PATCH, Some(name)) => {
                if !content_type.starts_with("application/apply-patch+yaml") {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the emulator only takes server-side apply patches, not {content_type}"
                        ),
                    );
                }
                let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                    return status(422, "Invalid", "fieldManager is required for apply requests");
                };
                let config: Value =
                    match serde_json::from_slice(body).or_else(|_| serde_yaml::from_slice(body)) {
                        Ok(v) => v,
                        Err(e) => {
                            return status(400, "BadRequest", format!("invalid apply patch: {e}"))
                        }
                    };
                let force = query.get("force").is_some_and(|v| v == "true");
                let stored = self.objects.get(&key(&t, &ns, name));
                if let Some(answer) = race::outdated(&t.plural, name, &config, stored) {
                    return answer;
                }
                let creating = !self.objects.contains_key(&key(&t, &ns, name));
                if t.kind == "Namespace" && creating && self.forbid_namespaces {
                    return status(403, "Forbidden", "namespaces is forbidden: User \"deployer\" cannot create resource \"namespaces\" in API group \"\" at the cluster scope");
                }
                match self.check_namespace(&t, &ns) {
                    Some(answer) => answer,
                    None => match self.apply(&t, &ns, name, manager, config, dry_run, force) {
                        Ok(object) => (StatusCode::OK, object),
                        Err(answer) => answer,
                    },
                }
            }
            (&Method::POST, None) => {
                let object: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", e.to_string()),
                };
                let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
                    return status(422, "Invalid", "metadata.name is required");
                };
                if let Some(answer) = self.check_namespace(&t, &ns) {
                    return answer;
                }
                if self.objects.contains_key(&key(&t, &ns, &name)) {
                    return already_exists(&t, &name);
                }
                let manager =
                    query.get("fieldManager").cloned().unwrap_or_else(|| "unknown".into());
                match self.apply(&t, &ns, &name, &manager, object, dry_run, true) {
                    Ok(object) => (StatusCode::CREATED, object),
                    Err(answer) => answer,
                }
            }
            (&Method::PUT, Some(name)) => {
                let object: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", e.to_string()),
                };
                let manager =
                    query.get("fieldManager").cloned().unwrap_or_else(|| "unknown".into());
                self.replace(&t, &ns, name, &manager, object, dry_run)
            }
            (&Method::DELETE, Some(name)) => {
                if !self.objects.contains_key(&key(&t, &ns, name)) {
                    return not_found(&t, name);
                }
                if dry_run {
                    return (StatusCode::OK, success(name, &t));
                }
                let options: Value = serde_json::from_slice(body).unwrap_or_default();
                if options["propagationPolicy"] == "Orphan" {
                    let answer = self.orphan_dependents(&t, &ns, name);
                    self.delete(&t, &ns, name);
                    return (StatusCode::OK, answer);
                }
                match self.delete(&t, &ns, name) {
                    // Held by a finalizer: the API server answers the object, now terminating.
                    Some(terminating) => (StatusCode::OK, terminating),
                    None => (StatusCode::OK, success(name, &t)),
                }
            }
            _ => status(
                405,
                "MethodNotAllowed",
                format!("the emulator does not support {method} here"),
            ),
        }
    }

    /// `GET .../pods/NAME/log`: the lines kept for the container.
    fn pod_log(&self, ns: &str, pod: &str, query: &BTreeMap<String, String>) -> Answer {
        let key = (String::new(), "pods".to_string(), ns.to_string(), pod.to_string());
        let Some(stored) = self.objects.get(&key) else {
            return status(404, "NotFound", format!("pods \"{pod}\" not found"));
        };
        let containers: Vec<&str> = stored.object["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let container = match query.get("container") {
            Some(c) if containers.contains(&c.as_str()) => c.clone(),
            Some(c) => {
                return status(
                    400,
                    "BadRequest",
                    format!("container {c} is not valid for pod {pod}"),
                )
            }
            None if containers.len() == 1 => containers[0].to_string(),
            None => {
                return status(
                    400,
                    "BadRequest",
                    format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]",
                        containers.join(" ")
                    ),
                )
            }
        };
        let lines = self
            .logs
            .get(&(ns.to_string(), pod.to_string(), container))
            .cloned()
            .unwrap_or_default();
        let tail = query.get("tailLines").and_then(|t| t.parse::<usize>().ok());
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        let text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
        (StatusCode::OK, Value::String(text))
    }

    /// The RBAC authorizer: `None` when the user may make the request, else the 403 the API
    /// server answers (message and details as `kube-apiserver` words them).
    fn authorize(
        &self,
        method: &Method,
        t: &ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> Option<Answer> {
        let grants = self.grants.as_ref()?;
        let verb = match (method, name) {
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true") => "watch",
            (&Method::GET, None) => "list",
            (&Method::POST, _) => "create",
            (&Method::PATCH, _) => "patch",
            (&Method::PUT, _) => "update",
            (&Method::DELETE, Some(_)) => "delete",
            (&Method::DELETE, None) => "deletecollection",
            _ => return None,
        };
        // The API server's request info puts a Namespace requested by name in itself.
        let scope = match (t.kind.as_str(), name) {
            ("Namespace", Some(name)) => Some(name),
            _ => namespace,
        };
        if grants.iter().any(|g| g.allows(verb, &t.group, &t.plural, scope)) {
            return None;
        }
        let qualified =
            if t.group.is_empty() { t.plural.clone() } else { format!("{}.{}", t.plural, t.group) };
        let subject = match name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified,
        };
        let place = match scope {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        let (code, mut body) = status(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"deployer\" cannot {verb} resource \"{}\" in API group \"{}\" {place}",
                t.plural, t.group
            ),
        );
        body["details"] = json!({"name": name.unwrap_or(""), "group": t.group, "kind": t.plural});
        Some((code, body))
    }

    /// A SelfSubjectAccessReview (every user may ask): answered from the user's grants.
    fn access_review(&self, body: &[u8]) -> Answer {
        let mut review: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", e.to_string()),
        };
        let attributes = &review["spec"]["resourceAttributes"];
        let text = |key: &str| attributes[key].as_str().unwrap_or("").to_string();
        let (verb, group, resource, namespace) =
            (text("verb"), text("group"), text("resource"), text("namespace"));
        let namespace = Some(namespace.as_str()).filter(|n| !n.is_empty());
        let allowed = self.grants.as_ref().is_none_or(|grants| {
            grants.iter().any(|g| g.allows(&verb, &group, &resource, namespace))
        });
        review["status"] = json!({"allowed": allowed});
        (StatusCode::CREATED, review)
    }

    /// `PUT`: replaces the whole object if the client's resourceVersion is the stored one.
    fn replace(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        manager: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Answer {
        let k = key(t, ns, name);
        let Some(existing) = self.objects.get(&k).cloned() else { return not_found(t, name) };
        let stored_rv = &existing.object["metadata"]["resourceVersion"];
        if object["metadata"]["resourceVersion"] != *stored_rv {
            return status(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", t.plural),
            );
        }
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("managedFields");
            for k in ["uid", "creationTimestamp", "generation", "deletionTimestamp", "finalizers"] {
                match existing.object["metadata"].get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
        }
        if dry_run {
            return (StatusCode::OK, object);
        }
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let mut managers = BTreeMap::new();
        managers.insert(manager.to_string(), leaf_paths(&object));
        object["metadata"]["managedFields"] = managed_fields(&managers, &t.api_version());
        self.objects.insert(k, Stored { object: object.clone(), managers, status_lag: None });
        (StatusCode::OK, object)
    }

    fn check_namespace(&self, t: &ResourceType, ns: &str) -> Option<Answer> {
        let exists = self.objects.contains_key(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            ns.to_string(),
        ));
        (t.namespaced && !exists)
            .then(|| status(404, "NotFound", format!("namespaces \"{ns}\" not found")))
    }

    /// A read: the simulated controllers publish status here, one read after a change.
    fn read(&mut self, t: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let k = key(t, ns, name);
        let lag = self.objects.get(&k)?.status_lag;
        match lag {
            Some(0) => {
                let behaviour = self.behaviour_of(&self.objects.get(&k)?.object);
                let controlled = self.controller_status(&self.objects.get(&k)?.object);
                let stored = self.objects.get_mut(&k)?;
                stored.status_lag = None;
                let status = if t.group == "serving.knative.dev" {
                    let generation = stored.object["metadata"]["generation"].clone();
                    json!({"observedGeneration": generation, "conditions": [knative_ready()]})
                } else {
                    controlled.unwrap_or_else(|| workload_status(&stored.object, behaviour))
                };
                stored.object["status"] = status;
                self.resource_version += 1;
                stored.object["metadata"]["resourceVersion"] =
                    json!(self.resource_version.to_string());
            }
            Some(n) => self.objects.get_mut(&k)?.status_lag = Some(n - 1),
            None => {}
        }
        Some(self.objects.get(&k)?.object.clone())
    }

    fn list(&mut self, t: &ResourceType, namespace: Option<&str>, selector: &str) -> Answer {
        let keys: Vec<Key> = self
            .objects
            .iter()
            .filter(|((g, p, ns, _), s)| {
                *g == t.group
                    && *p == t.plural
                    && namespace.is_none_or(|n| n == ns)
                    && matches(selector, &s.object["metadata"]["labels"])
            })
            .map(|(k, _)| k.clone())
            .collect();
        let items: Vec<Value> = keys
            .iter()
            .filter_map(|(_, _, ns, name)| self.read(t, ns, name))
            .map(|o| admission::list_item(t, o))
            .collect();
        let rv = self.resource_version.to_string();
        (
            StatusCode::OK,
            json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
        )
    }

    /// Server-side apply of `config` by `manager`.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        manager: &str,
        mut config: Value,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, Answer> {
        if config["apiVersion"].as_str() != Some(&t.api_version())
            || config["kind"].as_str() != Some(&t.kind)
        {
            return Err(status(
                400,
                "BadRequest",
                format!("apiVersion/kind of the body do not match {} {}", t.api_version(), t.kind),
            ));
        }
        if config["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(status(400, "BadRequest", "metadata.name does not match the URL"));
        }
        if t.namespaced && config["metadata"]["namespace"].as_str().is_some_and(|n| n != ns) {
            return Err(status(400, "BadRequest", "metadata.namespace does not match the URL"));
        }
        if let Some(map) = config.as_object_mut() {
            map.remove("status");
        }
        if let Some(meta) = config["metadata"].as_object_mut() {
            for k in [
                "managedFields",
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "selfLink",
            ] {
                meta.remove(k);
            }
        }
        let k = key(t, ns, name);
        if t.kind == "Service" {
            self.check_node_ports(&k, &config)?;
        }
        let existing = self.objects.get(&k).cloned();
        let mut object = existing.as_ref().map(|s| s.object.clone()).unwrap_or_else(|| {
            let mut meta = Map::new();
            meta.insert("name".into(), json!(name));
            if t.namespaced {
                meta.insert("namespace".into(), json!(ns));
            }
            json!({"apiVersion": t.api_version(), "kind": t.kind, "metadata": meta})
        });
        let mut managers = existing.as_ref().map(|s| s.managers.clone()).unwrap_or_default();
        let new_paths = leaf_paths(&config);
        if !force {
            for (other, paths) in managers.iter().filter(|(m, _)| m.as_str() != manager) {
                if let Some(p) = paths
                    .iter()
                    .find(|p| new_paths.contains(*p) && at(&object, p) != at(&config, p))
                {
                    return Err(status(
                        409,
                        "Conflict",
                        format!(
                            "Apply failed with 1 conflict: conflict with \"{other}\": .{}",
                            p.join(".")
                        ),
                    ));
                }
            }
        }
        let previous = managers.remove(manager).unwrap_or_default();
        for p in previous.difference(&new_paths) {
            if !managers.values().any(|owned| owned.contains(p)) {
                remove_path(&mut object, p);
            }
        }
        merge(&mut object, &config);
        if t.kind == "Secret" {
            string_data_into_data(&mut object);
        }
        for owned in managers.values_mut() {
            owned.retain(|p| !new_paths.contains(p));
        }
        managers.retain(|_, owned| !owned.is_empty());
        if !new_paths.is_empty() {
            managers.insert(manager.to_string(), new_paths);
        }
        if let Some(old) = &existing {
            self.admit_update(t, &old.object, &object)?;
        }
        self.call_webhooks(t, &object)?;
        if let Some(old) = &existing {
            if old.managers == managers
                && without_managed_fields(&old.object) == without_managed_fields(&object)
            {
                return Ok(old.object.clone());
            }
        }
        let spec_changed = existing.as_ref().is_none_or(|old| old.object["spec"] != object["spec"]);
        let meta = object["metadata"].as_object_mut().expect("metadata is an object");
        if existing.is_none() {
            if t.kind == "PersistentVolumeClaim" {
                // The API server's admission adds claim protection to every new claim.
                meta.insert("finalizers".into(), json!(["kubernetes.io/pvc-protection"]));
            }
            self.uids += 1;
            meta.insert("uid".into(), json!(format!("00000000-0000-0000-0000-{:012}", self.uids)));
            meta.insert("creationTimestamp".into(), json!("2024-01-01T00:00:00Z"));
            meta.insert("generation".into(), json!(1));
        } else if spec_changed {
            let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), json!(generation + 1));
        }
        meta.insert("managedFields".into(), managed_fields(&managers, &t.api_version()));
        if dry_run {
            return Ok(object);
        }
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let mut stored =
            Stored { object, managers, status_lag: existing.and_then(|s| s.status_lag) };
        if spec_changed {
            self.simulate(t, &mut stored);
        }
        let object = stored.object.clone();
        self.objects.insert(k, stored);
        Ok(object)
    }

    /// The API server's NodePort allocator: a node port another Service holds is refused
    /// with 422.
    fn check_node_ports(&self, k: &Key, config: &Value) -> Result<(), Answer> {
        let ports = |service: &Value| -> Vec<i64> {
            service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect()
        };
        for (i, port) in ports(config).into_iter().enumerate() {
            let taken = self.objects.iter().any(|(other, s)| {
                other != k && s.object["kind"] == "Service" && ports(&s.object).contains(&port)
            });
            if taken {
                return Err(status(
                    422,
                    "Invalid",
                    format!("Service \"{}\" is invalid: spec.ports[{i}].nodePort: Invalid value: {port}: provided port is already allocated", k.3),
                ));
            }
        }
        Ok(())
    }

    /// How a workload behaves: by an image it runs, else by its name, else the default.
    fn behaviour_of(&self, workload: &Value) -> Behaviour {
        let containers = workload["spec"]["template"]["spec"]["containers"].as_array();
        let by_image = containers
            .into_iter()
            .flatten()
            .find_map(|c| self.image_behaviours.get(c["image"].as_str()?).copied());
        let name = workload["metadata"]["name"].as_str().unwrap_or_default();
        let ns = workload["metadata"]["namespace"].as_str().unwrap_or("default");
        let template = &workload["spec"]["template"];
        if pods::template_error(&self.objects, ns, template).is_some() {
            return Behaviour::Failing("CreateContainerConfigError");
        }
        by_image.or_else(|| self.behaviours.get(name).copied()).unwrap_or(self.default_behaviour)
    }

    /// What the cluster's controllers would do after a spec change.
    fn simulate(&mut self, t: &ResourceType, stored: &mut Stored) {
        let behaviour = self.behaviour_of(&stored.object);
        match t.kind.as_str() {
            kind if WORKLOADS.contains(&kind) => {
                stored.status_lag = Some(1);
                if kind == "StatefulSet" {
                    self.create_set_claims(&stored.object);
                }
                if kind == "StatefulSet" && stored.object["metadata"]["generation"] == 1 {
                    // A set re-created over its orphaned pods adopts them; its controller then
                    // keeps those of the current revision.
                    self.adopt_orphans(&stored.object);
                }
                if !self.roll_out(&mut stored.object, behaviour) {
                    self.replace_pods(&stored.object, behaviour);
                }
            }
            // Knative Serving's controller: the Service's `Ready` condition for its current
            // generation (no revisions, routes or pods are emulated).
            "Service" if t.group == "serving.knative.dev" => {
                let generation = stored.object["metadata"]["generation"].as_i64().unwrap_or(1);
                let name = stored.object["metadata"]["name"].as_str().unwrap_or("?");
                let ready = match behaviour {
                    Behaviour::Ready => knative_ready(),
                    Behaviour::NeverReady => {
                        json!({"type": "Ready", "status": "Unknown", "reason": "RevisionMissing",
                        "message": format!("Configuration \"{name}\" is waiting for a Revision to become ready.")})
                    }
                    Behaviour::Unschedulable(reason)
                    | Behaviour::Failing(reason)
                    | Behaviour::BrieflyFailing(reason) => {
                        json!({"type": "Ready", "status": "False", "reason": "RevisionFailed",
                        "message": format!("Revision \"{name}-{generation:05}\" failed with message: {reason}.")})
                    }
                };
                if matches!(behaviour, Behaviour::BrieflyFailing(_)) {
                    stored.status_lag = Some(2);
                }
                stored.object["status"] =
                    json!({"observedGeneration": generation, "conditions": [ready]});
            }
            "PersistentVolumeClaim" => {
                stored.object["status"] = match behaviour {
                    // The volume's size, as provisioned: an expansion of the request does not
                    // change it (a resize controller would, later).
                    Behaviour::Ready => {
                        let capacity = match &stored.object["status"]["capacity"] {
                            Value::Null => {
                                json!({"storage": stored.object["spec"]["resources"]["requests"]["storage"]})
                            }
                            capacity => capacity.clone(),
                        };
                        json!({"phase": "Bound", "capacity": capacity})
                    }
                    _ => json!({"phase": "Pending"}),
                };
            }
            "CustomResourceDefinition" => {
                let spec = stored.object["spec"].clone();
                let (Some(group), Some(kind), Some(plural)) = (
                    spec["group"].as_str(),
                    spec["names"]["kind"].as_str(),
                    spec["names"]["plural"].as_str(),
                ) else {
                    return;
                };
                for v in spec["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v["served"] != false)
                {
                    if let Some(version) = v["name"].as_str() {
                        self.add_type(group, version, kind, plural, spec["scope"] != "Cluster");
                    }
                }
                stored.object["status"] = json!({"conditions": [{"type": "Established", "status": "True"}, {"type": "NamesAccepted", "status": "True"}]});
            }
            _ => {}
        }
    }

    /// Deletes a workload's pods and creates new ones for its current spec (DaemonSets,
    /// Jobs, bare ReplicaSets; Deployments and StatefulSets roll out revisions, see
    /// kube_emulator_controllers.rs).
    fn replace_pods(&mut self, workload: &Value, behaviour: Behaviour) {
        let uid = workload["metadata"]["uid"].clone();
        self.objects.retain(|_, s| {
            s.object["kind"] != "Pod" || s.object["metadata"]["ownerReferences"][0]["uid"] != uid
        });
        let name = workload["metadata"]["name"].as_str().unwrap_or_default();
        let generation = workload["metadata"]["generation"].as_i64().unwrap_or(1);
        let count = match workload["kind"].as_str() {
            Some("ReplicaSet") => workload["spec"]["replicas"].as_i64().unwrap_or(1),
            _ => 1,
        };
        let labels = json!({"pod-template-generation": generation.to_string()});
        for i in 0..count {
            let pod_name = format!("{name}-g{generation}-{i}");
            self.add_pod(workload, workload, &pod_name, behaviour, &labels, None);
        }
        self.release_claims();
    }

    /// Deletes an object, or marks it terminating when a finalizer holds it (then answers it).
    fn delete(&mut self, t: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let k = key(t, ns, name);
        let held = self.objects.get(&k).is_some_and(|s| {
            s.object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
        });
        self.resource_version += 1;
        if held {
            let rv = self.resource_version.to_string();
            let stored = self.objects.get_mut(&k)?;
            let meta = &mut stored.object["metadata"];
            if meta.get("deletionTimestamp").is_none() {
                meta["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
                meta["resourceVersion"] = json!(rv);
            }
            // The answer is the object marked for deletion; the controllers let go after.
            let answer = stored.object.clone();
            self.release_claims();
            return Some(answer);
        }
        let stored = self.objects.remove(&k)?;
        self.cascade(&stored.object["metadata"]["uid"]);
        if t.kind == "Namespace" {
            self.objects.retain(|(_, _, object_ns, _), _| object_ns != name);
        }
        self.release_claims();
        None
    }

    /// The claim-protection controller: a terminating claim no Pod mounts loses its finalizer
    /// and is gone.
    fn release_claims(&mut self) {
        let mounted: BTreeSet<(String, String)> = self
            .objects
            .values()
            .filter(|s| s.object["kind"] == "Pod")
            .flat_map(|s| {
                let ns = s.object["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                s.object["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
                    .map(move |c| (ns.clone(), c.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.objects.retain(|(_, plural, ns, name), s| {
            plural != "persistentvolumeclaims"
                || s.object["metadata"].get("deletionTimestamp").is_none()
                || mounted.contains(&(ns.clone(), name.clone()))
        });
    }

    /// The StatefulSet controller's claims: `<template>-<set>-<i>` for each replica, created
    /// once and never deleted with the set.
    fn create_set_claims(&mut self, set: &Value) {
        let ns = set["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let name = set["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
        let t = self.types.iter().find(|t| t.kind == "PersistentVolumeClaim").cloned();
        let Some(t) = t else { return };
        for template in set["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default()
        {
            let Some(template_name) = template["metadata"]["name"].as_str() else { continue };
            for i in 0..replicas {
                let claim_name = format!("{template_name}-{name}-{i}");
                if self.objects.contains_key(&key(&t, &ns, &claim_name)) {
                    continue;
                }
                // The controller labels each claim with the template's labels and the set's
                // selector.
                let mut labels = template["metadata"]["labels"].clone();
                for (k, v) in
                    set["spec"]["selector"]["matchLabels"].as_object().into_iter().flatten()
                {
                    labels[k] = v.clone();
                }
                let claim = json!({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim_name, "namespace": ns, "labels": labels},
                    "spec": template["spec"].clone(),
                });
                let _ =
                    self.apply(&t, &ns, &claim_name, "kube-controller-manager", claim, false, true);
            }
        }
    }
}

fn key(t: &ResourceType, ns: &str, name: &str) -> Key {
    (t.group.clone(), t.plural.clone(), ns.to_string(), name.to_string())
}

fn already_exists(t: &ResourceType, name: &str) -> Answer {
    status(409, "AlreadyExists", format!("{} \"{name}\" already exists", t.plural))
}

fn success(name: &str, t: &ResourceType) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "kind": t.plural}})
}

fn not_found(t: &ResourceType, name: &str) -> Answer {
    let what =
        if t.group.is_empty() { t.plural.clone() } else { format!("{}.{}", t.plural, t.group) };
    status(404, "NotFound", format!("{what} \"{name}\" not found"))
}

/// The status the simulated controller publishes for a workload.
/// A Knative Service's `Ready` condition once its latest revision serves.
fn knative_ready() -> Value {
    json!({"type": "Ready", "status": "True"})
}

fn workload_status(object: &Value, behaviour: Behaviour) -> Value {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    let ready = behaviour == Behaviour::Ready;
    match object["kind"].as_str() {
        Some("DaemonSet") => json!({
            "observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1, "numberReady": i64::from(ready), "numberAvailable": i64::from(ready),
        }),
        Some("Job") if ready => {
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
        }
        Some("Job") => json!({"active": 1}),
        _ => {
            let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready_replicas = if ready { desired } else { 0 };
            json!({
                "observedGeneration": generation, "replicas": desired, "updatedReplicas": desired, "currentReplicas": desired,
                "readyReplicas": ready_replicas, "availableReplicas": ready_replicas,
            })
        }
    }
}

/// Leaf field paths of an applied configuration (maps are walked, everything else is a leaf);
/// apiVersion, kind, name and namespace identify the object and are nobody's.
fn leaf_paths(config: &Value) -> BTreeSet<FieldPath> {
    fn walk(value: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, child) in map {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                out.insert(prefix.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(config, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["apiVersion"] | ["kind"] | ["metadata", "name"] | ["metadata", "namespace"]
        )
    });
    out
}

fn at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Removes a leaf and then every map the removal left empty (but never `metadata`).
fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut current = &mut *object;
    for k in parents {
        match current.get_mut(k) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(last);
    }
    for depth in (1..parents.len() + 1).rev() {
        let prefix = &parents[..depth];
        if prefix == ["metadata"] {
            break;
        }
        let empty = at(object, prefix).and_then(Value::as_object).is_some_and(Map::is_empty);
        if !empty {
            break;
        }
        let (leaf, up) = prefix.split_last().expect("non-empty prefix");
        let mut parent = &mut *object;
        for k in up {
            parent = parent.get_mut(k).expect("path exists");
        }
        if let Some(map) = parent.as_object_mut() {
            map.remove(leaf);
        }
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) if !p.is_empty() => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        _ => *target = patch.clone(),
    }
}

/// The API server's handling of `stringData`: write-only, merged into `data` base64-encoded.
fn string_data_into_data(secret: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(plain)) = secret.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    for (k, v) in plain {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
        secret["data"][k] = json!(encoded);
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    object
}

/// `metadata.managedFields` in the API's FieldsV1 form.
fn managed_fields(managers: &BTreeMap<String, BTreeSet<FieldPath>>, api_version: &str) -> Value {
    let entries: Vec<Value> = managers
        .iter()
        .map(|(manager, paths)| {
            let mut fields = Map::new();
            for p in paths {
                let mut node = &mut fields;
                for k in p {
                    node = node.entry(format!("f:{k}")).or_insert_with(|| json!({})).as_object_mut().expect("fields are objects");
                }
            }
            json!({"manager": manager, "operation": "Apply", "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": fields})
        })
        .collect();
    Value::Array(entries)
}

/// Label selector matching: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
fn matches(selector: &str, labels: &Value) -> bool {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    let label = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
    terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).all(|term| {
        let set = |rest: &str| -> Vec<String> {
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|s| s.trim().to_string())
                .collect()
        };
        if let Some((k, v)) = term.split_once("!=") {
            label(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            label(k) == Some(v.trim())
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            label(k).is_none_or(|l| !set(rest).iter().any(|s| s == l))
        } else if let Some((k, rest)) = term.split_once(" in ") {
            label(k).is_some_and(|l| set(rest).iter().any(|s| s == l))
        } else if let Some(k) = term.strip_prefix('!') {
            label(k).is_none()
        } else {
            label(term).is_some()
        }
    })
}
