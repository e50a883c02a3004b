//! One function per user operation, as Helm's `pkg/action` has them: each takes a typed
//! options value and returns a typed outcome, and owns the orchestration the command line
//! used to hold (the imported-folder verification around resolving, digest pinning, the
//! deploy pipeline with `--reuse-config`). `cli` maps flags to these options and prints what
//! comes back; a program using charmer as a library does the same.
//!
//! Warnings go into the `warnings` list each function is given (the caller shows them, even
//! when the operation then fails); nothing here prints.

pub mod airgap;
pub mod logs;
pub mod publish;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::airgap::unpacked::{self, Unpacked};
use crate::bundle::{BundleInput, ConfigFileOverride, ConfigOverride, NetworkPolicies};
use crate::deploy::WaitOptions;
use crate::deploy::{
    ApplyOptions, BundleStatus, Changes, ClientOptions, Cluster, DeployError, DeployPlan,
    DeployedConfig, Outcome, PrepareOptions, Prepared, Progress, Removal, RemoveOptions, Restarted,
};
use crate::diag::{Problem, Problems};
use crate::images::{Reference, Registry};
use crate::io_error::IoResultExt;
use crate::registry::cosign;
use crate::render::Manifests;
use crate::resolve::{Inputs, Model};
use crate::transport::TlsOptions;
use crate::Error;

/// Transient failures retried per lookup when pinning digests (as `images save` defaults).
const PIN_RETRIES: u32 = 5;
/// Digest lookups at once.
const PIN_JOBS: usize = 8;

/// What to resolve: a bundle, where its charms come from, and every override.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// The bundle: a bundle.yaml or a folder holding one.
    pub bundle: PathBuf,
    /// Folders, indexes or index URLs of charms (empty: charms/ and dist/ near the bundle).
    pub charm_dirs: Vec<PathBuf>,
    /// Accept only charms signed with this public key; on a folder `airgap import` unpacked,
    /// its signed manifest authenticates the bundle, overlays, charms and image digests.
    pub verify_key: Option<PathBuf>,
    /// Overlays, in order.
    pub overlays: Vec<PathBuf>,
    /// `APP.KEY=VALUE` overrides (they win over everything else).
    pub config: Vec<ConfigOverride>,
    /// `APP=FILE` option files.
    pub config_files: Vec<ConfigFileOverride>,
    /// The private registry every image is relocated to.
    pub registry: Option<Registry>,
    /// A retagged-images.txt used before `registry`.
    pub image_map: Option<PathBuf>,
    /// The namespace (default: the bundle's name).
    pub namespace: Option<String>,
    /// NetworkPolicies to render (wins over the bundle's `network-policies:`).
    pub network_policies: Option<NetworkPolicies>,
    /// How to reach published indexes and registries.
    pub tls: TlsOptions,
    /// Pin every image by the digest its source registry serves now.
    pub pin_digests: bool,
    /// Refuse any image not pinned by digest (after pinning).
    pub require_digests: bool,
    /// `NAME=HOST` registries digests are looked up through.
    pub mirrors: Vec<String>,
    /// A source folder wins over an archive of the same name and version with other content
    /// (a warning), instead of the two being an error.
    pub prefer_source: bool,
}

/// The async runtime every operation that talks to a server (registry, cluster) runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build().at("<async runtime>")?)
}

/// The mirror table: registries.conf's entries with the `NAME=HOST` pairs of `--mirror` over
/// them, each bad pair a problem.
pub fn parse_mirrors(given: &[String]) -> Result<crate::registry::mirrors::Mirrors, Error> {
    let mut problems = Problems::default();
    let mut mirrors = BTreeMap::new();
    for mirror in given {
        match mirror.split_once('=') {
            Some((name, host)) if !name.is_empty() && !host.is_empty() => {
                mirrors.insert(name.to_string(), host.to_string());
            }
            _ => problems.push(Problem::new("--mirror", mirror, "give NAME=HOST[:PORT][/PATH]")),
        }
    }
    Ok(crate::registry::mirrors::table(problems.into_result(mirrors)?)?)
}

