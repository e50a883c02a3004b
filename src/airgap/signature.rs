//! Signed archives: one detached signature authenticates every byte.
//!
//! The signed file is the archive's `SHA256SUMS`. It lists every other member with its
//! SHA-256: `airgap.json`, the bundle, overlays, lock and charms, `images/index.json` (each
//! image's reference and manifest digest) and every manifest and blob, so checking the
//! signature and then every checksum leaves no byte unauthenticated. The signature is the
//! member `SHA256SUMS.sig`, in minisign's format with the trusted comment `file:SHA256SUMS`
//! ([`crate::publish::sign`], the keys of `charmer keygen`): `minisign -V -p key.pub -m
//! SHA256SUMS -x SHA256SUMS.sig` checks it without charmer.

use crate::diag::Problem;
use crate::publish::sign::signer_id;
use crate::publish::{PublicKey, SecretKey};

use super::CHECKSUMS;

/// The member holding the signature of `SHA256SUMS`.
pub const SIGNATURE: &str = "SHA256SUMS.sig";

/// What is known of who made an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticity {
    /// `SHA256SUMS` is signed by the key with this id, and the signature checked.
    Verified(String),
    /// `SHA256SUMS` is signed (by the key with this id, if the signature is readable), but no
    /// key was given to check it with.
    Unchecked(Option<String>),
    /// The archive holds no signature.
    Unsigned,
}

impl Authenticity {
    /// A one-line warning for an archive whose content was not authenticated (`label` names
    /// it), or `None` when it was.
    pub fn warning(&self, label: &str) -> Option<String> {
        match self {
            Authenticity::Verified(_) => None,
            Authenticity::Unchecked(id) => Some(format!(
                "{label}: signed by key {}, but not verified: its content was not authenticated \
                 (pass --verify-key with the exporter's public key)",
                id.as_deref().unwrap_or("(unreadable)")
            )),
            Authenticity::Unsigned => Some(format!(
                "{label}: not signed: its content was not authenticated \
                 (export with --sign-key and import with --verify-key)"
            )),
        }
    }
}

/// The signature member's content for `sums` (the `SHA256SUMS` bytes).
pub fn sign(key: &SecretKey, sums: &[u8]) -> Vec<u8> {
    key.sign(CHECKSUMS, sums).into_bytes()
}

/// Checks the signature of `sums` (the `SHA256SUMS` bytes) in the archive `label`.
/// `signature` is the [`SIGNATURE`] member's content, `None` when the archive has none. With
/// `key`, an unsigned archive, another key's signature or a signature that does not match
/// is refused; without it, the result only says whether there was a signature.
pub fn authenticate(
    label: &str,
    sums: &[u8],
    signature: Option<&[u8]>,
    key: Option<&PublicKey>,
) -> Result<Authenticity, Problem> {
    let signature = signature.map(String::from_utf8_lossy);
    match (key, signature) {
        (None, None) => Ok(Authenticity::Unsigned),
        (None, Some(signature)) => Ok(Authenticity::Unchecked(signer_id(&signature))),
        (Some(key), None) => Err(Problem::new(
            label,
            CHECKSUMS,
            format!(
                "not signed (the archive has no {SIGNATURE}); --verify-key accepts only archives \
                 signed with key {}",
                key.id()
            ),
        )
        .hint("ask for an archive exported with --sign-key; nothing was pushed or written")),
        (Some(key), Some(signature)) => key
            .verify(&format!("{label}: {CHECKSUMS}"), CHECKSUMS, sums, &signature)
            .map(|()| Authenticity::Verified(key.id())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_sums_verify_only_with_their_key_and_content() {
        let secret = SecretKey::generate().unwrap();
        let public = secret.public();
        let sums = b"0000  bundle/bundle.yaml\n";
        let sig = sign(&secret, sums);
        assert_eq!(
            authenticate("a.tar", sums, Some(&sig), Some(&public)),
            Ok(Authenticity::Verified(public.id()))
        );
        assert_eq!(
            authenticate("a.tar", sums, Some(&sig), None),
            Ok(Authenticity::Unchecked(Some(public.id())))
        );
        assert_eq!(authenticate("a.tar", sums, None, None), Ok(Authenticity::Unsigned));

        let unsigned = authenticate("a.tar", sums, None, Some(&public)).unwrap_err().to_string();
        assert!(unsigned.starts_with("a.tar: SHA256SUMS: not signed"), "{unsigned}");
        let changed =
            authenticate("a.tar", b"1111  bundle/bundle.yaml\n", Some(&sig), Some(&public))
                .unwrap_err()
                .to_string();
        assert!(
            changed.starts_with("a.tar: SHA256SUMS: signature: does not match the content"),
            "{changed}"
        );
        let other = SecretKey::generate().unwrap().public();
        let wrong = authenticate("a.tar", sums, Some(&sig), Some(&other)).unwrap_err().to_string();
        assert!(wrong.contains(&format!("signed by key {}", public.id())), "{wrong}");
        assert!(Authenticity::Unsigned.warning("a.tar").unwrap().contains("not authenticated"));
        assert_eq!(Authenticity::Verified(public.id()).warning("a.tar"), None);
    }
}
