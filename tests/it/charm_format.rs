//! The `.charm` format end to end through the CLI: pack → verify → inspect → unpack, byte
//! reproducibility, file naming rules, and the command line's own behaviour.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::{
    charmer, entries, file, sample_charm_files, sha256_file, tree, write_charm, RawZip,
};

/// Packs `src` into `out` and returns the archive path and the printed line.
fn pack(src: &Path, out: &Path) -> (PathBuf, String) {
    let assert = charmer().arg("pack").arg(src).arg("--out").arg(out).assert().success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).expect("utf-8");
    (out.join("webapp_1.2.3.charm"), stdout)
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    let assert = cmd.assert().success();
    String::from_utf8(assert.get_output().stdout.clone()).expect("utf-8 stdout")
}

fn stderr_of_failure(cmd: &mut assert_cmd::Command) -> String {
    let assert = cmd.assert().failure().code(1);
    assert!(assert.get_output().stdout.is_empty(), "a failing command printed to stdout");
    String::from_utf8(assert.get_output().stderr.clone()).expect("utf-8 stderr")
}

#[test]
fn pack_verify_inspect_unpack_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = write_charm(&tmp.path().join("src/webapp"), &sample_charm_files());
    // Hidden files and folders are left out of the archive, as charmcraft does.
    std::fs::create_dir(src.join(".git")).unwrap();
    std::fs::write(src.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(src.join(".charmignore"), "*.pyc\n").unwrap();
    let out = tmp.path().join("dist");

    let (archive, printed) = pack(&src, &out);
    let sha = sha256_file(&archive);
    assert_eq!(
        printed,
        format!("{sha}  {}\n", archive.display()),
        "pack prints the SHA-256 and path, sha256sum style"
    );
    assert_eq!(
        entries(&out),
        ["webapp_1.2.3.charm"],
        "only the archive is written, no temp files left"
    );

    let verified = stdout_of(charmer().arg("verify").arg(&archive));
    assert_eq!(verified, format!("ok  {}  webapp 1.2.3  sha256 {sha}\n", archive.display()));

    let text = stdout_of(charmer().arg("inspect").arg(&archive));
    for expected in [
        "name:     webapp\n",
        "version:  1.2.3\n",
        "summary:  A small web application\n",
        &format!("sha256:   {sha}\n"),
        "  replicas (int) default 2\n      How many pods to run.\n",
        "  ratio (float) default 0.5\n",
        "  debug (boolean) default false\n",
        "  hostname (string) default ''\n",
        "  service_type (string) default ClusterIP\n      allowed: ClusterIP | NodePort | LoadBalancer\n      Kubernetes Service type.\n",
        "  admin_password (secret) default <secret>\n",
        "  tls_secret (string) default (unset)\n",
        "resources:\n  web-image (oci-image) docker.io/library/nginx:1.27.3\n",
        "  provides http interface http\n",
        "  requires database interface mongodb_client\n",
        "  requires logging interface loki_push_api (optional)\n",
        "  peers replicas interface webapp-peers\n",
        "storage:\n  data (filesystem) /srv/data\n",
        "containers:\n  web runs web-image\n",
        "templates:\n  templates/_helpers.j2\n  templates/deployment.yaml\n  templates/service.yaml\n",
    ] {
        assert!(text.contains(expected), "inspect text lacks {expected:?}:\n{text}");
    }
    assert!(!text.contains("hunter2"), "a secret default was shown:\n{text}");

    let json = stdout_of(charmer().arg("inspect").arg(&archive).args(["--output", "json"]));
    assert!(!json.contains("hunter2"), "a secret default was shown:\n{json}");
    let view: Value = serde_json::from_str(&json).expect("inspect --output json prints JSON");
    assert_eq!(view["name"], "webapp");
    assert_eq!(view["version"], "1.2.3");
    assert_eq!(view["summary"], "A small web application");
    assert_eq!(view["sha256"], sha.as_str());
    let option = |name: &str| -> &Value {
        view["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no option {name}"))
    };
    let names: Vec<&str> =
        view["options"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["admin_password", "debug", "hostname", "ratio", "replicas", "service_type", "tls_secret"],
        "options sorted by name"
    );
    assert_eq!(option("replicas")["type"], "int");
    assert_eq!(option("replicas")["default"], 2);
    assert_eq!(option("replicas")["description"], "How many pods to run.");
    assert_eq!(option("ratio")["default"], 0.5);
    assert_eq!(option("debug")["type"], "boolean");
    assert_eq!(option("debug")["default"], false);
    assert_eq!(option("hostname")["default"], "");
    assert_eq!(
        option("service_type")["allowed"],
        serde_json::json!(["ClusterIP", "NodePort", "LoadBalancer"])
    );
    assert_eq!(option("service_type")["description"], "Kubernetes Service type.\nSecond line.");
    assert!(option("replicas").get("allowed").is_none(), "no allowed list when unrestricted");
    assert_eq!(option("admin_password")["type"], "secret");
    assert_eq!(option("admin_password")["default"], "<secret>");
    assert_eq!(option("tls_secret")["default"], Value::Null);
    assert_eq!(view["resources"]["web-image"]["type"], "oci-image");
    assert_eq!(view["resources"]["web-image"]["upstream-source"], "docker.io/library/nginx:1.27.3");
    let endpoints: Vec<(String, String, String, bool)> = view["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("role"), s("name"), s("interface"), e["optional"].as_bool().unwrap())
        })
        .collect();
    let expected: Vec<(String, String, String, bool)> = [
        ("provides", "http", "http", false),
        ("requires", "database", "mongodb_client", false),
        ("requires", "logging", "loki_push_api", true),
        ("peers", "replicas", "webapp-peers", false),
    ]
    .iter()
    .map(|(r, n, i, o)| (r.to_string(), n.to_string(), i.to_string(), *o))
    .collect();
    assert_eq!(endpoints, expected);
    assert_eq!(
        view["storage"]["data"],
        serde_json::json!({"type": "filesystem", "location": "/srv/data", "minimum-size": "1G"})
    );
    assert_eq!(view["containers"]["web"]["resource"], "web-image");
    assert_eq!(
        view["containers"]["web"]["mounts"],
        serde_json::json!([{"storage": "data", "location": "/srv/data"}])
    );
    assert_eq!(
        view["templates"],
        serde_json::json!([
            "templates/_helpers.j2",
            "templates/deployment.yaml",
            "templates/service.yaml"
        ])
    );
    assert_eq!(view["warnings"], serde_json::json!([]));

    // The source folder inspects the same, and names the SHA-256 its archive will have.
    let from_dir: Value = serde_json::from_str(&stdout_of(
        charmer().arg("inspect").arg(&src).args(["--output", "json"]),
    ))
    .unwrap();
    assert_eq!(from_dir, view);

    let unpacked = tmp.path().join("unpacked/webapp");
    let said = stdout_of(charmer().arg("unpack").arg(&archive).arg("--out").arg(&unpacked));
    assert_eq!(said, format!("unpacked webapp 1.2.3 into {}\n", unpacked.display()));
    let mut source_tree = tree(&src);
    source_tree.retain(|path, _| !path.starts_with('.'));
    assert_eq!(
        tree(&unpacked),
        source_tree,
        "unpack gives back the source byte for byte, exec bits included"
    );
    assert!(tree(&unpacked)["dispatch"].1 && !tree(&unpacked)["version"].1);
    assert_eq!(
        entries(&tmp.path().join("unpacked")),
        ["webapp"],
        "no staging folder left beside the result"
    );

    // Unpacking never writes into an existing folder.
    let again =
        stderr_of_failure(charmer().arg("unpack").arg(&archive).arg("--out").arg(&unpacked));
    assert_eq!(
        again,
        format!("error: {}: already exists (hint: unpack into a new folder)\n", unpacked.display())
    );
}

