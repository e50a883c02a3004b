//! Stamps the build with what `charmer --version` prints besides the crate version: the commit
//! it was built from and the build date. The date is `SOURCE_DATE_EPOCH`'s when that is set (the
//! release script sets it to the commit's time, so a release rebuilds byte for byte), else
//! today's. Outside a git checkout (a source tarball) the commit is "unknown".

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or branch re-stamps the build; paths come from git, so worktrees work too.
    // Cargo treats a watched path that does not exist as changed on every build, which
    // rebuilt the crate each time in a repository without packed-refs: only existing files
    // are named. A branch held only in packed-refs is watched through its directory, where
    // the next commit writes it as a file (packing refs deletes the files watched, which
    // re-runs this script to watch packed-refs).
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            if Path::new(&file).exists() {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = git(&["rev-parse", "--git-path", &branch]) {
            let file = Path::new(&file);
            let watched = if file.exists() { Some(file) } else { file.parent() };
            if let Some(watched) = watched.filter(|w| w.exists()) {
                println!("cargo:rerun-if-changed={}", watched.display());
            }
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CHARMER_COMMIT={commit}");
    println!("cargo:rustc-env=CHARMER_BUILD_DATE={}", build_date());
}

/// A git command's trimmed output, or None outside a repository or without git.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `YYYY-MM-DD` (UTC) of `SOURCE_DATE_EPOCH`, or of now.
fn build_date() -> String {
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(secs) => {
            let secs: u64 = secs.trim().parse().unwrap_or_else(|_| {
                panic!("SOURCE_DATE_EPOCH must be seconds since 1970, not {secs:?}")
            });
            UNIX_EPOCH + Duration::from_secs(secs)
        }
        Err(_) => SystemTime::now(),
    };
    humantime::format_rfc3339_seconds(time).to_string()[..10].to_string()
}
