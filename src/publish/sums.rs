//! `SHA256SUMS` in coreutils' format (`<hex>  <file>` per line), so `sha256sum -c` checks it.

use std::collections::BTreeMap;

use crate::diag::{Problem, Problems};

/// The file's text for `files` (name → hex SHA-256), sorted by name.
pub fn render(files: &BTreeMap<String, String>) -> String {
    files.iter().map(|(name, sha)| format!("{sha}  {name}\n")).collect()
}

/// Parses a `SHA256SUMS` file into name → hex SHA-256. Accepts coreutils' binary marker
/// (`<hex> *<file>`) too.
pub fn parse(label: &str, text: &str) -> Result<BTreeMap<String, String>, Problems> {
    let mut problems = Problems::default();
    let mut files = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = line.split_once(' ').and_then(|(sha, rest)| {
            let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            let hex = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then(|| (name.to_string(), sha.to_ascii_lowercase()))
        });
        match parsed {
            Some((name, sha)) => {
                files.insert(name, sha);
            }
            None => problems.push(Problem::new(
                label,
                format!("line {}", i + 1),
                "not a `<sha256>  <file>` line",
            )),
        }
    }
    problems.into_result(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_binary_markers() {
        let mut files = BTreeMap::new();
        files.insert("b.charm".to_string(), "b".repeat(64));
        files.insert("a.charm".to_string(), "a".repeat(64));
        let text = render(&files);
        assert_eq!(text, format!("{}  a.charm\n{}  b.charm\n", "a".repeat(64), "b".repeat(64)));
        assert_eq!(parse("S", &text).unwrap(), files);
        let binary = format!("{} *x\n", "C".repeat(64));
        assert_eq!(parse("S", &binary).unwrap()["x"], "c".repeat(64));
        assert!(parse("S", "junk\n").unwrap_err().to_string().contains("S: line 1"));
    }
}
