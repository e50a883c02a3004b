//! `deploy`, `status`, `remove`, `rollback`: the deploy stage from the command line, with
//! progress bars, diffs and the "Apply? [y/N]" question (asked only when stdin is a terminal).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{
    count, line, runtime, signalled, stdout_error, styled_line, Output, ResolveArgs,
    INTERRUPTED_EXIT,
};
use crate::deploy::{
    Action, ApplyOptions, Changes, ClientOptions, Cluster, DeployError, Event, Interrupt,
    LockOptions, Outcome, PrepareOptions, Prepared, Progress, RemoveOptions, WaitOptions,
};
use crate::io_error::IoResultExt;
use crate::Error;

/// How to reach the cluster.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// What `deploy` and `rollback` do after applying.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Return once everything is applied, without waiting for readiness.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for readiness (`90s`, `10m`, `1h`; at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::wait_timeout, conflicts_with = "no_wait")]
    pub timeout: Duration,
    /// How long a pod may stay unschedulable (the scheduler's reason is shown meanwhile)
    /// before the wait fails.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::duration, conflicts_with = "no_wait")]
    pub unschedulable_grace: Duration,
    /// Keep objects of earlier revisions that are no longer rendered.
    #[arg(long)]
    pub no_prune: bool,
    /// When applying or waiting fails, re-apply the last deployed revision (as a new
    /// revision); the command still fails.
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// How to take the bundle's lock.
    #[command(flatten)]
    pub lock: LockArgs,
    /// Do not ask before applying (the question is asked only when stdin is a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Fail preflight on checks this identity has no permission to make (a namespace admin
    /// may not list StorageClasses or PersistentVolumes) instead of warning about each.
    #[arg(long)]
    pub strict_preflight: bool,
    /// Do not look images up in their registries before applying (preflight asks each
    /// registry for every image's manifest otherwise, as `images push` reaches it).
    #[arg(long)]
    pub skip_image_check: bool,
    /// Let images move to another registry than the deployed revision used (a deploy that
    /// would switch them, say after forgetting --registry, is refused otherwise).
    #[arg(long)]
    pub allow_registry_change: bool,
}

/// What `deploy` checks of the images before applying.
#[derive(Debug, Clone, Args)]
pub struct ImageTrustArgs {
    /// Before anything is applied, refuse (naming every image and why) any image without a
    /// cosign signature by one of these keys over its digest, or with an attestation that does
    /// not verify, in the registry it will be pulled from (after --registry); cosign's ECDSA
    /// P-256 cosign.pub; repeatable. --ca-file and --insecure-http apply; credentials come
    /// from the Docker config.
    #[arg(long, value_name = "KEY.pub")]
    pub verify_images: Vec<PathBuf>,
}

/// How deploy, rollback and remove take the bundle's lock in the namespace.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// When another operation holds the bundle's lock, wait this long for it (`30s`, `5m`)
    /// instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub wait_for_lock: Option<Duration>,
}

impl LockArgs {
    fn options(&self, operation: &str) -> LockOptions {
        LockOptions {
            wait: self.wait_for_lock.unwrap_or_default(),
            operation: operation.to_string(),
            ..LockOptions::default()
        }
    }
}

/// The bundle and namespace `status`, `remove`, `rollback`, `logs` and `restart` act on.
#[derive(Debug, Clone, Args)]
pub struct Deployed {
    /// The bundle: its name, or its bundle.yaml or folder (whose `name:` is read).
    #[arg(value_parser = parse_deployed_bundle)]
    pub bundle: String,
    /// The namespace (default: the bundle's name).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

impl Deployed {
    pub(super) fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(&self.bundle)
    }

    /// The deployed bundle in the cluster `kube` names, for the operations.
    pub(super) fn target(&self, kube: &KubeArgs) -> crate::ops::Target {
        crate::ops::Target {
            bundle: self.bundle.clone(),
            namespace: self.namespace().to_string(),
            client: kube.options(),
        }
    }
}

