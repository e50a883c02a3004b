//! `publish`, `keygen`, `graph`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::images_cmds::{client, read_login, Connection, Login};
use super::{count, line, runtime, stdout_error, GraphFormat, ResolveArgs};
use crate::images::Registry;
use crate::ops::publish::{PublishOptions, Publisher};
use crate::publish;
use crate::Error;

/// Where `publish` puts charms: a release folder, a registry, or both.
pub(super) struct Target {
    pub(super) dir: Option<PathBuf>,
    pub(super) registry: Option<Registry>,
    pub(super) login: Login,
    pub(super) connection: Connection,
}

pub(super) fn publish(
    out: &mut impl Write,
    charms: &[PathBuf],
    target: &Target,
    sign_key: Option<&Path>,
) -> Result<ExitCode, Error> {
    let options =
        PublishOptions { charms: charms.to_vec(), sign_key: sign_key.map(Path::to_path_buf) };
    let publisher = Publisher::new(&options)?;
    if let Some(registry) = &target.registry {
        let credentials = read_login(&target.login)?.map(|c| (registry.host.clone(), c));
        let client = client(&target.connection, credentials)?;
        let pushed = runtime()?.block_on(publisher.to_registry(&client, registry))?;
        for c in &pushed {
            let what = if c.added { "pushed   " } else { "unchanged" };
            line(out, format_args!("{what}  {} {}  {}", c.name, c.version, c.reference))?;
        }
        if let Some(id) = publisher.key_id() {
            line(out, format_args!("signed with key {id}"))?;
        }
    }
    let Some(dir) = &target.dir else { return Ok(ExitCode::SUCCESS) };
    let report = publisher.to_folder(dir)?;
    for c in &report.charms {
        let what = if c.added { "added    " } else { "unchanged" };
        line(
            out,
            format_args!(
                "{what}  {} {}  {}  sha256 {}",
                c.name,
                c.version,
                c.file.display(),
                c.sha256
            ),
        )?;
    }
    let signed = report.signed_by.map(|id| format!(", signed with key {id}")).unwrap_or_default();
    line(
        out,
        format_args!(
            "{} lists {}{signed}",
            report.index.display(),
            count(report.listed, "charm version")
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn keygen(out: &mut impl Write, prefix: &Path) -> Result<ExitCode, Error> {
    let pair = publish::keygen(prefix)?;
    let (secret, public) = (pair.secret.display(), pair.public.display());
    line(
        out,
        format_args!("secret key {secret} (keep it private; sign with --sign-key {secret})"),
    )?;
    line(
        out,
        format_args!("public key {public} (key id {}; verify with --key {public})", pair.key.id()),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn graph(
    out: &mut impl Write,
    args: &ResolveArgs,
    format: GraphFormat,
    file: Option<&Path>,
) -> Result<ExitCode, Error> {
    if let Some(path) = file {
        check_graph_file(path, format)?;
    }
    let model = args.resolve()?;
    // The rendered objects say how each application is reached; Juju renders operator charms.
    let manifests = if crate::juju::has_operators(&model) {
        None
    } else {
        Some(crate::render::render(&model)?)
    };
    let drawing = match format {
        GraphFormat::Svg => crate::graph::svg(&model, manifests.as_ref()),
        GraphFormat::Dot => crate::graph::dot(&model, manifests.as_ref()),
    };
    match file {
        Some(path) => {
            crate::output::write_atomically(path, drawing.as_bytes())?;
            line(out, path.display())?;
        }
        None => out.write_all(drawing.as_bytes()).map_err(stdout_error)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses an output file whose extension says another format than the one drawn: a `.png`
/// holding SVG text would be a silently wrong result.
fn check_graph_file(path: &Path, format: GraphFormat) -> Result<(), Error> {
    let extension =
        path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    let wanted = match extension.as_str() {
        "svg" => Some(GraphFormat::Svg),
        "dot" | "gv" => Some(GraphFormat::Dot),
        "" => None,
        _ => {
            let problem = crate::diag::Problem::new(
                path.display().to_string(),
                "--out",
                format!("charmer graph draws SVG or Graphviz DOT, not {}", extension.to_uppercase()),
            )
            .hint("write a .svg file, or --format dot to a .dot file and convert it with Graphviz (dot -Tpng)");
            return Err(Error::Invalid(problem.into()));
        }
    };
    match wanted {
        Some(wanted) if wanted != format => {
            let (name, flag) = match wanted {
                GraphFormat::Svg => ("SVG", "--format svg"),
                GraphFormat::Dot => ("DOT", "--format dot"),
            };
            let problem = crate::diag::Problem::new(
                path.display().to_string(),
                "--out",
                format!("the file name asks for {name}, but another format was chosen"),
            )
            .hint(format!("add {flag}, or change the file's extension"));
            Err(Error::Invalid(problem.into()))
        }
        _ => Ok(()),
    }
}
