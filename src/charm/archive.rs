//! Reading and writing `.charm` zips.
//!
//! Writing is reproducible: entries sorted by path, every timestamp 1980-01-01 00:00 (the
//! zip epoch), modes 0644 or 0755, deflate at a fixed level, no directory entries and no
//! extra fields, so the same files give the same bytes on any machine.
//!
//! Reading treats the archive as hostile: see [`read_zip`] for what is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use super::{CharmError, CharmFile};
use crate::diag::{Problem, Problems};
use crate::io_error::IoError;

/// Bounds on what a charm may hold, against zip bombs and runaway folders.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total uncompressed size of all files.
    pub max_total_bytes: u64,
    /// Number of entries.
    pub max_entries: usize,
}

impl Default for Limits {
    /// 256 MiB and 50,000 entries: well above real charms (Canonical's, with a bundled
    /// Python virtualenv, are tens of MiB), far below what would hurt the machine.
    fn default() -> Self {
        Limits { max_total_bytes: 256 << 20, max_entries: 50_000 }
    }
}

impl Limits {
    /// The largest archive file read: its content (stored, at worst, uncompressed) plus the
    /// zip's own headers, 64 MiB being over 1 KiB of headers for each of 50,000 entries. A
    /// larger file is refused by its size before it is read into memory.
    pub fn max_archive_bytes(&self) -> u64 {
        self.max_total_bytes + (64 << 20)
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Packs files into a reproducible zip (see the module docs).
///
/// Written by hand rather than with the `zip` crate's writer, which builds a fresh ~300 KiB
/// deflate state for every entry: zeroing those dominated hashing large bundles (the lock
/// records every charm folder's archive digest). Here one compressor per thread is reset
/// between entries. The format is the plain one Juju reads: local headers, deflate (method
/// 8), a central directory with Unix modes, no extra fields, no data descriptors, no ZIP64
/// ([`Limits`] keep every size and count within 32-bit and 16-bit fields).
pub fn pack(files: &BTreeMap<String, CharmFile>) -> Vec<u8> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::new(6), false));
    }
    // 1980-01-01 00:00 in MS-DOS date and time fields.
    const DOS_DATE: u16 = (1 << 5) | 1;
    const DOS_TIME: u16 = 0;
    let field32 = |n: usize| u32::try_from(n).expect("charm sizes are bounded by Limits");
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, file) in files {
        let compressed = COMPRESSOR.with(|c| deflate(&mut c.borrow_mut(), &file.data));
        let crc = crc32fast::hash(&file.data);
        let flags: u16 = if name.is_ascii() { 0 } else { 1 << 11 }; // bit 11: UTF-8 name
        let offset = field32(out.len());
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0 (deflate)
            buf.extend_from_slice(&flags.to_le_bytes());
            buf.extend_from_slice(&8u16.to_le_bytes()); // deflate
            buf.extend_from_slice(&DOS_TIME.to_le_bytes());
            buf.extend_from_slice(&DOS_DATE.to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&field32(compressed.len()).to_le_bytes());
            buf.extend_from_slice(&field32(file.data.len()).to_le_bytes());
            buf.extend_from_slice(
                &u16::try_from(name.len()).expect("names are short").to_le_bytes(),
            );
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&compressed);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by Unix, zip 2.0
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk number
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        let mode: u32 = 0o100_000 | if file.executable { 0o755 } else { 0o644 };
        central.extend_from_slice(&(mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let entries = u16::try_from(files.len()).expect("entry count is bounded by Limits");
    let central_offset = field32(out.len());
    let central_size = field32(central.len());
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // this disk, disk with the directory
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

/// Raw deflate of `data` with a reset, reused compressor.
fn deflate(compressor: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    compressor.reset();
    let mut compressed = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compressor.total_in()).unwrap_or(usize::MAX).min(data.len());
        if compressed.len() == compressed.capacity() {
            compressed.reserve(compressed.capacity().max(1024));
        }
        // Compressing into memory cannot fail; a stream error would mean a flate2 bug.
        let status = compressor
            .compress_vec(&data[consumed..], &mut compressed, flate2::FlushCompress::Finish)
            .expect("deflate into memory");
        if status == flate2::Status::StreamEnd {
            return compressed;
        }
    }
}

