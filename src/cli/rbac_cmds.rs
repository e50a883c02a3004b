//! `charmer rbac BUNDLE [-n NS]`: the Role (and, when the bundle has cluster-scoped objects,
//! the ClusterRole) a deploying identity needs, as a YAML stream an administrator applies
//! and binds.

use std::io::Write;
use std::process::ExitCode;

use super::bundle_cmds::ResolveArgs;
use super::stdout_error;
use crate::deploy::{roles, DeployPlan};
use crate::Error;

/// Resolves and renders the bundle (nothing touches a cluster), then prints the roles; kinds
/// whose resource had to be guessed are warnings on stderr.
pub(super) fn rbac(out: &mut impl Write, resolve: &ResolveArgs) -> Result<ExitCode, Error> {
    let model = resolve.resolve()?;
    let manifests = crate::render::render(&model)?;
    let roles = roles(&DeployPlan::from_model(&model, &manifests));
    for guess in &roles.guessed {
        eprintln!("warning: {guess}");
    }
    for role in std::iter::once(&roles.role).chain(roles.cluster_role.as_ref()) {
        let text = serde_yaml::to_string(role).unwrap_or_default();
        write!(out, "---\n{text}").map_err(stdout_error)?;
    }
    Ok(ExitCode::SUCCESS)
}
