//! charmer's integration tests: one test binary (linking the crate once), one module per area.

mod airgap;
mod registry_archives;
mod registry_auth;
mod registry_fault;
mod registry_push;
mod support;
