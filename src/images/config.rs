//! Images that operator charms name in config option values instead of resources, and the
//! same values rewritten for a private registry. Pure: no I/O.
//!
//! The shapes Charmed Kubeflow's charms use, each read the way the charm reads it:
//!
//! | shape | example | the images |
//! |---|---|---|
//! | one reference | istio-gateway's `proxy-image: docker.io/istio/proxyv2:1.17.3`, argo-controller's `executor-image` | the value |
//! | YAML/JSON map of references | katib's, kserve's, knative's `custom_images` (`activator: ghcr.io/...`) | every non-empty value |
//! | YAML/JSON list of references | jupyter-ui's `jupyter-images` (`['kubeflownotebookswg/jupyter-scipy:v1.8.0', ...]`) | every item |
//! | Istio's hub + tag map | istio-pilot's `image-configuration` (`global-hub`, `global-tag`, `pilot-image: pilot`, ...) | a `*-image` value without `/` is `<global-hub>/<value>:<global-tag>` (Istio's own rule: a value with `/` is a whole reference); another value that is a reference with a tag or digest (`grpc-bootstrap-init: busybox:1.28`) is taken whole |
//!
//! An option counts as naming images when its name says so (`*-image`, `*_images`,
//! `image-configuration`, `*-image-and-version`; not `image-pull-policy`) or when a
//! value looks like one (a path with `/` and a tag or digest). A value of an option named for
//! images that fits none of the shapes is [`Found::Unreadable`]: the caller warns about it.
//!
//! A rewritten map or list is written as one line of JSON (which YAML readers take too), with
//! every key kept in order (as YAML when a key is not text, which JSON cannot hold). Istio's hub + tag shape cannot name a digest: its images are
//! rewritten to the private registry's hub and keep their tag (which the push keeps).

use std::collections::{BTreeMap, BTreeSet};

use super::Reference;

/// How an option's value names its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// The value is one reference.
    Plain,
    /// A YAML/JSON map whose values are references (or empty).
    Map,
    /// A YAML/JSON list of references.
    List,
    /// Istio's image configuration: `global-hub` and `global-tag` combined with the `*-image`
    /// values that have no `/`.
    IstioHub {
        /// The parts combined from hub and tag (the others are whole references).
        combined: BTreeSet<String>,
    },
}

/// The images one option value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionImages {
    /// How the value names them.
    pub shape: Shape,
    /// Each image by its part of the value: `""` for [`Shape::Plain`], the key for a map,
    /// the index for a list.
    pub parts: BTreeMap<String, Reference>,
}

/// What an option's value holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No image.
    Nothing,
    /// Images charmer reads, and can rewrite.
    Images(OptionImages),
    /// The option is named for images but its value fits no known shape; why.
    Unreadable(String),
    /// A map of images whose values are all empty (kfp-profile-controller's `custom_images`
    /// default), by key: the charm then runs built-in images, which its config does not name.
    Defaulted(Vec<String>),
}

/// The label of one image of an option: `OPTION` for a plain value, `OPTION[PART]` for a
/// map key or list index (used in the lock and by `images list`).
pub fn label(option: &str, part: &str) -> String {
    if part.is_empty() {
        option.to_string()
    } else {
        format!("{option}[{part}]")
    }
}

/// `text` as an image reference when it looks like one on its own: it parses as a reference,
/// has a registry or organisation path (a `/`), and a tag or digest. Plain words, versions
/// and `host:port` pairs never qualify; a bare `nginx:1.27` is missed on purpose, as it reads
/// the same as a host and port.
pub fn looks_like_image(text: &str) -> Option<Reference> {
    let image: Reference = text.parse().ok()?;
    (text.contains('/') && (image.tag.is_some() || image.digest.is_some())).then_some(image)
}

/// The images the value of option `option` names (see the module docs).
pub fn find(option: &str, value: &str) -> Found {
    let text = value.trim();
    if text.is_empty() {
        return Found::Nothing;
    }
    let lower = option.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(['-', '_', '.']).collect();
    let single = words.last() == Some(&"image");
    // `custom_images`, `image-configuration`, `executor-container-image-and-version`; not
    // `image-pull-policy`.
    let named = single
        || words.last() == Some(&"images")
        || (words.iter().any(|w| w.starts_with("image"))
            && words.iter().any(|w| ["configuration", "config", "version"].contains(w)));
    if let Some(image) =
        looks_like_image(text).or_else(|| single.then(|| text.parse::<Reference>().ok()).flatten())
    {
        return Found::Images(OptionImages {
            shape: Shape::Plain,
            parts: BTreeMap::from([(String::new(), image)]),
        });
    }
    let unreadable = |why: &str| {
        if named {
            Found::Unreadable(why.to_string())
        } else {
            Found::Nothing
        }
    };
    let Ok(parsed) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return unreadable("neither an image reference nor YAML or JSON");
    };
    match parsed {
        serde_yaml::Value::Mapping(map) if map.contains_key("global-hub") => istio_hub(&map, named),
        serde_yaml::Value::Mapping(map) => {
            let entries = map.iter().map(|(k, v)| (scalar(k), v));
            collect(Shape::Map, entries, named)
        }
        serde_yaml::Value::Sequence(items) => {
            let entries = items.iter().enumerate().map(|(i, v)| (Some(i.to_string()), v));
            collect(Shape::List, entries, named)
        }
        _ => unreadable("neither an image reference nor a YAML or JSON map or list of them"),
    }
}

