//! Reading the software inside an image archive's images from their layers, without running
//! anything and without unpacking: each layer blob is streamed once (gunzipped on the fly)
//! through a tar reader, and only the files that record packages are kept (see
//! [`super::catalog`]), each read into memory up to a bound; a jar is spooled to a temporary
//! file to be read as a zip. So memory depends on the size of package databases, never on
//! the size of an image. A layer shared by several images is read once.
//!
//! A layer's findings are merged bottom to top, as a container runtime stacks the layers: a
//! later layer's file replaces an earlier one at the same path, its whiteouts (`.wh.NAME`)
//! delete the path and everything under it in the layers below, and an opaque whiteout
//! (`.wh..wh..opq`) hides everything the layers below had in its folder.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::catalog::{self, Found, OsRelease};
use super::{ImageEntry, Layer, Package};
use crate::registry::archive::ImageArchive;
use crate::registry::manifest::{Contents, Descriptor, Digest, ManifestDoc};
use crate::registry::tarindex::{Member, TarIndex, CHUNK};

/// Bounds on what one layer's files may make charmer read.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// A package database or metadata file read into memory (the largest real dpkg status
    /// files are a few MiB).
    pub max_document_bytes: u64,
    /// A jar spooled to a temporary file to be read as a zip.
    pub max_jar_bytes: u64,
    /// Entries of one jar looked at.
    pub max_jar_entries: usize,
    /// Bytes after a Go build-information magic read to parse it.
    pub max_go_info_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_document_bytes: 16 << 20,
            max_jar_bytes: 1 << 30,
            max_jar_entries: 200_000,
            max_go_info_bytes: 1 << 20,
        }
    }
}

/// What a file found in a layer says.
#[derive(Debug, Clone)]
enum Finding {
    /// Packages (possibly none: the file replaces whatever was at its path below).
    Packages(Vec<Found>),
    /// The distribution (`etc/os-release`).
    OsRelease(OsRelease),
}

/// What one layer holds that matters here.
#[derive(Debug, Default)]
struct LayerScan {
    /// Files that record packages, by path.
    files: Vec<(String, Finding)>,
    /// Paths deleted from the layers below.
    whiteouts: Vec<String>,
    /// Folders whose contents in the layers below are hidden.
    opaque: Vec<String>,
    /// Why something was not read (a warning each).
    notes: Vec<String>,
    /// Whether the layer could be read at all.
    read: bool,
}

/// One platform's image of a named image: the reference, the top digest, the platform and
/// its manifest.
struct Target<'a> {
    reference: String,
    digest: &'a Digest,
    platform: Option<String>,
    manifest: &'a ManifestDoc,
}

/// The images of `archive`, each platform's with its layers and packages, and the warnings
/// of what could not be read.
pub fn scan(archive: &ImageArchive, limits: &ScanLimits) -> (Vec<ImageEntry>, Vec<String>) {
    let tar = archive.tar();
    let mut targets = Vec::new();
    // Cosign signatures and attestations travel as images of their own; they hold no
    // filesystem.
    let images =
        archive.images.iter().filter(|n| !crate::registry::cosign::is_signature(&n.reference));
    for named in images {
        let Some(top) = archive.manifest(&named.digest) else { continue };
        match &top.contents {
            Contents::Image { .. } => targets.push(Target {
                reference: named.reference.to_string(),
                digest: &named.digest,
                platform: config_platform(archive, top),
                manifest: top,
            }),
            Contents::Index(children) => {
                for child in children {
                    let Some(doc) = archive.manifest(&child.digest) else { continue };
                    if !matches!(doc.contents, Contents::Image { .. }) {
                        continue;
                    }
                    let platform = child
                        .platform
                        .as_ref()
                        .map(ToString::to_string)
                        .or_else(|| config_platform(archive, doc));
                    targets.push(Target {
                        reference: named.reference.to_string(),
                        digest: &named.digest,
                        platform,
                        manifest: doc,
                    });
                }
            }
        }
    }
    // Attestation manifests of an index (platform unknown/unknown) hold no filesystem.
    targets.retain(|t| t.platform.as_deref() != Some("unknown/unknown"));

    let mut unique: BTreeMap<&Digest, Option<Member>> = BTreeMap::new();
    for target in &targets {
        for layer in layers_of(target.manifest) {
            unique
                .entry(&layer.digest)
                .or_insert_with(|| archive.blob(&layer.digest).map(|blob| blob.location));
        }
    }
    let work: Vec<(&Digest, Member)> =
        unique.iter().filter_map(|(d, m)| m.map(|m| (*d, m))).collect();
    let scanned: BTreeMap<&Digest, LayerScan> = work
        .iter()
        .map(|(d, _)| *d)
        .zip(in_parallel(&work, |(_, m)| scan_layer(tar, *m, limits)))
        .collect();

    let mut warnings = Vec::new();
    for (digest, layer) in &scanned {
        warnings.extend(layer.notes.iter().map(|n| format!("layer {digest}: {n}")));
    }
    let mut entries: Vec<ImageEntry> =
        targets.iter().map(|target| merge(target, &scanned)).collect();
    entries.sort_by(|a, b| (&a.reference, &a.platform).cmp(&(&b.reference, &b.platform)));
    for entry in &entries {
        let unread = entry.layers.iter().filter(|l| !l.scanned).count();
        if unread > 0 {
            warnings.push(format!(
                "{}{}: {unread} of {} layers not read (not in the archive, or compressed in a way charmer does not read); its package list is incomplete",
                entry.reference,
                entry.platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
                entry.layers.len()
            ));
        }
    }
    (entries, warnings)
}

