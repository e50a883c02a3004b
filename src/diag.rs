//! Diagnostics shared by every stage: a [`Problem`] names the file, the key and what is
//! wrong (plus a hint where one helps); [`Problems`] collects them so a command can report
//! every problem of its input at once instead of stopping at the first.

use std::fmt;

/// One thing wrong with the user's input, printed on one line as `file: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or archive member) the problem is in.
    pub file: String,
    /// The key path inside that file, e.g. `options.replicas.default`; empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when that is not obvious from the message.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem at `key` of `file`.
    pub fn new(
        file: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem { file: file.into(), key: key.into(), message: message.into(), hint: None }
    }

    /// Adds a hint telling the user how to fix the problem.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    /// One line, whatever the parts hold: control characters are escaped (`\n`, `\u{1b}`), so
    /// a hostile archive member named `a\nerror: ...` can neither forge a line of output nor
    /// send escape sequences to the terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.file)?;
        if !self.key.is_empty() {
            f.write_str(": ")?;
            write_escaped(f, &self.key)?;
        }
        f.write_str(": ")?;
        write_escaped(f, &self.message)?;
        if let Some(hint) = &self.hint {
            f.write_str(" (hint: ")?;
            write_escaped(f, hint)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`): what is safe to print on one
/// line of a terminal when the text comes from an untrusted file.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, text);
    out
}

fn write_escaped(f: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            f.write_char(c)?;
        }
    }
    Ok(())
}

/// Every problem found in one pass over some input; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem.
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, else every recorded problem as the error.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Moves every problem of `other` into `self`.
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
}

impl From<Problem> for Problems {
    fn from(problem: Problem) -> Self {
        Problems(vec![problem])
    }
}

impl fmt::Display for Problems {
    /// One problem per line; the binary prefixes each with `error: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The known name closest to a misspelt one (edit distance at most 2), for "did you mean"
/// hints.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (distance(name, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

/// Levenshtein distance between two names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_one_line_whatever_its_parts_hold() {
        let p = Problem::new("a.charm", "x\nerror: forged", "bad \u{1b}[31mred").hint("tab\there");
        assert_eq!(
            p.to_string(),
            "a.charm: x\\nerror: forged: bad \\u{1b}[31mred (hint: tab\\there)"
        );
    }
}
