//! The "Apply? [y/N]" question of `deploy`, on a real pseudo-terminal: charmer runs under
//! util-linux `script` (Debian's bsdutils, always installed), which gives it a pty as its
//! controlling terminal and as stdin, stdout and stderr, unless the command line redirects
//! them. The test reads what the terminal shows and types the answer once the question is
//! there, against the Kubernetes API emulator.
//!
//! The rule (docs/deploy.md): asked whenever stdin is a terminal, whatever stdout and stderr
//! are; only `y`/`yes` applies; without a terminal on stdin it never asks and never reads.
//! The same terminal shows that colours appear on it, and only there.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deploy::demo;
use crate::support::kube_emulator::KubeEmulator;

/// Long enough for a deploy of the demo bundle on a loaded 2-core machine; a hang is a
/// failure, not a stuck test run.
const PATIENCE: Duration = Duration::from_secs(60);

/// `charmer` running under `script`: what its terminal shows, and its keyboard.
struct Terminal {
    child: Child,
    keyboard: Option<ChildStdin>,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// Runs `sh -c "charmer ARGS REDIRECTIONS"` in the demo fixture on a new pty, with
    /// `NO_COLOR` set.
    fn run(emulator: &KubeEmulator, args: &str, redirections: &str) -> Terminal {
        Terminal::start(emulator, args, redirections, Some("1"))
    }

