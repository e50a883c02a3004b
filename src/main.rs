//! The `charmer` binary: parses the command line, runs it, and maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

// glibc's malloc maps and unmaps every large block (the deflate state of each zip entry is
// ~300 KiB), paying page faults each time; mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc (v3) `mi_option_purge_delay`, from `include/mimalloc.h` as vendored by
// libmimalloc-sys 0.1.49 (the crate names only v2's options); the test below checks it.
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// mimalloc by default gives freed pages back to the system a second later: right for
/// servers, but a command that runs for a second then holds every page it ever touched.
/// Measured (release, 2 cores): a 500-application render peaked at 73 MiB RSS before and
/// 44 MiB after; a 1 GiB push with 4 uploads at 29 and 26 MiB; times unchanged.
#[allow(unsafe_code)]
fn return_freed_memory_promptly() {
    // SAFETY: a plain setter of mimalloc's static option table; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
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

#[cfg(test)]
mod tests {
    /// The option number names the purge delay: it reads that option's documented default,
    /// 1000 ms (no other option defaults to it), unless the environment sets it.
    #[test]
    #[allow(unsafe_code)]
    fn mimalloc_option_number_is_the_purge_delay() {
        let expected =
            std::env::var("MIMALLOC_PURGE_DELAY").map_or(1000, |v| v.parse().unwrap_or(1000));
        // SAFETY: a plain getter of mimalloc's static option table.
        let purge_delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(purge_delay, expected);
    }
}
