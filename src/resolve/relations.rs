//! Relations: endpoint inference, interface checks, required endpoints, and the data each
//! provider publishes to the applications related to it.

use std::collections::BTreeMap;

use super::model::{Application, Model, Relation, RelationData};
use crate::bundle::{Bundle, RelationEnd, RelationSpec};
use crate::charm::metadata::role_key;
use crate::charm::Role;
use crate::diag::{Problem, Problems};

/// Resolves every relation of the bundle to concrete endpoints, reporting unknown
/// applications and endpoints, interface mismatches, ambiguous or impossible pairs,
/// duplicates and endpoint limits.
pub(super) fn resolve(
    bundle: &Bundle,
    apps: &BTreeMap<String, Application>,
    problems: &mut Problems,
) -> Vec<Relation> {
    let mut relations: Vec<Relation> = Vec::new();
    for spec in &bundle.relations {
        let file = spec.file.display().to_string();
        let key = format!("relations[{}]", spec.index);
        let mut missing = false;
        for end in &spec.ends {
            if !bundle.applications.contains_key(&end.app) {
                problems.push(
                    Problem::new(&file, &key, format!("unknown application {:?}", end.app))
                        .hint("add it under applications or fix the name"),
                );
                missing = true;
            }
        }
        if missing {
            continue;
        }
        let (Some(a), Some(b)) = (apps.get(&spec.ends[0].app), apps.get(&spec.ends[1].app)) else {
            continue; // the charm itself failed to resolve; already reported
        };
        match pair(spec, a, b) {
            Ok(relation) => {
                if relations.contains(&relation) {
                    problems.push(Problem::new(
                        &file,
                        &key,
                        format!("duplicate relation {} - {}", spec.ends[0], spec.ends[1]),
                    ));
                } else {
                    relations.push(relation);
                }
            }
            Err(message) => problems.push(Problem::new(&file, &key, message.0).hint(message.1)),
        }
    }
    relations.sort();
    check_limits(bundle, apps, &relations, problems);
    relations
}

/// (message, hint)
struct Mismatch(String, String);

fn pair(spec: &RelationSpec, a: &Application, b: &Application) -> Result<Relation, Mismatch> {
    let candidates =
        |end: &RelationEnd, app: &Application| -> Result<Vec<(String, Role, String)>, Mismatch> {
            let meta = &app.charm.metadata;
            match &end.endpoint {
                Some(ep) => match meta.endpoint(ep) {
                    Some((role, e)) => Ok(vec![(ep.clone(), role, e.interface.clone())]),
                    None => {
                        let known: Vec<String> = meta
                            .endpoints()
                            .filter(|(r, _, _)| *r != Role::Peers)
                            .map(|(_, n, _)| n.clone())
                            .collect();
                        Err(Mismatch(
                            format!(
                                "application {:?} (charm {}) has no endpoint {ep:?}",
                                end.app,
                                app.charm.name()
                            ),
                            format!("endpoints: {}", known.join(", ")),
                        ))
                    }
                },
                None => Ok(meta
                    .endpoints()
                    .filter(|(r, _, _)| *r != Role::Peers)
                    .map(|(r, n, e)| (n.clone(), r, e.interface.clone()))
                    .collect()),
            }
        };
    let left = candidates(&spec.ends[0], a)?;
    let right = candidates(&spec.ends[1], b)?;
    let fits = |(_, ra, ia): &(String, Role, String), (_, rb, ib): &(String, Role, String)| {
        ia == ib
            && matches!(
                (ra, rb),
                (Role::Provides, Role::Requires) | (Role::Requires, Role::Provides)
            )
    };
    let matches: Vec<_> = left
        .iter()
        .flat_map(|l| right.iter().filter(move |r| fits(l, r)).map(move |r| (l, r)))
        .collect();
    match matches.as_slice() {
        [(l, r)] => {
            let ends = [(a.name.clone(), l.0.clone()), (b.name.clone(), r.0.clone())];
            let [first, second] =
                if ends[0] <= ends[1] { ends } else { [ends[1].clone(), ends[0].clone()] };
            Ok(Relation { a: first, b: second, interface: l.2.clone() })
        }
        [] if spec.ends.iter().all(|e| e.endpoint.is_some()) => {
            let (l, r) = (&left[0], &right[0]);
            if l.2 != r.2 {
                Err(Mismatch(
                    format!(
                        "interface mismatch: {} uses {:?} but {} uses {:?}",
                        spec.ends[0], l.2, spec.ends[1], r.2
                    ),
                    "relate endpoints that share an interface".to_string(),
                ))
            } else {
                Err(Mismatch(
                    format!(
                        "{} ({}) and {} ({}) cannot be related",
                        spec.ends[0],
                        role_key(l.1),
                        spec.ends[1],
                        role_key(r.1)
                    ),
                    "a relation joins a provides endpoint to a requires endpoint".to_string(),
                ))
            }
        }
        [] => Err(Mismatch(
            format!("no endpoints of {} and {} share an interface", spec.ends[0], spec.ends[1]),
            "name the endpoints explicitly: [app:endpoint, other:endpoint]".to_string(),
        )),
        many => {
            let options: Vec<String> = many
                .iter()
                .map(|(l, r)| format!("[{}:{}, {}:{}]", a.name, l.0, b.name, r.0))
                .collect();
            Err(Mismatch(
                format!("ambiguous relation {} - {}", spec.ends[0], spec.ends[1]),
                format!("name the endpoints: {}", options.join(" or ")),
            ))
        }
    }
}

