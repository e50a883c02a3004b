//! [`DeployError`]: everything that can stop a deploy, `status`, `remove` or `rollback`. A
//! leaf of the deploy module: every layer fails with it, and it uses none of them.

use std::time::Duration;

use crate::diag::Problems;

/// Everything that can stop a deploy, `status`, `remove` or `rollback`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The plan is malformed, or preflight found problems; every one is listed.
    #[error("{0}")]
    Invalid(#[from] Problems),
    /// The client configuration (kubeconfig, context, in-cluster) could not be loaded.
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The cluster does not serve a kind deploy cannot work without.
    #[error("the cluster does not serve {0} (v1)")]
    NotServed(&'static str),
    /// The server's version answer could not be read.
    #[error("the server reports an unreadable version: {0}")]
    ServerVersion(String),
    /// An object the server sent could not be read as JSON.
    #[error("{what}: unreadable object from the server: {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The operating system gave no random bytes for generated credentials.
    #[error("no random numbers from the operating system: {0}")]
    Random(getrandom::Error),
    /// The API server refused a request.
    #[error("{action} {object}: {message}")]
    Api {
        /// What was being done (`apply`, `get`, `delete`, ...).
        action: &'static str,
        /// The object (kind/namespace/name) or collection concerned.
        object: String,
        /// The HTTP status code (0 when the answer could not be read).
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The API server could not be reached: refused, unknown host, TLS verification failed
    /// (never retried), or transient failures that outlasted the retries.
    #[error("cannot reach the Kubernetes API server at {server}: {cause} (hint: {hint})")]
    Unreachable {
        /// The server's address, from the kubeconfig.
        server: String,
        /// What went wrong, in a few words.
        cause: String,
        /// What to check.
        hint: String,
    },
    /// A container of a workload is failing in a way waiting will not fix.
    #[error("{object}: pod {pod} container {container}: {reason}: {message}")]
    PodFailing {
        /// The workload.
        object: String,
        /// The failing pod.
        pod: String,
        /// The failing container.
        container: String,
        /// `ImagePullBackOff`, `CrashLoopBackOff`, ...
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// A workload reported failure (a Job's `Failed` condition).
    #[error("{object}: {message}")]
    Failed {
        /// The object.
        object: String,
        /// What its status says.
        message: String,
    },
    /// Some objects did not become ready in time.
    #[error("timed out after {timeout:?}; not ready: {}", pending.join("; "))]
    Timeout {
        /// The time waited.
        timeout: Duration,
        /// Each object still not ready, with why.
        pending: Vec<String>,
    },
    /// No revision records exist for the bundle in the namespace.
    #[error("bundle {bundle} is not deployed in namespace {namespace} (no revision records)")]
    NotDeployed {
        /// The bundle.
        bundle: String,
        /// The namespace.
        namespace: String,
    },
    /// The bundle is not deployed, but objects kept from it (data, credentials) remain.
    #[error("bundle {bundle} is not deployed in namespace {namespace}; kept from it: {} (delete them with --destroy-storage)", kept.join(", "))]
    OnlyKept {
        /// The bundle.
        bundle: String,
        /// The namespace.
        namespace: String,
        /// The kept objects.
        kept: Vec<String>,
    },
    /// The revision asked for is not recorded.
    #[error("bundle {bundle} has no revision {revision} to roll back to in namespace {namespace}")]
    NoRevision {
        /// The bundle.
        bundle: String,
        /// The namespace.
        namespace: String,
        /// The revision asked for.
        revision: u32,
    },
    /// `rollback` without `--revision`, and no good revision before the current one.
    #[error(
        "bundle {bundle} in namespace {namespace} has no earlier deployed revision to roll back \
         to (revisions: {revisions})"
    )]
    NoEarlierRevision {
        /// The bundle.
        bundle: String,
        /// The namespace.
        namespace: String,
        /// The recorded revisions and their states, for the message.
        revisions: String,
    },
    /// The bundle has no application of that name.
    #[error("bundle {bundle} has no application {app} (applications: {})", known.join(", "))]
    NoApplication {
        /// The bundle.
        bundle: String,
        /// The name asked for.
        app: String,
        /// The bundle's applications.
        known: Vec<String>,
    },
    /// `restart` of an application without Deployments, StatefulSets or DaemonSets.
    #[error("application {app} runs no Deployment, StatefulSet or DaemonSet to restart")]
    NothingToRestart {
        /// The application.
        app: String,
    },
    /// `logs -c` named a container no pod of the application has.
    #[error("no pod of application {app} has a container {container} (containers: {})", known.join(", "))]
    NoContainer {
        /// The application.
        app: String,
        /// The container asked for.
        container: String,
        /// The containers its pods have.
        known: Vec<String>,
    },
    /// Another operation holds the bundle's lock in the namespace.
    #[error("bundle {bundle} in namespace {namespace} is locked: {holder} holds it and is still renewing it (wait for it to finish, or pass --wait-for-lock DURATION)")]
    Locked {
        /// The bundle.
        bundle: String,
        /// The namespace.
        namespace: String,
        /// Who holds it since when (operation, user@host, pid, start).
        holder: String,
    },
    /// The identity may not read or take the Lease that locks the bundle; nothing of the
    /// bundle was applied.
    #[error("cannot take the bundle's lock in namespace {namespace}: {message}; nothing of the bundle was applied (the lock needs get, create, update and delete on leases in API group coordination.k8s.io in the namespace: `charmer rbac` prints the Role to grant)")]
    LockForbidden {
        /// The namespace.
        namespace: String,
        /// The API server's answer.
        message: String,
    },
    /// Another operation changed the bundle between preflight and taking the lock.
    #[error("bundle {bundle} in namespace {namespace} changed since preflight (now at revision {revision}, by another operation); nothing was applied: run again")]
    Changed {
        /// The bundle.
        bundle: String,
        /// The namespace.
        namespace: String,
        /// The revision recorded meanwhile.
        revision: u32,
    },
    /// A signal (Ctrl-C, SIGTERM) stopped the operation; the revision is recorded as
    /// interrupted and the lock released.
    #[error("interrupted {during}: run the same command again to converge")]
    Interrupted {
        /// What was going on (`while waiting (all 7 objects applied)`, `after applying 3 of 7
        /// objects`) and the revision recorded as interrupted.
        during: String,
    },
    /// The deploy failed and `rollback_on_failure` re-applied the previous revision.
    #[error("{error}; rolled back to revision {to} (recorded as revision {revision})")]
    RolledBack {
        /// Why the deploy failed.
        error: Box<DeployError>,
        /// The revision rolled back to.
        to: u32,
        /// The new revision that re-applied it.
        revision: u32,
    },
    /// A revision record could not be read or written.
    #[error("revision record {name}: {message}")]
    Record {
        /// The record's Secret name.
        name: String,
        /// What is wrong.
        message: String,
    },
}
