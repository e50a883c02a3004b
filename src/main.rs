//! The `charmer` binary: parses the command line, runs it, and maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

// glibc's malloc maps and unmaps every large block (the deflate state of each zip entry is
// ~300 KiB), paying page faults each time; mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match charmer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let hint = charmer::cli::habit_hint(&error);
            let _ = error.print();
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    charmer::cli::init_logging(cli.verbose);
    match charmer::cli::run(cli) {
        Ok(code) => code,
        Err(error) if error.is_broken_pipe() => error.exit_code(),
        Err(error) => {
            for line in error.to_string().lines() {
                eprintln!("error: {line}");
            }
            error.exit_code()
        }
    }
}
