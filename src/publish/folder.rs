//! A checksummed folder: `SHA256SUMS` over every file in it (and below it), signed into
//! `SHA256SUMS.sig`. It is how charmer's own releases travel (`scripts/release.sh`), and any
//! folder a user carries across the air gap can be sealed the same way (`charmer checksum`).
//! `sha256sum -c SHA256SUMS` and `minisign -Vm SHA256SUMS -x SHA256SUMS.sig` check it without
//! charmer; `charmer verify FOLDER --key PUB` checks it with charmer, and also refuses files the
//! list does not name (a file slipped in beside signed ones is as suspect as a changed one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{sums, verify_signature, PublicKey, PublishError, SecretKey, SIG_SUFFIX, SUMS_FILE};
use crate::diag::{Problem, Problems};
use crate::io_error::{IoError, IoResultExt};

/// The most a `SHA256SUMS` file may hold (it lists file names and hashes, nothing else).
const MAX_SUMS_BYTES: u64 = 4 << 20;

/// One checked (or written) file of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    /// Its path relative to the folder, with `/` separators (as `SHA256SUMS` names it).
    pub name: String,
    /// Hex SHA-256 of its content.
    pub sha256: String,
}

/// What sealing or verifying a folder found.
#[derive(Debug, Clone)]
pub struct SealedFolder {
    /// Every file `SHA256SUMS` lists, sorted by name.
    pub files: Vec<FolderFile>,
    /// The id of the key that signed `SHA256SUMS`, when it was signed (sealing) or its
    /// signature was checked (verifying).
    pub signed_by: Option<String>,
    /// With no key to check against, the signature file that was there and left unchecked.
    pub unchecked_signature: Option<PathBuf>,
}

/// Whether `path` is a checksummed folder (or its `SHA256SUMS`) rather than a published charm
/// index: a folder with `SHA256SUMS` and no `index.yaml`, or a file named `SHA256SUMS`.
pub fn is_checksummed(path: &Path) -> bool {
    if path.is_dir() {
        path.join(SUMS_FILE).is_file() && !path.join(super::INDEX_FILE).exists()
    } else {
        path.file_name().is_some_and(|n| n == SUMS_FILE)
    }
}

/// Writes `dir/SHA256SUMS` over every file in `dir` (recursively; not `SHA256SUMS` and its
/// signature) and, with `key`, `dir/SHA256SUMS.sig`. Symbolic links are refused: what a link
/// points to on this side is not what arrives on the other.
pub fn seal(dir: &Path, key: Option<&SecretKey>) -> Result<SealedFolder, PublishError> {
    let files = hash_tree(dir)?;
    let listed: BTreeMap<String, String> =
        files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect();
    let text = sums::render(&listed);
    crate::output::write_atomically(&dir.join(SUMS_FILE), text.as_bytes())?;
    let signature = dir.join(format!("{SUMS_FILE}{SIG_SUFFIX}"));
    let signed_by = match key {
        Some(key) => {
            let sig = key.sign(SUMS_FILE, text.as_bytes());
            crate::output::write_atomically(&signature, sig.as_bytes())?;
            Some(key.public().id())
        }
        None => {
            // A signature of an earlier list would now fail to verify: better none.
            remove_if_present(&signature)?;
            None
        }
    };
    Ok(SealedFolder { files, signed_by, unchecked_signature: None })
}

/// Checks a checksummed folder (`path` is the folder or its `SHA256SUMS`): with `key`, the
/// signature of `SHA256SUMS`; every listed file's content; and that the folder holds no file
/// the list leaves out. Every problem is reported at once.
pub fn verify(path: &Path, key: Option<&PublicKey>) -> Result<SealedFolder, PublishError> {
    let (dir, sums_path) = if path.is_dir() {
        (path.to_path_buf(), path.join(SUMS_FILE))
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), path.to_path_buf())
    };
    let label = sums_path.display().to_string();
    let signature = PathBuf::from(format!("{label}{SIG_SUFFIX}"));
    let (signed_by, unchecked_signature) = match key {
        Some(key) => {
            verify_signature(&sums_path, key)?;
            (Some(key.id()), None)
        }
        None => (None, signature.is_file().then_some(signature)),
    };
    let text = crate::contract::read_bounded_text(&sums_path, MAX_SUMS_BYTES, "a SHA256SUMS file")
        .at(&sums_path)?;
    let listed = sums::parse(&label, &text)?;
    let mut problems = Problems::default();
    // The same rule as for archive members: the list is as untrusted as an archive.
    for name in listed.keys() {
        if let Some(why) = crate::charm::archive::unsafe_name_reason(name) {
            problems.push(Problem::new(
                &label,
                name,
                format!("is not a path inside the folder: {why}"),
            ));
        }
    }
    std::mem::take(&mut problems).into_result(())?;
    let present = hash_tree(&dir)?;
    let mut present: BTreeMap<String, String> =
        present.into_iter().map(|f| (f.name, f.sha256)).collect();
    let mut files = Vec::new();
    for (name, sha256) in &listed {
        match present.remove(name) {
            None => problems.push(
                Problem::new(&label, name, "is listed but missing from the folder")
                    .hint("copy the whole folder again"),
            ),
            Some(actual) if &actual != sha256 => problems.push(
                Problem::new(
                    &label,
                    name,
                    format!("has SHA-256 {actual}, the list says {sha256}: it was changed"),
                )
                .hint("do not use this folder; fetch it again from its source"),
            ),
            Some(_) => files.push(FolderFile { name: name.clone(), sha256: sha256.clone() }),
        }
    }
    for name in present.keys() {
        problems.push(
            Problem::new(&label, name, "is in the folder but not listed in SHA256SUMS")
                .hint("remove it, or seal the folder again with `charmer checksum`"),
        );
    }
    Ok(problems.into_result(SealedFolder { files, signed_by, unchecked_signature })?)
}

