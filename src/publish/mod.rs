//! Release assets: reproducible `<name>_<version>.charm` archives, `SHA256SUMS`, the charm
//! repository index `index.yaml`, and detached Ed25519 signatures; plus the reader that
//! takes charms back out of a published folder or URL ([`index::PublishedIndex`]).
//!
//! A published version is immutable: publishing the same name and version with other
//! content is refused, the same content is a no-op. Everything is checked before the first
//! file is written, and each file is written atomically; archives go first and the index
//! last but one (then `SHA256SUMS`), so the index never lists an archive that is not there.

pub mod folder;
mod http;
pub mod index;
pub mod oci;
pub mod sign;
pub mod sums;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use index::Release;

use crate::charm::{Charm, CharmError};
use crate::contract::MAX_TEXT_BYTES;
use crate::diag::{Problem, Problems};
use crate::io_error::{IoError, IoResultExt};
use crate::output::{write_atomically, write_private};
pub use index::{Entry, Index, IndexEntry, PublishedIndex};
pub use sign::{PublicKey, SecretKey};

/// The index's file name in a published folder.
pub const INDEX_FILE: &str = "index.yaml";
/// The checksum file's name in a published folder.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// What a detached signature adds to the signed file's name.
pub const SIG_SUFFIX: &str = ".sig";

/// Errors of publishing, signing and reading published charms.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The input (charms, keys, a published folder) is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A charm could not be loaded.
    #[error(transparent)]
    Charm(#[from] CharmError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::io_error::IoError),
    /// A URL could not be fetched.
    #[error("{url}: {message}")]
    Http {
        /// The URL (empty when the client itself could not start).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Talking to a registry failed (`publish --registry`, `--charms oci://`).
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The operating system gave no random bytes for a new key.
    #[error("cannot get random bytes for a new key: {0}")]
    Random(getrandom::Error),
}

impl From<Problems> for PublishError {
    fn from(p: Problems) -> Self {
        PublishError::Invalid(p)
    }
}

impl From<Problem> for PublishError {
    fn from(p: Problem) -> Self {
        PublishError::Invalid(p.into())
    }
}

impl PublishError {
    /// The error as problems, so callers can gather them across many inputs and report
    /// them at once.
    pub fn into_problems(self) -> Problems {
        match self {
            PublishError::Invalid(p) | PublishError::Charm(CharmError::Invalid(p)) => p,
            PublishError::Charm(CharmError::Io(IoError { path, source }))
            | PublishError::Io(IoError { path, source }) => {
                Problem::new(path.display().to_string(), "", source.to_string()).into()
            }
            PublishError::Http { url, message } => Problem::new(url, "", message).into(),
            other => Problem::new("", "", other.to_string()).into(),
        }
    }
}

/// One charm version in a publish run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Charm name.
    pub name: String,
    /// Charm version (or revision).
    pub version: Release,
    /// The archive in the output folder.
    pub file: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// False when the same content was already published (a no-op).
    pub added: bool,
}

/// What a publish run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The charms given, by name then version.
    pub charms: Vec<Published>,
    /// The index written.
    pub index: PathBuf,
    /// Every version the index now lists.
    pub listed: usize,
    /// The id of the key everything was signed with.
    pub signed_by: Option<String>,
}

/// A charm to publish: loaded, packed, and where it came from.
pub(crate) struct Candidate {
    charm: Charm,
    bytes: Vec<u8>,
    from: PathBuf,
}

