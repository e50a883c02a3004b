//! `logs`, `restart`, `list`: running a deployed bundle from day to day, without kubectl.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::deploy_cmds::{print_table, Bars, Deployed, KubeArgs};
use super::{line, runtime, stdout_error, styled_line, Output};
use crate::deploy::{Cluster, LogLine, LogOptions, LogSink, WaitOptions};
use crate::Error;

/// `charmer logs`'s flags.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The deployed bundle.
    #[command(flatten)]
    pub deployed: Deployed,
    /// The application whose pods to show.
    pub app: String,
    /// Keep printing new lines, and follow pods that start later (a rollout, a restart),
    /// until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines newer than this (`30s`, `10m`, `2h`).
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub since: Option<Duration>,
    /// Only the last N lines of each container.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Only this container of each pod (default: all of them).
    #[arg(short, long, value_name = "NAME")]
    pub container: Option<String>,
    /// Which cluster.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `charmer restart`'s flags.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// The deployed bundle.
    #[command(flatten)]
    pub deployed: Deployed,
    /// The application to restart.
    pub app: String,
    /// Return once the restart is requested, without waiting for the new pods.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the new pods (`90s`, `10m`, `1h`; at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::wait_timeout, conflicts_with = "no_wait")]
    pub timeout: Duration,
    /// How long a new pod may stay unschedulable before the wait fails.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::duration, conflicts_with = "no_wait")]
    pub unschedulable_grace: Duration,
    /// Which cluster.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `charmer list`'s flags.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only bundles in this namespace.
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Bundles in every namespace (the default: each bundle has its own namespace).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Which cluster.
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// Writes each log line as `pod/container text`, the prefix coloured on a terminal.
struct Printer<'a, W: Write> {
    out: &'a mut W,
    error: Option<Error>,
}

impl<W: Write> LogSink for Printer<'_, W> {
    fn line(&mut self, l: LogLine) -> bool {
        let prefix = format!("{}/{}", l.pod, l.container);
        let parts =
            [(&console::Style::new().cyan(), prefix.as_str()), (&console::Style::new(), &l.text)];
        match styled_line(self.out, &parts) {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// `logs BUNDLE APP`.
pub(super) fn logs(out: &mut impl Write, args: &LogsArgs) -> Result<ExitCode, Error> {
    let options = LogOptions {
        container: args.container.clone(),
        since: args.since,
        tail: args.tail.map(i64::from),
        follow: args.follow,
        poll: Duration::from_secs(2),
    };
    let mut printer = Printer { out, error: None };
    let target = args.deployed.target(&args.kube);
    let logged =
        runtime()?.block_on(crate::ops::logs::logs(&target, &args.app, &options, &mut printer))?;
    if let Some(error) = printer.error {
        // A closed pipe (`charmer logs ... | head`) is the reader's choice, not a failure.
        if error.is_broken_pipe() {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(error);
    }
    if logged.containers == 0 {
        eprintln!("application {} has no pods", args.app);
    }
    Ok(ExitCode::SUCCESS)
}

/// `restart BUNDLE APP`.
pub(super) fn restart(out: &mut impl Write, args: &RestartArgs) -> Result<ExitCode, Error> {
    let wait = (!args.no_wait).then(|| WaitOptions {
        timeout: args.timeout,
        unschedulable_grace: args.unschedulable_grace,
        ..Default::default()
    });
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let namespace = args.deployed.namespace();
    let progress = Bars::new();
    let target = args.deployed.target(&args.kube);
    let result = runtime()?.block_on(crate::ops::restart(
        &target,
        &args.app,
        &now,
        wait.as_ref(),
        &progress,
    ));
    progress.clear();
    let restarted = result?;
    for id in &restarted.workloads {
        line(out, format_args!("restarted {id}"))?;
    }
    for note in &restarted.replaced {
        line(out, format_args!("{note}"))?;
    }
    let waited = if wait.is_some() { ", ready" } else { "" };
    line(out, format_args!("{} in namespace {namespace} restarted{waited}", args.app))?;
    Ok(ExitCode::SUCCESS)
}

/// `list [-A | -n NS]`.
pub(super) fn list(out: &mut impl Write, args: &ListArgs) -> Result<ExitCode, Error> {
    let bundles = runtime()?.block_on(async {
        let cluster = Cluster::connect(&args.kube.options()).await?;
        cluster.list_bundles(args.namespace.as_deref()).await
    })?;
    if args.output == Output::Json {
        serde_json::to_writer_pretty(&mut *out, &bundles).map_err(|e| stdout_error(e.into()))?;
        return line(out, "").map(|_| ExitCode::SUCCESS);
    }
    if bundles.is_empty() {
        let place = match &args.namespace {
            Some(ns) => format!("namespace {ns}"),
            None => "any namespace".to_string(),
        };
        line(out, format_args!("no bundles deployed in {place}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = bundles
        .iter()
        .map(|b| {
            [
                b.namespace.clone(),
                b.bundle.clone(),
                b.revision.to_string(),
                b.status.to_string(),
                b.updated.clone(),
            ]
        })
        .collect();
    print_table(out, ["NAMESPACE", "BUNDLE", "REVISION", "STATUS", "UPDATED"], &rows)?;
    Ok(ExitCode::SUCCESS)
}
