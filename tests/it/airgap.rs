//! `airgap export` on the connected side, `airgap import` on the air-gapped side.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::kube_emulator::KubeEmulator;
use crate::support::registry::{charmer, connection, run, sha256, Kind, Layout, Registry};

/// A charm source folder running `image` (one container); returns its folder.
pub(crate) fn charm_source(dir: &Path, name: &str, version: &str, image: &str) -> PathBuf {
    let source = dir.join(name);
    std::fs::create_dir_all(&source).unwrap();
    let metadata = format!(
        "name: {name}\nsummary: test\ndescription: test\nresources:\n  main-image: {{type: oci-image, upstream-source: '{image}'}}\ncontainers:\n  main: {{resource: main-image}}\n"
    );
    std::fs::write(source.join("metadata.yaml"), metadata).unwrap();
    std::fs::write(
        source.join("manifest.yaml"),
        "bases:\n- name: ubuntu\n  channel: '22.04'\n  architectures: [amd64]\n",
    )
    .unwrap();
    std::fs::write(source.join("version"), format!("{version}\n")).unwrap();
    source
}

/// Offset of a member's data in an uncompressed tar.
fn member_offset(archive: &Path, name: &str) -> u64 {
    let mut tar = tar::Archive::new(File::open(archive).unwrap());
    let entries = tar.entries_with_seek().unwrap();
    for entry in entries {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(name) {
            return entry.raw_file_position();
        }
    }
    panic!("{name} not in the archive");
}

/// A bundle to carry, made in `work/shop`: two charms (one a source folder in charms/, one
/// an archive in dist/) running two images pushed to `src`, and an overlay.
struct Shop {
    bundle: PathBuf,
    overlay: PathBuf,
    /// The charm archive in dist/.
    backend: PathBuf,
    app_digest: String,
    api_digest: String,
}

/// `work/shop`: the frontend (version `frontend_version`, running `frontend_image`) as a
/// source folder in charms/, the backend 2.0.0 (running `backend_image`) packed into dist/,
/// and a bundle of both; returns the bundle and the backend archive.
fn shop_charms(
    work: &Path,
    frontend_version: &str,
    frontend_image: &str,
    backend_image: &str,
) -> (PathBuf, PathBuf) {
    let shop = work.join("shop");
    charm_source(&shop.join("charms"), "frontend", frontend_version, frontend_image);
    let backend_source = charm_source(&work.join("elsewhere"), "backend", "2.0.0", backend_image);
    charmer(work)
        .arg("pack")
        .arg(&backend_source)
        .arg("--out")
        .arg(shop.join("dist"))
        .assert()
        .success();
    let bundle = shop.join("bundle.yaml");
    std::fs::write(&bundle, "bundle: kubernetes\nname: shop\napplications:\n  frontend:\n    charm: frontend\n    scale: 1\n  backend:\n    charm: backend\n    scale: 1\n").unwrap();
    (bundle, shop.join("dist/backend_2.0.0.charm"))
}

impl Shop {
    fn new(work: &Path, src: &Registry) -> Shop {
        let mut layout = Layout::new(&work.join("layout"));
        let (l1, l2) = (layout.layer(71, 90_000), layout.layer(72, 60_000));
        let (app, api) = (layout.image("amd64", &[&l1]), layout.image("amd64", &[&l1, &l2]));
        layout.name(&app, "app");
        layout.name(&api, "api");
        layout.push_with_skopeo("app", src, "team/app:1.0");
        layout.push_with_skopeo("api", src, "team/api:2.0");
        let (_, app_digest) = src.inspect_raw("team/app:1.0");
        let (_, api_digest) = src.inspect_raw("team/api:2.0");
        let shop = work.join("shop");
        let (app_image, api_image) =
            (format!("{}/team/app:1.0", src.host()), format!("{}/team/api:2.0", src.host()));
        let (bundle, backend) = shop_charms(work, "1.2.0", &app_image, &api_image);
        let overlay = shop.join("prod.yaml");
        std::fs::write(&overlay, "applications:\n  frontend:\n    scale: 2\n").unwrap();
        Shop { bundle, overlay, backend, app_digest, api_digest }
    }

    /// `airgap export` of the bundle with its overlay into `out`, signed with `sign_key` if
    /// given; returns stdout.
    fn export(&self, work: &Path, src: &Registry, out: &Path, sign_key: Option<&Path>) -> String {
        let mut command = charmer(work);
        command.args(["airgap", "export"]).arg(&self.bundle).arg("--overlay").arg(&self.overlay);
        command.arg("--out").arg(out).args(connection(src));
        if let Some(key) = sign_key {
            command.arg("--sign-key").arg(key);
        }
        String::from_utf8_lossy(&command.assert().success().get_output().stdout).to_string()
    }
}

