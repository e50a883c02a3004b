//! `images push` of archives other tools wrote (skopeo's docker-archive and oci-archive, a
//! multi-image `docker save` with shared layers, gzip'd), and of hostile archives.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::registry::{
    charmer, connection, sha256, skopeo, Kind, Layout, Noise, Registry,
};

/// `skopeo inspect` of an image on `registry` as JSON (config digest, layers).
fn inspect(registry: &Registry, reference: &str, config: bool) -> Vec<u8> {
    let mut args = vec!["inspect".to_string(), "--tls-verify=false".to_string()];
    if config {
        args.extend(["--config".to_string(), "--raw".to_string()]);
    }
    args.push(format!("docker://{}/{reference}", registry.host()));
    skopeo(&args).stdout
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).to_string()
}

#[test]
fn pushes_what_skopeo_wrote_as_docker_archive_and_oci_archive() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let mut layout = Layout::new(&work.path().join("layout"));
    let (l1, l2) = (layout.layer(11, 150_000), layout.layer(12, 250_000));
    let image = layout.image("amd64", &[&l1, &l2]);
    layout.name(&image, "app");
    layout.push_with_skopeo("app", &src, "team/app:1.0");
    let source = format!("docker://{}/team/app:1.0", src.host());

    // docker-archive: converted to a schema 2 manifest over the same config and layers.
    let docker = work.path().join("docker.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &source,
        &format!("docker-archive:{}:example.com/team/app:1.0", docker.display()),
    ]);
    charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &format!("{}/d", dst.host())])
        .arg(&docker)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    let source_config = inspect(&src, "team/app:1.0", true);
    assert_eq!(inspect(&dst, "d/team/app:1.0", true), source_config);
    let layers: Value = serde_json::from_slice(&inspect(&dst, "d/team/app:1.0", false)).unwrap();
    assert_eq!(
        layers["Layers"],
        json!([l1.digest, l2.digest]),
        "uncompressed layers keep their diff_id digests"
    );
    let (manifest, from_docker) = dst.inspect_raw("d/team/app:1.0");
    assert!(String::from_utf8_lossy(&manifest)
        .contains("application/vnd.docker.distribution.manifest.v2+json"));

    // The same tarball gzip'd (as seeds 000/001 carry them) gives the same manifest, byte
    // for byte: the conversion is deterministic.
    let gzipped = work.path().join("docker.tar.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(File::create(&gzipped).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut File::open(&docker).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();
    charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &format!("{}/gz", dst.host())])
        .arg(&gzipped)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    assert_eq!(dst.inspect_raw("gz/team/app:1.0").1, from_docker);

    // oci-archive: the manifest is kept as is.
    let oci = work.path().join("oci.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &source,
        &format!("oci-archive:{}:example.com/team/app:1.0", oci.display()),
    ]);
    charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &format!("{}/o", dst.host())])
        .arg(&oci)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    let in_archive =
        sha256(&skopeo(&["inspect", "--raw", &format!("oci-archive:{}", oci.display())]).stdout);
    assert_eq!(dst.inspect_raw("o/team/app:1.0").1, in_archive);
}

/// Writes a tar of `(name, content)` members; a content starting with `->` makes a symlink.
fn write_tar(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut builder = tar::Builder::new(File::create(path).unwrap());
    for (name, content) in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        if let Some(target) = content.strip_prefix(b"->") {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, name, std::str::from_utf8(target).unwrap()).unwrap();
        } else {
            header.set_size(content.len() as u64);
            // Raw name bytes: the tar crate refuses to write `..`, and hostile archives have it.
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, content.as_slice()).unwrap();
        }
    }
    builder.finish().unwrap();
}

fn random(seed: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    Noise::new(seed).fill(&mut bytes);
    bytes
}

