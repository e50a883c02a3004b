//! `config.yaml`: the typed options a charm accepts, and the rules that turn YAML values and
//! command-line strings into typed [`ConfigValue`]s.
//!
//! Juju's types are `string`, `int`, `float`, `boolean` and `secret` (a missing type means
//! `string`). charmer adds one key Juju ignores: `enum:`, the list of allowed values.

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
        for (name, raw) in raw.options.unwrap_or_default() {
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
            let allowed = match raw.allowed {
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
            let spec = OptionSpec {
                kind,
                default,
                description: raw.description.unwrap_or_default(),
                allowed,
                secret_ref: raw.secret_ref,
            };
            if let Some(default) = &spec.default {
                // Juju lets a string default be '' meaning "unset"; an enum must still allow it.
                let empty_text = matches!(default, ConfigValue::String(s) | ConfigValue::Secret(s) if s.is_empty());
                if !empty_text {
                    if let Err(msg) = spec.check_allowed(default) {
                        problems.push(Problem::new(file, format!("{key}.default"), msg));
                    }
                }
            }
            options.insert(name, spec);
        }
        problems.into_result(ConfigSchema { options, unknown_keys })
    }
}

impl OptionSpec {
    /// Type-checks a YAML value (from a bundle, overlay or values file) against this option,
    /// including the allowed values. `Ok(None)` for null: the option falls back to its default.
    pub fn check_yaml(&self, value: &serde_yaml::Value) -> Result<Option<ConfigValue>, String> {
        let typed = check_yaml_value(self.kind, value)?;
        if let Some(v) = &typed {
            self.check_allowed(v)?;
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
        Ok(value)
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
        }
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
