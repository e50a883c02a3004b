//! Progress reporting: the engines count bytes here and the CLI draws bars from the counts
//! (nothing below the CLI prints).

/// A kind of transfer the engines report on separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Hashing archive content before anything of it is committed to a registry.
    Verify,
    /// Sending blobs to a registry.
    Upload,
    /// Fetching blobs from registries into an archive.
    Download,
    /// Copying local files into an archive.
    Write,
}

/// Receives byte counts from a running transfer; called from many tasks at once.
pub trait Progress: Send + Sync {
    /// A task starts with `total` bytes to move.
    fn begin(&self, task: Task, total: u64);
    /// `bytes` more were moved (a retried transfer counts again).
    fn advance(&self, task: Task, bytes: u64);
    /// The task is over (done or failed).
    fn end(&self, task: Task);
}

/// Discards all progress (for library callers and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: Task, _: u64) {}
    fn advance(&self, _: Task, _: u64) {}
    fn end(&self, _: Task) {}
}
