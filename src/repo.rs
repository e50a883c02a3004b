//! Where charms come from: folders holding charm source folders, `<name>_<version>.charm`
//! archives and `<name>_r<N>.charm` files as `juju download` names them; and published
//! indexes (a folder written by `charmer publish`, its `index.yaml`, or an `http(s)://` URL
//! of either), whose archives are checked against the index's SHA-256 on every read.
//!
//! With a verify key, only signed charms load: archives from published indexes signed with
//! it, and `.charm` files with a valid `<file>.sig`; source folders are refused.
//!
//! A registry prefix (`oci://HOST[:PORT]/PREFIX`, charms `charmer publish --registry`
//! pushed as OCI artifacts) is asked for a charm's versions (its tags) the first time the
//! resolver looks for that name; the archive is pulled and checked against its digest, and
//! with a verify key its signature artifact must verify.
//!
//! A repository is scanned once into candidates (name, version or Charmhub revision,
//! location); a charm is only fully read and validated when the resolver picks it, and each
//! pick is loaded once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use semver::{Version, VersionReq};

use crate::charm::{Charm, CharmError};
use crate::diag::{Problem, Problems};
use crate::io_error::IoResultExt;
use crate::publish::index::Release;
use crate::publish::oci::{is_oci, CharmRegistry};
use crate::publish::{PublicKey, PublishError, PublishedIndex};
use crate::transport::TlsOptions;

/// Errors of finding or loading a charm.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No candidate fits, or a candidate is invalid.
    #[error("{0}")]
    Charm(#[from] CharmError),
    /// A published charm failed its checksum or signature, or could not be fetched.
    #[error("{0}")]
    Published(#[from] PublishError),
}

/// The scheme of a registry source (`--charms oci://HOST[:PORT]/PREFIX`); a charm pulled
/// from one has the origin `oci://HOST/PREFIX/name@<manifest digest>`.
pub use crate::publish::oci::SCHEME as OCI_SCHEME;

/// A charm the repository can provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Charm name.
    pub name: String,
    /// Charm version (semver); `None` for an operator charm without one.
    pub version: Option<Version>,
    /// The Charmhub revision of a `<name>_r<N>.charm`.
    pub revision: Option<u64>,
    /// The source folder or archive (for a published index, the archive's path or URL).
    pub path: PathBuf,
    /// The published index it is listed in (an index into the repository's indexes).
    pub index: Option<usize>,
    /// The registry it is published in (an index into the repository's registries).
    pub registry: Option<usize>,
}

impl Candidate {
    /// How the candidate is named in messages: its version, else `r<revision>`.
    fn label(&self) -> String {
        match (&self.version, self.revision) {
            (Some(v), _) => v.to_string(),
            (None, Some(r)) => format!("r{r}"),
            (None, None) => format!("unversioned ({})", self.path.display()),
        }
    }
}

/// What a bundle asks of a charm besides its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    /// charmer's `version:` semver requirement.
    pub version: Option<&'a VersionReq>,
    /// Juju's `revision:`: only `<name>_r<revision>.charm` fits.
    pub revision: Option<u64>,
}

/// Charm sources searched in order; for the same name and version the first wins.
#[derive(Debug, Default)]
pub struct Repository {
    /// Every candidate found, by name: highest version first, then the charms without a
    /// version by highest revision.
    candidates: BTreeMap<String, Vec<Candidate>>,
    /// The folders scanned (for messages).
    pub dirs: Vec<PathBuf>,
    /// Published indexes opened.
    indexes: Vec<PublishedIndex>,
    /// Registry prefixes charms are published in.
    registries: Vec<CharmRegistry>,
    /// Candidates from the registries, by name, listed on first use.
    listed: Mutex<BTreeMap<String, Vec<Candidate>>>,
    /// Only charms signed with this key load.
    verify_key: Option<PublicKey>,
    /// SHA-256s of charm archives authenticated another way (see [`Repository::trust`]).
    trusted: BTreeSet<String>,
    /// Folder candidates with the name and version (or revision) of an earlier one, which
    /// they lose to: they must hold the same charm (see [`Repository::find`]).
    shadowed: BTreeMap<String, Vec<Candidate>>,
    /// `--prefer-source`: a source folder wins over an archive of the same name and version
    /// (with a warning when they differ) instead of the two being an error.
    prefer_source: bool,
    /// What `find` noticed that is worth saying but not an error.
    warnings: Mutex<Vec<Problem>>,
    loaded: Mutex<BTreeMap<PathBuf, Arc<Charm>>>,
}

