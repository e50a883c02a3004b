//! Support code the integration tests share: servers started on free 127.0.0.1 ports.

pub mod registry;
