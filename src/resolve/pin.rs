//! Images pinned by digest: `--pin-digests` asks each image's source registry which manifest
//! its tag points to now and records that digest in the model (so `bundle.lock` and the
//! rendered manifests name `name:tag@sha256:...` from the first render on, as kbld does), and
//! `--require-digests` refuses a model that would run an image by tag alone.
//!
//! Pinning lives here rather than in the resolver proper because it is the one part of
//! resolving that asks registries: it runs after [`super::resolve`], on the finished model,
//! only when asked, and only on the connected side.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};

use super::Model;
use crate::diag::{Problem, Problems};
use crate::images::config::{label, Shape};
use crate::images::Reference;
use crate::registry::client::Client;
use crate::registry::manifest::Digest;
use crate::registry::RegistryError;

/// How to reach the source registries.
#[derive(Debug, Clone, Default)]
pub struct PinOptions {
    /// Registry name → host to ask instead (`--mirror NAME=HOST`); `docker.io` needs one.
    pub mirrors: BTreeMap<String, String>,
    /// Lookups at once.
    pub jobs: usize,
}

/// Who runs an image: (application, `resources.NAME` or `options.OPTION[PART]`).
type Users = Vec<(String, String)>;

/// One lookup's answer: the image, who runs it, and its digest (`None`: no such tag).
type Answer<'a> = (&'a Reference, &'a Users, Result<Option<Digest>, RegistryError>);

/// Pins every image of `model` whose source has no digest yet: asks its registry (or its
/// mirror) for the digest its tag points to and adds it to the source and, unless the target
/// already names one (from an image map), to the target. Images pinned already are not asked.
/// Every failed lookup is a problem naming application, resource, image and cause, all
/// reported together; on any failure the model is left unchanged. Returns how many distinct
/// images were pinned.
pub async fn pin_digests(
    model: &mut Model,
    client: &Client,
    options: &PinOptions,
) -> Result<usize, Problems> {
    let mut wanted: BTreeMap<Reference, Users> = BTreeMap::new();
    for app in model.applications.values() {
        for (need, image) in app_images(app) {
            if image.source.digest.is_none() {
                wanted.entry(image.source.clone()).or_default().push((app.name.clone(), need));
            }
        }
    }
    let file = model.bundle_file.display().to_string();
    let mut problems = Problems::default();
    let report = |problems: &mut Problems, users: &Users, source: &Reference, why: &str| {
        for (app, need) in users {
            problems.push(
                Problem::new(
                    &file,
                    format!("applications.{app}.{need}"),
                    format!("cannot pin {source} by digest: {why}"),
                )
                .hint(format!(
                    "make the registry reachable (--mirror, --ca-file, --insecure-http), or pin it yourself: {source}@sha256:... in the charm's upstream-source or the bundle's resources:"
                )),
            );
        }
    };
    let mut lookups = Vec::new();
    for (source, users) in &wanted {
        match crate::registry::pull::source_repo(source, &options.mirrors) {
            Ok(repo) => lookups.push((source, users, repo)),
            Err(problem) => {
                let why = match &problem.hint {
                    Some(hint) => format!("{} ({hint})", problem.message),
                    None => problem.message,
                };
                report(&mut problems, users, source, &why);
            }
        }
    }
    let answers: Vec<Answer> =
        stream::iter(lookups.into_iter().map(|(source, users, repo)| async move {
            let tag = source.tag_or_latest();
            let answer = client.retrying(|| client.tag_digest(&repo, tag)).await;
            (source, users, answer)
        }))
        .buffered(options.jobs.max(1))
        .collect()
        .await;
    let mut digests: BTreeMap<&Reference, Digest> = BTreeMap::new();
    for (source, users, answer) in answers {
        match answer {
            Ok(Some(digest)) => {
                digests.insert(source, digest);
            }
            Ok(None) => report(
                &mut problems,
                users,
                source,
                &format!(
                    "the registry has no tag {:?} in {}",
                    source.tag_or_latest(),
                    source.repository
                ),
            ),
            Err(e) => report(&mut problems, users, source, &e.to_string()),
        }
    }
    // By application and resource, however the lookups finished.
    problems.0.sort_by(|a, b| a.key.cmp(&b.key));
    problems.into_result(())?;
    for app in model.applications.values_mut() {
        let options = app.config_images.values_mut().flat_map(|c| c.images.values_mut());
        for image in app.images.values_mut().chain(options) {
            if let Some(digest) = digests.get(&image.source) {
                let digest = digest.to_string();
                if image.target.digest.is_none() {
                    image.target.digest = Some(digest.clone());
                }
                image.source.digest = Some(digest);
            }
        }
    }
    Ok(digests.len())
}

