//! Pushing an image archive into a registry (`images push`).
//!
//! Every image goes to the same path under the target registry (and prefix), by digest,
//! keeping its tags. The work is planned before anything is sent:
//! 1. `HEAD` each image's manifest: an image whose tag already serves the same digest is done
//!    (the registry accepted that manifest only with all its blobs, so nothing else is asked).
//! 2. `HEAD` every blob of the other images in their target repositories, concurrently.
//! 3. Each missing blob is sent once, largest first, `jobs` at a time, streamed from the
//!    archive file (flat memory whatever the size); the other repositories that need it get
//!    it by cross-repository mount. A blob the registry has in another repository is only
//!    mounted.
//! 4. Manifests go last, children before the index listing them, then the tags.
//!
//! A blob the archive leaves out (a delta air-gap archive, [`PushOptions::left_out`]) must
//! be in the registry already: in its target repository, or in a repository that had it
//! when the earlier archive was imported, whence it is mounted. Any that is in neither stops
//! the push after step 2, before a blob or manifest is sent.
//!
//! Verification and resumption: while uploads stream, a separate thread hashes every blob
//! about to be sent; an upload is committed (the final `PUT`) only once all of them have
//! matched their digests, so a damaged archive leaves nothing in the registry. A transient
//! failure is retried with backoff; a re-run after an interruption finds the committed blobs
//! by `HEAD` and sends only the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::watch;

use super::archive::{check_blob, Blob, ImageArchive};
use super::client::{Client, Repo, Started};
use super::manifest::Digest;
use super::progress::{Progress, Task};
use super::tarindex::{Member, TarIndex, CHUNK};
use super::RegistryError;
use crate::diag::{Problem, Problems};
use crate::images::{Reference, Registry};
use crate::io_error::IoError;

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The target registry (`host[:port][/prefix]`).
    pub registry: Registry,
    /// Uploads at once.
    pub jobs: usize,
    /// The caller has already checked every blob of the archive against its digest (an
    /// air-gap archive's checksums), so the verification pass is skipped.
    pub verified: bool,
    /// Blobs the archive leaves out on purpose (a delta air-gap archive), each with the
    /// repositories of the target registry that should hold it already. Every one must be
    /// found (`HEAD`) in its target repository or one of these, and is mounted from there;
    /// if any is missing, the push stops before sending anything and names them all.
    pub left_out: BTreeMap<Digest, BTreeSet<String>>,
}

/// One image after the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The reference the archive named it by.
    pub source: Reference,
    /// Where it is now: same path and tag under the target registry, with its digest.
    pub target: Reference,
    /// The registry already had it (nothing was sent for it).
    pub already_present: bool,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Every image of the archive, in archive order.
    pub images: Vec<PushedImage>,
    /// Blobs sent.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository of the registry.
    pub blobs_mounted: usize,
    /// Blobs the target repositories already had.
    pub blobs_present: usize,
    /// Bytes of the blobs sent.
    pub bytes_uploaded: u64,
}

impl PushReport {
    /// Adds another archive's push to this one.
    pub fn add(&mut self, other: PushReport) {
        self.images.extend(other.images);
        self.blobs_uploaded += other.blobs_uploaded;
        self.blobs_mounted += other.blobs_mounted;
        self.blobs_present += other.blobs_present;
        self.bytes_uploaded += other.bytes_uploaded;
    }

