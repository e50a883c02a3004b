//! Model → Kubernetes manifests: each application's templates rendered with the context
//! documented in `docs/templates.md`, standard labels and namespace added, checked by the
//! air-gap lint, sorted into a deterministic order.

mod lint;
mod netpol;
mod validate;
mod values;

pub use netpol::summary as network_policy_summary;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::contract::{generated_keys, is_cluster_scoped, GENERATE_ANNOTATION};
use crate::diag::{Problem, Problems};
use crate::resolve::context::{standard_labels, template_context};
use crate::resolve::{Application, Model};
use crate::template::TemplateSet;

/// Errors of rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template or the objects it produced are invalid; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] Problems),
}

/// The rendered objects of a model, in a stable order.
#[derive(Debug, Clone, Serialize)]
pub struct Manifests {
    /// The bundle name (labelled on every object as `charmer.io/bundle`).
    pub bundle: String,
    /// The namespace namespaced objects go into.
    pub namespace: String,
    /// Every object, sorted by application, then kind order, then name.
    pub objects: Vec<RenderedObject>,
}

/// One rendered Kubernetes object and the application it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedObject {
    /// The application that rendered it.
    pub app: String,
    /// The template it came from (`templates/deployment.yaml`).
    pub template: String,
    /// The full object (apiVersion, kind, metadata, ...).
    pub object: Value,
}

impl RenderedObject {
    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
}

impl Manifests {
    /// One multi-document YAML stream per application, in application order, each made only
    /// when asked for (objects are sorted by application: each is one run of them).
    pub fn by_app(&self) -> impl Iterator<Item = (&str, String)> + '_ {
        self.objects
            .chunk_by(|a, b| a.app == b.app)
            .map(|objects| (objects[0].app.as_str(), documents(objects.iter())))
    }
}

fn documents<'a>(objects: impl Iterator<Item = &'a RenderedObject>) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str(&format!("---\n# Source: {}/{}\n", o.app, o.template));
        // A serde_json::Value always serializes to YAML.
        out.push_str(&serde_yaml::to_string(&o.object).unwrap_or_default());
    }
    out
}

/// Renders every application of the model. Operator charms are refused, all in one line:
/// Juju runs them, from the script the `juju` stage writes.
pub fn render(model: &Model) -> Result<Manifests, RenderError> {
    let mut problems = Problems::default();
    let operators: Vec<String> = model
        .applications
        .values()
        .filter(|a| a.charm.kind() == crate::charm::Kind::Operator)
        .map(|a| format!("{} ({})", a.name, a.charm.name()))
        .collect();
    if !operators.is_empty() {
        return Err(Problems::from(
            Problem::new(model.bundle_file.display().to_string(), "applications", format!("{} run Juju operator charms (charm code, no templates/), which charmer cannot render or deploy: {}", operators.len(), operators.join(", ")))
                .hint("deploy them with Juju: airgap import writes deploy-juju.sh, or run charmer juju-script"),
        )
        .into());
    }
    // Each distinct charm's templates are compiled once, however many applications use it,
    // and dropped once they are rendered and validated: a bundle of 500 charms never holds 500
    // compiled template sets at once (scripts/bench-render.py measures the peak).
    let mut groups: BTreeMap<(String, String), Vec<&Application>> = BTreeMap::new();
    for app in model.applications.values() {
        groups.entry(set_key(app)).or_default().push(app);
    }
    let groups: Vec<Vec<&Application>> = groups.into_values().collect();
    let rendered = crate::parallel::map(&groups, |apps| {
        let set = match apps.first().map(|app| TemplateSet::for_charm(&app.charm)) {
            Some(Ok(set)) => set,
            Some(Err(p)) => return vec![(Vec::new(), p)],
            None => return Vec::new(),
        };
        apps.iter().map(|app| render_app(model, app, &set)).collect::<Vec<_>>()
    });
    let rendered = rendered.into_iter().flatten();
    let mut objects = Vec::new();
    for (app_objects, app_problems) in rendered {
        objects.extend(app_objects);
        problems.extend(app_problems);
    }
    if problems.is_empty() {
        let policies = netpol::policies(model, &objects);
        objects.extend(policies);
    }
    check_unique(&objects, &mut problems);
    lint::check(model, &objects, &mut problems);
    values::check(model, &objects, &mut problems);
    objects.sort_by(|a, b| {
        (&a.app, kind_rank(a.kind()), a.kind(), a.name()).cmp(&(
            &b.app,
            kind_rank(b.kind()),
            b.kind(),
            b.name(),
        ))
    });
    problems
        .into_result(Manifests {
            bundle: model.name.clone(),
            namespace: model.namespace.clone(),
            objects,
        })
        .map_err(RenderError::from)
}