/// A copy of `archive` at `to` with the byte at `at` in `member` inverted.
fn flip_byte(archive: &Path, to: &Path, member: &str, at: u64) {
    std::fs::copy(archive, to).unwrap();
    let at = member_offset(to, member) + at;
    let mut file = File::options().read(true).write(true).open(to).unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

#[test]
fn export_carry_import_and_tampering_is_caught() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let Shop { bundle, overlay, backend, app_digest, api_digest } = Shop::new(work.path(), &src);
    let shop = work.path().join("shop");

    // `images save BUNDLE` saves exactly the bundle's images.
    let images = work.path().join("images.tar");
    charmer(work.path())
        .args(["images", "save", "--quiet"])
        .arg(&bundle)
        .arg("--out")
        .arg(&images)
        .args(connection(&src))
        .assert()
        .success();
    // ...and `images push --lock` pins the lock `render` wrote to what it pushed.
    let rendered = work.path().join("rendered");
    charmer(work.path()).arg("render").arg(&bundle).arg("--out").arg(&rendered).assert().success();
    let lock = rendered.join("bundle.lock");
    let pushed = charmer(work.path())
        .args(["images", "push", "--registry", &format!("{}/saved", dst.host())])
        .arg(&images)
        .arg("--lock")
        .arg(&lock)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&pushed.get_output().stdout).to_string();
    assert!(stdout.contains("2 images: ") && stdout.contains("pinned 2 images in"), "{stdout}");
    let pinned = std::fs::read_to_string(&lock).unwrap();
    assert!(
        pinned.contains(&format!("target: {}/saved/team/app:1.0@{app_digest}", dst.host())),
        "{pinned}"
    );

    // Connected side.
    let carried = work.path().join("bundle-airgap.tar");
    charmer(work.path())
        .args(["airgap", "export", "--quiet"])
        .arg(&bundle)
        .arg("--overlay")
        .arg(&overlay)
        .arg("--out")
        .arg(&carried)
        .args(connection(&src))
        .assert()
        .success();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&carried).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "readable like every other output, not a temp file's 0600");
    // The checksums are coreutils' format: checkable without charmer.
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar").arg("-xf").arg(&carried).arg("-C").arg(&unpacked));
    run(Command::new("sha256sum").args(["--quiet", "-c", "SHA256SUMS"]).current_dir(&unpacked));

    // A tampered copy: one byte of a charm flipped. Named, nothing pushed, nothing written.
    let tampered = work.path().join("tampered.tar");
    flip_byte(&carried, &tampered, "charms/backend_2.0.0.charm", 10);
    let out_dir = work.path().join("deploy");
    let import_tampered = || {
        let failed = charmer(work.path())
            .args(["airgap", "import", "--quiet", "--registry", &dst.host(), "--out"])
            .arg(&out_dir)
            .arg(&tampered)
            .args(connection(&dst))
            .assert()
            .failure();
        String::from_utf8_lossy(&failed.get_output().stderr).to_string()
    };
    let before = dst.requests().len();
    let stderr = import_tampered();
    assert!(
        stderr.contains("tampered.tar: charms/backend_2.0.0.charm: checksum mismatch"),
        "{stderr}"
    );
    assert_eq!(dst.requests().len(), before, "nothing may be pushed");
    assert!(!out_dir.exists());

    // A damaged layer is caught in the same pass that uploads it: named, and nothing is
    // committed (no blob, no manifest) or unpacked.
    let (layer, _) = members(&carried)
        .into_iter()
        .filter(|(name, _)| name.starts_with("images/blobs/"))
        .max_by_key(|(_, bytes)| bytes.len())
        .unwrap();
    flip_byte(&carried, &tampered, &layer, 10);
    let before = dst.requests().len();
    let stderr = import_tampered();
    assert!(stderr.contains(&format!("tampered.tar: {layer}: content does not match")), "{stderr}");
    let committed: Vec<String> =
        dst.requests().into_iter().skip(before).filter(|r| r.starts_with("PUT ")).collect();
    assert!(committed.is_empty(), "nothing may be committed: {committed:?}");
    assert!(!out_dir.exists());

    // Air-gapped side; the charms go into the registry too.
    let charms_registry = format!("{}/charms", dst.host());
    let imported = charmer(work.path())
        .args(["airgap", "import", "--registry", &format!("{}/airgap", dst.host()), "--out"])
        .arg(&out_dir)
        .arg(&carried)
        .args(["--charms-registry", &charms_registry])
        .args(connection(&dst))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&imported.get_output().stdout).to_string();
    assert!(stdout.contains("next: charmer deploy"), "{stdout}");
    assert!(
        stdout.contains(&format!("pushed charm backend 2.0.0: {charms_registry}/backend:2.0.0@"))
            && stdout.contains("pushed charm frontend 1.2.0"),
        "{stdout}"
    );
    // Another machine resolves the imported bundle from the registry alone.
    let plan = charmer(work.path())
        .arg("check")
        .arg(out_dir.join("bundle.yaml"))
        .args(["--charms", &format!("oci://{charms_registry}")])
        .args(connection(&dst))
        .assert()
        .success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).to_string();
    assert!(
        plan.contains(&format!(
            "backend: charm backend 2.0.0 (oci://{charms_registry}/backend@sha256:"
        )),
        "{plan}"
    );
    assert_eq!(
        std::fs::read(out_dir.join("bundle.yaml")).unwrap(),
        std::fs::read(&bundle).unwrap()
    );
    assert_eq!(std::fs::read(out_dir.join("prod.yaml")).unwrap(), std::fs::read(&overlay).unwrap());
    assert_eq!(
        std::fs::read(out_dir.join("charms/backend_2.0.0.charm")).unwrap(),
        std::fs::read(&backend).unwrap()
    );
    // The source folder was packed as `charmer pack` packs it.
    charmer(work.path())
        .arg("pack")
        .arg(shop.join("charms/frontend"))
        .arg("--out")
        .arg(work.path().join("packed"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read(out_dir.join("charms/frontend_1.2.0.charm")).unwrap(),
        std::fs::read(work.path().join("packed/frontend_1.2.0.charm")).unwrap()
    );
    let retagged = std::fs::read_to_string(out_dir.join("retagged-images.txt")).unwrap();
    let target = format!("{}/airgap", dst.host());
    let lock = std::fs::read_to_string(out_dir.join("bundle.lock")).unwrap();
    assert!(
        lock.contains(&format!("source: {}/team/api:2.0", src.host()))
            && lock.contains(&format!("target: {target}/team/api:2.0@{api_digest}")),
        "{lock}"
    );
    assert!(
        retagged.contains(&format!("{target}/team/app:1.0@{app_digest}"))
            && retagged.contains(&format!("{target}/team/api:2.0@{api_digest}")),
        "{retagged}"
    );
    assert_eq!(dst.inspect_raw("airgap/team/app:1.0").1, app_digest);
    assert_eq!(dst.inspect_raw("airgap/team/api:2.0").1, api_digest);

    // Ready to deploy: the unpacked bundle resolves from the unpacked charms, and with the
    // image map every image points into the private registry, digest pinned.
    let listed = charmer(work.path())
        .args(["images", "list"])
        .arg(out_dir.join("bundle.yaml"))
        .arg("--overlay")
        .arg(out_dir.join("prod.yaml"))
        .arg("--image-map")
        .arg(out_dir.join("retagged-images.txt"))
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&listed.get_output().stdout).to_string();
    assert!(
        listed.contains(&format!(
            "{}/team/app:1.0 -> {target}/team/app:1.0@{app_digest}",
            src.host()
        )),
        "{listed}"
    );

    // `images push` takes the air-gap archive as is.
    charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &format!("{}/again", dst.host())])
        .arg(&carried)
        .args(connection(&dst))
        .current_dir(work.path())
        .assert()
        .success();
    assert_eq!(dst.inspect_raw("again/team/api:2.0").1, api_digest);
}

