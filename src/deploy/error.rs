//! [`DeployError`]: everything that can stop a deploy, `status`, `remove` or `rollback`. A
//! leaf of the deploy module: every layer fails with it, and it uses none of them.

use std::path::PathBuf;
use std::time::Duration;

use kube::core::response::StatusCause;
use kube::core::Status;

use crate::diag::Problems;
use crate::transport::{lasting_failure, LastingFailure};

/// Everything that can stop a deploy, `status`, `remove` or `rollback`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The plan is malformed, or preflight found problems; every one is listed.
    #[error("{0}")]
    Invalid(#[from] Problems),
    /// The API server refused objects of the plan in the dry run before the first write;
    /// every refusal is listed, nothing of the bundle was applied.
    #[error("the API server refused the deploy in a dry run; nothing of the bundle was applied{}:\n{problems}", created_namespace.as_ref().map(|ns| format!(" (namespace {ns} was created to check the objects that go into it, and is left empty)")).unwrap_or_default())]
    Refused {
        /// Each refused field: application, object, field, why, where the value came from,
        /// and the way forward.
        problems: Problems,
        /// The namespace created before its objects could be checked, when it was.
        created_namespace: Option<String>,
    },
    /// The client configuration (kubeconfig, context, in-cluster) could not be loaded.
    #[error("Kubernetes client configuration: {}{source}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Config {
        /// The kubeconfig file named with `--kubeconfig`, when it was that file.
        path: Option<PathBuf>,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The cluster does not serve a kind deploy cannot work without.
    #[error("the cluster does not serve {0} (v1)")]
    NotServed(&'static str),
    /// The server's version answer could not be read.
    #[error("the server reports an unreadable version: {0}")]
    ServerVersion(#[source] UnreadableVersion),
    /// An object the server sent could not be read as JSON.
    #[error("{what}: unreadable object from the server: {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// An object could not be turned into the form the client sends or reads.
    #[error("{what}: {source}")]
    Encode {
        /// What was being done, to which object.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The operating system gave no random bytes for generated credentials.
    #[error("no random numbers from the operating system: {0}")]
    Random(#[source] getrandom::Error),
    /// The identity may not do what was asked (HTTP 403).
    #[error("{action} {object}: {}", answer(source))]
    Forbidden {
        /// What was being done (`apply`, `get`, `delete`, ...).
        action: &'static str,
        /// The object (kind/namespace/name) or collection concerned.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<Status>,
    },
    /// The object, or its namespace or kind, does not exist (HTTP 404).
    #[error("{action} {object}: {}", answer(source))]
    NotFound {
        /// What was being done.
        action: &'static str,
        /// The object or collection concerned.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<Status>,
    },
    /// The object exists already, or someone else changed it first (HTTP 409).
    #[error("{action} {object}: {}", answer(source))]
    Conflict {
        /// What was being done.
        action: &'static str,
        /// The object concerned.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<Status>,
    },
    /// The API server refused the object as invalid (HTTP 422): `causes` names each field.
    #[error("{action} {object}: {}", answer(source))]
    InvalidObject {
        /// What was being done.
        action: &'static str,
        /// The object concerned.
        object: String,
        /// Each refused field, with why (from the answer's details).
        causes: Vec<StatusCause>,
        /// The API server's answer.
        #[source]
        source: Box<Status>,
    },
    /// The API server refused a request for another reason (its code is in the answer).
    #[error("{action} {object}: {}", answer(source))]
    Api {
        /// What was being done.
        action: &'static str,
        /// The object or collection concerned.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<Status>,
    },
    /// The API server could not be reached: refused, unknown host, TLS verification failed
    /// (never retried), or transient failures that outlasted the retries.
    #[error("cannot reach the Kubernetes API server at {server}: {} (hint: {})", connection_problem(source).0, connection_problem(source).1)]
    Unreachable {
        /// The server's address, from the kubeconfig.
        server: String,
        /// What went wrong, as the client reported it.
        #[source]
        source: Box<kube::Error>,
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
    /// A pod of a workload's current revision stayed unschedulable past its grace.
    #[error("{object}: pod {pod} could not be scheduled for {}: {message} (raise --unschedulable-grace to wait longer)", humantime::format_duration(*grace))]
    Unschedulable {
        /// The workload.
        object: String,
        /// The pod.
        pod: String,
        /// How long it was given.
        grace: Duration,
        /// The scheduler's reason.
        message: String,
    },
    /// A wait timeout that cannot succeed, refused before anything is applied.
    #[error("--timeout {} cannot succeed: waiting takes at least {} (use --no-wait to return once applied)", humantime::format_duration(*timeout), humantime::format_duration(*minimum))]
    WaitTimeout {
        /// The timeout asked for.
        timeout: Duration,
        /// The shortest accepted.
        minimum: Duration,
    },
    /// Every watch of a wait ended without an error (the wait cannot see changes any more).
    #[error("the watches of the wait ended unexpectedly")]
    WatchEnded,
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
    #[error("cannot take the bundle's lock in namespace {namespace}: {}; nothing of the bundle was applied (the lock needs get, create, update and delete on leases in API group coordination.k8s.io in the namespace: `charmer rbac` prints the Role to grant)", source.message)]
    LockForbidden {
        /// The namespace.
        namespace: String,
        /// The API server's answer.
        #[source]
        source: Box<Status>,
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
    /// Another bundle's field manager holds objects this deploy would write: server-side
    /// apply refused to take them over (two bundles deployed into one namespace at once).
    #[error("{0}")]
    OwnedByBundle(Box<OwnedBy>),
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

/// Objects another bundle manages, which a deploy would have taken over.
#[derive(Debug, thiserror::Error)]
#[error("{} managed by bundle {other} (field manager {manager}): charmer does not take over another bundle's objects; {applied} of {total} objects of bundle {bundle} were applied before (hint: remove bundle {other} from namespace {namespace} first, deploy into another namespace, or rename the applications)", is_are(objects))]
pub struct OwnedBy {
    /// The bundle being deployed.
    pub bundle: String,
    /// The bundle that manages the objects.
    pub other: String,
    /// Its field manager.
    pub manager: String,
    /// The objects it manages, the one refused first.
    pub objects: Vec<String>,
    /// The namespace.
    pub namespace: String,
    /// How many objects of the deploy were applied before the refusal.
    pub applied: usize,
    /// How many objects the deploy has.
    pub total: usize,
}

/// A text that is not a Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kubernetes version like 1.20")]
pub struct UnreadableVersion(pub String);

impl DeployError {
    /// A failed request as an error: the server's answer, typed by its code, or why the
    /// server could not be reached.
    pub(crate) fn from_kube(
        server: &str,
        action: &'static str,
        object: String,
        error: kube::Error,
    ) -> DeployError {
        let source = match error {
            kube::Error::Api(status) => status,
            other => {
                return DeployError::Unreachable {
                    server: server.to_string(),
                    source: Box::new(other),
                }
            }
        };
        match source.code {
            403 => DeployError::Forbidden { action, object, source },
            404 => DeployError::NotFound { action, object, source },
            409 => DeployError::Conflict { action, object, source },
            422 => {
                let causes = source.details.as_ref().map(|d| d.causes.clone()).unwrap_or_default();
                DeployError::InvalidObject { action, object, causes, source }
            }
            _ => DeployError::Api { action, object, source },
        }
    }

    /// The API server's answer, when it refused the request.
    pub fn status(&self) -> Option<&Status> {
        match self {
            DeployError::Forbidden { source, .. }
            | DeployError::NotFound { source, .. }
            | DeployError::Conflict { source, .. }
            | DeployError::InvalidObject { source, .. }
            | DeployError::Api { source, .. }
            | DeployError::LockForbidden { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `X is` or `X, Y are`.
fn is_are(objects: &[String]) -> String {
    match objects {
        [one] => format!("{one} is"),
        many => format!("{} are", many.join(", ")),
    }
}

/// What the server said: its message, or its reason when it gave none.
pub(crate) fn answer(status: &Status) -> &str {
    if status.message.is_empty() {
        &status.reason
    } else {
        &status.message
    }
}

/// Why a request never got an answer, in a few words, and what to check: (cause, hint).
pub(crate) fn connection_problem(error: &kube::Error) -> (String, String) {
    let choose = "check the cluster chosen with --kubeconfig / --context";
    match lasting_failure(error) {
        Some(failure @ LastingFailure::Refused) => {
            (failure.to_string(), format!("is the API server running at that address? {choose}"))
        }
        Some(failure @ LastingFailure::UnknownHost) => (
            failure.to_string(),
            format!("check the server's host name in the kubeconfig; {choose}"),
        ),
        Some(failure @ LastingFailure::Tls { unknown_issuer: true, .. }) => (
            failure.to_string(),
            format!(
                "the server's certificate is not issued by the cluster's CA in the kubeconfig \
                 (certificate-authority / certificate-authority-data); {choose}"
            ),
        ),
        Some(failure) => (failure.to_string(), choose.to_string()),
        None => {
            let mut messages: Vec<String> = Vec::new();
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
            while let Some(e) = source {
                let text = e.to_string();
                if !messages.iter().any(|m| m.contains(&text)) {
                    messages.push(text);
                }
                source = e.source();
            }
            (messages.last().cloned().unwrap_or_else(|| error.to_string()), choose.to_string())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TLS failure: the server's certificate is not issued by a CA the client trusts.
    pub(crate) fn unknown_issuer() -> kube::Error {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        kube::Error::Service(Box::new(io))
    }

    #[test]
    fn connection_problems_name_the_cause_and_what_to_check() {
        let (cause, hint) = connection_problem(&unknown_issuer());
        assert_eq!(cause, "TLS: invalid peer certificate: UnknownIssuer");
        assert!(
            hint.contains("certificate-authority-data") && hint.contains("--context"),
            "{hint}"
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let (cause, hint) = connection_problem(&kube::Error::Service(Box::new(refused)));
        assert_eq!(cause, "connection refused");
        assert!(hint.contains("--kubeconfig"), "{hint}");
    }

    #[test]
    fn api_answers_are_typed_by_code_and_keep_the_servers_answer() {
        let refusal = |code: u16, status: Status| {
            let status = status.with_code(code).boxed();
            DeployError::from_kube(
                "server",
                "apply",
                "ConfigMap/ns/c".into(),
                kube::Error::Api(status),
            )
        };
        let forbidden = refusal(403, Status::failure("no permission", "Forbidden"));
        assert!(matches!(forbidden, DeployError::Forbidden { .. }), "{forbidden:?}");
        assert_eq!(forbidden.to_string(), "apply ConfigMap/ns/c: no permission");
        let source = std::error::Error::source(&forbidden).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no permission: Forbidden"));
        assert!(matches!(
            refusal(404, Status::failure("", "NotFound")),
            DeployError::NotFound { .. }
        ));
        assert_eq!(
            refusal(404, Status::failure("", "NotFound")).to_string(),
            "apply ConfigMap/ns/c: NotFound"
        );
        assert!(matches!(
            refusal(409, Status::failure("x", "AlreadyExists")),
            DeployError::Conflict { .. }
        ));
        let mut invalid = Status::failure("spec.replicas: Invalid value", "Invalid");
        invalid.details = Some(kube::core::response::StatusDetails {
            causes: vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "must be greater than or equal to 0".into(),
                field: "spec.replicas".into(),
            }],
            name: "c".into(),
            group: String::new(),
            kind: "ConfigMap".into(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
        match refusal(422, invalid) {
            DeployError::InvalidObject { causes, .. } => {
                assert_eq!(causes[0].field, "spec.replicas")
            }
            other => panic!("{other:?}"),
        }
        let unreachable =
            DeployError::from_kube("https://k:6443", "get", "x".into(), unknown_issuer());
        assert!(matches!(&unreachable, DeployError::Unreachable { .. }), "{unreachable:?}");
        assert!(std::error::Error::source(&unreachable).is_some());
        assert!(unreachable
            .to_string()
            .contains("at https://k:6443: TLS: invalid peer certificate"));
    }
}
