//! Generated credentials: keys a rendered Secret names in `charmer.io/generate` are filled
//! with random values the first time only. They are applied under their own field manager,
//! so the bundle's applies (which never contain them) neither remove nor rotate them.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::contract::generated_keys;
use crate::deploy::cluster::client::Cluster;
use crate::deploy::error::DeployError;
use crate::deploy::model::targets::Target;

/// The field manager owning generated keys.
pub const GENERATE_MANAGER: &str = "charmer-generate";

/// Length of a generated value.
const LENGTH: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Fills the keys `target` asks for that `live` (the Secret as just applied) lacks; returns
/// the keys generated now (none on every deploy after the first).
pub(crate) async fn ensure(
    cluster: &Cluster,
    target: &Target,
    live: &Value,
) -> Result<Vec<String>, DeployError> {
    let wanted = generated_keys(&target.object);
    let existing = live["data"].as_object();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|k| existing.is_none_or(|d| !d.contains_key(k.as_str())))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    // The manager's applied set must hold every generated key, old ones with their current
    // values, or the server would drop the ones left out.
    let mut data = Map::new();
    for key in &wanted {
        let value = match existing.and_then(|d| d.get(key)) {
            Some(current) => current.clone(),
            None => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(random_value()?))
            }
        };
        data.insert(key.clone(), value);
    }
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": target.id.name, "namespace": target.id.namespace},
        "data": data,
    });
    cluster.apply_object(&target.kind, &target.id, &patch, GENERATE_MANAGER, false).await?;
    Ok(missing)
}

/// A random alphanumeric value from the operating system's generator.
fn random_value() -> Result<String, DeployError> {
    let mut value = String::with_capacity(LENGTH);
    let mut bytes = [0u8; 64];
    while value.len() < LENGTH {
        getrandom::fill(&mut bytes).map_err(DeployError::Random)?;
        // Rejection sampling keeps every character equally likely: 248 = 4 * 62.
        value.extend(
            bytes
                .iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
                .take(LENGTH - value.len()),
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_alphanumeric_and_differ() {
        let a = random_value().unwrap();
        let b = random_value().unwrap();
        assert_eq!(a.len(), LENGTH);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
