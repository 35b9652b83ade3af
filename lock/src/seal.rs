//! Sealed boxes: encrypting to an X25519 public key so that only its owner can open the box.
//!
//! A box is `ephemeral public key (32 bytes) || ChaCha20-Poly1305 ciphertext and tag`. The
//! AEAD key is HKDF-SHA256 over the X25519 shared secret of a fresh ephemeral key and the
//! recipient's key, with both public keys in `info`, so each key encrypts exactly one message
//! and the all-zero nonce is safe. A caller-supplied context is authenticated as associated
//! data: a box made for one purpose (say, holder 2 of lock L) does not open for another.
//!
//! This composes three audited RustCrypto/dalek primitives in the ECIES pattern (the shape of
//! HPKE's base mode) rather than pulling in a full HPKE implementation for one use.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand_core_010::CryptoRng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Domain of the key derivation.
const SEAL_DOMAIN: &[u8] = b"dcnet sealed box v1";
/// Bytes a box adds to its plaintext: the ephemeral key and the tag.
pub const SEAL_OVERHEAD: usize = 32 + 16;

/// Why a box does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Shorter than an empty box.
    #[error("sealed box is truncated ({0} bytes)")]
    Truncated(usize),
    /// The ephemeral key is a low-order point, so the shared secret carries no secret.
    #[error("sealed box uses a degenerate ephemeral key")]
    DegenerateKey,
    /// Wrong recipient, wrong context, or a changed byte.
    #[error("sealed box does not open: wrong key or context, or it was altered")]
    Rejected,
}

fn box_key(shared: &[u8; 32], ephemeral: &PublicKey, recipient: &PublicKey) -> Zeroizing<[u8; 32]> {
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(ephemeral.as_bytes());
    info[32..].copy_from_slice(recipient.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    // A 32-byte output is far below HKDF-SHA256's limit of 8160 bytes, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(SEAL_DOMAIN), shared).expand(&info, key.as_mut());
    key
}

/// Seals `plaintext` to `recipient`, binding `context`.
pub fn seal(
    recipient: &PublicKey,
    plaintext: &[u8],
    context: &[u8],
    rng: &mut impl CryptoRng,
) -> Vec<u8> {
    // Used for this one box and wiped when dropped at the end of the function.
    let ephemeral = crate::identity::random_exchange_secret(rng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient);
    let key = box_key(shared.as_bytes(), &ephemeral_public, recipient);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let payload = Payload {
        msg: plaintext,
        aad: context,
    };
    // Encryption with ChaCha20-Poly1305 fails only for messages beyond 256 GiB.
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&[0u8; 12]), payload)
        .unwrap_or_default();
    let mut sealed = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    sealed.extend_from_slice(ephemeral_public.as_bytes());
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Opens a box sealed to the public key of `recipient` under `context`.
pub fn open(
    recipient: &StaticSecret,
    sealed: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::Truncated(sealed.len()));
    }
    let (ephemeral, ciphertext) = sealed.split_at(32);
    let mut ephemeral_bytes = [0u8; 32];
    ephemeral_bytes.copy_from_slice(ephemeral);
    let ephemeral = PublicKey::from(ephemeral_bytes);
    let shared = recipient.diffie_hellman(&ephemeral);
    if !shared.was_contributory() {
        return Err(SealError::DegenerateKey);
    }
    let key = box_key(shared.as_bytes(), &ephemeral, &PublicKey::from(recipient));
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let payload = Payload {
        msg: ciphertext,
        aad: context,
    };
    cipher
        .decrypt(Nonce::from_slice(&[0u8; 12]), payload)
        .map(Zeroizing::new)
        .map_err(|_| SealError::Rejected)
}

/// Encrypts `plaintext` under a one-time symmetric key (the program lock key K).
///
/// Every K encrypts exactly one tariff and is then discarded, so a fixed nonce is safe.
pub(crate) fn encrypt_once(key: &[u8; 32], plaintext: &[u8], context: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .unwrap_or_default()
}

/// Decrypts what [`encrypt_once`] made.
pub(crate) fn decrypt_once(
    key: &[u8; 32],
    ciphertext: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::os_rng;

    fn keypair() -> (StaticSecret, PublicKey) {
        let secret = crate::identity::random_exchange_secret(&mut os_rng());
        let public = PublicKey::from(&secret);
        (secret, public)
    }

    #[test]
    fn only_the_recipient_with_the_right_context_opens() {
        let (alice, alice_public) = keypair();
        let (bob, _) = keypair();
        let sealed = seal(
            &alice_public,
            b"share bytes",
            b"lock 1 holder 2",
            &mut os_rng(),
        );
        assert_eq!(sealed.len(), SEAL_OVERHEAD + 11);
        assert_eq!(
            open(&alice, &sealed, b"lock 1 holder 2")
                .unwrap()
                .as_slice(),
            b"share bytes"
        );
        assert_eq!(
            open(&bob, &sealed, b"lock 1 holder 2"),
            Err(SealError::Rejected)
        );
        assert_eq!(
            open(&alice, &sealed, b"lock 1 holder 3"),
            Err(SealError::Rejected)
        );
        assert_eq!(
            open(&alice, &sealed[..40], b""),
            Err(SealError::Truncated(40))
        );
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let (alice, alice_public) = keypair();
        let sealed = seal(&alice_public, b"k", b"", &mut os_rng());
        for byte in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[byte] ^= 0x01;
            assert!(open(&alice, &altered, b"").is_err(), "byte {byte}");
        }
    }

    #[test]
    fn a_low_order_ephemeral_key_is_refused() {
        let (alice, _) = keypair();
        let sealed = vec![0u8; SEAL_OVERHEAD + 1];
        assert_eq!(open(&alice, &sealed, b""), Err(SealError::DegenerateKey));
    }

    #[test]
    fn one_time_encryption_round_trips_and_binds_context() {
        let key = [7u8; 32];
        let ciphertext = encrypt_once(&key, b"tariff", b"header");
        assert_eq!(
            decrypt_once(&key, &ciphertext, b"header")
                .unwrap()
                .as_slice(),
            b"tariff"
        );
        assert!(decrypt_once(&key, &ciphertext, b"other").is_err());
        assert!(decrypt_once(&[8u8; 32], &ciphertext, b"header").is_err());
    }
}