/// Checks one member name: relative, `/`-separated, no `..`, no backslash, no empty or `.`
/// component, no control characters.
pub fn check_member_name(archive: &str, name: &str) -> Result<(), Problem> {
    match unsafe_name_reason(name) {
        Some(why) => Err(Problem::new(archive, name, why).hint(UNSAFE_HINT)),
        None => Ok(()),
    }
}

/// Why a member name of an untrusted archive (zip or tar) is unsafe to use as a path, if it
/// is: see [`check_member_name`]. A trailing `/` (a folder entry) is allowed.
pub fn unsafe_name_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty entry name");
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return Some("absolute path");
    }
    if name.contains('\\') {
        return Some("backslash in entry name");
    }
    if name.chars().any(char::is_control) {
        return Some("control character in entry name");
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for part in trimmed.split('/') {
        match part {
            ".." => return Some("path traversal (..)"),
            "" | "." => return Some("empty or '.' path component"),
            _ => {}
        }
    }
    None
}

/// The hint on every problem that makes an archive unsafe to read.
const UNSAFE_HINT: &str = "the archive is unsafe; rebuild it with charmer pack";

/// Names given to more than one record of the central directory starting at `start`.
///
/// Hand-written because the `zip` crate keys its entries by name and silently keeps one
/// record per name (zip-rs/zip2 issues 488 and 841): a hostile archive could carry two
/// `metadata.yaml`s, one for charmer and another for a reader that takes the other record.
/// Only the fixed part of each record is read (APPNOTE 4.3.12: signature, name, extra and
/// comment lengths at offsets 28, 30, 32, name at 46), from where the crate found the directory.
fn duplicate_names(bytes: &[u8], start: u64) -> Vec<String> {
    let u16_at =
        |at: usize| bytes.get(at..at + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
    let mut at = usize::try_from(start).unwrap_or(usize::MAX);
    while bytes.get(at..at.saturating_add(4)) == Some(&[0x50, 0x4b, 0x01, 0x02]) {
        let (Some(name_len), Some(extra_len), Some(comment_len)) =
            (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32))
        else {
            break;
        };
        let Some(name) = bytes.get(at + 46..at + 46 + name_len) else { break };
        *counts.entry(name).or_default() += 1;
        at += 46 + name_len + extra_len + comment_len;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// Reads an untrusted zip into files, refusing (with every problem named): a damaged or
/// truncated zip, unsafe names ([`check_member_name`]), non-UTF-8 names, symlinks,
/// duplicate names, encrypted entries, more entries or bytes than `limits` (refused from the
/// sizes the headers declare, before inflating), entries that inflate to another size than
/// they declare, and CRC mismatches.
pub fn read_zip(
    archive: &str,
    bytes: &[u8],
    limits: &Limits,
) -> Result<BTreeMap<String, CharmFile>, CharmError> {
    let mut zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        Problem::new(archive, "", format!("not a readable zip archive: {e}"))
            .hint("the file is damaged or truncated; copy it again")
    })?;
    if zip.len() > limits.max_entries {
        return Err(Problem::new(
            archive,
            "",
            format!("{} entries, more than the limit of {}", zip.len(), limits.max_entries),
        )
        .into());
    }
    let mut problems = Problems::default();
    for name in duplicate_names(bytes, zip.central_directory_start()) {
        problems.push(Problem::new(archive, name, "duplicate entry").hint(UNSAFE_HINT));
    }
    let mut seen = BTreeSet::new();
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let (name, is_dir, executable, declared) = {
            let entry = match zip.by_index_raw(index) {
                Ok(entry) => entry,
                Err(e) => {
                    problems.push(Problem::new(
                        archive,
                        format!("entry {index}"),
                        format!("unreadable: {e}"),
                    ));
                    continue;
                }
            };
            let Ok(name) = std::str::from_utf8(entry.name_raw()).map(str::to_string) else {
                problems.push(Problem::new(
                    archive,
                    format!("entry {index}"),
                    "entry name is not UTF-8",
                ));
                continue;
            };
            if let Err(p) = check_member_name(archive, &name) {
                problems.push(p);
                continue;
            }
            if !seen.insert(name.trim_end_matches('/').to_string()) {
                problems.push(Problem::new(archive, &name, "duplicate entry").hint(UNSAFE_HINT));
                continue;
            }
            if entry.encrypted() {
                problems.push(
                    Problem::new(archive, &name, "encrypted entry")
                        .hint("charms are never encrypted"),
                );
                continue;
            }
            let mode = entry.unix_mode().unwrap_or(0);
            if mode & S_IFMT == S_IFLNK {
                problems.push(
                    Problem::new(archive, &name, "symlink entry")
                        .hint("charms hold plain files only"),
                );
                continue;
            }
            (name, entry.is_dir(), mode & 0o111 != 0, entry.size())
        };
        if is_dir {
            continue;
        }
        if let Err(p) = check_parsed_yaml_size(archive, &name, declared) {
            problems.push(p);
            continue;
        }
        // The declared size bounds what is inflated, and the bytes really inflated must
        // match it: a bomb is refused from its header, a lying header by its content.
        if declared > limits.max_total_bytes.saturating_sub(total) {
            problems.push(Problem::new(
                archive,
                &name,
                format!(
                    "uncompressed content exceeds the limit of {} bytes (zip bomb?)",
                    limits.max_total_bytes
                ),
            ));
            break;
        }
        let mut data = Vec::new();
        let read = zip
            .by_index(index)
            .and_then(|entry| Ok(entry.take(declared + 1).read_to_end(&mut data)?));
        if let Err(e) = read {
            problems.push(
                Problem::new(archive, &name, format!("cannot be inflated: {e}"))
                    .hint("the archive is damaged"),
            );
            continue;
        }
        let inflated = data.len() as u64;
        if inflated != declared {
            let what = if inflated > declared {
                format!("more than {declared}")
            } else {
                inflated.to_string()
            };
            problems.push(
                Problem::new(
                    archive,
                    &name,
                    format!("inflates to {what} bytes but its header declares {declared}"),
                )
                .hint("the archive is damaged or forged"),
            );
            continue;
        }
        total += inflated;
        files.insert(name, CharmFile { data, executable });
    }
    problems.into_result(files).map_err(CharmError::from)
}

