//! The signed pairwise key exchange gateways run through the provider's relay (DESIGN §1, §2).
//!
//! Each end of a new key-graph edge draws an X25519 ephemeral key, signs its public half with its
//! Ed25519 identity key and sends it through the provider. The receiver checks the signature
//! against the identity registry before it uses the key, so a relay that substitutes or alters
//! a public key is caught and the pair never derives a seed the relay could know. The seed is
//! `HKDF-SHA256(ikm = shared secret, salt = dc_net_id LE, info = "dcnet pairwise seed v1" ||
//! min LE || max LE)[0..16]` exactly as DESIGN §2 fixes it.
//!
//! Exits are signed with the same identity keys: a neighbour drops a seed only on an exit the
//! leaving client itself signed, naming the exact exchange that created the seed, so neither a
//! fabricated nor a replayed exit can make gateways reshape the graph.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::seed::EdgeSeed;

/// Domain separator of signed key shares, so a share signature never verifies as anything else.
const KEY_SHARE_DOMAIN: &[u8] = b"dcnet key share v1";
/// Domain separator of signed exits.
const EXIT_DOMAIN: &[u8] = b"dcnet exit v1";
/// HKDF `info` prefix for live edge seeds (DESIGN §2, normative).
const SEED_INFO: &[u8] = b"dcnet pairwise seed v1";

/// Why a relayed key share or exit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KexError {
    /// The signature does not verify under the sender's registered identity key: the message
    /// was altered or substituted on the way.
    #[error("signature of client {from} does not verify (altered or substituted on the relay)")]
    BadSignature { from: u32 },
    /// The registry has no identity key for the sender.
    #[error("client {0} has no identity key in the registry")]
    UnknownIdentity(u32),
    /// The share belongs to another exchange, pair or net than the one this end started.
    #[error(
        "share for net {net}, exchange {exchange}, {from} -> {to} does not match the pending exchange"
    )]
    Mismatch {
        net: u32,
        exchange: u64,
        from: u32,
        to: u32,
    },
    /// The peer's public key is a low-order point: the shared secret would be all zeros.
    #[error("client {from} sent a low-order X25519 key")]
    NonContributory { from: u32 },
}

/// A gateway's long-term Ed25519 identity key. Secret: redacting `Debug`, wiped on drop.
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// A fresh identity key (commissioning a gateway).
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self(SigningKey::generate(rng))
    }

    /// The identity key with the given 32-byte secret seed (RFC 8032 private key).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(secret))
    }

    /// The public half that goes into the provider's registry.
    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let public: String = self
            .public()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        write!(f, "IdentityKey(<redacted>, public {public})")
    }
}

/// The identity public keys of every commissioned gateway, by client id.
///
/// The registry stands for the metering PKI: it binds a client id to an identity key outside the
/// relay path, so the relaying provider can forward key shares but cannot rewrite whose key
/// verifies them. Gateways and provider consult the same registry.
#[derive(Debug, Clone, Default)]
pub struct IdentityRegistry {
    keys: BTreeMap<u32, VerifyingKey>,
}

impl IdentityRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (or replaces, on re-commissioning) the identity key of `client`.
    pub fn insert(&mut self, client: u32, key: VerifyingKey) {
        self.keys.insert(client, key);
    }

    /// The identity key of `client`.
    pub fn get(&self, client: u32) -> Result<&VerifyingKey, KexError> {
        self.keys
            .get(&client)
            .ok_or(KexError::UnknownIdentity(client))
    }
}

/// One end's signed ephemeral public key, relayed by the provider to the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShare {
    pub dc_net_id: u32,
    /// The relay tunnel the provider opened for this exchange; never reused within a net.
    pub exchange: u64,
    pub from: u32,
    pub to: u32,
    /// X25519 public key.
    pub ephemeral: [u8; 32],
    /// Ed25519 signature by `from` over [`KeyShare::signed_bytes`].
    pub signature: [u8; 64],
}

