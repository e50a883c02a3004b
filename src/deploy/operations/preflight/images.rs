//! Image preflight: every container image is a valid reference, in the deploy's registry
//! when it has one, and present in the registry it will be pulled from (a `HEAD` of its
//! manifest, as `images push` reaches registries); a registry that asks for a login while
//! pods have no pull secret; images moving to another registry than the deployed revision's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use crate::contract::{container_images, object_id};
use crate::deploy::model::plan::DeployPlan;
use crate::deploy::state::record::{Record, RecordStatus};
use crate::diag::Problem;
use crate::images::Reference;
use crate::registry::client::{Client, Repo};
use crate::registry::mirrors::Mirrors;
use crate::registry::RegistryError;

/// Manifest lookups at once.
const LOOKUPS: usize = 8;
/// How long one lookup may take before its registry counts as unreachable from here.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How preflight reaches registries to see that images are there: a client with the TLS
/// settings and credentials `images push` uses, and the mirror table (`--mirror`,
/// registries.conf).
#[derive(Clone)]
pub struct RegistryAccess {
    /// The client.
    pub client: Arc<Client>,
    /// Registry name → host to ask instead.
    pub mirrors: Mirrors,
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess").field("mirrors", &self.mirrors).finish_non_exhaustive()
    }
}

/// One container's image, and whether its pod names a pull secret.
struct ImageUse<'a> {
    /// `Deployment/ns/web container app`.
    subject: String,
    app: &'a str,
    image: &'a str,
    pull_secret: bool,
}

/// An image, where it was looked up, and whether it is there (`None`: not asked, its
/// registry having failed to answer for another image).
type Lookup<'a> = (&'a Reference, Repo, Option<Result<bool, RegistryError>>);

/// What looking images up in their registries found.
#[derive(Default)]
pub(super) struct Presence {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

/// Looks every image of the plan up in the registry it is pulled from, in parallel: a
/// problem for each image the registry does not have; a warning for each registry that
/// could not be asked (unreachable from here, a login charmer lacks), and for each
/// application whose pods have no pull secret while their registry asks for a login.
pub(super) async fn check_presence(plan: &DeployPlan, access: &RegistryAccess) -> Presence {
    // Images that do not parse are `check`'s problems.
    let uses: Vec<(ImageUse<'_>, Reference)> = image_uses(plan)
        .into_iter()
        .filter_map(|u| {
            let reference = u.image.parse::<Reference>().ok()?;
            Some((u, reference))
        })
        .collect();
    let references: BTreeSet<&Reference> = uses.iter().map(|(_, r)| r).collect();
    let mut not_checked: BTreeMap<String, String> = BTreeMap::new();
    let mut lookups = Vec::new();
    for reference in references {
        match crate::registry::pull::source_repo(reference, &access.mirrors) {
            Ok(repo) => lookups.push((reference, repo)),
            Err(problem) => {
                let why = match &problem.hint {
                    Some(hint) => format!("{} ({hint})", problem.message),
                    None => problem.message,
                };
                not_checked.entry(reference.registry.clone()).or_insert(why);
            }
        }
    }
    // Once a registry fails to answer, its other images are not asked (each would wait).
    let dead: Mutex<BTreeSet<String>> = Mutex::default();
    let answers: Vec<Lookup<'_>> = stream::iter(lookups)
        .map(|(reference, repo)| {
            let dead = &dead;
            async move {
                if dead.lock().unwrap_or_else(|e| e.into_inner()).contains(&repo.host) {
                    return (reference, repo, None);
                }
                let wanted = reference
                    .digest
                    .clone()
                    .unwrap_or_else(|| reference.tag_or_latest().to_string());
                let client = &access.client;
                let lookup = client.retrying(|| client.manifest_digest(&repo, &wanted));
                let answer = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(answer) => answer.map(|digest| digest.is_some()),
                    Err(_) => Err(RegistryError::Transport {
                        what: format!("HEAD manifest {repo}:{wanted}"),
                        message: format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()),
                    }),
                };
                if matches!(
                    answer,
                    Err(RegistryError::Unreachable { .. } | RegistryError::Transport { .. })
                ) {
                    dead.lock().unwrap_or_else(|e| e.into_inner()).insert(repo.host.clone());
                }
                (reference, repo, Some(answer))
            }
        })
        .buffer_unordered(LOOKUPS)
        .collect()
        .await;
    let mut missing: BTreeMap<&Reference, String> = BTreeMap::new();
    let mut login: BTreeSet<String> = BTreeSet::new();
    for (reference, repo, answer) in answers {
        if access.client.asked_for_login(&repo.host) {
            login.insert(reference.registry.clone());
        }
        match answer {
            Some(Ok(true)) | None => {}
            Some(Ok(false)) => {
                missing.insert(reference, repo.host);
            }
            Some(Err(error)) => {
                if let RegistryError::Auth { message, .. } = &error {
                    if message.ends_with("asks for a login") {
                        login.insert(reference.registry.clone());
                    }
                }
                let why = match &error {
                    RegistryError::Unreachable { .. } | RegistryError::Transport { .. } => {
                        format!("it cannot be reached from here ({error})")
                    }
                    _ => error.to_string(),
                };
                not_checked.entry(reference.registry.clone()).or_insert(why);
            }
        }
    }
    let mut presence = Presence::default();
    for (u, reference) in &uses {
        if let Some(host) = missing.get(reference) {
            let via = if *host == reference.registry {
                String::new()
            } else {
                format!(" (asked at {host})")
            };
            presence.problems.push(
                Problem::new("preflight", &u.subject, format!("image {reference} is not in its registry {}{via}: the pods would wait in ImagePullBackOff", reference.registry))
                    .hint("push it first (`charmer images push ARCHIVE --registry REGISTRY`, or `charmer airgap import`), or deploy with --skip-image-check when the cluster pulls from elsewhere"),
            );
        }
    }
    for (registry, why) in not_checked {
        presence.warnings.push(format!("images in registry {registry} not checked: {why}"));
    }
    let mut warned = BTreeSet::new();
    for (u, reference) in uses.iter().filter(|(u, r)| !u.pull_secret && login.contains(&r.registry))
    {
        if warned.insert((u.app, &reference.registry)) {
            presence.warnings.push(format!(
                "registry {} asks for a login, but the pods of application {} name no image pull secret ({}): the cluster's pulls are refused unless its nodes hold credentials for it; set the application's image_pull_secret option (a Secret made with `kubectl create secret docker-registry`)",
                reference.registry, u.app, u.subject
            ));
        }
    }
    presence
}

