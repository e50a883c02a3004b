//! The images an operator charm names in its config options (istio-gateway's `proxy-image`,
//! istio-pilot's `image-configuration`, ...): found in each option's effective value, by the
//! shapes [`crate::images::config`] reads, and relocated like resource images. charmer's own
//! charms must declare every image as a resource (the charm's warnings say so), so only
//! operator charms are read here.

use std::collections::BTreeMap;

use super::model::{Application, ConfigImages, Model, Setting, Source};
use crate::charm::{Charm, ConfigValue, Kind};
use crate::diag::{Problem, Problems};
use crate::images::config::{find, looks_like_image, Found};
use crate::images::{ImageMap, Registry};

/// The images `charm`'s options name in `config` (application `app`), relocated as
/// [`super::resolve`] relocates resources; problems (an image the image map lacks, targets
/// an option cannot express) go to `problems`.
pub(super) fn resolve(
    app: &str,
    charm: &Charm,
    config: &BTreeMap<String, Setting>,
    (registry, image_map): (Option<&Registry>, Option<&ImageMap>),
    problems: &mut Problems,
) -> BTreeMap<String, ConfigImages> {
    let mut found = BTreeMap::new();
    if charm.kind() != Kind::Operator {
        return found;
    }
    for (option, setting) in config {
        let ConfigValue::String(value) = &setting.value else { continue };
        let Found::Images(images) = find(option, value) else { continue };
        let (file, key) = whence(app, charm, option, &setting.source);
        let relocated: Option<BTreeMap<_, _>> = images
            .parts
            .iter()
            .map(|(part, source)| {
                let image = super::relocated(
                    source.clone(),
                    registry,
                    image_map,
                    &file,
                    key.clone(),
                    problems,
                )?;
                Some((part.clone(), image))
            })
            .collect();
        let Some(relocated) = relocated else { continue };
        let option_images = ConfigImages { found: images, images: relocated };
        if let Err(why) = option_images.rewrite(option, value, None) {
            problems.push(
                Problem::new(&file, &key, format!("cannot point the option at the private registry's images: {why}"))
                    .hint("map these images to one registry path (--registry, or one prefix in the --image-map)"),
            );
            continue;
        }
        found.insert(option.clone(), option_images);
    }
    found
}

/// Where an option's value came from, as (file, key) for a problem.
fn whence(app: &str, charm: &Charm, option: &str, source: &Source) -> (String, String) {
    match source {
        Source::Default => (
            format!("{}/config.yaml", charm.origin.path().display()),
            format!("options.{option}.default"),
        ),
        other => (other.file_label(), format!("applications.{app}.options.{option}")),
    }
}

/// One warning per option of an operator charm that names images charmer cannot read (its
/// images are not carried, and the hint gives the `--config` line to write by hand), or that
/// leaves every image of a map empty for the charm to pick its own.
pub(super) fn warnings(model: &Model) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for app in model.applications.values().filter(|a| a.charm.kind() == Kind::Operator) {
        for (option, setting) in &app.config {
            let ConfigValue::String(value) = &setting.value else { continue };
            let (file, key) = whence(&app.name, &app.charm, option, &setting.source);
            match find(option, value) {
                Found::Unreadable(why) => warnings.push(
                    Problem::new(file, key, format!("charm {} names images in this option in a form charmer cannot read ({why}); they are not carried and the Juju script does not set it", app.charm.name()))
                        .hint(by_hand(app, option, value, model.registry.as_ref())),
                ),
                Found::Defaulted(keys) => warnings.push(
                    Problem::new(file, key, format!("charm {} is left to pick its own images for {}: charmer cannot see them, so they are not carried", app.charm.name(), keys.join(", ")))
                        .hint(format!("set {option} to the images (a YAML map of {} to references) and carry them with airgap export --image REF", keys.join(", "))),
                ),
                Found::Nothing | Found::Images(_) => {}
            }
        }
    }
    warnings
}

/// What to do by hand: carry the images with `airgap export --image`, and the `--config`
/// line for the application's `juju deploy` with every word that is an image moved to
/// `registry` (or left for the user to point there when no registry is known).
fn by_hand(app: &Application, option: &str, value: &str, registry: Option<&Registry>) -> String {
    let mut images = Vec::new();
    let mut rewritten = String::new();
    let mut word = String::new();
    let mut flush = |word: &mut String, out: &mut String| {
        // Flow brackets around a word are YAML's; a template's `{{ }}` make it no image.
        let core = if word.contains("{{") || word.contains("}}") {
            word.as_str()
        } else {
            word.trim_matches(['[', ']', '{', '}'])
        };
        let at = word.find(core).unwrap_or(0);
        match looks_like_image(core) {
            Some(image) => {
                let moved =
                    registry.map_or_else(|| core.to_string(), |r| image.relocate(r).to_string());
                out.push_str(&format!("{}{moved}{}", &word[..at], &word[at + core.len()..]));
                images.push(image.to_string());
            }
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in value.chars() {
        if c.is_whitespace() || "'\",".contains(c) {
            flush(&mut word, &mut rewritten);
            rewritten.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut rewritten);
    let line = if rewritten.contains('\n') {
        // One line to copy: printf puts the newlines back (and $(...) drops the last ones).
        let escaped = rewritten.replace('\\', "\\\\").replace('\n', "\\n").replace('\'', "'\\''");
        format!("--config \"{option}=$(printf '%b' '{escaped}')\"")
    } else {
        format!("--config '{}'", format!("{option}={rewritten}").replace('\'', "'\\''"))
    };
    let carry = if images.is_empty() {
        "carry its images with airgap export --image REF".to_string()
    } else {
        format!(
            "carry its images with airgap export {}",
            images.iter().map(|i| format!("--image {i}")).collect::<Vec<_>>().join(" ")
        )
    };
    let target = match registry {
        Some(_) => String::new(),
        None => " (with each image at your private registry)".to_string(),
    };
    format!("{carry}, and add to {}'s juju deploy line{target}: {line}", app.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::testing::{app, charm};

    #[test]
    fn only_operator_charms_are_read_and_the_hand_written_line_is_one_shell_word() {
        let config =
            "options:\n  proxy-image: {type: string, default: 'docker.io/istio/proxyv2:1.17.3'}\n";
        let own = charm("gw", "", config);
        let settings = BTreeMap::from([(
            "proxy-image".to_string(),
            Setting {
                value: ConfigValue::String("docker.io/istio/proxyv2:1.17.3".into()),
                source: Source::Default,
            },
        )]);
        let mut problems = Problems::default();
        let found = resolve("gw", &own, &settings, (None, None), &mut problems);
        assert!(
            found.is_empty() && problems.0.is_empty(),
            "charmer's own charms declare resources"
        );

        let gw = app("gw", own);
        let value = "a: docker.io/istio/proxyv2:1.17.3\nb: it's";
        assert_eq!(
            by_hand(&gw, "custom_images", value, None),
            "carry its images with airgap export --image docker.io/istio/proxyv2:1.17.3, and add to gw's juju deploy line (with each image at your private registry): --config \"custom_images=$(printf '%b' 'a: docker.io/istio/proxyv2:1.17.3\\nb: it'\\''s')\""
        );
        let registry: Registry = "reg:5000/ckf".parse().unwrap();
        assert_eq!(
            by_hand(&gw, "tpl-image", "docker.io/istio/proxyv2:1.17.3-{{ arch }}", Some(&registry)),
            "carry its images with airgap export --image REF, and add to gw's juju deploy line: --config 'tpl-image=docker.io/istio/proxyv2:1.17.3-{{ arch }}'"
        );
    }
}
