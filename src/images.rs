//! Image references and their relocation to a private registry. Pure: no I/O.
//!
//! The grammar is the distribution reference grammar Docker and Kubernetes use:
//! `[host[:port]/]path[:tag][@algorithm:hex]`. A reference with no host is on `docker.io`,
//! and a one-component path there is under `library/` (so `nginx` is
//! `docker.io/library/nginx`).

pub mod config;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::diag::Problem;

/// The registry a reference without a host is on.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/nginx`, `canonical/charmed-mongodb`).
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest (`sha256:<64 hex>`), if any.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not a valid image reference: {why}")]
pub struct ReferenceError {
    /// The text given.
    pub reference: String,
    /// What is wrong.
    pub why: String,
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail =
            |why: &str| Err(ReferenceError { reference: text.to_string(), why: why.to_string() });
        if text.is_empty()
            || text.len() > 4096
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return fail("empty, too long or containing spaces");
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest {
            let Some(hex) = digest.strip_prefix("sha256:") else {
                return fail("the digest must be sha256:<64 hex digits>");
            };
            if hex.len() != 64
                || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return fail("the digest must be sha256:<64 lowercase hex digits>");
            }
        }
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !tag.starts_with(['.', '-']);
            if !valid {
                return fail(
                    "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
                );
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return fail(
                "path components must be lowercase letters, digits and separators (. _ -)",
            );
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }
}

impl fmt::Display for Reference {
    /// The full, normalized form: `docker.io/library/nginx:1.27`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl Reference {
    /// The same image in another registry (`host[:port][/prefix]`), keeping path, tag and
    /// digest. Idempotent: an image already in that registry (under its prefix) stays as it
    /// is, so relocating a relocated image does not add the prefix twice.
    pub fn relocate(&self, target: &Registry) -> Reference {
        if self.is_in(target) {
            return self.clone();
        }
        let repository = match &target.prefix {
            Some(prefix) => format!("{prefix}/{}", self.repository),
            None => self.repository.clone(),
        };
        Reference {
            registry: target.host.clone(),
            repository,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// How Juju is given the image: `registry/repository@digest` when pinned (the tag would
    /// only be ignored), else the reference as it is.
    pub fn pinned_form(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}/{}@{digest}", self.registry, self.repository),
            None => self.to_string(),
        }
    }

