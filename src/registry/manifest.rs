//! Content digests, media types, descriptors and the manifest documents that tie an image
//! together (OCI and Docker schema 2; schema 1 is refused).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Media types charmer reads and writes.
pub mod media {
    /// OCI image index (multi-platform).
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// Docker manifest list (multi-platform).
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer, uncompressed tar (what `docker save` holds).
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker layer, gzip'd tar.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    /// Every manifest type, for the `Accept` header of a manifest request.
    pub const MANIFESTS: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
}

/// A content digest: `sha256:` and 64 lowercase hex digits (the only algorithm registries
/// are required to support, and the only one charmer accepts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest a finished hasher computed.
    pub fn from_hasher(hasher: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where an OCI image layout keeps this blob: `blobs/sha256/<hex>`.
    pub fn layout_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("{text:?} is not a sha256 digest"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!("{text:?} is not sha256:<64 lowercase hex digits>"));
        }
        Ok(Digest(text.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An OCI platform: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Every other field (`os.version`, `os.features`), kept as read.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Platform {
    /// Whether `self`, as asked for on the command line, selects `candidate`: same OS and
    /// architecture, and the same variant when one was asked for.
    pub fn selects(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && self.variant.as_ref().is_none_or(|v| candidate.variant.as_ref() == Some(v))
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &&str| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if parts.iter().all(ok) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
                other: BTreeMap::new(),
            }),
            _ => {
                Err(format!("{text:?} is not a platform: give os/arch[/variant], e.g. linux/amd64"))
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor: what a manifest or index says about a blob it references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform, for entries of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (an OCI layout's `index.json` names images with them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor with just media type, digest and size.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// What a manifest document references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// An index or manifest list: one manifest per platform.
    Index(Vec<Descriptor>),
    /// An image manifest: a config blob and layers.
    Image {
        /// The config blob.
        config: Descriptor,
        /// The layers, bottom first.
        layers: Vec<Descriptor>,
    },
}

/// A manifest or index exactly as stored: its bytes are never re-serialized, so its digest
/// stays what the registry and every signature over it know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDoc {
    /// Media type (from the document, else from the descriptor or response that named it).
    pub media_type: String,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The document.
    pub bytes: Vec<u8>,
    /// What it references.
    pub contents: Contents,
}

/// The fields of a manifest or index that charmer reads; the rest stay in the bytes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

impl ManifestDoc {
    /// Parses a manifest or index; `declared` is the media type its descriptor or HTTP
    /// response gave, used when the document does not carry one (OCI allows that).
    pub fn parse(bytes: Vec<u8>, declared: Option<&str>) -> Result<ManifestDoc, String> {
        let raw: RawManifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if raw.schema_version != Some(2) {
            return Err(format!(
                "schemaVersion {:?} is not supported (only schema 2 and OCI manifests are)",
                raw.schema_version
            ));
        }
        let declared = declared.filter(|d| {
            !d.is_empty() && *d != "application/octet-stream" && *d != "application/json"
        });
        let media_type = match (raw.media_type, declared) {
            (Some(own), Some(declared)) if own != declared => {
                return Err(format!("declared as {declared} but says it is {own}"))
            }
            (Some(own), _) => own,
            (None, Some(declared)) => declared.to_string(),
            (None, None) if raw.manifests.is_some() => media::OCI_INDEX.to_string(),
            (None, None) => media::OCI_MANIFEST.to_string(),
        };
        let contents = match media_type.as_str() {
            media::OCI_INDEX | media::DOCKER_LIST => {
                Contents::Index(raw.manifests.ok_or("an index without manifests")?)
            }
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => Contents::Image {
                config: raw.config.ok_or("a manifest without config")?,
                layers: raw.layers.unwrap_or_default(),
            },
            other => return Err(format!("unsupported manifest media type {other}")),
        };
        Ok(ManifestDoc { media_type, digest: Digest::of(&bytes), bytes, contents })
    }

    /// The descriptor of this document, for an index that references it.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest.clone(), self.bytes.len() as u64)
    }

    /// The blobs (config, then layers) an image manifest references; none for an index.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        match &self.contents {
            Contents::Index(_) => Vec::new(),
            Contents::Image { config, layers } => std::iter::once(config).chain(layers).collect(),
        }
    }
}

/// Annotation containerd (and `docker save` since 25) put the full image name in.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming an image in a layout's `index.json` (by convention the tag,
/// though tools differ: skopeo puts whatever reference it was given).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_strict_sha256() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            d.layout_path(),
            "blobs/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        for bad in [
            "sha512:00",
            "sha256:ABC",
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_parse_without_reserializing() {
        let config = Digest::of(b"{}");
        let text = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[]}}"#,
            media::DOCKER_CONFIG
        );
        let doc = ManifestDoc::parse(text.clone().into_bytes(), Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(doc.media_type, media::OCI_MANIFEST);
        assert_eq!(doc.digest, Digest::of(text.as_bytes()));
        assert_eq!(doc.blobs().len(), 1);
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            ManifestDoc::parse(index.into(), None).unwrap().contents,
            Contents::Index(_)
        ));
        let schema1 = r#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(ManifestDoc::parse(schema1.into(), None).unwrap_err().contains("schemaVersion"));
        let lying =
            format!(r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#, media::OCI_INDEX);
        assert!(ManifestDoc::parse(lying.into_bytes(), Some(media::DOCKER_MANIFEST)).is_err());
    }

    #[test]
    fn platforms_parse_and_select() {
        let want: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(want.selects(&v8) && !v8.selects(&"linux/arm64/v7".parse().unwrap()));
        assert!(!want.selects(&"linux/amd64".parse().unwrap()));
        assert_eq!(v8.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
