//! Writing output files so a failure never leaves anything half-written: every file goes to
//! a temporary file in its destination folder first and is renamed into place only after all
//! of them were written.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    /// The file or folder.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically, readable by everyone (mode 0644).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_files_with_mode(dir, &[(path.to_path_buf(), bytes)], 0o644)
}

/// Writes `bytes` to `path` atomically, readable and runnable by everyone (mode 0755): for
/// scripts.
pub fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_files_with_mode(dir, &[(path.to_path_buf(), bytes)], 0o755)
}

/// Writes `bytes` to `path` atomically, readable by its owner only (mode 0600): for keys.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_files_with_mode(dir, &[(path.to_path_buf(), bytes)], 0o600)
}

/// Creates `dir` if needed, then writes every file (paths inside `dir`, mode 0644), renaming
/// them into place only once all were written.
pub fn write_files<B: AsRef<[u8]>>(dir: &Path, files: &[(PathBuf, B)]) -> Result<(), WriteError> {
    write_files_with_mode(dir, files, 0o644)
}

/// [`write_files`] with the files' mode.
fn write_files_with_mode<B: AsRef<[u8]>>(
    dir: &Path,
    files: &[(PathBuf, B)],
    mode: u32,
) -> Result<(), WriteError> {
    write_each(dir, files.iter().map(|(path, bytes)| (path.clone(), bytes)), mode)
}

/// [`write_files`] for contents made one at a time: each is written to its temporary file
/// and dropped before the next is made, so a large output never sits in memory whole.
pub fn write_files_from<B: AsRef<[u8]>>(
    dir: &Path,
    files: impl IntoIterator<Item = (PathBuf, B)>,
) -> Result<(), WriteError> {
    write_each(dir, files, 0o644)
}

/// Writes every file to a temporary file beside it, then renames them all into place:
/// temporary files start private (0600), which is what would be left on released files
/// without setting the mode.
fn write_each<B: AsRef<[u8]>>(
    dir: &Path,
    files: impl IntoIterator<Item = (PathBuf, B)>,
    mode: u32,
) -> Result<(), WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let mut staged = Vec::new();
    for (path, bytes) in files {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(dir);
        let folder = folder.to_path_buf();
        // Mode 0666 less the umask, as for any created file (a temp file is 0600 by default).
        let mut tmp = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&folder)
            .map_err(err(&path))?;
        tmp.write_all(bytes.as_ref()).map_err(err(&path))?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(err(&path))?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        tmp.persist(&path).map_err(|e| WriteError { path, source: e.error })?;
    }
    Ok(())
}
