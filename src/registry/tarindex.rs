//! An index of an untrusted tar archive: where each member's bytes are in the file, so
//! members can be read (and blobs streamed, in parallel) straight from the archive without
//! extracting it. A gzip'd tar is first inflated into an anonymous temporary file.
//!
//! The archive is treated as hostile. Refused, with every problem named: names that are
//! absolute, contain `..` or control characters, or are not UTF-8; duplicate names; symlinks
//! and hard links whose target leaves the archive or does not exist; device files, FIFOs and
//! sparse files; members past the end of the file; more members, or more inflated bytes,
//! than [`Limits`] allows.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::manifest::Digest;
use super::RegistryError;
use crate::charm::archive::unsafe_name_reason;
use crate::diag::{Problem, Problems};
use crate::io_error::{IoError, IoResultExt};

/// Bounds on what an archive may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Members (files, folders and links).
    pub max_members: usize,
    /// Bytes a gzip'd archive may inflate to (a gzip bomb would otherwise fill the disk).
    pub max_inflated_bytes: u64,
    /// Size of a JSON document (manifest, index, config) read into memory.
    pub max_document_bytes: u64,
}

impl Default for Limits {
    /// 1,000,000 members, 1 TiB inflated, 16 MiB documents: far above real image archives
    /// (the biggest manifests and configs are tens of KiB), far below what would hurt.
    fn default() -> Self {
        Limits { max_members: 1_000_000, max_inflated_bytes: 1 << 40, max_document_bytes: 16 << 20 }
    }
}

/// Where one member's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Offset of the first byte in the (inflated) archive file.
    pub offset: u64,
    /// Length.
    pub size: u64,
}

/// The members of a tar archive, by normalized name (no leading `./`), with links resolved
/// to the member they point to.
#[derive(Debug)]
pub struct TarIndex {
    label: String,
    file: Arc<File>,
    members: BTreeMap<String, Member>,
}

/// Size of one read when streaming or hashing a member: large enough that syscalls are
/// cheap, small enough that parallel streams keep memory flat.
pub const CHUNK: usize = 1 << 20;

