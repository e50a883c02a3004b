//! Secret and ConfigMap preflight: every Secret an application requires exists, and every key
//! a pod template reads from a Secret or ConfigMap (env `valueFrom`, `envFrom`, `secret` and
//! `configMap` volumes and projections with `items`) is there, unless the reference is
//! optional. What the plan applies counts (rendered data, and keys `charmer.io/generate`
//! fills on the first deploy); the rest is read from the cluster. A missing key would
//! otherwise surface only as the kubelet's CreateContainerConfigError after the deploy.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::images;
use crate::contract::{generated_keys, ObjectId};
use crate::deploy::cluster::access::{access, Access, Unverified};
use crate::deploy::cluster::client::{Cluster, REQUESTS_AT_ONCE};
use crate::deploy::error::DeployError;
use crate::deploy::model::kinds::{Kinds, Lookup};
use crate::deploy::model::plan::DeployPlan;
use crate::diag::Problem;

/// ConfigMaps controllers publish in every namespace once it exists: the control plane's
/// root CA bundle (`kube-root-ca.crt`, which service account token projections read) and
/// istiod's (`istio-ca-root-cert`, which Istio gateways mount). A fresh namespace cannot hold
/// them before the deploy creates it; whether istiod runs at all is `istiod`'s warning.
const PUBLISHED_IN_EVERY_NAMESPACE: &[&str] = &["kube-root-ca.crt", "istio-ca-root-cert"];

/// What the plan's pods read from one Secret or ConfigMap.
#[derive(Default)]
struct Wanted<'a> {
    /// Keys read one by one.
    keys: BTreeSet<&'a str>,
    /// Applications reading it.
    apps: BTreeSet<&'a str>,
}

/// `(kind, name)`: `Secret` or `ConfigMap`.
type Source<'a> = (&'static str, &'a str);

impl Cluster {
    pub(super) async fn check_secrets(
        &self,
        kinds: &Kinds,
        plan: &DeployPlan,
        namespace_exists: bool,
        unverified: &mut Unverified,
    ) -> Result<Vec<Problem>, DeployError> {
        let wanted = wanted(plan);
        let rendered = rendered_keys(plan);
        let lookups: Vec<Source<'_>> =
            wanted.keys().filter(|s| !rendered.contains_key(*s)).copied().collect();
        // Unrendered sources are read from the namespace (none exist in a new one).
        let live: Vec<(Source<'_>, Access<Option<BTreeSet<String>>>)> = if namespace_exists {
            stream::iter(lookups)
                .map(|source| async move {
                    let found = self.live_keys(kinds, &plan.namespace, source).await;
                    access(found).map(|a| (source, a))
                })
                .buffered(REQUESTS_AT_ONCE)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?
        } else {
            lookups.into_iter().map(|s| (s, Access::Allowed(None))).collect()
        };
        let mut available: BTreeMap<Source<'_>, Option<BTreeSet<String>>> =
            rendered.into_iter().map(|(s, keys)| (s, Some(keys))).collect();
        for (source, answer) in live {
            match answer {
                Access::Allowed(keys) => {
                    available.insert(source, keys);
                }
                Access::Forbidden(message) => unverified.add(
                    &format!("{} {}/{} and its keys", source.0, plan.namespace, source.1),
                    &format!("get {}s in namespace {}", source.0.to_lowercase(), plan.namespace),
                    message,
                ),
            }
        }
        let mut pull_secrets = BTreeSet::new();
        for o in &plan.objects {
            images::pull_secrets(&o.object, &mut pull_secrets);
        }
        let mut problems = Vec::new();
        for (source, want) in &wanted {
            let Some(found) = available.get(source) else { continue };
            let apps = want.apps.iter().copied().collect::<Vec<_>>().join(", ");
            let id = ObjectId {
                group: String::new(),
                kind: source.0.into(),
                namespace: Some(plan.namespace.clone()),
                name: source.1.to_string(),
            };
            let problem = match found {
                None => Problem::new(
                    "preflight",
                    id.to_string(),
                    format!("required by {apps} but missing"),
                )
                .hint(format!(
                    "create it before deploying: {}",
                    create_hint(
                        plan,
                        source,
                        &want.keys,
                        pull_secrets.contains(source.1),
                        namespace_exists
                    )
                )),
                Some(keys) => {
                    let missing: Vec<&str> =
                        want.keys.iter().copied().filter(|k| !keys.contains(*k)).collect();
                    if missing.is_empty() {
                        continue;
                    }
                    let held = if keys.is_empty() {
                        "no keys".to_string()
                    } else {
                        keys.iter().cloned().collect::<Vec<_>>().join(", ")
                    };
                    Problem::new(
                        "preflight",
                        id.to_string(),
                        format!(
                            "lacks {} {} that {apps} read(s); it holds {held}",
                            plural(missing.len()),
                            missing.join(", ")
                        ),
                    )
                    .hint(format!(
                        "add them before deploying: {}",
                        patch_hint(plan, source, &missing)
                    ))
                }
            };
            problems.push(problem);
        }
        Ok(problems)
    }