/// One application's objects, rendered with its charm's compiled templates and validated.
fn render_app(
    model: &Model,
    app: &Application,
    set: &TemplateSet,
) -> (Vec<RenderedObject>, Problems) {
    let mut problems = Problems::default();
    let mut objects = Vec::new();
    let ctx = template_context(model, app, true);
    let mut budget = crate::template::MAX_RENDERED_BYTES;
    for name in &set.documents {
        match set.render(name, &ctx, &mut budget) {
            Ok(text) => objects.extend(parse_documents(model, app, name, &text, &mut problems)),
            Err(p) => problems
                .push(Problem { key: join_key(&format!("application {}", app.name), &p.key), ..p }),
        }
    }
    validate::check(app, &objects, &mut problems);
    (objects, problems)
}

/// Applications running the same charm (same name, same folder or archive) share templates.
fn set_key(app: &Application) -> (String, String) {
    (app.charm.name().to_string(), app.charm.origin.path().display().to_string())
}

fn join_key(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}: {b}")
    }
}

/// Splits a rendered template into objects, skipping empty documents, and adds the standard
/// labels and namespace.
fn parse_documents(
    model: &Model,
    app: &Application,
    template: &str,
    text: &str,
    problems: &mut Problems,
) -> Vec<RenderedObject> {
    use serde::Deserialize;
    let file = format!("{}/{template}", app.charm.origin.path().display());
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let key = format!("application {}: document {}", app.name, index + 1);
        // Through serde_yaml's own Value first: its mappings refuse a key given twice, which
        // serde_json's would silently resolve to the last one (two `image:` lines).
        let value = match serde_yaml::Value::deserialize(document)
            .and_then(|v| serde_json::to_value(v).map_err(serde::de::Error::custom))
        {
            Ok(Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                problems.push(
                    Problem::new(&file, key, format!("rendered invalid YAML: {e}")).hint(
                        "render with `charmer render` and look at the output around that line",
                    ),
                );
                continue;
            }
        };
        match finish_object(model, app, value) {
            Ok(object) => objects.push(RenderedObject {
                app: app.name.clone(),
                template: template.to_string(),
                object,
            }),
            Err(message) => problems.push(Problem::new(&file, key, message)),
        }
    }
    objects
}

fn finish_object(model: &Model, app: &Application, mut value: Value) -> Result<Value, String> {
    let Some(object) = value.as_object_mut() else {
        return Err("a document must be a Kubernetes object (a map)".to_string());
    };
    for field in ["apiVersion", "kind"] {
        if !object.get(field).is_some_and(Value::is_string) {
            return Err(format!("the object has no {field}"));
        }
    }
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let metadata = object.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(format!("{kind}: metadata must be a map"));
    };
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(format!("{kind} has no metadata.name"));
    }
    if is_cluster_scoped(&kind) {
        metadata.remove("namespace");
    } else {
        match metadata.get("namespace").and_then(Value::as_str) {
            None => {
                metadata.insert("namespace".into(), Value::String(model.namespace.clone()));
            }
            Some(ns) if ns == model.namespace => {}
            Some(ns) => {
                return Err(format!(
                    "{kind} {name} is in namespace {ns:?}, outside the bundle's namespace {:?}",
                    model.namespace
                ))
            }
        }
    }
    let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
    let Some(labels) = labels.as_object_mut() else {
        return Err(format!("{kind} {name}: metadata.labels must be a map"));
    };
    for (k, v) in standard_labels(model, app) {
        labels.insert(k, Value::String(v));
    }
    if kind == "Secret" {
        check_generated_keys(&value, &name)?;
    }
    Ok(value)
}

/// A Secret whose keys deploy generates must not carry them: they would be overwritten (and
/// rotated) on every apply.
fn check_generated_keys(object: &Value, name: &str) -> Result<(), String> {
    for key in generated_keys(object) {
        for field in ["data", "stringData"] {
            if object.get(field).and_then(|d| d.get(&key)).is_some() {
                return Err(format!("Secret {name}: {field}.{key} is listed in {GENERATE_ANNOTATION}; leave it out, deploy generates it once"));
            }
        }
    }
    Ok(())
}

fn check_unique(objects: &[RenderedObject], problems: &mut Problems) {
    let mut seen: BTreeMap<(String, String, String), &RenderedObject> = BTreeMap::new();
    for o in objects {
        let group = o.api_version().rsplit_once('/').map(|(g, _)| g).unwrap_or("").to_string();
        let ns = o.object["metadata"]["namespace"].as_str().unwrap_or_default();
        let key = (format!("{group}/{}", o.kind()), ns.to_string(), o.name().to_string());
        if let Some(first) = seen.insert(key, o) {
            problems.push(
                Problem::new(
                    o.template.clone(),
                    format!("application {}", o.app),
                    format!(
                        "{} {} is also rendered by application {} ({})",
                        o.kind(),
                        o.name(),
                        first.app,
                        first.template
                    ),
                )
                .hint("name objects after the application: {{ app }}-..."),
            );
        }
    }
}

/// Install order of kinds, like Helm's: what others depend on first.
pub fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Namespace",
        "CustomResourceDefinition",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "PodDisruptionBudget",
        "DaemonSet",
        "Deployment",
        "StatefulSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}
