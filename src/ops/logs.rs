//! `logs`: an application's container logs, line by line into a sink the caller gives.

use super::Target;
use crate::deploy::{Cluster, LogOptions, LogSink};
use crate::Error;

/// What a `logs` run read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    /// The containers whose logs were read (0: the application has no pods).
    pub containers: usize,
}

/// `logs`: the logs of application `app`'s pods, each line handed to `sink` (which stops
/// the run by returning `false`); with `options.follow`, until the caller drops it.
pub async fn logs(
    target: &Target,
    app: &str,
    options: &LogOptions,
    sink: &mut dyn LogSink,
) -> Result<Logged, Error> {
    let cluster = Cluster::connect(&target.client).await?;
    let containers = cluster.logs(&target.bundle, &target.namespace, app, options, sink).await?;
    Ok(Logged { containers })
}