    /// The keys of a live Secret or ConfigMap in `namespace`; `None` when it does not exist.
    async fn live_keys(
        &self,
        kinds: &Kinds,
        namespace: &str,
        source: Source<'_>,
    ) -> Result<Option<BTreeSet<String>>, DeployError> {
        let Lookup::Served(kind) = kinds.find("v1", source.0) else { return Ok(None) };
        let id = ObjectId {
            group: String::new(),
            kind: source.0.into(),
            namespace: Some(namespace.to_string()),
            name: source.1.to_string(),
        };
        Ok(self.get(&kind, &id).await?.map(|live| keys_of(&live)))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "key"
    } else {
        "keys"
    }
}

/// The keys a Secret or ConfigMap holds (`data`, `stringData`, `binaryData`).
fn keys_of(object: &Value) -> BTreeSet<String> {
    ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|field| object[*field].as_object())
        .flat_map(|map| map.keys().cloned())
        .collect()
}

/// The keys each rendered Secret and ConfigMap will hold once applied, generated ones
/// included.
fn rendered_keys(plan: &DeployPlan) -> BTreeMap<Source<'_>, BTreeSet<String>> {
    let mut rendered = BTreeMap::new();
    for o in &plan.objects {
        let kind = match o.object["kind"].as_str() {
            Some("Secret") => "Secret",
            Some("ConfigMap") => "ConfigMap",
            _ => continue,
        };
        let Some(name) = o.object["metadata"]["name"].as_str() else { continue };
        let mut keys = keys_of(&o.object);
        keys.extend(generated_keys(&o.object));
        rendered.insert((kind, name), keys);
    }
    rendered
}

/// Every Secret and ConfigMap the plan needs: the applications' required Secrets, and what
/// pod templates read (optional references left out).
fn wanted(plan: &DeployPlan) -> BTreeMap<Source<'_>, Wanted<'_>> {
    let mut wanted: BTreeMap<Source<'_>, Wanted<'_>> = BTreeMap::new();
    for app in &plan.apps {
        for secret in &app.required_secrets {
            wanted.entry(("Secret", secret)).or_default().apps.insert(&app.name);
        }
    }
    for o in &plan.objects {
        let mut reads = Vec::new();
        pod_reads(&o.object, &mut reads);
        for (source, key) in reads {
            if source.0 == "ConfigMap" && PUBLISHED_IN_EVERY_NAMESPACE.contains(&source.1) {
                continue;
            }
            let entry = wanted.entry(source).or_default();
            entry.apps.insert(&o.app);
            entry.keys.extend(key);
        }
    }
    wanted
}