/// A scalar's text (numbers and booleans as YAML writes them); `None` for anything else.
fn scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The images among a map's or list's values. For an option named for images every
/// non-empty value must be a reference; for another, values that look like images count and
/// the rest are its other settings.
fn collect<'a>(
    shape: Shape,
    entries: impl Iterator<Item = (Option<String>, &'a serde_yaml::Value)>,
    named: bool,
) -> Found {
    let mut parts = BTreeMap::new();
    let mut empty = Vec::new();
    for (key, value) in entries {
        let nested =
            matches!(value, serde_yaml::Value::Mapping(_) | serde_yaml::Value::Sequence(_));
        let (Some(key), Some(text)) = (key, value.as_str()) else {
            if named && nested {
                return Found::Unreadable("a map or list with maps or lists inside".to_string());
            }
            continue;
        };
        if text.trim().is_empty() {
            empty.push(key);
            continue;
        }
        match text.trim().parse::<Reference>() {
            Ok(image) if named || looks_like_image(text.trim()).is_some() => {
                parts.insert(key, image);
            }
            Ok(_) => {}
            Err(e) if named => return Found::Unreadable(format!("{key}: {e}")),
            Err(_) => {}
        }
    }
    match (parts.is_empty(), named && shape == Shape::Map && !empty.is_empty()) {
        (false, _) => Found::Images(OptionImages { shape, parts }),
        (true, true) => Found::Defaulted(empty),
        (true, false) => Found::Nothing,
    }
}

/// Istio's image configuration (see the module docs).
fn istio_hub(map: &serde_yaml::Mapping, named: bool) -> Found {
    let hub = map.get("global-hub").and_then(scalar).unwrap_or_default();
    let tag = map.get("global-tag").and_then(scalar);
    let mut parts = BTreeMap::new();
    let mut combined = BTreeSet::new();
    for (key, value) in map {
        let (Some(key), Some(text)) = (scalar(key), scalar(value)) else { continue };
        let text = text.trim();
        if key == "global-hub" || key == "global-tag" || text.is_empty() {
            continue;
        }
        let (reference, from_hub) = if text.contains('/') {
            (text.to_string(), false)
        } else if key.ends_with("-image") {
            let Some(tag) = &tag else {
                return Found::Unreadable(format!(
                    "{key}: {text:?} is combined with global-hub and global-tag, and global-tag is missing"
                ));
            };
            (format!("{}/{text}:{tag}", hub.trim_end_matches('/')), true)
        } else if looks_like_image(text).is_some() || text.contains(':') {
            (text.to_string(), false)
        } else {
            continue;
        };
        match reference.parse::<Reference>() {
            Ok(image) => {
                parts.insert(key.clone(), image);
                if from_hub {
                    combined.insert(key);
                }
            }
            Err(e) if named || from_hub => return Found::Unreadable(format!("{key}: {e}")),
            Err(_) => {}
        }
    }
    if parts.is_empty() {
        return Found::Nothing;
    }
    Found::Images(OptionImages { shape: Shape::IstioHub { combined }, parts })
}