fn blob_member(digest: &str) -> String {
    format!("images/blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

#[test]
fn delta_export_carries_only_new_blobs_and_import_needs_the_old_one() {
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let mut layout = Layout::new(&work.path().join("layout"));
    let shared = layout.layer(81, 400_000);
    let (l1, l2, l3) =
        (layout.layer(82, 20_000), layout.layer(83, 30_000), layout.layer(84, 10_000));
    let app1 = layout.image("amd64", &[&shared, &l1]);
    let app2 = layout.image("amd64", &[&shared, &l2]);
    let worker = layout.image("amd64", &[&shared, &l3]);
    for (image, name, target) in [
        (&app1, "app1", "team/app:1.0"),
        (&app2, "app2", "team/app:2.0"),
        (&worker, "worker", "team/worker:1.0"),
    ] {
        layout.name(image, name);
        layout.push_with_skopeo(name, &src, target);
    }
    // What the registry serves (skopeo compresses layers on the way): manifest digest, and
    // layer digests.
    let served = |reference: &str| {
        let (raw, digest) = src.inspect_raw(reference);
        let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let layers: Vec<String> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        (digest, layers)
    };
    let (_, app1_layers) = served("team/app:1.0");
    let (app2, app2_layers) = served("team/app:2.0");
    let (worker, worker_layers) = served("team/worker:1.0");
    let (base, v1, v2, worker_layer) =
        (&app1_layers[0], &app1_layers[1], &app2_layers[1], &worker_layers[1]);
    assert_eq!(base, &app2_layers[0]);

    // Release 1: frontend 1.0.0 on app:1.0, backend (a .charm file) on the same image (which
    // release 2 keeps: its blobs and config are left out of the delta).
    let shop = work.path().join("shop");
    let frontend = |version: &str, image: &str| {
        charm_source(&shop.join("charms"), "frontend", version, &format!("{}/{image}", src.host()))
    };
    let app1_image = format!("{}/team/app:1.0", src.host());
    let (bundle, _) = shop_charms(work.path(), "1.0.0", &app1_image, &app1_image);
    let keys = work.path().join("keys");
    charmer(work.path()).arg("keygen").arg("--out").arg(keys.join("site")).assert().success();
    let export = |out: &Path, since: &[&Path]| {
        let mut command = charmer(work.path());
        command.args(["airgap", "export"]).arg(&bundle).arg("--out").arg(out);
        command.arg("--sign-key").arg(keys.join("site.key"));
        for old in since {
            command.arg("--since").arg(old);
        }
        command.args(connection(&src)).assert().success()
    };
    let old = work.path().join("release-1.tar");
    export(&old, &[]);

    // Release 2: frontend 1.1.0 on app:2.0, plus a worker image in a new repository; the
    // backend charm is the same file.
    frontend("1.1.0", "team/app:2.0");
    std::fs::write(
        shop.join("charms/frontend/metadata.yaml"),
        format!("name: frontend\nsummary: test\ndescription: test\nresources:\n  main-image: {{type: oci-image, upstream-source: '{0}/team/app:2.0'}}\n  worker-image: {{type: oci-image, upstream-source: '{0}/team/worker:1.0'}}\ncontainers:\n  main: {{resource: main-image}}\n  worker: {{resource: worker-image}}\n", src.host()),
    )
    .unwrap();
    let new = work.path().join("release-2.tar");
    let exported = export(&new, &[&old]);
    let stdout = String::from_utf8_lossy(&exported.get_output().stdout).to_string();
    assert!(stdout.contains("delta against 1 archive: left out 3 blobs"), "{stdout}");

    let carried = crate::support::tar_member_names(&new);
    for left_out in [base, v1] {
        assert!(!carried.contains(&blob_member(left_out)), "{left_out} carried again: {carried:?}");
    }
    for needed in [v2, worker_layer, &app2, &worker] {
        assert!(carried.contains(&blob_member(needed)), "{needed} not carried: {carried:?}");
    }
    assert!(!carried.contains(&"charms/backend_2.0.0.charm".to_string()), "{carried:?}");
    assert!(carried.contains(&"charms/frontend_1.1.0.charm".to_string()), "{carried:?}");
    let new_size = std::fs::metadata(&new).unwrap().len();
    assert!(new_size < std::fs::metadata(&old).unwrap().len() / 3, "delta is {new_size} bytes");
    // It says what it depends on, and is still checkable with coreutils.
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar").arg("-xf").arg(&new).arg("-C").arg(&unpacked));
    run(Command::new("sha256sum").args(["--quiet", "-c", "SHA256SUMS"]).current_dir(&unpacked));
    let contents: serde_json::Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("airgap.json")).unwrap()).unwrap();
    assert_eq!(contents["format"], "charmer-airgap-delta/1");
    assert_eq!(contents["delta"]["since"][0]["archive"], "release-1.tar");
    assert_eq!(contents["delta"]["charms"][0]["file"], "backend_2.0.0.charm");
    let left_out = contents["delta"]["blobs"].as_array().unwrap();
    let based = left_out.iter().find(|b| b["digest"] == base.as_str()).unwrap();
    assert_eq!(based["images"][0], format!("{}/team/app:1.0", src.host()));

    // Into a registry that never got release 1: refused before anything is sent, naming the
    // missing blobs; nothing tagged, nothing unpacked.
    let import = |archive: &Path, out: &Path, charms_from: Option<&Path>| {
        let mut command = charmer(work.path());
        command
            .args(["airgap", "import", "--registry", &format!("{}/site", dst.host()), "--out"])
            .arg(out)
            .arg(archive)
            .arg("--verify-key")
            .arg(keys.join("site.pub"));
        if let Some(folder) = charms_from {
            command.arg("--charms-from").arg(folder);
        }
        command.args(connection(&dst)).assert()
    };
    let out2 = work.path().join("site-2");
    let failed = import(&new, &out2, None).failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).to_string();
    assert!(
        stderr.contains("leaves out charms backend_2.0.0.charm")
            && stderr.contains("--charms-from"),
        "{stderr}"
    );
    let failed = import(&new, &out2, Some(&shop.join("dist"))).failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).to_string();
    for missing in [base, v1] {
        let line = stderr.lines().find(|l| l.contains(missing.as_str()));
        assert!(
            line.is_some_and(|l| l.contains("left out of this delta archive")),
            "{missing} not named: {stderr}"
        );
    }
    let sent: Vec<String> = dst
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("HEAD ") && !r.starts_with("GET "))
        .collect();
    assert!(sent.is_empty(), "nothing may be sent: {sent:?}");
    assert!(!out2.exists());

    // Over a registry that imported release 1, the delta completes every image.
    let out1 = work.path().join("site-1");
    import(&old, &out1, None).success();
    let imported = import(&new, &out2, Some(&out1.join("charms"))).success();
    let stdout = String::from_utf8_lossy(&imported.get_output().stdout).to_string();
    assert!(stdout.contains("next: charmer deploy"), "{stdout}");
    for (path, want) in [("team/app:2.0", &app2), ("team/worker:1.0", &worker)] {
        assert_eq!(&dst.inspect_raw(&format!("site/{path}")).1, want);
        // Every blob is there: skopeo copies the whole image out of the registry.
        let copy = work.path().join(format!("copy-{}", path.replace([':', '/'], "-")));
        let mut args = vec!["copy".to_string()];
        args.extend(dst.skopeo_flags("src"));
        args.push(format!("docker://{}/site/{path}", dst.host()));
        args.push(format!("dir:{}", copy.display()));
        crate::support::registry::skopeo(&args);
        assert!(copy.join(base.trim_start_matches("sha256:")).exists());
    }
    assert_eq!(
        std::fs::read(out2.join("charms/backend_2.0.0.charm")).unwrap(),
        std::fs::read(shop.join("dist/backend_2.0.0.charm")).unwrap()
    );
    assert!(out2.join("charms/frontend_1.1.0.charm").exists());
    // The folder checks against the signed delta: the charm it left out by the SHA-256 its
    // airgap.json records.
    charmer(work.path())
        .arg("check")
        .arg(out2.join("bundle.yaml"))
        .arg("--verify-key")
        .arg(keys.join("site.pub"))
        .args(["--image-map"])
        .arg(out2.join("retagged-images.txt"))
        .assert()
        .success();
    std::fs::write(out2.join("charms/backend_2.0.0.charm"), b"not the charm").unwrap();
    let refused = charmer(work.path())
        .arg("check")
        .arg(out2.join("bundle.yaml"))
        .arg("--verify-key")
        .arg(keys.join("site.pub"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(stderr.contains("is not the charm the signed delta archive names"), "{stderr}");

    // A delta against the delta (and release 1) carries no layer at all.
    let again = work.path().join("release-2b.tar");
    let exported = export(&again, &[&old, &new]);
    let stdout = String::from_utf8_lossy(&exported.get_output().stdout).to_string();
    assert!(stdout.contains("left out 7 blobs") && stdout.contains("and 2 charms"), "{stdout}");
}

/// A tar's members: name and content, in order.
type Members = Vec<(String, Vec<u8>)>;

/// Every member of a tar, in order.
fn members(archive: &Path) -> Members {
    let mut tar = tar::Archive::new(File::open(archive).unwrap());
    let mut members = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_str().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        members.push((name, bytes));
    }
    members
}