/// Adds what every pod spec in `value` (at any depth: workloads, CronJobs, custom resources'
/// templates) reads: `(source, Some(key))` for a key, `(source, None)` for the whole object.
fn pod_reads<'a>(value: &'a Value, out: &mut Vec<(Source<'a>, Option<&'a str>)>) {
    match value {
        Value::Object(map) if map.get("containers").is_some_and(Value::is_array) => {
            for list in ["containers", "initContainers", "ephemeralContainers"] {
                for container in map.get(list).and_then(Value::as_array).into_iter().flatten() {
                    container_reads(container, out);
                }
            }
            let volumes = map.get("volumes").and_then(Value::as_array).into_iter().flatten();
            for volume in volumes {
                volume_reads(volume, out);
                let sources = volume["projected"]["sources"].as_array().into_iter().flatten();
                for projection in sources {
                    volume_reads(projection, out);
                }
            }
        }
        Value::Object(map) => map.values().for_each(|v| pod_reads(v, out)),
        Value::Array(items) => items.iter().for_each(|v| pod_reads(v, out)),
        _ => {}
    }
}

fn optional(reference: &Value) -> bool {
    reference["optional"].as_bool() == Some(true)
}

fn container_reads<'a>(container: &'a Value, out: &mut Vec<(Source<'a>, Option<&'a str>)>) {
    for env in container["env"].as_array().into_iter().flatten() {
        for (field, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")] {
            let reference = &env["valueFrom"][field];
            if let (Some(name), Some(key)) = (reference["name"].as_str(), reference["key"].as_str())
            {
                if !optional(reference) {
                    out.push(((kind, name), Some(key)));
                }
            }
        }
    }
    for from in container["envFrom"].as_array().into_iter().flatten() {
        for (field, kind) in [("secretRef", "Secret"), ("configMapRef", "ConfigMap")] {
            let reference = &from[field];
            if let Some(name) = reference["name"].as_str().filter(|_| !optional(reference)) {
                out.push(((kind, name), None));
            }
        }
    }
}

/// A `secret` or `configMap` volume (or projection): the object, and each key of `items`.
fn volume_reads<'a>(volume: &'a Value, out: &mut Vec<(Source<'a>, Option<&'a str>)>) {
    for (field, kind, name_field) in
        [("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")]
    {
        let reference = &volume[field];
        // A projection names a Secret by `name`, a volume by `secretName`.
        let name = reference[name_field].as_str().or_else(|| reference["name"].as_str());
        let Some(name) = name.filter(|_| !optional(reference)) else { continue };
        out.push(((kind, name), None));
        for item in reference["items"].as_array().into_iter().flatten() {
            if let Some(key) = item["key"].as_str() {
                out.push(((kind, name), Some(key)));
            }
        }
    }
}

/// `kubectl create namespace NS ... && ` when the namespace does not exist yet (a Secret
/// cannot be created in it before).
fn namespace_first(plan: &DeployPlan, namespace_exists: bool) -> String {
    if namespace_exists {
        return String::new();
    }
    format!(
        "kubectl create namespace {} --dry-run=client -o yaml | kubectl apply -f - && ",
        plan.namespace
    )
}

/// The command creating a missing Secret or ConfigMap with the keys pods read.
fn create_hint(
    plan: &DeployPlan,
    source: &Source<'_>,
    keys: &BTreeSet<&str>,
    pull_secret: bool,
    namespace_exists: bool,
) -> String {
    let (kind, name) = *source;
    let ns = &plan.namespace;
    let literals = if keys.is_empty() {
        " --from-literal=KEY=VALUE".to_string()
    } else {
        keys.iter().map(|k| format!(" --from-literal={k}=...")).collect()
    };
    let create = match kind {
        // A registry login: the Secret must be of type kubernetes.io/dockerconfigjson.
        "Secret" if pull_secret => format!("kubectl create secret docker-registry {name} -n {ns} --docker-server=REGISTRY --docker-username=USER --docker-password=PASSWORD"),
        "Secret" => format!("kubectl create secret generic {name} -n {ns}{literals}"),
        _ => format!("kubectl create configmap {name} -n {ns}{literals}"),
    };
    format!("{}{create}", namespace_first(plan, namespace_exists))
}

