//! Preflight: everything that would make a deploy fail half-way is checked before the first
//! write, and every problem is reported at once with its fix.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::access::{access, Access, Unverified};
use super::cluster::{Cluster, Kinds, Lookup};
use super::keep::{kept_from, KEEP_MANAGER};
use super::plan::{KubeVersion, Plan, VersionNeed, VersionOp};
use super::record::{self, Record};
use super::targets::{self, Target};
use super::{DeployError, FIELD_MANAGER, GENERATE_MANAGER};
use crate::contract::{group_of, object_id, ObjectId, BUNDLE_LABEL, MIN_KUBERNETES_ANNOTATION};
use crate::diag::{Problem, Problems};
use crate::images::Reference;

/// A plan checked against the cluster: every kind mapped, every preflight check passed.
/// Only [`Cluster::prepare`] makes one.
pub struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) targets: Vec<Target>,
    pub(crate) kinds: Kinds,
    pub(crate) namespace_exists: bool,
    pub(crate) records: Vec<Record>,
    pub(crate) version: KubeVersion,
    pub(crate) notes: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

/// How to run preflight.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrepareOptions {
    /// Take over objects that another bundle, or another tool (field manager), manages,
    /// instead of failing preflight naming them.
    pub adopt: bool,
    /// Fail on checks the identity has no permission to make (reading StorageClasses,
    /// PersistentVolumes, the Namespace) instead of warning that they were not verified.
    pub strict: bool,
}

impl Prepared {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The cluster's Kubernetes version.
    pub fn cluster_version(&self) -> KubeVersion {
        self.version
    }

    /// Whether the namespace already exists (deploy creates it otherwise).
    pub fn namespace_exists(&self) -> bool {
        self.namespace_exists
    }

    /// What preflight found worth saying that is not a problem: claims a pre-created
    /// PersistentVolume will bind, objects taken over with `adopt`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Checks that could not be made for want of a permission, one line each ("storage class
    /// not verified: no permission to list storageclasses.storage.k8s.io at the cluster
    /// scope"); empty with `strict`, where they are problems instead.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl Cluster {
    /// Validates the plan, discovers the kinds it uses and runs every preflight check; only
    /// reads from the cluster (and one dry-run namespace create when the namespace is
    /// missing). Fails with every problem found.
    pub async fn prepare(&self, plan: Plan) -> Result<Prepared, DeployError> {
        self.prepare_with(plan, &PrepareOptions::default()).await
    }

