//! The health layer: whether live objects are ready, and what is wrong with their pods, in
//! one place for `deploy`'s wait and `status`.

pub(crate) mod pods;
pub(crate) mod readiness;
