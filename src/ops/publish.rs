//! `publish`: charms as release assets in a folder, as OCI artifacts in a registry, or both
//! (the registry first, as the command line prints them), signed with one key.

use std::path::{Path, PathBuf};

use crate::images::Registry;
use crate::publish::oci::PushedCharm;
use crate::publish::{Report, SecretKey};
use crate::registry::client::Client;
use crate::Error;

/// What to publish, signed with what.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Charm source folders and `.charm` archives.
    pub charms: Vec<PathBuf>,
    /// The secret key file to sign with.
    pub sign_key: Option<PathBuf>,
}

/// Charms about to be published, with their signing key read.
pub struct Publisher {
    charms: Vec<PathBuf>,
    key: Option<SecretKey>,
}

impl Publisher {
    /// Reads the signing key (before anything else, so a bad key stops every target).
    pub fn new(options: &PublishOptions) -> Result<Publisher, Error> {
        let key = options.sign_key.as_deref().map(crate::publish::load_secret_key).transpose()?;
        Ok(Publisher { charms: options.charms.clone(), key })
    }

    /// The id of the signing key, if any.
    pub fn key_id(&self) -> Option<String> {
        self.key.as_ref().map(|key| key.public().id())
    }

    /// Pushes every charm to `registry` as `PREFIX/<name>:<version>` (see
    /// [`crate::publish::oci::publish`]).
    pub async fn to_registry(
        &self,
        client: &Client,
        registry: &Registry,
    ) -> Result<Vec<PushedCharm>, Error> {
        Ok(crate::publish::oci::publish(client, registry, &self.charms, self.key.as_ref()).await?)
    }

    /// Publishes every charm into the release folder `dir` (see [`crate::publish::publish`]).
    pub fn to_folder(&self, dir: &Path) -> Result<Report, Error> {
        Ok(crate::publish::publish(&self.charms, dir, self.key.as_ref())?)
    }
}
