//! Bundle + charm repository → one resolved [`Model`]: exact charm versions, type-checked
//! config with provenance, relations with their data, and every image source → target.
//! Every problem in the input is reported at once, each naming file, application and key.

mod config;
mod config_images;
pub mod context;
mod lock;
pub mod model;
pub mod pin;
pub mod plan;
mod relations;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use lock::{Lock, LockedApp, LockedImage};
pub use model::{
    Application, ConfigImages, Image, ImageList, ImageUse, ImageUser, Model, Need, Relation,
    RelationData, Setting, Source,
};

use crate::bundle::{Bundle, BundleError, BundleInput, CharmRef};
use crate::charm::Charm;
use crate::diag::{Problem, Problems};
use crate::images::{ImageMap, Reference, Registry};
use crate::repo::Repository;
use crate::transport::TlsOptions;

/// Errors of resolving a bundle.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The bundle, its overlays or overrides could not be loaded.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle does not resolve against the charms; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] Problems),
}

/// Everything a command gives the resolver.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The bundle with overlays and overrides.
    pub bundle: BundleInput,
    /// Charm folders; empty means the defaults (see [`default_charm_dirs`]).
    pub charm_dirs: Vec<PathBuf>,
    /// Namespace to render for; `None` means the bundle's name.
    pub namespace: Option<String>,
    /// Private registry to relocate images to.
    pub registry: Option<Registry>,
    /// A `retagged-images.txt`, consulted before `registry`.
    pub image_map: Option<PathBuf>,
    /// A public key: only charms signed with it are accepted.
    pub verify_key: Option<PathBuf>,
    /// SHA-256s of charm archives already authenticated by a manifest signed with that key
    /// (an imported air-gap archive's): accepted without a signature of their own.
    pub verified_charms: BTreeSet<String>,
    /// How to reach published indexes given as URLs.
    pub tls: TlsOptions,
    /// `--prefer-source`: a source folder wins over an archive of the same name and version
    /// with other content (a warning), instead of the two being an error.
    pub prefer_source: bool,
}

