//! The Juju side of an air-gapped install of operator charms: a POSIX shell script of
//! `juju deploy ./charms/<file> <app> --resource <name>=<private image@digest> --config ...
//! --trust --num-units N` lines and `juju integrate` lines for the bundle's relations, in
//! place of a hand-edited deploy script. An option that names images (istio-gateway's
//! `proxy-image`, istio-pilot's `image-configuration`; see [`crate::images::config`]) is
//! always set, to the same value with every image at the private registry.
//!
//! Only applications running [`Kind::Operator`] charms get lines: charmer deploys its own
//! charms itself (a mixed bundle's script names them, and the relations Juju cannot make, in
//! comments). Config values the bundle sets are passed with `--config key=value`
//! (Juju parses them by the option's type); `secret` options are never written into the
//! script: it reads them from environment variables, and stops before deploying anything
//! when one is unset.

use std::fmt::Write as _;

use crate::charm::{ConfigValue, Kind};
use crate::resolve::{Lock, Model, Source};

/// The script's file name, beside `charms/` in the folder `airgap import` writes.
pub const SCRIPT: &str = "deploy-juju.sh";

/// Whether any application of the model runs an operator charm (and so needs the script).
pub fn has_operators(model: &Model) -> bool {
    model.applications.values().any(|a| a.charm.kind() == Kind::Operator)
}

/// The deploy script for `model`'s operator applications. Images come from `lock` when it
/// has them (after `airgap import` or `images push --lock`, pinned to the pushed digests),
/// else from the model's relocated references. Charms are named `./charms/<file name>`.
pub fn deploy_script(model: &Model, lock: Option<&Lock>) -> String {
    let mut out = String::new();
    let operators: Vec<_> =
        model.applications.values().filter(|a| a.charm.kind() == Kind::Operator).collect();
    // Writing into a String cannot fail.
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(
        out,
        "# {SCRIPT}: written by charmer; deploys bundle {} with Juju into the current model.",
        model.name
    );
    let _ = writeln!(out, "# Run it from its own folder (it uses ./charms/) after juju add-model.");
    let _ = writeln!(out, "set -eu");
    let _ = writeln!(out, "cd \"$(dirname \"$0\")\"");
    let mut secrets = Vec::new();
    for app in &operators {
        for (key, setting) in &app.config {
            if setting.source != Source::Default && matches!(setting.value, ConfigValue::Secret(_))
            {
                secrets.push((app.name.as_str(), key.as_str(), secret_variable(&app.name, key)));
            }
        }
    }
    for (app, key, variable) in &secrets {
        let _ = writeln!(
            out,
            ": \"${{{variable}:?set {variable} to the value of {app}'s secret option {key}}}\""
        );
    }
    for app in &operators {
        // Juju deploys archives: a source folder is named by the archive `pack` makes of it.
        let archive = match &app.charm.origin {
            crate::charm::Origin::Archive { path, .. } => path.file_name(),
            crate::charm::Origin::Dir(_) => None,
        };
        let file = archive
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| app.charm.archive_name());
        let mut record = vec![format!("charm {}", app.charm.name())];
        if let crate::charm::Origin::Dir(dir) = &app.charm.origin {
            record.push(format!("packed from {} (charmer pack it into charms/)", dir.display()));
        }
        if let Some(channel) = &app.channel {
            record.push(format!("channel {channel}"));
        }
        if let Some(revision) = app.charm.revision {
            record.push(format!("revision {revision}"));
        }
        record.push(format!("sha256 {}", app.charm.sha256()));
        let _ = writeln!(out, "\n# {}: {}", app.name, record.join(", "));
        let mut args = vec![format!("{} {}", quote(&format!("./charms/{file}")), quote(&app.name))];
        for (resource, image) in &app.images {
            let locked = lock
                .and_then(|l| l.applications.get(&app.name))
                .and_then(|a| a.images.get(resource))
                .map(|i| &i.target);
            let reference = locked.unwrap_or(&image.target).pinned_form();
            args.push(format!("--resource {}", quote(&format!("{resource}={reference}"))));
        }
        let pinned = lock.and_then(|l| l.applications.get(&app.name)).map(|a| &a.config_images);
        for (key, setting) in &app.config {
            // An option naming images is always set: its default names the public ones.
            if let (Some(images), ConfigValue::String(value)) =
                (app.config_images.get(key), &setting.value)
            {
                match images.rewrite(key, value, pinned) {
                    Ok(value) => {
                        args.push(format!("--config {}", quote(&format!("{key}={value}"))))
                    }
                    Err(why) => {
                        let _ = writeln!(out, "# {}: set {key} by hand: {why}", app.name);
                    }
                }
                continue;
            }
            if setting.source == Source::Default {
                continue;
            }
            let arg = match &setting.value {
                ConfigValue::Secret(_) => {
                    format!("\"{key}=${{{}}}\"", secret_variable(&app.name, key))
                }
                ConfigValue::String(s) => quote(&format!("{key}={s}")),
                ConfigValue::Int(i) => quote(&format!("{key}={i}")),
                ConfigValue::Float(x) => quote(&format!("{key}={x}")),
                ConfigValue::Boolean(b) => quote(&format!("{key}={b}")),
            };
            args.push(format!("--config {arg}"));
        }
        if let Some(constraints) = &app.constraints {
            args.push(format!("--constraints {}", quote(constraints)));
        }
        if app.trust {
            args.push("--trust".to_string());
        }
        args.push(format!("--num-units {}", app.scale));
        let _ = writeln!(out, "juju deploy {}", args.join(" \\\n  "));
    }
    let is_operator =
        |name: &str| model.applications.get(name).is_some_and(|a| a.charm.kind() == Kind::Operator);
    // charmer's own applications in a mixed bundle are deployed by charmer, and their
    // relations with Juju's cannot be made by either: say so rather than drop them.
    let others: Vec<&str> = model
        .applications
        .values()
        .filter(|a| a.charm.kind() != Kind::Operator)
        .map(|a| a.name.as_str())
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "\n# not deployed here (charmer's own charms: charmer deploy): {}",
            others.join(", ")
        );
    }
    if !model.relations.is_empty() {
        let _ = writeln!(out);
    }
    for relation in &model.relations {
        let ends = (
            quote(&format!("{}:{}", relation.a.0, relation.a.1)),
            quote(&format!("{}:{}", relation.b.0, relation.b.1)),
        );
        if is_operator(&relation.a.0) && is_operator(&relation.b.0) {
            let _ = writeln!(out, "juju integrate {} {}", ends.0, ends.1);
        } else {
            let _ = writeln!(
                out,
                "# not integrated ({} is not a Juju application): {} {}",
                if is_operator(&relation.a.0) { &relation.b.0 } else { &relation.a.0 },
                ends.0,
                ends.1
            );
        }
    }
    out
}

