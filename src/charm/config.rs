//! `config.yaml`: the typed options a charm accepts, and the rules that turn YAML values and
//! command-line strings into typed [`ConfigValue`]s.
//!
//! Juju's types are `string`, `int`, `float`, `boolean` and `secret` (a missing type means
//! `string`). charmer adds keys Juju ignores (its config.yaml reader skips unknown keys, and
//! `charmcraft analyse` has no lint on them): `enum:` (the allowed values), `secret-ref:`, and
//! the constraints of [`Constraints`] (`minimum`, `maximum`, `pattern`, `format`, `required`,
//! `at-least`, `only-when`), so a value the cluster, the image or another option would refuse
//! is refused at resolve time, naming where it was set.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::contract::parse_yaml;
use crate::diag::{Problem, Problems};

/// The type of a config option, as Juju spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    /// Free text (the default when `type:` is missing).
    #[default]
    String,
    /// A signed 64-bit integer.
    Int,
    /// A 64-bit float.
    Float,
    /// `true`/`false`.
    Boolean,
    /// Text that must never be shown: printed as `<secret>` everywhere.
    Secret,
}

impl fmt::Display for OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionType::String => "string",
            OptionType::Int => "int",
            OptionType::Float => "float",
            OptionType::Boolean => "boolean",
            OptionType::Secret => "secret",
        })
    }
}

/// A typed config value.
#[derive(Clone, PartialEq)]
pub enum ConfigValue {
    /// A `string` value.
    String(String),
    /// An `int` value.
    Int(i64),
    /// A `float` value.
    Float(f64),
    /// A `boolean` value.
    Boolean(bool),
    /// A `secret` value; its `Debug` and `Display` never show the content.
    Secret(String),
}

impl ConfigValue {
    /// The value as templates see it. Secrets are included: templates must be able to put
    /// them into Secret objects. Use [`ConfigValue::to_display_yaml`] for anything shown.
    pub fn to_yaml(&self) -> serde_yaml::Value {
        match self {
            ConfigValue::String(s) | ConfigValue::Secret(s) => serde_yaml::Value::String(s.clone()),
            ConfigValue::Int(i) => serde_yaml::Value::Number((*i).into()),
            ConfigValue::Float(x) => serde_yaml::Value::Number((*x).into()),
            ConfigValue::Boolean(b) => serde_yaml::Value::Bool(*b),
        }
    }

    /// The value as it may be shown to a person or written to a report: secrets redacted.
    pub fn to_display_yaml(&self) -> serde_yaml::Value {
        match self {
            ConfigValue::Secret(_) => serde_yaml::Value::String(REDACTED.to_string()),
            other => other.to_yaml(),
        }
    }
}

impl ConfigValue {
    /// An int or float as a float (to compare with `minimum`/`maximum`), else `None`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Int(i) => Some(*i as f64),
            ConfigValue::Float(x) => Some(*x),
            _ => None,
        }
    }
}

/// What is printed in place of a secret value.
pub const REDACTED: &str = "<secret>";

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::String(s) => write!(f, "{s:?}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x:?}"),
            ConfigValue::Boolean(b) => write!(f, "{b}"),
            ConfigValue::Secret(_) => f.write_str(REDACTED),
        }
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One option of `config.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// The declared type.
    pub kind: OptionType,
    /// The type-checked default; `None` when absent or null (the option is then unset).
    pub default: Option<ConfigValue>,
    /// The description, as written.
    pub description: String,
    /// charmer's `enum:` extension: the only values allowed, type-checked like the default.
    pub allowed: Option<Vec<ConfigValue>>,
    /// charmer's `secret-ref: true` extension: a non-empty value names a Kubernetes Secret
    /// in the target namespace that must exist before deploying (checked by `deploy`).
    pub secret_ref: bool,
    /// charmer's constraints on the value.
    pub constraints: Constraints,
}

/// charmer's constraints on an option's value, beside `enum`. `pattern` and `format` judge
/// non-empty text only: Juju's empty string means "unset", which `required` refuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// `minimum:` (int and float options): the smallest value allowed.
    pub minimum: Option<ConfigValue>,
    /// `maximum:` (int and float options): the largest value allowed.
    pub maximum: Option<ConfigValue>,
    /// `pattern:` (string options): a regular expression the whole value must match.
    pub pattern: Option<Pattern>,
    /// `format:`: one of the [`Format`]s.
    pub format: Option<Format>,
    /// `required: true` (string options): the empty string is refused.
    pub required: bool,
    /// `at-least: OPTION` (int and float options): the value must not be below that
    /// option's (`max_scale` at least `min_scale`).
    pub at_least: Option<String>,
    /// `only-when: {OPTION: VALUE or [VALUES]}`: the option takes effect only while each
    /// named option has one of those values; set otherwise, it is reported as ignored.
    pub only_when: BTreeMap<String, Vec<ConfigValue>>,
}

/// A `pattern:` regular expression, compared by its text.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    regex: regex::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Pattern {
    /// The expression as written in `config.yaml`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The value formats `format:` names; each is the API server's (or the image's) own rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Any Kubernetes resource quantity (`2Gi`, `500m`).
    Quantity,
    /// A CPU quantity: positive, at most millicore precision (`250m`, `1.5`).
    CpuQuantity,
    /// A memory quantity: a positive whole number of bytes (`512Mi`, not `512m` or `512MB`).
    MemoryQuantity,
    /// A storage size, as a memory quantity (`10Gi`).
    StorageQuantity,
    /// A port number, 1-65535 (int options).
    Port,
    /// A node port, 30000-32767, or 0 for "Kubernetes picks" (int options).
    NodePort,
    /// A DNS-1123 label (`web-1`).
    DnsLabel,
    /// A DNS-1123 subdomain (`db.example.com`).
    DnsSubdomain,
    /// A bare, lowercase host name: no scheme, port or path.
    Hostname,
    /// Comma-separated host names, `*` or `*.domain` wildcards allowed (a Gateway's hosts).
    Hostnames,
    /// The name of a Secret (a DNS-1123 subdomain).
    SecretName,
    /// The name of a ConfigMap (a DNS-1123 subdomain).
    ConfigmapName,
    /// An absolute URL with a host (`http://minio.storage:9000`).
    Url,
    /// One or more PEM X.509 certificates, parsed; a private key is refused.
    PemCertificate,
    /// A Go duration (`30s`, `1m30s`).
    Duration,
}