/// `check`, and the first step of every operation on a bundle: loads and resolves it, then
/// pins and checks image digests as asked. With `verify_key` on a folder `airgap import`
/// unpacked, the folder's signed manifest authenticates the bundle, overlays and charms
/// first, and the resolved charms and image digests after (see [`Unpacked`]).
pub fn resolve(options: &ResolveOptions, warnings: &mut Vec<Problem>) -> Result<Model, Error> {
    let bundle = crate::bundle::bundle_file(&options.bundle);
    let unpacked = match (&options.verify_key, unpacked::imported_folder(&bundle)) {
        (Some(key), Some(folder)) => {
            let key = crate::publish::load_public_key(key)?;
            Some(Unpacked::open(&folder, &key, &bundle, &options.overlays)?)
        }
        (None, Some(folder)) => {
            warnings.extend(unpacked::missing_overlays(&folder, &options.overlays));
            None
        }
        _ => None,
    };
    let inputs = Inputs {
        bundle: BundleInput {
            bundle: options.bundle.clone(),
            overlays: options.overlays.clone(),
            config_files: options.config_files.clone(),
            config: options.config.clone(),
            network_policies: options.network_policies,
        },
        charm_dirs: options.charm_dirs.clone(),
        namespace: options.namespace.clone(),
        registry: options.registry.clone(),
        image_map: options.image_map.clone(),
        verify_key: options.verify_key.clone(),
        verified_charms: unpacked.as_ref().map(Unpacked::verified_charms).unwrap_or_default(),
        tls: options.tls.clone(),
        prefer_source: options.prefer_source,
    };
    let mut model = crate::resolve::load(&inputs, warnings)?;
    if let Some(unpacked) = &unpacked {
        unpacked.check(&model)?;
    }
    pin(&mut model, options)?;
    Ok(model)
}

/// Pins `model`'s images when asked, then checks that every image is pinned when that is
/// required.
fn pin(model: &mut Model, options: &ResolveOptions) -> Result<(), Error> {
    if options.pin_digests {
        let pin_options = crate::resolve::pin::PinOptions {
            mirrors: parse_mirrors(&options.mirrors)?,
            jobs: PIN_JOBS,
        };
        let client = registry_client(&options.tls, PIN_RETRIES)?;
        let pinned = runtime()?
            .block_on(crate::resolve::pin::pin_digests(model, &client, &pin_options))
            .map_err(crate::resolve::ResolveError::from)?;
        tracing::info!("pinned {pinned} image(s) by digest");
    }
    if options.require_digests {
        crate::resolve::pin::require_digests(model).map_err(crate::resolve::ResolveError::from)?;
    }
    Ok(())
}

/// A client for the registries images are pinned in and checked in: `tls`, credentials from
/// the Docker config, transient failures retried `retries` times.
fn registry_client(
    tls: &TlsOptions,
    retries: u32,
) -> Result<crate::registry::client::Client, Error> {
    Ok(crate::registry::client::Client::new(crate::registry::client::ClientOptions {
        tls: tls.clone(),
        retries,
        keychain: crate::registry::auth::Keychain::new(None)?,
    })?)
}

/// `deploy --verify-images KEY.pub...`: every image `model` runs (its target: what the
/// manifests name, after relocation to the deploy's registry) must have, in the registry it
/// will be pulled from, a cosign signature by one of the keys over its digest, and every
/// attestation there for it must verify (see [`cosign::verify_in_registry`]). Every refused
/// image is named with its reasons at once. Nothing is checked without keys.
fn verify_images(
    runtime: &tokio::runtime::Runtime,
    model: &Model,
    options: &ResolveOptions,
    keys: &[PathBuf],
) -> Result<(), Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys = cosign::load_public_keys(keys)?;
    let images: Vec<Reference> =
        model.image_list().images.into_iter().map(|image| image.target).collect();
    let mirrors = parse_mirrors(&options.mirrors)?;
    let client = registry_client(&options.tls, PIN_RETRIES)?;
    runtime.block_on(cosign::verify_in_registry(&client, &images, &mirrors, &keys))?;
    Ok(())
}

/// Transient failures retried per image lookup in preflight (an unreachable registry is
/// only warned about, so it should not hold the deploy up).
const IMAGE_CHECK_RETRIES: u32 = 1;

/// How preflight looks images up in their registries: the TLS settings and credentials
/// `images push` uses (`--ca-file`, `--insecure-http`, certs.d folders, Docker's config.json)
/// and the mirror table (`--mirror` over registries.conf).
pub fn registry_access(
    tls: &TlsOptions,
    mirrors: &[String],
) -> Result<crate::deploy::RegistryAccess, Error> {
    let client = registry_client(tls, IMAGE_CHECK_RETRIES)?;
    Ok(crate::deploy::RegistryAccess {
        client: std::sync::Arc::new(client),
        mirrors: parse_mirrors(mirrors)?,
    })
}

/// A resolved bundle and its rendered manifests.
#[derive(Debug)]
pub struct Rendered {
    /// The resolved model.
    pub model: Model,
    /// Its Kubernetes objects.
    pub manifests: Manifests,
}

