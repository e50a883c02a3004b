//! The connection to a cluster: client configuration, discovery, and the few object
//! operations deploy needs, each retried on transient failures and failing with the object
//! named.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    ValidationDirective,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};

use crate::contract::ObjectId;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::Kind;

/// The field manager of what no single bundle owns (the namespace, revision records); the
/// prefix of each bundle's own manager (`charmer/<bundle>`, cluster::ownership), and the manager every object was
/// applied with before charmer had one per bundle.
pub const FIELD_MANAGER: &str = "charmer";

/// How many requests one step of an operation keeps in flight at once (pre-flight's reads,
/// the gate's dry runs, the applies of one wave): enough to hide each request's round trip,
/// few enough not to crowd an API server that also serves the cluster's controllers.
pub(crate) const REQUESTS_AT_ONCE: usize = 8;

/// Where the cluster's connection settings come from. Both unset: `KUBECONFIG` or
/// `~/.kube/config`, then the in-cluster service account.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A kubeconfig file to use instead of the default ones.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of the current one.
    pub context: Option<String>,
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) client: Client,
    /// The API server's address, for errors.
    pub(crate) server: String,
    retry: Retry,
}

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    first_delay: Duration,
    max_delay: Duration,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Removed {
    /// Gone.
    Deleted,
    /// Marked for deletion; these finalizers keep it until their controllers let go.
    Terminating(Vec<String>),
    /// Was not there.
    Missing,
}

