//! Edge seeds: the 16-byte secrets two neighbouring gateways share (DESIGN §2).
//!
//! Live gateways derive seeds from an authenticated X25519 exchange; simulations derive them
//! from one master key so that a whole population is reproducible from a single `u64`.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain separator of the simulation master key (DESIGN §2, normative).
const SIMULATION_DOMAIN: &[u8] = b"dcnet simulation v1";

/// A pairwise edge seed. It keys the AES-128-CTR stream of one key-graph edge.
///
/// The seed is a secret: `Debug` redacts it, equality is constant-time and the bytes are wiped
/// when the value is dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EdgeSeed([u8; 16]);

impl EdgeSeed {
    /// Wraps raw seed bytes, e.g. read from a gateway's key file or derived by HKDF.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for the keystream and for writing key files.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for EdgeSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeSeed(<redacted>)")
    }
}

impl PartialEq for EdgeSeed {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for EdgeSeed {}

/// The simulation master key from which every simulated edge seed is derived.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 16]);

impl MasterKey {
    /// The raw bytes (tests compare them with the DESIGN §8 vector).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// `master = SHA-256("dcnet simulation v1" || sim_seed as u64 LE)[0..16]`.
pub fn master_key(sim_seed: u64) -> MasterKey {
    let digest = Sha256::new()
        .chain_update(SIMULATION_DOMAIN)
        .chain_update(sim_seed.to_le_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    MasterKey(key)
}

/// `seed(net, i, j) = AES-128-ECB_master(net u32 LE || min u32 LE || max u32 LE || 0u32)`.
///
/// The seed is symmetric in the two client ids, so both ends of an edge derive the same one.
pub fn edge_seed(master: &MasterKey, dc_net_id: u32, a: u32, b: u32) -> EdgeSeed {
    EdgeSeedDeriver::new(master).derive(dc_net_id, a, b)
}

/// Derives many simulated seeds under one master key without re-expanding the AES key.
pub struct EdgeSeedDeriver {
    cipher: Aes128,
}

impl EdgeSeedDeriver {
    /// Expands the master key once.
    pub fn new(master: &MasterKey) -> Self {
        Self {
            cipher: Aes128::new(GenericArray::from_slice(&master.0)),
        }
    }

    /// The seed of edge {a, b} of net `dc_net_id`.
    pub fn derive(&self, dc_net_id: u32, a: u32, b: u32) -> EdgeSeed {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut block = [0u8; 16];
        block[0..4].copy_from_slice(&dc_net_id.to_le_bytes());
        block[4..8].copy_from_slice(&lo.to_le_bytes());
        block[8..12].copy_from_slice(&hi.to_le_bytes());
        let block = GenericArray::from_mut_slice(&mut block);
        self.cipher.encrypt_block(block);
        let mut seed = [0u8; 16];
        seed.copy_from_slice(block);
        block.zeroize();
        EdgeSeed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN_VECTORS: &str = include_str!("../../data/vectors/design-s8.txt");

    fn vector(name: &str) -> String {
        DESIGN_VECTORS
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(" = "))
            .unwrap_or_else(|| panic!("vector {name} missing"))
            .trim()
            .to_string()
    }

    #[test]
    fn master_key_matches_design_vector() {
        assert_eq!(
            hex::encode(master_key(42).as_bytes()),
            vector("master_key(42)")
        );
    }

    #[test]
    fn edge_seed_matches_design_vector() {
        let seed = edge_seed(&master_key(42), 7, 3, 11);
        assert_eq!(
            hex::encode(seed.as_bytes()),
            vector("edge_seed(master_key(42), net=7, 3, 11)")
        );
    }

    #[test]
    fn edge_seed_is_symmetric_and_separates_nets_and_edges() {
        let master = master_key(1);
        assert_eq!(edge_seed(&master, 1, 5, 9), edge_seed(&master, 1, 9, 5));
        assert_ne!(edge_seed(&master, 1, 5, 9), edge_seed(&master, 2, 5, 9));
        assert_ne!(edge_seed(&master, 1, 5, 9), edge_seed(&master, 1, 5, 10));
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let seed = edge_seed(&master_key(42), 7, 3, 11);
        let shown = format!("{seed:?} {:?}", master_key(42));
        assert!(
            !shown.contains("d9") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
