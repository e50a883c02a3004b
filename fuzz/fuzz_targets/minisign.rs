//! minisign-format public keys, secret keys and signatures.
#![no_main]
use charmer::publish::{PublicKey, SecretKey};
use libfuzzer_sys::fuzz_target;

const PUBLIC: &str = "untrusted comment: minisign public key\nRWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";

fuzz_target!(|text: &str| {
    let _ = PublicKey::parse("k.pub", text);
    let _ = SecretKey::parse("k.key", text);
    let key = PublicKey::parse("k.pub", PUBLIC).expect("the fixed key parses");
    let _ = key.verify("f", "f", b"signed bytes", text);
    let _ = charmer::publish::sign::signer_id(text);
});
