//! The `.charm` format: a charm's files, its metadata, typed config and version, loaded from
//! a source folder or an (untrusted) archive, and packed reproducibly.
//!
//! A charm is held in memory as its files plus the parsed views of them; charms are small
//! (templates and YAML), and holding the bytes lets packing, hashing and rendering work on
//! exactly what was validated.

pub mod archive;
pub mod charmcraft;
pub mod config;
pub mod metadata;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::Serialize;

pub use archive::Limits;
pub use config::{
    ConfigSchema, ConfigValue, Constraints, CrossProblem, Format, OptionSpec, OptionType,
};
pub use metadata::{Endpoint, Metadata, Role};

use crate::diag::{Problem, Problems};
use crate::images::Reference;
use crate::io_error::IoResultExt;

/// Reads a file that is a charm archive or travels beside charms (an index, checksums, an
/// air-gap folder's members) whole, refusing one larger than the largest archive
/// [`Limits::default`] allows before reading it.
pub fn read_untrusted(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::contract::read_bounded(
        path,
        Limits::default().max_archive_bytes(),
        "a charm or a file beside charms",
    )
}

/// Errors of loading, reading or packing a charm.
#[derive(Debug, thiserror::Error)]
pub enum CharmError {
    /// The charm's content is invalid; every problem found is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::io_error::IoError),
}

impl From<Problems> for CharmError {
    fn from(p: Problems) -> Self {
        CharmError::Invalid(p)
    }
}

impl From<Problem> for CharmError {
    fn from(p: Problem) -> Self {
        CharmError::Invalid(p.into())
    }
}

/// One file of a charm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharmFile {
    /// The content.
    pub data: Vec<u8>,
    /// Stored with mode 0755 instead of 0644.
    pub executable: bool,
}

/// Where a charm was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A source folder.
    Dir(PathBuf),
    /// A `.charm` archive, with the SHA-256 of its bytes.
    Archive {
        /// The archive file.
        path: PathBuf,
        /// Hex SHA-256 of the archive.
        sha256: String,
    },
}

impl Origin {
    /// The path of the folder or archive.
    pub fn path(&self) -> &Path {
        match self {
            Origin::Dir(p) | Origin::Archive { path: p, .. } => p,
        }
    }
}

/// What runs a charm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// charmer's own: Kubernetes manifest templates under `templates/`, rendered and deployed
    /// by charmer. Needs a semver `version` file.
    Manifests,
    /// A Juju operator: charm code (`dispatch`, `hooks/`, `src/charm.py`) and no
    /// `templates/`. Juju runs it; charmer inspects, carries and publishes it, and writes the
    /// `juju deploy` lines for it. Its identity is name + revision + SHA-256; a `version`
    /// file is optional and need not be semver.
    Operator,
}

/// A validated charm.
#[derive(Debug, Clone)]
pub struct Charm {
    /// `metadata.yaml`.
    pub metadata: Metadata,
    /// `config.yaml` (empty when the charm has none).
    pub config: ConfigSchema,
    /// The semver of the `version` file; always set for [`Kind::Manifests`] charms, `None`
    /// for an operator charm whose `version` file is missing or not semver.
    pub version: Option<Version>,
    /// The `version` file's first line as written, when it is not semver (Charmhub charms
    /// carry a git description such as `7b0251b`).
    pub version_text: Option<String>,
    /// The Charmhub revision, from a `<name>_r<revision>.charm` file name.
    pub revision: Option<u64>,
    /// Every file by its path inside the charm (`/`-separated, sorted).
    pub files: BTreeMap<String, CharmFile>,
    /// Where it came from.
    pub origin: Origin,
    /// Warnings found while loading (a charmcraft source's parts charmer does not build).
    notes: Vec<Problem>,
    /// The packed archive's SHA-256, computed on first use (packing is the costly part).
    sha256: std::sync::OnceLock<String>,
}