/// Copies the archive `from` to `to` with its members changed by `edit`, then, as an attacker
/// holding the file would, rewrites `SHA256SUMS` to match the new content (the signature, if
/// any, is kept as it was).
fn forge(from: &Path, to: &Path, edit: impl FnOnce(&mut Members)) {
    let mut members = members(from);
    edit(&mut members);
    let mut sums: Vec<String> = members
        .iter()
        .filter(|(name, _)| name != "SHA256SUMS" && name != "SHA256SUMS.sig")
        .map(|(name, bytes)| format!("{}  {name}\n", &sha256(bytes)["sha256:".len()..]))
        .collect();
    sums.sort_by(|a, b| a[66..].cmp(&b[66..]));
    let mut builder = tar::Builder::new(File::create(to).unwrap());
    for (name, bytes) in &members {
        let bytes = if name == "SHA256SUMS" { sums.concat().into_bytes() } else { bytes.clone() };
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes.as_slice()).unwrap();
    }
    builder.finish().unwrap();
}

/// The key id in a public key file's comment line.
fn key_id(public: &Path) -> String {
    let text = std::fs::read_to_string(public).unwrap();
    text.lines().next().unwrap().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn signed_archives_are_checked_before_anything_is_pushed_or_written() {
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let shop = Shop::new(work.path(), &src);
    let keys = work.path().join("keys");
    for name in ["exporter", "other"] {
        charmer(work.path()).arg("keygen").arg("--out").arg(keys.join(name)).assert().success();
    }
    let (public, other) = (keys.join("exporter.pub"), keys.join("other.pub"));
    let (id, other_id) = (key_id(&public), key_id(&other));
    let signed = work.path().join("signed.tar");
    let said = shop.export(work.path(), &src, &signed, Some(&keys.join("exporter.key")));
    assert!(said.contains(&format!("; signed by key {id}")), "{said}");
    let unsigned = work.path().join("unsigned.tar");
    shop.export(work.path(), &src, &unsigned, None);
    // Signing adds one member and changes nothing else.
    let mut with_signature = members(&signed);
    with_signature.retain(|(name, _)| name != "SHA256SUMS.sig");
    assert_eq!(with_signature, members(&unsigned));

    // An auditor checks it with stock tools: minisign, then sha256sum.
    let audit = work.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    run(Command::new("tar").arg("-xf").arg(&signed).arg("-C").arg(&audit));
    let minisign = Command::new("minisign")
        .args(["-V", "-m", "SHA256SUMS", "-x", "SHA256SUMS.sig", "-p"])
        .arg(&public)
        .current_dir(&audit)
        .output()
        .expect("minisign is needed by this test (Debian package minisign)");
    assert!(minisign.status.success(), "{}", String::from_utf8_lossy(&minisign.stderr));
    assert!(String::from_utf8_lossy(&minisign.stdout).contains("file:SHA256SUMS"));
    run(Command::new("sha256sum").args(["--quiet", "-c", "SHA256SUMS"]).current_dir(&audit));

    // The attacks, each with SHA256SUMS rewritten to match.
    let forged = |name: &str, edit: &dyn Fn(&mut Members)| {
        let path = work.path().join(name);
        forge(&signed, &path, edit);
        path
    };
    let node_port = forged("node-port.tar", &|members| {
        let (_, bundle) = members.iter_mut().find(|(n, _)| n == "bundle/bundle.yaml").unwrap();
        let was = sha256(bundle);
        *bundle = String::from_utf8_lossy(bundle).replace("scale: 1", "scale: 9").into_bytes();
        let now = sha256(bundle);
        // A careful forger makes the bill of materials match too: only the signature
        // catches this one.
        let (_, sbom) = members.iter_mut().find(|(n, _)| n == "sbom.cdx.json").unwrap();
        *sbom = String::from_utf8_lossy(sbom).replace(&was[7..], &now[7..]).into_bytes();
    });
    let layer = forged("swapped-layer.tar", &|members| {
        // The two largest members are the two layers: each gets the other's bytes.
        let mut blobs: Vec<usize> = (0..members.len()).collect();
        blobs.sort_by_key(|i| std::cmp::Reverse(members[*i].1.len()));
        let (a, b) = (blobs[0], blobs[1]);
        let bytes = members[a].1.clone();
        members[a].1 = members[b].1.clone();
        members[b].1 = bytes;
    });
    let image = forged("swapped-image.tar", &|members| {
        let (_, index) = members.iter_mut().find(|(n, _)| n == "images/index.json").unwrap();
        let text = String::from_utf8_lossy(index).replace(&shop.app_digest, &shop.api_digest);
        *index = text.into_bytes();
    });
    let extra = forged("extra-member.tar", &|members| {
        members.push(("bundle/extra.yaml".into(), b"applications: {}\n".to_vec()));
    });
    // One byte changed, SHA256SUMS left as signed.
    let flipped = work.path().join("flipped.tar");
    flip_byte(&signed, &flipped, "bundle/bundle.yaml", 0);

    let out_dir = work.path().join("deploy");
    let retagged = work.path().join("retagged-images.txt");
    let refused = |archive: &Path, key: &Path, expected: &str| {
        let before = dst.requests().len();
        let import = charmer(work.path())
            .args(["airgap", "import", "--quiet", "--registry", &dst.host(), "--out"])
            .arg(&out_dir)
            .arg(archive)
            .arg("--verify-key")
            .arg(key)
            .args(connection(&dst))
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&import.get_output().stderr).to_string();
        assert!(stderr.contains(expected), "import of {}: {stderr}", archive.display());
        let push = charmer(work.path())
            .args(["images", "push", "--quiet", "--registry", &dst.host()])
            .arg(archive)
            .arg("--verify-key")
            .arg(key)
            .arg("--retagged-out")
            .arg(&retagged)
            .args(connection(&dst))
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&push.get_output().stderr).to_string();
        assert!(stderr.contains(expected), "push of {}: {stderr}", archive.display());
        assert_eq!(dst.requests().len(), before, "{}: nothing may be pushed", archive.display());
        assert!(
            !out_dir.exists() && !retagged.exists(),
            "{}: nothing may be written",
            archive.display()
        );
        let left: Vec<_> = std::fs::read_dir(work.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    };
    let changed = "SHA256SUMS: signature: does not match the content";
    refused(&node_port, &public, &format!("node-port.tar: {changed}"));
    refused(&layer, &public, &format!("swapped-layer.tar: {changed}"));
    refused(&image, &public, &format!("swapped-image.tar: {changed}"));
    refused(&extra, &public, &format!("extra-member.tar: {changed}"));
    refused(&flipped, &public, "flipped.tar: bundle/bundle.yaml: checksum mismatch");
    refused(&unsigned, &public, &format!("unsigned.tar: SHA256SUMS: not signed (the archive has no SHA256SUMS.sig); --verify-key accepts only archives signed with key {id}"));
    refused(&signed, &other, &format!("signed.tar: SHA256SUMS: signature: signed by key {id}, not by the given key {other_id}"));

    // Without --verify-key the forged archive would deploy a changed bundle: it is accepted,
    // but with a warning that it was not authenticated.
    let accepted = charmer(work.path())
        .args(["airgap", "import", "--quiet", "--registry", &format!("{}/forged", dst.host())])
        .arg("--out")
        .arg(work.path().join("forged"))
        .arg(&node_port)
        .args(connection(&dst))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&accepted.get_output().stderr).to_string();
    assert_eq!(
        stderr,
        format!("warning: {}: signed by key {id}, but not verified: its content was not authenticated (pass --verify-key with the exporter's public key)\n", node_port.display())
    );

    // An unverified archive is still checked for sense: a table of contents that would
    // unpack an overlay over the lock, or that lists other images than the archive holds.
    let misplaced = forged("misplaced.tar", &|members| {
        let (_, contents) = members.iter_mut().find(|(n, _)| n == "airgap.json").unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(contents).unwrap();
        json["overlays"] = serde_json::json!(["bundle/bundle.lock"]);
        *contents = serde_json::to_vec(&json).unwrap();
        members.push(("bundle/bundle.lock".into(), b"applications: {}\n".to_vec()));
    });
    let unlisted = forged("unlisted-image.tar", &|members| {
        let (_, contents) = members.iter_mut().find(|(n, _)| n == "airgap.json").unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(contents).unwrap();
        json["images"].as_array_mut().unwrap().retain(|i| i.as_str().unwrap().contains("api"));
        *contents = serde_json::to_vec(&json).unwrap();
    });
    let app_image = format!("{}/team/app:1.0", src.host());
    for (archive, expected) in [
        (&misplaced, "misplaced.tar: airgap.json: bundle/bundle.lock: is not where an air-gap archive keeps such a file".to_string()),
        (&unlisted, format!("unlisted-image.tar: images/index.json: holds {app_image}, which airgap.json does not list")),
    ] {
        let before = dst.requests().len();
        let failed = charmer(work.path())
            .args(["airgap", "import", "--quiet", "--registry", &dst.host(), "--out"])
            .arg(&out_dir)
            .arg(archive)
            .args(connection(&dst))
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&failed.get_output().stderr).to_string();
        assert!(stderr.contains(&expected), "{stderr}");
        assert_eq!(dst.requests().len(), before);
        assert!(!out_dir.exists());
    }

    // The genuine archive imports; the folder keeps the signed manifest, still checkable.
    let imported = charmer(work.path())
        .args(["airgap", "import", "--registry", &format!("{}/airgap", dst.host()), "--out"])
        .arg(&out_dir)
        .arg(&signed)
        .arg("--verify-key")
        .arg(&public)
        .args(connection(&dst))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&imported.get_output().stdout).to_string();
    assert!(stdout.starts_with(&format!("verified: signed by key {id}\n")), "{stdout}");
    assert!(
        stdout.contains(&format!("retagged-images.txt --verify-key {}\n", public.display())),
        "{stdout}"
    );
    assert!(imported.get_output().stderr.is_empty());
    assert_eq!(dst.inspect_raw("airgap/team/app:1.0").1, shop.app_digest);
    let kept = out_dir.join("airgap");
    for member in
        ["SHA256SUMS", "SHA256SUMS.sig", "airgap.json", "bundle.lock", "images/index.json"]
    {
        assert_eq!(
            std::fs::read(kept.join(member)).unwrap(),
            std::fs::read(audit.join(member)).unwrap(),
            "{member}"
        );
    }

    // images save --sign-key / images push --verify-key.
    let images = work.path().join("images.tar");
    charmer(work.path())
        .args(["images", "save", "--quiet"])
        .arg(&shop.bundle)
        .arg("--out")
        .arg(&images)
        .arg("--sign-key")
        .arg(keys.join("exporter.key"))
        .args(connection(&src))
        .assert()
        .success();
    let pushed = charmer(work.path())
        .args(["images", "push", "--registry", &format!("{}/saved", dst.host())])
        .arg(&images)
        .arg("--verify-key")
        .arg(&public)
        .arg("--retagged-out")
        .arg(&retagged)
        .args(connection(&dst))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&pushed.get_output().stdout).to_string();
    assert!(stdout.starts_with(&format!("verified: signed by key {id}\n")), "{stdout}");
    assert_eq!(dst.inspect_raw("saved/team/api:2.0").1, shop.api_digest);
    // Pushed without --verify-key, the signed archive is pushed with a warning.
    let unchecked = charmer(work.path())
        .args(["images", "push", "--quiet", "--registry", &format!("{}/unchecked", dst.host())])
        .arg(&images)
        .arg("--retagged-out")
        .arg(&retagged)
        .args(connection(&dst))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&unchecked.get_output().stderr).to_string();
    assert!(
        stderr.contains(&format!("images.tar: signed by key {id}, but not verified")),
        "{stderr}"
    );
    let saved_layer = work.path().join("saved-layer.tar");
    forge(&images, &saved_layer, |members| {
        let big = (0..members.len()).max_by_key(|i| members[*i].1.len()).unwrap();
        members[big].1[0] ^= 1;
    });
    std::fs::remove_file(&retagged).unwrap();
    std::fs::remove_dir_all(&out_dir).unwrap();
    refused(&saved_layer, &public, &format!("saved-layer.tar: {changed}"));
}

