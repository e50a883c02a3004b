//! `airgap export` on the connected side, `airgap import` on the air-gapped side.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::registry::{charmer, connection, run, Kind, Layout, Registry};

/// A charm source folder running `image` (one container); returns its folder.
fn charm_source(dir: &Path, name: &str, version: &str, image: &str) -> PathBuf {
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

#[test]
fn export_carry_import_and_tampering_is_caught() {
    if !crate::support::tools_present(crate::support::REGISTRY_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let mut layout = Layout::new(&work.path().join("layout"));
    let (l1, l2) = (layout.layer(71, 90_000), layout.layer(72, 60_000));
    let (app, api) = (layout.image("amd64", &[&l1]), layout.image("amd64", &[&l1, &l2]));
    layout.name(&app, "app");
    layout.name(&api, "api");
    layout.push_with_skopeo("app", &src, "team/app:1.0");
    layout.push_with_skopeo("api", &src, "team/api:2.0");
    let (_, app_digest) = src.inspect_raw("team/app:1.0");
    let (_, api_digest) = src.inspect_raw("team/api:2.0");

    // A bundle of two charms: one a source folder in charms/, one an archive in dist/.
    let shop = work.path().join("shop");
    charm_source(
        &shop.join("charms"),
        "frontend",
        "1.2.0",
        &format!("{}/team/app:1.0", src.host()),
    );
    let backend_source = charm_source(
        &work.path().join("elsewhere"),
        "backend",
        "2.0.0",
        &format!("{}/team/api:2.0", src.host()),
    );
    charmer(work.path())
        .arg("pack")
        .arg(&backend_source)
        .arg("--out")
        .arg(shop.join("dist"))
        .assert()
        .success();
    let backend = shop.join("dist/backend_2.0.0.charm");
    let bundle = shop.join("bundle.yaml");
    std::fs::write(&bundle, "bundle: kubernetes\nname: shop\napplications:\n  frontend:\n    charm: frontend\n    scale: 1\n  backend:\n    charm: backend\n    scale: 1\n").unwrap();
    let overlay = shop.join("prod.yaml");
    std::fs::write(&overlay, "applications:\n  frontend:\n    scale: 2\n").unwrap();

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
    // The checksums are coreutils' format: checkable without charmer.
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar").arg("-xf").arg(&carried).arg("-C").arg(&unpacked));
    run(Command::new("sha256sum").args(["--quiet", "-c", "SHA256SUMS"]).current_dir(&unpacked));

    // A tampered copy: one byte of a charm flipped. Named, nothing pushed, nothing written.
    let tampered = work.path().join("tampered.tar");
    std::fs::copy(&carried, &tampered).unwrap();
    let at = member_offset(&tampered, "charms/backend_2.0.0.charm") + 10;
    let mut file = File::options().read(true).write(true).open(&tampered).unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
    drop(file);
    let out_dir = work.path().join("deploy");
    let before = dst.requests().len();
    let failed = charmer(work.path())
        .args(["airgap", "import", "--quiet", "--registry", &dst.host(), "--out"])
        .arg(&out_dir)
        .arg(&tampered)
        .args(connection(&dst))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).to_string();
    assert!(
        stderr.contains("tampered.tar: charms/backend_2.0.0.charm: checksum mismatch"),
        "{stderr}"
    );
    assert_eq!(dst.requests().len(), before, "nothing may be pushed");
    assert!(!out_dir.exists());

    // Air-gapped side.
    let imported = charmer(work.path())
        .args(["airgap", "import", "--registry", &format!("{}/airgap", dst.host()), "--out"])
        .arg(&out_dir)
        .arg(&carried)
        .args(connection(&dst))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&imported.get_output().stdout).to_string();
    assert!(stdout.contains("next: charmer deploy"), "{stdout}");
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
