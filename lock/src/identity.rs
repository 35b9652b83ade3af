//! Identities of the meter, the companies and the user: an Ed25519 signing key and an X25519
//! key-agreement key under one name.
//!
//! The secret half is a TOML file holding both secret keys; the public half holds both public
//! keys and an Ed25519 signature binding the X25519 key and the name to the signing key, so a
//! relay that swaps the X25519 key of a public file is caught when the file is read.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core_010::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey as ExchangePublic, StaticSecret};
use zeroize::Zeroizing;

use crate::encoding::{Transcript, hex_array, sha256, toml_error_line};

/// Format tag of a secret identity file.
const SECRET_FORMAT: &str = "dcnet-identity-secret-v1";
/// Format tag of a public identity file.
const PUBLIC_FORMAT: &str = "dcnet-identity-public-v1";
/// Domain of the self-signature in a public identity file.
const BINDING_DOMAIN: &str = "dcnet identity binding v1";

/// Why an identity could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The name is empty, too long or has characters unfit for a file name.
    #[error("name {0:?} must be 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// The file is not TOML of the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// The `format` field names another kind of file.
    #[error("format {found:?} where {expected:?} was expected")]
    WrongFormat {
        /// Format expected.
        expected: &'static str,
        /// Format found.
        found: String,
    },
    /// A key field does not hold a valid key.
    #[error("{0}")]
    BadKey(String),
    /// The self-signature of a public file does not verify: the keys or the name were changed.
    #[error("the binding signature of {0:?} does not verify: the file was altered")]
    BadBinding(String),
    /// A signature does not verify under the identity's key.
    #[error("signature does not verify with the key of {0:?}")]
    BadSignature(String),
}

/// Checks a name usable as a label and as a file name.
pub fn check_name(name: &str) -> Result<(), IdentityError> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fits {
        Ok(())
    } else {
        Err(IdentityError::BadName(name.to_string()))
    }
}

/// The public half of an identity.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    name: String,
    signing: VerifyingKey,
    exchange: ExchangePublic,
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({} {})", self.name, self.fingerprint())
    }
}

/// Both secret keys of an identity. `Debug` shows only the public half; both keys are wiped
/// when dropped (the dalek types zeroize themselves).
pub struct SecretIdentity {
    name: String,
    signing: SigningKey,
    exchange: StaticSecret,
}

impl fmt::Debug for SecretIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretIdentity({} {}, <redacted>)",
            self.name,
            self.public().fingerprint()
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    format: String,
    name: String,
    ed25519_secret: String,
    x25519_secret: String,
}

/// The public keys as they appear in every file that names an identity.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublicFields {
    pub(crate) name: String,
    pub(crate) ed25519: String,
    pub(crate) x25519: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    format: String,
    name: String,
    ed25519: String,
    x25519: String,
    binding: String,
}

impl SecretIdentity {
    /// A fresh identity from `rng`.
    pub fn generate(name: &str, rng: &mut impl CryptoRng) -> Result<Self, IdentityError> {
        check_name(name)?;
        let mut signing_bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(signing_bytes.as_mut());
        Ok(Self {
            name: name.to_string(),
            signing: SigningKey::from_bytes(&signing_bytes),
            exchange: random_exchange_secret(rng),
        })
    }

