//! charmer's integration tests: one test binary (linking the crate once), one module per area.

mod deploy;
mod resolve_render;
mod support;