impl TarIndex {
    /// Opens and indexes `path` (a tar, or a gzip'd tar).
    pub fn open(path: &Path, limits: &Limits) -> Result<TarIndex, RegistryError> {
        let label = path.display().to_string();
        let io = |source| RegistryError::Io(IoError::new(&label, source));
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 2];
        let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let file = if gzip { inflate(&label, file, limits)? } else { file };
        Self::index(label, file, limits)
    }

    fn index(label: String, file: File, limits: &Limits) -> Result<TarIndex, RegistryError> {
        let io = |source| RegistryError::Io(IoError::new(&label, source));
        let length = file.metadata().map_err(io)?.len();
        let mut problems = Problems::default();
        let mut members = BTreeMap::new();
        let mut links: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        let mut archive = tar::Archive::new(&file);
        let entries = archive.entries_with_seek().map_err(io)?;
        let mut count = 0usize;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    problems.push(
                        Problem::new(&label, "", format!("damaged tar archive: {e}"))
                            .hint("copy the file again"),
                    );
                    break;
                }
            };
            count += 1;
            if count > limits.max_members {
                problems.push(Problem::new(
                    &label,
                    "",
                    format!("more than {} members", limits.max_members),
                ));
                break;
            }
            let kind = entry.header().entry_type();
            if kind == EntryType::XGlobalHeader {
                continue;
            }
            let Ok(raw) = String::from_utf8(entry.path_bytes().into_owned()) else {
                problems.push(Problem::new(&label, format!("member {count}"), "name is not UTF-8"));
                continue;
            };
            let name = normalize_member(&raw);
            if name.is_empty() && kind == EntryType::Directory {
                continue;
            }
            if let Some(why) = unsafe_name_reason(&name) {
                problems.push(
                    Problem::new(&label, &raw, why).hint("the archive is unsafe; do not use it"),
                );
                continue;
            }
            let name = name.trim_end_matches('/').to_string();
            if members.contains_key(&name) || links.contains_key(&name) {
                problems.push(Problem::new(&label, &name, "duplicate member"));
                continue;
            }
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    let member = Member { offset: entry.raw_file_position(), size: entry.size() };
                    if member.offset.saturating_add(member.size) > length {
                        problems.push(
                            Problem::new(
                                &label,
                                &name,
                                "truncated: the member ends past the end of the archive",
                            )
                            .hint("copy the file again"),
                        );
                        continue;
                    }
                    members.insert(name, member);
                }
                EntryType::Directory => {}
                EntryType::Symlink | EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let resolved = if kind == EntryType::Symlink {
                        resolve_symlink(&name, &target)
                    } else {
                        normalize_path(&normalize_member(&target))
                    };
                    links.insert(name, (target, resolved));
                }
                other => problems.push(
                    Problem::new(
                        &label,
                        &name,
                        format!("unsupported member type {:?}", other.as_byte() as char),
                    )
                    .hint("image archives hold files, folders and links only"),
                ),
            }
        }
        for (name, (target, resolved)) in &links {
            match follow(resolved.as_deref(), &members, &links) {
                Ok(member) => {
                    members.insert(name.clone(), member);
                }
                Err(why) => problems.push(
                    Problem::new(&label, name, format!("link to {target:?} {why}"))
                        .hint("the archive is unsafe; do not use it"),
                ),
            }
        }
        problems
            .into_result(TarIndex { label, file: Arc::new(file), members })
            .map_err(RegistryError::from)
    }

    /// The archive's path, as problems name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The member called `name` (after link resolution), if any.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members.get(name).copied()
    }

    /// Every member name (links included), sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// The (inflated) archive file, to read members from at their offsets.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Reads a whole member into memory; refuses one larger than `max` bytes.
    pub fn read(&self, name: &str, max: u64) -> Result<Vec<u8>, RegistryError> {
        let member = self.member(name).ok_or_else(|| Problem::new(&self.label, name, "missing"))?;
        if member.size > max {
            return Err(Problem::new(
                &self.label,
                name,
                format!("{} bytes, more than the limit of {max} for a document", member.size),
            )
            .into());
        }
        let mut bytes = vec![0; member.size as usize];
        self.file.read_exact_at(&mut bytes, member.offset).at(&self.label)?;
        Ok(bytes)
    }

    /// Reads at most `buf.len()` bytes of `member` at `at` bytes into it.
    pub fn read_at(&self, member: Member, at: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, member.offset + at)
    }

    /// The SHA-256 of a member's bytes, read in [`CHUNK`]s; `progress` gets each chunk's size.
    pub fn sha256(&self, member: Member, progress: &dyn Fn(u64)) -> io::Result<Digest> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        while done < member.size {
            let n = (member.size - done).min(CHUNK as u64) as usize;
            self.read_at(member, done, &mut buf[..n])?;
            hasher.update(&buf[..n]);
            done += n as u64;
            progress(n as u64);
        }
        Ok(Digest::from_hasher(hasher))
    }
}

/// Inflates a gzip'd archive into an anonymous temporary file, within the limit.
fn inflate(label: &str, file: File, limits: &Limits) -> Result<File, RegistryError> {
    let io = |source| RegistryError::Io(IoError::new(label, source));
    let mut out = tempfile::tempfile().at("temporary file")?;
    let decoder = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(CHUNK, file));
    let copied = io::copy(&mut decoder.take(limits.max_inflated_bytes + 1), &mut out);
    match copied {
        Ok(n) if n > limits.max_inflated_bytes => Err(Problem::new(
            label,
            "",
            format!("inflates to more than {} bytes (gzip bomb?)", limits.max_inflated_bytes),
        )
        .into()),
        Ok(_) => {
            out.seek(SeekFrom::Start(0)).map_err(io)?;
            Ok(out)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            Err(Problem::new(label, "", format!("damaged gzip stream: {e}"))
                .hint("copy the file again")
                .into())
        }
        Err(e) => Err(io(e)),
    }
}

/// A member name without leading `./` (tar tools write names both ways).
fn normalize_member(name: &str) -> String {
    let mut name = name;
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    if name == "." {
        String::new()
    } else {
        name.to_string()
    }
}

