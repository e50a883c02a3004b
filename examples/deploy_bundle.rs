//! Deploys a bundle through the library, as `charmer deploy --yes` does: resolve, render,
//! preflight, apply with prune, wait for readiness, record the revision. The cluster comes
//! from $KUBECONFIG (or ~/.kube/config, or the in-cluster service account).
//!
//! `cargo run --example deploy_bundle -- bundles/iot`

use std::process::ExitCode;

use charmer::deploy::{ApplyOptions, Event, Progress, WaitOptions};

/// Prints what the deploy does as it goes.
struct Print;

impl Progress for Print {
    fn event(&self, event: Event) {
        match event {
            Event::Applied { id, action, .. } => eprintln!("{action} {id}"),
            Event::Pruned { id } => eprintln!("pruned {id}"),
            Event::Expanded { id, from, to } => eprintln!("expanded {id} from {from} to {to}"),
            Event::Recreating { id, .. } => eprintln!("re-creating {id} (pods and claims kept)"),
            Event::Waiting { app, ready, total, why: None } => {
                eprintln!("{app}: {ready}/{total} ready")
            }
            Event::Waiting { app, ready, total, why: Some(why) } => {
                eprintln!("{app}: {ready}/{total} ready; waiting for {why}")
            }
        }
    }
}

fn main() -> ExitCode {
    let bundle = std::env::args().nth(1).unwrap_or_else(|| "bundles/iot".to_string());
    let options = charmer::ops::DeployOptions {
        resolve: charmer::ops::ResolveOptions { bundle: bundle.into(), ..Default::default() },
        ..Default::default()
    };
    let apply =
        ApplyOptions { prune: true, wait: Some(WaitOptions::default()), ..Default::default() };
    let mut warnings = Vec::new();
    let deployed = charmer::ops::runtime().and_then(|runtime| {
        charmer::ops::deploy(&runtime, &options, &apply, &Print, &mut warnings)
    });
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    match deployed {
        Ok(deployed) => {
            let plan = deployed.prepared.plan();
            match deployed.outcome.revision {
                Some(revision) => println!("deployed {} as revision {revision}", plan.bundle),
                None => println!("{} is unchanged", plan.bundle),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
