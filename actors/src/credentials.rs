//! Channel credentials (APNs keys and certificates, ...) are sealed before
//! they enter the Raft log and RocksDB, which store them in the clear
//! otherwise: AES-256-GCM under a key derived per app from the cluster's
//! secret (`[tracking] secret`, the same on every node), with the app id
//! and purpose as associated data, so a sealed blob neither opens under
//! another app nor reveals anything without the secret.
//!
//! The nonce is synthetic (an HMAC of the plaintext under another derived
//! key), so sealing needs no randomness and replicas stay deterministic:
//! equal plaintexts give equal blobs, different ones different nonces.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use herald_model::tracking::derived_key;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

const PURPOSE: &str = "channel-credentials";

fn key_bytes(secret: &[u8], purpose: &str, app_id: &str) -> Vec<u8> {
    hex::decode(derived_key(secret, purpose, app_id)).expect("derived keys are hex")
}

fn aead_key(secret: &[u8], app_id: &str) -> LessSafeKey {
    let k = key_bytes(secret, PURPOSE, app_id);
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).expect("a 32-byte key"))
}

/// Seals `plaintext` for `app_id`: base64(nonce ‖ ciphertext ‖ tag).
pub fn seal(secret: &[u8], app_id: &str, plaintext: &[u8]) -> String {
    let nonce_key = key_bytes(secret, "channel-credentials-nonce", app_id);
    let mac = derived_key(&nonce_key, PURPOSE, &hex::encode(plaintext));
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&hex::decode(mac).expect("hex")[..NONCE_LEN]);
    let mut buf = plaintext.to_vec();
    aead_key(secret, app_id)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(format!("{PURPOSE}\0{app_id}").as_bytes()),
            &mut buf,
        )
        .expect("AES-GCM seals any length herald stores");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    STANDARD.encode(out)
}

/// Opens what [`seal`] sealed for the same app under the same secret.
pub fn open(secret: &[u8], app_id: &str, sealed: &str) -> Result<Vec<u8>, String> {
    let raw = STANDARD
        .decode(sealed)
        .map_err(|e| format!("sealed credentials are not base64: {e}"))?;
    if raw.len() < NONCE_LEN {
        return Err("sealed credentials are too short".into());
    }
    let (nonce, body) = raw.split_at(NONCE_LEN);
    let mut buf = body.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_owned())?;
    let plain = aead_key(secret, app_id)
        .open_in_place(
            nonce,
            Aad::from(format!("{PURPOSE}\0{app_id}").as_bytes()),
            &mut buf,
        )
        .map_err(|_| {
            "the channel's credentials do not open with this node's secret ([tracking] secret differs between nodes, or changed)".to_owned()
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_for_their_app_and_secret() {
        let s = seal(b"secret", "app1", b"-----BEGIN PRIVATE KEY-----");
        assert!(!s.contains("PRIVATE"));
        assert_eq!(
            open(b"secret", "app1", &s).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(open(b"secret", "app2", &s).is_err());
        assert!(open(b"other", "app1", &s).is_err());
        // Deterministic for equal input, different for different input.
        assert_eq!(s, seal(b"secret", "app1", b"-----BEGIN PRIVATE KEY-----"));
        let t = seal(b"secret", "app1", b"another key");
        assert_ne!(s[..16], t[..16], "nonces differ");
    }
}