/// `render`: resolves the bundle and renders its manifests.
pub fn render(options: &ResolveOptions, warnings: &mut Vec<Problem>) -> Result<Rendered, Error> {
    let model = resolve(options, warnings)?;
    let manifests = crate::render::render(&model)?;
    Ok(Rendered { model, manifests })
}

/// How to deploy a bundle: what to resolve, which cluster, and how to run preflight.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// The bundle and its overrides.
    pub resolve: ResolveOptions,
    /// The cluster.
    pub client: ClientOptions,
    /// Put the `--config` and `--config-file` values of the deployed revision before
    /// `resolve.config` (so those win).
    pub reuse_config: bool,
    /// Preflight's options.
    pub prepare: PrepareOptions,
    /// Cosign public keys (`--verify-images`): before anything touches the cluster, every
    /// image must be signed by one of them in the registry it is pulled from.
    pub verify_images: Vec<PathBuf>,
}

/// A bundle checked against its cluster, ready to diff or apply.
pub struct Preflighted {
    /// The connected cluster.
    pub cluster: Cluster,
    /// The plan, preflight passed.
    pub prepared: Prepared,
}

/// The first half of `deploy` (and all of `deploy --diff` and `--dry-run` but the
/// comparison): resolve and render, check image signatures when asked (any error: nothing
/// touches the cluster), connect, warn
/// about override values the deployed revision had that this deploy changes, preflight.
/// Runs on `runtime`, which the cluster then belongs to.
pub fn preflight(
    runtime: &tokio::runtime::Runtime,
    options: &DeployOptions,
    warnings: &mut Vec<Problem>,
) -> Result<Preflighted, Error> {
    let resolve_options = if options.reuse_config {
        runtime.block_on(with_deployed_overrides(&options.resolve, &options.client))?
    } else {
        options.resolve.clone()
    };
    let rendered = render(&resolve_options, warnings)?;
    verify_images(runtime, &rendered.model, &resolve_options, &options.verify_images)?;
    let plan = DeployPlan::from_model(&rendered.model, &rendered.manifests);
    runtime.block_on(async {
        let cluster = Cluster::connect(&options.client).await?;
        if let Some(deployed) = cluster.deployed_config(&plan.bundle, &plan.namespace).await? {
            warnings.extend(deployed.changed_by(&plan));
        }
        let prepared = cluster.prepare_with(plan, &options.prepare).await?;
        Ok(Preflighted { cluster, prepared })
    })
}

/// `resolve` with the `--config` and `--config-file` values of the deployed revision put
/// before its own `config` (so those win), for `deploy --reuse-config`. Applications no
/// longer in the bundle are left out; nothing is added when nothing is deployed.
async fn with_deployed_overrides(
    resolve: &ResolveOptions,
    client: &ClientOptions,
) -> Result<ResolveOptions, Error> {
    let input = BundleInput { bundle: resolve.bundle.clone(), ..Default::default() };
    // A bundle that does not load is reported by the resolver, with everything else.
    let Ok((bundle, _)) = crate::bundle::Bundle::load_partial(&input) else {
        return Ok(resolve.clone());
    };
    let namespace = resolve.namespace.clone().unwrap_or_else(|| bundle.name.clone());
    let cluster = Cluster::connect(client).await?;
    let mut resolve = resolve.clone();
    if let Some(deployed) = cluster.deployed_config(&bundle.name, &namespace).await? {
        let apps = bundle.applications.keys().cloned().collect();
        let mut config = deployed.reusable(&apps);
        config.append(&mut resolve.config);
        resolve.config = config;
    }
    Ok(resolve)
}

/// What a deploy did.
pub struct Deployed {
    /// The plan as preflight checked it.
    pub prepared: Prepared,
    /// What applying it did.
    pub outcome: Outcome,
}

/// `deploy`, unattended: preflight, then apply (with prune, wait and the lock as `apply`
/// says), reporting progress to `progress`.
pub fn deploy(
    runtime: &tokio::runtime::Runtime,
    options: &DeployOptions,
    apply: &ApplyOptions,
    progress: &dyn Progress,
    warnings: &mut Vec<Problem>,
) -> Result<Deployed, Error> {
    let Preflighted { cluster, prepared } = preflight(runtime, options, warnings)?;
    let outcome = runtime.block_on(cluster.apply(&prepared, apply, progress))?;
    warnings.extend(outcome.warnings.iter().map(|w| Problem::new("deploy", "", w)));
    Ok(Deployed { prepared, outcome })
}

