//! Discovery: the server's version and the kinds it serves.

use std::collections::BTreeSet;

use kube::discovery::Discovery;

use super::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::Kinds;
use crate::deploy::model::versions::KubeVersion;

impl Cluster {
    /// The cluster's Kubernetes version.
    pub async fn version(&self) -> Result<KubeVersion, DeployError> {
        let info =
            self.retried("get", &"the server version", || self.client.apiserver_version()).await?;
        format!("{}.{}", info.major, info.minor).parse().map_err(DeployError::ServerVersion)
    }

    /// Discovers the kinds of the given API groups (the core group is always included).
    pub(crate) async fn kinds(&self, groups: &BTreeSet<String>) -> Result<Kinds, DeployError> {
        let mut wanted: Vec<&str> = groups.iter().map(String::as_str).collect();
        wanted.push("");
        let discovery = self
            .retried("discover", &"API groups", || {
                Discovery::new(self.client.clone()).filter(&wanted).run()
            })
            .await?;
        Ok(Kinds { discovery })
    }
}
