//! The template engine shared by the resolver (relation data a provider publishes) and the
//! renderer (a charm's `templates/`): minijinja with strict undefined values, no
//! auto-escaping (the output is YAML, not HTML), and the filters `toyaml` and `b64encode`.
//!
//! Templates come from untrusted charms, so every render is bounded: minijinja's own limits
//! stop single huge ranges, deep recursion and huge string repetition; [`FUEL`] bounds the
//! instructions one render may run (nested loops), and [`MAX_RENDERED_BYTES`] the text one
//! application's templates may produce.

use std::io::Write;

use base64::Engine;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::charm::Charm;
use crate::diag::{Problem, Problems};

/// The instructions one template render may run. The seven charms' largest template takes
/// under 20,000; a million-fold margin still ends a runaway loop within seconds.
pub const FUEL: u64 = 50_000_000;
/// The text the templates of one application may render in all (the largest real
/// application renders under 64 KiB).
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// A charm's compiled templates.
pub struct TemplateSet {
    env: Environment<'static>,
    /// Names of the templates rendered on their own (not `_`-prefixed helpers), sorted.
    pub documents: Vec<String>,
    origin: String,
}

impl TemplateSet {
    /// Compiles every file under the charm's `templates/`, reporting each syntax error
    /// with its template and line.
    pub fn for_charm(charm: &Charm) -> Result<TemplateSet, Problems> {
        let origin = charm.origin.path().display().to_string();
        let mut env = new_environment();
        let mut problems = Problems::default();
        let mut documents = Vec::new();
        for (path, file) in charm.templates() {
            let Ok(source) = String::from_utf8(file.data.clone()) else {
                problems.push(Problem::new(format!("{origin}/{path}"), "", "is not UTF-8 text"));
                continue;
            };
            if let Err(e) = env.add_template_owned(path.clone(), source) {
                problems.push(template_problem(&origin, &e));
                continue;
            }
            let base = path.rsplit('/').next().unwrap_or(path);
            if !base.starts_with('_') && (base.ends_with(".yaml") || base.ends_with(".yml")) {
                documents.push(path.clone());
            }
        }
        problems.into_result(TemplateSet { env, documents, origin })
    }

    /// Renders one template of the set, taking its text out of `budget` (the bytes the
    /// application's templates may still render).
    pub fn render(
        &self,
        name: &str,
        context: &Value,
        budget: &mut usize,
    ) -> Result<String, Problem> {
        let text =
            render_bounded(self.env.get_template(name), context, *budget).map_err(|e| match e {
                Some(e) => template_problem(&self.origin, &e),
                None => Problem::new(
                    format!("{}/{name}", self.origin),
                    "",
                    format!(
                        "renders more than {MAX_RENDERED_BYTES} bytes, the limit for one \
                         application's templates"
                    ),
                ),
            })?;
        *budget -= text.len();
        Ok(text)
    }
}

/// Renders `template` into at most `limit` bytes; `Err(None)` when it would write more.
fn render_bounded(
    template: Result<minijinja::Template<'_, '_>, minijinja::Error>,
    context: &Value,
    limit: usize,
) -> Result<String, Option<minijinja::Error>> {
    let mut out = Bounded { text: Vec::new(), limit, exceeded: false };
    let result = template.and_then(|t| t.render_captured_to(context, &mut out).map(drop));
    if out.exceeded {
        return Err(None);
    }
    result.map_err(Some)?;
    // The template's source is UTF-8 and so is everything it can insert.
    Ok(String::from_utf8_lossy(&out.text).into_owned())
}

/// A writer that refuses to grow past `limit` bytes.
struct Bounded {
    text: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("rendered text over the limit"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders a one-off template string (a `publishes:` value), naming `file` and `key` in
/// problems; bounded like a charm's templates.
pub fn render_str(file: &str, key: &str, source: &str, context: &Value) -> Result<String, Problem> {
    let env = new_environment();
    render_bounded(env.template_from_str(source), context, MAX_RENDERED_BYTES).map_err(|e| {
        let message = match e {
            Some(e) => describe(&e),
            None => format!("renders more than {MAX_RENDERED_BYTES} bytes"),
        };
        Problem::new(file, key, message)
    })
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(FUEL));
    env.add_filter("toyaml", |value: Value| -> Result<String, minijinja::Error> {
        let text = serde_yaml::to_string(&value).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })?;
        Ok(text.trim_end().to_string())
    });
    env.add_filter("b64encode", |value: String| {
        base64::engine::general_purpose::STANDARD.encode(value)
    });
    // A charm refuses a combination it cannot render correctly (e.g. TLS without `trust:`)
    // with its own message, instead of rendering something that fails on the cluster.
    env.add_function("fail", |message: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
    });
    env
}

fn describe(e: &minijinja::Error) -> String {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "runs more than {FUEL} template instructions, the limit for one template (a loop \
             over a huge range?)"
        );
    }
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn template_problem(origin: &str, e: &minijinja::Error) -> Problem {
    let file = match e.name() {
        Some(name) => format!("{origin}/{name}"),
        None => origin.to_string(),
    };
    let key = e.line().map(|l| format!("line {l}")).unwrap_or_default();
    let mut problem = Problem::new(file, key, describe(e));
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        problem = problem.hint(
            "check the name against docs/templates.md; test optional values with `is defined`",
        );
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let source =
            "{% for i in range(90000) %}{% for j in range(90000) %}{% endfor %}{% endfor %}";
        let err = render_str("c/metadata.yaml", "k", source, &Value::from(())).unwrap_err();
        assert!(err.to_string().contains("runs more than 50000000 template instructions"), "{err}");
    }

    #[test]
    fn output_is_bounded() {
        let source = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}";
        let err = render_str("c/metadata.yaml", "k", source, &Value::from(())).unwrap_err();
        assert!(err.to_string().contains("renders more than 16777216 bytes"), "{err}");
        assert_eq!(render_str("f", "k", "{{ 'ab' * 3 }}", &Value::from(())).unwrap(), "ababab");
    }
}
