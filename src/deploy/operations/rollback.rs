//! `rollback`: the plan of an earlier revision, to be prepared and applied again as a new
//! revision.

use std::collections::BTreeSet;

use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::plan::DeployPlan;
use crate::deploy::state::record::RecordStatus;

impl Cluster {
    /// The plan of revision `revision`, or when `None` of the last revision that deployed
    /// successfully (deployed or superseded) and is not what the cluster runs now (the
    /// latest revision's plan, whether that one succeeded or not; as `helm rollback`
    /// picks), with the revision number.
    pub async fn rollback_plan(
        &self,
        bundle: &str,
        namespace: &str,
        revision: Option<u32>,
    ) -> Result<(DeployPlan, u32), DeployError> {
        let (records, _) = self.records(bundle, namespace, |_| BTreeSet::new()).await?;
        let running = records.last().map(|r| &r.plan);
        let found = match revision {
            Some(n) => records.iter().find(|r| r.revision == n),
            None => records.iter().rev().find(|r| {
                Some(&r.plan) != running
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
