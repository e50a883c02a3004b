//! List + watch: the objects of one kind in one namespace matching a label selector, kept up
//! to date by one watch request (re-opened when the server ends it, re-listed when the
//! server no longer has the history it was asked to resume from: 410 Gone / `Expired`).
//! Requests do not grow with the number of objects: one list and one open watch per kind
//! and namespace. Bookmarks keep the resume point fresh, so a re-opened watch rarely needs
//! a re-list.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::deploy::cluster::client::{item_value, Cluster};
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::Kind;

/// A change to the watched set.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// Every object, after a (re-)list: replaces what was known.
    Listed(Vec<Value>),
    /// An object added or changed.
    Applied(Value),
    /// An object deleted.
    Deleted(Value),
}

/// How long the server keeps one watch request open (it then ends it and the watch is
/// re-opened from the last resource version seen).
const WATCH_SECONDS: u32 = 290;

/// One watched set: a kind, a namespace (`None`: every namespace, or a cluster-scoped kind)
/// and a label selector.
#[derive(Debug, Clone)]
pub(crate) struct WatchSpec {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub selector: String,
}

impl Cluster {
    /// Lists and then watches `spec`, sending each update tagged with `tag` to `updates`
    /// until the receiver goes away; an error that retries cannot overcome is sent as the
    /// last message.
    pub(crate) async fn watch(
        &self,
        spec: WatchSpec,
        tag: usize,
        updates: UnboundedSender<(usize, Result<Update, DeployError>)>,
    ) {
        let api: Api<DynamicObject> = match spec.namespace.as_deref() {
            Some(ns) if spec.kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &spec.kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &spec.kind.resource),
        };
        let what = format!(
            "{} in {}",
            spec.kind.resource.plural,
            spec.namespace.as_deref().unwrap_or("the cluster")
        );
        let send = |update: Result<Update, DeployError>| updates.send((tag, update)).is_ok();
        'relist: loop {
            let params = ListParams::default().labels(&spec.selector);
            let list = match self.retried("list", &what, || api.list(&params)).await {
                Ok(list) => list,
                Err(e) => {
                    send(Err(e));
                    return;
                }
            };
            let mut version = list.metadata.resource_version.clone().unwrap_or_default();
            let items = match list.items.into_iter().map(|o| value(&spec.kind, &what, o)).collect()
            {
                Ok(items) => items,
                Err(e) => {
                    send(Err(e));
                    return;
                }
            };
            if !send(Ok(Update::Listed(items))) {
                return;
            }
            let params = WatchParams {
                bookmarks: true,
                ..WatchParams::default().labels(&spec.selector).timeout(WATCH_SECONDS)
            };
            let mut broken = 0u32;
            loop {
                let opened = self.retried("watch", &what, || api.watch(&params, &version)).await;
                let stream = match opened {
                    Ok(stream) => stream,
                    Err(e) if gone(&e) => continue 'relist,
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                };
                let mut stream = stream.boxed();
                loop {
                    match stream.try_next().await {
                        Ok(Some(event)) => {
                            broken = 0;
                            let (update, seen) = match event {
                                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                                    let seen = o.metadata.resource_version.clone();
                                    (value(&spec.kind, &what, o).map(Update::Applied), seen)
                                }
                                WatchEvent::Deleted(o) => {
                                    let seen = o.metadata.resource_version.clone();
                                    (value(&spec.kind, &what, o).map(Update::Deleted), seen)
                                }
                                WatchEvent::Bookmark(b) => {
                                    version = b.metadata.resource_version;
                                    continue;
                                }
                                WatchEvent::Error(status) if status.code == 410 => {
                                    continue 'relist;
                                }
                                WatchEvent::Error(status) => {
                                    let error = kube::Error::Api(status);
                                    send(Err(DeployError::from_kube(
                                        &self.server,
                                        "watch",
                                        what.clone(),
                                        error,
                                    )));
                                    return;
                                }
                            };
                            if let Some(seen) = seen {
                                version = seen;
                            }
                            if !send(update) {
                                return;
                            }
                        }
                        // The server ended the request (its timeout): resume where it was.
                        Ok(None) => break,
                        // A connection lost mid-stream: resume, a few times in a row at most.
                        Err(e) => {
                            broken += 1;
                            if broken > 5 {
                                send(Err(DeployError::from_kube(
                                    &self.server,
                                    "watch",
                                    what.clone(),
                                    e,
                                )));
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(200 * u64::from(broken)))
                                .await;
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Whether the server no longer has the history a watch asked to resume from.
fn gone(error: &DeployError) -> bool {
    error.status().is_some_and(|s| s.code == 410)
}

fn value(kind: &Kind, what: &str, object: DynamicObject) -> Result<Value, DeployError> {
    item_value(kind, &format!("watch {what}"), object)
}