/// Resolves `.` and `..` in a relative path; `None` if it climbs out of the archive root
/// or is absolute.
fn normalize_path(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Where a symlink called `name` pointing at `target` leads, relative to the archive root.
fn resolve_symlink(name: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    match name.rsplit_once('/') {
        Some((dir, _)) => normalize_path(&format!("{dir}/{target}")),
        None => normalize_path(target),
    }
}

/// The file a link chain ends at (at most 16 hops, against loops).
fn follow<'a>(
    mut target: Option<&'a str>,
    members: &BTreeMap<String, Member>,
    links: &'a BTreeMap<String, (String, Option<String>)>,
) -> Result<Member, &'static str> {
    for _ in 0..16 {
        let name = target.ok_or("points outside the archive")?;
        if let Some(member) = members.get(name) {
            return Ok(*member);
        }
        target = links.get(name).ok_or("points to a missing member")?.1.as_deref();
    }
    Err("is part of a loop of links")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(name, type, data or link target)` members.
    fn tar_file(members: &[(&str, EntryType, &str)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        for (name, kind, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_size(0);
                builder.append_link(&mut header, name, data).unwrap();
            } else {
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, name, data.as_bytes()).unwrap();
            }
        }
        builder.finish().unwrap();
        file
    }

    fn problems(members: &[(&str, EntryType, &str)]) -> String {
        let file = tar_file(members);
        TarIndex::open(file.path(), &Limits::default()).unwrap_err().to_string()
    }

    #[test]
    fn links_inside_resolve_and_everything_odd_is_named() {
        let file = tar_file(&[
            ("./a/data", EntryType::Regular, "hello"),
            ("b/sym", EntryType::Symlink, "../a/data"),
            ("c", EntryType::Link, "a/data"),
            ("d", EntryType::Symlink, "b/sym"),
        ]);
        let index = TarIndex::open(file.path(), &Limits::default()).unwrap();
        let data = index.member("a/data").unwrap();
        assert_eq!([index.member("b/sym"), index.member("c"), index.member("d")], [Some(data); 3]);
        assert_eq!(index.read("d", 100).unwrap(), b"hello");
        assert!(index.read("d", 2).is_err());

        let err = problems(&[
            ("x", EntryType::Regular, "1"),
            ("x", EntryType::Regular, "2"),
            ("loop1", EntryType::Symlink, "loop2"),
            ("loop2", EntryType::Symlink, "loop1"),
            ("gone", EntryType::Symlink, "nothing"),
            ("dev", EntryType::Char, ""),
        ]);
        for expected in [
            "x: duplicate member",
            "loop1: link to \"loop2\" is part of a loop",
            "gone: link to \"nothing\" points to a missing member",
            "dev: unsupported member type '3'",
        ] {
            assert!(err.contains(expected), "{expected} not in {err}");
        }
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        let plain = tar_file(&[("a", EntryType::Regular, "hello")]);
        let gzipped = tempfile::NamedTempFile::new().unwrap();
        let mut encoder =
            flate2::write::GzEncoder::new(gzipped.reopen().unwrap(), flate2::Compression::fast());
        std::io::copy(&mut File::open(plain.path()).unwrap(), &mut encoder).unwrap();
        encoder.finish().unwrap();
        let index = TarIndex::open(gzipped.path(), &Limits::default()).unwrap();
        assert_eq!(index.read("a", 10).unwrap(), b"hello");
        let tight = Limits { max_inflated_bytes: 1024, ..Limits::default() };
        assert!(TarIndex::open(gzipped.path(), &tight)
            .unwrap_err()
            .to_string()
            .contains("gzip bomb"));
    }

    #[test]
    fn link_targets_stay_inside() {
        assert_eq!(
            resolve_symlink("a/b/layer.tar", "../c/layer.tar").as_deref(),
            Some("a/c/layer.tar")
        );
        assert_eq!(resolve_symlink("a/layer.tar", "../../etc/passwd"), None);
        assert_eq!(resolve_symlink("a/layer.tar", "/etc/passwd"), None);
        assert_eq!(resolve_symlink("top", "a/x").as_deref(), Some("a/x"));
        assert_eq!(normalize_path("./x//y/./z").as_deref(), Some("x/y/z"));
        assert_eq!(normalize_member("././blobs/sha256/"), "blobs/sha256/");
    }
}
