//! The mirror table: where to reach each registry (or part of one). Its entries come from
//! `--mirror NAME=HOST[:PORT][/PATH]` and from containers' `registries.conf` (`[[registry]]`
//! with `prefix`/`location` and `[[registry.mirror]]`), the flags winning: a flag's `NAME`
//! drops every file entry for that name and the paths under it.
//!
//! The files, as containers/image finds them: `$CONTAINERS_REGISTRIES_CONF` alone when set;
//! otherwise `~/.config/containers/registries.conf` with the `.conf` files of
//! `~/.config/containers/registries.conf.d/` when that file exists, else
//! `/etc/containers/registries.conf` with the drop-ins of `/etc/containers/registries.conf.d/`
//! and `~/.config/containers/registries.conf.d/`, in that order, a later entry for the same
//! prefix replacing an earlier one. A missing file is no entry.
//!
//! charmer reaches one place per registry, with no fall-back: the first mirror. What the files
//! say that charmer does not do (`insecure`, `blocked`, `pull-from-mirror`, further mirrors,
//! wildcard prefixes, the v1 format) is a warning naming file and key; short-name settings
//! (`unqualified-search-registries`, `short-name-mode`, `aliases`) and `credential-helpers`
//! do not apply (charmer qualifies short names as Docker does, and reads Docker's
//! credentials) and are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RegistryError;
use crate::diag::Problem;
use crate::io_error::IoError;

/// Registry name (or `NAME/PATH` prefix) → `HOST[:PORT][/PATH]` to reach it at.
pub type Mirrors = BTreeMap<String, String>;

/// The environment variable naming the one `registries.conf` to read.
pub const ENV: &str = "CONTAINERS_REGISTRIES_CONF";

/// The mirror table: `registries.conf`'s entries, then `flags` over them. Logs (at `-v`)
/// which file gave each entry.
pub fn table(flags: Mirrors) -> Result<Mirrors, RegistryError> {
    let mut table = Mirrors::new();
    for path in config_files() {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(RegistryError::Io(IoError::new(path, source))),
        };
        let label = path.display().to_string();
        let read = read(&label, &text)?;
        for warning in &read.warnings {
            tracing::warn!("{warning}");
        }
        for (prefix, location) in read.entries {
            tracing::info!("{label}: {prefix} is reached at {location}");
            table.insert(prefix, location);
        }
    }
    Ok(merge(table, flags))
}

/// `files`' entries with `flags` over them: a flag's name drops the files' entries for it
/// and for the prefixes under it, so that a flag decides for its whole registry.
fn merge(mut files: Mirrors, flags: Mirrors) -> Mirrors {
    for name in flags.keys() {
        let under = format!("{name}/");
        files.retain(|prefix, _| prefix != name && !prefix.starts_with(&under));
    }
    files.extend(flags);
    files
}

/// Where `reference`-style `registry/repository` is reached through `mirrors`: the host
/// and repository path of the longest matching prefix's location, or `None`.
pub fn lookup(mirrors: &Mirrors, registry: &str, repository: &str) -> Option<(String, String)> {
    let full = format!("{registry}/{repository}");
    let (prefix, location) = mirrors
        .iter()
        .filter(|(prefix, _)| {
            full.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('/'))
                || full == **prefix
        })
        .max_by_key(|(prefix, _)| prefix.len())?;
    let rest = full[prefix.len()..].trim_start_matches('/');
    let (host, path) = location.split_once('/').unwrap_or((location, ""));
    let path = path.trim_matches('/');
    let name = match (path.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => path.to_string(),
        (false, false) => format!("{path}/{rest}"),
    };
    Some((host.to_string(), name))
}

/// The `registries.conf` files to read, in order.
fn config_files() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(ENV) {
        return vec![PathBuf::from(path)];
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user = home.as_ref().map(|h| h.join(".config/containers/registries.conf"));
    let user_d = home.as_ref().map(|h| h.join(".config/containers/registries.conf.d"));
    let mut files = Vec::new();
    match user {
        Some(user) if user.is_file() => {
            files.push(user);
            files.extend(user_d.iter().flat_map(|d| drop_ins(d)));
        }
        _ => {
            files.push(PathBuf::from("/etc/containers/registries.conf"));
            files.extend(drop_ins(Path::new("/etc/containers/registries.conf.d")));
            files.extend(user_d.iter().flat_map(|d| drop_ins(d)));
        }
    }
    files
}

