//! CycloneDX 1.6 JSON: written from an [`Sbom`], and read back (charmer's own documents,
//! for `sbom diff`).
//!
//! The bundle is `metadata.component` (type `application`); each charm a top-level
//! `application` component with its SHA-256; each image (per platform) a `container`
//! component, its manifest digest as its hash and a `pkg:oci` purl, its layers as `charmer:layer`
//! properties (bottom first), and its packages as nested `library` components, each with
//! its purl, declared license and the layer and file it was read from. Properties named
//! `charmer:*` carry what CycloneDX has no field for; `dependencies` link bundle → charms and
//! images, image → packages. JSON object keys are sorted (deterministic bytes).

use serde_json::{json, Map, Value};

use super::catalog::{Ecosystem, Found};
use super::{CharmEntry, ImageEntry, Layer, Package, Sbom, Subject};
use crate::diag::Problem;

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

fn image_ref(image: &ImageEntry) -> String {
    format!("image:{}#{}", image.reference, image.platform.as_deref().unwrap_or(""))
}

/// The `pkg:oci` purl of an image with a known digest.
fn oci_purl(image: &ImageEntry) -> Option<String> {
    use super::catalog::encode;
    let digest = image.manifest.as_ref().or(image.digest.as_ref())?;
    let reference: crate::images::Reference = image.reference.parse().ok()?;
    let name = reference.repository.rsplit('/').next().unwrap_or(&reference.repository);
    let mut purl = format!(
        "pkg:oci/{}@{}?repository_url={}",
        encode(name),
        encode(digest),
        encode(&format!("{}/{}", reference.registry, reference.repository))
    );
    if let Some(tag) = &reference.tag {
        purl.push_str(&format!("&tag={}", encode(tag)));
    }
    Some(purl)
}

fn package_component(image: &ImageEntry, package: &Package) -> Value {
    let found = &package.found;
    let mut component = Map::new();
    component.insert("type".into(), json!("library"));
    component.insert(
        "bom-ref".into(),
        json!(format!(
            "{}|{}|{}@{}|{}",
            image_ref(image),
            found.ecosystem.as_str(),
            found.name,
            found.version,
            package.path
        )),
    );
    component.insert("name".into(), json!(found.name));
    component.insert("version".into(), json!(found.version));
    if let Some(purl) = &found.purl {
        component.insert("purl".into(), json!(purl));
    }
    if let Some(license) = &found.license {
        component.insert("licenses".into(), json!([{"license": {"name": license}}]));
    }
    let mut properties = vec![
        property("charmer:kind", "package"),
        property("charmer:ecosystem", found.ecosystem.as_str()),
        property("charmer:layer", &package.layer),
        property("charmer:path", &package.path),
    ];
    if let Some(arch) = &found.arch {
        properties.push(property("charmer:arch", arch));
    }
    component.insert("properties".into(), Value::Array(properties));
    Value::Object(component)
}

fn image_component(image: &ImageEntry) -> Value {
    let mut component = Map::new();
    component.insert("type".into(), json!("container"));
    component.insert("bom-ref".into(), json!(image_ref(image)));
    component.insert("name".into(), json!(image.reference));
    if let Some(digest) = image.manifest.as_ref().or(image.digest.as_ref()) {
        component.insert("version".into(), json!(digest));
        if let Some(hex) = digest.strip_prefix("sha256:") {
            component.insert("hashes".into(), json!([{"alg": "SHA-256", "content": hex}]));
        }
    }
    if let Some(purl) = oci_purl(image) {
        component.insert("purl".into(), json!(purl));
    }
    let mut properties = vec![property("charmer:kind", "image")];
    let optional = [
        ("charmer:digest", &image.digest),
        ("charmer:platform", &image.platform),
        ("charmer:manifest", &image.manifest),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            properties.push(property(name, value));
        }
    }
    for layer in &image.layers {
        let name = if layer.scanned { "charmer:layer" } else { "charmer:layer-unread" };
        properties.push(property(name, &format!("{} {}", layer.digest, layer.size)));
    }
    component.insert("properties".into(), Value::Array(properties));
    if !image.packages.is_empty() {
        let packages = image.packages.iter().map(|p| package_component(image, p)).collect();
        component.insert("components".into(), Value::Array(packages));
    }
    Value::Object(component)
}

