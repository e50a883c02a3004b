//! The one I/O error every stage's error enum carries: the file (or stream, such as
//! `<stdout>`) and the operating system's error as its source. One type instead of an
//! `Io { path, source }` variant per enum, so the wording ("path: cause") is the same
//! everywhere and callers branch on `source.kind()` in one way.

use std::path::{Path, PathBuf};

/// A file or stream that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct IoError {
    /// The file or folder, or a stream's name in angle brackets (`<stdin>`).
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

impl IoError {
    /// `source`, which happened on `path`.
    pub fn new(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        IoError { path: path.as_ref().to_path_buf(), source }
    }
}

/// `.at(path)` on an I/O result: the error names the file it happened on.
pub trait IoResultExt<T> {
    /// The result with its error as an [`IoError`] on `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T, IoError>;
}

impl<T> IoResultExt<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, IoError> {
        self.map_err(|source| IoError::new(path, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_its_file_and_keeps_its_cause() {
        let missing = std::fs::read("/nonexistent/charmer-io-error").at("/nonexistent/x");
        let error = missing.unwrap_err();
        assert!(error.to_string().starts_with("/nonexistent/x: No such file"), "{error}");
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(
            source.downcast_ref::<std::io::Error>().unwrap().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