impl Format {
    /// Every format with its name in `config.yaml`, for hints and docs.
    pub const ALL: &'static [(&'static str, Format)] = &[
        ("quantity", Format::Quantity),
        ("cpu-quantity", Format::CpuQuantity),
        ("memory-quantity", Format::MemoryQuantity),
        ("storage-quantity", Format::StorageQuantity),
        ("port", Format::Port),
        ("node-port", Format::NodePort),
        ("dns-label", Format::DnsLabel),
        ("dns-subdomain", Format::DnsSubdomain),
        ("hostname", Format::Hostname),
        ("hostnames", Format::Hostnames),
        ("secret-name", Format::SecretName),
        ("configmap-name", Format::ConfigmapName),
        ("url", Format::Url),
        ("pem-certificate", Format::PemCertificate),
        ("duration", Format::Duration),
    ];

    /// The name `config.yaml` uses.
    pub fn name(self) -> &'static str {
        Format::ALL.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or_default()
    }

    /// The type the format applies to.
    fn kind(self) -> OptionType {
        match self {
            Format::Port | Format::NodePort => OptionType::Int,
            _ => OptionType::String,
        }
    }

    /// Why `text` is not of this format, or `None`.
    fn check_text(self, text: &str) -> Option<String> {
        use crate::kube_rules as k;
        let quantity = |what: &str, ok: &dyn Fn(f64) -> bool| match k::parse_quantity(text) {
            Err(e) => Some(e),
            Ok(q) if !ok(q.0) => Some(format!("{text:?} is not {what}")),
            Ok(_) => None,
        };
        match self {
            Format::Quantity => k::parse_quantity(text).err(),
            Format::CpuQuantity => quantity(
                "a CPU amount (positive, at most millicore precision: 250m, 0.5, 2)",
                &|v| v > 0.0 && ((v * 1000.0).round() - v * 1000.0).abs() < 1e-6,
            ),
            Format::MemoryQuantity | Format::StorageQuantity => quantity(
                "a size in whole bytes (positive, binary suffixes: 512Mi, 2Gi; m means thousandths)",
                &|v| v >= 1.0 && (v.round() - v).abs() < 1e-6,
            ),
            Format::Port | Format::NodePort => Some(format!("{text:?} is not a number")),
            Format::DnsLabel => k::dns_label_problem(text),
            Format::DnsSubdomain | Format::SecretName | Format::ConfigmapName => {
                k::dns_subdomain_problem(text)
            }
            Format::Hostname => k::hostname_problem(text),
            Format::Hostnames => text.split(',').map(str::trim).find_map(|host| {
                let bare = host.strip_prefix("*.").unwrap_or(host);
                (host != "*").then(|| k::hostname_problem(bare)).flatten()
            }),
            Format::Url => k::url_problem(text),
            Format::PemCertificate => k::pem_certificate_problem(text).map(|why| format!("the value {why}")),
            Format::Duration => k::parse_duration(text).err(),
        }
    }

    /// Why the int `value` is not of this format, or `None`.
    fn check_int(self, value: i64) -> Option<String> {
        match self {
            Format::Port => crate::kube_rules::port_problem(value),
            Format::NodePort => crate::kube_rules::node_port_problem(value),
            _ => None,
        }
    }
}

