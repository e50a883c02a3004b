//! The registry dies in the middle of a push; after a restart on the same storage, a re-run
//! finishes without sending the blobs that were already committed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::registry::{connection, skopeo, Kind, Layout, Registry};

/// Size of the blob that is in flight when the registry is killed: large enough that the
/// upload lasts well over a second at the registry's ~160 MB/s.
const BIG: u64 = 320 << 20;

#[test]
fn a_rerun_after_the_registry_died_mid_push_completes() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(Kind::Plain);
    let mut layout = Layout::new(&work.path().join("layout"));
    let small: Vec<_> = (0..3).map(|i| layout.layer(50 + i, 100_000)).collect();
    let big = layout.layer(60, BIG);
    let mut layers: Vec<_> = small.iter().collect();
    layers.push(&big);
    let image = layout.image("amd64", &layers);
    layout.name(&image, "example.com/team/big:1.0");
    let archive = work.path().join("big.tar");
    layout.write_tar(&archive);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.dir.join("blobs/sha256").join(&image.digest[7..])).unwrap(),
    )
    .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(&layout.dir).unwrap();

    let (host, flags) = (registry.host(), connection(&registry));
    let command = |retries: &str| {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("charmer"));
        command
            .args(["images", "push", "--quiet", "--retries", retries, "--registry", &host])
            .arg(&archive)
            .args(&flags)
            .env("DOCKER_CONFIG", work.path().join("docker"))
            .current_dir(work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let mut first = command("0").spawn().unwrap();

    // Kill the registry while the big blob is streaming. Which of the small blobs (and the
    // config) were committed by then depends on scheduling, so the assertions below take the
    // set the registry really holds at the kill.
    let uploads = registry.repositories().join("team/big/_uploads");
    let streaming = || {
        std::fs::read_dir(&uploads).into_iter().flatten().flatten().any(|session| {
            std::fs::metadata(session.path().join("data")).is_ok_and(|m| m.len() > 1 << 20)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !streaming() {
        assert!(Instant::now() < deadline, "the push never got going");
        if first.try_wait().unwrap().is_some() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut first.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("the push ended before the registry was killed: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    registry.kill();
    let status = first.wait().unwrap();
    assert!(!status.success(), "the first push should fail when the registry dies");
    assert!(!registry.blob_data(&big.digest).exists());
    let mut blobs: Vec<&str> = small.iter().map(|l| l.digest.as_str()).collect();
    blobs.push(&config);
    let (committed, missing): (Vec<&str>, Vec<&str>) =
        blobs.into_iter().partition(|digest| registry.blob_data(digest).exists());

    registry.restart();
    let before = registry.requests().len();
    let second = command("2").output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let requests = registry.requests()[before..].to_vec();
    let uploads: Vec<&String> =
        requests.iter().filter(|r| r.starts_with("POST /v2/team/big/blobs/uploads")).collect();
    assert_eq!(
        uploads.len(),
        1 + missing.len(),
        "only the interrupted blob and those not committed ({missing:?}) are sent again: \
         {requests:#?}"
    );
    for digest in committed {
        assert!(requests.contains(&format!("HEAD /v2/team/big/blobs/{digest}")), "{requests:#?}");
    }

    // Digests verified by an independent client: skopeo pulls every blob and checks it.
    assert_eq!(registry.inspect_raw("team/big:1.0").1, image.digest);
    let pulled = work.path().join("pulled");
    skopeo(&[
        "copy".to_string(),
        "--src-tls-verify=false".to_string(),
        format!("docker://{}/team/big:1.0", registry.host()),
        format!("dir:{}", pulled.display()),
    ]);
    assert_eq!(std::fs::metadata(pulled.join(&big.digest[7..])).unwrap().len(), big.size);
}