    /// [`Cluster::prepare`] with options.
    pub async fn prepare_with(
        &self,
        plan: Plan,
        options: &PrepareOptions,
    ) -> Result<Prepared, DeployError> {
        plan.validate()?;
        let version = self.version().await?;
        let mut groups: BTreeSet<String> = plan
            .objects
            .iter()
            .filter_map(|o| o.object.get("apiVersion")?.as_str().map(|v| group_of(v).to_string()))
            .collect();
        groups.insert("storage.k8s.io".to_string());
        let mut kinds = self.kinds(&groups).await?;
        let mut unverified = Unverified::default();
        let namespace_exists =
            self.namespace_exists(&kinds, &plan.namespace, &mut unverified).await?;
        let records = if namespace_exists {
            record::load(self, &kinds, &plan.bundle, &plan.namespace).await?
        } else {
            Vec::new()
        };
        // Pruning needs the kinds of earlier revisions' objects too.
        let inventory_groups: BTreeSet<String> =
            record::current_inventory(&records).into_iter().map(|e| e.id.group).collect();
        if !inventory_groups.is_subset(&groups) {
            groups.extend(inventory_groups);
            kinds = self.kinds(&groups).await?;
        }

        let mut problems = Problems::default();
        for problem in check_versions(&plan, version) {
            problems.push(problem);
        }
        let (targets, kind_problems) = targets::resolve(&plan, &kinds);
        for problem in kind_problems {
            problems.push(problem);
        }
        if !namespace_exists {
            if let Some(problem) = self.check_namespace_creatable(&kinds, &plan.namespace).await? {
                problems.push(problem);
            }
        }
        if let Some(problem) = self.check_lock_access(&plan.bundle, &plan.namespace).await? {
            problems.push(problem);
        }
        for problem in self.check_secrets(&kinds, &plan, namespace_exists).await? {
            problems.push(problem);
        }
        let mut notes = Vec::new();
        for problem in self.check_storage(&kinds, &plan, &mut notes, &mut unverified).await? {
            problems.push(problem);
        }
        for problem in check_images(&plan) {
            problems.push(problem);
        }
        let inventory: BTreeSet<ObjectId> =
            record::current_inventory(&records).into_iter().map(|e| e.id).collect();
        // In a namespace that does not exist yet, only cluster-scoped objects can exist.
        let existing =
            targets.iter().filter(|t| t.served && (namespace_exists || !t.kind.namespaced));
        for target in existing {
            let live = match access(self.get(&target.kind, &target.id).await)? {
                Access::Allowed(Some(live)) => live,
                Access::Allowed(None) => continue,
                Access::Forbidden(message) => {
                    problems.push(
                        Problem::new("preflight", target.id.to_string(), format!("cannot be read: {message}"))
                            .hint("deploying it needs permissions this identity lacks; `charmer rbac BUNDLE` prints the Role (and ClusterRole) to grant"),
                    );
                    continue;
                }
            };
            let in_inventory = inventory.contains(&target.id);
            match live_problem(&plan.bundle, &target.id, &live, in_inventory) {
                Some(LiveProblem::Terminating(problem)) => problems.push(problem),
                Some(LiveProblem::Owned(owner)) if options.adopt => {
                    notes.push(format!("adopting {}: {owner}", target.id));
                }
                Some(LiveProblem::Owned(owner)) => problems.push(
                    Problem::new("preflight", target.id.to_string(), format!("{owner}; deploy does not take it over silently"))
                        .hint("deploy with --adopt to take it over, or rename the object or deploy into another namespace"),
                ),
                None => {}
            }
        }
        let warnings = if options.strict {
            for problem in unverified.problems() {
                problems.push(problem);
            }
            Vec::new()
        } else {
            unverified.warnings()
        };
        problems.into_result(())?;
        Ok(Prepared { plan, targets, kinds, namespace_exists, records, version, notes, warnings })
    }

    /// Whether the namespace exists. An identity that may not read it is assumed to work in
    /// an existing namespace (the check is reported as not verified): a missing one fails the
    /// first write, naming it.
    async fn namespace_exists(
        &self,
        kinds: &Kinds,
        namespace: &str,
        unverified: &mut Unverified,
    ) -> Result<bool, DeployError> {
        let Lookup::Served(kind) = kinds.find("v1", "Namespace") else {
            return Err(DeployError::NotServed("Namespaces"));
        };
        match access(self.get(&kind, &namespace_id(namespace)).await)? {
            Access::Allowed(found) => Ok(found.is_some()),
            Access::Forbidden(message) => {
                unverified.assume(
                    &format!("namespace {namespace}"),
                    &format!("get namespaces \"{namespace}\""),
                    "assuming it exists",
                    message,
                );
                Ok(true)
            }
        }
    }

    async fn check_namespace_creatable(
        &self,
        kinds: &Kinds,
        namespace: &str,
    ) -> Result<Option<Problem>, DeployError> {
        let Lookup::Served(kind) = kinds.find("v1", "Namespace") else { return Ok(None) };
        match self.apply_object(&kind, &namespace_id(namespace), &namespace_object(namespace), super::FIELD_MANAGER, true).await {
            Ok(_) => Ok(None),
            Err(DeployError::Api { message, .. }) => Ok(Some(
                Problem::new("preflight", format!("namespace {namespace}"), format!("does not exist and cannot be created: {message}"))
                    .hint("ask an administrator to create it, or deploy into a namespace you may use with --namespace"),
            )),
            Err(e) => Err(e),
        }
    }

