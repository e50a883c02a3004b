//! Writing tar archives whose members come from memory, local files and registries.
//!
//! Every member's size is known before a byte is fetched (descriptors carry sizes), so the
//! whole tar is laid out first: headers at fixed offsets in a pre-sized temporary file, then
//! registry blobs are downloaded in parallel, each written straight to its own range. Nothing
//! is staged twice and memory stays flat. The temporary file is renamed over the output only
//! when every member is written and verified, so a failure leaves nothing behind.
//!
//! The output is deterministic: members sorted by name, ustar headers with mode 0644, owner
//! 0:0 and mtime 0.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};

use super::client::{Client, Repo};
use super::manifest::Digest;
use super::progress::{Progress, Task};
use super::tarindex::CHUNK;
use super::RegistryError;
use crate::charm::archive::unsafe_name_reason;
use crate::diag::{Problem, Problems};
use crate::io_error::IoError;

/// Where a member's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A local file, which must still have the size it was planned with.
    File(PathBuf),
    /// A blob in a registry, checked against its digest as it arrives.
    Remote {
        /// The repository to fetch it from.
        repo: Repo,
        /// Its digest.
        digest: Digest,
    },
}

/// One member to write.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Member name (relative, `/`-separated).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the bytes come from.
    pub content: Content,
}

impl Entry {
    /// A member holding `bytes`.
    pub fn bytes(name: impl Into<String>, bytes: Vec<u8>) -> Entry {
        Entry { name: name.into(), size: bytes.len() as u64, content: Content::Bytes(bytes) }
    }
}

const BLOCK: u64 = 512;

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// Writes `entries` as a tar at `out` (replacing it): local members first, then registry
/// blobs, `jobs` at a time, through `client`.
pub async fn write_tar(
    entries: Vec<Entry>,
    out: &Path,
    client: &Client,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(), RegistryError> {
    let no_tail = |_: &Path| Ok::<_, RegistryError>(Vec::new());
    write_tar_with_tail(entries, out, client, jobs, progress, no_tail).await
}

/// Like [`write_tar`], then, before the archive is moved into place, `tail` reads the
/// complete archive (at the path it is given) and returns members made from it, `(name,
/// bytes)`, which are appended after the sorted ones: what can only be computed from the
/// rest, as an air-gap archive's bill of materials and the checksums that cover it.
pub async fn write_tar_with_tail<E: From<RegistryError>>(
    mut entries: Vec<Entry>,
    out: &Path,
    client: &Client,
    jobs: usize,
    progress: &dyn Progress,
    tail: impl FnOnce(&Path) -> Result<Vec<(String, Vec<u8>)>, E>,
) -> Result<(), E> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let label = out.display().to_string();
    let headers = headers(&label, &entries)?;
    let io = |source| RegistryError::Io(IoError::new(&label, source));
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Named for this process, so a later run can tell a killed run's leftover from a live one.
    let temp = tempfile::Builder::new()
        .prefix(&crate::output::leftover_prefix("export"))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    let file = temp.as_file();

    let mut offset = 0u64;
    let mut placed = Vec::with_capacity(entries.len());
    for entry in &entries {
        placed.push((entry, offset + BLOCK));
        offset += BLOCK + padded(entry.size);
    }
    // Two zero blocks end a tar; a sparse, zero-filled tail is what set_len gives.
    file.set_len(offset + 2 * BLOCK).map_err(io)?;

    let local: u64 =
        entries.iter().filter(|e| matches!(e.content, Content::File(_))).map(|e| e.size).sum();
    progress.begin(Task::Write, local);
    for ((entry, data_offset), header) in placed.iter().zip(&headers) {
        file.write_all_at(header, data_offset - BLOCK).map_err(io)?;
        match &entry.content {
            Content::Bytes(bytes) => file.write_all_at(bytes, *data_offset).map_err(io)?,
            Content::File(path) => copy_file(path, entry.size, file, *data_offset, progress)?,
            Content::Remote { .. } => {}
        }
    }
    progress.end(Task::Write);

    let mut remote: Vec<(&Entry, u64)> = placed
        .iter()
        .filter(|(e, _)| matches!(e.content, Content::Remote { .. }))
        .copied()
        .collect();
    remote.sort_by_key(|(e, _)| std::cmp::Reverse(e.size));
    progress.begin(Task::Download, remote.iter().map(|(e, _)| e.size).sum());
    let downloads = stream::iter(remote.into_iter().map(|(entry, at)| async move {
        let Content::Remote { repo, digest } = &entry.content else { return Ok(()) };
        client.retrying(|| download(client, repo, digest, entry.size, file, at, progress)).await
    }))
    .buffer_unordered(jobs.max(1))
    .try_collect::<Vec<()>>()
    .await;
    progress.end(Task::Download);
    downloads?;

    let tail: Vec<Entry> =
        tail(temp.path())?.into_iter().map(|(name, bytes)| Entry::bytes(name, bytes)).collect();
    if !tail.is_empty() {
        let names: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        if let Some(clash) = tail.iter().find(|e| names.contains(e.name.as_str())) {
            return Err(
                RegistryError::from(Problem::new(&label, &clash.name, "duplicate member")).into()
            );
        }
        for (entry, header) in tail.iter().zip(self::headers(&label, &tail)?) {
            let Content::Bytes(bytes) = &entry.content else { continue };
            file.write_all_at(&header, offset).map_err(io)?;
            file.write_all_at(bytes, offset + BLOCK).map_err(io)?;
            offset += BLOCK + padded(entry.size);
        }
        file.set_len(offset + 2 * BLOCK).map_err(io)?;
    }

    // A temp file is created 0600; the archive is an output like any other (0644).
    let readable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
    file.set_permissions(readable).map_err(io)?;
    file.sync_all().map_err(io)?;
    temp.persist(out).map_err(|e| io(e.error))?;
    Ok(())
}