/// The end of the script for an archive that carried images no charm names (`airgap export
/// --image`): a comment listing them where they were pushed, for whoever deploys what needs
/// them (Juju's agent images, a base image). Empty when there are none.
pub fn extra_images(pushed: &[&crate::images::Reference]) -> String {
    if pushed.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n# Images carried beside the charms (airgap export --image), no charm names them:\n",
    );
    for image in pushed {
        let _ = writeln!(out, "#   {image}");
    }
    out
}

/// The environment variable the script reads a secret option from:
/// `CHARMER_SECRET_<APP>_<OPTION>`, upper case, other characters as `_`.
fn secret_variable(app: &str, key: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect()
    };
    format!("CHARMER_SECRET_{}_{}", clean(app), clean(key))
}

/// `text` as one shell word: as it is when it holds only safe characters, else in single
/// quotes (a `'` inside written as `'\''`).
fn quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charm::{Charm, CharmFile, Origin};
    use crate::resolve::Relation;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(quote("./charms/a_r1.charm"), "./charms/a_r1.charm");
        assert_eq!(quote("kind=ingress"), "kind=ingress");
        assert_eq!(quote("a=b c"), "'a=b c'");
        assert_eq!(quote("x='y'\nz"), "'x='\\''y'\\''\nz'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn a_mixed_bundle_names_what_juju_does_not_deploy() {
        use crate::resolve::testing::{app, charm, model};
        let file =
            |text: &str, executable| CharmFile { data: text.as_bytes().to_vec(), executable };
        let files = std::collections::BTreeMap::from([
            ("metadata.yaml".to_string(), file("name: db\nprovides:\n  database: pg\n", false)),
            ("dispatch".to_string(), file("#!/bin/sh\n", true)),
        ]);
        let archive =
            Origin::Archive { path: "charms/db_r3.charm".into(), sha256: "ab".repeat(32) };
        let mut db = Charm::from_files(files, archive).unwrap();
        db.revision = Some(3);
        let web = charm("web", "requires:\n  db: pg\n", "");
        let mut mixed = model(vec![app("db", std::sync::Arc::new(db)), app("web", web)], None);
        mixed.relations.push(Relation {
            a: ("db".into(), "database".into()),
            b: ("web".into(), "db".into()),
            interface: "pg".into(),
        });
        let script = deploy_script(&mixed, None);
        assert!(
            script.contains("juju deploy ./charms/db_r3.charm db \\\n  --num-units 1\n"),
            "{script}"
        );
        assert!(
            script.contains("\n# not deployed here (charmer's own charms: charmer deploy): web\n"),
            "{script}"
        );
        assert!(
            script.contains(
                "\n# not integrated (web is not a Juju application): db:database web:db\n"
            ),
            "{script}"
        );
        assert!(!script.contains("juju integrate"), "{script}");
    }

    #[test]
    fn options_naming_images_are_always_set_at_the_private_registry() {
        use crate::images::config::{find, Found};
        use crate::resolve::testing::{app, model};
        use crate::resolve::{ConfigImages, Image, Lock, Setting, Source};
        let file =
            |text: &str, executable| CharmFile { data: text.as_bytes().to_vec(), executable };
        let default = "docker.io/istio/proxyv2:1.17.3";
        let files = std::collections::BTreeMap::from([
            ("metadata.yaml".to_string(), file("name: gw\n", false)),
            (
                "config.yaml".to_string(),
                file(
                    &format!("options:\n  proxy-image: {{type: string, default: '{default}'}}\n"),
                    false,
                ),
            ),
            ("dispatch".to_string(), file("#!/bin/sh\n", true)),
        ]);
        let origin = Origin::Archive { path: "charms/gw_r1.charm".into(), sha256: "cd".repeat(32) };
        let mut gw = app("gw", std::sync::Arc::new(Charm::from_files(files, origin).unwrap()));
        let value = ConfigValue::String(default.to_string());
        gw.config.insert("proxy-image".into(), Setting { value, source: Source::Default });
        let Found::Images(found) = find("proxy-image", default) else { panic!() };
        let registry: crate::images::Registry = "reg.internal:5000/ckf".parse().unwrap();
        let source = found.parts[""].clone();
        let image = Image { target: source.relocate(&registry), source };
        let images = std::collections::BTreeMap::from([(String::new(), image)]);
        gw.config_images.insert("proxy-image".into(), ConfigImages { found, images });
        let gateway = model(vec![gw], Some(registry));
        let script = deploy_script(&gateway, None);
        assert!(
            script.contains(
                "juju deploy ./charms/gw_r1.charm gw \\\n  --config proxy-image=reg.internal:5000/ckf/istio/proxyv2:1.17.3 \\\n"
            ),
            "a default naming an image is set all the same: {script}"
        );
        let mut lock = Lock::of(&gateway);
        let digest = format!("sha256:{}", "e".repeat(64));
        let locked = lock.applications.get_mut("gw").unwrap();
        locked.config_images.get_mut("proxy-image").unwrap().target.digest = Some(digest.clone());
        let script = deploy_script(&gateway, Some(&lock));
        assert!(
            script.contains(&format!(
                "  --config proxy-image=reg.internal:5000/ckf/istio/proxyv2@{digest} \\\n"
            )),
            "the lock's pinned target wins: {script}"
        );
    }

    #[test]
    fn secret_variables_are_shell_names() {
        assert_eq!(
            secret_variable("kfp-db", "root.password"),
            "CHARMER_SECRET_KFP_DB_ROOT_PASSWORD"
        );
    }
}
