//! `list`: the bundles deployed in a namespace or in the whole cluster, read from the labels
//! and annotations of their revision records (the records' bodies are not decoded).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::record::{RecordStatus, RECORD_LABEL, REVISION_LABEL, STATUS_LABEL, UPDATED_ANNOTATION};
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::Lookup;

/// One revision record as its labels describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSummary {
    /// The bundle.
    pub bundle: String,
    /// The namespace.
    pub namespace: String,
    /// The revision number.
    pub revision: u32,
    /// Its state.
    pub status: RecordStatus,
    /// When the record was last written (RFC 3339, UTC): applied, deployed, failed or
    /// superseded.
    pub updated: String,
}

impl Cluster {
    /// The latest revision of every deployed bundle, in `namespace` or (`None`) in every
    /// namespace, sorted by namespace and bundle.
    pub async fn list_bundles(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordSummary>, DeployError> {
        let mut latest: BTreeMap<(String, String), RecordSummary> = BTreeMap::new();
        for summary in self.record_summaries(namespace, RECORD_LABEL).await? {
            let key = (summary.namespace.clone(), summary.bundle.clone());
            if latest.get(&key).is_none_or(|l| l.revision < summary.revision) {
                latest.insert(key, summary);
            }
        }
        Ok(latest.into_values().collect())
    }

    /// The records matching `selector` (a selector on [`RECORD_LABEL`]), oldest first within
    /// each bundle. Secrets with unreadable labels are not records and are skipped.
    pub(crate) async fn record_summaries(
        &self,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<RecordSummary>, DeployError> {
        let kinds = self.kinds(&Default::default()).await?;
        let Lookup::Served(secrets) = kinds.find("v1", "Secret") else {
            return Err(DeployError::NotServed("Secrets"));
        };
        let mut summaries: Vec<RecordSummary> =
            self.list(&secrets, namespace, selector).await?.iter().filter_map(summary).collect();
        summaries.sort_by(|a, b| {
            (&a.namespace, &a.bundle, a.revision).cmp(&(&b.namespace, &b.bundle, b.revision))
        });
        Ok(summaries)
    }
}

fn summary(secret: &Value) -> Option<RecordSummary> {
    let meta = &secret["metadata"];
    let labels = &meta["labels"];
    let updated = meta["annotations"][UPDATED_ANNOTATION]
        .as_str()
        .or(meta["creationTimestamp"].as_str())
        .unwrap_or_default();
    Some(RecordSummary {
        bundle: labels[RECORD_LABEL].as_str()?.to_string(),
        namespace: meta["namespace"].as_str()?.to_string(),
        revision: labels[REVISION_LABEL].as_str()?.parse().ok()?,
        status: labels[STATUS_LABEL].as_str()?.parse().ok()?,
        updated: updated.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_summary_comes_from_labels_and_the_update_time_falls_back_to_creation() {
        let secret = json!({"metadata": {"namespace": "shop", "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {RECORD_LABEL: "shop", REVISION_LABEL: "3", STATUS_LABEL: "failed"}}});
        let s = summary(&secret).unwrap();
        assert_eq!(
            (s.bundle.as_str(), s.revision, s.status, s.updated.as_str()),
            ("shop", 3, RecordStatus::Failed, "2024-01-01T00:00:00Z")
        );
        let mut bad = secret.clone();
        bad["metadata"]["labels"][STATUS_LABEL] = json!("exploded");
        assert_eq!(summary(&bad), None);
    }
}