impl KeyShare {
    /// `"dcnet key share v1" || net u32 LE || exchange u64 LE || from u32 LE || to u32 LE ||
    /// ephemeral`: every field that names the exchange is signed, so a share cannot be replayed
    /// into another exchange, pair or net.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(KEY_SHARE_DOMAIN.len() + 52);
        bytes.extend_from_slice(KEY_SHARE_DOMAIN);
        bytes.extend_from_slice(&self.dc_net_id.to_le_bytes());
        bytes.extend_from_slice(&self.exchange.to_le_bytes());
        bytes.extend_from_slice(&self.from.to_le_bytes());
        bytes.extend_from_slice(&self.to.to_le_bytes());
        bytes.extend_from_slice(&self.ephemeral);
        bytes
    }

    /// Checks the signature against the sender's identity key.
    pub fn verify(&self, identity: &VerifyingKey) -> Result<(), KexError> {
        verify(identity, &self.signed_bytes(), &self.signature, self.from)
    }
}

/// One end of an exchange after it sent its share and before the peer's share arrived.
///
/// Holds the X25519 secret; finishing consumes it, so an ephemeral key serves one exchange only.
pub struct PendingExchange {
    dc_net_id: u32,
    exchange: u64,
    me: u32,
    peer: u32,
    secret: StaticSecret,
}

impl std::fmt::Debug for PendingExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingExchange")
            .field("dc_net_id", &self.dc_net_id)
            .field("exchange", &self.exchange)
            .field("me", &self.me)
            .field("peer", &self.peer)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl PendingExchange {
    /// Starts exchange `exchange` of `me` with `peer`: draws the ephemeral key and signs its
    /// public half.
    pub fn start(
        identity: &IdentityKey,
        dc_net_id: u32,
        exchange: u64,
        me: u32,
        peer: u32,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (Self, KeyShare) {
        let mut secret_bytes = [0u8; 32];
        rng.fill_bytes(&mut secret_bytes);
        let pending = Self::from_secret_bytes(dc_net_id, exchange, me, peer, secret_bytes);
        secret_bytes.zeroize();
        let share = pending.share(identity);
        (pending, share)
    }

    /// Like [`Self::start`] with a given X25519 secret, for reproducible test vectors.
    pub fn from_secret_bytes(
        dc_net_id: u32,
        exchange: u64,
        me: u32,
        peer: u32,
        secret: [u8; 32],
    ) -> Self {
        Self {
            dc_net_id,
            exchange,
            me,
            peer,
            secret: StaticSecret::from(secret),
        }
    }

    /// This end's signed share.
    pub fn share(&self, identity: &IdentityKey) -> KeyShare {
        let mut share = KeyShare {
            dc_net_id: self.dc_net_id,
            exchange: self.exchange,
            from: self.me,
            to: self.peer,
            ephemeral: PublicKey::from(&self.secret).to_bytes(),
            signature: [0; 64],
        };
        share.signature = identity.sign(&share.signed_bytes());
        share
    }

    /// The exchange id.
    pub fn exchange(&self) -> u64 {
        self.exchange
    }

    /// The other end.
    pub fn peer(&self) -> u32 {
        self.peer
    }

    /// Checks the peer's share (it must answer exactly this exchange and carry a valid
    /// signature under `peer_identity`) and derives the edge seed.
    ///
    /// On error the pending exchange is returned untouched, so the caller decides whether to
    /// keep waiting or abandon it.
    pub fn finish(
        self,
        share: &KeyShare,
        peer_identity: &VerifyingKey,
    ) -> Result<EdgeSeed, (Self, KexError)> {
        if share.dc_net_id != self.dc_net_id
            || share.exchange != self.exchange
            || share.from != self.peer
            || share.to != self.me
        {
            let error = KexError::Mismatch {
                net: share.dc_net_id,
                exchange: share.exchange,
                from: share.from,
                to: share.to,
            };
            return Err((self, error));
        }
        if let Err(error) = share.verify(peer_identity) {
            return Err((self, error));
        }
        let shared = self
            .secret
            .diffie_hellman(&PublicKey::from(share.ephemeral));
        if !shared.was_contributory() {
            return Err((self, KexError::NonContributory { from: share.from }));
        }
        Ok(derive_live_seed(
            shared.as_bytes(),
            self.dc_net_id,
            self.me,
            self.peer,
        ))
    }
}

/// `HKDF-SHA256(ikm = shared, salt = dc_net_id u32 LE, info = "dcnet pairwise seed v1" ||
/// min(a,b) u32 LE || max(a,b) u32 LE)[0..16]` (DESIGN §2, normative).
pub fn derive_live_seed(shared: &[u8; 32], dc_net_id: u32, a: u32, b: u32) -> EdgeSeed {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut info = [0u8; SEED_INFO.len() + 8];
    info[..SEED_INFO.len()].copy_from_slice(SEED_INFO);
    info[SEED_INFO.len()..SEED_INFO.len() + 4].copy_from_slice(&lo.to_le_bytes());
    info[SEED_INFO.len() + 4..].copy_from_slice(&hi.to_le_bytes());
    let mut seed = [0u8; 16];
    Hkdf::<Sha256>::new(Some(&dc_net_id.to_le_bytes()), shared)
        .expand(&info, &mut seed)
        // 16 bytes is far below HKDF-SHA256's 255 * 32 byte limit.
        .unwrap_or_else(|_| unreachable!("HKDF-SHA256 can always expand 16 bytes"));
    let edge = EdgeSeed::from_bytes(seed);
    seed.zeroize();
    edge
}

/// A leaving client's signed statement of which edges it leaves, relayed to each partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedExit {
    pub dc_net_id: u32,
    pub client: u32,
    /// Every partner with the exchange id that created the shared seed, ascending by client.
    pub partners: Vec<(u32, u64)>,
    pub signature: [u8; 64],
}

