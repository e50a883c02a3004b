//! One operation at a time per bundle and namespace. Deploy, rollback and remove hold a
//! `coordination.k8s.io/v1` Lease `charmer.<bundle>.lock` in the namespace, naming the holder
//! (user, host, pid, operation, start), renewed while they run. A second operation fails at
//! once naming the holder, or waits for it; a lease its holder stopped renewing (a killed
//! deploy) is taken over with a warning.
//!
//! Acquiring is optimistic concurrency, as Kubernetes' own leader election does it: create
//! (409 when it exists), or replace an expired lease with its `resourceVersion` (409 when
//! someone else was faster); any 409 means "read again".

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, PostParams};

use crate::deploy::cluster::access::LOCK_VERBS;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::diag::Problem;

const LOCK_LABEL: &str = "charmer.io/lock-of";
const USER_ANNOTATION: &str = "charmer.io/lock-user";
const HOST_ANNOTATION: &str = "charmer.io/lock-host";
const PID_ANNOTATION: &str = "charmer.io/lock-pid";
const OPERATION_ANNOTATION: &str = "charmer.io/lock-operation";

/// How an operation takes the bundle's lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long to wait for a live holder to finish (zero: fail at once).
    pub wait: Duration,
    /// The lease's duration: the holder renews it every third of this; a lease not renewed
    /// for this long belongs to a holder that died and is taken over.
    pub duration: Duration,
    /// What the holder does (`deploy`, `rollback`, `remove`), shown to whoever waits.
    pub operation: String,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: Duration::ZERO,
            duration: Duration::from_secs(60),
            operation: "deploy".into(),
        }
    }
}

/// A held lock. [`Lock::release`] deletes the lease; dropping the lock without releasing it
/// only stops renewing, so the lease expires after its duration.
pub(crate) struct Lock {
    api: Api<Lease>,
    /// The API server's address, for errors.
    server: String,
    name: String,
    identity: String,
    renewal: tokio::task::JoinHandle<()>,
    /// Set when the lock was taken over from a holder that stopped renewing it.
    taken_over: Option<String>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// The Lease's name for a bundle.
pub(crate) fn lease_name(bundle: &str) -> String {
    format!("charmer.{bundle}.lock")
}

fn whoami() -> (String, String) {
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown-user".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    (user, host)
}

/// A holder identity unique to this acquisition (two operations of one process differ).
fn identity(user: &str, host: &str) -> Result<String, DeployError> {
    let mut token = [0u8; 4];
    getrandom::fill(&mut token).map_err(DeployError::Random)?;
    Ok(format!("{user}@{host} pid {} #{}", std::process::id(), hex::encode(token)))
}

/// "deploy by alice@build-7 (pid 4242) since 2026-11-28T05:00:00Z"
fn describe(lease: &Lease) -> String {
    let annotations = lease.metadata.annotations.clone().unwrap_or_default();
    let get = |k: &str| annotations.get(k).cloned().unwrap_or_else(|| "?".into());
    let spec = lease.spec.clone().unwrap_or_default();
    let since = spec.acquire_time.map_or_else(|| "?".into(), |t| seconds(t.0).to_string());
    match annotations.get(USER_ANNOTATION) {
        Some(user) => format!(
            "{} by {user}@{} (pid {}) since {since}",
            get(OPERATION_ANNOTATION),
            get(HOST_ANNOTATION),
            get(PID_ANNOTATION)
        ),
        None => format!("{} since {since}", spec.holder_identity.unwrap_or_else(|| "?".into())),
    }
}

fn seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// When the lease runs out unless renewed; `None` for a lease with no times (taken over).
fn expiry(lease: &Lease) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed.checked_add(duration).ok()
}

fn api_error(
    server: &str,
    action: &'static str,
    name: &str,
    namespace: &str,
    error: kube::Error,
) -> DeployError {
    match DeployError::from_kube(server, action, format!("Lease/{namespace}/{name}"), error) {
        // Kubernetes releases whose built-in `edit` and `admin` roles lack Leases: say which
        // permission the lock needs rather than only "forbidden".
        DeployError::Forbidden { source, .. } if action != "release" => {
            DeployError::LockForbidden { namespace: namespace.to_string(), source }
        }
        error => error,
    }
}

