//! `airgap export` on the connected side, `airgap import` on the air-gapped side.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use crate::support::registry::{charmer, connection, run, Kind, Layout, Registry};

/// A tiny valid charm, packed by charmer into `dir`; returns the archive path.
fn pack_charm(work: &Path, name: &str) -> std::path::PathBuf {
    let source = work.join("src").join(name);
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("metadata.yaml"), format!("name: {name}\nsummary: test\ndescription: test\n")).unwrap();
    std::fs::write(source.join("version"), "1.2.0\n").unwrap();
    let dist = work.join("dist");
    charmer(work).arg("pack").arg(&source).arg("--out").arg(&dist).assert().success();
    dist.join(format!("{name}_1.2.0.charm"))
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
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (Registry::start(Kind::Plain), Registry::start(Kind::Plain));
    let mut layout = Layout::new(&work.path().join("layout"));
    let layer = layout.layer(71, 90_000);
    let image = layout.image("amd64", &[&layer]);
    layout.name(&image, "app");
    layout.push_with_skopeo("app", &src, "team/app:1.0");
    let (_, source_digest) = src.inspect_raw("team/app:1.0");

    let charm = pack_charm(work.path(), "frontend");
    let bundle = work.path().join("bundle.yaml");
    std::fs::write(&bundle, "name: shop\napplications:\n  frontend:\n    charm: frontend\n").unwrap();
    let overlay = work.path().join("prod.yaml");
    std::fs::write(&overlay, "applications:\n  frontend:\n    scale: 2\n").unwrap();
    let lock = work.path().join("bundle.lock");
    std::fs::write(&lock, "# bundle.lock\nbundle: shop\n").unwrap();
    let list = work.path().join("images.txt");
    std::fs::write(&list, format!("{}/team/app:1.0\n", src.host())).unwrap();

    // Connected side.
    let carried = work.path().join("bundle-airgap.tar");
    charmer(work.path())
        .args(["airgap", "export", "--quiet", "--bundle"])
        .arg(&bundle)
        .arg("--overlay")
        .arg(&overlay)
        .arg("--charm")
        .arg(&charm)
        .arg("--lock")
        .arg(&lock)
        .arg("--from-list")
        .arg(&list)
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

    // A tampered copy: one byte of the charm flipped. Named, nothing pushed, nothing written.
    let tampered = work.path().join("tampered.tar");
    std::fs::copy(&carried, &tampered).unwrap();
    let at = member_offset(&tampered, "charms/frontend_1.2.0.charm") + 10;
    let mut file = File::options().read(true).write(true).open(&tampered).unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
    drop(file);
    let out_dir = work.path().join("deploy");
    let failed = charmer(work.path())
        .args(["airgap", "import", "--quiet", "--registry", &dst.host(), "--out"])
        .arg(&out_dir)
        .arg(&tampered)
        .args(connection(&dst))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).to_string();
    assert!(stderr.contains("tampered.tar: charms/frontend_1.2.0.charm: checksum mismatch"), "{stderr}");
    assert!(dst.requests().is_empty(), "nothing may be pushed: {:?}", dst.requests());
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
    assert_eq!(std::fs::read(out_dir.join("bundle.yaml")).unwrap(), std::fs::read(&bundle).unwrap());
    assert_eq!(std::fs::read(out_dir.join("prod.yaml")).unwrap(), std::fs::read(&overlay).unwrap());
    assert_eq!(std::fs::read(out_dir.join("bundle.lock")).unwrap(), std::fs::read(&lock).unwrap());
    assert_eq!(std::fs::read(out_dir.join("charms/frontend_1.2.0.charm")).unwrap(), std::fs::read(&charm).unwrap());
    let retagged = std::fs::read_to_string(out_dir.join("retagged-images.txt")).unwrap();
    assert!(retagged.contains(&format!("{}/airgap/team/app:1.0@{source_digest}", dst.host())), "{retagged}");
    assert_eq!(dst.inspect_raw("airgap/team/app:1.0").1, source_digest);

    // `images push` takes the air-gap archive as is.
    charmer(work.path()).args(["images", "push", "--quiet", "--registry", &format!("{}/again", dst.host())]).arg(&carried).args(connection(&dst)).current_dir(work.path()).assert().success();
    assert_eq!(dst.inspect_raw("again/team/app:1.0").1, source_digest);
}