/// One ustar header per entry, after checking names: safe, unique, and short enough for
/// ustar (255 bytes split at a `/`).
fn headers(label: &str, entries: &[Entry]) -> Result<Vec<[u8; 512]>, RegistryError> {
    let mut problems = Problems::default();
    let mut seen = BTreeSet::new();
    let mut headers = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(why) = unsafe_name_reason(&entry.name)
            .or_else(|| (!seen.insert(&entry.name)).then_some("duplicate member"))
        {
            problems.push(Problem::new(label, &entry.name, why));
            continue;
        }
        let mut header = tar::Header::new_ustar();
        if let Err(e) = header.set_path(&entry.name) {
            problems.push(Problem::new(
                label,
                &entry.name,
                format!("name cannot be stored in a tar header: {e}"),
            ));
            continue;
        }
        header.set_size(entry.size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        headers.push(*header.as_bytes());
    }
    problems.into_result(headers).map_err(RegistryError::from)
}

/// Copies exactly `size` bytes of a local file to `at` in `out`.
fn copy_file(
    path: &Path,
    size: u64,
    out: &File,
    at: u64,
    progress: &dyn Progress,
) -> Result<(), RegistryError> {
    let label = path.display().to_string();
    let io = |source| RegistryError::Io(IoError::new(&label, source));
    let mut input = File::open(path).map_err(io)?.take(size + 1);
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        if done + n as u64 > size {
            break;
        }
        out.write_all_at(&buf[..n], at + done).map_err(io)?;
        done += n as u64;
        progress.advance(Task::Write, n as u64);
    }
    if done != size || input.read(&mut buf).map_err(io)? != 0 {
        return Err(Problem::new(label, "", "changed while the archive was being written")
            .hint("run again when nothing writes to it")
            .into());
    }
    Ok(())
}

/// Fetches one blob into `at..at+size` of `out`, hashing as it arrives; a wrong size or
/// digest is an error (never retried: the registry would serve the same bytes again).
async fn download(
    client: &Client,
    repo: &Repo,
    digest: &Digest,
    size: u64,
    out: &File,
    at: u64,
    progress: &dyn Progress,
) -> Result<(), RegistryError> {
    let what = format!("GET blob {repo}@{digest}");
    let mut response = client.get_blob(repo, digest).await?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| RegistryError::Transport {
        what: what.clone(),
        message: crate::transport::error_chain(&e),
    })? {
        if done + chunk.len() as u64 > size {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual: format!("more than the {size} bytes its descriptor says"),
            });
        }
        hasher.update(&chunk);
        // A write to the page cache: brief enough to do on the async worker.
        out.write_all_at(&chunk, at + done).map_err(|source| {
            RegistryError::Io(IoError::new("the archive being written", source))
        })?;
        done += chunk.len() as u64;
        progress.advance(Task::Download, chunk.len() as u64);
    }
    if done != size {
        return Err(RegistryError::Transport {
            what,
            message: format!("the blob ended after {done} of {size} bytes"),
        });
    }
    let actual = Digest::from_hasher(hasher);
    if &actual != digest {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_writing() {
        let entries = vec![
            Entry::bytes("a/../b", vec![]),
            Entry::bytes("x", vec![1]),
            Entry::bytes("x", vec![2]),
        ];
        let err = headers("out.tar", &entries).unwrap_err().to_string();
        assert!(
            err.contains("a/../b: path traversal") && err.contains("x: duplicate member"),
            "{err}"
        );
    }
}