/// Every regular file under `dir` but the list and its signature at the top, hashed and
/// sorted by name.
fn hash_tree(dir: &Path) -> Result<Vec<FolderFile>, PublishError> {
    let mut files = Vec::new();
    let mut problems = Problems::default();
    let label = dir.display().to_string();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            PublishError::Io(IoError::new(
                e.path().map_or_else(|| dir.to_path_buf(), Path::to_path_buf),
                e.into(),
            ))
        })?;
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if entry.path_is_symlink() {
            problems.push(
                Problem::new(&label, &name, "is a symbolic link")
                    .hint("copy the file it points to instead"),
            );
            continue;
        }
        if !entry.file_type().is_file()
            || name == SUMS_FILE
            || name == format!("{SUMS_FILE}{SIG_SUFFIX}")
        {
            continue;
        }
        let sha256 = crate::digest::sha256_file_hex(entry.path()).at(entry.path())?;
        files.push(FolderFile { name, sha256 });
    }
    Ok(problems.into_result(files)?)
}

fn remove_if_present(path: &Path) -> Result<(), PublishError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(PublishError::Io(IoError::new(path, e)))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("man")).unwrap();
        std::fs::write(tmp.path().join("charmer"), b"binary").unwrap();
        std::fs::write(tmp.path().join("man/charmer.1"), b"page").unwrap();
        tmp
    }

    #[test]
    fn a_sealed_folder_verifies_with_its_key_and_sha256sum_format() {
        let tmp = folder();
        let key = SecretKey::generate().unwrap();
        let sealed = seal(tmp.path(), Some(&key)).unwrap();
        let names: Vec<&str> = sealed.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["charmer", "man/charmer.1"]);
        let text = std::fs::read_to_string(tmp.path().join("SHA256SUMS")).unwrap();
        assert_eq!(text.lines().next().unwrap(), format!("{}  charmer", sha(b"binary")));
        let checked = verify(tmp.path(), Some(&key.public())).unwrap();
        assert_eq!(checked.files, sealed.files);
        assert_eq!(checked.signed_by, Some(key.public().id()));
        // Without a key the signature is there but not checked, and the result says so.
        let unchecked = verify(&tmp.path().join("SHA256SUMS"), None).unwrap();
        assert!(unchecked.unchecked_signature.is_some());
    }

    #[test]
    fn changed_missing_and_unlisted_files_are_each_reported() {
        let tmp = folder();
        seal(tmp.path(), None).unwrap();
        std::fs::write(tmp.path().join("charmer"), b"tampered").unwrap();
        std::fs::remove_file(tmp.path().join("man/charmer.1")).unwrap();
        std::fs::write(tmp.path().join("extra"), b"slipped in").unwrap();
        let err = verify(tmp.path(), None).unwrap_err().to_string();
        assert!(err.contains(&format!("charmer: has SHA-256 {}", sha(b"tampered"))), "{err}");
        assert!(err.contains("man/charmer.1: is listed but missing"), "{err}");
        assert!(err.contains("extra: is in the folder but not listed"), "{err}");
    }

    #[test]
    fn a_wrong_key_and_a_list_naming_outside_files_are_refused() {
        let tmp = folder();
        seal(tmp.path(), Some(&SecretKey::generate().unwrap())).unwrap();
        let other = SecretKey::generate().unwrap().public();
        assert!(verify(tmp.path(), Some(&other)).is_err());

        let listed = format!("{}  ../outside\n", sha(b"x"));
        std::fs::write(tmp.path().join("SHA256SUMS"), listed).unwrap();
        let err = verify(tmp.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("../outside: is not a path inside the folder: path traversal"),
            "{err}"
        );
    }

    fn sha(bytes: &[u8]) -> String {
        crate::digest::sha256_hex(bytes)
    }
}