/// Reads a charm source folder (see [`super::Charm::from_dir`]) within `limits`.
pub fn read_dir(dir: &Path, limits: &Limits) -> Result<BTreeMap<String, CharmFile>, CharmError> {
    let io = |path: &Path, source: std::io::Error| CharmError::Io(IoError::new(path, source));
    let root = dir.canonicalize().map_err(|e| io(dir, e))?;
    let label = dir.display().to_string();
    let mut problems = Problems::default();
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    // Folders reached through a symlink: only files under them (or symlinks themselves) need
    // the costly canonical-path check.
    let mut linked_dirs: Vec<PathBuf> = Vec::new();
    let walker = walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.clone());
            io(&path, e.into())
        })?;
        if entry.file_type().is_dir() && entry.path_is_symlink() {
            linked_dirs.push(entry.path().to_path_buf());
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(&root).unwrap_or(entry.path());
        // Archives beside the sources are earlier packs (`charmer pack . --out .`), not content.
        if entry.depth() == 1 && relative.extension().is_some_and(|e| e == "charm") {
            continue;
        }
        let Some(name) = relative.to_str().map(str::to_string) else {
            problems.push(Problem::new(
                &label,
                relative.display().to_string(),
                "file name is not UTF-8",
            ));
            continue;
        };
        // Symlinks (to files or folders) are followed only while they stay inside the charm.
        if entry.path_is_symlink() || linked_dirs.iter().any(|d| entry.path().starts_with(d)) {
            let real = entry.path().canonicalize().map_err(|e| io(entry.path(), e))?;
            if !real.starts_with(&root) {
                problems.push(
                    Problem::new(
                        &label,
                        &name,
                        format!("symlink points outside the charm, to {}", real.display()),
                    )
                    .hint("copy the file into the charm instead"),
                );
                continue;
            }
        }
        if let Err(p) = check_member_name(&label, &name) {
            problems.push(p);
            continue;
        }
        // The size is checked before the file is read, so a huge file costs nothing.
        let size = entry.metadata().map_err(|e| io(entry.path(), e.into()))?.len();
        if let Err(p) = check_parsed_yaml_size(&label, &name, size) {
            problems.push(p);
            continue;
        }
        let data = if total + size > limits.max_total_bytes {
            Vec::new()
        } else {
            std::fs::read(entry.path()).map_err(|e| io(entry.path(), e))?
        };
        total += size.max(data.len() as u64);
        if total > limits.max_total_bytes {
            return Err(Problem::new(
                &label,
                &name,
                format!("the charm's files exceed the limit of {} bytes", limits.max_total_bytes),
            )
            .into());
        }
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            entry.metadata().map_err(|e| io(entry.path(), e.into()))?.permissions().mode() & 0o111
                != 0
        };
        files.insert(name, CharmFile { data, executable });
    }
    if files.len() > limits.max_entries {
        problems.push(Problem::new(
            &label,
            "",
            format!("{} files, more than the limit of {}", files.len(), limits.max_entries),
        ));
    }
    problems.into_result(files).map_err(CharmError::from)
}