#[test]
fn deploy_with_verify_key_rechecks_the_imported_folder() {
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let shop = Shop::new(work.path(), &src);
    let key = work.path().join("keys/exporter");
    charmer(work.path()).arg("keygen").arg("--out").arg(&key).assert().success();
    let public = key.with_extension("pub");
    let carried = work.path().join("carried.tar");
    shop.export(work.path(), &src, &carried, Some(&key.with_extension("key")));
    let imported = work.path().join("imported");
    charmer(work.path())
        .args(["airgap", "import", "--quiet", "--registry", &format!("{}/airgap", dst.host())])
        .arg("--out")
        .arg(&imported)
        .arg(&carried)
        .arg("--verify-key")
        .arg(&public)
        .args(connection(&dst))
        .assert()
        .success();

    let emulator = KubeEmulator::start();
    let kubeconfig = emulator.kubeconfig();
    // `deploy --dry-run` of a copy of the folder, changed by `change`, with `flags`.
    let deploy = |name: &str, change: &dyn Fn(&Path), flags: &[&str]| {
        let folder = work.path().join(name);
        run(Command::new("cp").arg("-r").arg(&imported).arg(&folder));
        change(&folder);
        let mut command = charmer(work.path());
        command.current_dir(&folder).args(["deploy", "bundle.yaml", "--dry-run", "--verify-key"]);
        command.arg(&public).arg("--kubeconfig").arg(&kubeconfig).args(flags);
        command.output().unwrap()
    };
    let image_map = ["--overlay", "prod.yaml", "--image-map", "retagged-images.txt"];
    let ok = deploy("genuine", &|_| {}, &image_map);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.ends_with("dry run: nothing was changed\n"), "{stdout}");

    let refused = |name: &str, change: &dyn Fn(&Path), flags: &[&str], expected: &str| {
        let out = deploy(name, change, flags);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && stderr.contains(expected), "{name}: {stderr}");
    };
    let edit = |file: &'static str, from: &str, to: &str| {
        let (from, to) = (from.to_string(), to.to_string());
        move |folder: &Path| {
            let path = folder.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(&from), "{text}");
            std::fs::write(&path, text.replace(&from, &to)).unwrap();
        }
    };
    refused(
        "scaled",
        &edit("prod.yaml", "scale: 2", "scale: 20"),
        &image_map,
        "prod.yaml: differs from bundle/prod.yaml as signed in airgap/SHA256SUMS",
    );
    refused(
        "bundle",
        &edit("bundle.yaml", "scale: 1", "scale: 5"),
        &image_map,
        "bundle.yaml: differs from bundle/bundle.yaml as signed",
    );
    refused(
        "no-overlay",
        &|_| {},
        &["--image-map", "retagged-images.txt"],
        "the signed archive applies overlay prod.yaml; it was not given",
    );
    // Without --verify-key nothing is authenticated, but the overlay left out is still said.
    let unchecked = charmer(work.path())
        .current_dir(&imported)
        .args(["check", "bundle.yaml", "--image-map", "retagged-images.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unchecked.stderr);
    assert!(unchecked.status.success(), "{stderr}");
    assert!(
        stderr.contains("was exported with an overlay that is not given now")
            && stderr.contains("hint: add --overlay ")
            && stderr.contains("prod.yaml"),
        "{stderr}"
    );
    refused(
        "no-map",
        &|_| {},
        &["--overlay", "prod.yaml"],
        &format!(
            "applications.frontend.resources.main-image: {}/team/app:1.0 is not pinned to the digest the signed archive carried for {}/team/app:1.0 ({})",
            src.host(),
            src.host(),
            shop.app_digest
        ),
    );
    refused(
        "swapped-map",
        &edit("retagged-images.txt", &shop.app_digest, &shop.api_digest),
        &image_map,
        &format!(
            "bundle.yaml: applications.frontend.resources.main-image: {}/airgap/team/app:1.0@{} is not pinned",
            dst.host(),
            shop.api_digest
        ),
    );
    refused(
        "resigned",
        &edit("airgap/SHA256SUMS", "  bundle/prod.yaml", "  bundle/prod.yml"),
        &image_map,
        "airgap: SHA256SUMS: signature: does not match the content",
    );
    refused(
        "other-charm",
        &|folder| {
            let charm = folder.join("charms/backend_2.0.0.charm");
            let mut bytes = std::fs::read(&charm).unwrap();
            bytes.extend_from_slice(b"junk");
            std::fs::write(&charm, bytes).unwrap();
        },
        &image_map,
        "charms/backend_2.0.0.charm: differs from charms/backend_2.0.0.charm as signed",
    );
    // A newer charm, validly signed with the same key on its own, dropped into charms/: the
    // resolver would pick it, but the signed lock names 2.0.0. It runs 2.0.0's image, so the
    // image map covers it and only the charm differs.
    let api = format!("{}/team/api:2.0", src.host());
    let newer = charm_source(&work.path().join("newer"), "backend", "2.0.1", &api);
    let release = work.path().join("release");
    charmer(work.path())
        .arg("publish")
        .arg(&newer)
        .arg("--out")
        .arg(&release)
        .arg("--sign-key")
        .arg(key.with_extension("key"))
        .assert()
        .success();
    refused(
        "newer-charm",
        &|folder| {
            for file in ["backend_2.0.1.charm", "backend_2.0.1.charm.sig"] {
                std::fs::copy(release.join(file), folder.join("charms").join(file)).unwrap();
            }
        },
        &image_map,
        "); the signed lock names backend 2.0.0 (sha256 ",
    );
    assert_eq!(emulator.writes(), Vec::<String>::new());
}

/// Seed 001: Charmed Kubeflow's MLflow bundle (canonical/mlflow-operator's 2.22/stable, as
/// released) with Charmhub-style archives carried across and deployed by a written
/// `juju deploy` script, images pinned by digest.
#[test]
fn operator_charms_cross_with_their_images_and_a_juju_script() {
    use crate::juju_charms::{charmhub_archive, fixture};
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let mut layout = Layout::new(&work.path().join("layout"));
    let (l1, l2) = (layout.layer(81, 40_000), layout.layer(82, 30_000));
    let (one, two) = (layout.image("amd64", &[&l1]), layout.image("amd64", &[&l1, &l2]));
    layout.name(&one, "one");
    layout.name(&two, "two");
    let images = [
        ("one", "charmedkubeflow/mlflow:2.22.0"),
        ("two", "charmedkubeflow/exporter:1.0"),
        ("one", "charmedkubeflow/minio:1.0"),
        ("two", "canonical/charmed-mysql:8.0"),
    ];
    for (name, image) in images {
        layout.push_with_skopeo(name, &src, image);
    }
    let digest = |image: &str| src.inspect_raw(image).1;

    let shop = work.path().join("mlflow");
    let charms = shop.join("charms");
    let metadata = fixture("mlflow-operator__metadata.yaml")
        .replace(
            "docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a",
            &format!("{}/charmedkubeflow/mlflow:2.22.0", src.host()),
        )
        .replace(
            "docker.io/charmedkubeflow/mlflow-prometheus-exporter:1.0-22.04",
            &format!("{}/charmedkubeflow/exporter:1.0", src.host()),
        );
    charmhub_archive(
        &charms,
        "mlflow-server",
        123,
        &metadata,
        &fixture("mlflow-operator__config.yaml"),
    );
    let minio = format!("name: minio\nsummary: s\nprovides:\n  object-storage: {{interface: object-storage}}\nresources:\n  oci-image: {{type: oci-image, upstream-source: '{}/charmedkubeflow/minio:1.0'}}\ncontainers:\n  minio: {{resource: oci-image}}\n", src.host());
    charmhub_archive(
        &charms,
        "minio",
        50,
        &minio,
        "options:\n  port: {type: int, default: 9000}\n",
    );
    let mysql = format!("name: mysql-k8s\nsummary: s\nprovides:\n  database: {{interface: mysql_client}}\nresources:\n  mysql-image: {{type: oci-image, upstream-source: '{}/canonical/charmed-mysql:8.0'}}\ncontainers:\n  mysql: {{resource: mysql-image}}\n", src.host());
    charmhub_archive(
        &charms,
        "mysql-k8s",
        99,
        &mysql,
        "options:\n  root-password: {type: secret}\n",
    );
    let bundle = shop.join("bundle.yaml");
    std::fs::write(&bundle, fixture("mlflow-operator__releases-2.22-stable__bundle.yaml")).unwrap();
    let overlay = shop.join("site.yaml");
    // A secret travels only as set-but-empty (export refuses a value): the script then asks
    // for it in an environment variable on the air-gapped side.
    std::fs::write(&overlay, "applications:\n  mlflow-server:\n    options:\n      default_artifact_root: team-bucket\n  mlflow-mysql:\n    options:\n      root-password: ''\n").unwrap();

    let carried = work.path().join("mlflow-airgap.tar");
    charmer(work.path())
        .args(["airgap", "export", "--quiet"])
        .arg(&bundle)
        .arg("--overlay")
        .arg(&overlay)
        .arg("--out")
        .arg(&carried)
        .args(connection(&src))
        .assert()
        .success();
    let out_dir = work.path().join("deploy");
    let imported = charmer(work.path())
        .args(["airgap", "import", "--registry", &format!("{}/ckf", dst.host()), "--out"])
        .arg(&out_dir)
        .arg(&carried)
        .args(connection(&dst))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&imported.get_output().stdout).to_string();
    assert!(
        stdout.contains(&format!(
            "next: juju add-model <name>, then {}",
            out_dir.join("deploy-juju.sh").display()
        )),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(out_dir.join("charms/mlflow-server_r123.charm")).unwrap(),
        std::fs::read(charms.join("mlflow-server_r123.charm")).unwrap(),
        "Charmhub's archive is carried as it is: its SHA-256 is its identity"
    );
    let script_path = out_dir.join("deploy-juju.sh");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&script_path).unwrap().permissions().mode() & 0o777, 0o755);
    let script = std::fs::read_to_string(&script_path).unwrap();
    let to = format!("{}/ckf", dst.host());
    let sha = |file: &str| crate::support::sha256_file(&charms.join(file));
    let expected = [
        "#!/bin/sh".to_string(),
        "# deploy-juju.sh: written by charmer; deploys bundle mlflow with Juju into the current model.".to_string(),
        "# Run it from its own folder (it uses ./charms/) after juju add-model.".to_string(),
        "set -eu".to_string(),
        "cd \"$(dirname \"$0\")\"".to_string(),
        ": \"${CHARMER_SECRET_MLFLOW_MYSQL_ROOT_PASSWORD:?set CHARMER_SECRET_MLFLOW_MYSQL_ROOT_PASSWORD to the value of mlflow-mysql's secret option root-password}\"".to_string(),
        String::new(),
        format!("# mlflow-minio: charm minio, channel ckf-1.10/stable, revision 50, sha256 {}", sha("minio_r50.charm")),
        "juju deploy ./charms/minio_r50.charm mlflow-minio \\".to_string(),
        format!("  --resource oci-image={to}/charmedkubeflow/minio@{} \\", digest("charmedkubeflow/minio:1.0")),
        "  --trust \\".to_string(),
        "  --num-units 1".to_string(),
        String::new(),
        format!("# mlflow-mysql: charm mysql-k8s, channel 8.0/stable, revision 99, sha256 {}", sha("mysql-k8s_r99.charm")),
        "juju deploy ./charms/mysql-k8s_r99.charm mlflow-mysql \\".to_string(),
        format!("  --resource mysql-image={to}/canonical/charmed-mysql@{} \\", digest("canonical/charmed-mysql:8.0")),
        "  --config \"root-password=${CHARMER_SECRET_MLFLOW_MYSQL_ROOT_PASSWORD}\" \\".to_string(),
        "  --constraints mem=2G \\".to_string(),
        "  --trust \\".to_string(),
        "  --num-units 1".to_string(),
        String::new(),
        format!("# mlflow-server: charm mlflow-server, channel 2.22/stable, revision 123, sha256 {}", sha("mlflow-server_r123.charm")),
        "juju deploy ./charms/mlflow-server_r123.charm mlflow-server \\".to_string(),
        format!("  --resource exporter-oci-image={to}/charmedkubeflow/exporter@{} \\", digest("charmedkubeflow/exporter:1.0")),
        format!("  --resource oci-image={to}/charmedkubeflow/mlflow@{} \\", digest("charmedkubeflow/mlflow:2.22.0")),
        "  --config default_artifact_root=team-bucket \\".to_string(),
        "  --trust \\".to_string(),
        "  --num-units 1".to_string(),
        String::new(),
        "juju integrate mlflow-minio:object-storage mlflow-server:object-storage".to_string(),
        "juju integrate mlflow-mysql:database mlflow-server:relational-db".to_string(),
    ];
    assert_eq!(script.lines().collect::<Vec<_>>(), expected, "{script}");
    assert!(!script.contains("s3cret"), "secrets never go into the script");
    let retagged = std::fs::read_to_string(out_dir.join("retagged-images.txt")).unwrap();
    assert!(
        retagged.contains(&format!(
            "{to}/charmedkubeflow/mlflow:2.22.0@{}",
            digest("charmedkubeflow/mlflow:2.22.0")
        )),
        "{retagged}"
    );
    let lock = std::fs::read_to_string(out_dir.join("bundle.lock")).unwrap();
    assert!(lock.contains("revision: 123") && lock.contains("channel: 2.22/stable"), "{lock}");
    // The script is valid POSIX shell.
    run(Command::new("sh").arg("-n").arg(&script_path));
}

