//! Rendered manifests → a cluster, with the real Kubernetes client: preflight checks,
//! server-side apply in dependency order, prune by inventory, generation-aware waiting, and
//! revision records for `status`, `remove` and `rollback`.
//!
//! The flow for one deploy (see docs/deploy.md):
//! [`DeployPlan`] → [`Cluster::prepare`] (discovery + every preflight problem at once, no writes) →
//! optionally [`Cluster::changes`] (server dry-run, diff) → [`Cluster::apply`] (namespace,
//! revision record, CRDs, objects, generated secrets, prune, wait, record the outcome).
//!
//! The module is built in layers, each using only the ones above it in this list (checked by
//! tests/it/layering.rs); [`DeployError`] (`error`) is a leaf every layer uses:
//! - `model`: the plan, Kubernetes versions, the cluster's kinds, plan objects as targets,
//!   progress events. No I/O.
//! - `cluster`: the client (retries, errors), discovery, what the identity may do, the Role a
//!   bundle needs.
//! - `state`: what charmer keeps in the cluster: revision records, the lock, kept objects, the
//!   recorded configuration.
//! - `health`: whether a live object is ready, and what is wrong with its pods.
//! - `operations`: preflight, apply, prune, diff, wait, rollback, remove, restart, status, logs.
//!
//! Nothing outside this file reaches a layer through these re-exports: each names the layer.

mod cluster;
mod error;
mod health;
mod model;
mod operations;
mod state;

pub use cluster::client::{ClientOptions, Cluster, FIELD_MANAGER};
pub use cluster::rbac::{roles, Roles};
pub use error::{DeployError, OwnedBy, UnreadableVersion};
pub use health::pods::{PodProblem, Severity};
pub use model::events::{Action, Event, NoProgress, Progress};
pub use model::plan::{DeployPlan, PlanApp, PlanObject};
pub use model::settings::RecordedSetting;
pub use model::versions::{kubernetes_needs, KubeVersion, VersionNeed, VersionOp};
pub use operations::apply::{Applied, ApplyOptions, Interrupt, Outcome};
pub use operations::diff::{Changes, ObjectChange};
pub use operations::generate::GENERATE_MANAGER;
pub use operations::logs::{LogLine, LogOptions, LogSink};
pub use operations::preflight::{PrepareOptions, Prepared, RegistryAccess};
pub use operations::remove::{Removal, RemoveOptions};
pub use operations::restart::{Restarted, RESTARTED_AT_ANNOTATION, RESTART_MANAGER};
pub use operations::status::{AppStatus, BundleStatus, Exposure, NotReady};
pub use operations::wait::{WaitOptions, MIN_TIMEOUT};
pub use state::config::DeployedConfig;
pub use state::keep::{Keep, KEEP_MANAGER};
pub use state::list::RecordSummary;
pub use state::lock::LockOptions;
pub use state::record::{RecordStatus, Revision};