    async fn check_secrets(
        &self,
        kinds: &Kinds,
        plan: &Plan,
        namespace_exists: bool,
    ) -> Result<Vec<Problem>, DeployError> {
        let rendered: BTreeSet<&str> = plan
            .objects
            .iter()
            .filter(|o| o.object["kind"] == "Secret")
            .filter_map(|o| o.object["metadata"]["name"].as_str())
            .collect();
        let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for app in &plan.apps {
            for secret in &app.required_secrets {
                if !rendered.contains(secret.as_str()) {
                    wanted.entry(secret).or_default().push(&app.name);
                }
            }
        }
        let Lookup::Served(kind) = kinds.find("v1", "Secret") else { return Ok(Vec::new()) };
        let mut pull_secrets = BTreeSet::new();
        for o in &plan.objects {
            image_pull_secrets(&o.object, &mut pull_secrets);
        }
        let mut problems = Vec::new();
        for (secret, apps) in wanted {
            let id = ObjectId {
                group: String::new(),
                kind: "Secret".into(),
                namespace: Some(plan.namespace.clone()),
                name: secret.to_string(),
            };
            if namespace_exists && self.get(&kind, &id).await?.is_some() {
                continue;
            }
            let ns = &plan.namespace;
            let create = if pull_secrets.contains(secret) {
                // A registry login: the Secret must be of type kubernetes.io/dockerconfigjson.
                format!("kubectl create secret docker-registry {secret} -n {ns} --docker-server=REGISTRY --docker-username=USER --docker-password=PASSWORD")
            } else {
                format!("kubectl create secret generic {secret} -n {ns} --from-literal=KEY=VALUE")
            };
            problems.push(
                Problem::new(
                    "preflight",
                    id.to_string(),
                    format!("required by {} but missing", apps.join(", ")),
                )
                .hint(format!("create it before deploying: {create}")),
            );
        }
        Ok(problems)
    }

    async fn check_storage(
        &self,
        kinds: &Kinds,
        plan: &Plan,
        notes: &mut Vec<String>,
        unverified: &mut Unverified,
    ) -> Result<Vec<Problem>, DeployError> {
        let claims = claims(plan);
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let classes = match kinds.find("storage.k8s.io/v1", "StorageClass") {
            Lookup::Served(kind) => match access(self.list(&kind, None, "").await)? {
                Access::Allowed(classes) => classes,
                Access::Forbidden(message) => {
                    // Without the classes, no claim can be judged.
                    unverified.add(
                        "storage class",
                        "list storageclasses.storage.k8s.io at the cluster scope",
                        message,
                    );
                    return Ok(Vec::new());
                }
            },
            _ => Vec::new(),
        };
        let names: BTreeSet<&str> =
            classes.iter().filter_map(|c| c["metadata"]["name"].as_str()).collect();
        let default_class = classes.iter().any(|c| {
            let annotations = &c["metadata"]["annotations"];
            [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|a| annotations[*a] == "true")
        });
        let rendered_classes: BTreeSet<&str> = plan
            .objects
            .iter()
            .filter(|o| o.object["kind"] == "StorageClass")
            .filter_map(|o| o.object["metadata"]["name"].as_str())
            .collect();
        let volumes: Vec<&Value> = plan
            .objects
            .iter()
            .filter(|o| o.object["kind"] == "PersistentVolume")
            .map(|o| &o.object)
            .collect();
        // Pre-created volumes (seed 000's workaround for clusters with no provisioner).
        // `None`: the identity may not list them, so a claim no class serves is not verified.
        let (claim_kind, mut cluster_volumes) =
            match (kinds.find("v1", "PersistentVolumeClaim"), kinds.find("v1", "PersistentVolume"))
            {
                (Lookup::Served(claim_kind), Lookup::Served(volume_kind)) => {
                    match access(self.list(&volume_kind, None, "").await)? {
                        Access::Allowed(volumes) => (Some(claim_kind), Some(volumes)),
                        Access::Forbidden(message) => {
                            unverified.add(
                                "pre-created PersistentVolumes",
                                "list persistentvolumes at the cluster scope",
                                message,
                            );
                            (Some(claim_kind), None)
                        }
                    }
                }
                _ => (None, Some(Vec::new())),
            };
        let mut problems = Vec::new();
        for claim in claims {
            let bound_volume = volumes.iter().any(|v| {
                let name_matches =
                    claim.volume_name.is_some_and(|n| v["metadata"]["name"].as_str() == Some(n));
                let class_matches =
                    claim.class.is_some_and(|c| v["spec"]["storageClassName"].as_str() == Some(c));
                name_matches || class_matches
            });
            if bound_volume {
                continue;
            }
            match claim.class {
                Some("") if claim.volume_name.is_none() => {}
                Some(class) if names.contains(class) || rendered_classes.contains(class) => {}
                None if default_class => {}
                class => {
                    // Each claim (each replica's, for claim templates) needs its own volume,
                    // unless it exists and is bound already (a re-deploy, a kept claim).
                    let mut missing = 0;
                    for name in &claim.names {
                        if let Some(kind) = &claim_kind {
                            let id = ObjectId {
                                group: String::new(),
                                kind: "PersistentVolumeClaim".into(),
                                namespace: Some(plan.namespace.clone()),
                                name: name.clone(),
                            };
                            let live = self.get(kind, &id).await?;
                            if live.is_some_and(|c| c["status"]["phase"] == "Bound") {
                                continue;
                            }
                        }
                        let claim_ref = (plan.namespace.as_str(), name.as_str());
                        let Some(cluster_volumes) = cluster_volumes.as_mut() else { continue };
                        match take_volume(cluster_volumes, &claim, claim_ref) {
                            Some(volume) => notes.push(format!(
                                "{}{}: will bind the pre-created {volume}",
                                claim.subject,
                                if claim.names.len() > 1 {
                                    format!(" ({name})")
                                } else {
                                    String::new()
                                }
                            )),
                            None => missing += 1,
                        }
                    }
                    if missing == 0 {
                        continue;
                    }
                    let (message, hint) = match class {
                        Some(class) => (
                            format!("storage class {class:?} does not exist in the cluster, and no pre-created PersistentVolume of that class fits it"),
                            storage_hint(&names, Some(class)),
                        ),
                        None => (
                            "no storage class is set, the cluster has no default storage class, and no pre-created PersistentVolume without a class fits it".to_string(),
                            storage_hint(&names, None),
                        ),
                    };
                    problems.push(Problem::new("preflight", &claim.subject, message).hint(hint));
                }
            }
        }
        Ok(problems)
    }
}