/// A deployed bundle's name from the command line: a path (anything with a `/`, a `.yaml`
/// file, or a folder holding bundle.yaml) is read for its `name:`; anything else is the name.
fn parse_deployed_bundle(arg: &str) -> Result<String, String> {
    let path = std::path::Path::new(arg);
    let is_path = arg.contains('/')
        || arg.ends_with(".yaml")
        || arg.ends_with(".yml")
        || path.join("bundle.yaml").is_file();
    if !is_path {
        return Ok(arg.to_string());
    }
    let input = crate::bundle::BundleInput { bundle: path.to_path_buf(), ..Default::default() };
    crate::bundle::Bundle::load(&input).map(|b| b.name).map_err(|e| e.to_string())
}

impl KubeArgs {
    pub(super) fn options(&self) -> ClientOptions {
        ClientOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }
}

impl ApplyArgs {
    /// Preflight's options: images looked up through `tls` and `mirrors` unless
    /// --skip-image-check.
    fn prepare(
        &self,
        adopt: bool,
        tls: &crate::transport::TlsOptions,
        mirrors: &[String],
    ) -> Result<PrepareOptions, Error> {
        let registries = if self.skip_image_check {
            None
        } else {
            Some(crate::ops::registry_access(tls, mirrors)?)
        };
        Ok(PrepareOptions {
            adopt,
            strict: self.strict_preflight,
            registries,
            allow_registry_change: self.allow_registry_change,
        })
    }

    fn options(&self, operation: &str, interrupt: &Interrupt) -> ApplyOptions {
        ApplyOptions {
            prune: !self.no_prune,
            wait: (!self.no_wait).then(|| WaitOptions {
                timeout: self.timeout,
                unschedulable_grace: self.unschedulable_grace,
                ..WaitOptions::default()
            }),
            lock: self.lock.options(operation),
            interrupt: Some(interrupt.clone()),
            rollback_on_failure: self.rollback_on_failure,
        }
    }
}

/// Triggers `interrupt` on SIGINT (Ctrl-C) or SIGTERM, so the running operation records
/// itself as interrupted and releases its lock instead of dying half-way. A second signal
/// exits at once (the lock then expires after its duration and is taken over).
fn on_signals(interrupt: &Interrupt) -> tokio::task::JoinHandle<()> {
    let interrupt = interrupt.clone();
    tokio::spawn(async move {
        if !signalled().await {
            return;
        }
        eprintln!("interrupted: stopping, recording the revision and releasing the lock (again to exit at once)");
        interrupt.trigger();
        if signalled().await {
            eprintln!("interrupted again: exiting now; the lock expires unrenewed and the next operation takes it over");
            std::process::exit(INTERRUPTED_EXIT.into());
        }
    })
}

fn exit_code_of(error: Error) -> Error {
    match error {
        Error::Deploy(DeployError::Interrupted { .. }) => {
            Error::Exit { code: INTERRUPTED_EXIT, source: Box::new(error) }
        }
        other => other,
    }
}

/// `deploy BUNDLE`: resolve and render first (any error: nothing touches the cluster), then
/// preflight, and diff, dry-run or apply.
// One parameter per flag group of the command: bundling them would only rename the groups.
#[allow(clippy::too_many_arguments)]
pub(super) fn deploy(
    out: &mut impl Write,
    resolve: &ResolveArgs,
    kube: &KubeArgs,
    mode: Mode,
    adopt: bool,
    apply: &ApplyArgs,
    reuse_config: bool,
    trust: &ImageTrustArgs,
) -> Result<ExitCode, Error> {
    let resolve = resolve.options();
    let options = crate::ops::DeployOptions {
        prepare: apply.prepare(adopt, &resolve.tls, &resolve.mirrors)?,
        resolve,
        client: kube.options(),
        reuse_config,
        verify_images: trust.verify_images.clone(),
    };
    let result = (|| {
        let runtime = runtime()?;
        let mut warnings = Vec::new();
        if mode != Mode::Apply {
            let diff = crate::ops::diff(&runtime, &options, !apply.no_prune, &mut warnings);
            super::bundle_cmds::print_warnings(&warnings);
            let (prepared, changes) = diff?;
            if mode == Mode::DryRun {
                return print_dry_run(out, &prepared, &changes);
            }
            print_notes(&mut std::io::stderr().lock(), &prepared)?;
            return print_diff(out, &changes);
        }
        let preflighted = crate::ops::preflight(&runtime, &options, &mut warnings);
        super::bundle_cmds::print_warnings(&warnings);
        let crate::ops::Preflighted { cluster, prepared } = preflighted?;
        print_notes(out, &prepared)?;
        runtime.block_on(apply_prepared(out, &cluster, &prepared, apply, None))
    })()
    .map_err(exit_code_of);
    // Like `kubectl diff`: 0 no change, 1 changes, above 1 trouble.
    match (mode, result) {
        (Mode::Diff, Err(error)) => Err(Error::Exit { code: 2, source: Box::new(error) }),
        (_, result) => result,
    }
}