    /// The identity's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            name: self.name.clone(),
            signing: self.signing.verifying_key(),
            exchange: ExchangePublic::from(&self.exchange),
        }
    }

    /// Signs `message` with the Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// The X25519 secret, for opening sealed boxes.
    pub(crate) fn exchange_secret(&self) -> &StaticSecret {
        &self.exchange
    }

    /// The secret file's text. It holds secrets, so it is returned in wiping storage.
    pub fn to_toml(&self) -> Zeroizing<String> {
        // Written by hand rather than through serde so that no unwiped copy of the hex
        // secrets is left behind; the name is restricted to characters TOML needs no escape for.
        let signing = Zeroizing::new(hex::encode(self.signing.as_bytes()));
        let exchange = Zeroizing::new(hex::encode(self.exchange.as_bytes()));
        Zeroizing::new(format!(
            "# dcnet secret identity: keep this file private\n\
             format = \"{SECRET_FORMAT}\"\nname = \"{}\"\n\
             ed25519_secret = \"{}\"\nx25519_secret = \"{}\"\n",
            self.name,
            signing.as_str(),
            exchange.as_str()
        ))
    }

    /// Reads a secret file's text.
    pub fn from_toml(text: &str) -> Result<Self, IdentityError> {
        let mut file: SecretFile = toml::from_str(text)
            .map_err(|err| IdentityError::Syntax(toml_error_line(text, &err)))?;
        let result = (|| {
            expect_format(SECRET_FORMAT, &file.format)?;
            check_name(&file.name)?;
            let signing = Zeroizing::new(
                hex_array::<32>("ed25519_secret", &file.ed25519_secret)
                    .map_err(IdentityError::BadKey)?,
            );
            let exchange = Zeroizing::new(
                hex_array::<32>("x25519_secret", &file.x25519_secret)
                    .map_err(IdentityError::BadKey)?,
            );
            Ok(Self {
                name: file.name.clone(),
                signing: SigningKey::from_bytes(&signing),
                exchange: StaticSecret::from(*exchange),
            })
        })();
        zeroize::Zeroize::zeroize(&mut file.ed25519_secret);
        zeroize::Zeroize::zeroize(&mut file.x25519_secret);
        result
    }
}

impl PublicIdentity {
    /// The identity's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 verifying key.
    pub fn signing_key(&self) -> &VerifyingKey {
        &self.signing
    }

    /// The X25519 public key.
    pub fn exchange_key(&self) -> &ExchangePublic {
        &self.exchange
    }

    /// First 8 bytes of SHA-256 over both public keys, in hex: short enough to read aloud
    /// when comparing keys out of band.
    pub fn fingerprint(&self) -> String {
        let mut keys = [0u8; 64];
        keys[..32].copy_from_slice(self.signing.as_bytes());
        keys[32..].copy_from_slice(self.exchange.as_bytes());
        hex::encode(&sha256(&keys)[..8])
    }

