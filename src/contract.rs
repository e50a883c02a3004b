//! The contracts shared by stages: the names of the labels and annotations charmer puts on
//! objects and acts on, and their parsers; object identity and the apiVersion split; the name
//! rule; reading YAML with duplicate keys refused. Every stage may use this module; it uses
//! nothing but [`crate::diag`], so it can never close a circle between stages.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::Problem;

/// The value of `app.kubernetes.io/managed-by` on every rendered object.
pub const MANAGER: &str = "charmer";
/// Selector label: the charm's name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Selector label: the application's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The bundle an object is part of.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Who manages an object ([`MANAGER`]).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The charm version that rendered an object.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// The label every object of a bundle carries; deploy's inventory selects on it.
pub const BUNDLE_LABEL: &str = "charmer.io/bundle";
/// The annotation naming Secret keys that deploy generates once (see docs/architecture.md).
pub const GENERATE_ANNOTATION: &str = "charmer.io/generate";
/// Annotation on a rendered object: the cluster must run at least this Kubernetes version.
pub const MIN_KUBERNETES_ANNOTATION: &str = "charmer.io/min-kubernetes";
/// Annotation a charm sets (value `keep`) on any object that prune and `remove` must leave in
/// place, like Helm's `helm.sh/resource-policy: keep`.
pub const RESOURCE_POLICY_ANNOTATION: &str = "charmer.io/resource-policy";
/// Label on an object that prune or `remove` kept (data, credentials, resource policy): the
/// bundle it was kept from, whose next deploy adopts it.
pub const KEPT_FROM_LABEL: &str = "charmer.io/kept-from";
/// Annotation on a kept object: why it was kept (`data`, `credentials`, `resource-policy`).
pub const KEPT_ANNOTATION: &str = "charmer.io/kept";

/// The labels selectors use: charm and application name. They never include the version,
/// because selectors are immutable once a workload exists.
pub fn selector_labels(charm: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), charm.to_string()),
        (INSTANCE_LABEL.to_string(), app.to_string()),
    ])
}

/// Every label charmer puts on an application's objects (see docs/architecture.md).
pub fn standard_labels(
    bundle: &str,
    charm: &str,
    version: &str,
    app: &str,
) -> BTreeMap<String, String> {
    let mut labels = selector_labels(charm, app);
    labels.insert(PART_OF_LABEL.into(), bundle.to_string());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels.insert(VERSION_LABEL.into(), version.to_string());
    labels.insert(BUNDLE_LABEL.into(), bundle.to_string());
    labels
}

/// The keys a rendered Secret asks deploy to generate (its [`GENERATE_ANNOTATION`]: a comma
/// separated list; blanks are skipped).
pub fn generated_keys(object: &Value) -> Vec<String> {
    object["metadata"]["annotations"][GENERATE_ANNOTATION]
        .as_str()
        .map(|list| {
            list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect()
        })
        .unwrap_or_default()
}

/// Identity of a Kubernetes object, independent of the API version it is served at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group (`""` for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Every (container name, image) of an object: any `containers`, `initContainers` or
/// `ephemeralContainers` list at any depth, so pod templates of custom resources count too.
/// A container without a string `image` gives `""` (the render lint reports it; deploy's
/// checks skip it). Shared by render's air-gap lint and deploy's image pre-flight.
pub fn container_images(object: &Value) -> Vec<(&str, &str)> {
    fn walk<'a>(value: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if matches!(
                        key.as_str(),
                        "containers" | "initContainers" | "ephemeralContainers"
                    ) {
                        for c in child.as_array().into_iter().flatten() {
                            out.push((
                                c["name"].as_str().unwrap_or("?"),
                                c["image"].as_str().unwrap_or(""),
                            ));
                        }
                    }
                    walk(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(object, &mut found);
    found
}

/// The identity of a rendered object; namespaced objects lacking a namespace get `default_ns`
/// (pass `None` when the object is cluster-scoped).
pub fn object_id(object: &Value, default_ns: Option<&str>) -> Result<ObjectId, String> {
    let text =
        |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let api_version = text(object.get("apiVersion")).ok_or("object has no apiVersion")?;
    let kind = text(object.get("kind")).ok_or("object has no kind")?;
    let meta = object.get("metadata");
    let name = text(meta.and_then(|m| m.get("name")))
        .ok_or_else(|| format!("{kind} has no metadata.name"))?;
    let namespace =
        text(meta.and_then(|m| m.get("namespace"))).or_else(|| default_ns.map(str::to_string));
    Ok(ObjectId { group: group_of(&api_version).to_string(), kind, namespace, name })
}

/// The group part of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The version part of an apiVersion (`apps/v1` → `v1`).
pub fn version_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, version)| version)
}

/// Kinds that live outside any namespace.
pub fn is_cluster_scoped(kind: &str) -> bool {
    const CLUSTER: &[&str] = &[
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "RuntimeClass",
        "CSIDriver",
        "VolumeAttachment",
    ];
    CLUSTER.contains(&kind)
}