impl Cluster {
    /// Connects using kubeconfig (or in-cluster) settings. Nothing is requested yet.
    pub async fn connect(options: &ClientOptions) -> Result<Cluster, DeployError> {
        let config_error = |e: kube::config::KubeconfigError| DeployError::Config {
            path: None,
            source: Box::new(e),
        };
        let kube_options =
            KubeConfigOptions { context: options.context.clone(), ..Default::default() };
        let mut config = match (&options.kubeconfig, &options.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path).map_err(|e| DeployError::Config {
                    path: Some(path.clone()),
                    source: Box::new(e),
                })?;
                Config::from_custom_kubeconfig(file, &kube_options).await.map_err(config_error)?
            }
            (None, Some(_)) => {
                Config::from_kubeconfig(&kube_options).await.map_err(config_error)?
            }
            (None, None) => Config::infer()
                .await
                .map_err(|e| DeployError::Config { path: None, source: Box::new(e) })?,
        };
        // kube's own retry layer waits up to minutes; deploy retries each call itself, briefly,
        // and also on connection resets and other 5xx answers.
        config.default_retry = false;
        // An address nothing answers at fails within seconds, not after minutes.
        config.connect_timeout = Some(Duration::from_secs(10));
        let server = config.cluster_url.to_string();
        if config.accept_invalid_certs {
            tracing::warn!(
                "the kubeconfig turns off TLS verification for {server} \
                 (insecure-skip-tls-verify): the API server is not authenticated; give the \
                 cluster's CA in certificate-authority(-data) instead"
            );
        }
        let client = Client::try_from(config)
            .map_err(|e| DeployError::Config { path: None, source: Box::new(e) })?;
        Ok(Cluster { server, ..Cluster::from_client(client) })
    }

    /// Wraps an existing client.
    pub fn from_client(client: Client) -> Cluster {
        Cluster {
            client,
            server: "(the client's server)".to_string(),
            retry: Retry {
                attempts: 6,
                first_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
            },
        }
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of attempts on transient
    /// errors (429, 5xx, dropped connections).
    pub(crate) async fn retried<T, F, Fut>(
        &self,
        action: &'static str,
        object: &(dyn Display + Sync),
        mut call: F,
    ) -> Result<T, DeployError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if attempt < self.retry.attempts && is_transient(&error) => {
                    tracing::info!("{action} {object}: {error}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max_delay);
                    attempt += 1;
                }
                Err(error) => {
                    return Err(DeployError::from_kube(
                        &self.server,
                        action,
                        object.to_string(),
                        error,
                    ))
                }
            }
        }
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace.filter(|_| kind.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            None => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    /// The live object, or `None` when it does not exist.
    pub(crate) async fn get(
        &self,
        kind: &Kind,
        id: &ObjectId,
    ) -> Result<Option<Value>, DeployError> {
        let api = self.api(kind, id.namespace.as_deref());
        let found = self.retried("get", id, || api.get_opt(&id.name)).await?;
        found.map(|o| to_value(id, o)).transpose()
    }

    /// Server-side applies `object` as `manager` (forcing ownership, strict field validation);
    /// with `dry_run` the server only answers what it would store. A bundle's own objects
    /// go through `Cluster::apply_owned` (cluster::ownership) instead, which does not force.
    pub(crate) async fn apply_object(
        &self,
        kind: &Kind,
        id: &ObjectId,
        object: &Value,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value, DeployError> {
        self.apply_with(kind, id, object, &apply_params(manager, dry_run, true)).await
    }

    /// [`Cluster::apply_object`] with the given [`apply_params`].
    pub(crate) async fn apply_with(
        &self,
        kind: &Kind,
        id: &ObjectId,
        object: &Value,
        params: &PatchParams,
    ) -> Result<Value, DeployError> {
        let api = self.api(kind, id.namespace.as_deref());
        let patch = Patch::Apply(object);
        let applied = self.retried("apply", id, || api.patch(&id.name, params, &patch)).await?;
        to_value(id, applied)
    }

    /// Gives up every field `manager` holds (it applies nothing), so the server drops those
    /// no other manager holds. Answers the object as it is now.
    pub(crate) async fn release_fields(
        &self,
        kind: &Kind,
        id: &ObjectId,
        manager: &str,
    ) -> Result<Value, DeployError> {
        let nothing = json!({
            "apiVersion": kind.resource.api_version,
            "kind": id.kind,
            "metadata": {"name": id.name, "namespace": id.namespace},
        });
        self.apply_object(kind, id, &nothing, manager, false).await
    }

    /// Deletes an object (background propagation).
    pub(crate) async fn delete(&self, kind: &Kind, id: &ObjectId) -> Result<Removed, DeployError> {
        let api = self.api(kind, id.namespace.as_deref());
        let params = DeleteParams::background();
        match self.retried("delete", id, || api.delete(&id.name, &params)).await {
            // Finalizers hold it (every claim has kubernetes.io/pvc-protection): the server
            // answers the object, marked for deletion.
            Ok(answer) => match answer.left() {
                Some(o) if o.metadata.deletion_timestamp.is_some() => {
                    Ok(Removed::Terminating(o.metadata.finalizers.unwrap_or_default()))
                }
                _ => Ok(Removed::Deleted),
            },
            Err(DeployError::NotFound { .. }) => Ok(Removed::Missing),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object leaving its dependents in place (`propagationPolicy: Orphan`, as
    /// `kubectl delete --cascade=orphan`): a StatefulSet's pods keep running.
    pub(crate) async fn delete_orphaning(
        &self,
        kind: &Kind,
        id: &ObjectId,
    ) -> Result<(), DeployError> {
        let api = self.api(kind, id.namespace.as_deref());
        let params = DeleteParams::orphan();
        match self.retried("delete", id, || api.delete(&id.name, &params)).await {
            Ok(_) | Err(DeployError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates an object; fails (409) when the name is taken, never overwriting anything.
    pub(crate) async fn create(
        &self,
        kind: &Kind,
        id: &ObjectId,
        object: &Value,
    ) -> Result<(), DeployError> {
        let api = self.api(kind, id.namespace.as_deref());
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let object: DynamicObject = serde_json::from_value(object.clone())
            .map_err(|source| DeployError::Encode { what: format!("create {id}"), source })?;
        self.retried("create", id, || api.create(&params, &object)).await?;
        Ok(())
    }

    /// The client, for typed requests (Leases).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Objects of a kind in a namespace (or cluster-wide) matching a label selector.
    pub(crate) async fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>, DeployError> {
        let api = self.api(kind, namespace);
        let params = ListParams::default().labels(selector);
        let what = format!("{} in {}", kind.resource.plural, namespace.unwrap_or("the cluster"));
        let list = self.retried("list", &what, || api.list(&params)).await?;
        list.items.into_iter().map(|o| item_value(kind, &format!("list {what}"), o)).collect()
    }
}

/// An object of `kind` read from a list or a watch, as JSON with its `apiVersion` and `kind`:
/// the API server leaves those out of the items of a built-in kind's list, and every reader
/// of an object wants them (object ids).
pub(crate) fn item_value(
    kind: &Kind,
    what: &str,
    object: DynamicObject,
) -> Result<Value, DeployError> {
    let mut item = serde_json::to_value(object)
        .map_err(|source| DeployError::Decode { what: what.to_string(), source })?;
    if let Some(map) = item.as_object_mut() {
        let resource = &kind.resource;
        map.entry("apiVersion").or_insert_with(|| Value::String(resource.api_version.clone()));
        map.entry("kind").or_insert_with(|| Value::String(resource.kind.clone()));
    }
    Ok(item)
}

/// A server-side apply as `manager` with strict field validation, forcing ownership only with
/// `force`: without, the server refuses (409) to change a field another manager holds with
/// another value.
pub(crate) fn apply_params(manager: &str, dry_run: bool, force: bool) -> PatchParams {
    PatchParams {
        dry_run,
        force,
        field_manager: Some(manager.to_string()),
        field_validation: Some(ValidationDirective::Strict),
    }
}

fn to_value(id: &ObjectId, object: DynamicObject) -> Result<Value, DeployError> {
    serde_json::to_value(object)
        .map_err(|source| DeployError::Encode { what: format!("read {id}"), source })
}

/// Whether an error is worth another try: throttling, server-side failures, and connections
/// that broke on the way. A refused connection, an unknown host or a certificate that does
/// not verify will not change in a few seconds: those fail at once.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.code == 429 || (500..600).contains(&status.code) && status.code != 501
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
            while let Some(e) = source {
                if let Some(io) = e.downcast_ref::<std::io::Error>() {
                    use std::io::ErrorKind::*;
                    return matches!(
                        io.kind(),
                        ConnectionReset | ConnectionAborted | BrokenPipe | TimedOut | UnexpectedEof
                    );
                }
                if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
                    if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                        return true;
                    }
                }
                source = e.source();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::error::tests::unknown_issuer;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("boom", "InternalError").with_code(code).boxed(),
        )
    }

    #[test]
    fn throttling_and_server_errors_are_transient_client_errors_are_not() {
        assert!(is_transient(&api_error(429)));
        assert!(is_transient(&api_error(503)));
        assert!(is_transient(&api_error(500)));
        assert!(!is_transient(&api_error(501)));
        assert!(!is_transient(&api_error(409)));
        assert!(!is_transient(&api_error(422)));
    }

    #[test]
    fn connection_resets_are_transient_refusals_dns_and_tls_are_not() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(is_transient(&kube::Error::Service(Box::new(reset))));
        let other = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!is_transient(&kube::Error::Service(Box::new(other))));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_transient(&kube::Error::Service(Box::new(refused))));
        assert!(!is_transient(&unknown_issuer()));
    }
}
