//! charmer's integration tests: one test binary (linking the crate once), one module per area.

mod resolve_render;
mod charms;
