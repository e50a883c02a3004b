//! The charm repository index (`index.yaml`) and the reader the resolver uses to take charms
//! from a published directory, an `index.yaml` path, or an `http(s)://` URL of one.
//!
//! Nothing read from a published source is trusted: the index is checked against
//! `SHA256SUMS` (when present) and, given a verify key, against its signature; every archive
//! read is checked against the index's SHA-256 (and its own signature) on every read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use super::http::Http;
use super::sign::PublicKey;
use super::{sums, PublishError, INDEX_FILE, SIG_SUFFIX, SUMS_FILE};
use crate::charm::{Charm, Limits};
use crate::contract::is_valid_name;
use crate::diag::{Problem, Problems};
use crate::io_error::IoError;
use crate::transport::TlsOptions;

/// `apiVersion` of the index format.
pub const API_VERSION: &str = "charmer.io/v1";
/// `kind` of the index document.
pub const KIND: &str = "CharmIndex";
const HEADER: &str = "# charm repository index, written by charmer publish; do not edit\n";

/// `index.yaml`: every published charm version, by charm name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Always [`API_VERSION`].
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Versions of each charm, oldest first.
    #[serde(default)]
    pub charms: BTreeMap<String, Vec<IndexEntry>>,
}

/// What identifies one published archive of a charm: its semver or, for a Juju operator
/// charm without one (a Charmhub archive), its revision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Release {
    /// A semantic version.
    Version(Version),
    /// A Charmhub revision.
    Revision(u64),
}

impl std::fmt::Display for Release {
    /// `1.2.0`, or `r7`: what follows `<name>_` in the archive's file name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Release::Version(v) => write!(f, "{v}"),
            Release::Revision(r) => write!(f, "r{r}"),
        }
    }
}

impl Release {
    /// How `charm` is published: its semver, else its revision; `None` with neither.
    pub fn of(charm: &Charm) -> Option<Release> {
        charm.version.clone().map(Release::Version).or(charm.revision.map(Release::Revision))
    }

    /// Whether `charm` is this release.
    fn matches(&self, charm: &Charm) -> bool {
        Release::of(charm).as_ref() == Some(self)
    }
}

/// One published version of a charm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The charm version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The Charmhub revision of an operator charm published without a semver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The archive's file name, next to the index: `<name>_<version>.charm`
    /// (`<name>_r<revision>.charm`).
    pub file: String,
    /// Lowercase hex SHA-256 of the archive.
    pub sha256: String,
    /// Size of the archive in bytes.
    pub size: u64,
    /// The charm's one-line summary.
    #[serde(default)]
    pub summary: String,
    /// Images the charm runs: `oci-image` resource → `upstream-source`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// The interfaces of its relation endpoints.
    #[serde(default)]
    pub interfaces: Interfaces,
}

/// Endpoint → interface name, for both sides of relations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interfaces {
    /// `provides` endpoints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provides: BTreeMap<String, String>,
    /// `requires` endpoints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requires: BTreeMap<String, String>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            charms: BTreeMap::new(),
        }
    }
}

impl IndexEntry {
    /// The entry describing `charm` published as `release` in `archive` (its bytes).
    pub fn new(charm: &Charm, release: &Release, archive: &[u8]) -> IndexEntry {
        let interfaces = |map: &BTreeMap<String, crate::charm::Endpoint>| {
            map.iter().map(|(n, e)| (n.clone(), e.interface.clone())).collect()
        };
        IndexEntry {
            version: match release {
                Release::Version(v) => Some(v.clone()),
                Release::Revision(_) => None,
            },
            revision: match release {
                Release::Version(_) => None,
                Release::Revision(r) => Some(*r),
            },
            file: charm.archive_name(),
            sha256: crate::digest::sha256_hex(archive),
            size: archive.len() as u64,
            summary: charm.metadata.summary.lines().next().unwrap_or("").trim().to_string(),
            images: charm.metadata.images().map(|(n, s)| (n.clone(), s.to_string())).collect(),
            interfaces: Interfaces {
                provides: interfaces(&charm.metadata.provides),
                requires: interfaces(&charm.metadata.requires),
            },
        }
    }
}

