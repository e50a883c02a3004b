//! Ed25519 keys and detached signatures in minisign's file formats, so release assets can be
//! checked with charmer or with the stock `minisign -V` tool, and minisign keys made with
//! `minisign -G -W` sign with charmer.
//!
//! Formats (all base64 lines under an `untrusted comment:` line):
//! - public key: `"Ed" || key id (8) || public key (32)`;
//! - secret key (unencrypted): `"Ed" || "\0\0" (no KDF) || "B2" || salt (32) || opslimit (8) ||
//!   memlimit (8) || key id (8) || secret key (64) || BLAKE2b-256 checksum (32)`;
//! - signature: `"ED" || key id || Ed25519(BLAKE2b-512(file))`, then a `trusted comment:` line
//!   and the Ed25519 signature of `signature || trusted comment`. charmer's trusted comment is
//!   `file:<name>` with no timestamp, so signing is deterministic and a signature cannot be
//!   moved to another file.
//!
//! minisign's own crate would bring scrypt and a second Ed25519 implementation for the
//! password-protected keys charmer does not use; the format is small enough to write here.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2b512, Digest};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::diag::Problem;

const UNTRUSTED: &str = "untrusted comment: ";
const TRUSTED: &str = "trusted comment: ";
/// Pure Ed25519 (minisign's legacy signatures and every key).
const ALG_PURE: &[u8; 2] = b"Ed";
/// Ed25519 over the BLAKE2b-512 of the file (minisign's default signatures).
const ALG_HASHED: &[u8; 2] = b"ED";
const KDF_NONE: &[u8; 2] = b"\0\0";
const CHK_BLAKE2: &[u8; 2] = b"B2";
const PUBLIC_LEN: usize = 2 + 8 + 32;
const SECRET_LEN: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;
const SIG_LEN: usize = 2 + 8 + 64;

/// An Ed25519 public key with its minisign key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    id: [u8; 8],
    key: VerifyingKey,
}

/// An Ed25519 secret key with its minisign key id. `Debug` shows only the id; the key
/// bytes are wiped from memory on drop.
#[derive(Clone)]
pub struct SecretKey {
    id: [u8; 8],
    key: SigningKey,
}

/// Shows the key id the way minisign prints it (16 uppercase hex digits; minisign stores the
/// id little-endian).
fn key_id_text(id: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*id))
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", key_id_text(&self.id))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", key_id_text(&self.id))
    }
}

/// The base64 payload of a key or signature file: the first line that is not a comment.
fn payload(file: &str, text: &str, what: &str) -> Result<Vec<u8>, Problem> {
    let mut lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
    let bad = |m: &str| Problem::new(file, "", format!("not a minisign {what}: {m}"));
    let first = lines.next().ok_or_else(|| bad("empty file"))?;
    let data_line = if first.starts_with(UNTRUSTED) {
        lines.next().ok_or_else(|| bad("no data line after the comment"))?
    } else {
        first
    };
    B64.decode(data_line).map_err(|e| bad(&format!("bad base64: {e}")))
}

impl PublicKey {
    /// Parses a minisign public key file (or its bare base64 line).
    pub fn parse(file: &str, text: &str) -> Result<PublicKey, Problem> {
        let bytes = payload(file, text, "public key")?;
        if bytes.len() != PUBLIC_LEN || &bytes[..2] != ALG_PURE {
            return Err(Problem::new(file, "", "not a minisign Ed25519 public key")
                .hint("make one with charmer keygen (or minisign -G)"));
        }
        let id = bytes[2..10].try_into().unwrap_or_default();
        let raw: [u8; 32] = bytes[10..].try_into().unwrap_or_default();
        let key = VerifyingKey::from_bytes(&raw)
            .map_err(|_| Problem::new(file, "", "not a valid Ed25519 public key"))?;
        Ok(PublicKey { id, key })
    }

    /// The key id, as minisign prints it.
    pub fn id(&self) -> String {
        key_id_text(&self.id)
    }

