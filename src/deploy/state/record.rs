//! Revision records: each applied plan is kept in the namespace as a Secret
//! `charmer.<bundle>.v<N>` (Secrets, as Helm does, because rendered sets may hold secret
//! values), holding the plan and the inventory of applied objects, gzip-compressed. The
//! inventory is what prune and `remove` may delete; nothing else ever is.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::contract::ObjectId;
use crate::deploy::cluster::client::{Cluster, FIELD_MANAGER};
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::{Kind, Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;
use crate::render::kind_rank;

/// Label naming the bundle a record belongs to. Records deliberately do not carry
/// `charmer.io/bundle`: they are not part of the bundle's objects.
pub(crate) const RECORD_LABEL: &str = "charmer.io/record-of";
pub(crate) const REVISION_LABEL: &str = "charmer.io/revision";
pub(crate) const STATUS_LABEL: &str = "charmer.io/status";
/// Annotation with the time (RFC 3339, UTC) a record was last written: when its revision was
/// applied, or when it became deployed, failed or superseded.
pub(crate) const UPDATED_ANNOTATION: &str = "charmer.io/updated-at";
/// Annotation with the time (RFC 3339, UTC) the revision was applied: written when its
/// record is created and kept when its state changes.
pub(crate) const APPLIED_ANNOTATION: &str = "charmer.io/applied-at";
/// Annotation on a failed or interrupted record: why.
const REASON_ANNOTATION: &str = "charmer.io/status-reason";
const RECORD_TYPE: &str = "charmer.io/revision";
const DATA_KEY: &str = "release";
/// Records kept per bundle; older ones are deleted after a successful deploy.
const HISTORY: usize = 10;

/// The state of a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    /// Being applied (or the deploy was interrupted).
    Pending,
    /// Applied and ready: the current revision.
    Deployed,
    /// Applying or waiting failed.
    Failed,
    /// Stopped by a signal (Ctrl-C, SIGTERM) while applying or waiting.
    Interrupted,
    /// Was deployed; a later revision replaced it.
    Superseded,
}

impl std::fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Deployed => "deployed",
            RecordStatus::Failed => "failed",
            RecordStatus::Interrupted => "interrupted",
            RecordStatus::Superseded => "superseded",
        })
    }
}

impl std::str::FromStr for RecordStatus {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Ok(match text {
            "pending" => RecordStatus::Pending,
            "deployed" => RecordStatus::Deployed,
            "failed" => RecordStatus::Failed,
            "interrupted" => RecordStatus::Interrupted,
            "superseded" => RecordStatus::Superseded,
            _ => return Err(()),
        })
    }
}

/// One revision as `status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// The revision number.
    pub revision: u32,
    /// Its state.
    pub status: RecordStatus,
    /// When it was applied (RFC 3339, UTC).
    pub applied: String,
    /// When its record was last written (RFC 3339, UTC): applied, then deployed, failed or
    /// superseded.
    pub updated: String,
    /// Why it failed or was interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An inventory entry: an applied object and its application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub app: String,
    #[serde(flatten)]
    pub id: ObjectId,
}

/// A revision record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub revision: u32,
    pub status: RecordStatus,
    pub plan: DeployPlan,
    pub inventory: Vec<Entry>,
    /// Why it failed or was interrupted (kept in an annotation, outside the body).
    pub reason: Option<String>,
    /// When it was applied (RFC 3339); `None` for a record not written yet (now, then).
    pub applied: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    plan: DeployPlan,
    inventory: Vec<Entry>,
}

/// The record Secret's name.
pub(crate) fn name(bundle: &str, revision: u32) -> String {
    format!("charmer.{bundle}.v{revision}")
}

fn secret_kind(kinds: &Kinds) -> Result<Kind, DeployError> {
    match kinds.find("v1", "Secret") {
        Lookup::Served(kind) => Ok(kind),
        _ => Err(DeployError::NotServed("Secrets")),
    }
}

fn id(bundle: &str, namespace: &str, revision: u32) -> ObjectId {
    ObjectId {
        group: String::new(),
        kind: "Secret".into(),
        namespace: Some(namespace.to_string()),
        name: name(bundle, revision),
    }
}

/// Every record of `bundle` in `namespace`, oldest first.
pub(crate) async fn load(
    cluster: &Cluster,
    kinds: &Kinds,
    bundle: &str,
    namespace: &str,
) -> Result<Vec<Record>, DeployError> {
    let kind = secret_kind(kinds)?;
    let secrets = cluster.list(&kind, Some(namespace), &format!("{RECORD_LABEL}={bundle}")).await?;
    let mut records = secrets.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|r| r.revision);
    Ok(records)
}