impl Constraints {
    /// One short phrase per constraint, for `inspect` and the charms' READMEs.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.required {
            out.push("required (not empty)".to_string());
        }
        if let Some(v) = &self.minimum {
            out.push(format!("minimum {v}"));
        }
        if let Some(v) = &self.maximum {
            out.push(format!("maximum {v}"));
        }
        if let Some(o) = &self.at_least {
            out.push(format!("at least {o}"));
        }
        if let Some(f) = self.format {
            out.push(format!("format {}", f.name()));
        }
        if let Some(p) = &self.pattern {
            out.push(format!("pattern {:?}", p.as_str()));
        }
        for (option, values) in &self.only_when {
            let values: Vec<String> = values.iter().map(ToString::to_string).collect();
            out.push(format!("only when {option} is {}", values.join(" or ")));
        }
        out
    }
}

/// The options of a charm, by name (sorted, so every listing is stable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSchema {
    /// Options by name.
    pub options: BTreeMap<String, OptionSpec>,
    /// Keys neither Juju nor charmer knows (`options.x.defualt`), kept for warnings: Juju
    /// ignores them, so they are not errors.
    pub unknown_keys: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    options: Option<BTreeMap<String, RawOption>>,
    /// Keys beside `options`: warned about.
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawOption {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    default: Option<serde_yaml::Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "enum", default)]
    allowed: Option<Vec<serde_yaml::Value>>,
    #[serde(rename = "secret-ref", default)]
    secret_ref: bool,
    #[serde(default)]
    minimum: Option<serde_yaml::Value>,
    #[serde(default)]
    maximum: Option<serde_yaml::Value>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(rename = "at-least", default)]
    at_least: Option<String>,
    #[serde(rename = "only-when", default)]
    only_when: Option<BTreeMap<String, serde_yaml::Value>>,
    /// Keys neither Juju nor charmer knows: warned about.
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml::Value>,
}

impl ConfigSchema {
    /// Parses `config.yaml` text; `file` names it in problems. Reports every bad option.
    pub fn parse(file: &str, text: &str) -> Result<ConfigSchema, Problems> {
        let raw: RawConfig = parse_yaml(file, text)?;
        let mut problems = Problems::default();
        let mut options = BTreeMap::new();
        let mut unknown_keys: Vec<String> = raw.unknown.keys().cloned().collect();
        let mut pending_only_when: BTreeMap<String, BTreeMap<String, Vec<serde_yaml::Value>>> =
            BTreeMap::new();
        for (name, mut raw) in raw.options.unwrap_or_default() {
            let key = format!("options.{name}");
            unknown_keys.extend(raw.unknown.keys().map(|k| format!("{key}.{k}")));
            let kind = match raw.kind.as_deref() {
                None => OptionType::String,
                Some(t) => match serde_yaml::from_value(serde_yaml::Value::String(t.to_string())) {
                    Ok(kind) => kind,
                    Err(_) => {
                        problems.push(
                            Problem::new(
                                file,
                                format!("{key}.type"),
                                format!("unknown type {t:?}"),
                            )
                            .hint("use one of string, int, float, boolean, secret"),
                        );
                        continue;
                    }
                },
            };
            let allowed = match raw.allowed.take() {
                None => None,
                Some(values) if values.is_empty() => {
                    problems.push(Problem::new(
                        file,
                        format!("{key}.enum"),
                        "the list of allowed values is empty",
                    ));
                    None
                }
                Some(values) => {
                    let mut typed = Vec::new();
                    for (i, v) in values.iter().enumerate() {
                        match check_yaml_value(kind, v) {
                            Ok(Some(value)) => typed.push(value),
                            Ok(None) => problems.push(Problem::new(
                                file,
                                format!("{key}.enum[{i}]"),
                                "null is not an allowed value",
                            )),
                            Err(msg) => {
                                problems.push(Problem::new(file, format!("{key}.enum[{i}]"), msg))
                            }
                        }
                    }
                    Some(typed)
                }
            };
            let default = match raw.default.as_ref().map(|v| check_yaml_value(kind, v)) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(value))) => Some(value),
                Some(Err(msg)) => {
                    problems.push(Problem::new(file, format!("{key}.default"), msg));
                    None
                }
            };
            if raw.secret_ref && kind != OptionType::String {
                problems.push(
                    Problem::new(
                        file,
                        format!("{key}.secret-ref"),
                        "only string options can name a Secret",
                    )
                    .hint("set type: string"),
                );
            }
            let (constraints, only_when) = parse_constraints(file, &key, kind, &raw, &mut problems);
            pending_only_when.insert(name.clone(), only_when);
            let spec = OptionSpec {
                kind,
                default,
                description: raw.description.unwrap_or_default(),
                allowed,
                secret_ref: raw.secret_ref,
                constraints,
            };
            if let Some(default) = &spec.default {
                // Juju lets a string default be '' meaning "unset"; an enum must still allow it.
                let empty_text = matches!(default, ConfigValue::String(s) | ConfigValue::Secret(s) if s.is_empty());
                if !empty_text {
                    if let Err(msg) = spec.check_allowed(default) {
                        problems.push(Problem::new(file, format!("{key}.default"), msg));
                    }
                }
                if let Err(msg) = spec.check_constraints(default) {
                    problems.push(Problem::new(file, format!("{key}.default"), msg));
                }
            }
            options.insert(name, spec);
        }
        // `at-least` and `only-when` name other options: checked once all are known.
        let kinds: BTreeMap<String, OptionType> =
            options.iter().map(|(n, o)| (n.clone(), o.kind)).collect();
        let names: Vec<&str> = kinds.keys().map(String::as_str).collect();
        for (name, spec) in options.iter_mut() {
            let key = format!("options.{name}");
            if let Some(other) = &spec.constraints.at_least {
                match kinds.get(other) {
                    Some(k) if *k == spec.kind => {}
                    Some(_) => problems.push(Problem::new(
                        file,
                        format!("{key}.at-least"),
                        format!("option {other:?} is not of type {}", spec.kind),
                    )),
                    None => problems.push(unknown_option(
                        file,
                        &format!("{key}.at-least"),
                        other,
                        &names,
                    )),
                }
            }
            for (other, values) in pending_only_when.remove(name).unwrap_or_default() {
                let okey = format!("{key}.only-when.{other}");
                let Some(kind) = kinds.get(&other) else {
                    problems.push(unknown_option(file, &okey, &other, &names));
                    continue;
                };
                let mut typed = Vec::new();
                for value in &values {
                    match check_yaml_value(*kind, value) {
                        Ok(Some(value)) => typed.push(value),
                        Ok(None) => problems.push(Problem::new(file, &okey, "null is not a value")),
                        Err(msg) => problems.push(Problem::new(file, &okey, msg)),
                    }
                }
                spec.constraints.only_when.insert(other, typed);
            }
        }
        problems.into_result(ConfigSchema { options, unknown_keys })
    }
}

