//! `images save` → `images push` between real registries, checked with skopeo.

use std::collections::BTreeSet;
use std::fs::File;

use serde_json::Value;

use crate::support::registry::{charmer, connection, skopeo, Kind, Layout, Registry};

fn read_member(path: &std::path::Path, name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().display().to_string() == name {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("{name} not in {}", path.display());
}

/// Three images on a source registry: two sharing a base layer, and a two-platform index.
fn source_images(work: &std::path::Path, src: &Registry) {
    let mut layout = Layout::new(&work.join("layout"));
    let base = layout.layer(1, 300_000);
    let a = layout.layer(2, 200_000);
    let b = layout.layer(3, 100_000);
    let app = layout.image("amd64", &[&base, &a]);
    let api = layout.image("amd64", &[&base, &b]);
    let amd = layout.image("amd64", &[&a]);
    let arm = layout.image("arm64", &[&b]);
    let multi = layout.index(&[(&amd, "amd64"), (&arm, "arm64")]);
    layout.name(&app, "app");
    layout.name(&api, "api");
    layout.name(&multi, "multi");
    layout.push_with_skopeo("app", src, "team/app:1.0");
    layout.push_with_skopeo("api", src, "team/api:2.0");
    layout.push_with_skopeo("multi", src, "tools/multi:1");
}

const IMAGES: [&str; 3] = ["team/app:1.0", "team/api:2.0", "tools/multi:1"];

#[test]
fn save_then_push_keeps_digests_stores_shared_blobs_once_and_repush_sends_nothing() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    source_images(work.path(), &src);
    let list = work.path().join("images.txt");
    let lines: Vec<String> = IMAGES.iter().map(|i| format!("{}/{i}", src.host())).collect();
    std::fs::write(&list, format!("# images\n{}\n", lines.join("\n"))).unwrap();

    let archive = work.path().join("images.tar");
    charmer(work.path())
        .args(["images", "save", "--from-list"])
        .arg(&list)
        .arg("--out")
        .arg(&archive)
        .args(connection(&src))
        .assert()
        .success();

    // One member per blob, every manifest and blob exactly once, names kept as annotations.
    let names = crate::support::tar_member_names(&archive);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    // 3 layers + 4 configs + 4 manifests + 1 index, plus oci-layout and index.json.
    assert_eq!(names.iter().filter(|n| n.starts_with("blobs/sha256/")).count(), 12, "{names:?}");
    let index: Value = serde_json::from_slice(&read_member(&archive, "index.json")).unwrap();
    let annotated: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["io.containerd.image.name"].as_str().unwrap())
        .collect();
    let mut sorted: Vec<&str> = lines.iter().map(String::as_str).collect();
    sorted.sort();
    assert_eq!(annotated, sorted, "index.json is sorted by reference");
    // skopeo reads the archive as an OCI archive (by the tag annotation).
    let peer = work.path().join("peer");
    skopeo(&[
        "copy".to_string(),
        "oci-archive:".to_string() + archive.to_str().unwrap() + ":2.0",
        format!("dir:{}", peer.display()),
    ]);

    let retagged = work.path().join("retagged-images.txt");
    let target = format!("{}/mirror", dst.host());
    let out = charmer(work.path())
        .args(["images", "push"])
        .arg(&archive)
        .args(["--registry", &target, "--retagged-out"])
        .arg(&retagged)
        .args(connection(&dst))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();

    let mut expected = Vec::new();
    for image in IMAGES {
        let (_, source_digest) = src.inspect_raw(image);
        let (_, pushed_digest) = dst.inspect_raw(&format!("mirror/{image}"));
        assert_eq!(pushed_digest, source_digest, "{image}");
        expected.push(format!("{target}/{image}@{source_digest}"));
    }
    expected.sort();
    let written = std::fs::read_to_string(&retagged).unwrap();
    assert_eq!(written.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), expected);
    // The shared base layer was sent once and mounted into the second repository.
    let requests = dst.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("POST") && r.contains("mount=")),
        "{requests:#?}"
    );
    assert!(stdout.contains(" mounted") && !stdout.contains(" 0 mounted"), "{stdout}");
    // skopeo pulls every blob of what charmer pushed and checks each digest.
    let pulled = work.path().join("pulled");
    skopeo(&[
        "copy".to_string(),
        "--src-tls-verify=false".to_string(),
        format!("docker://{target}/team/app:1.0"),
        format!("dir:{}", pulled.display()),
    ]);

    // Again: everything is there, so only HEAD requests are made.
    let before = dst.requests().len();
    let out = charmer(work.path())
        .args(["images", "push"])
        .arg(&archive)
        .args(["--registry", &target, "--retagged-out"])
        .arg(&retagged)
        .args(connection(&dst))
        .assert()
        .success();
    let again = dst.requests()[before..].to_vec();
    assert!(!again.is_empty() && again.iter().all(|r| r.starts_with("HEAD ")), "{again:#?}");
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert_eq!(stdout.matches("present ").count(), 3, "{stdout}");
}

#[test]
fn one_platform_of_a_multi_arch_image() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    source_images(work.path(), &src);
    let list = work.path().join("images.txt");
    std::fs::write(&list, format!("{}/tools/multi:1\n", src.host())).unwrap();
    let archive = work.path().join("arm.tar");
    charmer(work.path())
        .args(["images", "save", "--platform", "linux/arm64", "--quiet", "--from-list"])
        .arg(&list)
        .arg("--out")
        .arg(&archive)
        .args(connection(&src))
        .assert()
        .success();
    let (raw, _) = src.inspect_raw("tools/multi:1");
    let index: Value = serde_json::from_slice(&raw).unwrap();
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &dst.host()])
        .arg(&archive)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    assert_eq!(dst.inspect_raw("tools/multi:1").1, arm);
    let retagged = std::fs::read_to_string(work.path().join("retagged-images.txt")).unwrap();
    assert!(retagged.contains(&format!("{}/tools/multi:1@{arm}", dst.host())), "{retagged}");

    let missing = work.path().join("none.tar");
    let out = charmer(work.path())
        .args(["images", "save", "--platform", "linux/s390x", "--from-list"])
        .arg(&list)
        .arg("--out")
        .arg(&missing)
        .args(connection(&src))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("has no linux/s390x image (it has: linux/amd64, linux/arm64)"),
        "{stderr}"
    );
    assert!(!missing.exists());
}

#[test]
fn docker_io_images_without_a_mirror_are_refused_before_any_request() {
    let work = tempfile::tempdir().unwrap();
    let list = work.path().join("images.txt");
    std::fs::write(
        &list,
        "nginx:1.27\nquay.io/prometheus/node-exporter:v1.8.2\nhivemq/hivemq-ce:2024.3\n",
    )
    .unwrap();
    let out = work.path().join("images.tar");
    let output = crate::support::charmer()
        .args(["images", "save", "--from-list"])
        .arg(&list)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("docker.io images are pulled through a mirror"))
        .collect();
    assert_eq!(refused.len(), 2, "both docker.io images named, the quay.io one not:\n{stderr}");
    assert!(
        refused.iter().any(|l| l.starts_with("error: docker.io/library/nginx:1.27: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "no request was made:\n{stderr}");
    assert!(!out.exists(), "nothing written");
}
