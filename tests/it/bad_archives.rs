//! The bad-archive suite: hostile or broken `.charm` files forged by the tests themselves.
//! Every case must be refused by `verify`, `inspect` and `unpack` with its own error line,
//! exit code 1, and no file written.

use std::io::Write;
use std::path::PathBuf;

use crate::support::{charmer, entries, file, sample_charm_files, write_charm, RawEntry, RawZip};

const HINT_UNSAFE: &str = "(hint: the archive is unsafe; rebuild it with charmer pack)";

/// A small valid charm as a forged archive; each case adds or changes one thing.
fn valid() -> RawZip {
    RawZip::of_files([
        ("metadata.yaml", "name: webapp\nsummary: test\nprovides:\n  http: http\n"),
        ("config.yaml", "options:\n  replicas: {type: int, default: 1}\n"),
        ("templates/deployment.yaml", "kind: Deployment\n"),
        ("version", "1.0.0\n"),
    ])
}

/// Replaces (or adds) the member `name` of the valid charm.
fn valid_with(name: &str, data: &str) -> RawZip {
    valid().without(name).with(RawEntry::file(name, data))
}

/// Writes `bytes` as `webapp_1.0.0.charm`, runs `verify`, `inspect` (text and JSON) and
/// `unpack` on it, checks each fails with exit 1, prints nothing on stdout and writes
/// nothing, and that all give the same error text; returns the archive path and that text.
fn refused(bytes: &[u8]) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let archive = inbox.join("webapp_1.0.0.charm");
    std::fs::write(&archive, bytes).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut errors = Vec::new();
    let runs: [&[&str]; 4] =
        [&["verify"], &["inspect"], &["inspect", "--output", "json"], &["unpack", "--out"]];
    for args in runs {
        let mut cmd = charmer();
        cmd.arg(args[0]).arg(&archive).args(&args[1..]);
        if args[0] == "unpack" {
            cmd.arg(out.join("webapp"));
        }
        let assert = cmd.assert().failure().code(1);
        let output = assert.get_output();
        assert!(
            output.stdout.is_empty(),
            "{args:?} printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        );
        let stderr = String::from_utf8(output.stderr.clone()).unwrap();
        assert!(stderr.lines().all(|l| l.starts_with("error: ")), "{args:?}: {stderr}");
        errors.push(stderr);
    }
    assert!(
        errors.iter().all(|e| e == &errors[0]),
        "verify, inspect and unpack disagree: {errors:#?}"
    );
    assert!(entries(&out).is_empty(), "unpack wrote {:?}", entries(&out));
    assert_eq!(entries(&inbox), ["webapp_1.0.0.charm"], "something was written beside the archive");
    (archive.display().to_string(), errors.swap_remove(0))
}

/// Packs a source folder and checks it is refused with exit 1 and nothing written;
/// returns the folder and the error text.
fn refused_source(files: &[crate::support::SourceFile]) -> (PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let src = write_charm(&tmp.path().join("src/webapp"), files);
    let out = tmp.path().join("out");
    let assert = charmer().arg("pack").arg(&src).arg("--out").arg(&out).assert().failure().code(1);
    assert!(entries(&out).is_empty(), "pack wrote {:?}", entries(&out));
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    (src, stderr)
}

/// Sample charm source files with `name` replaced by `data`.
fn source_with(name: &str, data: &str) -> Vec<crate::support::SourceFile> {
    let mut files = sample_charm_files();
    files.retain(|f| f.path != name);
    files.push(file(name, data));
    files
}

#[test]
fn the_forged_valid_charm_is_accepted() {
    // The raw writer itself is sound: without a hostile twist its archives pass.
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("webapp_1.0.0.charm");
    let with_exec = valid().with(RawEntry::file("dispatch", "#!/bin/sh\n").mode(0o100_755));
    std::fs::write(&archive, with_exec.bytes()).unwrap();
    charmer().arg("verify").arg(&archive).assert().success();
    let out = tmp.path().join("out");
    charmer().arg("unpack").arg(&archive).arg("--out").arg(&out).assert().success();
    let files = crate::support::tree(&out);
    assert_eq!(files["version"], (b"1.0.0\n".to_vec(), false));
    assert_eq!(
        files["dispatch"],
        (b"#!/bin/sh\n".to_vec(), true),
        "the exec bit of the entry's Unix mode is kept"
    );
}