/// A problem between options of one application's effective config.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossProblem {
    /// The option the problem is about.
    pub option: String,
    /// What is wrong, with the other option's value and where it was set.
    pub message: String,
    /// `false`: an error (`at-least`); `true`: the option is set but does not take effect
    /// (`only-when`), a warning.
    pub ignored: bool,
}

impl ConfigSchema {
    /// The `at-least` and `only-when` rules over an effective config: `value_of(option)` gives
    /// an option's value and where it was set, `None` when it is unset. `only-when` results
    /// are given for every option whose condition fails; the caller keeps those a user set.
    pub fn cross_check<'a>(
        &self,
        value_of: impl Fn(&str) -> Option<(&'a ConfigValue, String)>,
    ) -> Vec<CrossProblem> {
        let mut out = Vec::new();
        for (name, spec) in &self.options {
            let c = &spec.constraints;
            if let (Some(other), Some((value, _))) = (&c.at_least, value_of(name)) {
                if let Some((bound, source)) = value_of(other) {
                    if value.as_f64() < bound.as_f64() {
                        out.push(CrossProblem {
                            option: name.clone(),
                            message: format!("{name}={value} is below {other}={bound} (set by {source}); {name} must be at least {other}"),
                            ignored: false,
                        });
                    }
                }
            }
            for (other, values) in &c.only_when {
                let current = value_of(other);
                if current.as_ref().is_some_and(|(v, _)| values.contains(v)) {
                    continue;
                }
                let wanted: Vec<String> = values.iter().map(ToString::to_string).collect();
                let now = match &current {
                    Some((v, source)) => format!("it is {v}, set by {source}"),
                    None => "it is unset".to_string(),
                };
                out.push(CrossProblem {
                    option: name.clone(),
                    message: format!(
                        "ignored: {name} takes effect only when {other} is {} ({now})",
                        wanted.join(" or ")
                    ),
                    ignored: true,
                });
            }
        }
        out
    }
}

/// An unknown option named by `at-least` or `only-when`.
fn unknown_option(file: &str, key: &str, name: &str, known: &[&str]) -> Problem {
    let problem = Problem::new(file, key, format!("no option {name:?}"));
    match crate::diag::closest(name, known) {
        Some(c) => problem.hint(format!("did you mean {c:?}?")),
        None => problem,
    }
}

