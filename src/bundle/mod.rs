//! `bundle.yaml`: Juju's bundle format, overlays, and command-line config overrides, merged
//! into one [`Bundle`] in a documented order:
//! charm defaults < bundle < overlays (in order) < `--config-file` < `--config`.
//!
//! This module knows nothing of charm contents: option values stay untyped here and are
//! type-checked by the resolver against each charm's `config.yaml`.

mod overlay;
mod overrides;
mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use overrides::{ConfigFileOverride, ConfigOverride};

use crate::diag::{Problem, Problems};

/// Errors of loading a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle, an overlay or an override is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] Problems),
}

/// Where an option value came from, in merge order (later wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "file")]
pub enum Source {
    /// The charm's `config.yaml` default.
    Default,
    /// The bundle file.
    Bundle(PathBuf),
    /// An overlay file.
    Overlay(PathBuf),
    /// A `--config-file APP=FILE`.
    ConfigFile(PathBuf),
    /// A `--config APP.KEY=VALUE`.
    CommandLine,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("charm default"),
            Source::Bundle(p) => write!(f, "bundle {}", p.display()),
            Source::Overlay(p) => write!(f, "overlay {}", p.display()),
            Source::ConfigFile(p) => write!(f, "config file {}", p.display()),
            Source::CommandLine => f.write_str("--config"),
        }
    }
}

impl Source {
    /// The file to name in a problem about this value.
    pub fn file_label(&self) -> String {
        match self {
            Source::Default => "config.yaml".to_string(),
            Source::Bundle(p) | Source::Overlay(p) | Source::ConfigFile(p) => {
                p.display().to_string()
            }
            Source::CommandLine => "--config".to_string(),
        }
    }
}

/// An option value as given, before type-checking.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A YAML value from a bundle, overlay or values file (typed as YAML typed it).
    Yaml(serde_yaml::Value),
    /// Text from `--config`, parsed by the option's type the way Juju parses CLI values.
    Text(String),
}

/// One option setting and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSetting {
    /// The value.
    pub value: RawValue,
    /// Its source.
    pub source: Source,
}

/// One application of a bundle after overlays and overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    /// A charm name, or a local path (starting with `.` or `/`) resolved against the file
    /// that set it.
    pub charm: CharmRef,
    /// charmer's `version:` semver requirement.
    pub version: Option<semver::VersionReq>,
    /// Juju's `channel:`: where the charm was downloaded from. Recorded in the lock and the
    /// `juju deploy` script; it selects nothing offline (archives do not say their channel).
    pub channel: Option<String>,
    /// Juju's `revision:`: selects the archive `<charm>_r<revision>.charm`.
    pub revision: Option<u64>,
    /// Juju's `constraints:` (such as `mem=2G`), passed on to `juju deploy`.
    pub constraints: Option<String>,
    /// Units wanted (`scale`, alias `num_units`); 1 when not given.
    pub scale: u32,
    /// Juju's `trust:`.
    pub trust: bool,
    /// Option settings by name; the last writer in merge order wins.
    pub options: BTreeMap<String, OptionSetting>,
    /// Resource overrides: resource name → image reference (a Charmhub revision number is
    /// kept as text and rejected by the resolver for `oci-image` resources).
    pub resources: BTreeMap<String, String>,
    /// charmer's `required-secrets:`: Secrets that must exist before deploy.
    pub required_secrets: Vec<String>,
    /// The file that defined the application (for problems).
    pub file: PathBuf,
}

impl AppSpec {
    /// An application of one unit running `charm`, defined in `file`, with nothing else set.
    pub fn new(charm: CharmRef, file: PathBuf) -> AppSpec {
        AppSpec {
            charm,
            version: None,
            channel: None,
            revision: None,
            constraints: None,
            scale: 1,
            trust: false,
            options: BTreeMap::new(),
            resources: BTreeMap::new(),
            required_secrets: Vec::new(),
            file,
        }
    }
}

/// How an application names its charm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharmRef {
    /// A name looked up in the charm repository.
    Name(String),
    /// A local folder or archive (absolute, already joined to the bundle's folder).
    Path(PathBuf),
}

/// One end of a relation as written: `app` or `app:endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RelationEnd {
    /// Application name.
    pub app: String,
    /// Endpoint name, when given.
    pub endpoint: Option<String>,
}

impl std::fmt::Display for RelationEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.endpoint {
            Some(e) => write!(f, "{}:{e}", self.app),
            None => f.write_str(&self.app),
        }
    }
}