/// Why preflight stops at a live object a target would overwrite.
enum LiveProblem {
    /// It is being deleted.
    Terminating(Problem),
    /// Someone else manages it (the text names whom).
    Owned(String),
}

/// Whether a live object may be applied over: nobody else manages it, and it is not on its
/// way out. Objects of the bundle's inventory, labelled with the bundle or kept from it are
/// the bundle's own.
fn live_problem(
    bundle: &str,
    id: &ObjectId,
    live: &Value,
    in_inventory: bool,
) -> Option<LiveProblem> {
    let meta = &live["metadata"];
    if let Some(since) = meta["deletionTimestamp"].as_str() {
        let finalizers: Vec<&str> =
            meta["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let held = if finalizers.is_empty() {
            String::new()
        } else {
            format!(", held by finalizers {}", finalizers.join(", "))
        };
        let hint = if id.kind == "PersistentVolumeClaim" {
            "a claim goes once no pod mounts it; wait for its pods to end, then deploy again"
        } else {
            "wait until it is gone, then deploy again"
        };
        return Some(LiveProblem::Terminating(
            Problem::new("preflight", id.to_string(), format!("is being deleted (since {since}{held}); applying now would recreate nothing and lose it"))
                .hint(hint),
        ));
    }
    let label = meta["labels"][BUNDLE_LABEL].as_str();
    if let Some(other) = label.filter(|b| *b != bundle) {
        return Some(LiveProblem::Owned(format!(
            "bundle {other} manages it (label {}={other})",
            BUNDLE_LABEL
        )));
    }
    if let Some(other) = kept_from(live).filter(|b| *b != bundle) {
        return Some(LiveProblem::Owned(format!("it holds data kept from bundle {other}")));
    }
    if in_inventory || label.is_some() || kept_from(live).is_some() {
        return None;
    }
    let foreign: BTreeSet<&str> = meta["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .filter(|m| ![FIELD_MANAGER, GENERATE_MANAGER, KEEP_MANAGER].contains(m))
        .collect();
    (!foreign.is_empty()).then(|| {
        let managers: Vec<&str> = foreign.into_iter().collect();
        LiveProblem::Owned(format!(
            "it exists and is managed by {} (field manager {}), not by charmer",
            if managers.len() == 1 { "another tool" } else { "other tools" },
            managers.join(", ")
        ))
    })
}

/// Takes the smallest pre-created volume the claim can bind: free (or reserved for this
/// claim), of the claim's class (none: no class), big enough, with its access modes and
/// volume mode. Returns how to name it.
fn take_volume(
    volumes: &mut Vec<Value>,
    claim: &Claim<'_>,
    claim_ref: (&str, &str),
) -> Option<String> {
    let class = claim.class.unwrap_or("");
    let fits = |v: &Value| {
        let spec = &v["spec"];
        let reference = &spec["claimRef"];
        let free = match reference["name"].as_str() {
            Some(name) => (reference["namespace"].as_str().unwrap_or(""), name) == claim_ref,
            None => v["status"]["phase"].as_str().is_none_or(|p| p == "Available"),
        };
        let modes: BTreeSet<&str> = spec["accessModes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let size = spec["capacity"]["storage"].as_str().and_then(quantity);
        free && spec["storageClassName"].as_str().unwrap_or("") == class
            && claim.volume_name.is_none_or(|n| v["metadata"]["name"].as_str() == Some(n))
            && claim.access_modes.iter().all(|m| modes.contains(m))
            && spec["volumeMode"].as_str().unwrap_or("Filesystem") == claim.volume_mode
            && match (claim.request, size) {
                (Some(wanted), Some(size)) => size >= wanted,
                (None, _) => true,
                (Some(_), None) => false,
            }
    };
    let best = volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| fits(v))
        .min_by(|(_, a), (_, b)| {
            let size = |v: &Value| v["spec"]["capacity"]["storage"].as_str().and_then(quantity);
            size(a).partial_cmp(&size(b)).unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)?;
    let volume = volumes.remove(best);
    let spec = &volume["spec"];
    let modes: Vec<&str> =
        spec["accessModes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    Some(format!(
        "PersistentVolume {} (storageClassName {:?}, {}, {})",
        volume["metadata"]["name"].as_str().unwrap_or("?"),
        spec["storageClassName"].as_str().unwrap_or(""),
        spec["capacity"]["storage"].as_str().unwrap_or("?"),
        modes.join(", ")
    ))
}

/// A Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1e9`) in bytes.
fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split =
        text.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn storage_hint(existing: &BTreeSet<&str>, class: Option<&str>) -> String {
    let existing = if existing.is_empty() {
        "none".to_string()
    } else {
        existing.iter().copied().collect::<Vec<_>>().join(", ")
    };
    let class = class.map(|c| format!(" with storageClassName {c}")).unwrap_or_default();
    format!("set the charm's storage class option to an existing class (existing: {existing}), install a provisioner, or render a hostPath PersistentVolume{class}")
}

/// One volume claim of the plan: a PersistentVolumeClaim or a StatefulSet's claim template.
struct Claim<'a> {
    subject: String,
    /// The claims it makes: one, or one per replica of a StatefulSet.
    names: Vec<String>,
    class: Option<&'a str>,
    volume_name: Option<&'a str>,
    /// Requested bytes.
    request: Option<f64>,
    access_modes: Vec<&'a str>,
    volume_mode: &'a str,
}