impl Charm {
    /// The charm's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Loads a charm from a source folder or a `.charm` archive, whichever `path` is.
    pub fn load(path: &Path) -> Result<Charm, CharmError> {
        if path.is_dir() {
            Charm::from_dir(path)
        } else {
            Charm::from_archive(path, &Limits::default())
        }
    }

    /// Loads a charm source folder. Hidden files and folders (`.git`, `.charmignore`...) and
    /// `.charm` archives at its root (earlier packs) are left out; symlinks are followed when
    /// they stay inside the folder, as charmcraft does.
    ///
    /// A folder holding `charmcraft.yaml` is completed first as `charmcraft pack` would
    /// (see [`charmcraft`]): `manifest.yaml`, and the unified form's `metadata.yaml`,
    /// `config.yaml`, `actions.yaml` and `dispatch`.
    pub fn from_dir(dir: &Path) -> Result<Charm, CharmError> {
        let mut files = archive::read_dir(dir, &Limits::default())?;
        let notes = charmcraft::complete(&dir.display().to_string(), &mut files)?;
        let mut charm = Charm::from_files(files, Origin::Dir(dir.to_path_buf()))?;
        charm.notes = notes;
        Ok(charm)
    }

    /// Reads an untrusted `.charm` archive: every safety check of [`archive::read_zip`], then
    /// the name in `metadata.yaml` (and the version, when the file name carries one) must
    /// match the file name.
    pub fn from_archive(path: &Path, limits: &Limits) -> Result<Charm, CharmError> {
        let bytes =
            crate::contract::read_bounded(path, limits.max_archive_bytes(), "a charm archive")
                .at(path)?;
        Charm::from_archive_bytes(path, &bytes, limits)
    }