fn check_limits(
    bundle: &Bundle,
    apps: &BTreeMap<String, Application>,
    relations: &[Relation],
    problems: &mut Problems,
) {
    let mut counts: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for r in relations {
        for (app, ep) in [&r.a, &r.b] {
            *counts.entry((app, ep)).or_default() += 1;
        }
    }
    for ((app, ep), count) in counts {
        let limit =
            apps.get(app).and_then(|a| a.charm.metadata.endpoint(ep)).and_then(|(_, e)| e.limit);
        if let Some(limit) = limit.filter(|l| count > *l) {
            problems.push(Problem::new(
                bundle.file.display().to_string(),
                "relations",
                format!("{app}:{ep} is in {count} relations, more than its limit of {limit}"),
            ));
        }
    }
}

/// Every non-optional `requires` endpoint must be related. Runs beside every other check
/// (a bad option must not hide a missing relation), but skips applications named by a
/// relation that did not resolve: that relation's problem is already reported, and its
/// endpoint would only be reported again as unrelated.
pub(super) fn check_required(
    bundle: &Bundle,
    apps: &BTreeMap<String, Application>,
    relations: &[Relation],
    problems: &mut Problems,
) {
    let resolved = |spec: &RelationSpec| {
        let [x, y] = [&spec.ends[0].app, &spec.ends[1].app];
        relations.iter().any(|r| (&r.a.0 == x && &r.b.0 == y) || (&r.a.0 == y && &r.b.0 == x))
    };
    let uncertain: Vec<&str> = bundle
        .relations
        .iter()
        .filter(|spec| !resolved(spec))
        .flat_map(|spec| spec.ends.iter().map(|e| e.app.as_str()))
        .collect();
    // Juju itself never requires a relation: an operator charm decides what it does without
    // one (it reports a blocked status), so only charmer's own charms are held to this.
    let manifests = apps.values().filter(|a| {
        a.charm.kind() == crate::charm::Kind::Manifests && !uncertain.contains(&a.name.as_str())
    });
    for app in manifests {
        for (name, endpoint) in &app.charm.metadata.requires {
            if endpoint.optional {
                continue;
            }
            let related = relations.iter().any(|r| {
                (r.a.0 == app.name && &r.a.1 == name) || (r.b.0 == app.name && &r.b.1 == name)
            });
            if !related {
                let providers: Vec<String> = apps
                    .values()
                    .flat_map(|other| {
                        other
                            .charm
                            .metadata
                            .provides
                            .iter()
                            .filter(|(_, e)| e.interface == endpoint.interface)
                            .map(move |(n, _)| format!("[{}:{name}, {}:{n}]", app.name, other.name))
                    })
                    .collect();
                let hint = if providers.is_empty() {
                    format!(
                        "add an application providing interface {:?} and relate it",
                        endpoint.interface
                    )
                } else {
                    format!("add the relation {}", providers.join(" or "))
                };
                let file = bundle
                    .applications
                    .get(&app.name)
                    .map(|s| s.file.display().to_string())
                    .unwrap_or_default();
                problems.push(
                    Problem::new(
                        file,
                        format!("applications.{}", app.name),
                        format!(
                            "requires endpoint {name:?} (interface {}) is not related",
                            endpoint.interface
                        ),
                    )
                    .hint(hint),
                );
            }
        }
    }
}