/// A classic `docker save` of two images sharing a layer through a symlink, as Docker
/// writes it (`<id>/layer.tar`, `<config hex>.json`, `manifest.json`).
fn docker_save(path: &Path) -> (String, String) {
    let shared = random(21, 70_000);
    let own = random(22, 30_000);
    let config = |diff_ids: &[&Vec<u8>]| {
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| sha256(d)).collect::<Vec<_>>()}})).unwrap()
    };
    let (c1, c2) = (config(&[&shared]), config(&[&shared, &own]));
    let (h1, h2) = (sha256(&c1)[7..].to_string(), sha256(&c2)[7..].to_string());
    let manifest = json!([
        {"Config": format!("{h1}.json"), "RepoTags": ["example.com/base:1"], "Layers": ["aaa/layer.tar"]},
        {"Config": format!("{h2}.json"), "RepoTags": ["example.com/app:1", "example.com/app:latest"], "Layers": ["bbb/layer.tar", "ccc/layer.tar"]},
    ]);
    write_tar(
        path,
        &[
            ("aaa/layer.tar", shared.clone()),
            ("bbb/layer.tar", b"->../aaa/layer.tar".to_vec()),
            ("ccc/layer.tar", own),
            (&format!("{h1}.json"), c1),
            (&format!("{h2}.json"), c2),
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ],
    );
    (sha256(&shared), format!("sha256:{h2}"))
}

#[test]
fn pushes_a_multi_image_docker_save_with_shared_layers() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dst = Registry::start(Kind::Plain);
    let archive = work.path().join("saved.tar");
    let (shared, app_config) = docker_save(&archive);
    let assert = charmer(work.path())
        .args(["images", "push", "--registry", &dst.host()])
        .arg(&archive)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("3 images: 4 blobs sent"), "{stdout}");
    assert_eq!(dst.inspect_raw("app:1").1, dst.inspect_raw("app:latest").1);
    assert_eq!(sha256(&inspect(&dst, "app:1", true)), app_config);
    let layers: Value = serde_json::from_slice(&inspect(&dst, "base:1", false)).unwrap();
    assert_eq!(layers["Layers"], json!([shared]));
    // The shared layer went once, then was mounted.
    assert_eq!(dst.requests().iter().filter(|r| r.starts_with("PATCH")).count(), 4);
    assert!(dst.requests().iter().any(|r| r.contains("mount=")));
    let pulled = work.path().join("pulled");
    skopeo(&[
        "copy".to_string(),
        "--src-tls-verify=false".to_string(),
        format!("docker://{}/app:latest", dst.host()),
        format!("dir:{}", pulled.display()),
    ]);
}

#[test]
fn refuses_hostile_or_damaged_archives_and_pushes_nothing() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dst = Registry::start(Kind::Plain);
    let push = |archive: &Path| {
        let assert = charmer(work.path())
            .args(["images", "push", "--quiet", "--registry", &dst.host()])
            .arg(archive)
            .args(connection(&dst))
            .current_dir(work.path())
            .assert()
            .failure();
        stderr_of(&assert)
    };

    let traversal = work.path().join("traversal.tar");
    write_tar(&traversal, &[("manifest.json", b"[]".to_vec()), ("../evil", b"x".to_vec())]);
    let stderr = push(&traversal);
    assert!(stderr.contains("traversal.tar: ../evil: path traversal (..)"), "{stderr}");

    let outside = work.path().join("outside.tar");
    write_tar(
        &outside,
        &[("manifest.json", b"[]".to_vec()), ("aaa/layer.tar", b"->../../etc/passwd".to_vec())],
    );
    let stderr = push(&outside);
    assert!(
        stderr.contains(
            "outside.tar: aaa/layer.tar: link to \"../../etc/passwd\" points outside the archive"
        ),
        "{stderr}"
    );
    assert!(dst.requests().is_empty(), "{:?}", dst.requests());

    // A layer whose bytes no longer match its digest: named, and nothing committed.
    let mut layout = Layout::new(&work.path().join("layout"));
    let small = layout.layer(31, 20_000);
    let big = layout.layer(32, 3_000_000);
    let image = layout.image("amd64", &[&small, &big]);
    layout.name(&image, "example.com/team/app:1.0");
    let blob = layout.dir.join("blobs/sha256").join(&big.digest[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[2_000_000] ^= 0xff;
    std::fs::File::create(&blob).unwrap().write_all(&bytes).unwrap();
    let damaged = work.path().join("damaged.tar");
    layout.write_tar(&damaged);
    let stderr = push(&damaged);
    let member = format!(
        "damaged.tar: blobs/sha256/{}: content does not match its digest {}",
        &big.digest[7..],
        big.digest
    );
    assert!(stderr.contains(&member), "{stderr}");
    let requests = dst.requests();
    assert!(!requests.iter().any(|r| r.starts_with("PUT")), "{requests:#?}");
    assert!(!dst.blob_data(&big.digest).exists() && !dst.blob_data(&small.digest).exists());
}