impl IndexEntry {
    /// The entry's semver, else its revision.
    pub fn release(&self) -> Option<Release> {
        self.version.clone().map(Release::Version).or(self.revision.map(Release::Revision))
    }
}

impl Index {
    /// Parses and checks an index read from `label`, reporting every problem at once.
    pub fn parse(label: &str, text: &str) -> Result<Index, Problems> {
        let index: Index = crate::contract::parse_yaml(label, text)?;
        let mut problems = Problems::default();
        if index.api_version != API_VERSION || index.kind != KIND {
            problems.push(
                Problem::new(
                    label,
                    "apiVersion",
                    format!(
                        "not a charm index (apiVersion {:?}, kind {:?})",
                        index.api_version, index.kind
                    ),
                )
                .hint(format!("a charm index has apiVersion: {API_VERSION} and kind: {KIND}")),
            );
        }
        for (name, entries) in &index.charms {
            if !is_valid_name(name) {
                problems.push(Problem::new(
                    label,
                    format!("charms.{name}"),
                    "not a valid charm name",
                ));
            }
            for (i, entry) in entries.iter().enumerate() {
                let key = format!("charms.{name}[{i}]");
                let Some(release) = entry.release() else {
                    problems.push(Problem::new(
                        label,
                        &key,
                        "has neither a version nor a revision",
                    ));
                    continue;
                };
                let expected = format!("{name}_{release}.charm");
                if entry.file != expected {
                    problems.push(Problem::new(
                        label,
                        format!("{key}.file"),
                        format!("{:?} should be {expected:?}", entry.file),
                    ));
                }
                if entry.sha256.len() != 64
                    || !entry
                        .sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    problems.push(Problem::new(
                        label,
                        format!("{key}.sha256"),
                        "not a lowercase hex SHA-256",
                    ));
                }
                if entries[..i].iter().any(|e| e.release().as_ref() == Some(&release)) {
                    let field = if entry.version.is_some() { "version" } else { "revision" };
                    problems.push(Problem::new(
                        label,
                        format!("{key}.{field}"),
                        format!("{field} {release} is listed twice"),
                    ));
                }
            }
        }
        problems.into_result(index)
    }

    /// The index as written to `index.yaml`: a header comment, then sorted YAML.
    pub fn to_yaml(&self) -> String {
        let mut sorted = self.clone();
        for entries in sorted.charms.values_mut() {
            entries.sort_by_key(IndexEntry::release);
        }
        // Serialising plain structs, maps and strings cannot fail.
        format!("{HEADER}{}", serde_yaml::to_string(&sorted).unwrap_or_default())
    }

    /// The entry of `name` at `release`.
    pub fn get(&self, name: &str, release: &Release) -> Option<&IndexEntry> {
        self.charms.get(name)?.iter().find(|e| e.release().as_ref() == Some(release))
    }
}

/// One archive a published index offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Charm name.
    pub name: String,
    /// Charm version or revision.
    pub release: Release,
    /// Where the archive is: a file path or a URL.
    pub location: String,
    /// The SHA-256 the index gives for it.
    pub sha256: String,
}

/// Where a published index and its archives live.
#[derive(Debug)]
enum Base {
    /// A local folder.
    Dir(PathBuf),
    /// A URL prefix ending in `/`, with the client that fetches from it.
    Url(String, Http),
}

/// A published index, opened and checked, from which archives are fetched and verified.
#[derive(Debug)]
pub struct PublishedIndex {
    base: Base,
    index_name: String,
    index_location: String,
    /// `SHA256SUMS`, when the folder has one.
    sums: Option<BTreeMap<String, String>>,
    index: Index,
    key: Option<PublicKey>,
    limits: Limits,
    /// Opened without a key, the ids of the keys whose signatures lie beside the index and
    /// its `SHA256SUMS` (`None` for an unreadable signature): signed, but not checked.
    unchecked_signers: Vec<Option<String>>,
}

