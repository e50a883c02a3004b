//! The template context of one application (documented in `docs/templates.md`), and the
//! relation data a provider publishes, rendered with that context. Both live here, in the
//! resolver, because relation data is part of the model; the renderer only reads the context.

use std::collections::BTreeMap;

use minijinja::Value;
use serde::Serialize;

use super::{Application, Model, RelationData};
use crate::contract;
use crate::diag::Problems;

#[derive(Serialize)]
struct Context<'a> {
    app: &'a str,
    bundle: &'a str,
    namespace: &'a str,
    charm: CharmInfo<'a>,
    scale: u32,
    trust: bool,
    config: BTreeMap<&'a str, serde_yaml::Value>,
    images: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relations: Option<BTreeMap<&'a str, &'a [RelationData]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relation: Option<BTreeMap<&'a str, &'a BTreeMap<String, String>>>,
    labels: BTreeMap<String, String>,
    selector_labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct CharmInfo<'a> {
    name: &'a str,
    version: String,
}

/// The standard labels of an application's objects (see docs/architecture.md).
pub fn standard_labels(model: &Model, app: &Application) -> BTreeMap<String, String> {
    let version = app.charm.version_label();
    contract::standard_labels(&model.name, app.charm.name(), &version, &app.name)
}

/// The context an application's templates render with; `with_relations` is false for a
/// provider's `publishes:` values, which must not depend on what others publish.
pub fn template_context(model: &Model, app: &Application, with_relations: bool) -> Value {
    let ctx = Context {
        app: &app.name,
        bundle: &model.name,
        namespace: &model.namespace,
        charm: CharmInfo { name: app.charm.name(), version: app.charm.version_label() },
        scale: app.scale,
        trust: app.trust,
        config: app.config.iter().map(|(k, s)| (k.as_str(), s.value.to_yaml())).collect(),
        images: app.images.iter().map(|(k, i)| (k.as_str(), i.target.to_string())).collect(),
        relations: with_relations
            .then(|| app.relation_data.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect()),
        relation: with_relations.then(|| {
            app.relation_data
                .iter()
                .filter_map(|(k, v)| v.first().map(|d| (k.as_str(), &d.data)))
                .collect()
        }),
        labels: standard_labels(model, app),
        selector_labels: contract::selector_labels(app.charm.name(), &app.name),
    };
    Value::from_serialize(&ctx)
}

/// Renders a provider endpoint's `publishes:` values with the provider's own context.
pub fn relation_data(
    model: &Model,
    app: &Application,
    endpoint: &str,
    publishes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Problems> {
    let ctx = template_context(model, app, false);
    let file = format!("{}/metadata.yaml", app.charm.origin.path().display());
    let mut problems = Problems::default();
    let mut data = BTreeMap::new();
    for (key, source) in publishes {
        match crate::template::render_str(
            &file,
            &format!("provides.{endpoint}.publishes.{key}"),
            source,
            &ctx,
        ) {
            Ok(value) => {
                data.insert(key.clone(), value);
            }
            Err(p) => problems.push(p),
        }
    }
    problems.into_result(data)
}