/// Publishes charm source folders and `.charm` archives into `out` (see the module docs).
/// Archives are always re-packed, so the same charm content gives the same bytes however
/// it was given. With `key`, every archive, the index and `SHA256SUMS` get a `.sig`.
pub fn publish(
    inputs: &[PathBuf],
    out: &Path,
    key: Option<&SecretKey>,
) -> Result<Report, PublishError> {
    let mut problems = Problems::default();
    let candidates = load_candidates(inputs, &mut problems);
    if out.exists() && !out.is_dir() {
        problems.push(
            Problem::new(out.display().to_string(), "", "exists and is not a folder")
                .hint("give --out a folder"),
        );
    }
    let mut index = existing_index(out, key, &mut problems)?;
    let mut report = Vec::new();
    for ((name, version), c) in &candidates {
        let file = out.join(c.charm.archive_name());
        let sha256 = crate::digest::sha256_hex(&c.bytes);
        let published = match index.get(name, version) {
            Some(entry) => Some(entry.sha256.clone()),
            None => match std::fs::read(&file) {
                Ok(bytes) => Some(crate::digest::sha256_hex(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(PublishError::Io(IoError::new(file, source))),
            },
        };
        if let Some(old) = &published {
            if *old != sha256 {
                problems.push(
                    Problem::new(file.display().to_string(), "", format!("{name} {version} is already published with sha256 {old}; {} packs to sha256 {sha256}", c.from.display()))
                        .hint("published versions are immutable: bump the charm's version file"),
                );
                continue;
            }
        }
        report.push(Published {
            name: name.clone(),
            version: version.clone(),
            file,
            sha256,
            added: published.is_none(),
        });
    }
    if !problems.is_empty() {
        return Err(problems.into());
    }

    std::fs::create_dir_all(out).at(out)?;
    for ((name, version), c) in &candidates {
        write_if_changed(&out.join(c.charm.archive_name()), &c.bytes)?;
        if index.get(name, version).is_none() {
            index
                .charms
                .entry(name.clone())
                .or_default()
                .push(IndexEntry::new(&c.charm, version, &c.bytes));
        }
    }
    let index_text = index.to_yaml();
    if let Some(key) = key {
        for entry in index.charms.values().flatten() {
            let bytes = std::fs::read(out.join(&entry.file)).at(out.join(&entry.file))?;
            write_if_changed(
                &out.join(format!("{}{SIG_SUFFIX}", entry.file)),
                key.sign(&entry.file, &bytes).as_bytes(),
            )?;
        }
    }
    let index_path = out.join(INDEX_FILE);
    write_signed(out, INDEX_FILE, index_text.as_bytes(), key)?;
    write_signed(out, SUMS_FILE, checksums(out)?.as_bytes(), key)?;
    Ok(Report {
        charms: report,
        index: index_path,
        listed: index.charms.values().map(Vec::len).sum(),
        signed_by: key.map(|k| k.public().id()),
    })
}

/// Loads and packs every input, keyed by (name, version); the same version given twice
/// must pack to the same bytes.
pub(crate) fn load_candidates(
    inputs: &[PathBuf],
    problems: &mut Problems,
) -> BTreeMap<(String, Release), Candidate> {
    let mut candidates: BTreeMap<(String, Release), Candidate> = BTreeMap::new();
    for input in inputs {
        let charm = match Charm::load(input) {
            Ok(charm) => charm,
            Err(e) => {
                problems.extend(PublishError::from(e).into_problems());
                continue;
            }
        };
        let Some(version) = Release::of(&charm) else {
            problems.push(
                Problem::new(input.display().to_string(), "version", format!("{} has neither a semantic version nor a revision; a published index lists charms by one of them", charm.name()))
                    .hint("add a version file holding a semver such as 1.0.0, or publish the archive juju download named <name>_r<revision>.charm"),
            );
            continue;
        };
        // An operator charm's archive is published as it is: repacking would change a
        // Charmhub archive's SHA-256, its identity. charmer's own charms are repacked.
        let bytes = match &charm.origin {
            crate::charm::Origin::Archive { path, .. }
                if charm.kind() == crate::charm::Kind::Operator =>
            {
                match crate::charm::read_untrusted(path) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        problems.push(Problem::new(
                            path.display().to_string(),
                            "",
                            format!("cannot read: {e}"),
                        ));
                        continue;
                    }
                }
            }
            _ => charm.pack(),
        };
        let key = (charm.name().to_string(), version);
        match candidates.get(&key) {
            Some(first) if first.bytes != bytes => problems.push(
                Problem::new(
                    input.display().to_string(),
                    "",
                    format!(
                        "{} {} is also given by {}, with other content",
                        key.0,
                        key.1,
                        first.from.display()
                    ),
                )
                .hint("give each charm version once"),
            ),
            Some(_) => {}
            None => {
                candidates.insert(key, Candidate { charm, bytes, from: input.clone() });
            }
        }
    }
    candidates
}

/// The index already in `out` (empty when there is none), after checking every archive it
/// lists and, when the folder is signed, every signature against `key`.
fn existing_index(
    out: &Path,
    key: Option<&SecretKey>,
    problems: &mut Problems,
) -> Result<Index, PublishError> {
    if !out.join(INDEX_FILE).is_file() {
        return Ok(Index::default());
    }
    let signed = out.join(format!("{INDEX_FILE}{SIG_SUFFIX}")).exists();
    if signed && key.is_none() {
        problems.push(
            Problem::new(
                out.join(INDEX_FILE).display().to_string(),
                "signature",
                "the folder is signed; publishing without --sign-key would leave stale signatures",
            )
            .hint("pass --sign-key with the key the folder was signed with"),
        );
        return Ok(Index::default());
    }
    let verify_key = key.filter(|_| signed).map(SecretKey::public);
    if let Some(given) = &verify_key {
        let sig_path = out.join(format!("{INDEX_FILE}{SIG_SUFFIX}"));
        let signer = crate::contract::read_bounded_text(&sig_path, MAX_TEXT_BYTES, "a signature")
            .ok()
            .and_then(|sig| sign::signer_id(&sig));
        if let Some(signer) = signer.filter(|id| *id != given.id()) {
            // A publisher with the wrong key file at hand, not a verifier: say what to publish with.
            problems.push(
                Problem::new(
                    out.join(INDEX_FILE).display().to_string(),
                    "signature",
                    format!(
                        "the folder is signed with key {signer}, not with the --sign-key given (key {})",
                        given.id()
                    ),
                )
                .hint(format!(
                    "publish with the secret key of key {signer}, or into a new folder to start \
                     a release line signed with key {}",
                    given.id()
                )),
            );
            return Ok(Index::default());
        }
    }
    match PublishedIndex::open_dir(out, verify_key).and_then(|p| p.verify_all().map(|_| p)) {
        Ok(published) => Ok(published.index().clone()),
        Err(e) => {
            problems.extend(e.into_problems());
            Ok(Index::default())
        }
    }
}