/// Renders each provider's `publishes:` values with the provider's own context and hands
/// them to the related application.
pub(super) fn publish_data(model: &mut Model, problems: &mut Problems) {
    let mut deliveries: Vec<(String, String, RelationData)> = Vec::new();
    for relation in &model.relations {
        for (provider, requirer) in [(&relation.a, &relation.b), (&relation.b, &relation.a)] {
            let Some(app) = model.applications.get(&provider.0) else { continue };
            let Some(endpoint) = app.charm.metadata.provides.get(&provider.1) else { continue };
            let data = if endpoint.publishes.is_empty() {
                BTreeMap::new()
            } else {
                match super::context::relation_data(model, app, &provider.1, &endpoint.publishes) {
                    Ok(data) => data,
                    Err(p) => {
                        problems.extend(p);
                        continue;
                    }
                }
            };
            let delivered = RelationData {
                app: provider.0.clone(),
                endpoint: provider.1.clone(),
                interface: relation.interface.clone(),
                data,
            };
            deliveries.push((requirer.0.clone(), requirer.1.clone(), delivered));
        }
    }
    for (app, endpoint, data) in deliveries {
        if let Some(target) = model.applications.get_mut(&app) {
            let list = target.relation_data.entry(endpoint).or_default();
            list.push(data);
            list.sort_by(|x, y| x.app.cmp(&y.app));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::resolve::testing::{app, app_spec, charm, lines, model};

    /// frontend → backend → mongodb, and an admin that could take backend's API twice.
    fn apps() -> BTreeMap<String, Application> {
        let backend = "provides:\n  api:\n    interface: http\n    \
                       publishes: {url: 'http://{{ app }}.{{ namespace }}:8080'}\n\
                       requires:\n  database: mongodb\n";
        let admin = "requires:\n  api: http\n  stats: {interface: http, optional: true}\n";
        [
            app("frontend", charm("frontend", "requires:\n  api: http\n", "")),
            app("backend", charm("backend", backend, "")),
            app(
                "mongodb",
                charm("mongodb", "provides:\n  database: {interface: mongodb, limit: 1}\n", ""),
            ),
            app("admin", charm("admin", admin, "")),
        ]
        .into_iter()
        .map(|a| (a.name.clone(), a))
        .collect()
    }

    /// A bundle of `apps` (each defined in bundle.yaml) with `relations` written as
    /// `app` or `app:endpoint`.
    fn bundle(apps: &[&str], relations: &[[&str; 2]]) -> Bundle {
        let end = |text: &str| match text.split_once(':') {
            Some((app, ep)) => RelationEnd { app: app.into(), endpoint: Some(ep.into()) },
            None => RelationEnd { app: text.into(), endpoint: None },
        };
        Bundle {
            file: PathBuf::from("bundle.yaml"),
            name: "shop".into(),
            applications: apps.iter().map(|a| (a.to_string(), app_spec(a))).collect(),
            relations: relations
                .iter()
                .enumerate()
                .map(|(index, [a, b])| RelationSpec {
                    ends: [end(a), end(b)],
                    file: PathBuf::from("bundle.yaml"),
                    index,
                })
                .collect(),
            files_read: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn resolve_all(
        bundle: &Bundle,
        apps: &BTreeMap<String, Application>,
    ) -> (Vec<Relation>, Problems) {
        let mut problems = Problems::default();
        let relations = resolve(bundle, apps, &mut problems);
        (relations, problems)
    }

    fn end(app: &str, endpoint: &str) -> (String, String) {
        (app.to_string(), endpoint.to_string())
    }

    #[test]
    fn endpoints_left_out_are_found_by_interface_and_ends_are_sorted() {
        let b = bundle(
            &["frontend", "backend", "mongodb"],
            &[["frontend", "backend"], ["mongodb", "backend"]],
        );
        let (relations, problems) = resolve_all(&b, &apps());
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(
            relations,
            vec![
                Relation {
                    a: end("backend", "api"),
                    b: end("frontend", "api"),
                    interface: "http".into()
                },
                Relation {
                    a: end("backend", "database"),
                    b: end("mongodb", "database"),
                    interface: "mongodb".into()
                },
            ]
        );
    }

    #[test]
    fn two_fitting_endpoint_pairs_are_ambiguous_and_the_hint_names_both() {
        let b = bundle(&["admin", "backend"], &[["admin", "backend"]]);
        let (relations, problems) = resolve_all(&b, &apps());
        assert!(relations.is_empty());
        assert_eq!(
            lines(&problems),
            ["bundle.yaml: relations[0]: ambiguous relation admin - backend (hint: name the \
              endpoints: [admin:api, backend:api] or [admin:stats, backend:api])"]
        );
    }

    #[test]
    fn named_endpoints_must_exist_share_an_interface_and_pair_provides_with_requires() {
        let b = bundle(
            &["frontend", "backend", "mongodb"],
            &[
                ["frontend:web", "backend"],
                ["frontend:api", "mongodb:database"],
                ["frontend:api", "backend:database"],
            ],
        );
        let (_, problems) = resolve_all(&b, &apps());
        assert_eq!(
            lines(&problems),
            [
                "bundle.yaml: relations[0]: application \"frontend\" (charm frontend) has no \
                 endpoint \"web\" (hint: endpoints: api)",
                "bundle.yaml: relations[1]: interface mismatch: frontend:api uses \"http\" but \
                 mongodb:database uses \"mongodb\" (hint: relate endpoints that share an \
                 interface)",
                "bundle.yaml: relations[2]: interface mismatch: frontend:api uses \"http\" but \
                 backend:database uses \"mongodb\" (hint: relate endpoints that share an \
                 interface)",
            ]
        );
    }

    #[test]
    fn two_requires_endpoints_of_one_interface_cannot_be_related() {
        let b = bundle(&["frontend", "admin"], &[["frontend:api", "admin:api"]]);
        let (_, problems) = resolve_all(&b, &apps());
        assert_eq!(
            lines(&problems),
            ["bundle.yaml: relations[0]: frontend:api (requires) and admin:api (requires) cannot \
              be related (hint: a relation joins a provides endpoint to a requires endpoint)"]
        );
    }

    #[test]
    fn unknown_applications_and_duplicates_are_reported_at_their_index() {
        let b = bundle(
            &["frontend", "backend"],
            &[["frontend", "backend"], ["frontend", "cache"], ["backend:api", "frontend:api"]],
        );
        let (relations, problems) = resolve_all(&b, &apps());
        assert_eq!(relations.len(), 1);
        assert_eq!(
            lines(&problems),
            [
                "bundle.yaml: relations[1]: unknown application \"cache\" (hint: add it under \
                 applications or fix the name)",
                "bundle.yaml: relations[2]: duplicate relation backend:api - frontend:api",
            ]
        );
    }

    #[test]
    fn an_endpoint_in_more_relations_than_its_limit_is_reported() {
        let mut apps = apps();
        apps.insert("backend-2".into(), app("backend-2", apps["backend"].charm.clone()));
        let b = bundle(
            &["backend", "backend-2", "mongodb"],
            &[["backend", "mongodb"], ["backend-2", "mongodb"]],
        );
        let (relations, problems) = resolve_all(&b, &apps);
        assert_eq!(relations.len(), 2);
        assert_eq!(
            lines(&problems),
            ["bundle.yaml: relations: mongodb:database is in 2 relations, more than its limit of 1"]
        );
    }

    #[test]
    fn unrelated_required_endpoints_are_reported_with_the_relation_to_add() {
        let apps = apps();
        let b = bundle(&["frontend", "backend", "admin"], &[["frontend", "backend"]]);
        let (relations, _) = resolve_all(&b, &apps);
        let mut problems = Problems::default();
        let only = |names: &[&str]| -> BTreeMap<String, Application> {
            names.iter().map(|n| (n.to_string(), apps[*n].clone())).collect()
        };
        check_required(&b, &only(&["frontend", "backend", "admin"]), &relations, &mut problems);
        // admin's optional stats endpoint is not reported.
        assert_eq!(
            lines(&problems),
            [
                "bundle.yaml: applications.admin: requires endpoint \"api\" (interface http) is \
                 not related (hint: add the relation [admin:api, backend:api])",
                "bundle.yaml: applications.backend: requires endpoint \"database\" (interface \
                 mongodb) is not related (hint: add an application providing interface \
                 \"mongodb\" and relate it)",
            ]
        );
    }

    #[test]
    fn published_data_is_rendered_with_the_providers_context_and_given_to_the_requirer() {
        let apps = apps();
        let b = bundle(&["frontend", "backend"], &[["frontend", "backend"]]);
        let (relations, _) = resolve_all(&b, &apps);
        let mut model = model(vec![apps["frontend"].clone(), apps["backend"].clone()], None);
        model.relations = relations;
        let mut problems = Problems::default();
        publish_data(&mut model, &mut problems);
        assert!(problems.is_empty(), "{problems}");
        let data = &model.applications["frontend"].relation_data["api"];
        assert_eq!(
            data,
            &[RelationData {
                app: "backend".into(),
                endpoint: "api".into(),
                interface: "http".into(),
                data: BTreeMap::from([("url".into(), "http://backend.shop-ns:8080".into())]),
            }]
        );
        // Only providers publish: the requirer's side gives backend nothing.
        assert!(model.applications["backend"].relation_data.is_empty());
    }
}