fn claim(spec: &Value, subject: String, names: Vec<String>) -> Claim<'_> {
    Claim {
        subject,
        names,
        class: spec["storageClassName"].as_str(),
        volume_name: spec["volumeName"].as_str(),
        request: spec["resources"]["requests"]["storage"].as_str().and_then(quantity),
        access_modes: spec["accessModes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
        volume_mode: spec["volumeMode"].as_str().unwrap_or("Filesystem"),
    }
}

fn claims(plan: &Plan) -> Vec<Claim<'_>> {
    let mut claims = Vec::new();
    for o in &plan.objects {
        let object = &o.object;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or(&plan.namespace);
        match object["kind"].as_str() {
            Some("PersistentVolumeClaim") => claims.push(claim(
                &object["spec"],
                format!("PersistentVolumeClaim/{namespace}/{name}"),
                vec![name.to_string()],
            )),
            Some("StatefulSet") => {
                let replicas = object["spec"]["replicas"].as_u64().unwrap_or(1);
                for template in
                    object["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten()
                {
                    let claim_name = template["metadata"]["name"].as_str().unwrap_or_default();
                    claims.push(claim(
                        &template["spec"],
                        format!("StatefulSet/{namespace}/{name} volumeClaimTemplates {claim_name}"),
                        (0..replicas).map(|i| format!("{claim_name}-{name}-{i}")).collect(),
                    ));
                }
            }
            _ => {}
        }
    }
    claims
}