/// The charm's own YAML files, which charmer parses (other files are only carried).
const PARSED_YAML: [&str; 5] =
    ["metadata.yaml", "config.yaml", "manifest.yaml", "actions.yaml", super::charmcraft::FILE];

/// Refuses a parsed YAML file larger than the YAML limit by its size alone, before it is
/// read or inflated: the charm-wide limit would let one grow to hundreds of MiB first.
fn check_parsed_yaml_size(label: &str, name: &str, size: u64) -> Result<(), Problem> {
    if PARSED_YAML.contains(&name) {
        crate::contract::check_yaml_size(&format!("{label}/{name}"), size)?;
    }
    Ok(())
}

/// Unpacks files into `dest`, which must not exist yet. The files are written to a temporary
/// sibling folder first and renamed into place, so nothing half-done is left behind.
pub fn unpack(files: &BTreeMap<String, CharmFile>, dest: &Path) -> Result<PathBuf, CharmError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path, source| CharmError::Io(IoError::new(path, source));
    if dest.exists() {
        return Err(Problem::new(dest.display().to_string(), "", "already exists")
            .hint("unpack into a new folder")
            .into());
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".charmer-unpack")
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))?;
    for (name, file) in files {
        let path = staging.path().join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| io(folder, e))?;
        }
        std::fs::write(&path, &file.data).map_err(|e| io(&path, e))?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(&path, e))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dest).map_err(|e| io(dest, e))?;
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_archives_read_back_exactly_including_empty_unicode_and_large_files() {
        let big: Vec<u8> =
            (0..600_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let files = BTreeMap::from([
            ("empty".to_string(), CharmFile { data: Vec::new(), executable: false }),
            (
                "templates/ünïcode.yaml".to_string(),
                CharmFile { data: b"kind: x\n".to_vec(), executable: false },
            ),
            ("dispatch".to_string(), CharmFile { data: b"#!/bin/sh\n".to_vec(), executable: true }),
            ("files/big.bin".to_string(), CharmFile { data: big, executable: false }),
        ]);
        let bytes = pack(&files);
        assert_eq!(read_zip("t.charm", &bytes, &Limits::default()).unwrap(), files);
        assert_eq!(pack(&files), bytes, "the compressor is reset between archives");
    }
}