impl Repository {
    /// Scans folders for charms. A folder that does not exist is skipped (the defaults
    /// `charms/` and `dist/` may be absent); an unreadable or invalid entry is skipped with a
    /// warning so one broken charm does not hide the others (it is reported if picked).
    pub fn scan(dirs: &[PathBuf]) -> Repository {
        // Without a verify key only published indexes can fail to open; they are skipped
        // with a warning like any other broken entry.
        let (repo, problems) = Repository::open(dirs, None, &TlsOptions::default());
        for p in &problems.0 {
            tracing::warn!("skipping {p}");
        }
        repo
    }

    /// Opens charm sources: folders as [`Repository::scan`] reads them, except that a folder
    /// holding an `index.yaml`, an index file and an `http(s)://` URL are opened as published
    /// indexes, checked (with `verify_key`, their signatures too). Returns the repository of
    /// every source that opened, and the problems of the published indexes that did not.
    pub fn open(
        sources: &[PathBuf],
        verify_key: Option<PublicKey>,
        tls: &TlsOptions,
    ) -> (Repository, Problems) {
        let mut repo = Repository { dirs: sources.to_vec(), verify_key, ..Repository::default() };
        let mut problems = Problems::default();
        for source in sources {
            if is_oci(source) {
                match CharmRegistry::open(&source.to_string_lossy(), tls) {
                    Ok(registry) => repo.registries.push(registry),
                    Err(e) => problems.extend(e.into_problems()),
                }
                continue;
            }
            if crate::publish::index::is_published(source) {
                match PublishedIndex::open(&source.to_string_lossy(), repo.verify_key.clone(), tls)
                {
                    Ok(index) => {
                        if let Some(warning) = index.unchecked_signature_warning() {
                            repo.warnings
                                .get_mut()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(Problem::new(source.display().to_string(), "", warning));
                        }
                        repo.add_index(index);
                    }
                    Err(e) => problems.extend(e.into_problems()),
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(source) else { continue };
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                match peek(&path) {
                    Some(Ok(candidate)) => repo.add(candidate),
                    Some(Err(e)) => tracing::warn!("skipping {}: {e}", path.display()),
                    None => {}
                }
            }
        }
        (repo, problems)
    }

    /// Accepts charm archives with these SHA-256s under the verify key without a signature
    /// of their own: they were authenticated by a signed manifest listing them (an air-gap
    /// archive's `SHA256SUMS`).
    pub fn trust(&mut self, sha256s: BTreeSet<String>) {
        self.trusted.extend(sha256s);
    }

    fn add_index(&mut self, index: PublishedIndex) {
        let at = self.indexes.len();
        for entry in index.entries() {
            let (version, revision) = match entry.release {
                Release::Version(v) => (Some(v), None),
                Release::Revision(r) => (None, Some(r)),
            };
            self.add(Candidate {
                name: entry.name,
                version,
                revision,
                path: PathBuf::from(entry.location),
                index: Some(at),
                registry: None,
            });
        }
        self.indexes.push(index);
    }

    fn add(&mut self, candidate: Candidate) {
        let name = candidate.name.clone();
        if let Some(lost) = insert(self.candidates.entry(name.clone()).or_default(), candidate) {
            self.shadowed.entry(name).or_default().push(lost);
        }
    }

    /// With `true`, a source folder wins over an archive of the same name and version whose
    /// content differs, with a warning (`--prefer-source`); without, that is an error.
    pub fn prefer_source(&mut self, prefer: bool) {
        self.prefer_source = prefer;
    }

    /// The warnings `find` collected, for the caller to show.
    pub fn take_warnings(&self) -> Vec<Problem> {
        std::mem::take(
            &mut *self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The picked candidate, or the source folder that `--prefer-source` puts before it,
    /// after checking that every folder candidate of the same name and version holds the same
    /// charm: an edited source beside the archive published from it, both called 1.0.0, is
    /// two charms under one version, and picking either silently is a wrong result.
    fn same_content(&self, picked: &Candidate) -> Result<Candidate, Problem> {
        let same = |c: &&Candidate| c.version == picked.version && c.revision == picked.revision;
        let others: Vec<&Candidate> =
            self.shadowed.get(&picked.name).into_iter().flatten().filter(same).collect();
        if others.is_empty() {
            return Ok(picked.clone());
        }
        let sha = |c: &Candidate| {
            self.load_candidate(c)
                .map(|charm| charm.sha256())
                .map_err(|e| Problem::new(c.path.display().to_string(), "", e.to_string()))
        };
        let picked_sha = sha(picked)?;
        let mut chosen = picked.clone();
        for other in others {
            let other_sha = sha(other)?;
            if other_sha == picked_sha {
                continue;
            }
            let (source, archive) =
                if other.path.is_dir() { (other, picked) } else { (picked, other) };
            let both = format!(
                "{} {} is in {} (sha256 {}) and in {} (sha256 {}) with different content",
                picked.name,
                picked.label(),
                picked.path.display(),
                picked_sha,
                other.path.display(),
                other_sha
            );
            if self.prefer_source && source.path.is_dir() && !archive.path.is_dir() {
                self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(
                    Problem::new(
                        source.path.display().to_string(),
                        "",
                        format!("{both}; --prefer-source takes the source folder"),
                    ),
                );
                chosen = source.clone();
                continue;
            }
            return Err(Problem::new("", &picked.name, both).hint(
                "bump the version in the edited source (published versions are immutable), \
                 remove the stale copy, or take the source folder with --prefer-source",
            ));
        }
        Ok(chosen)
    }

    /// The charm `name` the bundle wants, loaded and validated: with a revision, the archive
    /// of that revision; with a version requirement, the highest version satisfying it;
    /// with neither, the highest version, or the one archive without a version (several
    /// such revisions are ambiguous: the bundle must pin one). When nothing fits, the
    /// problem lists what was found.
    pub fn find(&self, name: &str, wanted: Wanted<'_>) -> Result<Arc<Charm>, Problem> {
        let mut found = self.candidates.get(name).cloned().unwrap_or_default();
        for candidate in self.published(name)? {
            // A registry's charm is checked against its digest; folders come first.
            let _ = insert(&mut found, candidate);
        }
        let fits: Vec<&Candidate> = found
            .iter()
            .filter(|c| wanted.revision.is_none_or(|r| c.revision == Some(r)))
            .filter(|c| {
                wanted.version.is_none_or(|r| c.version.as_ref().is_some_and(|v| r.matches(v)))
            })
            .collect();
        if let [first, second, ..] = fits.as_slice() {
            if first.version.is_none() && second.version.is_none() {
                let labels: Vec<String> = fits.iter().map(|c| c.label()).collect();
                return Err(Problem::new(
                    "",
                    name,
                    format!(
                        "{} archives of {name} ({}) and no revision: chosen",
                        fits.len(),
                        labels.join(", ")
                    ),
                )
                .hint("pin one with revision: N in the bundle or an overlay"));
            }
        }
        match fits.first() {
            Some(candidate) => {
                let candidate = self.same_content(candidate)?;
                self.load_candidate(&candidate).map_err(|e| {
                    Problem::new(candidate.path.display().to_string(), "", e.to_string())
                })
            }
            None if found.is_empty() => {
                let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
                Err(Problem::new(
                    "",
                    name,
                    format!(
                        "no charm named {name:?} in {}",
                        if dirs.is_empty() {
                            "(no charm folders)".to_string()
                        } else {
                            dirs.join(", ")
                        }
                    ),
                )
                .hint("add its folder with --charms DIR, or pack it into one of these"))
            }
            None => {
                let versions: Vec<String> = found.iter().map(Candidate::label).collect();
                let mut asked = Vec::new();
                if let Some(req) = wanted.version {
                    asked.push(format!("version {req}"));
                }
                if let Some(rev) = wanted.revision {
                    asked.push(format!("revision {rev}"));
                }
                Err(Problem::new(
                    "",
                    name,
                    format!("nothing fits {}; found {}", asked.join(" and "), versions.join(", ")),
                )
                .hint(match wanted.revision {
                    Some(rev) => format!("add {name}_r{rev}.charm (juju download --revision {rev} {name}) to the charm folders"),
                    None => "relax the version requirement or add the charm version it needs".to_string(),
                }))
            }
        }
    }

    /// Loads a charm folder or archive by path, once. With a verify key, the archive's
    /// signature must check and folders are refused.
    pub fn load(&self, path: &Path) -> Result<Arc<Charm>, RepoError> {
        self.cached(path, || {
            if let Some(key) = &self.verify_key {
                if path.is_dir() {
                    let problem = Problem::new(path.display().to_string(), "", "a charm source folder is not signed")
                        .hint("with --verify-key, take charms from signed published indexes or signed .charm archives");
                    return Err(PublishError::from(problem).into());
                }
                if !self.is_trusted(path) {
                    crate::publish::verify_signature(path, key)?;
                }
            }
            Ok(Charm::load(path)?)
        })
    }

    /// Whether the archive at `path` is one of the [`Repository::trust`]ed ones.
    fn is_trusted(&self, path: &Path) -> bool {
        !self.trusted.is_empty()
            && std::fs::read(path)
                .is_ok_and(|bytes| self.trusted.contains(&crate::digest::sha256_hex(&bytes)))
    }

    /// The candidates of `name` in the registries (their tags that are versions), asked
    /// once per name; registries given earlier win for the same version.
    fn published(&self, name: &str) -> Result<Vec<Candidate>, Problem> {
        if self.registries.is_empty() {
            return Ok(Vec::new());
        }
        let mut listed = self.listed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = listed.get(name) {
            return Ok(found.clone());
        }
        let mut found: Vec<Candidate> = Vec::new();
        for (at, registry) in self.registries.iter().enumerate() {
            let versions = registry.versions(name).map_err(|e| {
                let mut problems = e.into_problems();
                problems.0.pop().unwrap_or_else(|| Problem::new("", name, "registry error"))
            })?;
            for version in versions {
                let candidate = Candidate {
                    name: name.to_string(),
                    path: PathBuf::from(registry.location(name, &version)),
                    version: Some(version),
                    revision: None,
                    index: None,
                    registry: Some(at),
                };
                let _ = insert(&mut found, candidate);
            }
        }
        listed.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// Loads a candidate once: from its published index or registry (checksum and
    /// signature checked) or by path.
    fn load_candidate(&self, candidate: &Candidate) -> Result<Arc<Charm>, RepoError> {
        if let (Some(registry), Some(version)) =
            (candidate.registry.and_then(|i| self.registries.get(i)), &candidate.version)
        {
            return self.cached(&candidate.path, || {
                Ok(registry.fetch(&candidate.name, version, self.verify_key.as_ref())?)
            });
        }
        match candidate.index.and_then(|i| self.indexes.get(i)) {
            Some(index) => self.cached(&candidate.path, || {
                let release = match (&candidate.version, candidate.revision) {
                    (Some(v), _) => Release::Version(v.clone()),
                    (None, Some(r)) => Release::Revision(r),
                    (None, None) => {
                        let label = candidate.path.display().to_string();
                        let problem = Problem::new(label, "", "listed without a version");
                        return Err(PublishError::from(problem).into());
                    }
                };
                Ok(index.fetch(&candidate.name, &release)?)
            }),
            None => self.load(&candidate.path),
        }
    }

    fn cached(
        &self,
        key: &Path,
        load: impl FnOnce() -> Result<Charm, RepoError>,
    ) -> Result<Arc<Charm>, RepoError> {
        if let Some(charm) =
            self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key)
        {
            return Ok(charm.clone());
        }
        let charm = Arc::new(load()?);
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_path_buf(), charm.clone());
        Ok(charm)
    }

    /// Every candidate, by name then highest version first.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.values().flatten()
    }
}

/// Adds `candidate` to a name's list unless one of the same version and revision is there
/// (the first source wins), keeping the list in preference order.
/// Adds a candidate unless one of the same version and revision is there already; returns
/// it then (earlier sources win).
fn insert(list: &mut Vec<Candidate>, candidate: Candidate) -> Option<Candidate> {
    let same = |c: &Candidate| c.version == candidate.version && c.revision == candidate.revision;
    if list.iter().any(same) {
        return Some(candidate);
    }
    list.push(candidate);
    // `Option` sorts `None` first: reversed, versioned charms come first.
    list.sort_by(|a, b| (&b.version, b.revision).cmp(&(&a.version, a.revision)));
    None
}

/// Reads a candidate's name and version cheaply: `metadata.yaml` and `version` of a folder,
/// the file name of a `<name>_<semver>.charm`, or the archive's own files otherwise.
/// `None` for paths that are not charms at all.
fn peek(path: &Path) -> Option<Result<Candidate, CharmError>> {
    if path.is_dir() {
        if path.join("metadata.yaml").is_file() {
            return Some(peek_dir(path));
        }
        // charmcraft's unified form: the name is in charmcraft.yaml, with much else.
        if path.join(crate::charm::charmcraft::FILE).is_file() {
            return Some(Charm::from_dir(path).map(|c| Candidate {
                name: c.name().to_string(),
                version: c.version.clone(),
                revision: None,
                path: path.to_path_buf(),
                index: None,
                registry: None,
            }));
        }
        return None;
    }
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".charm")?;
    if let Some((name, rest)) = stem.split_once('_') {
        let version = Version::parse(rest).ok();
        let revision = crate::charm::parse_revision(rest);
        if version.is_some() || revision.is_some() {
            return Some(Ok(Candidate {
                name: name.to_string(),
                version,
                revision,
                path: path.to_path_buf(),
                index: None,
                registry: None,
            }));
        }
    }
    Some(Charm::from_archive(path, &crate::charm::Limits::default()).map(|c| Candidate {
        name: c.name().to_string(),
        version: c.version.clone(),
        revision: c.revision,
        path: path.to_path_buf(),
        index: None,
        registry: None,
    }))
}

fn peek_dir(dir: &Path) -> Result<Candidate, CharmError> {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: String,
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).at(dir.join(name));
    let label = dir.join("metadata.yaml").display().to_string();
    let text =
        crate::contract::read_yaml_file(&dir.join("metadata.yaml")).at(dir.join("metadata.yaml"))?;
    let meta: NameOnly = crate::contract::parse_yaml(&label, &text).map_err(CharmError::from)?;
    // An operator charm's version file is optional and free text; a charm with templates/
    // needs a semver one, which loading it checks.
    let version = match read("version") {
        Ok(text) => Version::parse(text.lines().next().unwrap_or("").trim()).ok(),
        Err(_) if !dir.join("templates").is_dir() => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Candidate {
        name: meta.name,
        version,
        revision: None,
        path: dir.to_path_buf(),
        index: None,
        registry: None,
    })
}
