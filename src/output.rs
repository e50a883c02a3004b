//! Writing output files so a failure never leaves anything half-written: every file goes to
//! a temporary file in its destination folder first and is renamed into place only after all
//! of them were written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::io_error::{IoError, IoResultExt};

/// Writes `bytes` to `path` atomically, readable by everyone (mode 0644).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_files_with_mode(dir, &[(path.to_path_buf(), bytes)], 0o644)
}

/// Writes `bytes` to `path` atomically, readable and runnable by everyone (mode 0755): for
/// scripts.
pub fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_files_with_mode(dir, &[(path.to_path_buf(), bytes)], 0o755)
}

/// Writes `bytes` to `path` atomically, readable by its owner only (mode 0600): for keys.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_files_with_mode(dir, &[(path.to_path_buf(), bytes)], 0o600)
}

/// Creates `dir` if needed, then writes every file (paths inside `dir`, mode 0644), renaming
/// them into place only once all were written.
pub fn write_files<B: AsRef<[u8]>>(dir: &Path, files: &[(PathBuf, B)]) -> Result<(), IoError> {
    write_files_with_mode(dir, files, 0o644)
}

/// [`write_files`] with the files' mode.
fn write_files_with_mode<B: AsRef<[u8]>>(
    dir: &Path,
    files: &[(PathBuf, B)],
    mode: u32,
) -> Result<(), IoError> {
    write_each(dir, files.iter().map(|(path, bytes)| (path.clone(), bytes)), mode)
}

/// [`write_files`] for contents made one at a time: each is written to its temporary file
/// and dropped before the next is made, so a large output never sits in memory whole.
pub fn write_files_from<B: AsRef<[u8]>>(
    dir: &Path,
    files: impl IntoIterator<Item = (PathBuf, B)>,
) -> Result<(), IoError> {
    write_each(dir, files, 0o644)
}

/// Writes every file to a temporary file beside it, then renames them all into place:
/// temporary files start private (0600), which is what would be left on released files
/// without setting the mode.
fn write_each<B: AsRef<[u8]>>(
    dir: &Path,
    files: impl IntoIterator<Item = (PathBuf, B)>,
    mode: u32,
) -> Result<(), IoError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).at(dir)?;
    let mut staged = Vec::new();
    for (path, bytes) in files {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(dir);
        let folder = folder.to_path_buf();
        // Mode 0666 less the umask, as for any created file (a temp file is 0600 by default).
        let mut tmp = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&folder)
            .at(&path)?;
        tmp.write_all(bytes.as_ref()).at(&path)?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).at(&path)?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        tmp.persist(&path).map_err(|e| IoError::new(path, e.error))?;
    }
    Ok(())
}

/// The name prefix of a large temporary file or folder of one `kind` ("export", "import")
/// made by this process beside its destination: `.charmer-<kind>-<pid>-`. The process id
/// lets a later run tell a leftover of a killed run from the live one of a concurrent run
/// (see [`remove_stale_leftovers`]).
pub fn leftover_prefix(kind: &str) -> String {
    format!(".charmer-{kind}-{}-", std::process::id())
}

/// Removes from `dir` the temporary files and folders of `kind` whose process is gone: what a
/// killed run (SIGKILL, a power cut) left, since it could not clean up after itself. Those of
/// live processes (a concurrent run) are left alone. Returns what was removed, for the
/// caller to say. Only where `/proc` tells whether a process lives (Linux); elsewhere
/// nothing is removed.
pub fn remove_stale_leftovers(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let prefix = format!(".charmer-{kind}-");
    let proc = Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    if !proc.join("self").exists() {
        return Vec::new();
    }
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || proc.join(pid).exists() {
            continue;
        }
        let path = entry.path();
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // No process has id 4294967295 (above pid_max); this one is alive.
        let dead = dir.path().join(".charmer-export-4294967295-abc.tmp");
        let dead_dir = dir.path().join(".charmer-import-4294967295-xyz");
        let live = dir.path().join(format!("{}abc.tmp", leftover_prefix("export")));
        let other_kind = dir.path().join(".charmer-import-4294967295-keep.tmp");
        let unrelated = dir.path().join("archive.tar");
        for file in [&dead, &live, &other_kind, &unrelated] {
            std::fs::write(file, b"x").unwrap();
        }
        std::fs::create_dir(&dead_dir).unwrap();
        assert_eq!(remove_stale_leftovers(dir.path(), "export"), std::slice::from_ref(&dead));
        assert!(!dead.exists() && live.exists() && other_kind.exists() && unrelated.exists());
        assert_eq!(remove_stale_leftovers(dir.path(), "import"), [other_kind, dead_dir]);
    }
}