/// A relation as written, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationSpec {
    /// The two ends.
    pub ends: [RelationEnd; 2],
    /// The file and its position in `relations:` (for problems).
    pub file: PathBuf,
    /// Index in that file's `relations:` list.
    pub index: usize,
}

/// Which NetworkPolicies charmer renders (the bundle's `network-policies:` key, an overlay's,
/// or a command's `--network-policies`; the last one set wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPolicies {
    /// None: traffic between pods is whatever the cluster allows (the default, so a bundle
    /// deploys unchanged into clusters whose monitoring or mesh reaches its pods).
    #[default]
    None,
    /// Each application admits only the applications related to it, on the ports its
    /// providing endpoints publish, and outside traffic on its exposed ports.
    Relations,
}

impl std::str::FromStr for NetworkPolicies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(NetworkPolicies::None),
            "relations" => Ok(NetworkPolicies::Relations),
            other => Err(format!("{other:?} is not a network-policies mode (none, relations)")),
        }
    }
}

impl std::fmt::Display for NetworkPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetworkPolicies::None => "none",
            NetworkPolicies::Relations => "relations",
        })
    }
}

/// A bundle after overlays and overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The bundle file.
    pub file: PathBuf,
    /// The bundle's `name:`.
    pub name: String,
    /// Applications by name.
    pub applications: BTreeMap<String, AppSpec>,
    /// Relations in file order (bundle first, then each overlay's).
    pub relations: Vec<RelationSpec>,
    /// `network-policies:` after overlays and the command's flag.
    pub network_policies: NetworkPolicies,
    /// Every file read (bundle, overlays, included files, config files), for airgap export.
    pub files_read: Vec<PathBuf>,
    /// Juju keys the files set that charmer does not act on: shown as warnings.
    pub warnings: Vec<Problem>,
}

/// What to load: the bundle and everything merged on top of it.
#[derive(Debug, Clone, Default)]
pub struct BundleInput {
    /// A `bundle.yaml` or a folder holding one.
    pub bundle: PathBuf,
    /// Overlays, applied in order.
    pub overlays: Vec<PathBuf>,
    /// `--config-file APP=FILE`, applied in order.
    pub config_files: Vec<ConfigFileOverride>,
    /// `--config APP.KEY=VALUE`, applied in order.
    pub config: Vec<ConfigOverride>,
    /// `--network-policies`: wins over the bundle's and overlays' `network-policies:`.
    pub network_policies: Option<NetworkPolicies>,
}

/// An application's `version:` as a semver requirement. A bare full version is that version
/// exactly (`1.0.0` is `=1.0.0`, as Helm and npm read it, not Cargo's `^1.0.0`); ranges need an
/// operator (`^1.2`, `~1.2.3`, `>=1.0, <2`, `*`). A bare partial version (`1.0`) or a wildcard
/// (`1.x`, `1.*`) is refused: whether it means "exactly" or "any compatible" is a guess.
/// The error is the message after the quoted value, and a hint.
pub fn version_requirement(text: &str) -> Result<semver::VersionReq, (String, String)> {
    const HINT: &str = "write \"=1.2.0\" or \"1.2.0\" for exactly that version, \"^1.2\" for any \
                        compatible one, \">=1.0, <2\" for a range";
    let mut comparators = Vec::new();
    for part in text.split(',').map(str::trim) {
        let wildcard = part != "*" && part.contains(['x', 'X', '*']);
        let bare = part.starts_with(|c: char| c.is_ascii_digit());
        if wildcard {
            return Err((
                "has a wildcard, which charmer does not guess the meaning of".into(),
                HINT.into(),
            ));
        }
        if bare {
            let release = part.split(['-', '+']).next().unwrap_or(part);
            if release.split('.').count() != 3 {
                return Err((
                    "is a partial version: exactly which, or any compatible one?".into(),
                    HINT.into(),
                ));
            }
            comparators.push(format!("={part}"));
        } else {
            comparators.push(part.to_string());
        }
    }
    semver::VersionReq::parse(&comparators.join(", "))
        .map_err(|e| (format!("is not a semver requirement: {e}"), HINT.into()))
}

/// The bundle file for a path that is a bundle file or a folder holding `bundle.yaml`.
pub fn bundle_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("bundle.yaml")
    } else {
        path.to_path_buf()
    }
}

impl Bundle {
    /// Loads the bundle, applies every overlay and override, and reports every problem
    /// found (in any of the files) at once.
    pub fn load(input: &BundleInput) -> Result<Bundle, BundleError> {
        let (bundle, problems) = Bundle::load_partial(input)?;
        problems.into_result(bundle).map_err(BundleError::from)
    }

