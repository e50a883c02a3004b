//! Ownership at write time. Pre-flight checks that no object a deploy writes belongs to
//! another bundle, but two bundles deployed into one namespace at once both pass it before
//! either writes, and each bundle's lock is its own. So every bundle writes its objects as
//! its own field manager, `charmer/<bundle>`, without forcing: server-side apply then refuses
//! (409) to change a field another bundle's manager holds — the bundle label at least, whose
//! values always differ — and the deploy that comes second fails naming the objects and the
//! bundle. Conflicts with anything else are taken over as before (forced): hand edits of the
//! bundle's own objects, objects taken over with `--adopt`, and the fields earlier charmer
//! versions applied as their one manager `charmer` for the same bundle. Those legacy fields are
//! then released, so the bundle's manager alone holds them and fields a later revision drops
//! are removed.

use serde_json::Value;

use super::client::{apply_params, Cluster, FIELD_MANAGER};
use crate::contract::{ObjectId, BUNDLE_LABEL};
use crate::deploy::error::{DeployError, OwnedBy};
use crate::deploy::model::kinds::Kind;
use crate::deploy::model::targets::Target;

/// The field manager a bundle's objects are applied as.
pub fn bundle_manager(bundle: &str) -> String {
    format!("{FIELD_MANAGER}/{bundle}")
}

/// The bundle whose field manager `manager` is, if it is one.
pub(crate) fn managing_bundle(manager: &str) -> Option<&str> {
    manager.strip_prefix(FIELD_MANAGER)?.strip_prefix('/')
}

/// The field managers of a live object.
pub(crate) fn managers(live: &Value) -> impl Iterator<Item = &str> {
    live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
}

/// Another bundle that manages `live` (by its field manager, or by the bundle label next to
/// fields of the legacy manager `charmer`), as seen by `bundle`.
pub(crate) fn other_bundle<'a>(bundle: &str, live: &'a Value) -> Option<&'a str> {
    let label = live["metadata"]["labels"][BUNDLE_LABEL].as_str();
    managers(live).find_map(|m| match managing_bundle(m) {
        Some(other) if other != bundle => Some(other),
        None if m == FIELD_MANAGER => label.filter(|other| *other != bundle),
        _ => None,
    })
}

impl Cluster {
    /// Server-side applies one of `bundle`'s objects as the bundle's field manager. Fields
    /// other managers hold are taken over unless another bundle holds them
    /// ([`DeployError::OwnedByBundle`]), or `adopt` says to take those too.
    pub(crate) async fn apply_owned(
        &self,
        bundle: &str,
        namespace: &str,
        target: &Target,
        adopt: bool,
        dry_run: bool,
    ) -> Result<Value, DeployError> {
        let (kind, id, object) = (&target.kind, &target.id, &target.object);
        let manager = bundle_manager(bundle);
        let refused = match self
            .apply_with(kind, id, object, &apply_params(&manager, dry_run, false))
            .await
        {
            Ok(applied) => return self.release_legacy(kind, id, applied, dry_run).await,
            Err(DeployError::Conflict { source, .. })
                if !conflicting_managers(&source).is_empty() =>
            {
                source
            }
            Err(error) => return Err(error),
        };
        // Who holds the object now decides; the forced apply below is made on condition that
        // it is still that object (its resourceVersion), so no other bundle can slip in.
        let live = self.get(kind, id).await?.unwrap_or_default();
        let other = conflicting_managers(&refused)
            .iter()
            .find_map(|m| managing_bundle(m).filter(|b| *b != bundle).map(str::to_string))
            .or_else(|| other_bundle(bundle, &live).map(str::to_string));
        if let Some(other) = other.filter(|_| !adopt) {
            return Err(DeployError::OwnedByBundle(Box::new(OwnedBy {
                bundle: bundle.to_string(),
                manager: bundle_manager(&other),
                other,
                objects: vec![id.to_string()],
                namespace: namespace.to_string(),
                applied: 0,
                total: 0,
            })));
        }
        let mut object = object.clone();
        if let Some(version) = live["metadata"]["resourceVersion"].as_str() {
            object["metadata"]["resourceVersion"] = Value::from(version);
        }
        let applied =
            self.apply_with(kind, id, &object, &apply_params(&manager, dry_run, true)).await?;
        self.release_legacy(kind, id, applied, dry_run).await
    }

    /// Lets the legacy manager `charmer` go from an object the bundle's manager has just
    /// applied: what it held is the bundle's (the apply would have been refused otherwise).
    async fn release_legacy(
        &self,
        kind: &Kind,
        id: &ObjectId,
        applied: Value,
        dry_run: bool,
    ) -> Result<Value, DeployError> {
        if dry_run || !managers(&applied).any(|m| m == FIELD_MANAGER) {
            return Ok(applied);
        }
        self.release_fields(kind, id, FIELD_MANAGER).await
    }
}

/// The field managers a server-side apply conflict names (`conflict with "kubectl-edit" using
/// apps/v1`), in its message and its causes; empty for other 409s (an outdated
/// resourceVersion, a name taken).
fn conflicting_managers(status: &kube::core::Status) -> Vec<String> {
    let causes = status.details.iter().flat_map(|d| &d.causes).map(|c| c.message.as_str());
    let mut found = Vec::new();
    for text in std::iter::once(status.message.as_str()).chain(causes) {
        for (i, _) in text.match_indices("with \"") {
            let rest = &text[i + "with \"".len()..];
            if let Some(end) = rest.find('"') {
                let manager = rest[..end].to_string();
                if !found.contains(&manager) {
                    found.push(manager);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use serde_json::json;

    #[test]
    fn managers_of_bundles_are_named_after_them() {
        assert_eq!(bundle_manager("shop"), "charmer/shop");
        assert_eq!(managing_bundle("charmer/shop"), Some("shop"));
        assert_eq!(managing_bundle("charmer"), None);
        assert_eq!(managing_bundle("charmer-generate"), None);
        assert_eq!(managing_bundle("kubectl"), None);
    }

    #[test]
    fn conflicts_name_their_managers_other_409s_none() {
        // As kube-apiserver answers a conflicting apply.
        let status: Status = serde_json::from_value(json!({
            "status": "Failure", "reason": "Conflict", "code": 409,
            "message": "Apply failed with 2 conflicts: conflicts with \"charmer/iot\" using v1:\n- .metadata.labels.charmer.io/bundle\n- .data.setting",
            "details": {"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-edit\" using v1", "field": ".data.other"}]},
        }))
        .unwrap();
        assert_eq!(conflicting_managers(&status), ["charmer/iot", "kubectl-edit"]);
        let outdated = Status::failure("Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again", "Conflict").with_code(409);
        assert!(conflicting_managers(&outdated).is_empty());
    }

    #[test]
    fn another_bundle_is_found_by_its_manager_or_the_legacy_managers_label() {
        let live = |manager: &str, label: &str| json!({"metadata": {"labels": {BUNDLE_LABEL: label}, "managedFields": [{"manager": manager}]}});
        assert_eq!(other_bundle("shop", &live("charmer/iot", "iot")), Some("iot"));
        assert_eq!(other_bundle("shop", &live("charmer/shop", "shop")), None);
        assert_eq!(other_bundle("shop", &live("charmer", "iot")), Some("iot"));
        assert_eq!(other_bundle("shop", &live("charmer", "shop")), None, "ours, by an old charmer");
        assert_eq!(other_bundle("shop", &live("kubectl-edit", "iot")), None);
    }
}
