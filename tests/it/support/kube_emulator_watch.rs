//! The emulator's watch (`GET ...?watch=true`, also `watch=1`), as the API server answers it:
//! a chunked stream of JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` when
//! `allowWatchBookmarks=true`, `ERROR`) for the objects of one resource in one namespace
//! (or all) matching `labelSelector`, starting after `resourceVersion`, ending after
//! `timeoutSeconds`. The history of changes is recorded by comparing the stored objects
//! with their last seen resourceVersions after every request and every controller tick, so
//! no write path of the emulator needs to know about watches. A watch from a
//! resourceVersion older than the kept history gets one `ERROR` event with a 410 `Expired`
//! Status and ends, as the API server's watch cache answers it;
//! [`KubeEmulator::expire_watches`] drops the history and ends every open watch that way,
//! forcing clients to re-list. Also counts requests per verb and resource, for the
//! benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{matches, Key, KubeEmulator, ResourceType, State};

/// Changes kept for watches to resume from.
const HISTORY: usize = 200_000;
/// Time between bookmarks on a quiet watch (the API server sends one about every minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

/// One change to a stored object.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

/// The watch side of the emulator's state.
#[derive(Default)]
pub(super) struct Watches {
    /// Each stored object's resourceVersion when last recorded.
    seen: BTreeMap<Key, String>,
    history: Vec<Change>,
    /// Watches may not resume from before this resourceVersion.
    floor: u64,
    /// Bumped by `expire_watches`: open watches end with 410.
    epoch: u64,
    /// Wakes open watches after a change.
    notify: Arc<tokio::sync::Notify>,
    /// Requests served, by `verb resource` (`watch pods`, `get deployments`).
    requests: BTreeMap<String, u64>,
    /// The state's resourceVersion counter and object count when changes were last
    /// recorded: every write and every new object bumps the counter, every removal changes
    /// the count, so while both stay the same there is nothing to compare (reads and dry
    /// runs, most requests, skip the pass over every object).
    recorded: (u64, usize),
}

impl State {
    /// Records every change since the last call as watch events; wakes watches when any.
    pub(super) fn record_changes(&mut self) {
        let now = (self.resource_version, self.objects.len());
        if self.watches.recorded == now {
            return;
        }
        let mut changes = Vec::new();
        for (key, stored) in &self.objects {
            let rv = stored.object["metadata"]["resourceVersion"].as_str().unwrap_or("");
            match self.watches.seen.get(key) {
                Some(seen) if seen == rv => {}
                seen => {
                    let kind = if seen.is_some() { "MODIFIED" } else { "ADDED" };
                    changes.push((key.clone(), kind, stored.object.clone()));
                }
            }
        }
        let gone: Vec<Key> =
            self.watches.seen.keys().filter(|k| !self.objects.contains_key(*k)).cloned().collect();
        for key in gone {
            self.watches.seen.remove(&key);
            self.resource_version += 1;
            // The last state known, at the resourceVersion of its deletion.
            let mut object = self
                .watches
                .history
                .iter()
                .rev()
                .find(|c| c.key == key)
                .map(|c| c.object.clone())
                .unwrap_or_else(|| json!({"metadata": {"name": key.3, "namespace": key.2}}));
            object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
            changes.push((key, "DELETED", object));
        }
        self.watches.recorded = (self.resource_version, self.objects.len());
        if changes.is_empty() {
            return;
        }
        for (key, kind, object) in changes {
            let rv = object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.resource_version);
            if kind != "DELETED" {
                self.watches.seen.insert(key.clone(), rv.to_string());
            }
            self.watches.history.push(Change { rv, key, kind, object });
        }
        self.watches.history.sort_by_key(|c| c.rv);
        if self.watches.history.len() > HISTORY {
            let cut = self.watches.history.len() - HISTORY;
            self.watches.floor = self.watches.history[cut - 1].rv;
            self.watches.history.drain(..cut);
        }
        self.watches.notify.notify_waiters();
    }

    /// The namespaces of the changes recorded after resourceVersion `rv`; `None` when the
    /// history no longer reaches back that far (every namespace may have changed).
    pub(super) fn namespaces_changed_after(&self, rv: u64) -> Option<BTreeSet<String>> {
        if self.watches.floor > rv {
            return None;
        }
        let history = &self.watches.history;
        let from = history.partition_point(|c| c.rv <= rv);
        Some(history[from..].iter().map(|c| c.key.2.clone()).collect())
    }

    /// The resourceVersion of the last recorded change.
    pub(super) fn last_change(&self) -> u64 {
        self.watches.history.last().map_or(self.watches.floor, |c| c.rv)
    }

    /// Counts a request as `verb resource`.
    pub(super) fn count_request(&mut self, method: &Method, path: &str, watch: bool) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match segments.as_slice() {
            ["api", "v1", rest @ ..] | ["apis", _, _, rest @ ..] => rest,
            _ => &[][..],
        };
        let (plural, named) = match rest {
            ["namespaces", _, plural] | [plural] => (*plural, false),
            ["namespaces", _, plural, _, ..] | [plural, _, ..] => (*plural, true),
            _ => ("discovery", false),
        };
        let verb = match (method, named, watch) {
            (&Method::GET, _, true) => "watch",
            (&Method::GET, true, _) => "get",
            (&Method::GET, false, _) => "list",
            (&Method::PATCH, ..) => "patch",
            (&Method::POST, ..) => "create",
            (&Method::PUT, ..) => "update",
            (&Method::DELETE, ..) => "delete",
            _ => "other",
        };
        *self.watches.requests.entry(format!("{verb} {plural}")).or_default() += 1;
    }

    /// The resource and namespace a collection path names.
    fn collection(&self, path: &str) -> Option<(ResourceType, Option<String>)> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("", "v1", rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (plural, namespace) = match rest {
            [plural] => (*plural, None),
            ["namespaces", ns, plural] => (*plural, Some(ns.to_string())),
            _ => return None,
        };
        let t = self
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)?
            .clone();
        Some((t, namespace))
    }
}