fn charm_ref(charm: &CharmEntry) -> String {
    format!("charm:{}@{}", charm.name, charm.version)
}

/// The CycloneDX 1.6 JSON document of `sbom` (pretty-printed, newline-terminated).
pub fn write(sbom: &Sbom) -> Vec<u8> {
    let bundle_ref = format!("bundle:{}", sbom.bundle.name);
    let mut bundle = json!({
        "type": "application",
        "bom-ref": bundle_ref,
        "name": sbom.bundle.name,
        "properties": [property("charmer:kind", "bundle"), property("charmer:source", &sbom.bundle.source)],
    });
    if let Some(sha) = &sbom.bundle.sha256 {
        bundle["hashes"] = json!([{"alg": "SHA-256", "content": sha}]);
    }
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    let mut bundle_needs = Vec::new();
    for charm in &sbom.charms {
        bundle_needs.push(charm_ref(charm));
        components.push(json!({
            "type": "application",
            "bom-ref": charm_ref(charm),
            "name": charm.name,
            "version": charm.version,
            "hashes": [{"alg": "SHA-256", "content": charm.sha256}],
            "properties": [property("charmer:kind", "charm"), property("charmer:source", &charm.source)],
        }));
    }
    for image in &sbom.images {
        bundle_needs.push(image_ref(image));
        components.push(image_component(image));
        let component = &components[components.len() - 1];
        let packages: Vec<&Value> = component["components"]
            .as_array()
            .map(|c| c.iter().map(|p| &p["bom-ref"]).collect())
            .unwrap_or_default();
        dependencies.push(json!({"ref": image_ref(image), "dependsOn": packages}));
    }
    dependencies.insert(0, json!({"ref": bundle_ref, "dependsOn": bundle_needs}));
    let document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "charmer", "version": env!("CARGO_PKG_VERSION")}]},
            "component": bundle,
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut bytes = serde_json::to_vec_pretty(&document).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The `charmer:*` properties of a component, in order.
fn properties(component: &Value) -> Vec<(&str, &str)> {
    component["properties"]
        .as_array()
        .map(|all| {
            all.iter().filter_map(|p| Some((p["name"].as_str()?, p["value"].as_str()?))).collect()
        })
        .unwrap_or_default()
}

fn first<'a>(props: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    props.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn sha256_of(component: &Value) -> Option<String> {
    component["hashes"].as_array()?.iter().find_map(|h| {
        (h["alg"] == "SHA-256").then(|| h["content"].as_str().map(str::to_string)).flatten()
    })
}

fn text(component: &Value, key: &str) -> String {
    component[key].as_str().unwrap_or_default().to_string()
}

/// Reads a CycloneDX JSON document charmer wrote (its `charmer:*` properties say what each
/// component is); `label` names it in problems.
pub fn read(label: &str, bytes: &[u8]) -> Result<Sbom, Problem> {
    let document: Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::new(label, "", format!("not JSON: {e}")))?;
    if document["bomFormat"] != "CycloneDX" {
        let hint = if document["spdxVersion"].is_string() {
            "sbom diff reads CycloneDX documents: make them with --format cyclonedx (the default)"
        } else {
            "give a CycloneDX document charmer sbom wrote, or an archive"
        };
        return Err(Problem::new(label, "bomFormat", "not a CycloneDX document").hint(hint));
    }
    let bundle = &document["metadata"]["component"];
    let bundle_props = properties(bundle);
    if first(&bundle_props, "charmer:kind") != Some("bundle") {
        return Err(Problem::new(label, "metadata.component", "is not a bundle charmer described")
            .hint("sbom diff compares documents charmer sbom wrote"));
    }
    let mut sbom = Sbom {
        bundle: Subject {
            name: text(bundle, "name"),
            sha256: sha256_of(bundle),
            source: first(&bundle_props, "charmer:source").unwrap_or_default().to_string(),
        },
        charms: Vec::new(),
        images: Vec::new(),
        warnings: Vec::new(),
    };
    for component in document["components"].as_array().into_iter().flatten() {
        let props = properties(component);
        match first(&props, "charmer:kind") {
            Some("charm") => sbom.charms.push(CharmEntry {
                name: text(component, "name"),
                version: text(component, "version"),
                sha256: sha256_of(component).unwrap_or_default(),
                source: first(&props, "charmer:source").unwrap_or_default().to_string(),
            }),
            Some("image") => sbom.images.push(read_image(component, &props)),
            _ => {}
        }
    }
    sbom.charms.sort();
    Ok(sbom)
}