/// Reads an option's constraint keys; `only-when` values stay YAML until every option's type
/// is known (they are typed by the option they name).
fn parse_constraints(
    file: &str,
    key: &str,
    kind: OptionType,
    raw: &RawOption,
    problems: &mut Problems,
) -> (Constraints, BTreeMap<String, Vec<serde_yaml::Value>>) {
    let mut c = Constraints { required: raw.required, ..Constraints::default() };
    let numeric = matches!(kind, OptionType::Int | OptionType::Float);
    for (name, given, slot) in
        [("minimum", &raw.minimum, &mut c.minimum), ("maximum", &raw.maximum, &mut c.maximum)]
    {
        let Some(value) = given else { continue };
        if !numeric {
            problems.push(Problem::new(
                file,
                format!("{key}.{name}"),
                format!("only int and float options have a {name}"),
            ));
            continue;
        }
        match check_yaml_value(kind, value) {
            Ok(v) => *slot = v,
            Err(msg) => problems.push(Problem::new(file, format!("{key}.{name}"), msg)),
        }
    }
    if let (Some(ConfigValue::Int(lo)), Some(ConfigValue::Int(hi))) = (&c.minimum, &c.maximum) {
        if lo > hi {
            problems.push(Problem::new(
                file,
                format!("{key}.maximum"),
                format!("{hi} is below the minimum {lo}"),
            ));
        }
    }
    let text = matches!(kind, OptionType::String | OptionType::Secret);
    if let Some(pattern) = &raw.pattern {
        if !text {
            problems.push(Problem::new(
                file,
                format!("{key}.pattern"),
                "only string and secret options have a pattern",
            ));
        } else {
            // Anchored: the whole value must match, as JSON Schema users expect of a `pattern`
            // for names and identifiers (unanchored, `[a-z]+` would accept `Bad_Name`).
            match regex::Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => c.pattern = Some(Pattern { text: pattern.clone(), regex }),
                // regex's message draws a caret under the error on several lines; its last line
                // says what is wrong.
                Err(e) => {
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_string();
                    problems.push(Problem::new(
                        file,
                        format!("{key}.pattern"),
                        format!("invalid regular expression: {why}"),
                    ))
                }
            }
        }
    }
    if raw.required && !text {
        problems.push(Problem::new(
            file,
            format!("{key}.required"),
            "only string and secret options can be required (not empty)",
        ));
    }
    if let Some(name) = &raw.format {
        match Format::ALL.iter().find(|(n, _)| n == name) {
            Some((_, f))
                if f.kind() == kind
                    || (f.kind() == OptionType::String && kind == OptionType::Secret) =>
            {
                c.format = Some(*f)
            }
            Some((_, f)) => problems.push(Problem::new(
                file,
                format!("{key}.format"),
                format!("format {name} applies to {} options, not {kind}", f.kind()),
            )),
            None => {
                let names: Vec<&str> = Format::ALL.iter().map(|(n, _)| *n).collect();
                let problem =
                    Problem::new(file, format!("{key}.format"), format!("unknown format {name:?}"));
                problems.push(match crate::diag::closest(name, &names) {
                    Some(close) => problem
                        .hint(format!("did you mean {close:?}? (formats: {})", names.join(", "))),
                    None => problem.hint(format!("formats: {}", names.join(", "))),
                });
            }
        }
    }
    if raw.at_least.is_some() && !numeric {
        problems.push(Problem::new(
            file,
            format!("{key}.at-least"),
            "only int and float options can be bounded by another",
        ));
    } else {
        c.at_least = raw.at_least.clone();
    }
    let only_when = raw
        .only_when
        .iter()
        .flatten()
        .map(|(option, value)| {
            let values = match value {
                serde_yaml::Value::Sequence(values) => values.clone(),
                one => vec![one.clone()],
            };
            (option.clone(), values)
        })
        .collect();
    (c, only_when)
}

impl OptionSpec {
    /// Type-checks a YAML value (from a bundle, overlay or values file) against this option,
    /// including the allowed values. `Ok(None)` for null: the option falls back to its default.
    pub fn check_yaml(&self, value: &serde_yaml::Value) -> Result<Option<ConfigValue>, String> {
        let typed = check_yaml_value(self.kind, value)?;
        if let Some(v) = &typed {
            self.check_allowed(v)?;
            self.check_constraints(v)?;
        }
        Ok(typed)
    }