    /// Reads an untrusted `.charm` archive already in memory, with every check of
    /// [`Charm::from_archive`]; `path` is where the bytes came from (a file or a URL).
    pub fn from_archive_bytes(
        path: &Path,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Charm, CharmError> {
        let label = path.display().to_string();
        let files = archive::read_zip(&label, bytes, limits)?;
        let sha256 = crate::digest::sha256_hex(bytes);
        let mut charm =
            Charm::from_files(files, Origin::Archive { path: path.to_path_buf(), sha256 })?;
        charm.revision = charm.check_file_name(path)?;
        Ok(charm)
    }

    /// Validates a charm's files: `metadata.yaml` (required), `config.yaml`, `manifest.yaml`
    /// (required when containers are declared) and `version` (semver; required for
    /// [`Kind::Manifests`] charms, optional and free text for operators).
    pub fn from_files(
        files: BTreeMap<String, CharmFile>,
        origin: Origin,
    ) -> Result<Charm, CharmError> {
        let root = origin.path().display().to_string();
        let at = |member: &str| format!("{root}/{member}");
        let mut problems = Problems::default();
        let text = |name: &str, problems: &mut Problems| -> Option<String> {
            let file = files.get(name)?;
            match String::from_utf8(file.data.clone()) {
                Ok(t) => Some(t),
                Err(_) => {
                    problems.push(Problem::new(at(name), "", "is not UTF-8 text"));
                    None
                }
            }
        };
        let metadata = match text("metadata.yaml", &mut problems) {
            Some(t) => {
                Metadata::parse(&at("metadata.yaml"), &t).map_err(|p| problems.extend(p)).ok()
            }
            None => {
                if !files.contains_key("metadata.yaml") {
                    problems.push(
                        Problem::new(&root, "metadata.yaml", "missing")
                            .hint("every charm needs a metadata.yaml at its root"),
                    );
                }
                None
            }
        };
        let config = match text("config.yaml", &mut problems) {
            Some(t) => {
                ConfigSchema::parse(&at("config.yaml"), &t).map_err(|p| problems.extend(p)).ok()
            }
            None => Some(ConfigSchema::default()),
        };
        if let Some(t) = text("manifest.yaml", &mut problems) {
            check_manifest(&at("manifest.yaml"), &t, &mut problems);
        } else if metadata.as_ref().is_some_and(|m| !m.containers.is_empty())
            && !files.contains_key("manifest.yaml")
        {
            problems.push(
                Problem::new(&root, "manifest.yaml", "missing; Juju requires it when metadata.yaml declares containers")
                    .hint("add manifest.yaml with bases: [{name: ubuntu, channel: '22.04', architectures: [amd64]}]"),
            );
        }
        let kind = kind_of(&files);
        let (version, version_text) = match (text("version", &mut problems), kind) {
            (Some(t), Kind::Manifests) => {
                (parse_version(&at("version"), &t).map_err(|p| problems.push(p)).ok(), None)
            }
            (Some(t), Kind::Operator) => {
                let line = t.lines().next().unwrap_or("").trim().to_string();
                match Version::parse(&line) {
                    Ok(v) => (Some(v), None),
                    Err(_) if line.chars().count() > 100 => {
                        problems.push(Problem::new(
                            at("version"),
                            "",
                            "longer than 100 characters",
                        ));
                        (None, None)
                    }
                    Err(_) => (None, Some(line).filter(|l| !l.is_empty())),
                }
            }
            (None, Kind::Manifests) if !files.contains_key("version") => {
                problems.push(
                    Problem::new(&root, "version", "missing")
                        .hint("charms with templates/ need a file named version holding a semver such as 1.0.0"),
                );
                (None, None)
            }
            (None, _) => (None, None),
        };
        match (metadata, config) {
            (Some(metadata), Some(config)) if problems.is_empty() => Ok(Charm {
                metadata,
                config,
                version,
                version_text,
                revision: None,
                files,
                origin,
                notes: Vec::new(),
                sha256: std::sync::OnceLock::new(),
            }),
            _ => Err(CharmError::Invalid(problems)),
        }
    }

    /// Whether charmer renders this charm or Juju runs it (see [`Kind`]).
    pub fn kind(&self) -> Kind {
        kind_of(&self.files)
    }

    /// The version as shown and recorded: the semver, else the `version` file's text, else
    /// the revision as `r<N>`, else `unversioned`.
    pub fn version_label(&self) -> String {
        match (&self.version, &self.version_text, self.revision) {
            (Some(v), _, _) => v.to_string(),
            (None, Some(text), _) => text.clone(),
            (None, None, Some(rev)) => format!("r{rev}"),
            (None, None, None) => "unversioned".to_string(),
        }
    }

    /// The file name `charmer pack` gives this charm: `<name>_<version>.charm`; an operator
    /// charm without a semver is named by its revision, `<name>_r<N>.charm` (as `juju
    /// download` names it), or else `<name>.charm`.
    pub fn archive_name(&self) -> String {
        match (&self.version, self.revision) {
            (Some(v), _) => format!("{}_{v}.charm", self.name()),
            (None, Some(rev)) => format!("{}_r{rev}.charm", self.name()),
            (None, None) => format!("{}.charm", self.name()),
        }
    }

    /// Packs the charm reproducibly (see [`archive::pack`]).
    pub fn pack(&self) -> Vec<u8> {
        archive::pack(&self.files)
    }

    /// The SHA-256 of the archive: the archive's own for a loaded archive, else that of
    /// the archive `pack` makes.
    pub fn sha256(&self) -> String {
        match &self.origin {
            Origin::Archive { sha256, .. } => sha256.clone(),
            Origin::Dir(_) => {
                self.sha256.get_or_init(|| crate::digest::sha256_hex(&self.pack())).clone()
            }
        }
    }

    /// What is worth fixing but does not make the charm invalid, one [`Problem`] per line.
    ///
    /// Today: a string option of one of charmer's own charms whose default is an image
    /// reference that no `oci-image` resource declares. Such an image is invisible to the
    /// air-gap tooling, which reads resources; but real charms do this, so it cannot be
    /// an error without refusing them. An operator charm (istio-gateway's `proxy-image`) is
    /// not told to declare it, which its users cannot do: the resolver reads the images in
    /// its options instead (`resolve::config_images`).
    pub fn warnings(&self) -> Vec<Problem> {
        let declared: Vec<Reference> =
            self.metadata.images().filter_map(|(_, source)| source.parse().ok()).collect();
        let file = format!("{}/config.yaml", self.origin.path().display());
        let mut warnings =
            self.metadata.unknown_keys(&format!("{}/metadata.yaml", self.origin.path().display()));
        let option_keys = ["type", "default", "description", "enum", "secret-ref"];
        warnings.extend(self.config.unknown_keys.iter().map(|key| {
            let last = key.rsplit('.').next().unwrap_or(key);
            let problem = Problem::new(&file, key, "unknown key, ignored");
            match (key.starts_with("options."), crate::diag::closest(last, &option_keys)) {
                (true, Some(c)) => problem.hint(format!("did you mean {c:?}?")),
                _ => problem,
            }
        }));
        let operator = self.kind() == Kind::Operator;
        let hidden = self
            .config
            .options
            .iter()
            .filter(|_| !operator)
            .filter_map(|(name, option)| {
                let Some(ConfigValue::String(text)) = &option.default else { return None };
                let image = crate::images::config::looks_like_image(text)?;
                if declared.iter().any(|d| same_image(d, &image)) {
                    return None;
                }
                Some(
                    Problem::new(&file, format!("options.{name}.default"), format!("{text:?} looks like a container image hidden in a config option"))
                        .hint(format!("declare {image} as a resource of type oci-image with upstream-source, so the air-gap tooling sees it")),
                )
            });
        self.notes.iter().cloned().chain(warnings).chain(hidden).collect()
    }

    /// Template files (`templates/**`), by path inside the charm.
    pub fn templates(&self) -> impl Iterator<Item = (&String, &CharmFile)> {
        self.files.iter().filter(|(path, _)| path.starts_with("templates/"))
    }

    /// Accepts `<name>.charm`, `<name>_<anything>.charm` (charmcraft's platform names,
    /// `juju download`'s `_r<N>`), and when the part after `_` is a semver it must equal
    /// the version file. Returns the revision of a `<name>_r<N>.charm`.
    fn check_file_name(&self, path: &Path) -> Result<Option<u64>, Problem> {
        let file = path.display().to_string();
        let stem = path.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let stem = stem.strip_suffix(".charm").unwrap_or(stem);
        let (name, rest) = match stem.split_once('_') {
            Some((name, rest)) => (name, Some(rest)),
            None => (stem, None),
        };
        if name != self.name() {
            return Err(Problem::new(
                file,
                "metadata.yaml: name",
                format!("the charm is named {:?} but the file name says {name:?}", self.name()),
            )
            .hint(format!("rename the file to {}", self.archive_name())));
        }
        if let Some(file_version) = rest.and_then(|r| Version::parse(r).ok()) {
            if self.version.as_ref() != Some(&file_version) {
                let has = match &self.version {
                    Some(v) => format!("the version file says {v}"),
                    None => "the charm has no semver version file".to_string(),
                };
                return Err(Problem::new(
                    file,
                    "version",
                    format!("{has} but the file name says {file_version}"),
                )
                .hint(format!("rename the file to {}", self.archive_name())));
            }
        }
        Ok(rest.and_then(parse_revision))
    }
}

/// Whether a declared image covers one found in config: same repository, and the same tag
/// or the same digest.
fn same_image(declared: &Reference, found: &Reference) -> bool {
    declared.registry == found.registry
        && declared.repository == found.repository
        && ((found.tag.is_some() && declared.tag == found.tag)
            || (found.digest.is_some() && declared.digest == found.digest))
}

/// `r<N>` as `juju download` writes it into file names.
pub fn parse_revision(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('r')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// An operator charm has charm code and no `templates/`; everything else is charmer's.
fn kind_of(files: &BTreeMap<String, CharmFile>) -> Kind {
    let templates = files.keys().any(|p| p.starts_with("templates/"));
    let code =
        files.keys().any(|p| p == "dispatch" || p.starts_with("hooks/") || p == "src/charm.py");
    if code && !templates {
        Kind::Operator
    } else {
        Kind::Manifests
    }
}

/// Reads the `version` file: first line, trimmed, at most 100 characters (Juju's limit),
/// a semantic version.
fn parse_version(file: &str, text: &str) -> Result<Version, Problem> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.len() > 100 {
        return Err(Problem::new(file, "", "longer than 100 characters"));
    }
    Version::parse(line).map_err(|e| {
        Problem::new(file, "", format!("{line:?} is not a semantic version: {e}"))
            .hint("write a version such as 1.2.0")
    })
}

/// Checks `manifest.yaml`'s `bases` shape: a list of `{name, channel, architectures}`.
fn check_manifest(file: &str, text: &str, problems: &mut Problems) {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // fields are read by serde to check the shape
    struct Manifest {
        #[serde(default)]
        bases: Vec<Base>,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // fields are read by serde to check the shape
    struct Base {
        name: String,
        channel: String,
        #[serde(default)]
        architectures: Vec<String>,
    }
    if let Err(p) = crate::contract::parse_yaml::<Manifest>(file, text) {
        problems.push(p);
    }
}

/// What `charmer inspect` shows of a charm.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Charm name.
    pub name: String,
    /// Charm version ([`Charm::version_label`]).
    pub version: String,
    /// The Charmhub revision, for a `<name>_r<N>.charm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// `manifests` (charmer renders it) or `operator` (Juju runs it).
    pub kind: Kind,
    /// Summary line.
    pub summary: String,
    /// `metadata.yaml`'s description, whole.
    pub description: String,
    /// SHA-256 of the archive (or of the archive the folder packs to).
    pub sha256: String,
    /// Config options.
    pub options: Vec<OptionView>,
    /// Resources with their images.
    pub resources: BTreeMap<String, metadata::Resource>,
    /// Endpoints.
    pub endpoints: Vec<EndpointView>,
    /// Storage.
    pub storage: BTreeMap<String, metadata::Storage>,
    /// Containers.
    pub containers: BTreeMap<String, metadata::Container>,
    /// Template files.
    pub templates: Vec<String>,
    /// Warnings ([`Charm::warnings`]), one line each.
    pub warnings: Vec<String>,
}

/// One option as `inspect` shows it (secrets redacted).
#[derive(Debug, Serialize)]
pub struct OptionView {
    /// Option name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: OptionType,
    /// Its default, if any.
    pub default: Option<serde_yaml::Value>,
    /// Its description, whole.
    pub description: String,
    /// The allowed values, if restricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<serde_yaml::Value>>,
    /// charmer's other constraints, one phrase each (`minimum 0`, `format port`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

/// One endpoint as `inspect` shows it.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    /// Endpoint name.
    pub name: String,
    /// provides, requires or peers.
    pub role: Role,
    /// Interface name.
    pub interface: String,
    /// Whether a requires endpoint may be left unrelated.
    pub optional: bool,
    /// Its `description:` (a key Juju allows on endpoints), whole; empty without one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Charm {
    /// The view `charmer inspect` prints.
    pub fn inspect(&self) -> Inspection {
        Inspection {
            name: self.name().to_string(),
            version: self.version_label(),
            revision: self.revision,
            kind: self.kind(),
            summary: self.metadata.summary.trim().to_string(),
            description: self.metadata.description.trim().to_string(),
            sha256: self.sha256(),
            options: self
                .config
                .options
                .iter()
                .map(|(name, o)| OptionView {
                    name: name.clone(),
                    kind: o.kind,
                    default: o.default.as_ref().map(ConfigValue::to_display_yaml),
                    description: o.description.trim().to_string(),
                    allowed: o
                        .allowed
                        .as_ref()
                        .map(|a| a.iter().map(ConfigValue::to_display_yaml).collect()),
                    constraints: o.constraints.describe(),
                })
                .collect(),
            resources: self.metadata.resources.clone(),
            endpoints: self
                .metadata
                .endpoints()
                .map(|(role, name, e)| EndpointView {
                    name: name.clone(),
                    role,
                    interface: e.interface.clone(),
                    optional: e.optional,
                    description: e
                        .extra
                        .get("description")
                        .and_then(serde_yaml::Value::as_str)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                })
                .collect(),
            storage: self.metadata.storage.clone(),
            containers: self.metadata.containers.clone(),
            templates: self.templates().map(|(p, _)| p.clone()).collect(),
            warnings: self.warnings().iter().map(ToString::to_string).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charm(metadata: &str, config: &str) -> Charm {
        let file = |text: &str| CharmFile { data: text.as_bytes().to_vec(), executable: false };
        let files = BTreeMap::from([
            ("metadata.yaml".to_string(), file(metadata)),
            ("config.yaml".to_string(), file(config)),
            ("version".to_string(), file("1.0.0")),
        ]);
        Charm::from_files(files, Origin::Dir(PathBuf::from("c"))).unwrap()
    }

    #[test]
    fn images_hidden_in_config_defaults_are_warned_about_unless_declared() {
        let config = "options:\n  proxy: {default: 'docker.io/istio/proxyv2:1.17.3'}\n  pinned: {default: 'ghcr.io/a/b@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe'}\n  \
                      svc: {default: LoadBalancer}\n  v: {default: '1.2.3'}\n  addr: {default: 'localhost:8080'}\n  url: {default: 'http://example.com:80/x'}\n  \
                      path: {default: /var/lib/x}\n  untagged: {default: a/b}\n  n: {type: int, default: 3}\n";
        let warnings: Vec<String> =
            charm("name: c\n", config).warnings().iter().map(ToString::to_string).collect();
        assert_eq!(warnings, [
            "c/config.yaml: options.pinned.default: \"ghcr.io/a/b@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe\" looks like a container image hidden in a config option (hint: declare ghcr.io/a/b@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe as a resource of type oci-image with upstream-source, so the air-gap tooling sees it)",
            "c/config.yaml: options.proxy.default: \"docker.io/istio/proxyv2:1.17.3\" looks like a container image hidden in a config option (hint: declare docker.io/istio/proxyv2:1.17.3 as a resource of type oci-image with upstream-source, so the air-gap tooling sees it)",
        ]);
        let declared = "name: c\nresources:\n  proxy: {type: oci-image, upstream-source: 'istio/proxyv2:1.17.3@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe'}\n";
        assert!(charm(
            declared,
            "options:\n  proxy: {default: 'docker.io/istio/proxyv2:1.17.3'}\n"
        )
        .warnings()
        .is_empty());
        assert_eq!(
            charm(declared, "options:\n  proxy: {default: 'docker.io/istio/proxyv2:1.18.0'}\n")
                .warnings()
                .len(),
            1,
            "another tag is another image"
        );
    }

    #[test]
    fn unknown_metadata_and_config_keys_warn_and_juju_keys_do_not() {
        let metadata = "name: c\ndisplay-name: C\nsubordinate: false\nsumary: typo\nmax-scale: 1\n";
        let config = "options:\n  a: {type: int, defualt: 3, description: x}\nextra: 1\n";
        let c = charm(metadata, config);
        assert_eq!(c.metadata.max_scale, Some(1));
        let warnings: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "c/metadata.yaml: sumary: unknown key, ignored (hint: did you mean \"summary\"?)",
                "c/config.yaml: extra: unknown key, ignored",
                "c/config.yaml: options.a.defualt: unknown key, ignored (hint: did you mean \"default\"?)",
            ]
        );
        // A known key of the wrong type is an error, not a warning.
        let file = |text: &str| CharmFile { data: text.as_bytes().to_vec(), executable: false };
        let files = BTreeMap::from([
            ("metadata.yaml".to_string(), file("name: c\nmax-scale: many\n")),
            ("config.yaml".to_string(), file("options:\n  a: {description: [x]}\n")),
            ("version".to_string(), file("1.0.0")),
        ]);
        let err =
            Charm::from_files(files, Origin::Dir(PathBuf::from("c"))).unwrap_err().to_string();
        assert!(err.contains("c/metadata.yaml"), "{err}");
        assert!(err.contains("c/config.yaml"), "{err}");
    }
}