/// Sets a file's modification time.
fn touch(path: &Path, when: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

#[test]
fn packing_is_byte_reproducible_across_folders_times_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = write_charm(&tmp.path().join("a/webapp"), &sample_charm_files());
    let (first, _) = pack(&src, &tmp.path().join("out1"));
    let (second, _) = pack(&src, &tmp.path().join("out2"));
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(bytes, std::fs::read(&second).unwrap(), "packing twice gives the same bytes");

    // The same files, written in another order into a differently named folder, with other
    // timestamps and other (non-exec vs exec) permission bits, pack to the same bytes.
    let mut files = sample_charm_files();
    files.reverse();
    let copy = write_charm(&tmp.path().join("elsewhere/deeper/copy-of-webapp"), &files);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for (i, f) in files.iter().enumerate() {
        let path = copy.join(&f.path);
        touch(&path, if i % 2 == 0 { old } else { SystemTime::now() });
        let mode = if f.executable { 0o700 } else { 0o600 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let (third, _) = pack(&copy, &tmp.path().join("out3"));
    assert_eq!(
        bytes,
        std::fs::read(&third).unwrap(),
        "folder name, file order, mtimes and modes leak into the archive"
    );

    // Packing into the source folder itself: the earlier archive is not packed into the next.
    let (inside, _) = pack(&src, &src);
    let (again, _) = pack(&src, &src);
    assert_eq!((inside.clone(), std::fs::read(&again).unwrap()), (again, bytes.clone()));

    // The archive is an ordinary file: mode 0666 less the umask, like any created file.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
        .unwrap();
    assert_eq!(std::fs::metadata(&first).unwrap().permissions().mode() & 0o777, 0o666 & !umask);

    // What makes it reproducible, read back with an independent reader: sorted entries,
    // no folder entries, the zip epoch as every timestamp, modes 0644/0755 made by Unix.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().to_string();
        let modified = entry.last_modified().unwrap();
        assert_eq!(
            (modified.year(), modified.month(), modified.day(), modified.hour(), modified.minute()),
            (1980, 1, 1, 0, 0),
            "{name}"
        );
        let expected_mode =
            if name == "dispatch" || name == "hooks/install" { 0o100_755 } else { 0o100_644 };
        assert_eq!(entry.unix_mode(), Some(expected_mode), "{name}");
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated, "{name}");
        assert!(!entry.is_dir());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(data, std::fs::read(src.join(&name)).unwrap(), "{name}");
        names.push(name);
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted by path");
    assert_eq!(names.len(), sample_charm_files().len());
}

#[test]
fn symlinks_in_a_source_folder_become_plain_files_or_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = write_charm(&tmp.path().join("webapp"), &sample_charm_files());
    std::os::unix::fs::symlink("deployment.yaml", src.join("templates/alias.yaml")).unwrap();
    let (archive, _) = pack(&src, &tmp.path().join("out"));
    let unpacked = tmp.path().join("unpacked");
    charmer().arg("unpack").arg(&archive).arg("--out").arg(&unpacked).assert().success();
    let alias = unpacked.join("templates/alias.yaml");
    assert!(
        alias.symlink_metadata().unwrap().file_type().is_file(),
        "an inside symlink is stored as a plain copy"
    );
    assert_eq!(
        std::fs::read(&alias).unwrap(),
        std::fs::read(src.join("templates/deployment.yaml")).unwrap()
    );

    std::fs::write(tmp.path().join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink("../../secret.txt", src.join("files/leak.txt")).unwrap();
    let out = tmp.path().join("out-refused");
    let stderr = stderr_of_failure(charmer().arg("pack").arg(&src).arg("--out").arg(&out));
    let outside = tmp.path().canonicalize().unwrap().join("secret.txt");
    assert_eq!(
        stderr,
        format!(
            "error: {}: files/leak.txt: symlink points outside the charm, to {} (hint: copy the file into the charm instead)\n",
            src.display(),
            outside.display()
        )
    );
    assert!(entries(&out).is_empty(), "nothing written");

    // A symlinked folder leading outside leaks every file under it: each is refused.
    std::fs::remove_file(src.join("files/leak.txt")).unwrap();
    let outside_dir = tmp.path().join("elsewhere");
    std::fs::create_dir(&outside_dir).unwrap();
    std::fs::write(outside_dir.join("id_rsa"), "key").unwrap();
    std::os::unix::fs::symlink(&outside_dir, src.join("files/linked")).unwrap();
    let stderr = stderr_of_failure(charmer().arg("pack").arg(&src).arg("--out").arg(&out));
    assert!(stderr.contains("files/linked/id_rsa: symlink points outside the charm"), "{stderr}");
    assert!(entries(&out).is_empty(), "nothing written");
}

#[test]
fn archive_file_names_must_match_the_charm() {
    let tmp = tempfile::tempdir().unwrap();
    let src = write_charm(&tmp.path().join("webapp"), &sample_charm_files());
    let (archive, _) = pack(&src, &tmp.path().join("out"));

    // Names as charmcraft and `juju download` write them are accepted.
    for accepted in [
        "webapp.charm",
        "webapp_r12.charm",
        "webapp_ubuntu-22.04-amd64.charm",
        "webapp_1.2.3.charm",
    ] {
        let path = tmp.path().join(accepted);
        std::fs::copy(&archive, &path).unwrap();
        let sha = sha256_file(&path);
        assert_eq!(
            stdout_of(charmer().arg("verify").arg(&path)),
            format!("ok  {}  webapp 1.2.3  sha256 {sha}\n", path.display())
        );
        let view: Value = serde_json::from_str(&stdout_of(
            charmer().arg("inspect").arg(&path).args(["--output", "json"]),
        ))
        .unwrap();
        assert_eq!(view["name"], "webapp", "{accepted}");
    }

    let other = tmp.path().join("other_1.2.3.charm");
    std::fs::copy(&archive, &other).unwrap();
    let stderr = stderr_of_failure(charmer().arg("verify").arg(&other));
    assert_eq!(
        stderr,
        format!(
            "error: {}: metadata.yaml: name: the charm is named \"webapp\" but the file name says \"other\" (hint: rename the file to webapp_1.2.3.charm)\n",
            other.display()
        )
    );

    let wrong_version = tmp.path().join("webapp_2.0.0.charm");
    std::fs::copy(&archive, &wrong_version).unwrap();
    let stderr = stderr_of_failure(charmer().arg("inspect").arg(&wrong_version));
    assert_eq!(
        stderr,
        format!(
            "error: {}: version: the version file says 1.2.3 but the file name says 2.0.0 (hint: rename the file to webapp_1.2.3.charm)\n",
            wrong_version.display()
        )
    );

    // verify checks every archive, reports every bad one (unreadable ones too), and fails
    // as a whole.
    let missing = tmp.path().join("missing_1.2.3.charm");
    let good = tmp.path().join("webapp_1.2.3.charm");
    let assert = charmer()
        .arg("verify")
        .arg(&other)
        .arg(&missing)
        .arg(&good)
        .arg(&wrong_version)
        .assert()
        .failure()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert_eq!(
        stdout,
        format!("ok  {}  webapp 1.2.3  sha256 {}\n", good.display(), sha256_file(&good))
    );
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("error: {}: metadata.yaml: name: ", other.display())),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        format!("error: {}: No such file or directory (os error 2)", missing.display())
    );
    assert!(
        lines[2].starts_with(&format!("error: {}: version: ", wrong_version.display())),
        "{stderr}"
    );
}