#[test]
fn zip_slip_is_refused() {
    for name in
        ["../evil", "templates/../../evil.yaml", "..", "./metadata.yaml", "templates//x.yaml"]
    {
        let (archive, stderr) = refused(&valid().with(RawEntry::file(name, "x")).bytes());
        let why = if name.split('/').any(|p| p == "..") {
            "path traversal (..)"
        } else {
            "empty or '.' path component"
        };
        assert_eq!(stderr, format!("error: {archive}: {name}: {why} {HINT_UNSAFE}\n"), "{name}");
    }
}

#[test]
fn absolute_paths_are_refused() {
    for name in ["/etc/cron.d/evil", "C:/Windows/evil.dll"] {
        let (archive, stderr) = refused(&valid().with(RawEntry::file(name, "x")).bytes());
        assert_eq!(stderr, format!("error: {archive}: {name}: absolute path {HINT_UNSAFE}\n"));
    }
}

#[test]
fn backslashes_are_refused() {
    let name = "templates\\..\\..\\evil.yaml";
    let (archive, stderr) = refused(&valid().with(RawEntry::file(name, "x")).bytes());
    assert_eq!(
        stderr,
        format!("error: {archive}: {name}: backslash in entry name {HINT_UNSAFE}\n")
    );
}

#[test]
fn control_characters_and_non_utf8_names_are_refused() {
    let (archive, stderr) =
        refused(&valid().with(RawEntry::file("templates/a\nerror: b.yaml", "x")).bytes());
    // Shown escaped: a name cannot forge an output line.
    assert_eq!(stderr, format!("error: {archive}: templates/a\\nerror: b.yaml: control character in entry name {HINT_UNSAFE}\n"));
    let (archive, stderr) =
        refused(&valid().with(RawEntry::file(b"templates/\xff.yaml".to_vec(), "x")).bytes());
    assert_eq!(stderr, format!("error: {archive}: entry 4: entry name is not UTF-8\n"));
}

#[test]
fn too_many_entries_are_refused() {
    let mut zip = valid();
    for i in 0..50_000 {
        zip = zip.with(RawEntry::file(format!("files/{i}"), ""));
    }
    let (archive, stderr) = refused(&zip.bytes());
    assert_eq!(stderr, format!("error: {archive}: 50004 entries, more than the limit of 50000\n"));
}

#[test]
fn symlink_entries_are_refused() {
    let (archive, stderr) =
        refused(&valid().with(RawEntry::symlink("templates/passwd.yaml", "/etc/passwd")).bytes());
    assert_eq!(stderr, format!("error: {archive}: templates/passwd.yaml: symlink entry (hint: charms hold plain files only)\n"));
}

#[test]
fn duplicate_names_are_refused() {
    // A second metadata.yaml would shadow the first for one reader and not another.
    let (archive, stderr) =
        refused(&valid().with(RawEntry::file("metadata.yaml", "name: other\n")).bytes());
    assert_eq!(stderr, format!("error: {archive}: metadata.yaml: duplicate entry {HINT_UNSAFE}\n"));
}

#[test]
fn encrypted_entries_are_refused() {
    let (archive, stderr) =
        refused(&valid().with(RawEntry::file("files/key.pem", "x").encrypted()).bytes());
    assert_eq!(
        stderr,
        format!(
            "error: {archive}: files/key.pem: encrypted entry (hint: charms are never encrypted)\n"
        )
    );
}