    /// Verifies an Ed25519 signature (strict: no malleable encodings, no weak keys).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), IdentityError> {
        self.signing
            .verify_strict(message, signature)
            .map_err(|_| IdentityError::BadSignature(self.name.clone()))
    }

    /// Whether both keys equal `other`'s (names may differ).
    pub fn same_keys(&self, other: &Self) -> bool {
        self.signing == other.signing && self.exchange.as_bytes() == other.exchange.as_bytes()
    }

    fn binding_message(&self) -> Transcript {
        let mut transcript = Transcript::new(BINDING_DOMAIN);
        transcript
            .push(self.name.as_bytes())
            .push(self.signing.as_bytes())
            .push(self.exchange.as_bytes());
        transcript
    }

    /// The public file's text, self-signed by `secret` (which must be this identity).
    pub fn to_toml(secret: &SecretIdentity) -> String {
        let public = secret.public();
        let binding = secret.sign(public.binding_message().as_bytes());
        let PublicFields {
            name,
            ed25519,
            x25519,
        } = public.fields();
        let file = PublicFile {
            format: PUBLIC_FORMAT.into(),
            name,
            ed25519,
            x25519,
            binding: hex::encode(binding.to_bytes()),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// Reads a public file's text and checks its binding signature.
    pub fn from_toml(text: &str) -> Result<Self, IdentityError> {
        let file: PublicFile = toml::from_str(text)
            .map_err(|err| IdentityError::Syntax(toml_error_line(text, &err)))?;
        expect_format(PUBLIC_FORMAT, &file.format)?;
        let public = Self::from_fields(&PublicFields {
            name: file.name,
            ed25519: file.ed25519,
            x25519: file.x25519,
        })?;
        let binding = Signature::from_bytes(
            &hex_array::<64>("binding", &file.binding).map_err(IdentityError::BadKey)?,
        );
        public
            .verify(public.binding_message().as_bytes(), &binding)
            .map_err(|_| IdentityError::BadBinding(public.name.clone()))?;
        Ok(public)
    }

    pub(crate) fn fields(&self) -> PublicFields {
        PublicFields {
            name: self.name.clone(),
            ed25519: hex::encode(self.signing.as_bytes()),
            x25519: hex::encode(self.exchange.as_bytes()),
        }
    }

    pub(crate) fn from_fields(fields: &PublicFields) -> Result<Self, IdentityError> {
        check_name(&fields.name)?;
        let signing_bytes =
            hex_array::<32>("ed25519", &fields.ed25519).map_err(IdentityError::BadKey)?;
        let signing = VerifyingKey::from_bytes(&signing_bytes)
            .ok()
            .filter(|key| !key.is_weak())
            .ok_or_else(|| {
                IdentityError::BadKey(format!(
                    "field ed25519 of {:?}: not a valid Ed25519 key",
                    fields.name
                ))
            })?;
        let exchange = ExchangePublic::from(
            hex_array::<32>("x25519", &fields.x25519).map_err(IdentityError::BadKey)?,
        );
        Ok(Self {
            name: fields.name.clone(),
            signing,
            exchange,
        })
    }
}

fn expect_format(expected: &'static str, found: &str) -> Result<(), IdentityError> {
    if found == expected {
        Ok(())
    } else {
        Err(IdentityError::WrongFormat {
            expected,
            found: found.to_string(),
        })
    }
}

/// A fresh X25519 secret from `rng`.
///
/// Built from bytes rather than with the dalek `random_from_rng`, which takes the `rand_core`
/// 0.6 traits of the workspace's gateway code; the lock draws from `rand_core` 0.10 generators
/// because its secret sharing (`vsss-rs`) needs them. X25519 clamps any 32 bytes.
pub(crate) fn random_exchange_secret(rng: &mut impl CryptoRng) -> StaticSecret {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    StaticSecret::from(*bytes)
}

/// The operating system's random generator as a `rand_core` 0.10 generator.
///
/// It panics only if the operating system cannot supply randomness at all, in which case no
/// key could be made safely anyway.
pub fn os_rng() -> rand_core_010::UnwrapErr<getrandom::SysRng> {
    rand_core_010::UnwrapErr(getrandom::SysRng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_keep_keys() {
        let secret = SecretIdentity::generate("company-a", &mut os_rng()).unwrap();
        let again = SecretIdentity::from_toml(&secret.to_toml()).unwrap();
        assert!(again.public().same_keys(&secret.public()));
        let public = PublicIdentity::from_toml(&PublicIdentity::to_toml(&secret)).unwrap();
        assert_eq!(public, secret.public());
        let signature = secret.sign(b"hello");
        public.verify(b"hello", &signature).unwrap();
        assert!(public.verify(b"hellO", &signature).is_err());
    }

    #[test]
    fn swapping_a_public_key_breaks_the_binding() {
        let alice = SecretIdentity::generate("alice", &mut os_rng()).unwrap();
        let mallory = SecretIdentity::generate("mallory", &mut os_rng()).unwrap();
        let text = PublicIdentity::to_toml(&alice).replace(
            &hex::encode(alice.public().exchange_key().as_bytes()),
            &hex::encode(mallory.public().exchange_key().as_bytes()),
        );
        assert_eq!(
            PublicIdentity::from_toml(&text),
            Err(IdentityError::BadBinding("alice".into()))
        );
        let renamed = PublicIdentity::to_toml(&alice).replace("\"alice\"", "\"alicf\"");
        assert!(matches!(
            PublicIdentity::from_toml(&renamed),
            Err(IdentityError::BadBinding(_))
        ));
    }

    #[test]
    fn debug_redacts_secrets_and_files_are_checked() {
        let secret = SecretIdentity::generate("meter", &mut os_rng()).unwrap();
        let shown = format!("{secret:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(secret.signing.as_bytes())));
        assert!(matches!(
            SecretIdentity::from_toml(&PublicIdentity::to_toml(&secret)),
            Err(IdentityError::Syntax(_))
        ));
        assert!(matches!(
            SecretIdentity::generate("../etc", &mut os_rng()),
            Err(IdentityError::BadName(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = SecretIdentity::from_toml(&text);
            let _ = PublicIdentity::from_toml(&text);
        }
    }
}