    /// Parses a command-line string by type, as Juju does (`juju config app key=value`):
    /// int base 10, float, boolean from `1,t,T,TRUE,true,True,0,f,F,FALSE,false,False`.
    pub fn parse_str(&self, text: &str) -> Result<ConfigValue, String> {
        let value = match self.kind {
            OptionType::String => ConfigValue::String(text.to_string()),
            OptionType::Secret => ConfigValue::Secret(text.to_string()),
            OptionType::Int => ConfigValue::Int(
                text.parse::<i64>()
                    .map_err(|_| format!("expected an int (base 10), got {text:?}"))?,
            ),
            OptionType::Float => ConfigValue::Float(
                text.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("expected a float, got {text:?}"))?,
            ),
            OptionType::Boolean => ConfigValue::Boolean(match text {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                _ => return Err(format!("expected a boolean (true or false), got {text:?}")),
            }),
        };
        self.check_allowed(&value)?;
        self.check_constraints(&value)?;
        Ok(value)
    }

    /// Checks a typed value against the option's own constraints (not those naming other
    /// options: see [`ConfigSchema::cross_check`]) and refuses a credential in a plain option.
    /// A secret's value is never quoted in the message.
    pub fn check_constraints(&self, value: &ConfigValue) -> Result<(), String> {
        let c = &self.constraints;
        match value {
            ConfigValue::Int(_) | ConfigValue::Float(_) => {
                let x = value.as_f64().unwrap_or_default();
                if let Some(min) = c.minimum.as_ref().filter(|m| x < m.as_f64().unwrap_or_default())
                {
                    return Err(format!("{value} is below the minimum {min}"));
                }
                if let Some(max) = c.maximum.as_ref().filter(|m| x > m.as_f64().unwrap_or_default())
                {
                    return Err(format!("{value} is above the maximum {max}"));
                }
                if let (ConfigValue::Int(i), Some(f)) = (value, c.format) {
                    if let Some(why) = f.check_int(*i) {
                        return Err(why);
                    }
                }
                Ok(())
            }
            ConfigValue::String(text) => {
                if let Some(what) = crate::kube_rules::credential_kind(text) {
                    // The value is not quoted: it is the credential.
                    let fix = match self.secret_ref || c.format == Some(Format::SecretName) {
                        true => "put it in a Secret (kubectl create secret generic NAME --from-literal=...) and give the Secret's name",
                        false => "keep credentials in Secrets or `type: secret` options",
                    };
                    return Err(format!("the value looks like {what}, which a plain option must not hold (it would show in plans, logs and archives); {fix}"));
                }
                self.check_text(text, &|why| why)
            }
            ConfigValue::Secret(text) => self.check_text(text, &|_| {
                "the value (not shown) does not have the option's format".to_string()
            }),
            ConfigValue::Boolean(_) => Ok(()),
        }
    }

    /// The text checks: `required`, then, on non-empty text, `format` and `pattern`.
    /// `shown` turns a message into what may be printed.
    fn check_text(&self, text: &str, shown: &dyn Fn(String) -> String) -> Result<(), String> {
        let c = &self.constraints;
        if text.is_empty() {
            return match c.required {
                true => Err("the value must not be empty".to_string()),
                false => Ok(()),
            };
        }
        // A `secret-ref` value is a Secret's name, whatever `format` says.
        let format = c.format.or(self.secret_ref.then_some(Format::SecretName));
        if let Some(why) = format.and_then(|f| f.check_text(text)) {
            return Err(shown(why));
        }
        match &c.pattern {
            Some(p) if !p.regex.is_match(text) => {
                Err(shown(format!("{text:?} does not match the pattern {:?}", p.text)))
            }
            _ => Ok(()),
        }
    }

    fn check_allowed(&self, value: &ConfigValue) -> Result<(), String> {
        match &self.allowed {
            Some(allowed) if !allowed.contains(value) => Err(format!(
                "{} is not allowed; allowed values: {}",
                value,
                allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
            _ => Ok(()),
        }
    }
}

/// Type-checks one YAML value against a type, with Juju's rules: no implicit conversion
/// between text, numbers and booleans, except that an int is a valid float.
fn check_yaml_value(
    kind: OptionType,
    value: &serde_yaml::Value,
) -> Result<Option<ConfigValue>, String> {
    use serde_yaml::Value;
    let wrong = |what: &str| {
        let got = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "an int",
            Value::Number(_) => "a float",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a map",
            Value::Tagged(_) => "a tagged value",
        };
        Err(format!("expected {what}, got {got}"))
    };
    Ok(Some(match (kind, value) {
        (_, Value::Null) => return Ok(None),
        (OptionType::String, Value::String(s)) => ConfigValue::String(s.clone()),
        (OptionType::Secret, Value::String(s)) => ConfigValue::Secret(s.clone()),
        (OptionType::Int, Value::Number(n)) => match n.as_i64() {
            Some(i) => ConfigValue::Int(i),
            None => return wrong("an int"),
        },
        (OptionType::Float, Value::Number(n)) => match n.as_f64() {
            Some(x) => ConfigValue::Float(x),
            None => return wrong("a float"),
        },
        (OptionType::Boolean, Value::Bool(b)) => ConfigValue::Boolean(*b),
        (OptionType::String, _) => return wrong("a string (quote it)"),
        (OptionType::Secret, _) => return wrong("a string (quote it)"),
        (OptionType::Int, _) => return wrong("an int"),
        (OptionType::Float, _) => return wrong("a float"),
        (OptionType::Boolean, _) => return wrong("a boolean (true or false)"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: OptionType) -> OptionSpec {
        OptionSpec {
            kind,
            default: None,
            description: String::new(),
            allowed: None,
            secret_ref: false,
            constraints: Constraints::default(),
        }
    }

    fn schema(options: &str) -> ConfigSchema {
        ConfigSchema::parse("config.yaml", &format!("options:\n{options}")).unwrap()
    }

    #[test]
    fn minimum_maximum_and_formats_refuse_what_the_cluster_would() {
        let s = schema(
            "  replicas: {type: int, minimum: 0}\n  port: {type: int, default: 8080, format: port}\n  \
             np: {type: int, default: 0, format: node-port}\n  \
             mem: {type: string, default: 512Mi, format: memory-quantity}\n  \
             cpu: {type: string, default: '', format: cpu-quantity}\n  \
             host: {type: string, default: '', format: hostname}\n  \
             name: {type: string, default: model, required: true}\n  \
             sec: {type: string, default: '', format: secret-name, secret-ref: true}\n  \
             wait: {type: string, default: 30s, format: duration}\n  \
             ratio: {type: float, default: 0.5, minimum: 0, maximum: 1}\n  \
             id: {type: string, default: '', pattern: '[a-z]+'}\n",
        );
        let o = |n: &str| &s.options[n];
        assert_eq!(o("replicas").parse_str("-1").unwrap_err(), "-1 is below the minimum 0");
        assert_eq!(o("port").parse_str("70000").unwrap_err(), "70000 is not a port (1-65535)");
        assert!(o("np").parse_str("8080").unwrap_err().contains("node port range 30000-32767"));
        assert!(o("np").parse_str("0").is_ok());
        assert!(o("mem").parse_str("512MB").unwrap_err().contains("not a Kubernetes quantity"));
        assert!(o("mem").parse_str("512m").unwrap_err().contains("whole bytes"));
        assert!(o("cpu").parse_str("250m").is_ok());
        assert!(o("cpu").parse_str("").is_ok(), "empty means unset");
        assert!(o("cpu").parse_str("0.0001").is_err());
        assert!(o("host").parse_str("https://web.appstore.ai/").unwrap_err().contains("bare host"));
        assert_eq!(o("name").parse_str("").unwrap_err(), "the value must not be empty");
        assert!(o("sec").parse_str("Bad_Name").unwrap_err().contains("DNS-1123 subdomain"));
        assert!(o("wait").parse_str("30").is_err());
        assert_eq!(o("ratio").parse_str("1.5").unwrap_err(), "1.5 is above the maximum 1.0");
        assert!(o("id").parse_str("abc").is_ok());
        assert!(o("id").parse_str("abc1").unwrap_err().contains("does not match the pattern"));
        assert_eq!(o("port").constraints.describe(), ["format port"],);
    }

    #[test]
    fn credentials_are_refused_in_plain_options_without_showing_them() {
        let s = schema("  uri: {type: string, default: '', format: secret-name}\n  pw: {type: secret, default: ''}\n");
        let err =
            s.options["uri"].parse_str("postgresql://mlflow:pw@10.20.0.3:5432/mlflow").unwrap_err();
        assert!(err.contains("looks like a URL with a password"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert!(s.options["uri"].parse_str(key).unwrap_err().contains("PEM private key"));
        // A secret option is where credentials belong.
        assert!(s.options["pw"].parse_str("postgresql://u:pw@h/db").is_ok());
    }

    #[test]
    fn pem_certificate_options_take_certificates_only() {
        let s = schema("  ca: {type: string, default: '', format: pem-certificate}\n");
        let ca = &s.options["ca"];
        assert!(ca.parse_str(crate::kube_rules::tests::TEST_CA).is_ok());
        assert!(ca.parse_str("ca.pem").unwrap_err().contains("@ca.pem"));
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n";
        assert!(ca.parse_str(key).unwrap_err().contains("PEM private key"));
    }

    #[test]
    fn bad_constraints_and_defaults_outside_them_are_errors_in_the_charm() {
        let text = "options:\n  a: {type: string, minimum: 1}\n  b: {type: int, format: hostname}\n  \
                    c: {type: string, format: hostnme}\n  d: {type: int, default: -1, minimum: 0}\n  \
                    e: {type: int, at-least: zzz}\n  g: {type: int, only-when: {kind: x}}\n  \
                    h: {type: string, pattern: '('}\n";
        let lines: Vec<String> = ConfigSchema::parse("config.yaml", text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "config.yaml: options.a.minimum: only int and float options have a minimum",
                "config.yaml: options.b.format: format hostname applies to string options, not int",
                "config.yaml: options.c.format: unknown format \"hostnme\" (hint: did you mean \"hostname\"? (formats: quantity, cpu-quantity, memory-quantity, storage-quantity, port, node-port, dns-label, dns-subdomain, hostname, hostnames, secret-name, configmap-name, url, pem-certificate, duration))",
                "config.yaml: options.d.default: -1 is below the minimum 0",
                "config.yaml: options.h.pattern: invalid regular expression: unclosed group",
                "config.yaml: options.e.at-least: no option \"zzz\"",
                "config.yaml: options.g.only-when.kind: no option \"kind\"",
            ],
        );
    }

    #[test]
    fn cross_checks_bound_one_option_by_another_and_find_ignored_ones() {
        let s = schema(
            "  min_scale: {type: int, default: 0, only-when: {backend: knative}}\n  \
             max_scale: {type: int, default: 3, at-least: min_scale, only-when: {backend: knative}}\n  \
             backend: {type: string, default: deployment, enum: [deployment, knative]}\n",
        );
        let values: BTreeMap<&str, ConfigValue> = [
            ("min_scale", ConfigValue::Int(5)),
            ("max_scale", ConfigValue::Int(1)),
            ("backend", ConfigValue::String("deployment".into())),
        ]
        .into();
        let found = s.cross_check(|n| values.get(n).map(|v| (v, "--config".to_string())));
        let lines: Vec<(bool, &str)> =
            found.iter().map(|c| (c.ignored, c.message.as_str())).collect();
        assert_eq!(
            lines,
            [
                (false, "max_scale=1 is below min_scale=5 (set by --config); max_scale must be at least min_scale"),
                (true, "ignored: max_scale takes effect only when backend is \"knative\" (it is \"deployment\", set by --config)"),
                (true, "ignored: min_scale takes effect only when backend is \"knative\" (it is \"deployment\", set by --config)"),
            ]
        );
    }

    #[test]
    fn command_line_values_parse_by_type_as_juju_does() {
        let b = spec(OptionType::Boolean);
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(b.parse_str(t), Ok(ConfigValue::Boolean(true)), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(b.parse_str(f), Ok(ConfigValue::Boolean(false)), "{f}");
        }
        assert!(b.parse_str("yes").is_err());
        assert_eq!(spec(OptionType::Int).parse_str("-42"), Ok(ConfigValue::Int(-42)));
        assert!(spec(OptionType::Int).parse_str("0x10").is_err());
        assert!(spec(OptionType::Int).parse_str("1.5").is_err());
        assert_eq!(spec(OptionType::Float).parse_str("2.5"), Ok(ConfigValue::Float(2.5)));
        assert!(spec(OptionType::Float).parse_str("NaN").is_err());
        assert_eq!(spec(OptionType::String).parse_str("42"), Ok(ConfigValue::String("42".into())));
    }

    #[test]
    fn defaults_are_type_checked_and_every_bad_option_is_reported() {
        let text = "options:\n  a: {type: int, default: 'x'}\n  b: {type: boolean, default: 3}\n  c: {type: colour}\n  d: {default: 5}\n  ok: {type: float, default: 1}\n";
        let problems = ConfigSchema::parse("config.yaml", text).unwrap_err();
        let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with("config.yaml: options.a.default: expected an int, got a string")
        );
        assert!(lines[1].starts_with("config.yaml: options.b.default: expected a boolean"));
        assert!(lines[2].contains("options.c.type: unknown type \"colour\""));
        assert!(lines[3].contains("options.d.default: expected a string (quote it), got an int"));
    }

    #[test]
    fn enum_restricts_values_and_lists_the_allowed_ones() {
        let text = "options:\n  svc:\n    type: string\n    default: LoadBalancer\n    enum: [LoadBalancer, NodePort, ClusterIP]\n";
        let schema = ConfigSchema::parse("config.yaml", text).unwrap();
        let svc = &schema.options["svc"];
        assert_eq!(svc.parse_str("NodePort"), Ok(ConfigValue::String("NodePort".into())));
        let err = svc.parse_str("Ingress").unwrap_err();
        assert_eq!(err, "\"Ingress\" is not allowed; allowed values: \"LoadBalancer\", \"NodePort\", \"ClusterIP\"");
        let bad_default = "options:\n  svc: {default: Foo, enum: [A, B]}\n";
        assert!(ConfigSchema::parse("config.yaml", bad_default)
            .unwrap_err()
            .to_string()
            .contains("options.svc.default: \"Foo\" is not allowed"));
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_line() {
        let text = "options:\n  a: {type: int}\n  a: {type: string}\n";
        let problems = ConfigSchema::parse("config.yaml", text).unwrap_err().to_string();
        assert!(
            problems.starts_with(
                "config.yaml: line 2: invalid YAML: options: duplicate entry with key \"a\""
            ),
            "{problems}"
        );
    }

    #[test]
    fn secrets_never_show_their_content() {
        let v = ConfigValue::Secret("hunter2".into());
        assert_eq!(format!("{v} {v:?}"), "<secret> <secret>");
        assert_eq!(v.to_display_yaml(), serde_yaml::Value::String("<secret>".into()));
    }
}