fn check_versions(plan: &Plan, version: KubeVersion) -> Vec<Problem> {
    let mut problems = Vec::new();
    let report = |problems: &mut Vec<Problem>, subject: String, need: &VersionNeed| {
        if !need.allows(version) {
            let hint = match need.op {
                VersionOp::AtLeast => "upgrade the cluster, or choose charm options (or a charm version) that do not need it",
                VersionOp::Below => "use a charm version written for this cluster's Kubernetes release",
            };
            problems.push(
                Problem::new(
                    "preflight",
                    subject,
                    format!("{} needs {need}; the cluster runs {version}", need.source),
                )
                .hint(hint),
            );
        }
    };
    for app in &plan.apps {
        for need in &app.kubernetes {
            report(&mut problems, format!("application {}", app.name), need);
        }
    }
    for o in &plan.objects {
        let Some(text) = o.object["metadata"]["annotations"][MIN_KUBERNETES_ANNOTATION].as_str()
        else {
            continue;
        };
        let subject = object_id(&o.object, None).map(|id| id.to_string()).unwrap_or_default();
        match text.parse::<KubeVersion>() {
            Ok(min) => report(
                &mut problems,
                format!("application {} {subject}", o.app),
                &VersionNeed {
                    op: VersionOp::AtLeast,
                    version: min,
                    source: format!("annotation {MIN_KUBERNETES_ANNOTATION}"),
                },
            ),
            Err(e) => problems.push(Problem::new(
                "preflight",
                format!("application {} {subject}", o.app),
                format!("annotation {MIN_KUBERNETES_ANNOTATION}: {e}"),
            )),
        }
    }
    problems
}

fn check_images(plan: &Plan) -> Vec<Problem> {
    let mut problems = Vec::new();
    for o in &plan.objects {
        let subject = object_id(&o.object, Some(&plan.namespace))
            .map(|id| id.to_string())
            .unwrap_or_default();
        let mut images = Vec::new();
        collect_images(&o.object, &mut images);
        for (container, image) in images {
            match image.parse::<Reference>() {
                Err(e) => problems.push(Problem::new(
                    "preflight",
                    format!("{subject} container {container}"),
                    e.to_string(),
                )),
                Ok(reference) => {
                    if let Some(registry) = plan.registry.as_ref().filter(|r| !reference.is_in(r)) {
                        problems.push(
                            Problem::new("preflight", format!("{subject} container {container}"), format!("image {reference} is not in the registry {registry}"))
                                .hint("render with --registry so images are relocated, and push them with `charmer images push`"),
                        );
                    }
                }
            }
        }
    }
    problems
}

/// Every (container name, image) in an object: any `containers`, `initContainers` or
/// `ephemeralContainers` list at any depth, so pod templates of custom resources count too.
pub(crate) fn collect_images<'a>(value: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if matches!(key.as_str(), "containers" | "initContainers" | "ephemeralContainers") {
                    for c in child.as_array().into_iter().flatten() {
                        if let Some(image) = c["image"].as_str() {
                            out.push((c["name"].as_str().unwrap_or("?"), image));
                        }
                    }
                } else {
                    collect_images(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_images(i, out)),
        _ => {}
    }
}

pub(crate) fn namespace_id(namespace: &str) -> ObjectId {
    ObjectId {
        group: String::new(),
        kind: "Namespace".into(),
        namespace: None,
        name: namespace.to_string(),
    }
}

/// The namespace deploy creates when it is missing (not part of any inventory: removing a
/// bundle never deletes its namespace).
pub(crate) fn namespace_object(namespace: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"app.kubernetes.io/managed-by": "charmer"}},
    })
}

