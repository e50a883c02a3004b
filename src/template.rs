//! The template engine shared by the resolver (relation data a provider publishes) and the
//! renderer (a charm's `templates/`): minijinja with strict undefined values, no
//! auto-escaping (the output is YAML, not HTML), and the filters `toyaml` and `b64encode`.

use base64::Engine;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::charm::Charm;
use crate::diag::{Problem, Problems};

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

    /// Renders one template of the set.
    pub fn render(&self, name: &str, context: &Value) -> Result<String, Problem> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| template_problem(&self.origin, &e))
    }
}

/// Renders a one-off template string (a `publishes:` value), naming `file` and `key` in
/// problems.
pub fn render_str(file: &str, key: &str, source: &str, context: &Value) -> Result<String, Problem> {
    new_environment().render_str(source, context).map_err(|e| Problem::new(file, key, describe(&e)))
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter("toyaml", |value: Value| -> Result<String, minijinja::Error> {
        let text = serde_yaml::to_string(&value).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })?;
        Ok(text.trim_end().to_string())
    });
    env.add_filter("b64encode", |value: String| {
        base64::engine::general_purpose::STANDARD.encode(value)
    });
    env
}

fn describe(e: &minijinja::Error) -> String {
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