    /// Like [`Bundle::load`], but returns what could be loaded together with the problems
    /// found, so the resolver can add its own and report everything at once. Fails only when
    /// the bundle file itself cannot be read or parsed.
    pub fn load_partial(input: &BundleInput) -> Result<(Bundle, Problems), BundleError> {
        let file = bundle_file(&input.bundle);
        let mut problems = Problems::default();
        let mut base = raw::read_file(&file, raw::Kind::Bundle)?;
        let mut bundle = Bundle {
            name: base.name.clone().unwrap_or_default(),
            file: file.clone(),
            applications: BTreeMap::new(),
            relations: Vec::new(),
            network_policies: NetworkPolicies::default(),
            files_read: vec![file.clone()],
            warnings: Vec::new(),
        };
        if bundle.name.is_empty() {
            problems.push(
                Problem::new(file.display().to_string(), "name", "missing")
                    .hint("give the bundle a name: name: my-bundle"),
            );
        } else if !crate::contract::is_valid_name(&bundle.name) {
            problems.push(
                Problem::new(
                    file.display().to_string(),
                    "name",
                    format!("{:?} is not a valid name", bundle.name),
                )
                .hint("use lowercase letters, digits and '-'"),
            );
        }
        bundle.warnings.extend(std::mem::take(&mut base.warnings));
        overlay::apply(&mut bundle, base, &Source::Bundle(file.clone()), &mut problems);
        for path in &input.overlays {
            match raw::read_file(path, raw::Kind::Overlay) {
                Ok(mut layer) => {
                    bundle.files_read.push(path.clone());
                    bundle.warnings.extend(std::mem::take(&mut layer.warnings));
                    overlay::apply(
                        &mut bundle,
                        layer,
                        &Source::Overlay(path.clone()),
                        &mut problems,
                    );
                }
                Err(BundleError::Invalid(p)) => problems.extend(p),
            }
        }
        if bundle.applications.is_empty() && !input.overlays.is_empty() {
            // Deploying it would prune every object of the bundle: that is `remove`, which asks
            // first and keeps the data, not a deploy.
            let overlays: Vec<String> =
                input.overlays.iter().map(|o| o.display().to_string()).collect();
            problems.push(
                Problem::new(
                    file.display().to_string(),
                    "applications",
                    format!("the overlays ({}) remove every application", overlays.join(", ")),
                )
                .hint(format!(
                    "to take the bundle out of a cluster, use `charmer remove {}`; an overlay \
                     removes one application with `APP: null`",
                    bundle.name
                )),
            );
        }
        for o in &input.config_files {
            bundle.files_read.push(o.file.clone());
            overrides::apply_file(&mut bundle, o, &mut problems);
        }
        for o in &input.config {
            overrides::apply_one(&mut bundle, o, &mut problems);
        }
        if let Some(mode) = input.network_policies {
            bundle.network_policies = mode;
        }
        bundle.files_read.sort();
        bundle.files_read.dedup();
        Ok((bundle, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::version_requirement;

    #[test]
    fn a_bare_full_version_is_exact_and_ranges_need_an_operator() {
        let req = version_requirement("1.0.0").unwrap();
        assert!(req.matches(&"1.0.0".parse().unwrap()));
        assert!(!req.matches(&"1.1.0".parse().unwrap()), "not Cargo's caret rule");
        let pre = version_requirement("2.0.0-rc.1").unwrap();
        assert!(pre.matches(&"2.0.0-rc.1".parse().unwrap()));
        let caret = version_requirement("^1.0").unwrap();
        assert!(caret.matches(&"1.4.2".parse().unwrap()));
        let range = version_requirement(">=1.0, <2").unwrap();
        assert!(
            range.matches(&"1.9.0".parse().unwrap()) && !range.matches(&"2.0.0".parse().unwrap())
        );
        assert!(version_requirement("*").unwrap().matches(&"7.0.0".parse().unwrap()));
    }

    #[test]
    fn partial_versions_and_wildcards_are_refused_with_a_hint() {
        for text in ["1.0", "1", "1.x", "1.*", "^1.x", ">=1.0, 2.X"] {
            let (message, hint) = version_requirement(text).unwrap_err();
            assert!(
                message.contains("partial") || message.contains("wildcard"),
                "{text}: {message}"
            );
            assert!(hint.contains("\"^1.2\""), "{hint}");
        }
        assert!(version_requirement("latest").unwrap_err().0.contains("not a semver requirement"));
    }
}
