//! Hostile inputs, through the real binary: each must end in exit 1 with a one-line error
//! naming the file, quickly and within bounded memory — never a hang, an abort or a panic.
//! The inputs the issue reported, and every crash the fuzzers (fuzz/, scripts/fuzz.sh) found.

use std::path::Path;

use crate::support::copy_dir;

fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo"), dir.path());
    dir
}

/// Runs charmer in `dir`; asserts exit 1 and returns stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = crate::support::charmer().current_dir(dir).args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "charmer {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn deeply_nested_yaml_is_refused_before_parsing() {
    let ws = demo_copy();
    let bundle = ws.path().join("bundles/demo/bundle.yaml");
    std::fs::write(&bundle, format!("name: demo\napplications: {}\n", "[".repeat(100_000)))
        .unwrap();
    let err = refused(ws.path(), &["check", "bundles/demo"]);
    assert!(err.contains("bundle.yaml: line 2: nested more than 64 levels deep"), "{err}");

    let metadata = ws.path().join("charms/db/metadata.yaml");
    let text = std::fs::read_to_string(&metadata).unwrap();
    std::fs::write(&metadata, format!("{text}\nx: {}\n", "{a: ".repeat(100_000))).unwrap();
    let err = refused(ws.path(), &["inspect", "charms/db"]);
    assert!(err.contains("charms/db/metadata.yaml: line"), "{err}");
    assert!(err.contains("nested more than 64 levels deep"), "{err}");
}

#[test]
fn a_huge_config_yaml_is_refused_not_parsed() {
    let ws = demo_copy();
    // Sparse: 200 MB of NUL bytes that cost no disk.
    let config = std::fs::File::create(ws.path().join("charms/db/config.yaml")).unwrap();
    config.set_len(200 << 20).unwrap();
    let err = refused(ws.path(), &["inspect", "charms/db"]);
    assert!(
        err.contains("charms/db/config.yaml: 209715200 bytes, more than the limit of 4194304"),
        "{err}"
    );
    // Past the charm-wide limit (256 MiB) too: still refused by the YAML limit, by its size,
    // not read first, and packed into no archive.
    config.set_len(300 << 20).unwrap();
    let err = refused(ws.path(), &["pack", "charms/db", "--out", "packed"]);
    assert!(
        err.contains("charms/db/config.yaml: 314572800 bytes, more than the limit of 4194304"),
        "{err}"
    );
    assert!(!ws.path().join("packed").exists());
}

#[test]
fn runaway_templates_are_stopped_naming_charm_and_template() {
    let ws = demo_copy();
    let template = ws.path().join("charms/web/templates/loop.yaml");
    std::fs::write(
        &template,
        "{% for i in range(90000) %}{% for j in range(90000) %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    let err = refused(ws.path(), &["render", "bundles/demo"]);
    assert!(err.contains("charms/web/templates/loop.yaml"), "{err}");
    assert!(err.contains("runs more than 50000000 template instructions"), "{err}");

    std::fs::write(&template, "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}").unwrap();
    let err = refused(ws.path(), &["render", "bundles/demo"]);
    assert!(err.contains("charms/web/templates/loop.yaml"), "{err}");
    assert!(err.contains("renders more than 16777216 bytes"), "{err}");
}

/// A far-off duration once reached `Instant + Duration`, which panics on overflow; durations
/// are refused past a year, as a usage error, before anything else happens.
#[test]
fn durations_past_a_year_are_refused_before_they_reach_the_clock() {
    let ws = demo_copy();
    for args in [
        &["deploy", "bundles/demo", "--timeout", "500000000y"][..],
        &["deploy", "bundles/demo", "--wait-for-lock", "367d"],
        &["logs", "demo", "web", "--since", "2y"],
    ] {
        let out = crate::support::charmer().current_dir(ws.path()).args(args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "charmer {args:?}: {stderr}");
        assert!(stderr.contains("longer than the limit of 366 days"), "{stderr}");
    }
    // At the limit the flag is taken (the command then fails on the missing cluster).
    let out = crate::support::charmer()
        .current_dir(ws.path())
        .env("KUBECONFIG", ws.path().join("no-such-kubeconfig"))
        .args(["logs", "demo", "web", "--since", "366d"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("366 days"), "{stderr}");
}

/// Files read whole are sized first: an archive past the largest a charm may be is refused
/// without being read, and a path that never ends (`/dev/zero` as a key, an image map) stops
/// at the limit instead of filling memory.
#[test]
fn files_read_whole_are_bounded_before_and_while_reading() {
    let ws = demo_copy();
    // Sparse: 400 MB that cost no disk.
    let archive = std::fs::File::create(ws.path().join("big_1.0.0.charm")).unwrap();
    archive.set_len(400 << 20).unwrap();
    let err = refused(ws.path(), &["verify", "big_1.0.0.charm"]);
    assert!(err.contains("larger than the limit of 335544320 bytes for a charm archive"), "{err}");

    let err = refused(ws.path(), &["verify", "big_1.0.0.charm", "--key", "/dev/zero"]);
    assert!(err.contains("larger than the limit of 4194304 bytes for a key file"), "{err}");

    let err = refused(ws.path(), &["check", "bundles/demo", "--image-map", "/dev/zero"]);
    assert!(err.contains("larger than the limit of 4194304 bytes for an image map"), "{err}");
}