/// Juju's name rule for charms, applications and bundles:
/// `[a-z][a-z0-9]*(-[a-z0-9]*[a-z][a-z0-9]*)*`, simplified to lowercase letters, digits and
/// single dashes, starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The largest YAML document charmer reads (a charm's metadata.yaml or config.yaml, a bundle,
/// an overlay, a published index). The largest real ones — Charmed Kubeflow's bundles, the
/// config.yaml of the biggest Charmhub charms — are tens of KiB.
pub const MAX_YAML_BYTES: usize = 4 << 20;
/// The deepest nesting of YAML collections charmer reads. Real charms and bundles nest fewer
/// than ten levels; the YAML parser's time grows with the square of the depth, so a hostile
/// file is refused by [`check_yaml_bounds`] before it reaches the parser.
pub const MAX_YAML_DEPTH: usize = 64;

/// Refuses YAML text beyond [`MAX_YAML_BYTES`] or nested deeper than [`MAX_YAML_DEPTH`], in
/// one linear pass, so hostile input costs no more than reading it.
pub fn check_yaml_bounds(file: &str, text: &str) -> Result<(), Problem> {
    check_yaml_size(file, text.len() as u64)?;
    match yaml_depth_exceeds(text, MAX_YAML_DEPTH) {
        Some(line) => Err(Problem::new(
            file,
            format!("line {line}"),
            format!("nested more than {MAX_YAML_DEPTH} levels deep"),
        )),
        None => Ok(()),
    }
}

/// Refuses a YAML file of `size` bytes beyond [`MAX_YAML_BYTES`]; callers that know the size
/// before reading (a file's length, a zip entry's declared size) check it first.
pub fn check_yaml_size(file: &str, size: u64) -> Result<(), Problem> {
    if size > MAX_YAML_BYTES as u64 {
        return Err(Problem::new(
            file,
            "",
            format!("{size} bytes, more than the limit of {MAX_YAML_BYTES} for a YAML file"),
        ));
    }
    Ok(())
}

/// The first line at which collections nest deeper than `limit`, if any. YAML nests two ways:
/// flow collections (`[`, `{`) and block collections (indentation, and `- ` items that open a
/// sequence on the same line). This is a scanner, not a parser: it skips comments, quoted
/// scalars and block scalars (`|`, `>`), and counts a bracket only where YAML allows a flow
/// collection to start. Written by hand because no YAML crate bounds depth before parsing.
fn yaml_depth_exceeds(text: &str, limit: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    // The indentation of the line that opened a block scalar: deeper lines are its text.
    let mut block_scalar: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(parent) = block_scalar {
            if content.is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut block = indents.len();
        if flow == 0 && quote.is_none() && !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            let mut rest = content;
            let mut items = 0;
            while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
                items += 1;
                rest = after.trim_start();
            }
            block = indents.len() + items;
        }
        // Characters that may stand before the start of a flow collection or quoted scalar.
        let mut token_start = true;
        let mut last = ' ';
        let mut chars = content.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('\'') if c == '\'' => {
                    // '' is an escaped quote inside a single-quoted scalar.
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some('"') if c == '"' => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if last == ' ' || last == '\t' => break,
                    '\'' | '"' if token_start => quote = Some(c),
                    '[' | '{' if token_start || flow > 0 => {
                        flow += 1;
                        if block + flow > limit {
                            return Some(number + 1);
                        }
                    }
                    ']' | '}' if flow > 0 => flow -= 1,
                    _ => {}
                },
            }
            if quote.is_none() && c != ' ' && c != '\t' {
                let then_space = chars.peek().is_none_or(|n| *n == ' ' || *n == '\t');
                token_start = matches!(c, ':' | '-' | '?') && then_space
                    || flow > 0 && matches!(c, '[' | '{' | ',');
            }
            last = c;
        }
        if block + flow > limit {
            return Some(number + 1);
        }
        if flow == 0 && quote.is_none() && opens_block_scalar(content) {
            block_scalar = Some(indent);
        }
    }
    None
}

/// Whether a line ends in a block scalar indicator (`key: |`, `- >-`, `key: |2+ # note`).
fn opens_block_scalar(content: &str) -> bool {
    let code = match content.find(" #") {
        Some(at) => &content[..at],
        None => content,
    };
    let last_token = code.trim_end().rsplit([' ', '\t']).next().unwrap_or_default();
    let mut chars = last_token.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '-' || c == '+' || c.is_ascii_digit())
        && (code.trim_end().len() == last_token.len()
            || code.trim_end()[..code.trim_end().len() - last_token.len()]
                .trim_end()
                .ends_with([':', '-']))
}

/// Largest text file of another kind charmer reads whole (image lists, image maps, keys,
/// signatures): the same as a YAML file.
pub const MAX_TEXT_BYTES: u64 = MAX_YAML_BYTES as u64;