/// Writes `bytes` atomically unless the file already holds exactly them (so a no-op
/// publish leaves every file untouched).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    Ok(write_atomically(path, bytes)?)
}

/// Writes `out/name` and, with `key`, its signature.
fn write_signed(
    out: &Path,
    name: &str,
    bytes: &[u8],
    key: Option<&SecretKey>,
) -> Result<(), PublishError> {
    write_if_changed(&out.join(name), bytes)?;
    if let Some(key) = key {
        write_if_changed(
            &out.join(format!("{name}{SIG_SUFFIX}")),
            key.sign(name, bytes).as_bytes(),
        )?;
    }
    Ok(())
}

/// `SHA256SUMS` for every regular file in `out` but itself and its signature (hidden files
/// and folders are left out), so release assets added next to the charms are covered too.
fn checksums(out: &Path) -> Result<String, PublishError> {
    let io = |path: &Path, source| PublishError::Io(IoError::new(path, source));
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(out).map_err(|e| io(out, e))? {
        let entry = entry.map_err(|e| io(out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let skip = name.starts_with('.')
            || name == SUMS_FILE
            || name == format!("{SUMS_FILE}{SIG_SUFFIX}");
        if skip || !entry.file_type().map_err(|e| io(&entry.path(), e))?.is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| io(&entry.path(), e))?;
        files.insert(name, crate::digest::sha256_hex(&bytes));
    }
    Ok(sums::render(&files))
}

/// The files [`keygen`] wrote.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The secret key file (mode 0600).
    pub secret: PathBuf,
    /// The public key file.
    pub public: PathBuf,
    /// The public key.
    pub key: PublicKey,
}

/// Makes a new signing key pair as `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`,
/// refusing to overwrite either.
pub fn keygen(prefix: &Path) -> Result<KeyPair, PublishError> {
    let with = |ext: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(ext);
        PathBuf::from(path)
    };
    let (secret_path, public_path) = (with(".key"), with(".pub"));
    let mut problems = Problems::default();
    for path in [&secret_path, &public_path] {
        if path.exists() {
            problems.push(
                Problem::new(path.display().to_string(), "", "already exists")
                    .hint("keys are never overwritten: move it away or choose another --out"),
            );
        }
    }
    problems.into_result(())?;
    if let Some(dir) = secret_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let secret = SecretKey::generate().map_err(PublishError::Random)?;
    let key = secret.public();
    write_private(&secret_path, secret.to_file_text().as_bytes())?;
    write_atomically(&public_path, key.to_file_text().as_bytes())?;
    Ok(KeyPair { secret: secret_path, public: public_path, key })
}

/// Reads a secret key file.
pub fn load_secret_key(path: &Path) -> Result<SecretKey, PublishError> {
    let text = crate::contract::read_bounded_text(path, MAX_TEXT_BYTES, "a key file").at(path)?;
    Ok(SecretKey::parse(&path.display().to_string(), &text)?)
}

/// Reads a public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, PublishError> {
    let text = crate::contract::read_bounded_text(path, MAX_TEXT_BYTES, "a key file").at(path)?;
    Ok(PublicKey::parse(&path.display().to_string(), &text)?)
}

/// Checks the detached signature `<path>.sig` of a file against `key`.
pub fn verify_signature(path: &Path, key: &PublicKey) -> Result<(), PublishError> {
    let label = path.display().to_string();
    let bytes = crate::charm::read_untrusted(path).at(path)?;
    let mut sig_path = path.as_os_str().to_owned();
    sig_path.push(SIG_SUFFIX);
    let sig_path = PathBuf::from(sig_path);
    let sig = match crate::contract::read_bounded_text(&sig_path, MAX_TEXT_BYTES, "a signature") {
        Ok(sig) => sig,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::new(
                &label,
                "signature",
                format!("not signed ({} is missing)", sig_path.display()),
            )
            .hint("publish with --sign-key")
            .into())
        }
        Err(source) => return Err(PublishError::Io(IoError::new(sig_path, source))),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(key.verify(&label, &name, &bytes, &sig)?)
}
