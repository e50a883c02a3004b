//! Renders a bundle through the library, as `charmer render` does: resolve (charms from
//! charms/ and dist/ near the bundle), render, print the manifests.
//!
//! `cargo run --example render_bundle -- bundles/iot`

use std::process::ExitCode;

fn main() -> ExitCode {
    let bundle = std::env::args().nth(1).unwrap_or_else(|| "bundles/iot".to_string());
    let options = charmer::ops::ResolveOptions { bundle: bundle.into(), ..Default::default() };
    let mut warnings = Vec::new();
    let rendered = charmer::ops::render(&options, &mut warnings);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    match rendered {
        Ok(rendered) => {
            // One application's YAML at a time, as `charmer render` writes it.
            for (_app, yaml) in rendered.manifests.by_app() {
                print!("{yaml}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