/// `--require-digests`: every image the model runs (its target) must be pinned by digest;
/// one problem per application resource that is not.
pub fn require_digests(model: &Model) -> Result<(), Problems> {
    let file = model.bundle_file.display().to_string();
    let mut problems = Problems::default();
    for app in model.applications.values() {
        // Istio's hub + tag form names images by tag whatever the lock pins.
        let mut by_tag = Vec::new();
        for (option, found) in &app.config_images {
            if let Shape::IstioHub { combined } = &found.found.shape {
                by_tag.extend(combined.iter().map(|part| (option, part)));
            }
        }
        let by_tag_needs: Vec<String> =
            by_tag.iter().map(|(o, p)| format!("options.{}", label(o, p))).collect();
        for (need, image) in app_images(app) {
            if image.target.digest.is_none() && !by_tag_needs.contains(&need) {
                problems.push(
                    Problem::new(
                        &file,
                        format!("applications.{}.{need}", app.name),
                        format!("image {} is not pinned by digest (--require-digests)", image.target),
                    )
                    .hint(format!(
                        "render with --pin-digests, or write {}@sha256:... in the charm's upstream-source or the bundle's resources: or options:",
                        image.source
                    )),
                );
            }
        }
        for (option, part) in by_tag {
            problems.push(
                Problem::new(&file, format!("applications.{}.options.{}", app.name, label(option, part)), "runs by tag: the option combines global-hub and global-tag, which cannot name a digest (--require-digests)")
                    .hint(format!("set {part} to a whole reference with its digest (Istio takes a value with a / whole), or leave --require-digests off")),
            );
        }
    }
    problems.into_result(())
}

/// Every image of an application with what names it: `resources.NAME` or
/// `options.OPTION[PART]`.
fn app_images(app: &super::Application) -> impl Iterator<Item = (String, &super::Image)> {
    let resources = app.images.iter().map(|(name, image)| (format!("resources.{name}"), image));
    let options = app.config_images.iter().flat_map(|(option, found)| {
        found
            .images
            .iter()
            .map(move |(part, image)| (format!("options.{}", label(option, part)), image))
    });
    resources.chain(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::testing::{app, charm, model};
    use crate::resolve::Image;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn with_image(target: &str) -> Model {
        let mut backend = app("backend", charm("backend", "", ""));
        let source: Reference = "upstream.example/shop/backend:1.0".parse().unwrap();
        backend.images.insert("image".into(), Image { source, target: target.parse().unwrap() });
        model(vec![backend], None)
    }

    #[test]
    fn an_image_by_tag_is_refused_naming_application_resource_and_fix() {
        let problems = require_digests(&with_image("registry.example:5000/shop/backend:1.0"))
            .unwrap_err()
            .to_string();
        assert!(problems.contains("applications.backend.resources.image"), "{problems}");
        assert!(
            problems
                .contains("image registry.example:5000/shop/backend:1.0 is not pinned by digest"),
            "{problems}"
        );
        assert!(problems.contains("--pin-digests"), "{problems}");
        assert!(problems.contains("upstream.example/shop/backend:1.0@sha256:..."), "{problems}");
    }

    #[test]
    fn an_image_pinned_by_digest_passes() {
        let target = format!("registry.example:5000/shop/backend:1.0@{DIGEST}");
        require_digests(&with_image(&target)).unwrap();
    }

    #[tokio::test]
    async fn images_pinned_already_are_not_asked() {
        let target = format!("upstream.example/shop/backend:1.0@{DIGEST}");
        let mut m = with_image(&target);
        for image in m.applications.values_mut().flat_map(|a| a.images.values_mut()) {
            image.source = image.target.clone();
        }
        // A client that could reach nothing: the lookup must not happen at all.
        let client = Client::new(Default::default()).unwrap();
        let pinned = pin_digests(&mut m, &client, &PinOptions::default()).await.unwrap();
        assert_eq!(pinned, 0);
    }

    #[tokio::test]
    async fn docker_io_without_a_mirror_is_a_problem_per_user_and_nothing_changes() {
        let mut m = with_image("docker.io/library/nginx:1.27");
        for image in m.applications.values_mut().flat_map(|a| a.images.values_mut()) {
            image.source = image.target.clone();
        }
        let before = m.applications["backend"].images.clone();
        let client = Client::new(Default::default()).unwrap();
        let problems =
            pin_digests(&mut m, &client, &PinOptions::default()).await.unwrap_err().to_string();
        assert!(problems.contains("applications.backend.resources.image"), "{problems}");
        assert!(
            problems.contains("cannot pin docker.io/library/nginx:1.27 by digest"),
            "{problems}"
        );
        assert!(problems.contains("--mirror docker.io=HOST"), "{problems}");
        assert_eq!(m.applications["backend"].images, before);
    }
}
