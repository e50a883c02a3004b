//! Model → Kubernetes manifests.

use serde::Serialize;

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
    pub object: serde_json::Value,
}
