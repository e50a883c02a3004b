//! `rollback`: the plan of an earlier revision, to be prepared and applied again as a new
//! revision.

use std::collections::BTreeSet;

use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::plan::DeployPlan;
use crate::deploy::state::record::RecordStatus;

impl Cluster {
    /// The plan of revision `revision`, or of the last good revision before the current one
    /// when `None`, with the revision number.
    pub async fn rollback_plan(
        &self,
        bundle: &str,
        namespace: &str,
        revision: Option<u32>,
    ) -> Result<(DeployPlan, u32), DeployError> {
        let (records, _) = self.records(bundle, namespace, |_| BTreeSet::new()).await?;
        let current = records
            .iter()
            .rev()
            .find(|r| r.status == RecordStatus::Deployed)
            .map_or(u32::MAX, |r| r.revision);
        let found = match revision {
            Some(n) => records.iter().find(|r| r.revision == n),
            None => records.iter().rev().find(|r| {
                r.revision < current
                    && matches!(r.status, RecordStatus::Deployed | RecordStatus::Superseded)
            }),
        };
        match (found, revision) {
            (Some(r), _) => Ok((r.plan.clone(), r.revision)),
            (None, Some(revision)) => Err(DeployError::NoRevision {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
                revision,
            }),
            (None, None) => Err(DeployError::NoEarlierRevision {
                bundle: bundle.to_string(),
                namespace: namespace.to_string(),
                revisions: records
                    .iter()
                    .map(|r| format!("{} {}", r.revision, r.status))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
