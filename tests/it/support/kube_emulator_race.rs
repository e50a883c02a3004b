//! Racing writers, for the emulator: a request can be held on its way in until the test
//! releases it (so two clients' requests interleave deterministically), and a server-side
//! apply that names a `metadata.resourceVersion` is made only on that version of the object
//! (409 `Conflict` otherwise), as the API server treats it as a precondition.

use hyper::Method;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{status, Answer, KubeEmulator, Stored};

/// Requests to hold: the next one matching each is held until its [`Held`] is released.
#[derive(Default)]
pub(super) struct Holds {
    armed: Vec<Armed>,
}

struct Armed {
    method: Method,
    path: String,
    caught: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The test's side of a hold.
pub struct Held {
    caught: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl Held {
    /// Waits until a request has been caught (and is now held).
    pub async fn caught(&mut self) {
        if let Some(caught) = self.caught.take() {
            caught.await.expect("the emulator is running");
        }
    }

    /// Lets the held request go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl Holds {
    /// The hold for a request, if one is armed for it: the request waits on it (outside the
    /// emulator's lock, so other clients go on meanwhile).
    pub(super) fn take(&mut self, method: &Method, path: &str) -> Option<oneshot::Receiver<()>> {
        let i = self.armed.iter().position(|a| a.method == method && a.path == path)?;
        let armed = self.armed.remove(i);
        let _ = armed.caught.send(());
        Some(armed.release)
    }
}

impl KubeEmulator {
    /// Holds the next `method` request to `path` (e.g. `PATCH`,
    /// `/api/v1/namespaces/shop/configmaps/web-config`) until the [`Held`] is released (or
    /// dropped).
    pub fn hold_next(&self, method: Method, path: &str) -> Held {
        let (caught_tx, caught_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.state().holds.armed.push(Armed {
            method,
            path: path.to_string(),
            caught: caught_tx,
            release: release_rx,
        });
        Held { caught: Some(caught_rx), release: release_tx }
    }
}

/// The answer to an apply whose `metadata.resourceVersion` is not the stored object's.
pub(super) fn outdated(
    plural: &str,
    name: &str,
    config: &Value,
    stored: Option<&Stored>,
) -> Option<Answer> {
    let wanted = config["metadata"]["resourceVersion"].as_str()?;
    let current = stored.and_then(|s| s.object["metadata"]["resourceVersion"].as_str());
    (current != Some(wanted)).then(|| {
        status(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        )
    })
}