/// The default charm folders: `charms/` and `dist/` in the bundle's folder or, failing that,
/// in the nearest folder above it that has either (so `bundles/full/bundle.yaml` finds the
/// repository's top-level `charms/`).
pub fn default_charm_dirs(bundle_file: &Path) -> Vec<PathBuf> {
    let start =
        bundle_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    for dir in start.ancestors() {
        let found: Vec<PathBuf> =
            ["charms", "dist"].iter().map(|d| dir.join(d)).filter(|d| d.is_dir()).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// Loads the bundle and its layers, scans the charm folders and resolves. What the input
/// sets that charmer accepts but does not act on is added to `warnings` (also when
/// resolving fails), for the caller to show.
pub fn load(inputs: &Inputs, warnings: &mut Vec<Problem>) -> Result<Model, ResolveError> {
    let (bundle, mut problems) = Bundle::load_partial(&inputs.bundle)?;
    warnings.extend(bundle.warnings.iter().cloned());
    let dirs = if inputs.charm_dirs.is_empty() {
        default_charm_dirs(&bundle.file)
    } else {
        inputs.charm_dirs.clone()
    };
    let verify_key = inputs
        .verify_key
        .as_deref()
        .map(crate::publish::load_public_key)
        .transpose()
        .unwrap_or_else(|e| {
            problems.extend(e.into_problems());
            None
        });
    if inputs.verify_key.is_some() && verify_key.is_none() {
        // Resolving unverified charms would only add noise to the key's problem.
        return Err(problems.into());
    }
    let (mut repo, more) = Repository::open(&dirs, verify_key, &inputs.tls);
    warnings.extend(repo.take_warnings());
    if !more.is_empty() {
        // A source that failed to open (TLS, checksum, signature) would make every charm it
        // holds "not found": say the cause once, not once per application.
        problems.extend(more);
        return Err(problems.into());
    }
    repo.trust(inputs.verified_charms.clone());
    repo.prefer_source(inputs.prefer_source);
    let image_map = match inputs.image_map.as_deref().map(read_image_map) {
        Some(Ok(map)) => Some(map),
        Some(Err(p)) => {
            problems.extend(p);
            None
        }
        None => None,
    };
    let namespace = inputs.namespace.clone().unwrap_or_else(|| bundle.name.clone());
    let resolved =
        resolve(&bundle, &repo, &namespace, inputs.registry.as_ref(), image_map.as_ref());
    warnings.extend(repo.take_warnings());
    match resolved {
        Ok(model) => {
            warnings.extend(config_images::warnings(&model));
            for app in model.applications.values() {
                warnings.extend(app.charm.warnings());
                warnings.extend(config::ignored(app));
                // Only Juju acts on constraints (the deploy script of operator charms).
                let spec = bundle.applications.get(&app.name);
                if let Some(spec) = spec.filter(|s| s.constraints.is_some()) {
                    if app.charm.kind() == crate::charm::Kind::Manifests {
                        warnings.push(Problem::new(
                            spec.file.display().to_string(),
                            format!("applications.{}.constraints", app.name),
                            format!("ignored: charm {} is deployed by charmer, which applies no Juju constraints; set requests and limits with the charm's options", app.charm.name()),
                        ));
                    }
                }
            }
            problems.into_result(model).map_err(ResolveError::from)
        }
        Err(ResolveError::Invalid(more)) => {
            problems.extend(more);
            Err(ResolveError::Invalid(problems))
        }
        Err(e) => Err(e),
    }
}

fn read_image_map(path: &Path) -> Result<ImageMap, Problems> {
    let label = path.display().to_string();
    let text =
        crate::contract::read_bounded_text(path, crate::contract::MAX_TEXT_BYTES, "an image map")
            .map_err(|e| Problem::new(&label, "", format!("cannot read: {e}")))?;
    ImageMap::parse(&label, &text).map_err(Problems)
}

/// Resolves a loaded bundle against a repository.
pub fn resolve(
    bundle: &Bundle,
    repo: &Repository,
    namespace: &str,
    registry: Option<&Registry>,
    image_map: Option<&ImageMap>,
) -> Result<Model, ResolveError> {
    let mut problems = Problems::default();
    if !crate::kube_rules::is_dns_label(namespace) {
        problems.push(
            Problem::new("--namespace", "", format!("{namespace:?} is not a valid namespace"))
                .hint("use at most 63 lowercase letters, digits and '-'"),
        );
    }
    let mut applications = BTreeMap::new();
    // Reading and validating charms is most of a large bundle's resolve time: do it on every core.
    let specs: Vec<(&String, &crate::bundle::AppSpec)> = bundle.applications.iter().collect();
    let charms = crate::parallel::map(&specs, |(name, spec)| {
        let file = spec.file.display().to_string();
        let key = format!("applications.{name}.charm");
        match &spec.charm {
            CharmRef::Name(charm) => {
                let wanted =
                    crate::repo::Wanted { version: spec.version.as_ref(), revision: spec.revision };
                repo.find(charm, wanted).map_err(|p| Problem { file, key, ..p })
            }
            CharmRef::Path(path) => {
                repo.load(path).map_err(|e| Problem::new(file, key, e.to_string()))
            }
        }
    });
    for ((name, spec), charm) in specs.into_iter().zip(charms) {
        let file = spec.file.display().to_string();
        let key = format!("applications.{name}");
        let charm: Arc<Charm> = match charm {
            Ok(c) => c,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        if let (CharmRef::Path(_), Some(req)) = (&spec.charm, &spec.version) {
            if !charm.version.as_ref().is_some_and(|v| req.matches(v)) {
                problems.push(Problem::new(
                    &file,
                    format!("{key}.version"),
                    format!("{} {} does not satisfy {req}", charm.name(), charm.version_label()),
                ));
            }
        }
        if let (CharmRef::Path(_), Some(revision)) = (&spec.charm, spec.revision) {
            if charm.revision != Some(revision) {
                problems.push(
                    Problem::new(
                        &file,
                        format!("{key}.revision"),
                        format!(
                            "{} is {}, not revision {revision}",
                            charm.origin.path().display(),
                            charm.version_label()
                        ),
                    )
                    .hint(format!("point charm: at {}_r{revision}.charm", charm.name())),
                );
            }
        }
        if let Some(max) = charm.metadata.max_scale.filter(|max| spec.scale > *max) {
            problems.push(
                Problem::new(
                    &file,
                    format!("{key}.scale"),
                    format!(
                        "charm {} runs at most {max} instance(s), not {}",
                        charm.name(),
                        spec.scale
                    ),
                )
                .hint(format!("set scale: {max} (its metadata.yaml says max-scale: {max})")),
            );
        }
        let config = config::effective(name, spec, &charm, &mut problems);
        let images = resolve_images(name, spec, &charm, registry, image_map, &mut problems);
        for (i, secret) in spec.required_secrets.iter().enumerate() {
            if let Some(why) = crate::kube_rules::dns_subdomain_problem(secret) {
                problems.push(
                    Problem::new(&file, format!("{key}.required-secrets[{i}]"), why)
                        .hint("list the names of Secrets (kubectl get secrets), e.g. mlflow-db"),
                );
            }
        }
        let config_images =
            config_images::resolve(name, &charm, &config, (registry, image_map), &mut problems);
        let mut required_secrets: Vec<String> = spec.required_secrets.clone();
        // An option that does not take effect names no Secret that must exist.
        let inactive = config::inactive(&charm, &config);
        for (option, setting) in config.iter().filter(|(o, _)| !inactive.contains(o)) {
            let is_ref = charm.config.options.get(option).is_some_and(|o| o.secret_ref);
            if let (true, crate::charm::ConfigValue::String(s)) = (is_ref, &setting.value) {
                if !s.is_empty() {
                    required_secrets.push(s.clone());
                }
            }
        }
        required_secrets.sort();
        required_secrets.dedup();
        applications.insert(
            name.clone(),
            Application {
                name: name.clone(),
                charm,
                scale: spec.scale,
                trust: spec.trust,
                channel: spec.channel.clone(),
                constraints: spec.constraints.clone(),
                config,
                images,
                config_images,
                relation_data: BTreeMap::new(),
                required_secrets,
            },
        );
    }
    let relations = relations::resolve(bundle, &applications, &mut problems);
    relations::check_required(bundle, &applications, &relations, &mut problems);
    let mut model = Model {
        name: bundle.name.clone(),
        bundle_file: bundle.file.clone(),
        namespace: namespace.to_string(),
        registry: registry.cloned(),
        applications,
        relations,
        network_policies: bundle.network_policies,
    };
    relations::publish_data(&mut model, &mut problems);
    problems.into_result(model).map_err(ResolveError::from)
}

fn resolve_images(
    app: &str,
    spec: &crate::bundle::AppSpec,
    charm: &Charm,
    registry: Option<&Registry>,
    image_map: Option<&ImageMap>,
    problems: &mut Problems,
) -> BTreeMap<String, Image> {
    let file = spec.file.display().to_string();
    let mut images = BTreeMap::new();
    for resource in spec.resources.keys() {
        if !charm.metadata.resources.contains_key(resource) {
            problems.push(Problem::new(
                &file,
                format!("applications.{app}.resources.{resource}"),
                format!("charm {} has no resource {resource:?}", charm.name()),
            ));
        }
    }
    for (resource, upstream) in charm.metadata.images() {
        let (text, origin) = match spec.resources.get(resource) {
            Some(r) => (r.as_str(), format!("applications.{app}.resources.{resource}")),
            None => (
                upstream,
                format!(
                    "{}/metadata.yaml: resources.{resource}.upstream-source",
                    charm.origin.path().display()
                ),
            ),
        };
        let source: Reference = match text.parse() {
            Ok(r) => r,
            Err(e) => {
                let hint = if text.bytes().all(|b| b.is_ascii_digit()) {
                    "charmer needs an image reference, not a Charmhub revision"
                } else {
                    "write an image reference such as docker.io/library/nginx:1.27"
                };
                problems.push(Problem::new(&file, origin, e.to_string()).hint(hint));
                continue;
            }
        };
        if let Some(image) = relocated(source, registry, image_map, &file, origin, problems) {
            images.insert(resource.clone(), image);
        }
    }
    images
}

/// `source` with its target: from the image map, else relocated to `registry`, else itself.
/// Relocation asked for with the map alone and an image it lacks is a problem at
/// `file`/`key` (the image would be pulled from its public registry).
fn relocated(
    source: Reference,
    registry: Option<&Registry>,
    image_map: Option<&ImageMap>,
    file: &str,
    key: String,
    problems: &mut Problems,
) -> Option<Image> {
    let target = match (image_map.and_then(|m| m.lookup(&source)), registry) {
        // The map and the registry disagree: the map's line is the cause, not a template.
        (Some(mapped), Some(r)) if !mapped.is_in(r) => {
            problems.push(
                Problem::new(file, key, format!("the --image-map sends image {source} to {mapped}, which is not in the --registry {r}"))
                    .hint("make them agree: retag into the --registry (charmer images push writes such a map), or leave out --registry to use the map as it is"),
            );
            return None;
        }
        (Some(mapped), _) => mapped,
        (None, Some(r)) => source.relocate(r),
        (None, None) if image_map.is_some() => {
            problems.push(
                Problem::new(file, key, format!("image {source} is not in the --image-map"))
                    .hint("add its retagged line to the image map, or give --registry for the images the map lacks"),
            );
            return None;
        }
        (None, None) => source.clone(),
    };
    Some(Image { source, target })
}

// Last in the file: tests/it/layering.rs reads only what comes before the first cfg(test).
#[cfg(test)]
pub(crate) mod testing;
