//! `pack`, `inspect`, `verify`, `unpack`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::{count, line, stdout_error, Output, TlsArgs};
use crate::charm::metadata::role_key;
use crate::charm::{archive, Charm, Limits};
use crate::Error;

pub(super) fn pack(out: &mut impl Write, dir: &Path, out_dir: &Path) -> Result<ExitCode, Error> {
    let charm = Charm::from_dir(dir)?;
    let bytes = charm.pack();
    let path = out_dir.join(charm.archive_name());
    crate::output::write_files(out_dir, &[(path.clone(), &bytes)])?;
    line(out, format_args!("{}  {}", crate::digest::sha256_hex(&bytes), path.display()))?;
    warn(&charm.warnings().iter().map(ToString::to_string).collect::<Vec<_>>());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn inspect(
    out: &mut impl Write,
    path: &Path,
    output: Output,
) -> Result<ExitCode, Error> {
    let view = Charm::load(path)?.inspect();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &view).map_err(|e| stdout_error(e.into()))?;
            line(out, "")?;
        }
        Output::Text => {
            line(out, format_args!("name:     {}", view.name))?;
            line(out, format_args!("version:  {}", view.version))?;
            if let Some(revision) = view.revision {
                line(out, format_args!("revision: {revision}"))?;
            }
            let kind = match view.kind {
                crate::charm::Kind::Manifests => "manifests (charmer renders and deploys it)",
                crate::charm::Kind::Operator => "operator (charm code; Juju runs it)",
            };
            line(out, format_args!("kind:     {kind}"))?;
            line(out, format_args!("summary:  {}", view.summary))?;
            line(out, format_args!("sha256:   {}", view.sha256))?;
            if !view.description.is_empty() {
                line(out, "description:")?;
                indented(out, "  ", &view.description)?;
            }
            line(out, "options:")?;
            for o in &view.options {
                let default =
                    o.default.as_ref().map(yaml_inline).unwrap_or_else(|| "(unset)".into());
                line(out, format_args!("  {} ({}) default {}", o.name, o.kind, default))?;
                if let Some(allowed) = &o.allowed {
                    let allowed: Vec<String> = allowed.iter().map(yaml_inline).collect();
                    line(out, format_args!("      allowed: {}", allowed.join(" | ")))?;
                }
                if !o.constraints.is_empty() {
                    line(out, format_args!("      constraints: {}", o.constraints.join(", ")))?;
                }
                indented(out, "      ", &o.description)?;
            }
            line(out, "resources:")?;
            for (name, r) in &view.resources {
                let source = r.upstream_source.as_deref().or(r.filename.as_deref()).unwrap_or("");
                line(out, format_args!("  {name} ({}) {source}", r.kind))?;
                indented(out, "      ", r.description.trim())?;
            }
            line(out, "endpoints:")?;
            for e in &view.endpoints {
                let optional = if e.optional { " (optional)" } else { "" };
                line(
                    out,
                    format_args!(
                        "  {} {} interface {}{optional}",
                        role_key(e.role),
                        e.name,
                        e.interface
                    ),
                )?;
                indented(out, "      ", &e.description)?;
            }
            line(out, "storage:")?;
            for (name, s) in &view.storage {
                line(
                    out,
                    format_args!("  {name} ({}) {}", s.kind, s.location.as_deref().unwrap_or("")),
                )?;
            }
            line(out, "containers:")?;
            for (name, c) in &view.containers {
                line(
                    out,
                    format_args!(
                        "  {name} runs {}",
                        c.resource.as_deref().unwrap_or("(no resource)")
                    ),
                )?;
            }
            line(out, "templates:")?;
            for t in &view.templates {
                line(out, format_args!("  {t}"))?;
            }
            warn(&view.warnings);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(
    out: &mut impl Write,
    paths: &[std::path::PathBuf],
    key: Option<&Path>,
    tls: &TlsArgs,
) -> Result<ExitCode, Error> {
    let key = key.map(crate::publish::load_public_key).transpose()?;
    let signed = key.as_ref().map(|k| format!("  signed by {}", k.id())).unwrap_or_default();
    let mut problems = crate::diag::Problems::default();
    for path in paths {
        if crate::publish::folder::is_checksummed(path) {
            match crate::publish::folder::verify(path, key.as_ref()) {
                Ok(folder) => print_sealed(out, path, &folder)?,
                Err(e) => problems.extend(e.into_problems()),
            }
            continue;
        }
        // A folder without an index is read as one too, to say that it has none.
        let text = path.to_string_lossy();
        if path.is_dir() || crate::publish::index::is_published(path) {
            let checked = crate::publish::PublishedIndex::open(&text, key.clone(), &tls.options())
                .and_then(|p| {
                    // Said even when a check below fails: what was not checked matters then too.
                    if let Some(warning) = p.unchecked_signature_warning() {
                        warn(&[format!("{}: {warning}", p.index_location())]);
                    }
                    p.verify_all().map(|e| (p, e))
                });
            match checked {
                Ok((published, entries)) => {
                    line(
                        out,
                        format_args!(
                            "ok  {}  {}{signed}",
                            published.index_location(),
                            count(entries.len(), "charm version")
                        ),
                    )?;
                    for e in entries {
                        line(
                            out,
                            format_args!(
                                "ok  {}  {} {}  sha256 {}{signed}",
                                e.location, e.name, e.release, e.sha256
                            ),
                        )?;
                    }
                }
                Err(e) => problems.extend(e.into_problems()),
            }
            continue;
        }
        // The signature first: a tampered archive is named as such, not as a damaged zip.
        let checked = key
            .as_ref()
            .map(|k| crate::publish::verify_signature(path, k))
            .transpose()
            .and_then(|_| Ok(Charm::from_archive(path, &Limits::default())?));
        match checked {
            Ok(charm) => {
                line(
                    out,
                    format_args!(
                        "ok  {}  {} {}  sha256 {}{signed}",
                        path.display(),
                        charm.name(),
                        charm.version_label(),
                        charm.sha256()
                    ),
                )?;
                warn(&charm.warnings().iter().map(ToString::to_string).collect::<Vec<_>>());
            }
            Err(e) => problems.extend(e.into_problems()),
        }
    }
    problems.into_result(ExitCode::SUCCESS).map_err(Error::from)
}

/// `ok` lines for a checksummed folder; a signature left unchecked is said on stderr, so a
/// signed folder is never taken for a verified one.
fn print_sealed(
    out: &mut impl Write,
    path: &Path,
    folder: &crate::publish::folder::SealedFolder,
) -> Result<(), Error> {
    let signed =
        folder.signed_by.as_ref().map(|id| format!("  signed by {id}")).unwrap_or_default();
    line(
        out,
        format_args!("ok  {}  {}{signed}", path.display(), count(folder.files.len(), "file")),
    )?;
    for file in &folder.files {
        line(out, format_args!("ok  {}  sha256 {}", file.name, file.sha256))?;
    }
    if let Some(signature) = &folder.unchecked_signature {
        warn(&[format!(
            "{} is signed ({}), but its signature was not checked: give --key with the \
             publisher's public key",
            path.display(),
            signature.display()
        )]);
    }
    Ok(())
}

/// `charmer checksum DIR [--sign-key KEY]`.
pub(super) fn checksum(
    out: &mut impl Write,
    dir: &Path,
    sign_key: Option<&Path>,
) -> Result<ExitCode, Error> {
    let key = sign_key.map(crate::publish::load_secret_key).transpose()?;
    let sealed = crate::publish::folder::seal(dir, key.as_ref())?;
    let signed = sealed.signed_by.map(|id| format!(", signed with key {id}")).unwrap_or_default();
    line(
        out,
        format_args!(
            "{} lists {}{signed}",
            dir.join(crate::publish::SUMS_FILE).display(),
            count(sealed.files.len(), "file")
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn unpack(out: &mut impl Write, path: &Path, dest: &Path) -> Result<ExitCode, Error> {
    let charm = Charm::from_archive(path, &Limits::default())?;
    archive::unpack(&charm.files, dest)?;
    line(
        out,
        format_args!("unpacked {} {} into {}", charm.name(), charm.version_label(), dest.display()),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Prints warnings on stderr, after the data, so they never mix into what scripts read.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Writes `text` line by line under `indent`, blank lines kept (without trailing spaces);
/// [`line`] escapes control characters.
fn indented(out: &mut impl Write, indent: &str, text: &str) -> Result<(), Error> {
    for l in text.lines() {
        let l = l.trim_end();
        if l.is_empty() {
            line(out, "")?;
        } else {
            line(out, format_args!("{indent}{l}"))?;
        }
    }
    Ok(())
}

/// A YAML scalar on one line, as it would be written in a values file.
fn yaml_inline(value: &serde_yaml::Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default().trim_end().to_string()
}