/// True for `http://` and `https://` sources.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// True for what [`PublishedIndex::open`] reads: a URL, a folder holding an `index.yaml`,
/// or a `.yaml`/`.yml` file.
pub fn is_published(source: &Path) -> bool {
    let yaml = source.extension().is_some_and(|e| e == "yaml" || e == "yml");
    is_url(&source.to_string_lossy())
        || source.join(INDEX_FILE).is_file()
        || (yaml && source.is_file())
}

impl PublishedIndex {
    /// Opens `source`: a published folder, an `index.yaml` path, or an `http(s)://` URL of an
    /// index or of the folder holding one. The index must match `SHA256SUMS` when that file
    /// is there and, with `key`, its `index.yaml.sig`; without one, unsigned is fine.
    ///
    /// An `http://` URL needs `tls.insecure_http`; `https://` trusts `tls.ca_file` besides the
    /// system's roots. URLs are fetched on a runtime of its own: call this (and [`Self::fetch`]) from
    /// synchronous code, not from inside an async task.
    pub fn open(
        source: &str,
        key: Option<PublicKey>,
        tls: &TlsOptions,
    ) -> Result<PublishedIndex, PublishError> {
        if is_url(source) {
            let (prefix, name) = if source.ends_with(".yaml") || source.ends_with(".yml") {
                let cut = source.rfind('/').map_or(source.len(), |i| i + 1);
                (&source[..cut], &source[cut..])
            } else {
                (source.trim_end_matches('/'), INDEX_FILE)
            };
            let prefix =
                if prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
            return Self::open_at(Base::Url(prefix, Http::new(tls)?), name, key);
        }
        let path = Path::new(source);
        if path.is_dir() {
            return Self::open_dir(path, key);
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self::open_at(Base::Dir(dir.to_path_buf()), &name, key)
    }

    /// Opens the index of a published folder (see [`Self::open`]).
    pub fn open_dir(dir: &Path, key: Option<PublicKey>) -> Result<PublishedIndex, PublishError> {
        Self::open_at(Base::Dir(dir.to_path_buf()), INDEX_FILE, key)
    }

    fn open_at(
        base: Base,
        index_name: &str,
        key: Option<PublicKey>,
    ) -> Result<PublishedIndex, PublishError> {
        let mut opened = PublishedIndex {
            base,
            index_name: index_name.to_string(),
            index_location: String::new(),
            sums: None,
            index: Index::default(),
            key,
            limits: Limits::default(),
            unchecked_signers: Vec::new(),
        };
        opened.index_location = opened.location(index_name);
        let bytes = opened.read(index_name)?.ok_or_else(|| {
            Problem::new(&opened.index_location, "", "not found").hint(
                "give a folder written by charmer publish, its index.yaml, or a URL of either",
            )
        })?;
        opened.check_signature(index_name, &bytes)?;
        opened.note_unchecked_signature(index_name)?;
        opened.check_sums(index_name, &bytes)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Problem::new(&opened.index_location, "", "is not UTF-8 text"))?;
        opened.index = Index::parse(&opened.index_location, &text)?;
        Ok(opened)
    }