impl SignedExit {
    /// Signs the exit of `client` from `dc_net_id`, leaving `partners`.
    pub fn sign(
        identity: &IdentityKey,
        dc_net_id: u32,
        client: u32,
        mut partners: Vec<(u32, u64)>,
    ) -> Self {
        partners.sort_unstable();
        let mut exit = Self {
            dc_net_id,
            client,
            partners,
            signature: [0; 64],
        };
        exit.signature = identity.sign(&exit.signed_bytes());
        exit
    }

    /// `"dcnet exit v1" || net u32 LE || client u32 LE || count u32 LE || (partner u32 LE ||
    /// exchange u64 LE)*`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(EXIT_DOMAIN.len() + 12 + 12 * self.partners.len());
        bytes.extend_from_slice(EXIT_DOMAIN);
        bytes.extend_from_slice(&self.dc_net_id.to_le_bytes());
        bytes.extend_from_slice(&self.client.to_le_bytes());
        // More than u32::MAX partners cannot exist (client ids are u32).
        bytes.extend_from_slice(&(self.partners.len() as u32).to_le_bytes());
        for (partner, exchange) in &self.partners {
            bytes.extend_from_slice(&partner.to_le_bytes());
            bytes.extend_from_slice(&exchange.to_le_bytes());
        }
        bytes
    }

    /// Checks the signature against the leaving client's identity key.
    pub fn verify(&self, identity: &VerifyingKey) -> Result<(), KexError> {
        verify(identity, &self.signed_bytes(), &self.signature, self.client)
    }

    /// The exchange id this exit names for `partner`, if it names the partner.
    pub fn exchange_with(&self, partner: u32) -> Option<u64> {
        self.partners
            .iter()
            .find(|(p, _)| *p == partner)
            .map(|(_, e)| *e)
    }
}

