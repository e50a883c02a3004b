//! The `charmer` binary: parses the command line, runs it, and maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = charmer::cli::Cli::parse();
    charmer::cli::init_logging(cli.verbose);
    match charmer::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            for line in error.to_string().lines() {
                eprintln!("error: {line}");
            }
            error.exit_code()
        }
    }
}
