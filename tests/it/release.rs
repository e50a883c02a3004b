//! `scripts/release.sh` as a release manager runs it and as a user on the far side of the air
//! gap checks what it wrote. The optimised build itself is left out (it takes minutes): the
//! script is handed the test build of charmer (`RELEASE_BINARY`), and everything after the
//! build is the real script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{charmer, tools_present};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the release script into `out` with a fresh key; returns its output and the public key.
fn release(tmp: &Path, version: &str) -> (std::process::Output, PathBuf, PathBuf) {
    let keys = tmp.join("keys/release");
    charmer().arg("keygen").arg("--out").arg(&keys).assert().success();
    let out = tmp.join(format!("charmer-{version}"));
    let output = Command::new("bash")
        .arg(root().join("scripts/release.sh"))
        .arg(version)
        .env("SIGN_KEY", keys.with_extension("key"))
        .env("OUT", &out)
        .env("RELEASE_BINARY", assert_cmd::cargo::cargo_bin("charmer"))
        .env("RELEASE_ALLOW_DIRTY", "1")
        .output()
        .unwrap();
    (output, out, keys.with_extension("pub"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_release_holds_everything_signed_and_checks_as_a_user_would() {
    let tmp = tempfile::tempdir().unwrap();
    let (output, out, public) = release(tmp.path(), VERSION);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let host = text(&Command::new("rustc").arg("-vV").output().unwrap().stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    assert!(stdout.contains(&format!("release: built {host} (given binary)")), "{stdout}");
    assert!(stdout.contains("release: verified with"), "{stdout}");

    let binary = out.join(format!("charmer-{VERSION}-{host}"));
    for file in [
        binary.clone(),
        out.join("completions/charmer.bash"),
        out.join("completions/_charmer"),
        out.join("completions/charmer.fish"),
        out.join("man/charmer.1"),
        out.join("man/charmer-deploy.1"),
        out.join("charms/index.yaml"),
        out.join("charms/index.yaml.sig"),
        out.join(format!("charmer-{VERSION}.cdx.json")),
        out.join("CHANGELOG.md"),
        out.join("compatibility.md"),
        out.join("SHA256SUMS"),
        out.join("SHA256SUMS.sig"),
    ] {
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "{} is missing or empty", file.display());
    }
    let charms = crate::support::entries(&out.join("charms"))
        .into_iter()
        .filter(|name| name.ends_with(".charm"))
        .count();
    assert_eq!(charms, 7, "the seven charms");
    assert!(std::fs::read_to_string(out.join("completions/charmer.bash"))
        .unwrap()
        .contains("deploy"));

    // The far side: charmer itself, coreutils, and minisign where it is installed.
    let verified = charmer().arg("verify").arg(&out).arg("--key").arg(&public).assert().success();
    let verified = text(&verified.get_output().stdout);
    assert!(verified.starts_with(&format!("ok  {}  ", out.display())), "{verified}");
    assert!(verified.contains(&format!("ok  charmer-{VERSION}-{host}  sha256 ")), "{verified}");
    let sums = Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(&out)
        .status()
        .unwrap();
    assert!(sums.success(), "sha256sum -c accepts SHA256SUMS");
    if tools_present(&["minisign"]) {
        let checked = Command::new("minisign")
            .args(["-q", "-Vm", "SHA256SUMS", "-x", "SHA256SUMS.sig", "-p"])
            .arg(&public)
            .current_dir(&out)
            .status()
            .unwrap();
        assert!(checked.success(), "minisign accepts the release signature");
    }

    // A changed file is caught, by name.
    std::fs::write(out.join("compatibility.md"), "changed").unwrap();
    let refused = charmer().arg("verify").arg(&out).arg("--key").arg(&public).assert().failure();
    let stderr = text(&refused.get_output().stderr);
    assert!(stderr.contains("compatibility.md: has SHA-256"), "{stderr}");
}

/// The SBOM lists every crate the binary is built from, with Cargo.lock's checksum and a
/// licence, and no crate that only the tests use.
#[test]
fn the_release_sbom_lists_every_crate_with_its_checksum_and_licence() {
    let output = Command::new("python3")
        .arg(root().join("scripts/sbom-crates.py"))
        .args(["--version", VERSION])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let bom: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (bom["bomFormat"].as_str(), bom["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.6"))
    );
    assert_eq!(bom["metadata"]["component"]["version"], VERSION);
    let components: BTreeMap<(String, String), &Value> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ((c["name"].as_str().unwrap().into(), c["version"].as_str().unwrap().into()), c))
        .collect();
    let lock: BTreeMap<(String, String), String> =
        std::fs::read_to_string(root().join("Cargo.lock"))
            .unwrap()
            .split("[[package]]")
            .filter_map(|block| {
                let field = |key: &str| {
                    block.lines().find_map(|l| {
                        l.strip_prefix(&format!("{key} = \""))
                            .map(|v| v.trim_end_matches('"').to_string())
                    })
                };
                Some(((field("name")?, field("version")?), field("checksum")?))
            })
            .collect();
    for name in ["kube-client", "clap", "serde_yaml", "rustls", "minijinja", "zip"] {
        let (key, component) = components
            .iter()
            .find(|((n, _), _)| n == name)
            .unwrap_or_else(|| panic!("{name} is in the binary but not in the SBOM"));
        assert_eq!(component["hashes"][0]["content"].as_str(), Some(lock[key].as_str()), "{name}");
        assert_eq!(component["purl"], format!("pkg:cargo/{}@{}", key.0, key.1));
        assert!(component["licenses"][0]["expression"].as_str().is_some_and(|l| !l.is_empty()));
    }
    for dev_only in ["assert_cmd", "predicates"] {
        assert!(!components.keys().any(|(n, _)| n == dev_only), "{dev_only} is only in the tests");
    }
    assert!(
        components.keys().all(|key| lock.contains_key(key)),
        "every component is in Cargo.lock"
    );
}

#[test]
fn a_release_whose_version_is_not_the_crates_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (output, out, _) = release(tmp.path(), "99.0.0");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("VERSION 99.0.0 is not the crate's version {VERSION}")),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn version_names_the_commit_and_build_date() {
    let shown = charmer().arg("--version").assert().success();
    let shown = text(&shown.get_output().stdout);
    let (commit, date) = shown
        .strip_prefix(&format!("charmer {VERSION} (commit "))
        .and_then(|rest| rest.trim_end().strip_suffix(')'))
        .and_then(|rest| rest.split_once(", built "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{shown}"
    );
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{shown}"
    );
}