/// Whether a request asks for a watch.
pub(super) fn is_watch(method: &Method, query: &BTreeMap<String, String>) -> bool {
    *method == Method::GET && query.get("watch").is_some_and(|w| w == "true" || w == "1")
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
}

/// The API server's answer to a watch from before its history: one ERROR event (the
/// second number is the oldest resourceVersion it still has).
fn expired(rv: u64, oldest: u64) -> Bytes {
    event_line(
        "ERROR",
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {rv} ({oldest})"), "reason": "Expired", "code": 410}),
    )
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers a watch request: a streaming body fed until the timeout, an expiry, or the client
/// goes away.
pub(super) fn serve(
    state: Arc<Mutex<State>>,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let (t, namespace, notify, epoch) = {
        let guard = lock(&state);
        let Some((t, namespace)) = guard.collection(path) else {
            drop(guard);
            return answer(super::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        };
        if let Some(denied) = guard.authorize(&Method::GET, &t, namespace.as_deref(), None, query) {
            drop(guard);
            return answer(denied);
        }
        (t, namespace, guard.watches.notify.clone(), guard.watches.epoch)
    };
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let start: Option<u64> =
        query.get("resourceVersion").and_then(|v| v.parse().ok()).filter(|v| *v > 0);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = match start {
            Some(rv) => rv,
            None => lock(&state).resource_version,
        };
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (lines, end) = {
                let state = lock(&state);
                let w = &state.watches;
                if w.epoch != epoch || last < w.floor {
                    (vec![expired(last, w.floor)], true)
                } else {
                    let from = w.history.partition_point(|c| c.rv <= last);
                    let lines: Vec<Bytes> = w.history[from..]
                        .iter()
                        .filter(|c| c.key.0 == t.group && c.key.1 == t.plural)
                        .filter(|c| namespace.as_ref().is_none_or(|ns| *ns == c.key.2))
                        .filter(|c| matches(&selector, &c.object["metadata"]["labels"]))
                        .map(|c| event_line(c.kind, &c.object))
                        .collect();
                    last = w.history.last().map_or(last, |c| c.rv.max(last));
                    (lines, false)
                }
            };
            for line in lines {
                if sender.send(line).await.is_err() {
                    return;
                }
            }
            if end {
                return;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(BOOKMARK_EVERY) => {
                    if bookmarks {
                        let mark = json!({"kind": t.kind, "apiVersion": t.api_version(),
                            "metadata": {"resourceVersion": last.to_string()}});
                        if sender.send(event_line("BOOKMARK", &mark)).await.is_err() {
                            return;
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let line = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), receiver))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn answer((code, body): (StatusCode, Value)) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response =
        Response::new(http_body_util::Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = code;
    response
}

impl KubeEmulator {
    /// Forgets the watch history and ends every open watch with 410 `Expired`, as an API
    /// server whose watch cache moved on: clients must list again.
    pub fn expire_watches(&self) {
        let mut state = self.state();
        state.watches.floor = state.resource_version;
        state.watches.history.clear();
        state.watches.epoch += 1;
        state.watches.notify.notify_waiters();
    }

    /// Requests served so far, by `verb resource` (`list pods`, `watch deployments`).
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.state().watches.requests.clone()
    }
}