    /// As [`Terminal::run`], with `NO_COLOR` set to `no_color` or unset.
    fn start(
        emulator: &KubeEmulator,
        args: &str,
        redirections: &str,
        no_color: Option<&str>,
    ) -> Terminal {
        let command = format!(
            "{} {args} --kubeconfig {} {redirections}",
            quoted(Path::new(env!("CARGO_BIN_EXE_charmer"))),
            quoted(&emulator.kubeconfig()),
        );
        let mut script = Command::new("script");
        match no_color {
            Some(value) => script.env("NO_COLOR", value),
            None => script.env_remove("NO_COLOR"),
        };
        let mut child = script
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .current_dir(demo())
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run script (util-linux)");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut output = child.stdout.take().unwrap();
        let shown = screen.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = output.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Terminal { keyboard: child.stdin.take(), child, screen }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `text`.
    fn wait_for(&self, text: &str) {
        let start = Instant::now();
        while !self.screen().contains(text) {
            assert!(
                start.elapsed() < PATIENCE,
                "the terminal never showed {text:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `keys` (a line ends with `\n`, as Enter sends it through the pty).
    fn type_keys(&mut self, keys: &str) {
        let keyboard = self.keyboard.as_mut().unwrap();
        keyboard.write_all(keys.as_bytes()).unwrap();
        keyboard.flush().unwrap();
    }

    /// Waits for charmer to end (the keyboard stays connected until then): its exit code and
    /// everything the terminal showed.
    fn finish(mut self) -> (i32, String) {
        let status = ended(&mut self.child).unwrap_or_else(|| {
            panic!("charmer did not end (blocked on a question?):\n{}", self.screen())
        });
        drop(self.keyboard.take());
        // The reader thread may still hold the last bytes.
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), self.screen())
    }
}

/// Waits for `child` to end, at most [`PATIENCE`]; kills it and returns `None` after that.
fn ended(child: &mut Child) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `path` in single quotes for `sh`.
fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

const DEPLOY: &str = "deploy bundles/demo --timeout 30s";

fn deployed(emulator: &KubeEmulator) -> bool {
    emulator.get("StatefulSet", "demo", "mydb").is_some()
}

#[test]
fn on_a_terminal_deploy_shows_the_changes_and_applies_only_after_yes() {
    if !crate::support::tools_present(&["script"]) {
        return;
    }
    let emulator = KubeEmulator::start();
    let mut terminal = Terminal::run(&emulator, DEPLOY, "");
    terminal.wait_for("Apply? [y/N] ");
    let asked = terminal.screen();
    assert!(asked.contains("created    Namespace/demo"), "{asked}");
    assert!(asked.contains("created    StatefulSet/demo/mydb"), "{asked}");
    assert!(asked.contains("to create, 0 to change, 0 to prune"), "{asked}");
    assert!(!deployed(&emulator), "nothing is applied while the question waits");
    assert_eq!(emulator.writes(), Vec::<String>::new());
    terminal.type_keys("y\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("demo deployed to namespace demo as revision 1, ready"), "{screen}");
    assert!(deployed(&emulator));

    // Nothing left to change: nothing to ask either.
    let (code, screen) = Terminal::run(&emulator, DEPLOY, "").finish();
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("Apply?"), "{screen}");
}

#[test]
fn no_or_an_empty_answer_leaves_the_cluster_untouched_and_fails() {
    if !crate::support::tools_present(&["script"]) {
        return;
    }
    let emulator = KubeEmulator::start();
    for answer in ["n\n", "\n", "yep\n"] {
        let mut terminal = Terminal::run(&emulator, DEPLOY, "");
        terminal.wait_for("Apply? [y/N] ");
        terminal.type_keys(answer);
        let (code, screen) = terminal.finish();
        assert_eq!(code, 1, "answer {answer:?}: {screen}");
        assert!(screen.contains("nothing was applied"), "answer {answer:?}: {screen}");
        assert!(!deployed(&emulator), "answer {answer:?}");
        assert_eq!(emulator.writes(), Vec::<String>::new(), "answer {answer:?}");
    }
}

#[test]
fn stdout_and_stderr_piped_still_ask_on_the_terminal() {
    if !crate::support::tools_present(&["script"]) {
        return;
    }
    let emulator = KubeEmulator::start();
    let files = tempfile::tempdir().unwrap();
    let (out, err) = (files.path().join("out.txt"), files.path().join("err.txt"));

    // `deploy ... | tee log`: stdout is not the terminal; the question is on stderr.
    let mut terminal = Terminal::run(&emulator, DEPLOY, &format!("> {}", quoted(&out)));
    terminal.wait_for("Apply? [y/N] ");
    terminal.type_keys("no\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 1, "{screen}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "nothing was applied\n");
    assert!(!deployed(&emulator));

    // stderr redirected too (`2>&1 | tee log`): the question goes to the terminal itself,
    // not into the log where no one would see it.
    let redirect = format!("> {} 2> {}", quoted(&out), quoted(&err));
    let mut terminal = Terminal::run(&emulator, DEPLOY, &redirect);
    terminal.wait_for("Apply? [y/N] ");
    assert!(
        terminal.screen().contains("created    StatefulSet/demo/mydb"),
        "{}",
        terminal.screen()
    );
    terminal.type_keys("yes\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 0, "{screen}");
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(
        printed.ends_with("demo deployed to namespace demo as revision 1, ready\n"),
        "{printed}"
    );
    assert!(!printed.contains("Apply?") && !printed.contains('\x1b'), "{printed:?}");
    assert!(!std::fs::read_to_string(&err).unwrap().contains("Apply?"));
    assert!(deployed(&emulator));
}

#[test]
fn without_a_terminal_on_stdin_deploy_never_asks_and_never_reads_it() {
    if !crate::support::tools_present(&["script"]) {
        return;
    }
    // stdout and stderr are the terminal, stdin is not: no question, applied.
    let emulator = KubeEmulator::start();
    let (code, screen) = Terminal::run(&emulator, DEPLOY, "< /dev/null").finish();
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("Apply?"), "{screen}");
    assert!(screen.contains("demo deployed to namespace demo as revision 1, ready"), "{screen}");
    assert!(deployed(&emulator));

    // stdin an open pipe no one writes to: were it read, the deploy would block.
    let emulator = KubeEmulator::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_charmer"))
        .args(DEPLOY.split(' '))
        .arg("--kubeconfig")
        .arg(emulator.kubeconfig())
        .current_dir(demo())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = ended(&mut child).expect("deploy blocked reading stdin");
    let mut printed = String::new();
    child.stdout.take().unwrap().read_to_string(&mut printed).unwrap();
    assert!(status.success(), "{printed}");
    assert!(
        printed.ends_with("demo deployed to namespace demo as revision 1, ready\n"),
        "{printed}"
    );
    assert!(deployed(&emulator));
}

/// Colours on a terminal, and only there: `deploy --diff` colours its diff and `logs` its
/// `pod/container` prefixes when stdout is the terminal; `NO_COLOR` (any value but empty) or
/// a redirected stdout turns them off. The text itself never sends escape codes.
#[test]
fn colours_on_a_terminal_only_and_never_from_the_text() {
    if !crate::support::tools_present(&["script"]) {
        return;
    }
    let emulator = KubeEmulator::start();
    let diff = "deploy bundles/demo --diff";
    let (code, screen) = Terminal::start(&emulator, diff, "", None).finish();
    assert_eq!(code, 1, "changes to show: {screen}");
    assert!(screen.contains("\x1b[32m+  replicas: 3"), "green additions: {screen:?}");

    let (code, screen) = Terminal::start(&emulator, diff, "", Some("1")).finish();
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("+  replicas: 3") && !screen.contains('\x1b'), "{screen:?}");

    let file = tempfile::tempdir().unwrap();
    let out = file.path().join("diff.txt");
    let (code, screen) =
        Terminal::start(&emulator, diff, &format!("> {}", quoted(&out)), None).finish();
    assert_eq!(code, 1, "{screen}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("+  replicas: 3") && !written.contains('\x1b'), "{written:?}");

    // Logs: the prefix coloured, a log line's own escape sequence shown, not obeyed.
    // No terminal on stdin: no question.
    let (code, _, err) = crate::deploy::charmer(&emulator, &DEPLOY.split(' ').collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    emulator.append_log("demo", "web-g1-0", "web", "clear the screen \x1b[2J now");
    let logs = "logs demo web --tail 1";
    let (code, screen) = Terminal::start(&emulator, logs, "", None).finish();
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("\x1b[36mweb-g1-0/web\x1b[0m clear the screen \\u{1b}[2J now\r\n"),
        "{screen:?}"
    );
    let (code, screen) = Terminal::start(&emulator, logs, "", Some("1")).finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("web-g1-0/web clear the screen \\u{1b}[2J now\r\n"), "{screen:?}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
}

#[test]
fn remove_asks_by_the_same_rule_and_destroying_storage_says_so() {
    if !crate::support::tools_present(&["script"]) {
        return;
    }
    let emulator = KubeEmulator::start();
    let (code, screen) = Terminal::run(&emulator, &format!("{DEPLOY} --yes"), "").finish();
    assert_eq!(code, 0, "{screen}");
    assert!(deployed(&emulator));

    let mut terminal =
        Terminal::run(&emulator, "remove bundles/demo --destroy-storage", "> /dev/null");
    terminal.wait_for("[y/N] ");
    assert!(
        terminal.screen().contains("DELETING its PersistentVolumeClaims"),
        "{}",
        terminal.screen()
    );
    terminal.type_keys("n\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 1, "{screen}");
    assert!(deployed(&emulator), "a no keeps the bundle");

    let mut terminal = Terminal::run(&emulator, "remove bundles/demo", "");
    terminal.wait_for("(its PersistentVolumeClaims and their credentials are kept) [y/N] ");
    terminal.type_keys("y\n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("removed demo from namespace demo"), "{screen}");
    assert!(!deployed(&emulator));
}