fn layers_of(doc: &ManifestDoc) -> &[Descriptor] {
    match &doc.contents {
        Contents::Image { layers, .. } => layers,
        Contents::Index(_) => &[],
    }
}

/// `os/architecture[/variant]` from an image's config blob, if the archive has it.
fn config_platform(archive: &ImageArchive, doc: &ManifestDoc) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Config {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let Contents::Image { config, .. } = &doc.contents else { return None };
    let blob = archive.blob(&config.digest)?;
    if blob.location.size > crate::registry::tarindex::Limits::default().max_document_bytes {
        return None;
    }
    let mut bytes = vec![0; blob.location.size as usize];
    archive.tar().read_at(blob.location, 0, &mut bytes).ok()?;
    let config: Config = serde_json::from_slice(&bytes).ok()?;
    let mut platform = format!("{}/{}", config.os?, config.architecture?);
    if let Some(variant) = config.variant.filter(|v| !v.is_empty()) {
        platform.push('/');
        platform.push_str(&variant);
    }
    Some(platform)
}

/// Applies `f` to each item on one thread per core (layers are few and each is long work,
/// so every item is its own job), keeping the order.
fn in_parallel<T: Sync, R: Send + Default>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<R> = (0..items.len()).map(|_| R::default()).collect();
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    for (i, result) in done.into_iter().flatten() {
        results[i] = result;
    }
    results
}

/// One image's packages: its layers' findings stacked bottom to top (see the module docs).
fn merge(target: &Target, scanned: &BTreeMap<&Digest, LayerScan>) -> ImageEntry {
    let mut state: BTreeMap<&str, (&Digest, &Finding)> = BTreeMap::new();
    let mut layers = Vec::new();
    for descriptor in layers_of(target.manifest) {
        let scan = scanned.get(&descriptor.digest).filter(|s| s.read);
        layers.push(Layer {
            digest: descriptor.digest.to_string(),
            size: descriptor.size,
            scanned: scan.is_some(),
        });
        let Some(scan) = scan else { continue };
        for gone in &scan.whiteouts {
            state.retain(|path, _| !(*path == gone || under(path, gone)));
        }
        for folder in &scan.opaque {
            state.retain(|path, _| !under(path, folder));
        }
        for (path, finding) in &scan.files {
            state.insert(path, (&descriptor.digest, finding));
        }
    }
    let os = ["etc/os-release", "usr/lib/os-release"].iter().find_map(|p| match state.get(p) {
        Some((_, Finding::OsRelease(os))) => Some(os.clone()),
        _ => None,
    });
    let mut packages = Vec::new();
    for (path, (layer, finding)) in &state {
        let Finding::Packages(found) = finding else { continue };
        for f in found {
            // OS packages' purls name the distribution, which another layer may hold.
            let found = match &os {
                Some(os) => f.clone().with_distro(os),
                None => f.clone(),
            };
            packages.push(Package { found, layer: layer.to_string(), path: path.to_string() });
        }
    }
    packages.sort();
    ImageEntry {
        reference: target.reference.clone(),
        digest: Some(target.digest.to_string()),
        platform: target.platform.clone(),
        manifest: Some(target.manifest.digest.to_string()),
        layers,
        packages,
    }
}

/// Whether `path` is inside the folder `folder` (the empty folder is the root).
fn under(path: &str, folder: &str) -> bool {
    folder.is_empty() || path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
}