impl OptionImages {
    /// `value` (the option's value these images were found in) with every image replaced by
    /// its target in `targets` (by part; a part without one is kept). Fails when Istio's hub
    /// + tag shape cannot express the targets (they do not share one hub and the tag).
    pub fn rewrite(
        &self,
        value: &str,
        targets: &BTreeMap<String, Reference>,
    ) -> Result<String, String> {
        let written = |part: &str| targets.get(part).map(Reference::pinned_form);
        if self.shape == Shape::Plain {
            return Ok(written("").unwrap_or_else(|| value.to_string()));
        }
        let mut parsed: serde_yaml::Value =
            serde_yaml::from_str(value.trim()).map_err(|e| e.to_string())?;
        match (&self.shape, &mut parsed) {
            (Shape::List, serde_yaml::Value::Sequence(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Some(target) = written(&i.to_string()) {
                        *item = target.into();
                    }
                }
            }
            (Shape::Map, serde_yaml::Value::Mapping(map)) => {
                for (key, item) in map.iter_mut() {
                    if let Some(target) = scalar(key).and_then(|k| written(&k)) {
                        *item = target.into();
                    }
                }
            }
            (Shape::IstioHub { combined }, serde_yaml::Value::Mapping(map)) => {
                let hub = self.istio_hub(combined, targets)?;
                for (key, item) in map.iter_mut() {
                    let Some(key) = scalar(key) else { continue };
                    if key == "global-hub" {
                        if let Some(hub) = &hub {
                            *item = hub.clone().into();
                        }
                    } else if !combined.contains(&key) {
                        if let Some(target) = written(&key) {
                            *item = target.into();
                        }
                    }
                }
            }
            _ => return Err("the value changed shape".to_string()),
        }
        // JSON cannot hold every YAML map (keys that are not text): those stay YAML.
        serde_json::to_string(&parsed)
            .or_else(|_| serde_yaml::to_string(&parsed))
            .map_err(|e| e.to_string())
    }