/// The `*.conf` files of a drop-in folder, by name.
fn drop_ins(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

/// What one `registries.conf` says: (prefix, location) entries, and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
struct Read {
    entries: Vec<(String, String)>,
    warnings: Vec<String>,
}

/// Top-level keys about short names and credentials: they do not apply to charmer.
const SKIPPED: &[&str] = &[
    "unqualified-search-registries",
    "short-name-mode",
    "aliases",
    "credential-helpers",
    "additional-layer-store-auth-helper",
];

/// Reads one `registries.conf` (`label` names it in messages).
fn read(label: &str, text: &str) -> Result<Read, Problem> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Problem::new(label, "", format!("not valid TOML: {}", e.message()))
            .hint("see containers-registries.conf(5)")
    })?;
    let mut read = Read::default();
    let mut warn = |key: &str, what: &str| {
        read.warnings.push(format!("{label}: {key}: {what}"));
    };
    for key in doc.keys() {
        match key.as_str() {
            "registry" => {}
            "registries" => {
                warn(key, "the version 1 format is not read; write [[registry]] tables")
            }
            k if SKIPPED.contains(&k) => {}
            _ => warn(key, "unknown key, ignored"),
        }
    }
    let registries = match doc.get("registry") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(Problem::new(label, "registry", "not an array of tables")
                .hint("write each as [[registry]]"))
        }
    };
    let mut entries = Vec::new();
    for (i, item) in registries.iter().enumerate() {
        let at = format!("registry[{i}]");
        let Some(table) = item.as_table() else {
            return Err(Problem::new(label, &at, "not a table").hint("write it as [[registry]]"));
        };
        let text = |key: &str| -> Result<Option<String>, Problem> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.trim_end_matches('/').to_string())),
                Some(_) => Err(Problem::new(label, format!("{at}.{key}"), "not a string")),
            }
        };
        let location = text("location")?;
        let prefix = text("prefix")?.or_else(|| location.clone());
        let Some(prefix) = prefix else {
            return Err(Problem::new(label, &at, "has neither prefix nor location")
                .hint("give location = \"HOST[:PORT][/PATH]\""));
        };
        let mut mirrors = Vec::new();
        for (key, value) in table {
            let key_at = format!("{at}.{key}");
            match key.as_str() {
                "prefix" | "location" => {}
                "insecure" if value.as_bool() == Some(true) => warn(
                    &key_at,
                    "ignored: charmer speaks plain HTTP only with --insecure-http, and verifies every certificate (trust one with --ca-file or certs.d)",
                ),
                "blocked" if value.as_bool() == Some(true) => {
                    warn(&key_at, "not enforced: charmer pulls from this registry when asked")
                }
                "mirror-by-digest-only" | "pull-from-mirror"
                    if value.as_bool() == Some(true)
                        || value.as_str().is_some_and(|v| v != "all") =>
                {
                    warn(&key_at, "not followed: charmer uses the mirror for tags and digests alike")
                }
                "insecure" | "blocked" | "mirror-by-digest-only" | "pull-from-mirror" => {}
                "mirror" => {
                    let Some(items) = value.as_array() else {
                        return Err(Problem::new(label, &key_at, "not an array of tables")
                            .hint("write each as [[registry.mirror]]"));
                    };
                    for (j, mirror) in items.iter().enumerate() {
                        let mirror_at = format!("{key_at}[{j}]");
                        let Some(mirror) = mirror.as_table() else {
                            return Err(Problem::new(label, &mirror_at, "not a table"));
                        };
                        for (mkey, mvalue) in mirror {
                            match mkey.as_str() {
                                "location" => {}
                                "insecure" if mvalue.as_bool() == Some(true) => warn(
                                    &format!("{mirror_at}.{mkey}"),
                                    "ignored: charmer speaks plain HTTP only with --insecure-http",
                                ),
                                "pull-from-mirror"
                                    if mvalue.as_str().is_some_and(|v| v != "all") =>
                                {
                                    warn(
                                        &format!("{mirror_at}.{mkey}"),
                                        "not followed: charmer uses the mirror for tags and digests alike",
                                    )
                                }
                                "insecure" | "pull-from-mirror" => {}
                                _ => warn(&format!("{mirror_at}.{mkey}"), "unknown key, ignored"),
                            }
                        }
                        match mirror.get("location").and_then(|l| l.as_str()) {
                            Some(l) if !l.is_empty() => {
                                mirrors.push(l.trim_end_matches('/').to_string())
                            }
                            _ => {
                                return Err(Problem::new(label, &mirror_at, "has no location")
                                    .hint("give location = \"HOST[:PORT][/PATH]\""))
                            }
                        }
                    }
                }
                _ => warn(&key_at, "unknown key, ignored"),
            }
        }
        if prefix.contains('*') {
            warn(&at, &format!("the wildcard prefix {prefix} is not supported; entry ignored"));
            continue;
        }
        if mirrors.len() > 1 {
            warn(
                &format!("{at}.mirror"),
                &format!(
                    "charmer reaches {prefix} at the first mirror only ({}), without falling back to {}",
                    mirrors[0],
                    mirrors[1..].join(", ")
                ),
            );
        }
        let target = mirrors.into_iter().next().or(location.filter(|l| *l != prefix));
        if let Some(target) = target {
            entries.retain(|(p, _): &(String, String)| *p != prefix);
            entries.push((prefix, target));
        }
    }
    read.entries = entries;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_conf_gives_first_mirrors_and_relocations_and_warns_about_the_rest() {
        let text = r#"
unqualified-search-registries = ["upstream.test"]
short-name-mode = "enforcing"

[[registry]]
location = "upstream.test"
insecure = true
[[registry.mirror]]
location = "10.0.0.5:5000/upstream/"
[[registry.mirror]]
location = "10.0.0.6:5000"

[[registry]]
prefix = "other.test/team"
location = "10.0.0.5:5000/team-copy"

[[registry]]
location = "plain.test"

[[registry]]
prefix = "*.wild.test"
location = "x.test"
colour = "blue"

[aliases]
"app" = "upstream.test/app"
"#;
        let found = read("r.conf", text).unwrap();
        assert_eq!(
            found.entries,
            vec![
                ("upstream.test".to_string(), "10.0.0.5:5000/upstream".to_string()),
                ("other.test/team".to_string(), "10.0.0.5:5000/team-copy".to_string()),
            ]
        );
        let warnings = found.warnings.join("\n");
        assert!(warnings.contains("r.conf: registry[0].insecure: ignored"), "{warnings}");
        assert!(warnings.contains("first mirror only (10.0.0.5:5000/upstream)"), "{warnings}");
        assert!(warnings.contains("registry[3].colour: unknown key"), "{warnings}");
        assert!(warnings.contains("wildcard prefix *.wild.test"), "{warnings}");
        assert_eq!(found.warnings.len(), 4, "{warnings}");

        let err = read("r.conf", "[[registry]]\ninsecure = true\n").unwrap_err();
        assert!(err.to_string().contains("neither prefix nor location"), "{err}");
        assert!(read("r.conf", "registry = [").is_err());
        let v1 = read("r.conf", "[registries.search]\nregistries = []\n").unwrap();
        assert!(v1.warnings[0].contains("version 1 format"), "{:?}", v1.warnings);
    }

    #[test]
    fn flags_decide_for_their_whole_registry() {
        let pairs = |items: &[(&str, &str)]| -> Mirrors {
            items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        let files = pairs(&[
            ("upstream.test", "file-mirror:5000"),
            ("upstream.test/team", "file-mirror:5000/team"),
            ("upstream.testing", "kept:5000"),
        ]);
        let merged = merge(files, pairs(&[("upstream.test", "flag-mirror:5000")]));
        assert_eq!(
            merged,
            pairs(&[("upstream.test", "flag-mirror:5000"), ("upstream.testing", "kept:5000")])
        );
    }

    #[test]
    fn the_longest_prefix_wins_and_paths_are_kept() {
        let mirrors: Mirrors = [
            ("upstream.test", "10.0.0.5:5000/up"),
            ("upstream.test/team", "10.0.0.6:5000"),
            ("bare.test", "10.0.0.7:5000"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let at = |r: &str, p: &str| lookup(&mirrors, r, p);
        assert_eq!(
            at("upstream.test", "lib/app"),
            Some(("10.0.0.5:5000".into(), "up/lib/app".into()))
        );
        assert_eq!(at("upstream.test", "team/app"), Some(("10.0.0.6:5000".into(), "app".into())));
        assert_eq!(
            at("upstream.test", "teamx/app"),
            Some(("10.0.0.5:5000".into(), "up/teamx/app".into()))
        );
        assert_eq!(at("bare.test", "a/b"), Some(("10.0.0.7:5000".into(), "a/b".into())));
        assert_eq!(at("elsewhere.test", "a"), None);
        assert_eq!(at("upstream.testx", "a"), None);
    }
}
