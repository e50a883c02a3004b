//! The state layer: what charmer keeps in the cluster about a bundle: revision records (and
//! their summaries), the lock, objects kept from it, the configuration each revision
//! recorded.

pub(crate) mod config;
pub(crate) mod keep;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod record;
