//! SPDX 2.3 JSON, written from an [`Sbom`]: one SPDX package each for the bundle, every
//! charm, every image (per platform) and every package inside an image, with
//! `DESCRIBES`/`CONTAINS` relationships between them. A declared license that is one of the
//! common SPDX identifiers is given as is; any other text becomes a `LicenseRef-` with the
//! text as its extracted licensing info (a license field must be a valid expression).
//! Deterministic: element ids follow the sorted order, the namespace is derived from the
//! content, the creation time is given by the caller.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Sbom;

/// SPDX license identifiers given as they are (the ones package metadata declares most).
const KNOWN_LICENSES: &[&str] = &[
    "0BSD",
    "Apache-2.0",
    "Artistic-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSL-1.0",
    "CC0-1.0",
    "EPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MPL-2.0",
    "PSF-2.0",
    "Python-2.0",
    "Unlicense",
    "Zlib",
];

/// License texts to `LicenseRef-` ids, in first-seen order.
#[derive(Default)]
struct Licenses {
    refs: BTreeMap<String, String>,
}

impl Licenses {
    fn declared(&mut self, license: Option<&str>) -> String {
        let Some(text) = license else { return "NOASSERTION".to_string() };
        if KNOWN_LICENSES.contains(&text) {
            return text.to_string();
        }
        let n = self.refs.len();
        self.refs.entry(text.to_string()).or_insert_with(|| format!("LicenseRef-{n}")).clone()
    }
}

fn package(id: &str, name: &str, version: Option<&str>, purpose: &str) -> Value {
    let mut package = json!({
        "SPDXID": id,
        "name": name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": purpose,
    });
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        package["versionInfo"] = json!(version);
    }
    package
}

fn sha256(package: &mut Value, hex: &str) {
    package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hex}]);
}

fn purl(package: &mut Value, purl: &str) {
    package["externalRefs"] = json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }]);
}

fn relation(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// The SPDX 2.3 JSON document of `sbom`, created at `created` (`YYYY-MM-DDThh:mm:ssZ`).
pub fn write(sbom: &Sbom, created: &str) -> Vec<u8> {
    let mut licenses = Licenses::default();
    let mut packages = Vec::new();
    let mut relationships = vec![relation("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-bundle")];
    let mut bundle = package("SPDXRef-bundle", &sbom.bundle.name, None, "APPLICATION");
    bundle["sourceInfo"] = json!(format!("read from {}", sbom.bundle.source));
    if let Some(hex) = &sbom.bundle.sha256 {
        sha256(&mut bundle, hex);
    }
    packages.push(bundle);
    for (n, charm) in sbom.charms.iter().enumerate() {
        let id = format!("SPDXRef-charm-{n}");
        let mut p = package(&id, &charm.name, Some(&charm.version), "APPLICATION");
        sha256(&mut p, &charm.sha256);
        p["sourceInfo"] = json!(format!("charm from {}", charm.source));
        packages.push(p);
        relationships.push(relation("SPDXRef-bundle", "CONTAINS", &id));
    }
    for (n, image) in sbom.images.iter().enumerate() {
        let id = format!("SPDXRef-image-{n}");
        let digest = image.manifest.as_ref().or(image.digest.as_ref());
        let mut p = package(&id, &image.reference, digest.map(String::as_str), "CONTAINER");
        if let Some(hex) = digest.and_then(|d| d.strip_prefix("sha256:")) {
            sha256(&mut p, hex);
        }
        let layers: Vec<String> = image
            .layers
            .iter()
            .map(|l| format!("{}{}", l.digest, if l.scanned { "" } else { " (not read)" }))
            .collect();
        let mut comment = format!("platform: {}", image.platform.as_deref().unwrap_or("unknown"));
        if !layers.is_empty() {
            comment.push_str(&format!("; layers, bottom first: {}", layers.join(", ")));
        }
        p["comment"] = json!(comment);
        packages.push(p);
        relationships.push(relation("SPDXRef-bundle", "CONTAINS", &id));
        for (m, inside) in image.packages.iter().enumerate() {
            let child = format!("SPDXRef-image-{n}-package-{m}");
            let found = &inside.found;
            let mut p = package(&child, &found.name, Some(&found.version), "LIBRARY");
            p["licenseDeclared"] = json!(licenses.declared(found.license.as_deref()));
            if let Some(url) = &found.purl {
                purl(&mut p, url);
            }
            p["sourceInfo"] = json!(format!(
                "{} metadata {} in layer {}",
                found.ecosystem.as_str(),
                inside.path,
                inside.layer
            ));
            packages.push(p);
            relationships.push(relation(&id, "CONTAINS", &child));
        }
    }
    let mut extracted: Vec<(String, String)> =
        licenses.refs.into_iter().map(|(text, id)| (id, text)).collect();
    extracted
        .sort_by_key(|(id, _)| id.trim_start_matches("LicenseRef-").parse::<usize>().unwrap_or(0));
    let extracted: Vec<Value> = extracted
        .into_iter()
        .map(|(id, text)| json!({"licenseId": id, "extractedText": text, "name": text}))
        .collect();
    // A unique namespace for these contents, the same for the same contents.
    let identity = crate::digest::sha256_hex(&super::cyclonedx::write(sbom));
    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} bill of materials", sbom.bundle.name),
        "documentNamespace": format!("https://charmer.invalid/spdx/{}-{identity}", super::catalog::encode(&sbom.bundle.name)),
        "creationInfo": {"created": created, "creators": [format!("Tool: charmer-{}", env!("CARGO_PKG_VERSION"))]},
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        document["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    let mut bytes = serde_json::to_vec_pretty(&document).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_licenses_stay_and_others_become_references() {
        let mut licenses = super::Licenses::default();
        assert_eq!(licenses.declared(Some("MIT")), "MIT");
        assert_eq!(licenses.declared(Some("GPL-2+")), "LicenseRef-0");
        assert_eq!(licenses.declared(Some("PSF")), "LicenseRef-1");
        assert_eq!(licenses.declared(Some("GPL-2+")), "LicenseRef-0");
        assert_eq!(licenses.declared(None), "NOASSERTION");
    }
}