    /// The public key file's text.
    pub fn to_file_text(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_LEN);
        bytes.extend_from_slice(ALG_PURE);
        bytes.extend_from_slice(&self.id);
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{UNTRUSTED}minisign public key {}\n{}\n", self.id(), B64.encode(bytes))
    }

    /// Checks the detached signature `signature` (a signature file's text) of `bytes`, which
    /// were published as `file_name`. `label` names the signed file in problems.
    pub fn verify(
        &self,
        label: &str,
        file_name: &str,
        bytes: &[u8],
        signature: &str,
    ) -> Result<(), Problem> {
        let sig_label = format!("{label}.sig");
        let raw = payload(&sig_label, signature, "signature")?;
        if raw.len() != SIG_LEN {
            return Err(Problem::new(&sig_label, "", "not a minisign signature (wrong length)"));
        }
        let (alg, id, sig) = (&raw[..2], &raw[2..10], &raw[10..]);
        if id != self.id {
            let id: [u8; 8] = id.try_into().unwrap_or_default();
            return Err(Problem::new(
                label,
                "signature",
                format!("signed by key {}, not by the given key {}", key_id_text(&id), self.id()),
            )
            .hint("verify with the public key the publisher gave, or re-publish with --sign-key"));
        }
        let sig = Signature::from_slice(sig)
            .map_err(|_| Problem::new(&sig_label, "", "malformed signature"))?;
        let ok = match alg {
            a if a == ALG_HASHED => {
                self.key.verify_strict(&Blake2b512::digest(bytes), &sig).is_ok()
            }
            a if a == ALG_PURE => self.key.verify_strict(bytes, &sig).is_ok(),
            _ => return Err(Problem::new(&sig_label, "", "unknown signature algorithm")),
        };
        if !ok {
            return Err(Problem::new(
                label,
                "signature",
                "does not match the content: the file was changed after it was signed",
            )
            .hint("fetch the file again from the publisher; never use it as is"));
        }
        let (comment, global) = trusted_comment(&sig_label, signature)?;
        let mut signed = raw[10..].to_vec();
        signed.extend_from_slice(comment.as_bytes());
        if self.key.verify_strict(&signed, &global).is_err() {
            return Err(Problem::new(
                &sig_label,
                "trusted comment",
                "the trusted comment was changed after signing",
            ));
        }
        let named = comment.split('\t').find_map(|field| field.strip_prefix("file:"));
        if let Some(named) = named.filter(|n| *n != file_name) {
            return Err(Problem::new(
                label,
                "signature",
                format!("the signature is for {named:?}, not {file_name:?}"),
            )
            .hint("a signature may not be reused for another file"));
        }
        Ok(())
    }
}

/// The id of the key that made a signature (a signature file's text), without checking it:
/// for telling the user which key signed what they did not verify.
pub fn signer_id(signature: &str) -> Option<String> {
    let raw = payload("", signature, "signature").ok().filter(|raw| raw.len() == SIG_LEN)?;
    let id: [u8; 8] = raw[2..10].try_into().ok()?;
    Some(key_id_text(&id))
}

/// The trusted comment and its signature: the two lines after the signature line.
fn trusted_comment(file: &str, text: &str) -> Result<(String, Signature), Problem> {
    let bad = |m: &str| Problem::new(file, "trusted comment", m.to_string());
    let mut lines = text.lines().map(str::trim_end).skip_while(|l| !l.starts_with(TRUSTED));
    let comment =
        lines.next().and_then(|l| l.strip_prefix(TRUSTED)).ok_or_else(|| bad("missing"))?;
    let global = lines.next().ok_or_else(|| bad("its signature line is missing"))?;
    let global = B64.decode(global).map_err(|_| bad("its signature is not base64"))?;
    let global = Signature::from_slice(&global).map_err(|_| bad("its signature is malformed"))?;
    Ok((comment.to_string(), global))
}

/// BLAKE2b-256 of what minisign checksums in a secret key file.
fn secret_checksum(id: &[u8; 8], keypair: &[u8; 64]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(ALG_PURE);
    h.update(id);
    h.update(keypair);
    h.finalize().into()
}

impl SecretKey {
    /// Makes a new key pair from the operating system's random source.
    pub fn generate() -> Result<SecretKey, getrandom::Error> {
        let mut seed = [0u8; 32];
        let mut id = [0u8; 8];
        getrandom::fill(&mut seed)?;
        getrandom::fill(&mut id)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(SecretKey { id, key })
    }

    /// Parses an unencrypted minisign secret key file.
    pub fn parse(file: &str, text: &str) -> Result<SecretKey, Problem> {
        let mut bytes = payload(file, text, "secret key")?;
        let result = Self::from_secret_bytes(file, &bytes);
        bytes.fill(0);
        result
    }

    fn from_secret_bytes(file: &str, bytes: &[u8]) -> Result<SecretKey, Problem> {
        if bytes.len() != SECRET_LEN || &bytes[..2] != ALG_PURE || &bytes[4..6] != CHK_BLAKE2 {
            return Err(Problem::new(file, "", "not a minisign Ed25519 secret key")
                .hint("make one with charmer keygen"));
        }
        if &bytes[2..4] != KDF_NONE {
            return Err(Problem::new(file, "", "the secret key is password-protected")
                .hint("charmer signs unattended: use a key from charmer keygen, or remove the password with minisign -C -W"));
        }
        let id: [u8; 8] = bytes[54..62].try_into().unwrap_or_default();
        let keypair: [u8; 64] = bytes[62..126].try_into().unwrap_or([0; 64]);
        let checksum = &bytes[126..158];
        // minisign leaves the checksum zeroed in keys it writes without a password.
        if checksum.iter().any(|b| *b != 0) && checksum != secret_checksum(&id, &keypair) {
            return Err(Problem::new(
                file,
                "",
                "the secret key's checksum does not match: the file is damaged",
            ));
        }
        let key = SigningKey::from_keypair_bytes(&keypair).map_err(|_| {
            Problem::new(file, "", "the secret and public halves of the key do not match")
        })?;
        Ok(SecretKey { id, key })
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey { id: self.id, key: self.key.verifying_key() }
    }

