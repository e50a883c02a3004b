//! The cluster-access layer: the client (connection, retries, errors naming the object),
//! discovery, list + watch, what the deploying identity may do, and the Role a bundle needs.

pub(crate) mod access;
pub(crate) mod client;
pub(crate) mod discovery;
pub(crate) mod ownership;
pub(crate) mod rbac;
pub(crate) mod watch;
