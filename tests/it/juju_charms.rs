//! Real Juju operator charms (Charmed Kubeflow's, from tests/fixtures/juju): charmcraft
//! sources pack, Charmhub-style `<name>_r<N>.charm` archives are inspected, verified, picked
//! by a bundle's `revision:`, locked by revision and digest, refused by render, and turned
//! into `juju deploy` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use charmer::charm::CharmFile;

use crate::support::{charmer, exec, file, write_charm};

pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/juju").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> (String, String) {
    let out = cmd.assert().success().get_output().clone();
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn failure_of(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().failure().code(1).get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

/// canonical/mlflow-operator's source as charmcraft lays it out: metadata, config, actions,
/// charmcraft.yaml with `platforms: ubuntu@24.04:amd64`, and charm code.
fn mlflow_source(dir: &Path) -> PathBuf {
    write_charm(
        dir,
        &[
            file("metadata.yaml", fixture("mlflow-operator__metadata.yaml")),
            file("config.yaml", fixture("mlflow-operator__config.yaml")),
            file("actions.yaml", fixture("mlflow-operator__actions.yaml")),
            file("charmcraft.yaml", fixture("mlflow-operator__charmcraft.yaml")),
            exec("src/charm.py", "#!/usr/bin/env python3\nimport ops\n"),
            file("lib/charms/x/v0/lib.py", "LIBAPI = 0\n"),
        ],
    )
}

/// A Charmhub-style archive: what `juju download` gives (manifest.yaml, dispatch, src/,
/// venv/, a `version` file holding a git description, no semver anywhere).
pub(crate) fn charmhub_archive(
    dir: &Path,
    name: &str,
    revision: u64,
    metadata: &str,
    config: &str,
) -> PathBuf {
    let text = |s: &str| CharmFile { data: s.as_bytes().to_vec(), executable: false };
    let files = BTreeMap::from([
        ("metadata.yaml".to_string(), text(metadata)),
        ("config.yaml".to_string(), text(config)),
        (
            "manifest.yaml".to_string(),
            text("bases:\n- name: ubuntu\n  channel: '24.04'\n  architectures: [amd64]\n"),
        ),
        ("version".to_string(), text("5be7a7a\n")),
        (
            "dispatch".to_string(),
            CharmFile { data: b"#!/bin/sh\nexec ./src/charm.py\n".to_vec(), executable: true },
        ),
        (
            "src/charm.py".to_string(),
            CharmFile { data: b"import ops\n".to_vec(), executable: true },
        ),
        ("venv/ops/__init__.py".to_string(), text("")),
    ]);
    let path = dir.join(format!("{name}_r{revision}.charm"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, charmer::charm::archive::pack(&files)).unwrap();
    path
}

#[test]
fn charmcraft_sources_of_ckf_charms_pack_like_charmcraft() {
    let work = tempfile::tempdir().unwrap();
    let source = mlflow_source(&work.path().join("mlflow-operator"));
    let (stdout, stderr) =
        stdout_of(charmer().arg("pack").arg(&source).arg("--out").arg(work.path().join("dist")));
    let archive = work.path().join("dist/mlflow-server.charm");
    assert!(stdout.ends_with(&format!("  {}\n", archive.display())), "{stdout}");
    assert!(
        stderr.contains(
            "charmcraft.yaml: parts.charm-poetry: charmer does not build parts (plugin poetry)"
        ),
        "{stderr}"
    );

    let unpacked = work.path().join("unpacked");
    charmer().arg("unpack").arg(&archive).arg("--out").arg(&unpacked).assert().success();
    let tree = crate::support::tree(&unpacked);
    assert_eq!(
        String::from_utf8_lossy(&tree["manifest.yaml"].0),
        "bases:\n- name: ubuntu\n  channel: '24.04'\n  architectures:\n  - amd64\n"
    );
    let (dispatch, executable) = &tree["dispatch"];
    assert!(*executable && String::from_utf8_lossy(dispatch).contains("exec ./src/charm.py"));
    assert!(!tree.contains_key("charmcraft.yaml"), "charmcraft does not pack charmcraft.yaml");
    assert!(tree.contains_key("actions.yaml") && tree.contains_key("lib/charms/x/v0/lib.py"));

    let (text, _) = stdout_of(charmer().arg("inspect").arg(&archive));
    for expected in [
        "name:     mlflow-server\n",
        "version:  unversioned\n",
        "kind:     operator (charm code; Juju runs it)\n",
        "  oci-image (oci-image) docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a\n",
        "  requires relational-db interface mysql_client\n",
        "  enable_mlflow_nodeport (boolean) default true\n",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }

    // Two more CKF charms, in the split form (metadata.yaml beside charmcraft.yaml).
    for (prefix, name) in [
        ("kubeflow-dashboard-operator", "kubeflow-dashboard"),
        ("istio-operators__istio-pilot", "istio-pilot"),
    ] {
        let dir = write_charm(
            &work.path().join(prefix),
            &[
                file("metadata.yaml", fixture(&format!("{prefix}__metadata.yaml"))),
                file("config.yaml", fixture(&format!("{prefix}__config.yaml"))),
                file("charmcraft.yaml", fixture(&format!("{prefix}__charmcraft.yaml"))),
                exec("src/charm.py", "import ops\n"),
            ],
        );
        let (json, _) = stdout_of(charmer().arg("inspect").arg(&dir).args(["--output", "json"]));
        let view: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(view["name"], name);
        assert_eq!(view["kind"], "operator");
    }
}

#[test]
fn charmhub_archives_are_first_class() {
    let work = tempfile::tempdir().unwrap();
    let charms = work.path().join("charms");
    let metadata = fixture("mlflow-operator__metadata.yaml");
    let config = fixture("mlflow-operator__config.yaml");
    let r7 = charmhub_archive(&charms, "mlflow-server", 7, &metadata, &config);
    let r9 = charmhub_archive(&work.path().join("other"), "mlflow-server", 9, &metadata, &config);
    std::fs::rename(&r9, charms.join("mlflow-server_r9.charm")).unwrap();
    let r9 = charms.join("mlflow-server_r9.charm");
    let sha9 = crate::support::sha256_file(&r9);

    let (verified, _) = stdout_of(charmer().arg("verify").arg(&r7));
    assert_eq!(
        verified,
        format!(
            "ok  {}  mlflow-server 5be7a7a  sha256 {}\n",
            r7.display(),
            crate::support::sha256_file(&r7)
        )
    );
    let (text, _) = stdout_of(charmer().arg("inspect").arg(&r9));
    assert!(text.contains("version:  5be7a7a\nrevision: 9\nkind:     operator"), "{text}");
    // A semver in the file name must still match.
    let wrong = work.path().join("mlflow-server_1.0.0.charm");
    std::fs::copy(&r7, &wrong).unwrap();
    let err = failure_of(charmer().arg("verify").arg(&wrong));
    assert!(
        err.contains("version: the charm has no semver version file but the file name says 1.0.0"),
        "{err}"
    );

    // A bundle picks among revisions only when it pins one.
    let bundle = work.path().join("bundle.yaml");
    let write_bundle = |extra: &str| {
        std::fs::write(
            &bundle,
            format!("bundle: kubernetes\nname: mlflow\napplications:\n  mlflow-server:\n    charm: mlflow-server\n    channel: 2.22/stable\n{extra}    scale: 2\n    trust: true\n    options:\n      enable_mlflow_nodeport: false\n      default_artifact_root: 'my bucket'\n"),
        )
        .unwrap();
    };
    write_bundle("");
    let charms_arg = ["--charms", charms.to_str().unwrap()];
    let err = failure_of(charmer().arg("check").arg(&bundle).args(charms_arg));
    assert!(err.contains("2 archives of mlflow-server (r9, r7) and no revision: chosen (hint: pin one with revision: N"), "{err}");
    write_bundle("    revision: 12\n");
    let err = failure_of(charmer().arg("check").arg(&bundle).args(charms_arg));
    assert!(err.contains("nothing fits revision 12; found r9, r7"), "{err}");
    write_bundle("    revision: 9\n");
    stdout_of(charmer().arg("check").arg(&bundle).args(charms_arg));

    // Render refuses operator charms in one line; the lock is written by juju-script's
    // sibling commands, and images list sees the charm's resources.
    let err = failure_of(charmer().arg("render").arg(&bundle).args(charms_arg));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("applications: 1 run Juju operator charms (charm code, no templates/), which charmer cannot render or deploy: mlflow-server (mlflow-server)"), "{err}");
    // deploy refuses before it touches a cluster (none is reachable here).
    let err = failure_of(
        charmer()
            .arg("deploy")
            .arg(&bundle)
            .args(charms_arg)
            .args(["--kubeconfig", "/nonexistent"]),
    );
    assert!(err.contains("which charmer cannot render or deploy: mlflow-server"), "{err}");
    // Published by revision, byte for byte (its SHA-256 is its identity), and consumed from
    // the published folder by the bundle's revision.
    let published = work.path().join("pub");
    stdout_of(charmer().arg("publish").arg(&r7).arg(&r9).arg("--out").arg(&published));
    assert_eq!(
        std::fs::read(published.join("mlflow-server_r7.charm")).unwrap(),
        std::fs::read(&r7).unwrap()
    );
    let index = std::fs::read_to_string(published.join("index.yaml")).unwrap();
    assert!(index.contains("- revision: 7\n    file: mlflow-server_r7.charm\n"), "{index}");
    let (verified, _) = stdout_of(charmer().arg("verify").arg(&published));
    assert!(verified.contains(&format!("mlflow-server r9  sha256 {sha9}")), "{verified}");
    let (plan, _) = stdout_of(
        charmer().arg("check").arg(&bundle).args(["--charms", published.to_str().unwrap()]),
    );
    assert!(plan.contains("mlflow-server_r9.charm"), "{plan}");
    // Without a semver or a revision there is nothing to list it by.
    let unnamed = work.path().join("mlflow-server.charm");
    std::fs::copy(&r7, &unnamed).unwrap();
    let err = failure_of(
        charmer().arg("publish").arg(&unnamed).arg("--out").arg(work.path().join("pub2")),
    );
    assert!(err.contains("mlflow-server has neither a semantic version nor a revision"), "{err}");
    let (why, _) = stdout_of(
        charmer()
            .args(["images", "list"])
            .arg(&bundle)
            .args(charms_arg)
            .args(["--why", "docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a"]),
    );
    assert_eq!(why, "mlflow-server (charm mlflow-server 5be7a7a, resource oci-image)\n");

    let lock = charmer::resolve::Lock::of(
        &charmer::resolve::load(
            &charmer::resolve::Inputs {
                bundle: charmer::bundle::BundleInput {
                    bundle: bundle.clone(),
                    ..Default::default()
                },
                charm_dirs: vec![charms.clone()],
                registry: Some("10.0.0.5:5000".parse().unwrap()),
                ..Default::default()
            },
            &mut Vec::new(),
        )
        .unwrap(),
    );
    let locked = &lock.applications["mlflow-server"];
    assert_eq!((locked.revision, locked.channel.as_deref()), (Some(9), Some("2.22/stable")));
    assert_eq!(locked.sha256, sha9);

    let (script, _) = stdout_of(
        charmer()
            .arg("juju-script")
            .arg(&bundle)
            .args(charms_arg)
            .args(["--registry", "10.0.0.5:5000"]),
    );
    let expected = format!(
        "\n# mlflow-server: charm mlflow-server, channel 2.22/stable, revision 9, sha256 {sha9}\n\
         juju deploy ./charms/mlflow-server_r9.charm mlflow-server \\\n  \
         --resource exporter-oci-image=10.0.0.5:5000/charmedkubeflow/mlflow-prometheus-exporter:1.0-22.04 \\\n  \
         --resource oci-image=10.0.0.5:5000/charmedkubeflow/mlflow:2.22.0-5be7a7a \\\n  \
         --config 'default_artifact_root=my bucket' \\\n  \
         --config enable_mlflow_nodeport=false \\\n  \
         --trust \\\n  \
         --num-units 2\n"
    );
    assert!(script.starts_with("#!/bin/sh\n") && script.ends_with(&expected), "{script}");
}

#[test]
fn ckf_bundles_keep_juju_keys_for_the_juju_side() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/juju/bundle-kubeflow__1.10-stable__bundle.yaml");
    let input = charmer::bundle::BundleInput { bundle: path, ..Default::default() };
    let bundle = charmer::bundle::Bundle::load(&input).unwrap();
    assert!(bundle.applications.len() > 25, "{}", bundle.applications.len());
    let db = &bundle.applications["katib-db"];
    assert_eq!(db.charm, charmer::bundle::CharmRef::Name("mysql-k8s".into()));
    assert_eq!(
        (db.channel.as_deref(), db.constraints.as_deref(), db.revision),
        (Some("8.0/stable"), Some("mem=2G"), None)
    );
    assert!(db.trust);
}
