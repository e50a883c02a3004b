//! `charmer rbac BUNDLE [-n NS]`: the Role (and, when the bundle has cluster-scoped objects,
//! the ClusterRole) a deploying identity needs, as a YAML stream an administrator applies
//! and binds.

use std::io::Write;
use std::process::ExitCode;

use super::bundle_cmds::ResolveArgs;
use super::deploy_cmds::KubeArgs;
use super::stdout_error;
use crate::deploy::DeployPlan;
use crate::diag::Problem;
use crate::Error;

/// Resolves and renders the bundle, then prints the roles (with `discover`, the resource
/// names come from the cluster's discovery).
pub(super) fn rbac(
    out: &mut impl Write,
    resolve: &ResolveArgs,
    discover: bool,
    kube: &KubeArgs,
) -> Result<ExitCode, Error> {
    if !discover && (kube.kubeconfig.is_some() || kube.context.is_some()) {
        return Err(Problem::new(
            "command line",
            "--kubeconfig/--context",
            "only used with --discover: without it nothing touches a cluster",
        )
        .hint("add --discover to take the resource names from that cluster")
        .into());
    }
    let model = resolve.resolve()?;
    let manifests = crate::render::render(&model)?;
    let plan = DeployPlan::from_model(&model, &manifests);
    let roles = crate::ops::roles(&plan, discover.then(|| kube.options()).as_ref())?;
    for role in std::iter::once(&roles.role).chain(roles.cluster_role.as_ref()) {
        let text = serde_yaml::to_string(role).unwrap_or_default();
        write!(out, "---\n{text}").map_err(stdout_error)?;
    }
    Ok(ExitCode::SUCCESS)
}