/// A killed export's leftover beside `--out` (its process is gone) is removed by the next run,
/// which says so; SIGTERM stops an export cleanly: exit 130, one line saying what was not
/// written, and nothing left beside `--out`.
#[test]
fn interrupted_exports_leave_nothing_and_killed_ones_are_cleaned_up_later() {
    let work = tempfile::tempdir().unwrap();
    // A "registry" that accepts connections and never answers: the export waits on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let image = format!("127.0.0.1:{}/app:1", silent.local_addr().unwrap().port());
    let (bundle, _) = shop_charms(work.path(), "1.0.0", &image, &image);
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // No process has id 4294967295 (above Linux's pid_max): a killed export's leftover.
    let leftover = out_dir.join(".charmer-export-4294967295-abc.tmp");
    std::fs::write(&leftover, vec![0u8; 4096]).unwrap();

    let mut export = Command::new(assert_cmd::cargo::cargo_bin("charmer"))
        .current_dir(work.path())
        .args(["airgap", "export"])
        .arg(&bundle)
        .arg("--out")
        .arg(out_dir.join("shop.tar"))
        .args(["--insecure-http", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is talking to the silent registry, then stop it as a service manager would.
    let (_connection, _) = silent.accept().unwrap();
    let status = Command::new("kill").args(["-TERM", &export.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    export.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let code = export.wait().unwrap().code();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "removed {}, left by an export that was killed",
            leftover.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: interrupted: ") && stderr.contains("shop.tar was not written"),
        "{stderr}"
    );
    assert_eq!(
        crate::support::entries(&out_dir),
        Vec::<String>::new(),
        "nothing left beside --out"
    );
}
