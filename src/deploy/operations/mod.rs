//! The operations layer: what a user asks of a cluster. Preflight (split by what it checks),
//! the server-side dry-run gate and the immutable-field strategy, apply with prune and wait, diff, rollback, remove, restart, status and logs.

pub(crate) mod apply;
pub(crate) mod diff;
pub(crate) mod gate;
pub(crate) mod generate;
pub(crate) mod immutable;
pub(crate) mod logs;
pub(crate) mod preflight;
pub(crate) mod prune;
pub(crate) mod remove;
pub(crate) mod restart;
pub(crate) mod rollback;
pub(crate) mod status;
pub(crate) mod wait;