/// `config BUNDLE -n NS [APP]`: the deployed revision's configuration, with where each value
/// came from; secrets masked.
pub(super) fn config(
    out: &mut impl Write,
    deployed: &Deployed,
    app: Option<&str>,
    kube: &KubeArgs,
    output: Output,
) -> Result<ExitCode, Error> {
    let namespace = deployed.namespace();
    let mut config = runtime()?.block_on(crate::ops::config(&deployed.target(kube), app))?;
    if output == Output::Json {
        for setting in config.apps.values_mut().flat_map(|a| a.values_mut()) {
            if setting.secret {
                setting.value = serde_json::Value::String(setting.display());
            }
        }
        serde_json::to_writer_pretty(&mut *out, &config).map_err(|e| stdout_error(e.into()))?;
        return line(out, "").map(|_| ExitCode::SUCCESS);
    }
    line(
        out,
        format_args!(
            "bundle {} in namespace {namespace}: revision {}",
            deployed.bundle, config.revision
        ),
    )?;
    let rows: Vec<[String; 4]> = config
        .apps
        .iter()
        .flat_map(|(app, settings)| {
            settings
                .iter()
                .map(move |(key, s)| [app.clone(), key.clone(), s.display(), s.source.to_string()])
        })
        .collect();
    print_table(out, ["APP", "OPTION", "VALUE", "SOURCE"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a table: a header and rows, columns padded to their widest cell, two spaces apart.
/// A multi-line cell (a certificate) shows its first line only.
pub(super) fn print_table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> Result<(), Error> {
    let header = header.map(String::from);
    let first_line = |cell: &String| cell.lines().next().unwrap_or_default().to_string();
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(first_line(cell).chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> =
            row.iter().zip(widths).map(|(cell, w)| format!("{:<w$}", first_line(cell))).collect();
        line(out, cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// What `deploy` does once preflight passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Apply (asking first on a terminal).
    Apply,
    /// Server-side dry-run: print what would change.
    DryRun,
    /// Print the diff; exit 1 when something would change.
    Diff,
}

/// `rollback BUNDLE -n NS [--revision N]`.
pub(super) fn rollback(
    out: &mut impl Write,
    deployed: &Deployed,
    kube: &KubeArgs,
    revision: Option<u32>,
    apply: &ApplyArgs,
    tls: &crate::transport::TlsOptions,
) -> Result<ExitCode, Error> {
    let options = apply.prepare(false, tls, &[])?;
    runtime()?
        .block_on(async {
            let (crate::ops::Preflighted { cluster, prepared }, from) =
                crate::ops::rollback(&deployed.target(kube), revision, &options).await?;
            print_notes(out, &prepared)?;
            apply_prepared(out, &cluster, &prepared, apply, Some(from)).await
        })
        .map_err(exit_code_of)
}

/// What preflight noted: claims pre-created volumes will bind, objects adopted; and, on
/// stderr, the checks it could not make.
fn print_notes(out: &mut impl Write, prepared: &Prepared) -> Result<(), Error> {
    for warning in prepared.warnings() {
        eprintln!("warning: {warning}");
    }
    for note in prepared.notes() {
        line(out, format_args!("note: {note}"))?;
    }
    Ok(())
}

async fn apply_prepared(
    out: &mut impl Write,
    cluster: &Cluster,
    prepared: &Prepared,
    apply: &ApplyArgs,
    rollback_from: Option<u32>,
) -> Result<ExitCode, Error> {
    let interrupt = Interrupt::default();
    let operation = if rollback_from.is_some() { "rollback" } else { "deploy" };
    let options = apply.options(operation, &interrupt);
    if ask_first(apply.yes) {
        let changes = cluster.changes(prepared, options.prune).await?;
        if !changes.is_empty() {
            let mut terminal = prompt_stream();
            print_summary(&mut terminal, prepared, &changes)?;
            if !confirm(&mut terminal, "Apply?")? {
                line(out, "nothing was applied")?;
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let progress = Bars::new();
    let signals = on_signals(&interrupt);
    let result = cluster.apply(prepared, &options, &progress).await;
    signals.abort();
    progress.clear();
    let outcome = result?;
    for warning in &outcome.warnings {
        eprintln!("warning: {warning}");
    }
    print_outcome(out, prepared, &outcome, rollback_from, options.wait.is_some())?;
    Ok(ExitCode::SUCCESS)
}

/// Whether to ask before changing the cluster: whenever stdin is a terminal (someone is
/// there to answer), whatever stdout and stderr are (`deploy ... | tee log` still asks);
/// never without one (CI, pipes, `< /dev/null`), so it never blocks there.
fn ask_first(yes: bool) -> bool {
    !yes && std::io::stdin().is_terminal()
}

/// Where the summary and the question go: stderr when it is a terminal; otherwise the
/// controlling terminal itself, so the question is seen even with stderr redirected
/// (`2>&1 | tee log`); stderr again when there is none.
fn prompt_stream() -> Box<dyn Write> {
    if !std::io::stderr().is_terminal() {
        if let Ok(tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            return Box::new(tty);
        }
    }
    Box::new(std::io::stderr())
}

/// Asks a yes/no question on `terminal` and reads the answer from stdin; only "y" or "yes"
/// is a yes (an empty answer or end of input is a no).
fn confirm(terminal: &mut impl Write, question: &str) -> Result<bool, Error> {
    let _ = write!(terminal, "{question} [y/N] ");
    let _ = terminal.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).at("<stdin>")?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn print_summary(
    out: &mut impl Write,
    prepared: &Prepared,
    changes: &Changes,
) -> Result<(), Error> {
    let plan = prepared.plan();
    for c in changes.objects.iter().filter(|c| c.action != Action::Unchanged) {
        line(out, format_args!("{:<10} {}", c.action, c.id))?;
    }
    let mut kept = match changes.count(Action::Kept) {
        0 => String::new(),
        n => format!(", {n} to keep"),
    };
    if let n @ 1.. = changes.count(Action::Recreated) {
        kept.push_str(&format!(", {n} to re-create (claims kept)"));
    }
    print_unchecked(changes);
    line(
        out,
        format_args!(
            "{} to create, {} to change, {} to prune{kept}, {} unchanged ({} into namespace {}, Kubernetes {})",
            changes.count(Action::Created),
            changes.count(Action::Configured),
            changes.count(Action::Pruned),
            changes.count(Action::Unchanged),
            plan.bundle,
            plan.namespace,
            prepared.cluster_version()
        ),
    )
}

fn print_dry_run(
    out: &mut impl Write,
    prepared: &Prepared,
    changes: &Changes,
) -> Result<ExitCode, Error> {
    print_notes(out, prepared)?;
    print_summary(out, prepared, changes)?;
    for c in changes.objects.iter().filter(|c| c.action == Action::Configured) {
        line(out, "")?;
        line(out, format_args!("{} {}:", c.action, c.id))?;
        write_diff(out, &c.diff)?;
    }
    line(out, "dry run: nothing was changed")?;
    Ok(ExitCode::SUCCESS)
}

/// On stderr: the objects the dry run could not check yet.
fn print_unchecked(changes: &Changes) {
    for (id, why) in &changes.unchecked {
        eprintln!("note: {id}: the API server checks it when deploying, not now ({why})");
    }
}

fn print_diff(out: &mut impl Write, changes: &Changes) -> Result<ExitCode, Error> {
    print_unchecked(changes);
    for c in changes.objects.iter().filter(|c| c.action != Action::Unchanged) {
        styled_line(out, &[(&console::Style::new().bold(), &format!("# {} {}", c.id, c.action))])?;
        write_diff(out, &c.diff)?;
    }
    Ok(if changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Writes a unified diff, coloured when stdout is a terminal (and NO_COLOR is unset).
fn write_diff(out: &mut impl Write, diff: &str) -> Result<(), Error> {
    for l in diff.lines() {
        let style = console::Style::new();
        let style = if l.starts_with("+++") || l.starts_with("---") {
            style.bold()
        } else if l.starts_with('+') {
            style.green()
        } else if l.starts_with('-') {
            style.red()
        } else if l.starts_with("@@") {
            style.cyan()
        } else {
            style
        };
        styled_line(out, &[(&style, l)])?;
    }
    Ok(())
}

fn print_outcome(
    out: &mut impl Write,
    prepared: &Prepared,
    outcome: &Outcome,
    rollback_from: Option<u32>,
    waited: bool,
) -> Result<(), Error> {
    let generated: BTreeMap<String, String> =
        outcome.generated.iter().map(|(id, keys)| (id.to_string(), keys.join(", "))).collect();
    for (id, from, to) in &outcome.expanded {
        line(out, format_args!("{:<10} {id} (storage {from} -> {to})", "expanded"))?;
    }
    for a in &outcome.applied {
        let id = a.id.to_string();
        if a.action == Action::Recreated {
            line(out, format_args!("{:<10} {id} (its claim templates grew: deleted with its pods and claims kept, as --cascade=orphan, and created again)", a.action))?;
            continue;
        }
        match generated.get(&id) {
            Some(keys) => line(out, format_args!("{:<10} {id} (generated {keys})", a.action))?,
            None => line(out, format_args!("{:<10} {id}", a.action))?,
        }
    }
    for id in &outcome.pruned {
        line(out, format_args!("{:<10} {id}", Action::Pruned))?;
    }
    for (id, why) in &outcome.kept {
        line(out, format_args!("{:<10} {id}: {why}", "kept"))?;
    }
    let plan = prepared.plan();
    for (id, keep) in &outcome.retained {
        line(
            out,
            format_args!(
                "{:<10} {id} ({keep}): no longer deployed; delete with `charmer remove {} -n {} --destroy-storage`",
                "kept", plan.bundle, plan.namespace
            ),
        )?;
    }
    for (id, from) in &outcome.adopted {
        line(out, format_args!("{:<10} {id} (kept from bundle {from})", "adopted"))?;
    }
    for note in &outcome.replaced {
        line(out, format_args!("{note}"))?;
    }
    let waited = if waited { ", ready" } else { "" };
    match (outcome.revision, rollback_from) {
        (Some(n), Some(from)) => line(
            out,
            format_args!(
                "{} rolled back to revision {from} in namespace {} as revision {n}{waited}",
                plan.bundle, plan.namespace
            ),
        ),
        (Some(n), None) => line(
            out,
            format_args!(
                "{} deployed to namespace {} as revision {n}{waited}",
                plan.bundle, plan.namespace
            ),
        ),
        (None, _) => line(
            out,
            format_args!("{} in namespace {} is unchanged{waited}", plan.bundle, plan.namespace),
        ),
    }
}

/// `status BUNDLE -n NS`.
pub(super) fn status(
    out: &mut impl Write,
    deployed: &Deployed,
    kube: &KubeArgs,
    output: Output,
) -> Result<ExitCode, Error> {
    let status = runtime()?.block_on(crate::ops::status(&deployed.target(kube)))?;
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut *out, &status).map_err(|e| stdout_error(e.into()))?;
        return line(out, "").map(|_| ExitCode::SUCCESS);
    }
    line(
        out,
        format_args!(
            "bundle {} in namespace {}: revision {} ({})",
            status.bundle, status.namespace, status.revision, status.state
        ),
    )?;
    let rows: Vec<[String; 5]> = status
        .apps
        .iter()
        .map(|a| {
            let pods = if a.desired_pods == 0 && a.ready_pods == 0 {
                "-".to_string()
            } else {
                format!("{}/{}", a.ready_pods, a.desired_pods)
            };
            [a.name.clone(), a.charm.clone(), a.version.clone(), pods, a.images.join(" ")]
        })
        .collect();
    print_table(out, ["APP", "CHARM", "VERSION", "READY", "IMAGES"], &rows)?;
    for a in &status.apps {
        for waiting in &a.waiting {
            line(out, format_args!("{}: waiting for {waiting}", a.name))?;
        }
        for problem in &a.problems {
            line(out, format_args!("{}: {problem}", a.name))?;
        }
        for exposed in &a.exposes {
            line(out, format_args!("{}: exposes {exposed}", a.name))?;
        }
    }
    line(out, "revisions:")?;
    for r in &status.revisions {
        let reason = r.reason.as_deref().map(|why| format!("  {why}")).unwrap_or_default();
        let state = r.status.to_string();
        line(out, format_args!("  {:<4} {state:<11} {}{reason}", r.revision, r.applied))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `remove BUNDLE -n NS [--destroy-storage]`.
pub(super) fn remove(
    out: &mut impl Write,
    deployed: &Deployed,
    kube: &KubeArgs,
    destroy_storage: bool,
    lock: &LockArgs,
    yes: bool,
) -> Result<ExitCode, Error> {
    let namespace = deployed.namespace();
    let question = if destroy_storage {
        format!(
            "Remove bundle {} from namespace {namespace}, DELETING its PersistentVolumeClaims (the data in them is lost) and the credentials generated for its applications with storage?",
            deployed.bundle
        )
    } else {
        format!(
            "Remove bundle {} from namespace {namespace}? (its PersistentVolumeClaims and their credentials are kept)",
            deployed.bundle
        )
    };
    if ask_first(yes) && !confirm(&mut prompt_stream(), &question)? {
        line(out, "nothing was removed")?;
        return Ok(ExitCode::FAILURE);
    }
    let options = RemoveOptions { destroy_storage, lock: lock.options("remove") };
    let target = deployed.target(kube);
    let removal =
        runtime()?.block_on(crate::ops::remove(&target, &options, &crate::deploy::NoProgress))?;
    for warning in &removal.warnings {
        eprintln!("warning: {warning}");
    }
    for id in &removal.deleted {
        line(out, format_args!("deleted {id}"))?;
    }
    for (id, finalizers) in &removal.terminating {
        line(
            out,
            format_args!(
                "deleted {id} (gone once its finalizers let go: {})",
                finalizers.join(", ")
            ),
        )?;
    }
    for (id, why) in &removal.kept {
        line(out, format_args!("kept    {id}: {why}"))?;
    }
    for (id, keep) in &removal.retained {
        line(out, format_args!("kept    {id} ({keep}): delete with --destroy-storage"))?;
    }
    line(
        out,
        format_args!(
            "removed {} from namespace {namespace}: {} and {} deleted{}",
            deployed.bundle,
            count(removal.deleted.len() + removal.terminating.len(), "object"),
            count(removal.records.len(), "revision record"),
            if removal.retained.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} kept (a later deploy of {} adopts them)",
                    removal.retained.len(),
                    deployed.bundle
                )
            }
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One progress bar per application on stderr; hidden when stderr is not a terminal.
pub(super) struct Bars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    pub(super) fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn bar(&self, app: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(app.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(app.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    pub(super) fn clear(&self) {
        for bar in self.bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn event(&self, event: Event) {
        match event {
            Event::Applied { app, id, action } => {
                self.bar(&app).set_message(format!("{action} {id}"))
            }
            Event::Pruned { id } => self.bar("(pruned)").set_message(format!("pruned {id}")),
            Event::Expanded { id, from, to } => {
                self.bar("(storage)").set_message(format!("expanded {id} from {from} to {to}"))
            }
            Event::Recreating { app, id } => self
                .bar(&app)
                .set_message(format!("re-creating {id} (pods and claims kept: --cascade=orphan)")),
            Event::Waiting { app, ready, total, why } => {
                let bar = self.bar(&app);
                match why {
                    None => bar.finish_with_message(format!("ready ({ready}/{total})")),
                    Some(why) => bar.set_message(format!("waiting: {ready}/{total} ready; {why}")),
                }
            }
        }
    }
}
