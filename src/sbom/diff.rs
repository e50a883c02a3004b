//! What changed between two bills of materials: charms added, removed or moved to another
//! version (or rebuilt: same version, other SHA-256); images added, removed or moved to
//! another tag or digest; and, per image, packages added, removed or moved to another
//! version. Images are matched by repository (registry and path) and platform, charms by
//! name, packages by ecosystem and name within their image.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Sbom;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What changed: a charm's name, an image's repository (and platform), or a package's
    /// `ecosystem name`.
    pub name: String,
    /// What it was (absent: added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// What it is (absent: removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

impl Change {
    /// `+`, `-` or `~`.
    pub fn sign(&self) -> char {
        match (&self.old, &self.new) {
            (None, _) => '+',
            (_, None) => '-',
            _ => '~',
        }
    }
}

/// The packages that changed in one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePackages {
    /// The image: repository and platform.
    pub image: String,
    /// The package changes, sorted.
    pub changes: Vec<Change>,
}

/// Every change between two SBOMs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Charm changes.
    pub charms: Vec<Change>,
    /// Image changes.
    pub images: Vec<Change>,
    /// Package changes, per image present in both or in one.
    pub packages: Vec<ImagePackages>,
}

impl Diff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.charms.is_empty() && self.images.is_empty() && self.packages.is_empty()
    }

    /// How many changes of each kind: added, removed, changed.
    pub fn counts(&self) -> (usize, usize, usize) {
        let all = self
            .charms
            .iter()
            .chain(&self.images)
            .chain(self.packages.iter().flat_map(|p| &p.changes));
        let mut counts = (0, 0, 0);
        for change in all {
            match change.sign() {
                '+' => counts.0 += 1,
                '-' => counts.1 += 1,
                _ => counts.2 += 1,
            }
        }
        counts
    }
}

/// Changes between two maps of name → set of versions.
fn changes(
    old: &BTreeMap<String, BTreeSet<String>>,
    new: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Change> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    names
        .into_iter()
        .filter_map(|name| {
            let (before, after) = (old.get(name), new.get(name));
            (before != after).then(|| Change {
                name: name.clone(),
                old: before.map(join),
                new: after.map(join),
            })
        })
        .collect()
}

/// An image's key (repository and platform) and what identifies its content (tag and
/// digest).
fn image_key(image: &super::ImageEntry) -> (String, String) {
    let parsed: Option<crate::images::Reference> = image.reference.parse().ok();
    let (repository, tag) = match &parsed {
        Some(r) => (format!("{}/{}", r.registry, r.repository), r.tag.clone()),
        None => (image.reference.clone(), None),
    };
    let key = match &image.platform {
        Some(p) => format!("{repository} ({p})"),
        None => repository,
    };
    let digest = image.manifest.as_ref().or(image.digest.as_ref());
    let what = match (tag, digest) {
        (Some(t), Some(d)) => format!("{t}@{d}"),
        (Some(t), None) => t,
        (None, Some(d)) => d.clone(),
        (None, None) => image.reference.clone(),
    };
    (key, what)
}

/// What changed from `old` to `new`.
pub fn diff(old: &Sbom, new: &Sbom) -> Diff {
    let charms = |sbom: &Sbom| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in &sbom.charms {
            let short = c.sha256.get(..12).unwrap_or(&c.sha256);
            map.entry(c.name.clone())
                .or_default()
                .insert(format!("{} (sha256 {short}…)", c.version));
        }
        map
    };
    let images = |sbom: &Sbom| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for image in &sbom.images {
            let (key, what) = image_key(image);
            map.entry(key).or_default().insert(what);
        }
        map
    };
    let packages = |sbom: &Sbom| {
        let mut map: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for image in &sbom.images {
            let per = map.entry(image_key(image).0).or_default();
            for p in &image.packages {
                let name = format!("{} {}", p.found.ecosystem.as_str(), p.found.name);
                per.entry(name).or_default().insert(p.found.version.clone());
            }
        }
        map
    };
    let (old_packages, new_packages) = (packages(old), packages(new));
    let keys: BTreeSet<&String> = old_packages.keys().chain(new_packages.keys()).collect();
    let empty = BTreeMap::new();
    let packages = keys
        .into_iter()
        .map(|image| ImagePackages {
            image: image.clone(),
            changes: changes(
                old_packages.get(image).unwrap_or(&empty),
                new_packages.get(image).unwrap_or(&empty),
            ),
        })
        .filter(|p| !p.changes.is_empty())
        .collect();
    Diff {
        charms: changes(&charms(old), &charms(new)),
        images: changes(&images(old), &images(new)),
        packages,
    }
}

/// The diff as text, a line per change, grouped; `old` and `new` label the two sides.
pub fn text(diff: &Diff, old: &str, new: &str) -> String {
    let mut out = format!("--- {old}\n+++ {new}\n");
    let line = |out: &mut String, change: &Change| {
        let text = match (&change.old, &change.new) {
            (None, Some(new)) => format!("+ {} {new}\n", change.name),
            (Some(old), None) => format!("- {} {old}\n", change.name),
            (Some(old), Some(new)) => format!("~ {} {old} -> {new}\n", change.name),
            (None, None) => String::new(),
        };
        out.push_str("  ");
        out.push_str(&text);
    };
    for (title, list) in [("charms", &diff.charms), ("images", &diff.images)] {
        if !list.is_empty() {
            out.push_str(&format!("{title}:\n"));
            list.iter().for_each(|c| line(&mut out, c));
        }
    }
    for image in &diff.packages {
        out.push_str(&format!("packages in {}:\n", image.image));
        image.changes.iter().for_each(|c| line(&mut out, c));
    }
    let (added, removed, changed) = diff.counts();
    out.push_str(&format!("{added} added, {removed} removed, {changed} changed\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::cyclonedx::tests::sample;

    #[test]
    fn version_moves_additions_and_removals() {
        let old = sample();
        let mut new = sample();
        new.charms[0].version = "1.1.0".into();
        new.images[0].reference = "127.0.0.1:5000/team/app:1.1".into();
        new.images[0].packages[0].found.version = "2.37".into();
        new.images[0].packages.remove(1);
        let diff = diff(&old, &new);
        assert_eq!(diff.counts(), (0, 1, 3));
        let text = text(&diff, "old", "new");
        assert!(text.contains("~ web 1.0.0 (sha256 cccccccccccc…) -> 1.1.0"), "{text}");
        assert!(text.contains("packages in 127.0.0.1:5000/team/app (linux/amd64):\n  ~ deb libc6 2.36 -> 2.37\n  - pypi requests 2.31.0\n"), "{text}");
        assert!(super::diff(&old, &old).is_empty());
    }
}
