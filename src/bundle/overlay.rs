//! Merging a bundle file or overlay into the [`Bundle`] being built, with Juju's overlay
//! rules: a null or empty application body removes the application and every relation
//! naming it; other fields merge only where the overlay sets them (scalars and lists are
//! replaced, maps merge key by key, an empty map clears); `options: {foo: null}` removes
//! `foo` so the charm default applies again; relations are appended.

use std::path::Path;

use super::raw::{RawApp, RawFile};
use super::{AppSpec, Bundle, CharmRef, OptionSetting, RawValue, RelationSpec, Source};
use crate::diag::{Problem, Problems};

pub(super) fn apply(bundle: &mut Bundle, file: RawFile, source: &Source, problems: &mut Problems) {
    let label = file.path.display().to_string();
    let dir = file.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if let Some(mode) = file.network_policies {
        bundle.network_policies = mode;
    }
    for (name, body) in file.applications {
        let key = format!("applications.{name}");
        let Some(raw) = body else {
            // Removal is an overlay's way to drop an application; in the bundle itself an
            // empty application is a mistake Juju refuses too.
            if matches!(source, Source::Bundle(_)) {
                problems.push(
                    Problem::new(&label, &key, "has no body").hint(
                        "name the charm it runs: charm: <name> (or leave the application out)",
                    ),
                );
                continue;
            }
            bundle.applications.remove(&name);
            bundle.relations.retain(|r| r.ends.iter().all(|end| end.app != name));
            continue;
        };
        let existing = bundle.applications.remove(&name);
        let mut app = match existing {
            Some(app) => app,
            None => match &raw.charm {
                Some(_) => AppSpec::new(CharmRef::Name(String::new()), file.path.clone()),
                None => {
                    // Most often a misspelt application (`servng:`), not a new one.
                    let known: Vec<&str> = bundle.applications.keys().map(String::as_str).collect();
                    let hint = match crate::diag::closest(&name, &known) {
                        Some(close) => format!("did you mean {close:?}? (an overlay adds a new application only with charm: <name>; applications: {})", known.join(", ")),
                        None => "name the charm this application runs: charm: <name>".to_string(),
                    };
                    problems
                        .push(Problem::new(&label, format!("{key}.charm"), "missing").hint(hint));
                    continue;
                }
            },
        };
        merge_app(&mut app, raw, &dir, &label, &key, source, problems);
        bundle.applications.insert(name, app);
    }
    for (index, ends) in file.relations {
        let spec = RelationSpec { ends, file: file.path.clone(), index };
        let same = |r: &RelationSpec| {
            r.ends == spec.ends || (r.ends[0] == spec.ends[1] && r.ends[1] == spec.ends[0])
        };
        if !bundle.relations.iter().any(same) {
            bundle.relations.push(spec);
        }
    }
}