fn verify(
    identity: &VerifyingKey,
    message: &[u8],
    signature: &[u8; 64],
    from: u32,
) -> Result<(), KexError> {
    identity
        .verify(message, &Signature::from_bytes(signature))
        .map_err(|_| KexError::BadSignature { from })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // RFC 7748 §6.1 Alice and Bob.
    const ALICE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const BOB: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    // RFC 8032 §7.1 TEST 1.
    const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_EMPTY_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    #[test]
    fn identity_keys_match_rfc8032_test_1() {
        let identity = IdentityKey::from_secret_bytes(&hex32(RFC8032_SECRET));
        assert_eq!(hex::encode(identity.public().as_bytes()), RFC8032_PUBLIC);
        assert_eq!(hex::encode(identity.sign(b"")), RFC8032_EMPTY_SIGNATURE);
    }

    #[test]
    fn live_seed_matches_independent_hkdf() {
        // Reproduce with Python's `cryptography` package:
        // python3 -c 'import struct;from cryptography.hazmat.primitives.kdf.hkdf import HKDF;
        //   from cryptography.hazmat.primitives import hashes;
        //   print(HKDF(hashes.SHA256(),16,struct.pack("<I",7),b"dcnet pairwise seed v1"
        //   +struct.pack("<II",3,11)).derive(bytes.fromhex("4a5d9d5b...1742")).hex())'
        let seed = derive_live_seed(&hex32(SHARED), 7, 11, 3);
        assert_eq!(
            hex::encode(seed.as_bytes()),
            "99934e8070e7f8eeb8be85ca6cbe5bd7"
        );
        assert_eq!(seed, derive_live_seed(&hex32(SHARED), 7, 3, 11));
        assert_ne!(seed, derive_live_seed(&hex32(SHARED), 8, 3, 11));
    }

    #[test]
    fn key_share_signature_matches_independent_ed25519() {
        // Reproduce: python3 -c 'import struct;from cryptography.hazmat.primitives.asymmetric.
        //   ed25519 import Ed25519PrivateKey as K;k=K.from_private_bytes(bytes.fromhex(
        //   "9d61...7f60"));print(k.sign(b"dcnet key share v1"+struct.pack("<IQII",7,5,3,11)
        //   +bytes.fromhex("8520...4e6a")).hex())'
        let identity = IdentityKey::from_secret_bytes(&hex32(RFC8032_SECRET));
        let pending = PendingExchange::from_secret_bytes(7, 5, 3, 11, hex32(ALICE));
        let share = pending.share(&identity);
        assert_eq!(hex::encode(share.ephemeral), ALICE_PUBLIC);
        assert_eq!(
            hex::encode(share.signature),
            "f80ac3d94794ad7a3d46e302d4dc673efc35fc04e3953bdc2d43c49d082446f0\
             bec182a13708ce427c7d7a3ef7422a2995963fd2db6098062923c03e23c1f50b"
        );
    }

    #[test]
    fn both_ends_derive_the_rfc7748_based_seed() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (id3, id11) = (
            IdentityKey::generate(&mut rng),
            IdentityKey::generate(&mut rng),
        );
        let a = PendingExchange::from_secret_bytes(7, 5, 3, 11, hex32(ALICE));
        let b = PendingExchange::from_secret_bytes(7, 5, 11, 3, hex32(BOB));
        let (share_a, share_b) = (a.share(&id3), b.share(&id11));
        let seed_a = a.finish(&share_b, &id11.public()).unwrap();
        let seed_b = b.finish(&share_a, &id3.public()).unwrap();
        assert_eq!(seed_a, seed_b);
        assert_eq!(
            hex::encode(seed_a.as_bytes()),
            "99934e8070e7f8eeb8be85ca6cbe5bd7"
        );
    }

    #[test]
    fn any_flipped_bit_of_a_relayed_share_is_detected() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (id3, id11) = (
            IdentityKey::generate(&mut rng),
            IdentityKey::generate(&mut rng),
        );
        let (_, honest) = PendingExchange::start(&id11, 7, 5, 11, 3, &mut rng);
        for bit in 0..(32 + 64) * 8 {
            let mut share = honest.clone();
            if bit < 256 {
                share.ephemeral[bit / 8] ^= 1 << (bit % 8);
            } else {
                share.signature[(bit - 256) / 8] ^= 1 << (bit % 8);
            }
            let (pending, _) = PendingExchange::start(&id3, 7, 5, 3, 11, &mut rng);
            let (_, error) = pending.finish(&share, &id11.public()).unwrap_err();
            assert_eq!(error, KexError::BadSignature { from: 11 }, "bit {bit}");
        }
    }

    #[test]
    fn a_substituted_key_signed_by_the_relay_is_detected() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (id3, id11, relay) = (
            IdentityKey::generate(&mut rng),
            IdentityKey::generate(&mut rng),
            IdentityKey::generate(&mut rng),
        );
        // The relay runs its own exchange and signs it with its own key, posing as client 11.
        let (_, forged) = PendingExchange::start(&relay, 7, 5, 11, 3, &mut rng);
        let (pending, _) = PendingExchange::start(&id3, 7, 5, 3, 11, &mut rng);
        let (pending, error) = pending.finish(&forged, &id11.public()).unwrap_err();
        assert_eq!(error, KexError::BadSignature { from: 11 });
        // A share for another exchange is refused before any signature check.
        let (_, other) = PendingExchange::start(&id11, 7, 6, 11, 3, &mut rng);
        let (_, error) = pending.finish(&other, &id11.public()).unwrap_err();
        assert!(matches!(error, KexError::Mismatch { exchange: 6, .. }));
    }

    #[test]
    fn low_order_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let id11 = IdentityKey::generate(&mut rng);
        let mut share = PendingExchange::from_secret_bytes(7, 5, 11, 3, hex32(BOB)).share(&id11);
        share.ephemeral = [0; 32];
        share.signature = id11.sign(&share.signed_bytes());
        let pending = PendingExchange::from_secret_bytes(7, 5, 3, 11, hex32(ALICE));
        let (_, error) = pending.finish(&share, &id11.public()).unwrap_err();
        assert_eq!(error, KexError::NonContributory { from: 11 });
    }

    #[test]
    fn exits_verify_and_any_change_breaks_them() {
        // Reproduce: python3 -c 'import struct;from cryptography.hazmat.primitives.asymmetric.
        //   ed25519 import Ed25519PrivateKey as K;k=K.from_private_bytes(bytes.fromhex(
        //   "9d61...7f60"));print(k.sign(b"dcnet exit v1"+struct.pack("<III",7,3,2)
        //   +struct.pack("<IQ",4,9)+struct.pack("<IQ",11,5)).hex())'
        let identity = IdentityKey::from_secret_bytes(&hex32(RFC8032_SECRET));
        let exit = SignedExit::sign(&identity, 7, 3, vec![(11, 5), (4, 9)]);
        assert_eq!(hex::encode(exit.signature), EXIT_VECTOR);
        exit.verify(&identity.public()).unwrap();
        assert_eq!(exit.exchange_with(11), Some(5));
        let mut altered = exit.clone();
        altered.partners[0].1 = 10;
        assert_eq!(
            altered.verify(&identity.public()),
            Err(KexError::BadSignature { from: 3 })
        );
    }

    const EXIT_VECTOR: &str = "97ed1c81c6d3e666bd7c2cde10c664f2dec177ac40048cf69a3cd13498cf293f\
                               05b715cf01d47e92464cd8e23e8b197ec7d4e43077975bd4ad6278235954500c";

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let identity = IdentityKey::from_secret_bytes(&hex32(RFC8032_SECRET));
        let pending = PendingExchange::from_secret_bytes(7, 5, 3, 11, hex32(ALICE));
        let shown = format!("{identity:?} {pending:?}");
        assert!(
            !shown.contains("9d61") && !shown.contains("7707"),
            "{shown}"
        );
        assert!(shown.contains("redacted"), "{shown}");
    }
}