/// Every container of the plan with its image (`Deployment/ns/web container app`).
fn image_uses(plan: &DeployPlan) -> Vec<ImageUse<'_>> {
    let mut uses = Vec::new();
    for o in &plan.objects {
        let subject = object_id(&o.object, Some(&plan.namespace))
            .map(|id| id.to_string())
            .unwrap_or_default();
        let mut names = BTreeSet::new();
        pull_secrets(&o.object, &mut names);
        // A container without an image is render's lint's to report.
        for (container, image) in
            container_images(&o.object).into_iter().filter(|(_, i)| !i.is_empty())
        {
            uses.push(ImageUse {
                subject: format!("{subject} container {container}"),
                app: &o.app,
                image,
                pull_secret: !names.is_empty(),
            });
        }
    }
    uses
}

/// Images of an application moving to other registry hosts than the last deployed revision
/// used (a re-deploy that forgot `--registry` switches every image back to its public
/// source): a problem each, or with `allow`, a note each.
pub(super) fn registry_changes(
    plan: &DeployPlan,
    records: &[Record],
    allow: bool,
) -> (Vec<Problem>, Vec<String>) {
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let Some(previous) = records.iter().rev().find(|r| r.status == RecordStatus::Deployed) else {
        return (problems, notes);
    };
    let hosts = |images: &[String]| -> BTreeSet<String> {
        images.iter().filter_map(|i| i.parse::<Reference>().ok()).map(|r| r.registry).collect()
    };
    for app in &plan.apps {
        let Some(before) = previous.plan.apps.iter().find(|a| a.name == app.name) else { continue };
        let (old, new) = (hosts(&before.images), hosts(&app.images));
        let moved: Vec<&String> = new.difference(&old).collect();
        if old.is_empty() || moved.is_empty() {
            continue;
        }
        let join =
            |set: Vec<&String>| set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let what = format!(
            "images move from registry {} (revision {}) to {}",
            join(old.iter().collect()),
            previous.revision,
            join(moved)
        );
        if allow {
            notes.push(format!("application {}: {what} (--allow-registry-change)", app.name));
            continue;
        }
        let again = match &previous.plan.registry {
            Some(registry) => {
                format!("deploy with --registry {registry} as revision {} was", previous.revision)
            }
            None => format!("deploy with the image settings revision {} used", previous.revision),
        };
        problems.push(Problem::new("preflight", format!("application {}", app.name), what).hint(
            format!("{again}, or pass --allow-registry-change to move the images on purpose"),
        ));
    }
    (problems, notes)
}

pub(super) fn check(plan: &DeployPlan) -> Vec<Problem> {
    let mut problems = Vec::new();
    for u in image_uses(plan) {
        match u.image.parse::<Reference>() {
            Err(e) => problems.push(Problem::new("preflight", u.subject, e.to_string())),
            Ok(reference) => {
                if let Some(registry) = plan.registry.as_ref().filter(|r| !reference.is_in(r)) {
                    problems.push(
                        Problem::new("preflight", u.subject, format!("image {reference} is not in the registry {registry}"))
                            .hint("render with --registry so images are relocated, and push them with `charmer images push`"),
                    );
                }
            }
        }
    }
    problems
}

/// Adds the names in every `imagePullSecrets` list of `object` (pod specs at any depth).
pub(super) fn pull_secrets<'a>(object: &'a Value, names: &mut BTreeSet<&'a str>) {
    match object {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "imagePullSecrets" {
                    let listed = value.as_array().into_iter().flatten();
                    names.extend(listed.filter_map(|s| s["name"].as_str()));
                } else {
                    pull_secrets(value, names);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| pull_secrets(i, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::operations::preflight::testing::plan;
    use serde_json::json;

    #[test]
    fn images_outside_the_registry_are_named_with_their_container() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"initContainers": [{"name": "init", "image": "registry.local:5000/busybox:1"}],
                                             "containers": [{"name": "app", "image": "nginx:1.25"}]}}}});
        let problems = check(&plan(vec![deployment]));
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.contains("Deployment/ns/web container app"), "{text}");
        assert!(
            text.contains(
                "docker.io/library/nginx:1.25 is not in the registry registry.local:5000"
            ),
            "{text}"
        );
    }
}