    /// The hub every combined part's target is under (`None` when no part has a target).
    fn istio_hub(
        &self,
        combined: &BTreeSet<String>,
        targets: &BTreeMap<String, Reference>,
    ) -> Result<Option<String>, String> {
        let mut hub: Option<String> = None;
        for part in combined {
            let (Some(source), Some(target)) = (self.parts.get(part), targets.get(part)) else {
                continue;
            };
            let name = source.repository.rsplit('/').next().unwrap_or_default();
            let this = target
                .repository
                .strip_suffix(name)
                .and_then(|r| r.strip_suffix('/'))
                .filter(|_| target.tag == source.tag)
                .map(|path| format!("{}/{path}", target.registry));
            match (this, &hub) {
                (None, _) => {
                    return Err(format!(
                        "{part}: {target} is not <hub>/{name}:{}",
                        source.tag_or_latest()
                    ))
                }
                (Some(this), Some(hub)) if &this != hub => {
                    return Err(format!(
                        "{part}: {target} is not under the hub {hub} the other images are under"
                    ))
                }
                (Some(this), _) => hub = Some(this),
            }
        }
        Ok(hub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    fn images(found: Found) -> OptionImages {
        match found {
            Found::Images(i) => i,
            other => panic!("{other:?}"),
        }
    }

    /// istio-pilot's default, as its config.yaml has it (comments included).
    const ISTIO: &str = "pilot-image: 'pilot'  # values.pilot.image\nglobal-tag: '1.17.3'  # values.global.tag\nglobal-hub: 'docker.io/istio' # values.global.hub\nglobal-proxy-image: 'proxyv2' # values.global.proxy.image\nglobal-proxy-init-image: 'proxyv2' # values.global.proxy_init.image\ngrpc-bootstrap-init: 'busybox:1.28'\n";

    #[test]
    fn plain_references_are_found_by_look_or_by_name() {
        let gateway = images(find("proxy-image", "docker.io/istio/proxyv2:1.17.3"));
        assert_eq!(gateway.shape, Shape::Plain);
        assert_eq!(gateway.parts[""], r("docker.io/istio/proxyv2:1.17.3"));
        // Named for an image: a short reference counts too.
        assert_eq!(images(find("metacontroller-image", "nginx")).parts[""], r("nginx"));
        for (option, value) in [
            ("gateway_service_type", "LoadBalancer"),
            ("version", "1.2.3"),
            ("path", "a/b"),
            ("addr", "localhost:8080"),
            ("url", "http://example.com:80/x"),
            ("key-format", "artifacts/{{workflow.name}}/{{pod.name}}"),
            ("proxy-image", ""),
            ("image-pull-policy", "always"),
            ("image-pull-policy", "If Not Present"),
        ] {
            assert_eq!(find(option, value), Found::Nothing, "{option}: {value}");
        }
    }

    #[test]
    fn istio_pilot_combines_hub_and_tag_as_istio_does() {
        let found = images(find("image-configuration", ISTIO));
        let parts: Vec<(String, String)> =
            found.parts.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        assert_eq!(
            parts,
            [
                ("global-proxy-image", "docker.io/istio/proxyv2:1.17.3"),
                ("global-proxy-init-image", "docker.io/istio/proxyv2:1.17.3"),
                ("grpc-bootstrap-init", "docker.io/library/busybox:1.28"),
                ("pilot-image", "docker.io/istio/pilot:1.17.3"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let mut targets: BTreeMap<String, Reference> = found
            .parts
            .iter()
            .map(|(k, v)| (k.clone(), v.relocate(&"10.0.0.5:5000/ckf".parse().unwrap())))
            .collect();
        let digest = format!("sha256:{}", "a".repeat(64));
        for target in targets.values_mut() {
            target.digest = Some(digest.clone());
        }
        assert_eq!(
            found.rewrite(ISTIO, &targets).unwrap(),
            format!("{{\"pilot-image\":\"pilot\",\"global-tag\":\"1.17.3\",\"global-hub\":\"10.0.0.5:5000/ckf/istio\",\"global-proxy-image\":\"proxyv2\",\"global-proxy-init-image\":\"proxyv2\",\"grpc-bootstrap-init\":\"10.0.0.5:5000/ckf/library/busybox@{digest}\"}}")
        );
        // Images mapped apart cannot share one hub.
        targets.insert("pilot-image".into(), r("10.0.0.5:5000/other/pilot:1.17.3"));
        let error = found.rewrite(ISTIO, &targets).unwrap_err();
        assert!(error.contains("not under the hub 10.0.0.5:5000/ckf/istio"), "{error}");
        // JSON works the same, and a whole reference is Istio's rule too.
        let json = r#"{"global-hub": "quay.io/x", "global-tag": "1.0", "pilot-image": "ghcr.io/p/pilot:2"}"#;
        assert_eq!(
            images(find("image-configuration", json)).parts["pilot-image"],
            r("ghcr.io/p/pilot:2")
        );
        assert!(matches!(
            find("image-configuration", "global-hub: docker.io/istio\npilot-image: pilot\n"),
            Found::Unreadable(why) if why.contains("global-tag is missing")
        ));
    }

    #[test]
    fn maps_and_lists_of_references_are_rewritten_whole() {
        assert_eq!(
            find("custom_images", "visualization_server : ''\nfrontend : ''\n"),
            Found::Defaulted(vec!["visualization_server".into(), "frontend".into()])
        );
        let custom =
            "activator: ghcr.io/knative-releases/activator:v1\nautoscaler: ''\nreplicas: 3\n";
        let found = images(find("custom_images", custom));
        assert_eq!(found.shape, Shape::Map);
        assert_eq!(found.parts.keys().collect::<Vec<_>>(), ["activator"]);
        let targets = BTreeMap::from([(
            "activator".to_string(),
            r("reg:5000/knative-releases/activator:v1"),
        )]);
        assert_eq!(
            found.rewrite(custom, &targets).unwrap(),
            r#"{"activator":"reg:5000/knative-releases/activator:v1","autoscaler":"","replicas":3}"#
        );
        let jupyter =
            "['kubeflownotebookswg/jupyter-scipy:v1.8.0', 'kubeflownotebookswg/rstudio:v1.8.0']";
        let found = images(find("jupyter-images", jupyter));
        assert_eq!(found.shape, Shape::List);
        let digest = format!("sha256:{}", "b".repeat(64));
        let mut target = r("reg:5000/kubeflownotebookswg/rstudio:v1.8.0");
        target.digest = Some(digest.clone());
        let targets = BTreeMap::from([("1".to_string(), target)]);
        assert_eq!(
            found.rewrite(jupyter, &targets).unwrap(),
            format!(
                r#"["kubeflownotebookswg/jupyter-scipy:v1.8.0","reg:5000/kubeflownotebookswg/rstudio@{digest}"]"#
            )
        );
        // A key JSON cannot hold keeps the value YAML.
        let odd = images(find("settings", "{[1]: x, a: ghcr.io/x/y:1}"));
        let targets = BTreeMap::from([("a".to_string(), r("reg:5000/x/y:1"))]);
        assert_eq!(
            odd.rewrite("{[1]: x, a: ghcr.io/x/y:1}", &targets).unwrap(),
            "? - 1\n: x\na: reg:5000/x/y:1\n"
        );
        // Another option's map: only what looks like an image counts.
        let other = images(find("settings", "{a: ghcr.io/x/y:1, b: some/path, c: text}"));
        assert_eq!(other.parts.keys().collect::<Vec<_>>(), ["a"]);
        // An option named for images that fits no shape is unreadable, and says why.
        for (value, why) in [
            ("docker.io/istio/proxyv2:{{ version }}", "neither an image reference nor a YAML"),
            ("{a: {b: c}}", "maps or lists inside"),
            ("{a: 'Not An Image'}", "a: \"Not An Image\" is not a valid image reference"),
        ] {
            match find("custom_images", value) {
                Found::Unreadable(found) => assert!(found.contains(why), "{value}: {found}"),
                other => panic!("{value}: {other:?}"),
            }
        }
    }
}
