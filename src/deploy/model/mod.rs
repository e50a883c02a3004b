//! The model layer: what a deploy is about, with no I/O: the plan and the configuration it
//! records, Kubernetes versions, the kinds a cluster serves, plan objects as targets in apply
//! order, and the events an operation reports.

pub(crate) mod events;
pub(crate) mod kinds;
pub(crate) mod origin;
pub(crate) mod plan;
pub(crate) mod settings;
pub(crate) mod targets;
pub(crate) mod versions;
