//! Where charms come from: folders holding charm source folders, `<name>_<version>.charm`
//! archives and `<name>_r<N>.charm` files as `juju download` names them.
//!
//! A repository is scanned once into candidates (name, version, location); a charm is only
//! fully read and validated when the resolver picks it, and each pick is loaded once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use semver::{Version, VersionReq};

use crate::charm::{Charm, CharmError};
use crate::diag::Problem;

/// Errors of finding or loading a charm.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No candidate fits, or a candidate is invalid.
    #[error("{0}")]
    Charm(#[from] CharmError),
}

/// A charm the repository can provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Charm name.
    pub name: String,
    /// Charm version.
    pub version: Version,
    /// The source folder or archive.
    pub path: PathBuf,
}

/// Charm sources searched in order; for the same name and version the first wins.
#[derive(Debug, Default)]
pub struct Repository {
    /// Every candidate found, by name, highest version first.
    candidates: BTreeMap<String, Vec<Candidate>>,
    /// The folders scanned (for messages).
    pub dirs: Vec<PathBuf>,
    loaded: Mutex<BTreeMap<PathBuf, Arc<Charm>>>,
}

impl Repository {
    /// Scans folders for charms. A folder that does not exist is skipped (the defaults
    /// `charms/` and `dist/` may be absent); an unreadable or invalid entry is skipped with a
    /// warning so one broken charm does not hide the others (it is reported if picked).
    pub fn scan(dirs: &[PathBuf]) -> Repository {
        let mut repo = Repository { dirs: dirs.to_vec(), ..Repository::default() };
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                match peek(&path) {
                    Some(Ok(candidate)) => repo.add(candidate),
                    Some(Err(e)) => tracing::warn!("skipping {}: {e}", path.display()),
                    None => {}
                }
            }
        }
        repo
    }

    fn add(&mut self, candidate: Candidate) {
        let list = self.candidates.entry(candidate.name.clone()).or_default();
        if !list.iter().any(|c| c.version == candidate.version) {
            list.push(candidate);
            list.sort_by(|a, b| b.version.cmp(&a.version));
        }
    }

    /// The highest version of `name` that satisfies `req` (any version when `None`),
    /// loaded and validated. When nothing fits, the problem lists what was found.
    pub fn find(&self, name: &str, req: Option<&VersionReq>) -> Result<Arc<Charm>, Problem> {
        let found = self.candidates.get(name).map(Vec::as_slice).unwrap_or_default();
        let pick = found.iter().find(|c| req.is_none_or(|r| r.matches(&c.version)));
        match pick {
            Some(candidate) => self.load(&candidate.path).map_err(|e| Problem::new(candidate.path.display().to_string(), "", e.to_string())),
            None if found.is_empty() => {
                let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
                Err(Problem::new("", name, format!("no charm named {name:?} in {}", if dirs.is_empty() { "(no charm folders)".to_string() } else { dirs.join(", ") }))
                    .hint("add its folder with --charms DIR, or pack it into one of these"))
            }
            None => {
                let versions: Vec<String> = found.iter().map(|c| c.version.to_string()).collect();
                let req = req.map(ToString::to_string).unwrap_or_default();
                Err(Problem::new("", name, format!("no version satisfies {req}; found {}", versions.join(", ")))
                    .hint("relax the version requirement or add the charm version it needs"))
            }
        }
    }

    /// Loads a charm folder or archive by path, once.
    pub fn load(&self, path: &Path) -> Result<Arc<Charm>, CharmError> {
        let key = path.to_path_buf();
        if let Some(charm) = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(charm.clone());
        }
        let charm = Arc::new(Charm::load(path)?);
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, charm.clone());
        Ok(charm)
    }

    /// Every candidate, by name then highest version first.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.values().flatten()
    }
}

/// Reads a candidate's name and version cheaply: `metadata.yaml` and `version` of a folder,
/// the file name of a `<name>_<semver>.charm`, or the archive's own files otherwise.
/// `None` for paths that are not charms at all.
fn peek(path: &Path) -> Option<Result<Candidate, CharmError>> {
    if path.is_dir() {
        if !path.join("metadata.yaml").is_file() {
            return None;
        }
        return Some(peek_dir(path));
    }
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".charm")?;
    if let Some((name, version)) = stem.split_once('_') {
        if let Ok(version) = Version::parse(version) {
            return Some(Ok(Candidate { name: name.to_string(), version, path: path.to_path_buf() }));
        }
    }
    Some(Charm::from_archive(path, &crate::charm::Limits::default()).map(|c| Candidate {
        name: c.name().to_string(),
        version: c.version.clone(),
        path: path.to_path_buf(),
    }))
}

fn peek_dir(dir: &Path) -> Result<Candidate, CharmError> {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: String,
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|source| CharmError::Io { path: dir.join(name), source });
    let label = dir.join("metadata.yaml").display().to_string();
    let meta: NameOnly = serde_yaml::from_str(&read("metadata.yaml")?).map_err(|e| CharmError::from(crate::charm::config::yaml_problem(&label, &e)))?;
    let text = read("version")?;
    let line = text.lines().next().unwrap_or("").trim();
    let version = Version::parse(line).map_err(|e| CharmError::from(Problem::new(dir.join("version").display().to_string(), "", format!("{line:?} is not a semantic version: {e}"))))?;
    Ok(Candidate { name: meta.name, version, path: dir.to_path_buf() })
}