/// Adds the names in every `imagePullSecrets` list of `object` (pod specs at any depth).
fn image_pull_secrets<'a>(object: &'a Value, names: &mut BTreeSet<&'a str>) {
    match object {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "imagePullSecrets" {
                    let listed = value.as_array().into_iter().flatten();
                    names.extend(listed.filter_map(|s| s["name"].as_str()));
                } else {
                    image_pull_secrets(value, names);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| image_pull_secrets(i, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::{PlanApp, PlanObject};
    use super::*;
    use serde_json::json;

    fn plan(objects: Vec<Value>) -> Plan {
        Plan {
            bundle: "b".into(),
            namespace: "ns".into(),
            registry: Some("registry.local:5000".parse().unwrap()),
            apps: vec![PlanApp {
                kubernetes: super::super::plan::kubernetes_needs(&[serde_yaml::Value::String(
                    "k8s-api >= 1.20".into(),
                )]),
                ..PlanApp::new("web", "web", "1.0.0")
            }],
            objects: objects
                .into_iter()
                .map(|object| PlanObject { app: "web".into(), object })
                .collect(),
        }
    }

    #[test]
    fn images_outside_the_registry_are_named_with_their_container() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"initContainers": [{"name": "init", "image": "registry.local:5000/busybox:1"}],
                                             "containers": [{"name": "app", "image": "nginx:1.25"}]}}}});
        let problems = check_images(&plan(vec![deployment]));
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.contains("Deployment/ns/web container app"), "{text}");
        assert!(
            text.contains(
                "docker.io/library/nginx:1.25 is not in the registry registry.local:5000"
            ),
            "{text}"
        );
    }

    #[test]
    fn version_needs_come_from_assumes_and_annotations() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {MIN_KUBERNETES_ANNOTATION: "1.22"}}});
        let p = plan(vec![cm]);
        assert!(check_versions(&p, KubeVersion { major: 1, minor: 22 }).is_empty());
        let problems = check_versions(&p, KubeVersion { major: 1, minor: 19 });
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].to_string().contains(
                "assumes: k8s-api >= 1.20 needs Kubernetes >= 1.20; the cluster runs 1.19"
            ),
            "{}",
            problems[0]
        );
        assert!(problems[1].to_string().contains("ConfigMap/c"), "{}", problems[1]);
    }

    #[test]
    fn quantities_are_bytes() {
        assert_eq!(quantity("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity("500M"), Some(5e8));
        assert_eq!(quantity("1.5Ti"), Some(1.5 * 1024f64.powi(4)));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("2048"), Some(2048.0));
        assert_eq!(quantity("10GB"), None);
        assert!(quantity("1Gi") > quantity("1G"));
    }

    #[test]
    fn live_objects_of_others_or_on_their_way_out_are_problems() {
        let id = ObjectId {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "c".into(),
        };
        let managed =
            |manager: &str| json!({"metadata": {"managedFields": [{"manager": manager}]}});
        let owned = |live: &Value, in_inventory| match live_problem("b", &id, live, in_inventory) {
            Some(LiveProblem::Owned(owner)) => Some(owner),
            Some(LiveProblem::Terminating(p)) => Some(p.to_string()),
            None => None,
        };
        assert_eq!(owned(&managed(FIELD_MANAGER), false), None);
        assert_eq!(owned(&managed(GENERATE_MANAGER), false), None);
        assert_eq!(
            owned(&managed("helm"), false).as_deref(),
            Some("it exists and is managed by another tool (field manager helm), not by charmer")
        );
        assert_eq!(owned(&managed("helm"), true), None, "our inventory: others may add fields");
        let other = json!({"metadata": {"labels": {BUNDLE_LABEL: "iot"}}});
        assert_eq!(
            owned(&other, true).as_deref(),
            Some("bundle iot manages it (label charmer.io/bundle=iot)")
        );
        let kept = json!({"metadata": {"labels": {crate::contract::KEPT_FROM_LABEL: "iot"}}});
        assert_eq!(owned(&kept, false).as_deref(), Some("it holds data kept from bundle iot"));
        let going = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x/y"]}});
        assert!(owned(&going, true)
            .unwrap()
            .contains("is being deleted (since 2026-01-01T00:00:00Z, held by finalizers x/y)"));
    }

    #[test]
    fn claims_include_statefulset_templates() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "fast"}}]}});
        let p = plan(vec![sts]);
        let found = claims(&p);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, Some("fast"));
        assert_eq!(found[0].subject, "StatefulSet/ns/db volumeClaimTemplates data");
    }
}