    /// For an index opened without a key whose folder is signed, a warning (to follow the
    /// index's location) that says so: a signed folder read without its key is not authenticated, and a rewritten
    /// `SHA256SUMS` beside stale signatures would otherwise pass as "ok".
    pub fn unchecked_signature_warning(&self) -> Option<String> {
        if self.unchecked_signers.is_empty() {
            return None;
        }
        let mut ids: Vec<&str> = self
            .unchecked_signers
            .iter()
            .map(|id| id.as_deref().unwrap_or("(unreadable)"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(format!(
            "signed by key {}, but the signatures were not checked: its content was not \
             authenticated (pass the publisher's public key with --verify-key, or --key for verify)",
            ids.join(" and key ")
        ))
    }

    /// The index itself.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Where the index was read from.
    pub fn index_location(&self) -> &str {
        &self.index_location
    }

    /// Every archive the index lists, by name then version.
    pub fn entries(&self) -> Vec<Entry> {
        self.index
            .charms
            .iter()
            .flat_map(|(name, entries)| {
                entries.iter().filter_map(move |e| {
                    Some(Entry {
                        name: name.clone(),
                        release: e.release()?,
                        location: self.location(&e.file),
                        sha256: e.sha256.clone(),
                    })
                })
            })
            .collect()
    }

    /// Fetches and loads `name` at `release`, verifying the archive's SHA-256 against the
    /// index and, with a verify key, its signature.
    pub fn fetch(&self, name: &str, release: &Release) -> Result<Charm, PublishError> {
        let entry = self.index.get(name, release).ok_or_else(|| {
            Problem::new(
                &self.index_location,
                format!("charms.{name}"),
                format!("has no version {release}"),
            )
        })?;
        let bytes = self.fetch_bytes(entry)?;
        let location = self.location(&entry.file);
        let charm = Charm::from_archive_bytes(Path::new(&location), &bytes, &self.limits)?;
        if charm.name() != name || !release.matches(&charm) {
            return Err(Problem::new(
                &location,
                "",
                format!(
                    "holds {} {}, but the index lists it as {name} {release}",
                    charm.name(),
                    charm.version_label()
                ),
            )
            .into());
        }
        Ok(charm)
    }

    /// The verified bytes of one listed archive.
    pub fn fetch_bytes(&self, entry: &IndexEntry) -> Result<Vec<u8>, PublishError> {
        let location = self.location(&entry.file);
        let bytes = self
            .read(&entry.file)?
            .ok_or_else(|| Problem::new(&location, "", "listed in the index but missing"))?;
        self.check_digest(&entry.file, &bytes, &entry.sha256, &self.index_name)?;
        self.check_signature(&entry.file, &bytes)?;
        Ok(bytes)
    }

    /// Fetches and checks every listed archive and every file `SHA256SUMS` lists (release
    /// binaries too), reporting every problem at once.
    pub fn verify_all(&self) -> Result<Vec<Entry>, PublishError> {
        let mut problems = Problems::default();
        for (name, entries) in &self.index.charms {
            for entry in entries {
                let Some(release) = entry.release() else { continue };
                if let Err(e) = self.fetch(name, &release) {
                    problems.extend(e.into_problems());
                }
            }
        }
        // Archives and the index were checked above, against the index and SHA256SUMS.
        let checked: Vec<&str> = self
            .index
            .charms
            .values()
            .flatten()
            .map(|e| e.file.as_str())
            .chain([self.index_name.as_str()])
            .collect();
        for (name, expected) in
            self.sums.iter().flatten().filter(|(name, _)| !checked.contains(&name.as_str()))
        {
            match self.read(name) {
                Ok(Some(bytes)) => {
                    if let Err(p) = self.check_digest(name, &bytes, expected, SUMS_FILE) {
                        problems.push(p);
                    }
                }
                Ok(None) => problems.push(Problem::new(
                    self.location(name),
                    "",
                    format!("listed in {} but missing", self.location(SUMS_FILE)),
                )),
                Err(e) => problems.extend(e.into_problems()),
            }
        }
        problems.into_result(self.entries()).map_err(PublishError::from)
    }

    /// The path or URL of a file next to the index.
    fn location(&self, name: &str) -> String {
        match &self.base {
            Base::Dir(dir) => dir.join(name).display().to_string(),
            Base::Url(prefix, _) => format!("{prefix}{name}"),
        }
    }

    /// Reads a file next to the index; `None` when it does not exist.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, PublishError> {
        match &self.base {
            Base::Dir(dir) => {
                let path = dir.join(name);
                match crate::charm::read_untrusted(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(PublishError::Io(IoError::new(path, source))),
                }
            }
            Base::Url(prefix, http) => {
                http.get(&format!("{prefix}{name}"), self.limits.max_total_bytes)
            }
        }
    }

    /// Without a verify key, notes the signer of `<name>.sig` when there is one (see
    /// [`Self::unchecked_signature_warning`]).
    fn note_unchecked_signature(&mut self, name: &str) -> Result<(), PublishError> {
        if self.key.is_none() {
            if let Some(sig) = self.read(&format!("{name}{SIG_SUFFIX}"))? {
                let signer = crate::publish::sign::signer_id(&String::from_utf8_lossy(&sig));
                self.unchecked_signers.push(signer);
            }
        }
        Ok(())
    }

    /// With a verify key, `<name>.sig` must exist and match `bytes`.
    fn check_signature(&self, name: &str, bytes: &[u8]) -> Result<(), PublishError> {
        let Some(key) = &self.key else { return Ok(()) };
        let location = self.location(name);
        let sig_name = format!("{name}{SIG_SUFFIX}");
        let Some(sig) = self.read(&sig_name)? else {
            return Err(Problem::new(
                &location,
                "signature",
                format!(
                    "not signed ({} is missing) but a verify key was given",
                    self.location(&sig_name)
                ),
            )
            .hint("publish with --sign-key, or drop the verify key to accept unsigned charms")
            .into());
        };
        let sig = String::from_utf8_lossy(&sig);
        key.verify(&location, name, bytes, &sig).map_err(PublishError::from)
    }

    /// Reads `SHA256SUMS` when it is next to the index (with a verify key, it must be
    /// signed); when it lists the index, the digests must agree.
    fn check_sums(&mut self, name: &str, bytes: &[u8]) -> Result<(), PublishError> {
        let Some(sums_bytes) = self.read(SUMS_FILE)? else { return Ok(()) };
        self.check_signature(SUMS_FILE, &sums_bytes)?;
        self.note_unchecked_signature(SUMS_FILE)?;
        let sums = sums::parse(&self.location(SUMS_FILE), &String::from_utf8_lossy(&sums_bytes))?;
        if let Some(expected) = sums.get(name) {
            self.check_digest(name, bytes, expected, SUMS_FILE)?;
        }
        self.sums = Some(sums);
        Ok(())
    }

    /// `bytes` read from `name` must have the SHA-256 that `listed_in` gives.
    fn check_digest(
        &self,
        name: &str,
        bytes: &[u8],
        expected: &str,
        listed_in: &str,
    ) -> Result<(), Problem> {
        let actual = crate::digest::sha256_hex(bytes);
        if actual == expected {
            return Ok(());
        }
        Err(Problem::new(
            self.location(name),
            "sha256",
            format!("is {actual} but {} says {expected}", self.location(listed_in)),
        )
        .hint(
            "the file was changed or damaged after publishing; fetch it again from the publisher",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, file: &str) -> IndexEntry {
        IndexEntry {
            version: Some(Version::parse(version).unwrap()),
            revision: None,
            file: file.to_string(),
            sha256: "a".repeat(64),
            size: 1,
            summary: String::new(),
            images: BTreeMap::new(),
            interfaces: Interfaces::default(),
        }
    }

    #[test]
    fn the_index_is_written_sorted_and_reads_back() {
        let mut index = Index::default();
        index.charms.insert(
            "web".into(),
            vec![entry("1.10.0", "web_1.10.0.charm"), entry("1.2.0", "web_1.2.0.charm")],
        );
        let text = index.to_yaml();
        assert!(text.starts_with("# charm repository index"));
        assert!(text.find("1.2.0").unwrap() < text.find("1.10.0").unwrap(), "{text}");
        let back = Index::parse("index.yaml", &text).unwrap();
        assert_eq!(back.charms["web"][0].version, Some(Version::new(1, 2, 0)));
    }

    #[test]
    fn unsafe_or_inconsistent_entries_are_each_reported() {
        let mut index = Index::default();
        let mut bad = entry("1.0.0", "../../etc/passwd");
        bad.sha256 = "XYZ".into();
        index.charms.insert("web".into(), vec![bad, entry("1.0.0", "web_1.0.0.charm")]);
        let text = Index::parse("i.yaml", &serde_yaml::to_string(&index).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(
                "i.yaml: charms.web[0].file: \"../../etc/passwd\" should be \"web_1.0.0.charm\""
            ),
            "{text}"
        );
        assert!(
            text.contains("i.yaml: charms.web[0].sha256: not a lowercase hex SHA-256"),
            "{text}"
        );
        assert!(
            text.contains("i.yaml: charms.web[1].version: version 1.0.0 is listed twice"),
            "{text}"
        );
        let foreign =
            Index::parse("i.yaml", "apiVersion: v1\nkind: List\n").unwrap_err().to_string();
        assert!(foreign.contains("not a charm index"), "{foreign}");
    }
}