fn merge_app(
    app: &mut AppSpec,
    raw: RawApp,
    dir: &Path,
    label: &str,
    key: &str,
    source: &Source,
    problems: &mut Problems,
) {
    if let Some(charm) = raw.charm {
        app.charm = if charm.starts_with('.') || charm.starts_with('/') {
            CharmRef::Path(dir.join(charm))
        } else {
            CharmRef::Name(charm.strip_prefix("ch:").unwrap_or(&charm).to_string())
        };
        app.file = Path::new(label).to_path_buf();
    }
    if let Some(version) = raw.version {
        match super::version_requirement(&version) {
            Ok(req) => app.version = Some(req),
            Err((message, hint)) => problems.push(
                Problem::new(label, format!("{key}.version"), format!("{version:?} {message}"))
                    .hint(hint),
            ),
        }
    }
    if let Some(channel) = raw.channel {
        app.channel = Some(channel);
    }
    if let Some(revision) = raw.revision {
        match u64::try_from(revision) {
            Ok(revision) => app.revision = Some(revision),
            Err(_) => problems.push(
                Problem::new(
                    label,
                    format!("{key}.revision"),
                    format!("{revision} is not a revision"),
                )
                .hint("a Charmhub revision is a whole number, 0 or more"),
            ),
        }
    }
    if let Some(constraints) = raw.constraints {
        app.constraints = Some(constraints);
    }
    if let Some(scale) = raw.scale.or(raw.num_units) {
        match u32::try_from(scale) {
            Ok(scale) => app.scale = scale,
            Err(_) => problems.push(
                Problem::new(
                    label,
                    format!("{key}.scale"),
                    format!("{scale} is not a valid scale"),
                )
                .hint("scale is a whole number, 0 or more"),
            ),
        }
    }
    if let Some(trust) = raw.trust {
        app.trust = trust;
    }
    if let Some(options) = raw.options {
        if options.is_empty() {
            app.options.clear();
        }
        for (name, value) in options {
            if value.is_null() {
                app.options.remove(&name);
            } else {
                app.options.insert(
                    name,
                    OptionSetting { value: RawValue::Yaml(value), source: source.clone() },
                );
            }
        }
    }
    if let Some(resources) = raw.resources {
        if resources.is_empty() {
            app.resources.clear();
        }
        for (name, value) in resources {
            match value {
                serde_yaml::Value::Null => {
                    app.resources.remove(&name);
                }
                serde_yaml::Value::String(s) => {
                    app.resources.insert(name, s);
                }
                serde_yaml::Value::Number(n) => {
                    app.resources.insert(name, n.to_string());
                }
                _ => problems.push(Problem::new(
                    label,
                    format!("{key}.resources.{name}"),
                    "expected an image reference or a revision number",
                )),
            }
        }
    }
    if let Some(secrets) = raw.required_secrets {
        app.required_secrets = secrets;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::bundle::BundleInput;

    /// The bundle every test starts from.
    const BUNDLE: &str = "\
name: shop
bundle: kubernetes
applications:
  frontend:
    charm: frontend
    scale: 2
    options: {title: Shop, theme: dark}
    required-secrets: [tls, api-key]
  backend:
    charm: ch:backend
    options: {port: 8080}
    resources: {image: upstream.example/shop/backend:1.0}
  mongodb:
    charm: mongodb
relations:
  - [frontend, backend]
  - [backend:database, mongodb:database]
";

    /// A folder holding [`BUNDLE`] as `bundle.yaml` and `files` (relative path → text).
    pub(in crate::bundle) fn folder(files: &[(&str, &str)]) -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [("bundle.yaml", BUNDLE)].iter().chain(files) {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// What loading the folder's bundle with `overlays` (relative paths) starts from.
    pub(in crate::bundle) fn input(dir: &TempDir, overlays: &[&str]) -> BundleInput {
        BundleInput {
            bundle: dir.path().to_path_buf(),
            overlays: overlays.iter().map(|o| dir.path().join(o)).collect(),
            ..BundleInput::default()
        }
    }

    /// The folder's bundle with `overlays` applied, and every problem found.
    fn load(dir: &TempDir, overlays: &[&str]) -> (Bundle, Problems) {
        Bundle::load_partial(&input(dir, overlays)).unwrap()
    }

    /// An option as set: its value and where it came from.
    pub(in crate::bundle) fn option(
        bundle: &Bundle,
        app: &str,
        key: &str,
    ) -> Option<(RawValue, Source)> {
        let setting = bundle.applications[app].options.get(key)?;
        Some((setting.value.clone(), setting.source.clone()))
    }

    /// A YAML string value.
    pub(in crate::bundle) fn text(value: &str) -> RawValue {
        RawValue::Yaml(serde_yaml::Value::String(value.into()))
    }

    fn relations(bundle: &Bundle) -> Vec<String> {
        let show = |r: &RelationSpec| {
            let file = r.file.file_name().unwrap().to_string_lossy();
            format!("{} - {} ({file}[{}])", r.ends[0], r.ends[1], r.index)
        };
        bundle.relations.iter().map(show).collect()
    }

    #[test]
    fn a_null_or_empty_body_removes_the_application_and_its_relations() {
        for body in ["null", "", "{}"] {
            let dir = folder(&[("o.yaml", &format!("applications:\n  mongodb: {body}\n"))]);
            let (bundle, problems) = load(&dir, &["o.yaml"]);
            assert!(problems.is_empty(), "{problems}");
            let apps: Vec<&String> = bundle.applications.keys().collect();
            assert_eq!(apps, ["backend", "frontend"], "body {body:?}");
            assert_eq!(
                relations(&bundle),
                ["frontend - backend (bundle.yaml[0])"],
                "body {body:?}"
            );
        }
    }

    #[test]
    fn an_overlay_changes_only_the_fields_it_sets() {
        let overlay = "applications:\n  frontend: {scale: 3, options: {theme: light}}\n";
        let dir = folder(&[("o.yaml", overlay)]);
        let (bundle, problems) = load(&dir, &["o.yaml"]);
        assert!(problems.is_empty(), "{problems}");
        let frontend = &bundle.applications["frontend"];
        assert_eq!((frontend.scale, &frontend.charm), (3, &CharmRef::Name("frontend".into())));
        assert_eq!(frontend.required_secrets, ["tls", "api-key"]);
        let (bundle_file, overlay_file) =
            (dir.path().join("bundle.yaml"), dir.path().join("o.yaml"));
        assert_eq!(
            option(&bundle, "frontend", "title"),
            Some((text("Shop"), Source::Bundle(bundle_file)))
        );
        assert_eq!(
            option(&bundle, "frontend", "theme"),
            Some((text("light"), Source::Overlay(overlay_file)))
        );
        assert_eq!(bundle.applications["backend"].charm, CharmRef::Name("backend".into()));
    }

    #[test]
    fn lists_are_replaced_and_an_empty_map_clears() {
        let overlay = "applications:\n  frontend: {required-secrets: [tls-prod], options: {}}\n  \
                       backend: {resources: {}}\n";
        let dir = folder(&[("o.yaml", overlay)]);
        let (bundle, problems) = load(&dir, &["o.yaml"]);
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(bundle.applications["frontend"].required_secrets, ["tls-prod"]);
        assert!(bundle.applications["frontend"].options.is_empty());
        assert!(bundle.applications["backend"].resources.is_empty());
        assert!(option(&bundle, "backend", "port").is_some());
    }

    #[test]
    fn a_null_option_removes_the_setting_so_the_charm_default_applies() {
        let dir = folder(&[("o.yaml", "applications:\n  frontend: {options: {theme: null}}\n")]);
        let (bundle, problems) = load(&dir, &["o.yaml"]);
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(option(&bundle, "frontend", "theme"), None);
        assert_eq!(option(&bundle, "frontend", "title").map(|o| o.0), Some(text("Shop")));
    }

    #[test]
    fn relations_are_appended_once_whichever_way_round_they_are_written() {
        let overlay = "relations:\n  - [backend, frontend]\n  \
                       - [mongodb:database, backend:database]\n  - [frontend, mongodb]\n";
        let dir = folder(&[("o.yaml", overlay)]);
        let (bundle, problems) = load(&dir, &["o.yaml"]);
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(
            relations(&bundle),
            [
                "frontend - backend (bundle.yaml[0])",
                "backend:database - mongodb:database (bundle.yaml[1])",
                "frontend - mongodb (o.yaml[2])",
            ]
        );
    }

    #[test]
    fn includes_and_charm_paths_are_relative_to_the_file_holding_them() {
        let overlay =
            "applications:\n  frontend:\n    charm: ./charms/frontend\n    options:\n      \
                       title: include-file://title.txt\n      logo: include-base64://logo.txt\n";
        let dir = folder(&[
            ("overlays/prod.yaml", overlay),
            ("overlays/title.txt", "Prod shop\n"),
            ("overlays/logo.txt", "hi!"),
            ("title.txt", "not this one"),
        ]);
        let (bundle, problems) = load(&dir, &["overlays/prod.yaml"]);
        assert!(problems.is_empty(), "{problems}");
        let overlays = dir.path().join("overlays");
        assert_eq!(
            bundle.applications["frontend"].charm,
            CharmRef::Path(overlays.join("./charms/frontend"))
        );
        assert_eq!(option(&bundle, "frontend", "title").map(|o| o.0), Some(text("Prod shop\n")));
        assert_eq!(option(&bundle, "frontend", "logo").map(|o| o.0), Some(text("aGkh")));
    }

    #[test]
    fn a_missing_include_is_reported_with_file_and_key() {
        let dir = folder(&[(
            "o.yaml",
            "applications:\n  backend: {options: {port: 'include-file://port.txt'}}\n",
        )]);
        let (_, problems) = load(&dir, &["o.yaml"]);
        let [problem] = problems.0.as_slice() else { panic!("{problems}") };
        assert_eq!(problem.file, dir.path().join("o.yaml").display().to_string());
        assert_eq!(problem.key, "applications.backend.options.port");
        assert!(problem.message.starts_with("cannot include "), "{}", problem.message);
        assert_eq!(problem.hint.as_deref(), Some("paths are relative to the file that holds them"));
    }

    #[test]
    fn an_application_an_overlay_adds_must_name_its_charm() {
        let dir =
            folder(&[("o.yaml", "applications:\n  cache: {scale: 1}\n  redis: {charm: redis}\n")]);
        let (bundle, problems) = load(&dir, &["o.yaml"]);
        assert!(!bundle.applications.contains_key("cache"));
        assert_eq!(bundle.applications["redis"].file, dir.path().join("o.yaml"));
        let lines: Vec<String> =
            problems.0.iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        assert_eq!(lines, ["applications.cache.charm: missing"]);
    }

    #[test]
    fn an_empty_application_body_in_the_bundle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bundle.yaml"),
            "name: shop\napplications:\n  web: {charm: web}\n  cache: {}\n",
        )
        .unwrap();
        let (bundle, problems) = load(&dir, &[]);
        assert!(!bundle.applications.contains_key("cache"));
        assert!(problems.0.iter().any(|p| p.key.starts_with("applications.cache")), "{problems}");
    }

    #[test]
    fn a_misspelt_key_is_reported_not_ignored() {
        let overlay = "applications:\n  frontend: {optoins: {theme: light}}\n\
                       relation:\n  - [frontend, mongodb]\n";
        let dir = folder(&[("o.yaml", overlay)]);
        let (bundle, problems) = load(&dir, &["o.yaml"]);
        assert_eq!(option(&bundle, "frontend", "theme").map(|o| o.0), Some(text("dark")));
        let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["relation", "applications.frontend.optoins"], "{problems}");
        assert!(problems.to_string().contains("did you mean \"options\"?"), "{problems}");
    }
}