    /// `retagged-images.txt` (seed 001's format, with digests): one pushed image per line,
    /// sorted, so `--image-map` can point manifests at them.
    pub fn retagged_images(&self) -> String {
        let mut lines: Vec<String> = self.images.iter().map(|i| i.target.to_string()).collect();
        lines.sort();
        lines.dedup();
        let mut text = String::from("# retagged-images.txt: written by charmer images push\n");
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}

/// Concurrent `HEAD` requests (cheap; the registry answers them from its cache).
const HEAD_JOBS: usize = 16;

/// One image to put in one repository: its digest and the tags to give it.
struct Target {
    repo: Repo,
    digest: Digest,
    /// Tags; empty for an image pushed by digest only.
    tags: Vec<String>,
}

/// A blob to get into repositories that lack it.
struct BlobJob {
    digest: Digest,
    size: u64,
    /// A repository of the registry that already has it (mount from there).
    source: Option<Repo>,
    /// Repositories that need it.
    targets: Vec<Repo>,
}

/// Pushes every image of `archive` (see the module docs).
pub async fn push(
    client: &Client,
    archive: &ImageArchive,
    options: &PushOptions,
    progress: Arc<dyn Progress>,
) -> Result<PushReport, RegistryError> {
    let (targets, mut report) = plan_targets(archive, &options.registry)?;

    // 1. Images already there under every tag.
    let present: Vec<bool> = stream::iter(targets.iter().map(|t| async move {
        let references: Vec<&str> = if t.tags.is_empty() {
            vec![t.digest.as_str()]
        } else {
            t.tags.iter().map(String::as_str).collect()
        };
        for reference in references {
            if client.retrying(|| client.manifest_digest(&t.repo, reference)).await?.as_ref()
                != Some(&t.digest)
            {
                return Ok::<_, RegistryError>(false);
            }
        }
        Ok(true)
    }))
    .buffered(HEAD_JOBS)
    .try_collect()
    .await?;
    let todo: Vec<&Target> =
        targets.iter().zip(&present).filter(|(_, p)| !**p).map(|(t, _)| t).collect();
    for image in &mut report.images {
        let done = targets.iter().zip(&present).any(|(t, p)| {
            *p && t.repo.name == image.target.repository
                && Some(t.digest.as_str()) == image.target.digest.as_deref()
        });
        image.already_present = done;
    }
    if todo.is_empty() {
        return Ok(report);
    }

    // 2. Which repositories lack which blobs.
    let mut wanted: BTreeSet<(Digest, Repo)> = BTreeSet::new();
    for target in &todo {
        wanted.extend(
            archive.closure(&target.digest).1.into_iter().map(|d| (d, target.repo.clone())),
        );
    }
    let heads: Vec<(Digest, Repo, bool)> =
        stream::iter(wanted.into_iter().map(|(digest, repo)| async move {
            let has = client.retrying(|| client.head_blob(&repo, &digest)).await?.is_some();
            Ok::<_, RegistryError>((digest, repo, has))
        }))
        .buffer_unordered(HEAD_JOBS)
        .try_collect()
        .await?;
    let mut jobs: BTreeMap<Digest, BlobJob> = BTreeMap::new();
    for (digest, repo, has) in heads {
        let size = archive.blob(&digest).map_or(0, |b| b.location.size);
        let job = jobs.entry(digest.clone()).or_insert(BlobJob {
            digest,
            size,
            source: None,
            targets: Vec::new(),
        });
        if has {
            report.blobs_present += 1;
            job.source.get_or_insert(repo);
        } else {
            job.targets.push(repo);
        }
    }
    let mut jobs: Vec<BlobJob> = jobs.into_values().filter(|j| !j.targets.is_empty()).collect();
    find_left_out(client, archive, options, &mut jobs).await?;
    jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));

    // 3. Blobs: verification runs beside the uploads and gates their commits.
    let to_send: Vec<Digest> =
        jobs.iter().filter(|j| j.source.is_none()).map(|j| j.digest.clone()).collect();
    let gate = Gate::start(archive, to_send, options.verified, progress.clone());
    let counters = Counters::default();
    progress.begin(Task::Upload, jobs.iter().filter(|j| j.source.is_none()).map(|j| j.size).sum());
    let sent = stream::iter(
        jobs.iter().map(|job| send_blob(client, archive, job, &gate, &counters, &progress)),
    )
    .buffer_unordered(options.jobs.max(1))
    .collect::<Vec<Result<(), RegistryError>>>()
    .await;
    progress.end(Task::Upload);
    gate.finish().await?;
    sent.into_iter().collect::<Result<Vec<()>, _>>()?;
    report.blobs_uploaded = counters.uploaded.load(Ordering::Relaxed);
    report.blobs_mounted = counters.mounted.load(Ordering::Relaxed);
    report.bytes_uploaded = counters.bytes.load(Ordering::Relaxed);

    // 4. Manifests, then tags.
    stream::iter(todo.iter().map(|target| async move {
        let (manifests, _) = archive.closure(&target.digest);
        let (top, children) = manifests.split_last().ok_or_else(|| {
            Problem::new(archive.tar().label(), target.digest.as_str(), "missing manifest")
        })?;
        for child in children {
            client
                .retrying(|| client.put_manifest(&target.repo, child.digest.as_str(), child))
                .await?;
        }
        if target.tags.is_empty() {
            client.retrying(|| client.put_manifest(&target.repo, top.digest.as_str(), top)).await?;
        }
        for tag in &target.tags {
            client.retrying(|| client.put_manifest(&target.repo, tag, top)).await?;
        }
        Ok::<_, RegistryError>(())
    }))
    .buffer_unordered(options.jobs.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    Ok(report)
}