/// A reader of one member of an indexed tar.
struct MemberReader<'a> {
    tar: &'a TarIndex,
    member: Member,
    at: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.member.size - self.at).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.tar.read_at(self.member, self.at, &mut buf[..n])?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Reads one layer blob (plain or gzip'd tar; zstd is not read and says so).
fn scan_layer(tar: &TarIndex, member: Member, limits: &ScanLimits) -> LayerScan {
    let mut reader = BufReader::with_capacity(CHUNK, MemberReader { tar, member, at: 0 });
    let mut scan = LayerScan::default();
    let magic = match reader.fill_buf() {
        Ok(bytes) => bytes.get(..4).map(<[u8]>::to_vec).unwrap_or_default(),
        Err(e) => {
            scan.notes.push(format!("unreadable: {e}"));
            return scan;
        }
    };
    let result = if magic.starts_with(&[0x1f, 0x8b]) {
        read_layer(flate2::read::MultiGzDecoder::new(reader), limits, &mut scan)
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        scan.notes.push("zstd-compressed: not read".to_string());
        return scan;
    } else {
        read_layer(reader, limits, &mut scan)
    };
    scan.read = true;
    if let Err(e) = result {
        scan.notes.push(format!("damaged layer, read only up to the damage: {e}"));
    }
    scan
}

/// What a file at some path is, for the scan.
enum Kind {
    Dpkg,
    Apk,
    OsRelease,
    Python,
    Npm,
    Jar,
    /// Anything else: read only if it is an ELF binary (Go build information).
    Other,
}

fn kind_of(path: &str) -> Kind {
    let file = path.rsplit('/').next().unwrap_or(path);
    if path == "var/lib/dpkg/status"
        || path
            .strip_prefix("var/lib/dpkg/status.d/")
            .is_some_and(|n| !n.contains('/') && !n.ends_with(".md5sums") && !n.starts_with('.'))
    {
        Kind::Dpkg
    } else if path == "lib/apk/db/installed" {
        Kind::Apk
    } else if path == "etc/os-release" || path == "usr/lib/os-release" {
        Kind::OsRelease
    } else if file == "METADATA" && path.trim_end_matches("/METADATA").ends_with(".dist-info") {
        Kind::Python
    } else if file == "package.json" && is_node_module(path) {
        Kind::Npm
    } else if [".jar", ".war", ".ear"].iter().any(|e| file.ends_with(e)) {
        Kind::Jar
    } else {
        Kind::Other
    }
}

/// `.../node_modules/NAME/package.json` or `.../node_modules/@SCOPE/NAME/package.json`.
fn is_node_module(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    (n >= 3 && parts[n - 3] == "node_modules")
        || (n >= 4 && parts[n - 4] == "node_modules" && parts[n - 3].starts_with('@'))
}

fn read_layer(reader: impl Read, limits: &ScanLimits, scan: &mut LayerScan) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = raw.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
        let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
        if name == ".wh..wh..opq" {
            scan.opaque.push(folder.to_string());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let gone =
                if folder.is_empty() { hidden.to_string() } else { format!("{folder}/{hidden}") };
            scan.whiteouts.push(gone);
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = path.to_string();
        let finding = match kind_of(&path) {
            Kind::Jar => Some(jar(&mut entry, &path, limits, &mut scan.notes)?),
            Kind::Other => go_binary(&mut entry, limits)?.map(Finding::Packages),
            kind => {
                let Some(bytes) = document(&mut entry, &path, limits, &mut scan.notes)? else {
                    continue;
                };
                let text = String::from_utf8_lossy(&bytes);
                Some(match kind {
                    Kind::Dpkg => Finding::Packages(catalog::dpkg(&text, None)),
                    Kind::Apk => Finding::Packages(catalog::apk(&text, None)),
                    Kind::OsRelease => match catalog::os_release(&text) {
                        Some(os) => Finding::OsRelease(os),
                        None => continue,
                    },
                    Kind::Python => {
                        Finding::Packages(catalog::python_metadata(&text).into_iter().collect())
                    }
                    _ => Finding::Packages(catalog::package_json(&bytes).into_iter().collect()),
                })
            }
        };
        if let Some(finding) = finding {
            scan.files.push((path, finding));
        }
    }
    Ok(())
}

