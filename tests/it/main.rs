//! The one integration-test binary: every module drives the real `charmer` binary (or the
//! library) against real files. Shared helpers live in `support/`.

mod support;

mod airgap;
mod bad_archives;
mod bench_emulator;
mod charm_format;
mod charms;
mod charms_oci;
mod cosign;
mod day2;
mod deploy;
mod deploy_state;
mod digests;
mod fixtures;
mod fuzz_regressions;
mod gate;
mod health;
mod host_path_storage;
mod juju_charms;
mod layering;
mod least_privilege;
mod logs_follow;
mod operator_images;
mod option_constraints;
mod ownership_race;
mod preflight_cluster;
mod pty;
mod publish;
mod rbac_names;
mod registry_archives;
mod registry_auth;
mod registry_fault;
mod registry_push;
mod registry_sites;
mod release;
mod resolve_render;
mod sbom;
mod strict_inputs;
mod supply_deploy;
mod terminal;