/// Gives each blob the archive leaves out a repository to mount it from, or names every one
/// that the registry does not have (nothing has been sent yet).
async fn find_left_out(
    client: &Client,
    archive: &ImageArchive,
    options: &PushOptions,
    jobs: &mut [BlobJob],
) -> Result<(), RegistryError> {
    let host = &options.registry.host;
    let unsourced =
        jobs.iter_mut().filter(|j| j.source.is_none() && archive.blob(&j.digest).is_none());
    let found: Vec<(&mut BlobJob, Option<Repo>)> = stream::iter(unsourced.map(|job| async move {
        let candidates = options.left_out.get(&job.digest).into_iter().flatten();
        for name in candidates {
            let repo = Repo { host: host.clone(), name: name.clone() };
            if job.targets.contains(&repo) {
                continue; // already asked in step 2
            }
            if client.retrying(|| client.head_blob(&repo, &job.digest)).await?.is_some() {
                return Ok::<_, RegistryError>((job, Some(repo)));
            }
        }
        Ok((job, None))
    }))
    .buffer_unordered(HEAD_JOBS)
    .try_collect()
    .await?;
    let mut problems = Problems::default();
    for (job, source) in found {
        match source {
            Some(source) => job.source = Some(source),
            None => {
                let needed_by: Vec<String> = job.targets.iter().map(|r| r.name.clone()).collect();
                problems.push(
                    Problem::new(
                        archive.tar().label(),
                        job.digest.as_str(),
                        format!(
                            "blob left out of this delta archive, and registry {host} does not have it (needed by {})",
                            needed_by.join(", ")
                        ),
                    )
                    .hint("import the archive this delta was made against (airgap.json: delta.since) into the same registry first"),
                );
            }
        }
    }
    problems.into_result(()).map_err(RegistryError::from)
}

/// Where each archive image goes; refuses two different images landing on the same tag.
fn plan_targets(
    archive: &ImageArchive,
    registry: &Registry,
) -> Result<(Vec<Target>, PushReport), RegistryError> {
    let mut problems = Problems::default();
    let mut by_repo_digest: BTreeMap<(Repo, Digest), BTreeSet<String>> = BTreeMap::new();
    let mut tag_owner: BTreeMap<(String, String), (&Reference, &Digest)> = BTreeMap::new();
    let mut report = PushReport::default();
    for image in &archive.images {
        let mut target = image.reference.relocate(registry);
        target.digest = Some(image.digest.to_string());
        let repo = Repo { host: registry.host.clone(), name: target.repository.clone() };
        let tags = by_repo_digest.entry((repo, image.digest.clone())).or_default();
        if let Some(tag) = &target.tag {
            tags.insert(tag.clone());
            let (owner, owner_digest) = *tag_owner
                .entry((target.repository.clone(), tag.clone()))
                .or_insert((&image.reference, &image.digest));
            if owner_digest != &image.digest {
                let message = format!(
                    "{} and {owner} would both be pushed as {}:{tag}",
                    image.reference, target.repository
                );
                problems.push(
                    Problem::new(archive.tar().label(), "", message)
                        .hint("push them to different registries or prefixes"),
                );
            }
        }
        report.images.push(PushedImage {
            source: image.reference.clone(),
            target,
            already_present: false,
        });
    }
    problems.into_result(())?;
    let targets = by_repo_digest
        .into_iter()
        .map(|((repo, digest), tags)| Target { repo, digest, tags: tags.into_iter().collect() })
        .collect();
    Ok((targets, report))
}

#[derive(Default)]
struct Counters {
    uploaded: AtomicUsize,
    mounted: AtomicUsize,
    bytes: AtomicU64,
}