#[test]
fn versions_must_be_semver() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = sample_charm_files();
    files.retain(|f| f.path != "version");
    files.push(file("version", "1.2\n"));
    let src = write_charm(&tmp.path().join("webapp"), &files);
    let out = tmp.path().join("out");
    let stderr = stderr_of_failure(charmer().arg("pack").arg(&src).arg("--out").arg(&out));
    assert_eq!(
        stderr,
        format!(
            "error: {}/version: \"1.2\" is not a semantic version: unexpected end of input while parsing minor version number (hint: write a version such as 1.2.0)\n",
            src.display()
        )
    );
    assert!(entries(&out).is_empty(), "nothing written");

    // The same rule holds for an archive from elsewhere.
    let forged =
        RawZip::of_files([("metadata.yaml", "name: webapp\n"), ("version", "latest\n")]).bytes();
    let path = tmp.path().join("webapp.charm");
    std::fs::write(&path, forged).unwrap();
    let stderr = stderr_of_failure(charmer().arg("verify").arg(&path));
    assert!(
        stderr.starts_with(&format!(
            "error: {}/version: \"latest\" is not a semantic version: ",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn command_line_help_usage_errors_and_completions() {
    let help = stdout_of(charmer().arg("--help"));
    for command in ["pack", "inspect", "verify", "unpack", "completions"] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
        let sub = stdout_of(charmer().args([command, "--help"]));
        assert!(
            sub.starts_with("Usage: charmer ") || sub.contains("\nUsage: charmer "),
            "{command} --help:\n{sub}"
        );
    }
    // Usage errors exit 2, before anything runs.
    charmer().arg("verify").assert().failure().code(2);
    charmer().args(["inspect", "x.charm", "--output", "yaml"]).assert().failure().code(2);
    let completions = stdout_of(charmer().args(["completions", "bash"]));
    assert!(completions.contains("charmer") && completions.contains("inspect"));
    // A file that does not exist is a user error (exit 1) naming the file.
    let stderr = stderr_of_failure(charmer().args(["verify", "/nonexistent/webapp.charm"]));
    assert!(stderr.starts_with("error: /nonexistent/webapp.charm: "), "{stderr}");
}

#[test]
fn inspect_escapes_terminal_control_characters_from_untrusted_text() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = sample_charm_files();
    for f in &mut files {
        if f.path == "metadata.yaml" {
            let text = String::from_utf8(f.data.clone()).unwrap();
            let evil = text
                .lines()
                .map(|l| {
                    if l.starts_with("summary:") {
                        "summary: \"ok\\e[2J\\e]0;pwned\\a\""
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            f.data = format!("{evil}\n").into_bytes();
        }
    }
    let src = write_charm(&tmp.path().join("webapp"), &files);
    let out = charmer().arg("inspect").arg(&src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "raw escape sequences reached the terminal: {stdout:?}"
    );
    assert!(stdout.contains("summary:  ok\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\n"), "{stdout}");
}

/// `inspect` shows the charm's description and each option's description whole, indented,
/// with control characters escaped in the text (never sent to the terminal) and kept as they
/// are in the JSON.
#[test]
fn inspect_shows_whole_descriptions_with_control_characters_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    // YAML's double-quoted escapes carry control characters a hostile charm could send.
    let metadata = r#"name: webapp
summary: A web app
description: "First line.\nSecond line.\n\nAfter a blank line, a bell \a is here.\n"
provides:
  http: {interface: http, description: "The UI.\nOn port 8080."}
resources:
  web-image: {type: oci-image, upstream-source: "nginx:1.27", description: "The web server."}
"#;
    let config = r#"options:
  replicas:
    type: int
    default: 2
    description: "How many pods.\nMore than one needs the database\n\"\e[31m\" relation.\n"
"#;
    let src = write_charm(
        &tmp.path().join("src"),
        &[
            file("metadata.yaml", metadata),
            file("config.yaml", config),
            file("version", "1.0.0\n"),
            file("templates/service.yaml", "kind: Service\nmetadata:\n  name: {{ app }}\n"),
        ],
    );
    let text = stdout_of(charmer().arg("inspect").arg(&src));
    assert!(
        text.contains(
            "description:\n  First line.\n  Second line.\n\n  After a blank line, a bell \\u{7} \
             is here.\noptions:\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  replicas (int) default 2\n      How many pods.\n      More than one needs the \
             database\n      \"\\u{1b}[31m\" relation.\nresources:\n  web-image (oci-image) \
             nginx:1.27\n      The web server.\nendpoints:\n  provides http interface http\n      \
             The UI.\n      On port 8080.\nstorage:"
        ),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");

    let view: Value = serde_json::from_str(&stdout_of(
        charmer().arg("inspect").arg(&src).args(["--output", "json"]),
    ))
    .unwrap();
    assert_eq!(
        view["description"],
        "First line.\nSecond line.\n\nAfter a blank line, a bell \u{7} is here."
    );
    assert_eq!(view["endpoints"][0]["description"], "The UI.\nOn port 8080.");
    assert_eq!(view["resources"]["web-image"]["description"], "The web server.");
    assert_eq!(
        view["options"][0]["description"],
        "How many pods.\nMore than one needs the database\n\"\u{1b}[31m\" relation."
    );
}
