//! What an operation reports as it goes ([`Event`], [`Progress`]) and what it did to each
//! object ([`Action`]).

use crate::contract::ObjectId;

/// What happened (or would happen) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Did not exist; created.
    Created,
    /// Existed and changed.
    Configured,
    /// Existed and stayed the same.
    Unchanged,
    /// No longer rendered; deleted.
    Pruned,
    /// No longer rendered, but data, credentials or marked keep: left in place, marked as
    /// kept from the bundle.
    Kept,
    /// Deleted with its pods and claims orphaned and created again (a StatefulSet whose claim
    /// templates grew: Kubernetes does not change them in place).
    Recreated,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Pruned => "pruned",
            Action::Kept => "kept",
            Action::Recreated => "recreated",
        })
    }
}

/// Something a running deploy reports as it goes, for a progress display.
#[derive(Debug, Clone)]
pub enum Event {
    /// An object was applied.
    Applied {
        /// The application.
        app: String,
        /// The object.
        id: ObjectId,
        /// What the apply did.
        action: Action,
    },
    /// An object of an earlier revision was deleted.
    Pruned {
        /// The object.
        id: ObjectId,
    },
    /// A claim was expanded (its StatefulSet's claim template grew).
    Expanded {
        /// The claim.
        id: ObjectId,
        /// Its storage request before.
        from: String,
        /// Its storage request now.
        to: String,
    },
    /// A StatefulSet is deleted with its pods and claims orphaned, to be created again.
    Recreating {
        /// The application.
        app: String,
        /// The StatefulSet.
        id: ObjectId,
    },
    /// Waiting: how many of an application's objects are ready.
    Waiting {
        /// The application.
        app: String,
        /// Objects ready.
        ready: usize,
        /// Objects waited for.
        total: usize,
        /// The first object not ready yet and why (`Deployment/shop/web (0 of 2 replicas
        /// ready, 2 updated; pod web-1: Pending, Unschedulable: ...)`); `None` when all are.
        why: Option<String>,
    },
}

/// Receives [`Event`]s; the CLI draws progress bars from them. Nothing in this module prints.
pub trait Progress: Sync {
    /// Called for each event, in order.
    fn event(&self, event: Event);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event) {}
}