    /// The secret key file's text (unencrypted: keep the file private).
    pub fn to_file_text(&self) -> String {
        let keypair = self.key.to_keypair_bytes();
        let mut bytes = Vec::with_capacity(SECRET_LEN);
        bytes.extend_from_slice(ALG_PURE);
        bytes.extend_from_slice(KDF_NONE);
        bytes.extend_from_slice(CHK_BLAKE2);
        bytes.extend_from_slice(&[0; 32 + 8 + 8]);
        bytes.extend_from_slice(&self.id);
        bytes.extend_from_slice(&keypair);
        bytes.extend_from_slice(&secret_checksum(&self.id, &keypair));
        let text = format!(
            "{UNTRUSTED}charmer secret key {} (unencrypted minisign format)\n{}\n",
            key_id_text(&self.id),
            B64.encode(&bytes)
        );
        bytes.fill(0);
        text
    }

    /// The detached signature file's text for `bytes` published as `file_name`.
    /// Deterministic: the same key, name and bytes give the same signature.
    pub fn sign(&self, file_name: &str, bytes: &[u8]) -> String {
        let sig = self.key.sign(&Blake2b512::digest(bytes)).to_bytes();
        let comment = format!("file:{file_name}");
        let mut signed = sig.to_vec();
        signed.extend_from_slice(comment.as_bytes());
        let global = self.key.sign(&signed).to_bytes();
        let mut line = Vec::with_capacity(SIG_LEN);
        line.extend_from_slice(ALG_HASHED);
        line.extend_from_slice(&self.id);
        line.extend_from_slice(&sig);
        format!(
            "{UNTRUSTED}signature from charmer secret key {}\n{}\n{TRUSTED}{comment}\n{}\n",
            key_id_text(&self.id),
            B64.encode(line),
            B64.encode(global)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::generate().unwrap()
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let secret = key();
        let again = SecretKey::parse("k.key", &secret.to_file_text()).unwrap();
        assert_eq!(again.public(), secret.public());
        let public = PublicKey::parse("k.pub", &secret.public().to_file_text()).unwrap();
        assert_eq!(public, secret.public());
        assert!(!format!("{secret:?}").contains(&B64.encode(secret.key.to_bytes())));
    }

    #[test]
    fn signatures_are_deterministic_and_bound_to_content_name_and_key() {
        let secret = key();
        let public = secret.public();
        let sig = secret.sign("a_1.0.0.charm", b"content");
        assert_eq!(sig, secret.sign("a_1.0.0.charm", b"content"));
        assert_eq!(signer_id(&sig), Some(public.id()));
        assert_eq!(signer_id("not a signature"), None);
        public.verify("dist/a_1.0.0.charm", "a_1.0.0.charm", b"content", &sig).unwrap();

        let tampered =
            public.verify("dist/a_1.0.0.charm", "a_1.0.0.charm", b"contenT", &sig).unwrap_err();
        assert!(
            tampered
                .to_string()
                .starts_with("dist/a_1.0.0.charm: signature: does not match the content"),
            "{tampered}"
        );

        let moved =
            public.verify("dist/b_1.0.0.charm", "b_1.0.0.charm", b"content", &sig).unwrap_err();
        assert!(moved.to_string().contains("the signature is for \"a_1.0.0.charm\""), "{moved}");

        let other = key().public();
        let wrong_key = other.verify("x", "a_1.0.0.charm", b"content", &sig).unwrap_err();
        assert!(
            wrong_key.to_string().contains(&format!(
                "signed by key {}, not by the given key {}",
                public.id(),
                other.id()
            )),
            "{wrong_key}"
        );

        let forged = sig.replace("file:a_1.0.0.charm", "file:b_1.0.0.charm");
        let forged = public.verify("x", "b_1.0.0.charm", b"content", &forged).unwrap_err();
        assert!(forged.to_string().contains("the trusted comment was changed"), "{forged}");
    }

    #[test]
    fn damaged_and_protected_secret_keys_are_refused() {
        let text = key().to_file_text();
        let (comment, data) = text.split_once('\n').unwrap();
        let mut bytes = B64.decode(data.trim()).unwrap();
        bytes[100] ^= 1;
        let damaged = format!("{comment}\n{}\n", B64.encode(&bytes));
        assert!(SecretKey::parse("k.key", &damaged).unwrap_err().to_string().contains("checksum"));
        bytes[100] ^= 1;
        bytes[2..4].copy_from_slice(b"Sc");
        let protected = format!("{comment}\n{}\n", B64.encode(&bytes));
        assert!(SecretKey::parse("k.key", &protected)
            .unwrap_err()
            .to_string()
            .contains("password-protected"));
        assert!(PublicKey::parse("k.pub", "nonsense").is_err());
    }
}
