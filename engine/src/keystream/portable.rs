//! The portable strategies, on the `aes` crate (which uses AES-NI by itself when present).
//!
//! One edge over many rounds expands its key once into an `Aes128Enc` and encrypts all the
//! counter blocks through the crate's parallel-block path (8 blocks in flight with AES-NI).
//! Many edges over one round pay one key expansion per edge here; the x86 kernels avoid that.

use aes::Aes128Enc;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use zeroize::Zeroize;

use crate::seed::EdgeSeed;

/// Counter blocks encrypted per call into the cipher: a multiple of its 8 parallel blocks,
/// small enough to stay on the stack.
const BATCH_BLOCKS: usize = 64;

type Block = GenericArray<u8, aes::cipher::consts::U16>;

/// Counter block `block` of round `round`: `round as u64 BE || block as u64 BE`.
fn counter(round: u32, block: usize) -> Block {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&u64::from(round).to_be_bytes());
    bytes[8..].copy_from_slice(&(block as u64).to_be_bytes());
    bytes.into()
}

/// Lanes `2b` and `2b + 1` from keystream block `b` into `pair` (one or two lanes).
fn store(block: &Block, pair: &mut [u64]) {
    for (lane, bytes) in pair.iter_mut().zip(block.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        *lane = u64::from_le_bytes(word);
    }
}

/// The keys of `seed` for every round in `rounds`: round `rounds[i]` goes to
/// `out[i · stride ..][.. lanes]`.
///
/// The key is expanded once; counter blocks of several rounds share each call to the cipher.
pub(super) fn fill_rounds_strided(
    seed: &EdgeSeed,
    rounds: &[u32],
    lanes: usize,
    out: &mut [u64],
    stride: usize,
) {
    let cipher = Aes128Enc::new(seed.as_bytes().into());
    let blocks_per_round = lanes.div_ceil(2);
    let rounds_per_batch = (BATCH_BLOCKS / blocks_per_round).max(1);
    let mut buffer = [Block::default(); BATCH_BLOCKS];
    for (batch_index, batch) in rounds.chunks(rounds_per_batch).enumerate() {
        let used = &mut buffer[..batch.len() * blocks_per_round];
        for (round, blocks) in batch.iter().zip(used.chunks_exact_mut(blocks_per_round)) {
            let high = u64::from(*round).to_be_bytes();
            for (b, block) in blocks.iter_mut().enumerate() {
                block[..8].copy_from_slice(&high);
                block[8..].copy_from_slice(&(b as u64).to_be_bytes());
            }
        }
        cipher.encrypt_blocks(used);
        for (i, blocks) in used.chunks_exact(blocks_per_round).enumerate() {
            let row = (batch_index * rounds_per_batch + i) * stride;
            let key_out = &mut out[row..row + lanes];
            for (pair, block) in key_out.chunks_mut(2).zip(blocks) {
                store(block, pair);
            }
        }
    }
    // The buffer held keystream, i.e. key material.
    for block in &mut buffer {
        block.as_mut_slice().zeroize();
    }
}

/// The keys of every seed for one round, one key expansion per seed:
/// `seeds[e]` goes to `out[e · lanes ..][.. lanes]`.
pub(super) fn fill_edges(seeds: &[EdgeSeed], round: u32, lanes: usize, out: &mut [u64]) {
    let blocks = lanes.div_ceil(2);
    let mut buffer = [Block::default(); crate::MAX_LANES / 2];
    for (seed, key_out) in seeds.iter().zip(out.chunks_exact_mut(lanes)) {
        let cipher = Aes128Enc::new(seed.as_bytes().into());
        let used = &mut buffer[..blocks];
        for (b, block) in used.iter_mut().enumerate() {
            *block = counter(round, b);
        }
        cipher.encrypt_blocks(used);
        for (pair, block) in key_out.chunks_mut(2).zip(used.iter()) {
            store(block, pair);
        }
    }
    for block in &mut buffer {
        block.as_mut_slice().zeroize();
    }
}