/// A valid charm plus entries of `MiB` mebibytes of zeros each, deflated by the `zip` crate's
/// own writer streaming 1 MiB writes: real bombs, about 5 KiB per MiB at the fast level.
fn zero_bomb(bombs: &[(&str, usize)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in [("metadata.yaml", "name: webapp\n"), ("version", "1.0.0\n")] {
        writer.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(data.as_bytes()).unwrap();
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    let chunk = vec![0u8; 1 << 20];
    for (name, mib) in bombs {
        writer.start_file(*name, options).unwrap();
        for _ in 0..*mib {
            writer.write_all(&chunk).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

const BOMB: &str = "uncompressed content exceeds the limit of 268435456 bytes (zip bomb?)";

#[test]
fn zip_bombs_are_refused() {
    let bomb = zero_bomb(&[("files/zeros.bin", 300)]);
    assert!(bomb.len() < 2 << 20, "the bomb is small: {} bytes", bomb.len());
    let (archive, stderr) = refused(&bomb);
    assert_eq!(stderr, format!("error: {archive}: files/zeros.bin: {BOMB}\n"));

    // Entries each under the limit add up over it.
    let (archive, stderr) = refused(&zero_bomb(&[("files/a.bin", 150), ("files/b.bin", 150)]));
    assert_eq!(stderr, format!("error: {archive}: files/b.bin: {BOMB}\n"));
}

#[test]
fn a_bomb_lying_about_its_size_is_caught_by_what_it_inflates() {
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut crc = crc32fast::Hasher::new();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..300 {
        deflate.write_all(&chunk).unwrap();
        crc.update(&chunk);
    }
    let lying =
        RawEntry::deflated("files/zeros.bin", deflate.finish().unwrap(), 1000, crc.finalize());
    let (archive, stderr) = refused(&valid().with(lying).bytes());
    assert_eq!(
        stderr,
        format!("error: {archive}: files/zeros.bin: inflates to more than 1000 bytes but its header declares 1000 (hint: the archive is damaged or forged)\n")
    );
}

#[test]
fn huge_declared_sizes_are_refused_before_inflating() {
    let (archive, stderr) = refused(
        &valid().with(RawEntry::file("files/small", "0123456789").declared_size(u32::MAX)).bytes(),
    );
    assert_eq!(stderr, format!("error: {archive}: files/small: {BOMB}\n"));
}

#[test]
fn sizes_that_disagree_with_the_content_are_refused() {
    let (archive, stderr) = refused(
        &valid().with(RawEntry::file("files/small", "0123456789").declared_size(3)).bytes(),
    );
    assert_eq!(
        stderr,
        format!("error: {archive}: files/small: inflates to more than 3 bytes but its header declares 3 (hint: the archive is damaged or forged)\n")
    );
    let (archive, stderr) = refused(
        &valid().with(RawEntry::file("files/small", "0123456789").declared_size(100)).bytes(),
    );
    assert_eq!(
        stderr,
        format!("error: {archive}: files/small: inflates to 10 bytes but its header declares 100 (hint: the archive is damaged or forged)\n")
    );
}

#[test]
fn corrupted_content_is_refused_by_its_crc() {
    let mut entry = RawEntry::file("templates/deployment.yaml", "kind: Deployment\n");
    entry.crc ^= 1;
    let (archive, stderr) =
        refused(&valid().without("templates/deployment.yaml").with(entry).bytes());
    assert!(
        stderr.starts_with(&format!(
            "error: {archive}: templates/deployment.yaml: cannot be inflated: "
        )),
        "{stderr}"
    );
    assert!(stderr.ends_with(" (hint: the archive is damaged)\n"), "{stderr}");
}

#[test]
fn truncated_and_non_zip_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = write_charm(&tmp.path().join("webapp"), &sample_charm_files());
    charmer().arg("pack").arg(&src).arg("--out").arg(tmp.path()).assert().success();
    let whole = std::fs::read(tmp.path().join("webapp_1.2.3.charm")).unwrap();
    for cut in [whole.len() / 2, whole.len() - 10] {
        let (archive, stderr) = refused(&whole[..cut]);
        assert!(
            stderr.starts_with(&format!("error: {archive}: not a readable zip archive: ")),
            "{stderr}"
        );
        assert!(
            stderr.ends_with(" (hint: the file is damaged or truncated; copy it again)\n"),
            "{stderr}"
        );
    }
    let (archive, stderr) = refused(b"name: webapp\n");
    assert!(
        stderr.starts_with(&format!("error: {archive}: not a readable zip archive: ")),
        "{stderr}"
    );
}

#[test]
fn invalid_yaml_in_metadata_is_refused() {
    let bad = "name: webapp\nprovides:\n  http: [unclosed\n";
    let (archive, stderr) = refused(&valid_with("metadata.yaml", bad).bytes());
    assert!(
        stderr.starts_with(&format!("error: {archive}/metadata.yaml: line 4: invalid YAML: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (src, stderr) = refused_source(&source_with("metadata.yaml", bad));
    assert!(
        stderr.contains(&format!("{}/metadata.yaml: line 4: invalid YAML: ", src.display())),
        "{stderr}"
    );
}

#[test]
fn wrong_types_in_config_defaults_are_refused() {
    let config = "options:\n  replicas: {type: int, default: three}\n  debug: {type: boolean, default: 'yes'}\n  ratio: {type: float, default: 1}\n";
    let (archive, stderr) = refused(&valid_with("config.yaml", config).bytes());
    assert_eq!(
        stderr,
        format!(
            "error: {archive}/config.yaml: options.debug.default: expected a boolean (true or false), got a string\n\
             error: {archive}/config.yaml: options.replicas.default: expected an int, got a string\n"
        )
    );
    let (src, stderr) = refused_source(&source_with("config.yaml", config));
    assert!(
        stderr.contains(&format!(
            "{}/config.yaml: options.replicas.default: expected an int, got a string\n",
            src.display()
        )),
        "{stderr}"
    );
}

#[test]
fn enum_defaults_outside_the_allowed_values_are_refused() {
    let config = "options:\n  svc: {type: string, default: Ingress, enum: [LoadBalancer, NodePort, ClusterIP]}\n";
    let (archive, stderr) = refused(&valid_with("config.yaml", config).bytes());
    assert_eq!(
        stderr,
        format!("error: {archive}/config.yaml: options.svc.default: \"Ingress\" is not allowed; allowed values: \"LoadBalancer\", \"NodePort\", \"ClusterIP\"\n")
    );
}

#[test]
fn duplicate_endpoints_are_refused() {
    let metadata =
        "name: webapp\nprovides:\n  db: mongodb_client\nrequires:\n  db: mongodb_client\n";
    let (archive, stderr) = refused(&valid_with("metadata.yaml", metadata).bytes());
    assert_eq!(
        stderr,
        format!(
            "error: {archive}/metadata.yaml: requires.db: endpoint \"db\" is also declared under provides \
             (hint: an endpoint name may appear only once across provides, requires and peers)\n"
        )
    );
    // Twice in the same section is a YAML duplicate key.
    let (archive, stderr) = refused(
        &valid_with("metadata.yaml", "name: webapp\nprovides:\n  db: a\n  db: b\n").bytes(),
    );
    assert!(stderr.starts_with(&format!("error: {archive}/metadata.yaml: line 3: invalid YAML: provides: duplicate entry with key \"db\"")), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn reserved_juju_endpoint_names_are_refused() {
    let metadata = "name: webapp\nprovides:\n  juju-info: juju-info\nrequires:\n  juju: x\n";
    let (archive, stderr) = refused(&valid_with("metadata.yaml", metadata).bytes());
    let line = |key: &str| {
        format!("error: {archive}/metadata.yaml: {key}: endpoint names \"juju\" and \"juju-*\" are reserved by Juju (hint: rename the endpoint)\n")
    };
    assert_eq!(stderr, format!("{}{}", line("provides.juju-info"), line("requires.juju")));
}

#[test]
fn missing_metadata_is_refused() {
    let (archive, stderr) = refused(&valid().without("metadata.yaml").bytes());
    assert_eq!(stderr, format!("error: {archive}: metadata.yaml: missing (hint: every charm needs a metadata.yaml at its root)\n"));
    let mut files = sample_charm_files();
    files.retain(|f| f.path != "metadata.yaml");
    let (_, stderr) = refused_source(&files);
    assert!(
        stderr.contains(
            ": metadata.yaml: missing (hint: every charm needs a metadata.yaml at its root)\n"
        ),
        "{stderr}"
    );
}

#[test]
fn missing_version_is_refused() {
    let (archive, stderr) = refused(&valid().without("version").bytes());
    assert_eq!(stderr, format!("error: {archive}: version: missing (hint: charms with templates/ need a file named version holding a semver such as 1.0.0)\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let hostile = valid()
        .with(RawEntry::file("../evil", "x"))
        .with(RawEntry::symlink("templates/link.yaml", "/etc/passwd"))
        .with(RawEntry::file("files/secret", "x").encrypted());
    let (archive, stderr) = refused(&hostile.bytes());
    assert_eq!(
        stderr,
        format!(
            "error: {archive}: ../evil: path traversal (..) {HINT_UNSAFE}\n\
             error: {archive}: templates/link.yaml: symlink entry (hint: charms hold plain files only)\n\
             error: {archive}: files/secret: encrypted entry (hint: charms are never encrypted)\n"
        )
    );
}