impl Cluster {
    /// The bundle's lock needs its Lease; a problem names each verb the identity lacks.
    pub(crate) async fn check_lock_access(
        &self,
        bundle: &str,
        namespace: &str,
    ) -> Result<Option<Problem>, DeployError> {
        let mut missing = Vec::new();
        for verb in LOCK_VERBS {
            if self.may(verb, "coordination.k8s.io", "leases", Some(namespace)).await?
                == Some(false)
            {
                missing.push(*verb);
            }
        }
        if missing.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            Problem::new(
                "preflight",
                format!("Lease/{namespace}/{}", lease_name(bundle)),
                format!(
                    "the bundle's lock needs {} on leases (coordination.k8s.io) in namespace {namespace}, which this identity may not do",
                    missing.join(", ")
                ),
            )
            .hint("ask an administrator to grant the Role `charmer rbac` prints (Kubernetes releases whose built-in edit and admin roles lack Leases need it)"),
        ))
    }

    /// Takes the bundle's lock in `namespace` (which must exist), waiting at most
    /// `options.wait` for a live holder.
    pub(crate) async fn lock(
        &self,
        bundle: &str,
        namespace: &str,
        options: &LockOptions,
    ) -> Result<Lock, DeployError> {
        let api: Api<Lease> = Api::namespaced(self.client().clone(), namespace);
        let name = lease_name(bundle);
        let (user, host) = whoami();
        let identity = identity(&user, &host)?;
        let duration_secs = i32::try_from(options.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            let now = Timestamp::now();
            let mine = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_string()),
                    labels: Some([(LOCK_LABEL.to_string(), bundle.to_string())].into()),
                    annotations: Some(
                        [
                            (USER_ANNOTATION.to_string(), user.clone()),
                            (HOST_ANNOTATION.to_string(), host.clone()),
                            (PID_ANNOTATION.to_string(), std::process::id().to_string()),
                            (OPERATION_ANNOTATION.to_string(), options.operation.clone()),
                        ]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    ..LeaseSpec::default()
                }),
            };
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| api_error(&self.server, "get", &name, namespace, e))?;
            let (attempt, taken_over) = match &current {
                None => (api.create(&PostParams::default(), &mine).await, None),
                Some(held) if expiry(held).is_none_or(|end| end < now) => {
                    let mut replacement = mine.clone();
                    replacement.metadata.resource_version = held.metadata.resource_version.clone();
                    let mut spec = replacement.spec.take().unwrap_or_default();
                    spec.lease_transitions =
                        Some(held.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0) + 1);
                    replacement.spec = Some(spec);
                    let last = held
                        .spec
                        .as_ref()
                        .and_then(|s| s.renew_time.as_ref())
                        .map_or_else(|| "?".into(), |t| seconds(t.0).to_string());
                    let warning = format!(
                        "took over the lock of bundle {bundle} in namespace {namespace} from {}: not renewed since {last}, so its holder is gone (an interrupted operation: check `charmer status`)",
                        describe(held)
                    );
                    (api.replace(&name, &PostParams::default(), &replacement).await, Some(warning))
                }
                Some(held) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(DeployError::Locked {
                            bundle: bundle.to_string(),
                            namespace: namespace.to_string(),
                            holder: describe(held),
                        });
                    }
                    let left = deadline - tokio::time::Instant::now();
                    tokio::time::sleep(left.min(Duration::from_millis(500))).await;
                    continue;
                }
            };
            match attempt {
                Ok(_) => {
                    let renewal = tokio::spawn(renew(
                        api.clone(),
                        name.clone(),
                        identity.clone(),
                        options.duration / 3,
                    ));
                    return Ok(Lock {
                        api,
                        server: self.server.clone(),
                        name,
                        identity,
                        renewal,
                        taken_over,
                    });
                }
                // Someone else created or took it at the same moment: read again.
                Err(e) => match api_error(&self.server, "acquire", &name, namespace, e) {
                    DeployError::Conflict { .. } => continue,
                    error => return Err(error),
                },
            }
        }
    }
}

/// Renews the lease every `every` while the operation runs. A failed renewal is only logged:
/// the next one may succeed before the lease runs out.
async fn renew(api: Api<Lease>, name: String, identity: String, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let result = async {
            let Some(mut lease) = api.get_opt(&name).await? else { return Ok(false) };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(identity.as_str()) {
                return Ok(false);
            }
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            api.replace(&name, &PostParams::default(), &lease).await.map(|_| true)
        }
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("lock {name} was taken over by another operation");
                return;
            }
            Err(e) => tracing::warn!("renewing lock {name}: {e}"),
        }
    }
}

impl Lock {
    /// Releases the lock after the operation it guarded, passing its result on with the
    /// takeover warning, if any (logged when the operation failed: no outcome carries it).
    pub(crate) async fn release_after<T>(
        self,
        result: Result<T, DeployError>,
    ) -> Result<(T, Option<String>), DeployError> {
        let warning = self.taken_over.clone();
        let released = self.release().await;
        match result {
            Ok(value) => released.map(|()| (value, warning)),
            Err(error) => {
                if let Some(warning) = &warning {
                    tracing::warn!("{warning}");
                }
                Err(error)
            }
        }
    }

    /// Stops renewing and deletes the lease, if it is still this holder's.
    async fn release(self) -> Result<(), DeployError> {
        self.renewal.abort();
        let namespace = self.api.namespace().unwrap_or_default().to_string();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| api_error(&self.server, "get", &self.name, &namespace, e))?;
        let ours = current.as_ref().and_then(|l| l.spec.as_ref()?.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if ours {
            match self.api.delete(&self.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) => match api_error(&self.server, "release", &self.name, &namespace, e) {
                    DeployError::NotFound { .. } => {}
                    error => return Err(error),
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_its_duration_after_the_last_renewal() {
        let renewed: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let lease = Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(60),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(expiry(&lease).unwrap().to_string(), "2026-01-01T00:01:00Z");
        assert_eq!(expiry(&Lease::default()), None);
    }

    #[test]
    fn identities_of_one_process_differ() {
        assert_ne!(identity("u", "h").unwrap(), identity("u", "h").unwrap());
    }
}