fn decode(secret: &Value) -> Result<Record, DeployError> {
    let name = secret["metadata"]["name"].as_str().unwrap_or("?").to_string();
    let fail = |message: String| DeployError::Record { name: name.clone(), message };
    let labels = &secret["metadata"]["labels"];
    let revision = labels[REVISION_LABEL]
        .as_str()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| fail(format!("no {REVISION_LABEL} label")))?;
    let status = labels[STATUS_LABEL]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(format!("no valid {STATUS_LABEL} label")))?;
    let encoded =
        secret["data"][DATA_KEY].as_str().ok_or_else(|| fail(format!("no data.{DATA_KEY}")))?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| fail(e.to_string()))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| fail(e.to_string()))?;
    let body: Body = serde_json::from_slice(&json).map_err(|e| fail(e.to_string()))?;
    let annotations = &secret["metadata"]["annotations"];
    let reason = annotations[REASON_ANNOTATION].as_str().map(str::to_string);
    // Records written before the annotation existed: the Secret's creation is the apply.
    let applied = annotations[APPLIED_ANNOTATION]
        .as_str()
        .or(secret["metadata"]["creationTimestamp"].as_str())
        .map(str::to_string);
    Ok(Record { revision, status, plan: body.plan, inventory: body.inventory, reason, applied })
}

fn encode(record: &Record) -> Result<Value, DeployError> {
    let plan = &record.plan;
    let fail = |message: String| DeployError::Record {
        name: name(&plan.bundle, record.revision),
        message,
    };
    let json =
        serde_json::to_vec(&Body { plan: plan.clone(), inventory: record.inventory.clone() })
            .map_err(|e| fail(e.to_string()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&json).map_err(|e| fail(e.to_string()))?;
    let compressed = gz.finish().map_err(|e| fail(e.to_string()))?;
    let now = now();
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": RECORD_TYPE,
        "metadata": {
            "name": name(&plan.bundle, record.revision),
            "namespace": plan.namespace,
            "labels": {
                RECORD_LABEL: plan.bundle,
                REVISION_LABEL: record.revision.to_string(),
                STATUS_LABEL: record.status.to_string(),
                "app.kubernetes.io/managed-by": "charmer",
            },
            "annotations": {
                UPDATED_ANNOTATION: now.clone(),
                APPLIED_ANNOTATION: record.applied.clone().unwrap_or(now),
            },
        },
        "data": {DATA_KEY: base64::engine::general_purpose::STANDARD.encode(compressed)},
    });
    if let Some(reason) = &record.reason {
        secret["metadata"]["annotations"][REASON_ANNOTATION] = json!(reason);
    }
    Ok(secret)
}

/// The time now as records keep it (RFC 3339, UTC, seconds).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A record as the Secret to write, with where it goes.
fn secret_of(kinds: &Kinds, record: &Record) -> Result<(Kind, ObjectId, Value), DeployError> {
    let id = id(&record.plan.bundle, &record.plan.namespace, record.revision);
    Ok((secret_kind(kinds)?, id, encode(record)?))
}

/// Creates a new record. Records are created, never overwritten: when another operation has
/// recorded this revision number already, this fails and nothing is written.
pub(crate) async fn create(
    cluster: &Cluster,
    kinds: &Kinds,
    record: &Record,
) -> Result<(), DeployError> {
    let (kind, id, secret) = secret_of(kinds, record)?;
    match cluster.create(&kind, &id, &secret).await {
        Err(DeployError::Conflict { .. }) => Err(DeployError::Record {
            name: id.name,
            message: "another operation recorded this revision first; run again".into(),
        }),
        other => other,
    }
}

/// Updates the state of a record this operation created.
pub(crate) async fn save(
    cluster: &Cluster,
    kinds: &Kinds,
    record: &Record,
) -> Result<(), DeployError> {
    let (kind, id, secret) = secret_of(kinds, record)?;
    cluster.apply_object(&kind, &id, &secret, FIELD_MANAGER, false).await?;
    Ok(())
}

/// Deletes a record.
pub(crate) async fn delete(
    cluster: &Cluster,
    kinds: &Kinds,
    bundle: &str,
    namespace: &str,
    revision: u32,
) -> Result<(), DeployError> {
    cluster.delete(&secret_kind(kinds)?, &id(bundle, namespace, revision)).await?;
    Ok(())
}

/// After revision `current` is deployed: earlier deployed records become superseded, and
/// records beyond the history limit are deleted.
pub(crate) async fn settle(
    cluster: &Cluster,
    kinds: &Kinds,
    earlier: &[Record],
    current: u32,
) -> Result<(), DeployError> {
    let keep_from = earlier.len().saturating_sub(HISTORY - 1);
    for (i, record) in earlier.iter().enumerate().filter(|(_, r)| r.revision < current) {
        if i < keep_from {
            delete(cluster, kinds, &record.plan.bundle, &record.plan.namespace, record.revision)
                .await?;
        } else if record.status == RecordStatus::Deployed {
            save(cluster, kinds, &Record { status: RecordStatus::Superseded, ..record.clone() })
                .await?;
        }
    }
    Ok(())
}