/// Reads a file of at most `max` bytes, refusing a larger one by its size before reading it
/// (and one that grows past `max` while it is read): files from elsewhere are untrusted, and
/// a path may name something endless (`/dev/zero`). `what` names the kind of file in the
/// error ("a charm archive").
pub fn read_bounded(path: &std::path::Path, max: u64, what: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let too_big =
        || std::io::Error::other(format!("larger than the limit of {max} bytes for {what}"));
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() > max {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_bounded`] for text: a file that is not UTF-8 is an `InvalidData` error.
pub fn read_bounded_text(path: &std::path::Path, max: u64, what: &str) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max, what)?).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")
    })
}

/// Reads a YAML file of at most [`MAX_YAML_BYTES`], refusing a larger one before reading it.
pub fn read_yaml_file(path: &std::path::Path) -> std::io::Result<String> {
    read_bounded_text(path, MAX_YAML_BYTES as u64, "a YAML file")
}

/// Parses YAML text into `T`, naming `file` (and the line) in the problem. The text is
/// bounded first ([`check_yaml_bounds`]). A key given twice in one mapping is refused, as
/// Juju's YAML reader does: serde's derived structs and maps would silently keep the last one
/// (two `db` endpoints, two `replicas` options), so the text is first read as a plain
/// `serde_yaml::Value`, whose mappings reject duplicates.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, Problem> {
    yaml_value(file, text)?;
    // Parsed again into `T` rather than converted from the value: only errors from the text
    // carry the line and column.
    serde_yaml::from_str(text).map_err(|e| yaml_problem(file, &e))
}

/// Reads bounded YAML text ([`check_yaml_bounds`]) as a plain value, duplicate keys refused.
pub fn yaml_value(file: &str, text: &str) -> Result<serde_yaml::Value, Problem> {
    check_yaml_bounds(file, text)?;
    serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| yaml_problem(file, &e))
}

/// Turns a YAML syntax or shape error into a problem naming the file and, where serde_yaml
/// knows it, the line.
pub fn yaml_problem(file: &str, error: &serde_yaml::Error) -> Problem {
    let message = error.to_string();
    let key = match error.location() {
        Some(loc) => format!("line {}", loc.line()),
        None => String::new(),
    };
    Problem::new(file, key, format!("invalid YAML: {message}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_jujus_rule() {
        for ok in ["a", "mongodb", "istio-gateway", "k8s", "a1-b2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "A", "a-", "a--b", "-a", "a_b", "a.b"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn generated_keys_skip_blanks() {
        let secret = json!({"metadata": {"annotations": {GENERATE_ANNOTATION: "root, , key "}}});
        assert_eq!(generated_keys(&secret), ["root", "key"]);
        assert!(generated_keys(&json!({"metadata": {}})).is_empty());
    }

    #[test]
    fn object_ids_default_the_namespace_and_split_the_group() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let id = object_id(&d, Some("shop")).unwrap();
        assert_eq!((id.group.as_str(), id.namespace.as_deref()), ("apps", Some("shop")));
        assert_eq!(id.to_string(), "Deployment/shop/web");
        assert_eq!(group_of("v1"), "");
        assert_eq!(version_of("networking.istio.io/v1beta1"), "v1beta1");
        assert!(object_id(&json!({"kind": "X"}), None).is_err());
    }

    #[test]
    fn nesting_is_bounded_in_one_pass() {
        let deep_flow = format!("a: {}", "[".repeat(MAX_YAML_DEPTH + 1));
        let err = check_yaml_bounds("b.yaml", &deep_flow).unwrap_err().to_string();
        assert!(err.contains("b.yaml: line 1: nested more than 64 levels deep"), "{err}");
        let deep_block: String =
            (0..=MAX_YAML_DEPTH).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(check_yaml_bounds("b.yaml", &deep_block)
            .unwrap_err()
            .to_string()
            .contains("line 65"));
        let dashes = format!("{}x\n", "- ".repeat(MAX_YAML_DEPTH + 1));
        assert!(check_yaml_bounds("b.yaml", &dashes).is_err());
        // A hundred thousand levels are refused as fast as they are read.
        assert!(check_yaml_bounds("b.yaml", &"[".repeat(100_000)).is_err());
        assert!(check_yaml_bounds("big.yaml", &" ".repeat(MAX_YAML_BYTES + 1)).is_err());
    }

    #[test]
    fn brackets_in_scalars_comments_and_block_text_do_not_nest() {
        let text = format!(
            "a: x[{b}\nb: '[{b}'\nc: \"[{b}\\\"\"\n# [{b}\nd: |\n  [{b}\n      [{b}\ne: [1, [2, {{f: 3}}]]\n",
            b = "[".repeat(MAX_YAML_DEPTH + 1)
        );
        assert_eq!(check_yaml_bounds("ok.yaml", &text), Ok(()));
        let value: serde_yaml::Value = parse_yaml("ok.yaml", &text).unwrap();
        assert!(value["d"].as_str().unwrap().starts_with('['));
    }

    #[test]
    fn real_juju_files_are_within_bounds() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/juju");
        for entry in std::fs::read_dir(fixtures).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let file = entry.path().display().to_string();
            assert_eq!(check_yaml_bounds(&file, &text), Ok(()), "{file}");
            assert!(yaml_depth_exceeds(&text, 10).is_none(), "{file} nests more than 10 levels");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_with_the_file() {
        let err = parse_yaml::<serde_yaml::Value>("f.yaml", "a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("f.yaml"), "{err}");
    }
}