    /// The tag or, lacking one, `latest` (what a registry serves for a bare name).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// Whether this reference is in `registry` (host and, if given, under its prefix).
    pub fn is_in(&self, registry: &Registry) -> bool {
        self.registry == registry.host
            && registry
                .prefix
                .as_ref()
                .is_none_or(|p| self.repository.starts_with(&format!("{p}/")))
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A private registry images are relocated to: `host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// Host with port.
    pub host: String,
    /// Path prefix every repository is put under, if any.
    pub prefix: Option<String>,
}

impl FromStr for Registry {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail =
            |why: &str| Err(ReferenceError { reference: text.to_string(), why: why.to_string() });
        let trimmed = text.trim_end_matches('/');
        if trimmed.contains("://") {
            return fail("give the registry as host[:port][/prefix], without a scheme");
        }
        let (host, prefix) = match trimmed.split_once('/') {
            Some((host, prefix)) => (host, Some(prefix.to_string())),
            None => (trimmed, None),
        };
        if host.is_empty()
            || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return fail("the host must be a name or address with an optional :port");
        }
        // The port follows the last ':' outside an IPv6 address's brackets.
        let name_end = host.rfind(']').map_or(0, |i| i + 1);
        if let Some(colon) = host[name_end..].rfind(':') {
            let (name, port) = (&host[..name_end + colon], &host[name_end + colon + 1..]);
            let unbracketed = &host[name_end..name_end + colon];
            if name.is_empty()
                || unbracketed.contains(':')
                || !matches!(port.parse::<u16>(), Ok(1..))
            {
                return fail("the port must be a number from 1 to 65535 after a host name");
            }
        }
        // Reuse the reference grammar to check the prefix's path components.
        if let Some(prefix) = &prefix {
            Reference::from_str(&format!("{host}/{prefix}/x"))
                .map_err(|e| ReferenceError { reference: text.to_string(), why: e.why })?;
        }
        Ok(Registry { host: host.to_string(), prefix })
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prefix {
            Some(p) => write!(f, "{}/{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Parses an image list (`images.txt`, Canonical's `retagged-images.txt`, or what `charmer
/// images list` prints): one image per line, `source` or `source -> target` (the source is
/// taken); blank lines and `#` comments (whole lines, or after a space) are skipped. `file` names it in problems.
pub fn parse_list(file: &str, text: &str) -> Result<Vec<Reference>, Vec<Problem>> {
    parse_lines(file, text, |line| {
        // `images list` ends the lines of images config options name with `  # config: ...`.
        let line = line.split_once(" #").map_or(line, |(image, _)| image);
        line.split_once("->").map_or(line, |(source, _)| source).trim()
    })
}

/// The reference on each line of `text` (the part `pick` takes of it), skipping blank lines
/// and `#` comments; every bad line is a problem naming `file` and the line number.
fn parse_lines(
    file: &str,
    text: &str,
    pick: impl Fn(&str) -> &str,
) -> Result<Vec<Reference>, Vec<Problem>> {
    let mut references = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match Reference::from_str(pick(line)) {
            Ok(reference) => references.push(reference),
            Err(e) => problems.push(Problem::new(file, format!("line {}", n + 1), e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(references)
    } else {
        Err(problems)
    }
}

/// A `retagged-images.txt` (seed 001's format): one already-rewritten image per line;
/// blank lines and `#` comments are skipped.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    /// Entries keyed by (repository path, tag or digest hex), the parts that survive a
    /// retag; the registry host is what changes.
    by_path: BTreeMap<(String, String), Reference>,
}

impl ImageMap {
    /// Parses the file's text; `file` names it in problems.
    pub fn parse(file: &str, text: &str) -> Result<ImageMap, Vec<Problem>> {
        let by_path = parse_lines(file, text, |line| line)?
            .into_iter()
            .map(|reference| {
                ((reference.repository.clone(), reference.tag_or_latest().to_string()), reference)
            })
            .collect();
        Ok(ImageMap { by_path })
    }

    /// The rewritten image for `source`, if the map has it. A line matches on repository
    /// path (with or without a leading `library/`, or under a registry prefix) and on tag;
    /// the CKF retag script's habit of turning `@sha256:<hex>` into the tag `:<hex>` is
    /// matched too, and the digest is then put back.
    pub fn lookup(&self, source: &Reference) -> Option<Reference> {
        let tags: Vec<String> = match (&source.tag, &source.digest) {
            (_, Some(d)) => vec![
                source.tag_or_latest().to_string(),
                d.trim_start_matches("sha256:").to_string(),
            ],
            (_, None) => vec![source.tag_or_latest().to_string()],
        };
        let short = source.repository.strip_prefix("library/").unwrap_or(&source.repository);
        self.by_path
            .iter()
            .find(|((path, tag), _)| {
                tags.contains(tag)
                    && [source.repository.as_str(), short]
                        .iter()
                        .any(|p| path == p || path.ends_with(&format!("/{p}")))
            })
            .map(|(_, target)| {
                let mut target = target.clone();
                if target.digest.is_none() {
                    target.digest.clone_from(&source.digest);
                }
                if target.tag.as_deref()
                    == source.digest.as_deref().map(|d| d.trim_start_matches("sha256:"))
                {
                    target.tag.clone_from(&source.tag);
                }
                target
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn references_normalize_like_docker() {
        assert_eq!(r("nginx").to_string(), "docker.io/library/nginx");
        assert_eq!(r("nginx:1.27").to_string(), "docker.io/library/nginx:1.27");
        assert_eq!(r("istio/proxyv2:1.17.3").to_string(), "docker.io/istio/proxyv2:1.17.3");
        assert_eq!(r("localhost:5000/a/b:t").registry, "localhost:5000");
        let d = "ghcr.io/canonical/charmed-mongodb@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe";
        let parsed = r(d);
        assert_eq!(
            (parsed.registry.as_str(), parsed.repository.as_str(), parsed.tag.as_deref()),
            ("ghcr.io", "canonical/charmed-mongodb", None)
        );
        assert_eq!(parsed.to_string(), d);
        for bad in ["", "Nginx", "a b", "x:", "x@sha256:abc", "x@md5:00", "host/-a", "x:-t"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }

    #[test]
    fn relocation_keeps_path_tag_and_digest() {
        let reg: Registry = "10.0.0.5:5000/mirror".parse().unwrap();
        let src = r("docker.io/istio/proxyv2:1.17.3@sha256:1111111111111111111111111111111111111111111111111111111111111111");
        let dst = src.relocate(&reg);
        assert_eq!(dst.to_string(), "10.0.0.5:5000/mirror/istio/proxyv2:1.17.3@sha256:1111111111111111111111111111111111111111111111111111111111111111");
        assert!(dst.is_in(&reg) && !src.is_in(&reg));
        assert!("https://x".parse::<Registry>().is_err());
        for bad in ["host:abc", "host:99999", "host:0", ":5000", "host:", "a:1:2"] {
            assert!(bad.parse::<Registry>().is_err(), "{bad}");
        }
        for good in ["host:5000", "10.0.0.5:65535/p", "[::1]:5000", "[::1]", "localhost"] {
            assert!(good.parse::<Registry>().is_ok(), "{good}");
        }
    }

    #[test]
    fn relocation_is_idempotent() {
        let reg: Registry = "registry.example:5000/shop".parse().unwrap();
        let there = r("registry.example:5000/shop/aas-frontend:1.10");
        assert_eq!(there.relocate(&reg), there);
        let once = r("aas-frontend:1.10").relocate(&reg);
        assert_eq!(once.relocate(&reg), once);
        // Same host, outside the prefix: moved under it.
        assert_eq!(
            r("registry.example:5000/other/x:1").relocate(&reg).to_string(),
            "registry.example:5000/shop/other/x:1"
        );
    }

    #[test]
    fn image_lists_take_the_source_side() {
        let list = parse_list(
            "images.txt",
            "# images\nnginx:1.27\n\nquay.io/a/b:1 -> 10.0.0.5:5000/a/b:1\nistio/proxyv2:1.17.3  # config: gw proxy-image\n",
        )
        .unwrap();
        assert_eq!(list, vec![r("nginx:1.27"), r("quay.io/a/b:1"), r("istio/proxyv2:1.17.3")]);
        let bad = parse_list("images.txt", "ok:1\nNOT OK\n").unwrap_err();
        assert_eq!(bad[0].to_string(), "images.txt: line 2: \"NOT OK\" is not a valid image reference: empty, too long or containing spaces");
    }

    #[test]
    fn image_map_matches_retagged_lines_and_restores_digests() {
        let text = "# retagged-images.txt\n172.17.0.2:5000/argoproj/argocli:v3.3.10\n172.17.0.2:5000/library/nginx:1.27\n\n172.17.0.2:5000/canonical/charmed-mongodb:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe\n";
        let map = ImageMap::parse("retagged-images.txt", text).unwrap();
        assert_eq!(
            map.lookup(&r("argoproj/argocli:v3.3.10")).unwrap().to_string(),
            "172.17.0.2:5000/argoproj/argocli:v3.3.10"
        );
        assert_eq!(
            map.lookup(&r("nginx:1.27")).unwrap().to_string(),
            "172.17.0.2:5000/library/nginx:1.27"
        );
        assert!(map.lookup(&r("nginx:1.28")).is_none());
        let pinned = r("ghcr.io/canonical/charmed-mongodb@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe");
        assert_eq!(map.lookup(&pinned).unwrap().to_string(), "172.17.0.2:5000/canonical/charmed-mongodb@sha256:b4b3edb805b20de471da57802643bfadbf979f112d738bc540ab148d145ddcfe");
        let bad = ImageMap::parse("m.txt", "ok/x:1\nBAD IMAGE\n").unwrap_err();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().starts_with("m.txt: line 2: "));
    }
}