/// The revision number the next record gets.
pub(crate) fn next_revision(records: &[Record]) -> u32 {
    records.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The objects the bundle may own now: those of the last deployed revision and of every
/// later (failed or interrupted) one, which may have been applied in part.
pub(crate) fn current_inventory(records: &[Record]) -> Vec<Entry> {
    let since =
        records.iter().rev().find(|r| r.status == RecordStatus::Deployed).map_or(0, |r| r.revision);
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for record in records.iter().filter(|r| r.revision >= since) {
        for entry in &record.inventory {
            if seen.insert(entry.id.clone()) {
                entries.push(entry.clone());
            }
        }
    }
    entries
}

/// Inventory entries with the kinds to address them by, in deletion order; entries whose
/// kind the cluster no longer serves are left out (there is nothing to delete).
pub(crate) fn with_kinds(kinds: &Kinds, mut entries: Vec<Entry>) -> Vec<(Entry, Kind)> {
    entries.sort_by_key(|e| (std::cmp::Reverse(kind_rank(&e.id.kind)), e.id.clone()));
    entries
        .into_iter()
        .filter_map(|e| kinds.preferred(&e.id.group, &e.id.kind).map(|k| (e, k)))
        .collect()
}

pub(crate) fn inventory_groups(records: &[Record]) -> BTreeSet<String> {
    records.iter().flat_map(|r| r.inventory.iter().map(|e| e.id.group.clone())).collect()
}

impl Cluster {
    /// The bundle's revision records (an error when there are none) and the kinds of the
    /// API groups `groups` picks from them.
    pub(crate) async fn records(
        &self,
        bundle: &str,
        namespace: &str,
        groups: impl Fn(&[Record]) -> BTreeSet<String>,
    ) -> Result<(Vec<Record>, Kinds), DeployError> {
        let core = self.kinds(&BTreeSet::new()).await?;
        let records = load(self, &core, bundle, namespace).await?;
        if records.is_empty() {
            return Err(DeployError::NotDeployed {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
            });
        }
        let kinds = self.kinds(&groups(&records)).await?;
        Ok((records, kinds))
    }

    /// The inventory entries of application `app` in the latest revision of `bundle`; an
    /// error naming the applications there are when `app` is not one of them.
    pub(crate) async fn app_entries(
        &self,
        bundle: &str,
        namespace: &str,
        app: &str,
    ) -> Result<Vec<Entry>, DeployError> {
        let core = self.kinds(&Default::default()).await?;
        let records = load(self, &core, bundle, namespace).await?;
        let Some(latest) = records.last() else {
            return Err(DeployError::NotDeployed {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
            });
        };
        if !latest.plan.apps.iter().any(|a| a.name == app) {
            return Err(DeployError::NoApplication {
                bundle: bundle.to_string(),
                app: app.to_string(),
                known: latest.plan.apps.iter().map(|a| a.name.clone()).collect(),
            });
        }
        Ok(latest.inventory.iter().filter(|e| e.app == app).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: u32, status: RecordStatus, names: &[&str]) -> Record {
        let plan = DeployPlan {
            bundle: "shop".into(),
            namespace: "shop".into(),
            registry: None,
            apps: vec![],
            objects: vec![],
        };
        let inventory = names
            .iter()
            .map(|n| Entry {
                app: "web".into(),
                id: ObjectId {
                    group: String::new(),
                    kind: "ConfigMap".into(),
                    namespace: Some("shop".into()),
                    name: n.to_string(),
                },
            })
            .collect();
        Record { revision, status, plan, inventory, reason: None, applied: None }
    }

    #[test]
    fn inventory_spans_the_last_deployed_revision_and_everything_after_it() {
        let records = [
            record(1, RecordStatus::Superseded, &["old"]),
            record(2, RecordStatus::Deployed, &["a", "b"]),
            record(3, RecordStatus::Failed, &["b", "c"]),
        ];
        let names: Vec<String> =
            current_inventory(&records).into_iter().map(|e| e.id.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(next_revision(&records), 4);
    }

    #[test]
    fn records_round_trip_compressed() {
        let original = record(7, RecordStatus::Pending, &["a"]);
        let secret = encode(&original).unwrap();
        assert_eq!(secret["metadata"]["name"], "charmer.shop.v7");
        assert_eq!(secret["metadata"]["labels"][STATUS_LABEL], "pending");
        let back = decode(&secret).unwrap();
        assert_eq!(
            (back.revision, back.status, back.inventory),
            (7, RecordStatus::Pending, original.inventory)
        );
    }
}
