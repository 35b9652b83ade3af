//! Edge keys: AES-128-CTR keystream lanes per (edge seed, round) (DESIGN §2, normative).
//!
//! The counter block of round `r`, block `b` is `r as u64 BE || b as u64 BE`, i.e. CTR with a
//! 128-bit big-endian counter starting at `r << 64`. Lane `l` is keystream bytes `[8l, 8l + 8)`
//! read as a little-endian u64, so `L` lanes need `ceil(L / 2)` blocks.

use aes::Aes128;
use aes::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroize;

use crate::MAX_LANES;
use crate::seed::EdgeSeed;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// The initial counter block of round `round`.
pub fn counter_block(round: u32) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&u64::from(round).to_be_bytes());
    iv
}

/// Fills `out` with the edge key of `seed` for `round`: one u64 per lane.
///
/// # Panics
/// If `out` holds more than [`MAX_LANES`] lanes; callers size it from a validated lane count.
pub fn fill_lanes(seed: &EdgeSeed, round: u32, out: &mut [u64]) {
    assert!(out.len() <= MAX_LANES, "at most {MAX_LANES} lanes");
    let mut bytes = [0u8; MAX_LANES * 8];
    let used = &mut bytes[..out.len().div_ceil(2) * 16];
    let mut cipher = Aes128Ctr::new(seed.as_bytes().into(), &counter_block(round).into());
    cipher.apply_keystream(used);
    for (lane, chunk) in out.iter_mut().zip(used.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *lane = u64::from_le_bytes(word);
    }
    bytes.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{edge_seed, master_key};

    const DESIGN_VECTORS: &str = include_str!("../../data/vectors/design-s8.txt");

    fn expected_lanes(round: u32) -> Vec<u64> {
        let name = format!("lanes(round={round}) = ");
        let line = DESIGN_VECTORS
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .expect("vector present");
        line.split_whitespace()
            .map(|v| v.parse().expect("u64"))
            .collect()
    }

    #[test]
    fn keystream_lanes_match_design_vectors() {
        let seed = edge_seed(&master_key(42), 7, 3, 11);
        for round in [0, 1, 96] {
            let mut lanes = [0u64; 3];
            fill_lanes(&seed, round, &mut lanes);
            assert_eq!(lanes.to_vec(), expected_lanes(round), "round {round}");
        }
    }

    #[test]
    fn fewer_lanes_are_a_prefix_of_more_lanes() {
        let seed = edge_seed(&master_key(9), 1, 2, 3);
        let mut all = [0u64; MAX_LANES];
        fill_lanes(&seed, 77, &mut all);
        for lanes in 1..=MAX_LANES {
            let mut some = vec![0u64; lanes];
            fill_lanes(&seed, 77, &mut some);
            assert_eq!(some, all[..lanes]);
        }
    }
}