fn read_image(component: &Value, props: &[(&str, &str)]) -> ImageEntry {
    let layers = props
        .iter()
        .filter(|(n, _)| *n == "charmer:layer" || *n == "charmer:layer-unread")
        .map(|(n, v)| {
            let (digest, size) = v.split_once(' ').unwrap_or((v, "0"));
            Layer {
                digest: digest.to_string(),
                size: size.parse().unwrap_or(0),
                scanned: *n == "charmer:layer",
            }
        })
        .collect();
    let mut packages: Vec<Package> = component["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let props = properties(p);
            let ecosystem = Ecosystem::parse(first(&props, "charmer:ecosystem")?)?;
            Some(Package {
                found: Found {
                    ecosystem,
                    name: text(p, "name"),
                    version: text(p, "version"),
                    purl: p["purl"].as_str().map(str::to_string),
                    license: p["licenses"][0]["license"]["name"].as_str().map(str::to_string),
                    arch: first(&props, "charmer:arch").map(str::to_string),
                },
                layer: first(&props, "charmer:layer").unwrap_or_default().to_string(),
                path: first(&props, "charmer:path").unwrap_or_default().to_string(),
            })
        })
        .collect();
    packages.sort();
    let owned = |name: &str| first(props, name).map(str::to_string);
    ImageEntry {
        reference: text(component, "name"),
        digest: owned("charmer:digest"),
        platform: owned("charmer:platform"),
        manifest: owned("charmer:manifest"),
        layers,
        packages,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small SBOM: a bundle, a charm, an image with a layer and two packages.
    pub(crate) fn sample() -> Sbom {
        let found = |ecosystem, name: &str, version: &str, license: Option<&str>| Found {
            ecosystem,
            name: name.into(),
            version: version.into(),
            purl: Some(format!("pkg:x/{name}@{version}")),
            license: license.map(str::to_string),
            arch: None,
        };
        let layer = format!("sha256:{}", "a".repeat(64));
        Sbom {
            bundle: Subject {
                name: "shop".into(),
                sha256: Some("b".repeat(64)),
                source: "bundle.yaml".into(),
            },
            charms: vec![CharmEntry {
                name: "web".into(),
                version: "1.0.0".into(),
                sha256: "c".repeat(64),
                source: "charms/web".into(),
            }],
            images: vec![ImageEntry {
                reference: "127.0.0.1:5000/team/app:1.0".into(),
                digest: Some(format!("sha256:{}", "d".repeat(64))),
                platform: Some("linux/amd64".into()),
                manifest: Some(format!("sha256:{}", "d".repeat(64))),
                layers: vec![Layer { digest: layer.clone(), size: 10, scanned: true }],
                packages: vec![
                    Package {
                        found: found(Ecosystem::Deb, "libc6", "2.36", None),
                        layer: layer.clone(),
                        path: "var/lib/dpkg/status".into(),
                    },
                    Package {
                        found: found(Ecosystem::Pypi, "requests", "2.31.0", Some("Apache-2.0")),
                        layer,
                        path: "x.dist-info/METADATA".into(),
                    },
                ],
            }],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn written_documents_read_back_the_same() {
        let sbom = sample();
        let bytes = write(&sbom);
        assert_eq!(read("x", &bytes).unwrap(), sbom);
        assert_eq!(write(&sbom), bytes, "deterministic");
        let spdx = super::super::spdx::write(&sbom, "1970-01-01T00:00:00Z");
        assert!(read("x", &spdx)
            .unwrap_err()
            .hint
            .unwrap_or_default()
            .contains("--format cyclonedx"));
    }
}