/// The command adding keys to an existing Secret or ConfigMap, keeping the others.
fn patch_hint(plan: &DeployPlan, source: &Source<'_>, missing: &[&str]) -> String {
    let (kind, name) = *source;
    let (resource, field) =
        if kind == "Secret" { ("secret", "stringData") } else { ("configmap", "data") };
    let values: Vec<String> = missing.iter().map(|k| format!("\"{k}\":\"...\"")).collect();
    format!(
        "kubectl patch {resource} {name} -n {} --type merge -p '{{\"{field}\":{{{}}}}}'",
        plan.namespace,
        values.join(",")
    )
}

/// The objects of the plan whose pods read `key` of a source, for tests and messages.
#[cfg(test)]
fn readers(plan: &DeployPlan) -> Vec<String> {
    let mut out = Vec::new();
    for o in &plan.objects {
        let mut reads = Vec::new();
        pod_reads(&o.object, &mut reads);
        let id =
            crate::contract::object_id(&o.object, Some(&plan.namespace)).map(|i| i.to_string());
        for ((kind, name), key) in reads {
            out.push(format!(
                "{}: {kind}/{name}/{}",
                id.clone().unwrap_or_default(),
                key.unwrap_or("*")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::operations::preflight::testing::plan;
    use serde_json::json;

    #[test]
    fn pods_read_keys_from_env_env_from_volumes_and_projections() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "maybe", "optional": true}}]}],
                "containers": [{"name": "app", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level", "optional": true}}},
                    {"name": "C", "value": "plain"}]}],
                "volumes": [
                    {"name": "tls", "secret": {"secretName": "tls", "items": [{"key": "tls.crt", "path": "c"}]}},
                    {"name": "all", "projected": {"sources": [{"configMap": {"name": "extra", "items": [{"key": "x", "path": "x"}]}}]}}]}}}});
        assert_eq!(
            readers(&plan(vec![deployment])),
            [
                "Deployment/ns/web: Secret/s3/AWS_ACCESS_KEY_ID",
                "Deployment/ns/web: ConfigMap/settings/*",
                "Deployment/ns/web: Secret/tls/*",
                "Deployment/ns/web: Secret/tls/tls.crt",
                "Deployment/ns/web: ConfigMap/extra/*",
                "Deployment/ns/web: ConfigMap/extra/x",
            ]
        );
    }

    #[test]
    fn the_root_cas_every_namespace_gets_are_not_wanted() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}],
            "volumes": [{"name": "token", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                                                                  {"secret": {"name": "own", "items": [{"key": "k", "path": "k"}]}}]}},
                        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}]}});
        let p = plan(vec![pod]);
        let found: Vec<Source<'_>> = wanted(&p).into_keys().collect();
        assert_eq!(found, [("Secret", "own")]);
    }

    #[test]
    fn rendered_secrets_hold_their_generated_keys() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db",
            "annotations": {crate::contract::GENERATE_ANNOTATION: "root-password"}}, "stringData": {"user": "admin"}});
        let p = plan(vec![secret]);
        let keys = rendered_keys(&p);
        assert_eq!(
            keys[&("Secret", "db")].iter().map(String::as_str).collect::<Vec<_>>(),
            ["root-password", "user"]
        );
    }

    #[test]
    fn hints_name_the_keys_and_create_the_namespace_first() {
        let p = plan(Vec::new());
        let keys: BTreeSet<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].into();
        assert_eq!(
            create_hint(&p, &("Secret", "mlflow-s3"), &keys, false, false),
            "kubectl create namespace ns --dry-run=client -o yaml | kubectl apply -f - && \
             kubectl create secret generic mlflow-s3 -n ns --from-literal=AWS_ACCESS_KEY_ID=... \
             --from-literal=AWS_SECRET_ACCESS_KEY=..."
        );
        assert_eq!(
            patch_hint(&p, &("ConfigMap", "settings"), &["level"]),
            "kubectl patch configmap settings -n ns --type merge -p '{\"data\":{\"level\":\"...\"}}'"
        );
    }
}
