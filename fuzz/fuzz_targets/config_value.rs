//! `--config APP.KEY=VALUE` and `--config-file APP=FILE` arguments, and a value parsed by
//! every option type as Juju parses command-line values.
#![no_main]
use charmer::bundle::{ConfigFileOverride, ConfigOverride};
use charmer::charm::ConfigSchema;
use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = "options:\n  s: {type: string}\n  i: {type: int}\n  f: {type: float}\n  b: {type: boolean}\n  x: {type: secret}\n  e: {type: string, enum: [a, b]}\n";

fuzz_target!(|text: &str| {
    let _ = text.parse::<ConfigOverride>();
    let _ = text.parse::<ConfigFileOverride>();
    let schema = ConfigSchema::parse("config.yaml", SCHEMA).expect("the schema parses");
    for spec in schema.options.values() {
        let _ = spec.parse_str(text);
    }
});