/// `deploy --diff`: preflight, then what applying would change (server-side dry run).
pub fn diff(
    runtime: &tokio::runtime::Runtime,
    options: &DeployOptions,
    prune: bool,
    warnings: &mut Vec<Problem>,
) -> Result<(Prepared, Changes), Error> {
    let Preflighted { cluster, prepared } = preflight(runtime, options, warnings)?;
    let changes = runtime.block_on(cluster.changes(&prepared, prune))?;
    Ok((prepared, changes))
}

/// A deployed bundle: its name and namespace, and the cluster it is in.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The bundle's name.
    pub bundle: String,
    /// Its namespace.
    pub namespace: String,
    /// The cluster.
    pub client: ClientOptions,
}

/// `rollback`: the plan of `revision` (default: the deployed one before the current one),
/// checked by preflight, and the revision it came from; applying it is the caller's next step.
pub async fn rollback(
    target: &Target,
    revision: Option<u32>,
    prepare: &PrepareOptions,
) -> Result<(Preflighted, u32), Error> {
    let cluster = Cluster::connect(&target.client).await?;
    let (plan, from) = cluster.rollback_plan(&target.bundle, &target.namespace, revision).await?;
    let prepared = cluster.prepare_with(plan, prepare).await?;
    Ok((Preflighted { cluster, prepared }, from))
}

/// `status`: the bundle's applications, versions, images and readiness.
pub async fn status(target: &Target) -> Result<BundleStatus, Error> {
    let cluster = Cluster::connect(&target.client).await?;
    Ok(cluster.status(&target.bundle, &target.namespace).await?)
}

/// `remove`: deletes the bundle's objects and records, keeping data unless told otherwise.
pub async fn remove(
    target: &Target,
    options: &RemoveOptions,
    progress: &dyn Progress,
) -> Result<Removal, Error> {
    let cluster = Cluster::connect(&target.client).await?;
    Ok(cluster.remove(&target.bundle, &target.namespace, options, progress).await?)
}

/// `rbac`: the roles the bundle's plan needs; with `discover`, resource names as that
/// cluster's discovery reports them.
pub fn roles(
    plan: &DeployPlan,
    discover: Option<&ClientOptions>,
) -> Result<crate::deploy::Roles, Error> {
    let Some(client) = discover else { return Ok(crate::deploy::roles(plan)?) };
    runtime()?.block_on(async {
        let cluster = Cluster::connect(client).await?;
        Ok(cluster.discovered_roles(plan).await?)
    })
}

/// `config`: the deployed revision's configuration with where each value came from; only
/// application `app`'s when given.
pub async fn config(target: &Target, app: Option<&str>) -> Result<DeployedConfig, Error> {
    let cluster = Cluster::connect(&target.client).await?;
    let Some(mut config) = cluster.deployed_config(&target.bundle, &target.namespace).await? else {
        return Err(DeployError::NotDeployed {
            bundle: target.bundle.clone(),
            namespace: target.namespace.clone(),
        }
        .into());
    };
    if let Some(app) = app {
        if !config.apps.contains_key(app) {
            let known: Vec<&str> = config.apps.keys().map(String::as_str).collect();
            return Err(Problem::new(
                format!("revision {}", config.revision),
                app,
                format!("bundle {} has no application named {app:?}", target.bundle),
            )
            .hint(format!("applications: {}", known.join(", ")))
            .into());
        }
        config.apps.retain(|name, _| name == app);
    }
    Ok(config)
}

/// `restart`: a rollout restart of application `app`'s workloads, stamped `restarted_at`
/// (RFC 3339); with `wait`, until the new pods are ready. Returns the workloads restarted
/// and the failing pods of earlier StatefulSet revisions replaced on the way.
pub async fn restart(
    target: &Target,
    app: &str,
    restarted_at: &str,
    wait: Option<&WaitOptions>,
    progress: &dyn Progress,
) -> Result<Restarted, Error> {
    let cluster = Cluster::connect(&target.client).await?;
    Ok(cluster
        .restart(&target.bundle, &target.namespace, app, restarted_at, wait, progress)
        .await?)
}

/// `check`: resolves the bundle and renders it (a template error fails the check too; a
/// bundle of operator charms is checked up to what Juju would be given), and summarises it.
pub fn check(
    options: &ResolveOptions,
    warnings: &mut Vec<Problem>,
) -> Result<crate::resolve::plan::Plan, Error> {
    let model = resolve(options, warnings)?;
    let mut plan = crate::resolve::plan::Plan::of(&model);
    if !crate::juju::has_operators(&model) {
        let manifests = crate::render::render(&model)?;
        plan.network_policies = crate::render::network_policy_summary(&manifests.objects);
    }
    Ok(plan)
}