/// A metadata file's bytes, or `None` (and a note) when it is larger than the limit.
fn document(
    entry: &mut impl Read,
    path: &str,
    limits: &ScanLimits,
    notes: &mut Vec<String>,
) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    entry.take(limits.max_document_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limits.max_document_bytes {
        notes.push(format!("{path}: larger than {} bytes, not read", limits.max_document_bytes));
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// The Go build information of an ELF binary, if it is one and has it (`Some(vec![])` for
/// an ELF file without: it still replaces what was at its path below).
fn go_binary(entry: &mut impl Read, limits: &ScanLimits) -> io::Result<Option<Vec<Found>>> {
    let mut magic = [0u8; 4];
    match entry.read_exact(&mut magic) {
        Ok(()) if &magic == b"\x7fELF" => {}
        Ok(()) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let finder = memchr::memmem::Finder::new(catalog::GO_BUILDINFO_MAGIC);
    let keep = catalog::GO_BUILDINFO_MAGIC.len() - 1;
    let mut window: Vec<u8> = Vec::with_capacity(2 * CHUNK);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = entry.read(&mut chunk)?;
        if n == 0 {
            return Ok(Some(Vec::new()));
        }
        window.extend_from_slice(&chunk[..n]);
        while let Some(at) = finder.find(&window) {
            let mut info = window.split_off(at);
            let wanted = limits.max_go_info_bytes.saturating_sub(info.len() as u64);
            (&mut *entry).take(wanted).read_to_end(&mut info)?;
            if let Some(found) = catalog::go_buildinfo(&info) {
                return Ok(Some(found));
            }
            // The magic text appeared as data (the Go toolchain holds it as a constant):
            // search on after it.
            window = info.split_off(1);
        }
        let cut = window.len().saturating_sub(keep);
        window.drain(..cut);
    }
}

/// The packages of a jar: every `META-INF/maven/**/pom.properties` (a shaded jar holds
/// several), else its `MANIFEST.MF`. The jar is spooled to a temporary file (bounded), as a
/// zip is read from its end.
fn jar(
    entry: &mut impl Read,
    path: &str,
    limits: &ScanLimits,
    notes: &mut Vec<String>,
) -> io::Result<Finding> {
    let mut file = tempfile::tempfile()?;
    let copied = io::copy(&mut entry.take(limits.max_jar_bytes + 1), &mut file)?;
    if copied > limits.max_jar_bytes {
        notes.push(format!("{path}: larger than {} bytes, not read", limits.max_jar_bytes));
        return Ok(Finding::Packages(Vec::new()));
    }
    let mut zip = match zip::ZipArchive::new(file) {
        Ok(zip) => zip,
        Err(e) => {
            notes.push(format!("{path}: not a readable jar: {e}"));
            return Ok(Finding::Packages(Vec::new()));
        }
    };
    if zip.len() > limits.max_jar_entries {
        notes.push(format!("{path}: more than {} entries, not read", limits.max_jar_entries));
        return Ok(Finding::Packages(Vec::new()));
    }
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let mut read = |name: &str| -> Option<String> {
        let file = zip.by_name(name).ok()?;
        let mut bytes = Vec::new();
        file.take(limits.max_document_bytes).read_to_end(&mut bytes).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let mut found: Vec<Found> = names
        .iter()
        .filter(|n| n.starts_with("META-INF/maven/") && n.ends_with("/pom.properties"))
        .filter_map(|n| read(n).and_then(|text| catalog::pom_properties(&text)))
        .collect();
    if found.is_empty() {
        let stem = path.rsplit('/').next().unwrap_or(path);
        let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
        found.extend(read("META-INF/MANIFEST.MF").and_then(|t| catalog::jar_manifest(&t, stem)));
    }
    found.sort();
    Ok(Finding::Packages(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_files_are_recognised_by_path() {
        assert!(matches!(kind_of("var/lib/dpkg/status.d/libc6"), Kind::Dpkg));
        assert!(matches!(kind_of("var/lib/dpkg/status.d/libc6.md5sums"), Kind::Other));
        assert!(matches!(
            kind_of("usr/lib/python3/dist-packages/a-1.0.dist-info/METADATA"),
            Kind::Python
        ));
        assert!(matches!(kind_of("app/node_modules/@types/node/package.json"), Kind::Npm));
        assert!(matches!(kind_of("app/node_modules/x/package.json"), Kind::Npm));
        assert!(matches!(kind_of("app/node_modules/x/lib/package.json"), Kind::Other));
        assert!(matches!(kind_of("app/package.json"), Kind::Other));
        assert!(matches!(kind_of("opt/app/lib/guava-33.jar"), Kind::Jar));
        assert!(under("a/b/c", "a/b") && under("a", "") && !under("a/bc", "a/b"));
    }
}