/// Gets one blob into every repository that lacks it: upload once (or mount from where the
/// registry has it), then mount into the rest.
async fn send_blob(
    client: &Client,
    archive: &ImageArchive,
    job: &BlobJob,
    gate: &Gate,
    counters: &Counters,
    progress: &Arc<dyn Progress>,
) -> Result<(), RegistryError> {
    let mut rest = job.targets.iter();
    let source = match &job.source {
        Some(source) => source.clone(),
        None => {
            let first = rest.next().ok_or_else(|| {
                Problem::new(archive.tar().label(), job.digest.as_str(), "nothing to push it to")
            })?;
            client.retrying(|| upload(client, archive, first, job, None, gate, progress)).await?;
            counters.uploaded.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(job.size, Ordering::Relaxed);
            first.clone()
        }
    };
    for target in rest {
        let mounted = client
            .retrying(|| async {
                match client.start_upload(target, Some((&job.digest, &source.name))).await? {
                    Started::Mounted => Ok(true),
                    // The registry declined the mount and opened an upload session instead.
                    Started::Session(session) => {
                        upload(client, archive, target, job, Some(session), gate, progress)
                            .await
                            .map(|()| false)
                    }
                }
            })
            .await?;
        let counter = if mounted { &counters.mounted } else { &counters.uploaded };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Streams a blob from the archive into `repo` (into `session` if one is open already) and
/// commits it once the gate says the archive's content is sound.
async fn upload(
    client: &Client,
    archive: &ImageArchive,
    repo: &Repo,
    job: &BlobJob,
    session: Option<reqwest::Url>,
    gate: &Gate,
    progress: &Arc<dyn Progress>,
) -> Result<(), RegistryError> {
    let blob = archive
        .blob(&job.digest)
        .ok_or_else(|| Problem::new(archive.tar().label(), job.digest.as_str(), "missing blob"))?;
    // A retry may find that the previous attempt did finish.
    if session.is_none() && client.head_blob(repo, &job.digest).await?.is_some() {
        return Ok(());
    }
    let session = match session {
        Some(session) => session,
        None => match client.start_upload(repo, None).await? {
            Started::Session(session) => session,
            Started::Mounted => return Ok(()),
        },
    };
    let (tar, location) = (archive.tar().clone(), blob.location);
    let body = || body(tar.clone(), location, progress.clone());
    let result = async {
        let next = client.upload(repo, &session, job.size, &body).await?;
        gate.wait(archive, &job.digest).await?;
        client.commit_upload(repo, &next, &job.digest).await
    }
    .await;
    if result.is_err() {
        client.cancel_upload(repo, &session).await;
    }
    result
}

/// A request body streaming one archive member, read in [`CHUNK`]s off the async threads.
fn body(tar: Arc<TarIndex>, location: Member, progress: Arc<dyn Progress>) -> reqwest::Body {
    let chunks = stream::try_unfold(0u64, move |done| {
        let (tar, progress) = (tar.clone(), progress.clone());
        async move {
            if done >= location.size {
                return Ok(None);
            }
            let n = (location.size - done).min(CHUNK as u64) as usize;
            let chunk = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                tar.read_at(location, done, &mut buf).map(|()| buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            progress.advance(Task::Upload, n as u64);
            Ok::<_, std::io::Error>(Some((Bytes::from(chunk), done + n as u64)))
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

/// Whether the blobs being sent matched their digests: commits wait for it.
struct Gate {
    state: watch::Receiver<Option<bool>>,
    verifier: Option<tokio::task::JoinHandle<Result<(), RegistryError>>>,
    /// Blobs the verifier covers; others (sent only because a mount was declined) are
    /// hashed on their own before commit.
    covered: BTreeSet<Digest>,
}

impl Gate {
    /// Starts hashing `digests` on a blocking thread (or nothing, when `verified`).
    fn start(
        archive: &ImageArchive,
        digests: Vec<Digest>,
        verified: bool,
        progress: Arc<dyn Progress>,
    ) -> Gate {
        let (tell, state) = watch::channel(None);
        if verified {
            let _ = tell.send(Some(true));
            return Gate { state, verifier: None, covered: digests.into_iter().collect() };
        }
        let covered = digests.iter().cloned().collect();
        let work: Vec<(Digest, Blob)> =
            digests.into_iter().filter_map(|d| archive.blob(&d).cloned().map(|b| (d, b))).collect();
        let tar = archive.tar().clone();
        let verifier = tokio::task::spawn_blocking(move || {
            progress.begin(Task::Verify, work.iter().map(|(_, b)| b.location.size).sum());
            let result = work.iter().try_for_each(|(digest, blob)| {
                check_blob(&tar, digest, blob, &|n| progress.advance(Task::Verify, n))
            });
            progress.end(Task::Verify);
            let _ = tell.send(Some(result.is_ok()));
            result
        });
        Gate { state, verifier: Some(verifier), covered }
    }

    /// Waits until `digest` may be committed; an error if the archive failed verification.
    async fn wait(&self, archive: &ImageArchive, digest: &Digest) -> Result<(), RegistryError> {
        if !self.covered.contains(digest) {
            let (tar, blob) = (archive.tar().clone(), archive.blob(digest).cloned());
            let digest = digest.clone();
            return tokio::task::spawn_blocking(move || match blob {
                Some(blob) => check_blob(&tar, &digest, &blob, &|_| {}),
                None => Err(Problem::new(tar.label(), digest.as_str(), "missing blob").into()),
            })
            .await
            .map_err(|e| {
                RegistryError::Io(IoError::new(archive.tar().label(), std::io::Error::other(e)))
            })?;
        }
        let mut state = self.state.clone();
        let ok = state.wait_for(Option::is_some).await.map(|s| *s == Some(true)).unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(Problem::new(
                archive.tar().label(),
                digest.as_str(),
                "not committed: the archive failed verification",
            )
            .into())
        }
    }

    /// The verifier's own result (its error names the damaged member).
    async fn finish(self) -> Result<(), RegistryError> {
        match self.verifier {
            Some(handle) => handle.await.map_err(|e| {
                RegistryError::Io(IoError::new("verification", std::io::Error::other(e)))
            })?,
            None => Ok(()),
        }
    }
}
