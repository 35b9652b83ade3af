//! Hand-written AES-128 kernels for x86-64: many edge keys at once, round keys in registers.
//!
//! The multi-key shape (many edges, one round) encrypts one or a few counter blocks under each
//! of thousands of different keys. A cipher object per key spends most of its time expanding
//! the key schedule into memory and reading it back; here the schedule of every key is computed
//! on the fly in the same register that feeds the next `aesenc`, and 8 to 16 keys are
//! interleaved so that the AES units never wait for a dependency chain. No crate offers this
//! shape, which is why this module is hand-written; it is the only module of `engine` allowed
//! `unsafe`, and only to call CPU intrinsics whose availability was checked at run time.
//!
//! The key schedule uses the `aesenclast` formulation rather than `aeskeygenassist`, because
//! VAES has no 256- or 512-bit `aeskeygenassist`: broadcasting `RotWord(w3)` into all four
//! columns makes `ShiftRows` the identity, so `aesenclast(rot(w3), rcon)` is
//! `SubWord(RotWord(w3)) ^ rcon` in every column, which is exactly the schedule's mixing term.
//!
//! Soundness rests on one rule: a value of [`AesNi`], [`Vaes`] or [`Vaes512`] exists only if
//! [`Detected`] found the features it names, and every vector type ([`Xmm`], [`Ymm`], [`Zmm`])
//! is created only from such a proof. So every intrinsic below runs on a CPU that has it.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, __m256i, __m512i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_cvtsi128_si64,
    _mm_extract_epi64, _mm_loadu_si128, _mm_set_epi64x, _mm_setzero_si128, _mm_shuffle_epi8,
    _mm_slli_si128, _mm_storeu_si128, _mm_xor_si128, _mm256_aesenc_epi128,
    _mm256_aesenclast_epi128, _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_loadu_si256,
    _mm256_set_epi64x, _mm256_set_m128i, _mm256_shuffle_epi8, _mm256_slli_si256,
    _mm256_storeu_si256, _mm256_xor_si256, _mm512_aesenc_epi128, _mm512_aesenclast_epi128,
    _mm512_bslli_epi128, _mm512_castsi256_si512, _mm512_castsi512_si128, _mm512_extracti32x4_epi32,
    _mm512_inserti64x4, _mm512_loadu_si512, _mm512_set_epi64, _mm512_shuffle_epi8,
    _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512,
};
use std::sync::OnceLock;

use zeroize::Zeroize;

use crate::seed::EdgeSeed;

/// The CPU features the kernels need, detected once per process.
#[derive(Debug, Clone, Copy)]
struct Detected {
    aes_ni: bool,
    vaes: bool,
    vaes512: bool,
}

fn detected() -> Detected {
    static DETECTED: OnceLock<Detected> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        // `cpufeatures` does not report VAES on AVX2-only machines, so the standard library's
        // detection is used for every feature.
        let aes_ni = is_x86_feature_detected!("aes") && is_x86_feature_detected!("sse4.1");
        let vaes = aes_ni && is_x86_feature_detected!("vaes") && is_x86_feature_detected!("avx2");
        let vaes512 =
            vaes && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        Detected {
            aes_ni,
            vaes,
            vaes512,
        }
    })
}

/// Proof that the CPU has AES-NI and SSE4.1.
#[derive(Debug, Clone, Copy)]
pub(super) struct AesNi(());

/// Proof that the CPU has AES-NI, VAES and AVX2 (two keys per 256-bit register).
#[derive(Debug, Clone, Copy)]
pub(super) struct Vaes(());

/// Proof that the CPU has VAES and AVX-512 F/BW (four keys per 512-bit register).
#[derive(Debug, Clone, Copy)]
pub(super) struct Vaes512(());

impl AesNi {
    pub(super) fn detect() -> Option<Self> {
        detected().aes_ni.then_some(Self(()))
    }
}

impl Vaes {
    pub(super) fn detect() -> Option<Self> {
        detected().vaes.then_some(Self(()))
    }
}

impl Vaes512 {
    pub(super) fn detect() -> Option<Self> {
        detected().vaes512.then_some(Self(()))
    }
}

/// A register of `KEYS` independent AES blocks, one per key.
///
/// Implementations are only constructible from their `Proof`, so their methods may use the
/// intrinsics the proof stands for.
trait AesVec: Copy {
    type Proof: Copy;
    /// Keys (128-bit blocks) per register.
    const KEYS: usize;
    /// The same 128-bit value `lo | hi << 64` in every block.
    fn splat(proof: Self::Proof, lo: u64, hi: u64) -> Self;
    /// Up to `KEYS` seeds, block `j` from `seeds[j]`; blocks without a seed are zero.
    fn load_seeds(proof: Self::Proof, seeds: &[EdgeSeed]) -> Self;
    fn xor(self, other: Self) -> Self;
    /// `self ^ a ^ b`.
    fn xor3(self, a: Self, b: Self) -> Self {
        self.xor(a).xor(b)
    }
    fn aesenc(self, round_key: Self) -> Self;
    fn aesenclast(self, round_key: Self) -> Self;
    fn shuffle_bytes(self, mask: Self) -> Self;
    /// Each block shifted left by one 32-bit word (towards higher byte addresses).
    fn shift_one_word(self) -> Self;
    /// Each block shifted left by two 32-bit words.
    fn shift_two_words(self) -> Self;
    /// Block `j` as two little-endian lanes.
    fn lanes(self, j: usize) -> (u64, u64);
    /// The blocks from `2 · KEYS` lanes (block `j` is lanes `2j`, `2j + 1`).
    ///
    /// # Panics
    /// If `lanes` is shorter than `2 · KEYS`.
    fn load(proof: Self::Proof, lanes: &[u64]) -> Self;
    /// The blocks into `2 · KEYS` lanes, the inverse of [`AesVec::load`].
    ///
    /// # Panics
    /// If `lanes` is shorter than `2 · KEYS`.
    fn store(self, lanes: &mut [u64]);
}

#[inline(always)]
fn seed_words(seed: &EdgeSeed) -> (i64, i64) {
    let bytes = seed.as_bytes();
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&bytes[..8]);
    hi.copy_from_slice(&bytes[8..]);
    (i64::from_le_bytes(lo), i64::from_le_bytes(hi))
}

#[derive(Clone, Copy)]
struct Xmm(__m128i);

impl Xmm {
    #[inline(always)]
    fn seed(_proof: AesNi, seed: Option<&EdgeSeed>) -> __m128i {
        // SAFETY: an `AesNi` proof exists, so the CPU has SSE2 and above.
        unsafe {
            match seed {
                Some(seed) => {
                    let (lo, hi) = seed_words(seed);
                    _mm_set_epi64x(hi, lo)
                }
                None => _mm_setzero_si128(),
            }
        }
    }

    #[inline(always)]
    fn lanes_of(_proof: AesNi, block: __m128i) -> (u64, u64) {
        // SAFETY: an `AesNi` proof exists, so the CPU has SSE4.1 (`pextrq`).
        unsafe {
            (
                _mm_cvtsi128_si64(block) as u64,
                _mm_extract_epi64::<1>(block) as u64,
            )
        }
    }
}

impl AesVec for Xmm {
    type Proof = AesNi;
    const KEYS: usize = 1;

    #[inline(always)]
    fn splat(_proof: AesNi, lo: u64, hi: u64) -> Self {
        // SAFETY: an `AesNi` proof exists, so the CPU has SSE2.
        Self(unsafe { _mm_set_epi64x(hi as i64, lo as i64) })
    }

    #[inline(always)]
    fn load_seeds(proof: AesNi, seeds: &[EdgeSeed]) -> Self {
        Self(Self::seed(proof, seeds.first()))
    }

    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        // SAFETY: an `Xmm` exists only under an `AesNi` proof (SSE2 present).
        Self(unsafe { _mm_xor_si128(self.0, other.0) })
    }

    #[inline(always)]
    fn aesenc(self, round_key: Self) -> Self {
        // SAFETY: an `Xmm` exists only under an `AesNi` proof (AES-NI present).
        Self(unsafe { _mm_aesenc_si128(self.0, round_key.0) })
    }

    #[inline(always)]
    fn aesenclast(self, round_key: Self) -> Self {
        // SAFETY: an `Xmm` exists only under an `AesNi` proof (AES-NI present).
        Self(unsafe { _mm_aesenclast_si128(self.0, round_key.0) })
    }

    #[inline(always)]
    fn shuffle_bytes(self, mask: Self) -> Self {
        // SAFETY: an `Xmm` exists only under an `AesNi` proof (SSSE3 present with SSE4.1).
        Self(unsafe { _mm_shuffle_epi8(self.0, mask.0) })
    }

    #[inline(always)]
    fn shift_one_word(self) -> Self {
        // SAFETY: an `Xmm` exists only under an `AesNi` proof (SSE2 present).
        Self(unsafe { _mm_slli_si128::<4>(self.0) })
    }

    #[inline(always)]
    fn shift_two_words(self) -> Self {
        // SAFETY: an `Xmm` exists only under an `AesNi` proof (SSE2 present).
        Self(unsafe { _mm_slli_si128::<8>(self.0) })
    }

    #[inline(always)]
    fn lanes(self, _j: usize) -> (u64, u64) {
        Self::lanes_of(AesNi(()), self.0)
    }

    #[inline(always)]
    fn load(_proof: AesNi, lanes: &[u64]) -> Self {
        let lanes = &lanes[..2];
        // SAFETY: `lanes` holds 16 readable bytes (sliced above); the load is unaligned; an
        // `AesNi` proof means SSE2 is present.
        Self(unsafe { _mm_loadu_si128(lanes.as_ptr().cast()) })
    }

    #[inline(always)]
    fn store(self, lanes: &mut [u64]) {
        let lanes = &mut lanes[..2];
        // SAFETY: `lanes` holds 16 writable bytes (sliced above); the store is unaligned; an
        // `Xmm` exists only under an `AesNi` proof (SSE2 present).
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), self.0) }
    }
}

#[derive(Clone, Copy)]
struct Ymm(__m256i);

impl AesVec for Ymm {
    type Proof = Vaes;
    const KEYS: usize = 2;

    #[inline(always)]
    fn splat(_proof: Vaes, lo: u64, hi: u64) -> Self {
        let (lo, hi) = (lo as i64, hi as i64);
        // SAFETY: a `Vaes` proof exists, so the CPU has AVX2.
        Self(unsafe { _mm256_set_epi64x(hi, lo, hi, lo) })
    }

    #[inline(always)]
    fn load_seeds(_proof: Vaes, seeds: &[EdgeSeed]) -> Self {
        let aes_ni = AesNi(());
        let lo = Xmm::seed(aes_ni, seeds.first());
        let hi = Xmm::seed(aes_ni, seeds.get(1));
        // SAFETY: a `Vaes` proof exists, so the CPU has AVX2.
        Self(unsafe { _mm256_set_m128i(hi, lo) })
    }

    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (AVX2 present).
        Self(unsafe { _mm256_xor_si256(self.0, other.0) })
    }

    #[inline(always)]
    fn aesenc(self, round_key: Self) -> Self {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (VAES present).
        Self(unsafe { _mm256_aesenc_epi128(self.0, round_key.0) })
    }

    #[inline(always)]
    fn aesenclast(self, round_key: Self) -> Self {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (VAES present).
        Self(unsafe { _mm256_aesenclast_epi128(self.0, round_key.0) })
    }

    #[inline(always)]
    fn shuffle_bytes(self, mask: Self) -> Self {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (AVX2 present).
        Self(unsafe { _mm256_shuffle_epi8(self.0, mask.0) })
    }

    #[inline(always)]
    fn shift_one_word(self) -> Self {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (AVX2 present).
        Self(unsafe { _mm256_slli_si256::<4>(self.0) })
    }

    #[inline(always)]
    fn shift_two_words(self) -> Self {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (AVX2 present).
        Self(unsafe { _mm256_slli_si256::<8>(self.0) })
    }

    #[inline(always)]
    fn lanes(self, j: usize) -> (u64, u64) {
        // SAFETY: a `Ymm` exists only under a `Vaes` proof (AVX2 present).
        let block = unsafe {
            if j == 0 {
                _mm256_castsi256_si128(self.0)
            } else {
                _mm256_extracti128_si256::<1>(self.0)
            }
        };
        Xmm::lanes_of(AesNi(()), block)
    }

    #[inline(always)]
    fn load(_proof: Vaes, lanes: &[u64]) -> Self {
        let lanes = &lanes[..4];
        // SAFETY: `lanes` holds 32 readable bytes (sliced above); the load is unaligned; a
        // `Vaes` proof means AVX2 is present.
        Self(unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) })
    }

    #[inline(always)]
    fn store(self, lanes: &mut [u64]) {
        let lanes = &mut lanes[..4];
        // SAFETY: `lanes` holds 32 writable bytes (sliced above); the store is unaligned; a
        // `Ymm` exists only under a `Vaes` proof (AVX2 present).
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), self.0) }
    }
}

#[derive(Clone, Copy)]
struct Zmm(__m512i);

impl AesVec for Zmm {
    type Proof = Vaes512;
    const KEYS: usize = 4;

    #[inline(always)]
    fn splat(_proof: Vaes512, lo: u64, hi: u64) -> Self {
        let (lo, hi) = (lo as i64, hi as i64);
        // SAFETY: a `Vaes512` proof exists, so the CPU has AVX-512F.
        Self(unsafe { _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo) })
    }

    #[inline(always)]
    fn load_seeds(_proof: Vaes512, seeds: &[EdgeSeed]) -> Self {
        let vaes = Vaes(());
        let low = Ymm::load_seeds(vaes, seeds);
        let high = Ymm::load_seeds(vaes, seeds.get(2..).unwrap_or_default());
        // SAFETY: a `Vaes512` proof exists, so the CPU has AVX-512F.
        Self(unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low.0), high.0) })
    }

    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (AVX-512F present).
        Self(unsafe { _mm512_xor_si512(self.0, other.0) })
    }

    #[inline(always)]
    fn xor3(self, a: Self, b: Self) -> Self {
        // 0x96 is the truth table of a ^ b ^ c: one instruction instead of two.
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (AVX-512F present).
        Self(unsafe { _mm512_ternarylogic_epi64::<0x96>(self.0, a.0, b.0) })
    }

    #[inline(always)]
    fn aesenc(self, round_key: Self) -> Self {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (VAES, AVX-512F present).
        Self(unsafe { _mm512_aesenc_epi128(self.0, round_key.0) })
    }

    #[inline(always)]
    fn aesenclast(self, round_key: Self) -> Self {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (VAES, AVX-512F present).
        Self(unsafe { _mm512_aesenclast_epi128(self.0, round_key.0) })
    }

    #[inline(always)]
    fn shuffle_bytes(self, mask: Self) -> Self {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (AVX-512BW present).
        Self(unsafe { _mm512_shuffle_epi8(self.0, mask.0) })
    }

    #[inline(always)]
    fn shift_one_word(self) -> Self {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (AVX-512BW present).
        Self(unsafe { _mm512_bslli_epi128::<4>(self.0) })
    }

    #[inline(always)]
    fn shift_two_words(self) -> Self {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (AVX-512BW present).
        Self(unsafe { _mm512_bslli_epi128::<8>(self.0) })
    }

    #[inline(always)]
    fn lanes(self, j: usize) -> (u64, u64) {
        // SAFETY: a `Zmm` exists only under a `Vaes512` proof (AVX-512F present).
        let block = unsafe {
            match j {
                0 => _mm512_castsi512_si128(self.0),
                1 => _mm512_extracti32x4_epi32::<1>(self.0),
                2 => _mm512_extracti32x4_epi32::<2>(self.0),
                _ => _mm512_extracti32x4_epi32::<3>(self.0),
            }
        };
        Xmm::lanes_of(AesNi(()), block)
    }

    #[inline(always)]
    fn load(_proof: Vaes512, lanes: &[u64]) -> Self {
        let lanes = &lanes[..8];
        // SAFETY: `lanes` holds 64 readable bytes (sliced above); the load is unaligned; a
        // `Vaes512` proof means AVX-512F is present.
        Self(unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) })
    }

    #[inline(always)]
    fn store(self, lanes: &mut [u64]) {
        let lanes = &mut lanes[..8];
        // SAFETY: `lanes` holds 64 writable bytes (sliced above); the store is unaligned; a
        // `Zmm` exists only under a `Vaes512` proof (AVX-512F present).
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), self.0) }
    }
}

/// The round constants of the AES-128 key schedule.
const RCON: [u64; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];

/// `pshufb` mask that puts `RotWord(w3)` (bytes 13, 14, 15, 12) into every column.
const ROT_WORD_3: u64 = u64::from_le_bytes([13, 14, 15, 12, 13, 14, 15, 12]);

/// Round key `i + 1` from round key `key` = `i`, with `rcon` the splatted round constant of
/// `i` and `rot` the splatted [`ROT_WORD_3`] mask.
#[inline(always)]
fn next_round_key<V: AesVec>(key: V, rot: V, rcon: V) -> V {
    let mix = key.shuffle_bytes(rot).aesenclast(rcon);
    // w0' = w0 ^ t, w1' = w0 ^ w1 ^ t, ...: a prefix xor over the columns, plus t.
    let key = key.xor(key.shift_one_word());
    key.xor3(key.shift_two_words(), mix)
}

/// The round constant `RCON[i]` in the first byte of every column.
#[inline(always)]
fn rcon<V: AesVec>(proof: V::Proof, i: usize) -> V {
    let word = RCON[i] | RCON[i] << 32;
    V::splat(proof, word, word)
}

/// AES-128 of `NB` counter blocks under each of the `G · KEYS` keys in `keys`, expanding the
/// key schedules alongside the rounds. Everything stays in registers as long as `G · (NB + 1)`
/// vectors fit.
#[inline(always)]
fn encrypt_group<V: AesVec, const G: usize, const NB: usize>(
    proof: V::Proof,
    mut keys: [V; G],
    counters: &[V; NB],
) -> [[V; NB]; G] {
    let rot = V::splat(proof, ROT_WORD_3, ROT_WORD_3);
    let mut state = [*counters; G];
    for (blocks, key) in state.iter_mut().zip(&keys) {
        for block in blocks {
            *block = block.xor(*key);
        }
    }
    // The ten rounds are written out so that every round constant is a compile-time value.
    macro_rules! round {
        ($i:literal, $op:ident) => {
            let rcon = rcon::<V>(proof, $i);
            for (key, blocks) in keys.iter_mut().zip(&mut state) {
                *key = next_round_key(*key, rot, rcon);
                for block in blocks {
                    *block = block.$op(*key);
                }
            }
        };
    }
    round!(0, aesenc);
    round!(1, aesenc);
    round!(2, aesenc);
    round!(3, aesenc);
    round!(4, aesenc);
    round!(5, aesenc);
    round!(6, aesenc);
    round!(7, aesenc);
    round!(8, aesenc);
    round!(9, aesenclast);
    state
}

/// The many-edges shape: lanes of `seeds[e]` for `round` into `out[e · lanes ..][.. lanes]`.
///
/// `NB` is `ceil(lanes / 2)`, the counter blocks per key; `out.len() == seeds.len() · lanes`.
#[inline(always)]
fn fill_edges_with<V: AesVec, const G: usize, const NB: usize>(
    proof: V::Proof,
    seeds: &[EdgeSeed],
    round: u32,
    lanes: usize,
    out: &mut [u64],
) {
    // Counter block b of the round: `round as u64 BE || b as u64 BE`, as two LE words.
    // Plain loops rather than `array::from_fn`: its closure would not inherit the kernel's
    // target features, and the intrinsics inside it would not be inlined.
    let mut counters = [V::splat(proof, 0, 0); NB];
    for (b, counter) in counters.iter_mut().enumerate() {
        *counter = V::splat(proof, u64::from(round).to_be(), (b as u64).to_be());
    }
    let per_group = G * V::KEYS;
    for (seeds, out) in seeds
        .chunks(per_group)
        .zip(out.chunks_mut(per_group * lanes))
    {
        let mut keys = [counters[0]; G];
        for (g, key) in keys.iter_mut().enumerate() {
            *key = V::load_seeds(proof, seeds.get(g * V::KEYS..).unwrap_or_default());
        }
        let state = encrypt_group::<V, G, NB>(proof, keys, &counters);
        let mut outputs = out.chunks_exact_mut(lanes);
        'group: for blocks in &state {
            for j in 0..V::KEYS {
                let Some(key_out) = outputs.next() else {
                    break 'group;
                };
                for (pair, block) in key_out.chunks_mut(2).zip(blocks) {
                    let (lo, hi) = block.lanes(j);
                    pair[0] = lo;
                    if let Some(second) = pair.get_mut(1) {
                        *second = hi;
                    }
                }
            }
        }
    }
}

/// AES-128 of the first `G · KEYS` counter blocks in `counters` (two words each) under the
/// expanded `round_keys`, into `keystream`. A function rather than a closure: closures do not
/// inherit the kernel's target features, so the intrinsics inside would not be inlined.
#[inline(always)]
fn encrypt_counters<V: AesVec, const G: usize>(
    proof: V::Proof,
    round_keys: &[V; 11],
    counters: &[u64],
    keystream: &mut [u64],
) {
    let mut state = [round_keys[0]; G];
    for (g, block) in state.iter_mut().enumerate() {
        *block = V::load(proof, &counters[g * 2 * V::KEYS..]).xor(round_keys[0]);
    }
    for round_key in &round_keys[1..10] {
        for block in &mut state {
            *block = block.aesenc(*round_key);
        }
    }
    for (g, block) in state.iter().enumerate() {
        block
            .aesenclast(round_keys[10])
            .store(&mut keystream[g * 2 * V::KEYS..]);
    }
}

/// Counter blocks in flight in the one-edge kernels: `G · KEYS` of them, at least the 16
/// blocks of one 32-lane key.
const ROUNDS_CAPACITY: usize = 32;

/// The one-edge shape: the key of `seed` for `rounds[i]` into `out[i · stride ..][.. lanes]`.
///
/// The key is expanded once (with AES-NI) and each round key broadcast to every block of a
/// register; then the counter blocks of as many rounds as fit in `G` registers are encrypted
/// together. The keystream passes through a stack buffer that is wiped at the end.
#[inline(always)]
fn fill_rounds_with<V: AesVec, const G: usize>(
    proof: V::Proof,
    seed: &EdgeSeed,
    rounds: &[u32],
    lanes: usize,
    out: &mut [u64],
    stride: usize,
) {
    let capacity = G * V::KEYS;
    debug_assert!((crate::MAX_LANES / 2..=ROUNDS_CAPACITY).contains(&capacity));
    let aes_ni = AesNi(());
    let mut key = Xmm::load_seeds(aes_ni, core::slice::from_ref(seed));
    let mut round_keys = [V::splat(proof, 0, 0); 11];
    for (i, round_key) in round_keys.iter_mut().enumerate() {
        if i > 0 {
            key = next_round_key(
                key,
                Xmm::splat(aes_ni, ROT_WORD_3, ROT_WORD_3),
                rcon(aes_ni, i - 1),
            );
        }
        let (lo, hi) = key.lanes(0);
        *round_key = V::splat(proof, lo, hi);
    }
    let blocks_per_round = lanes.div_ceil(2);
    let rounds_per_chunk = capacity / blocks_per_round;
    let mut counters = [0u64; 2 * ROUNDS_CAPACITY];
    let mut keystream = [0u64; 2 * ROUNDS_CAPACITY];
    if blocks_per_round == 1 {
        // One block per round (one or two lanes), the common case: the second counter word
        // (block 0) stays zero, and the lanes are copied without a variable-length copy.
        for (chunk_index, chunk) in rounds.chunks(rounds_per_chunk).enumerate() {
            for (i, round) in chunk.iter().enumerate() {
                counters[2 * i] = u64::from(*round).to_be();
            }
            encrypt_counters::<V, G>(proof, &round_keys, &counters, &mut keystream);
            let first = chunk_index * rounds_per_chunk;
            for i in 0..chunk.len() {
                let row = (first + i) * stride;
                out[row] = keystream[2 * i];
                if lanes == 2 {
                    out[row + 1] = keystream[2 * i + 1];
                }
            }
        }
    } else {
        for (chunk_index, chunk) in rounds.chunks(rounds_per_chunk).enumerate() {
            for (round, blocks) in chunk
                .iter()
                .zip(counters.chunks_exact_mut(2 * blocks_per_round))
            {
                for (b, block) in blocks.chunks_exact_mut(2).enumerate() {
                    // Counter block `round BE || b BE`, as two little-endian words.
                    block[0] = u64::from(*round).to_be();
                    block[1] = (b as u64).to_be();
                }
            }
            encrypt_counters::<V, G>(proof, &round_keys, &counters, &mut keystream);
            for (i, words) in keystream
                .chunks_exact(2 * blocks_per_round)
                .take(chunk.len())
                .enumerate()
            {
                let row = (chunk_index * rounds_per_chunk + i) * stride;
                out[row..row + lanes].copy_from_slice(&words[..lanes]);
            }
        }
    }
    // The buffer held keystream, i.e. key material.
    keystream.zeroize();
}

/// Calls `$kernel::<NB>` with the number of counter blocks as a constant, so that each block
/// count gets its own fully unrolled kernel.
macro_rules! with_block_count {
    ($kernel:ident, $blocks:expr, $($arg:expr),*) => {
        match $blocks {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            8 => $kernel::<8>($($arg),*),
            9 => $kernel::<9>($($arg),*),
            10 => $kernel::<10>($($arg),*),
            11 => $kernel::<11>($($arg),*),
            12 => $kernel::<12>($($arg),*),
            13 => $kernel::<13>($($arg),*),
            14 => $kernel::<14>($($arg),*),
            15 => $kernel::<15>($($arg),*),
            _ => $kernel::<16>($($arg),*),
        }
    };
}

/// Keys interleaved per group: enough independent work to cover the `aesenc` latency
/// (see `bench/README.md` for the measurements behind these numbers).
const AES_NI_GROUP: usize = 8;
const VAES_GROUP: usize = 6;
const VAES512_GROUP: usize = 4;

#[target_feature(enable = "aes,sse4.1")]
fn fill_edges_aes_ni<const NB: usize>(
    proof: AesNi,
    seeds: &[EdgeSeed],
    round: u32,
    lanes: usize,
    out: &mut [u64],
) {
    fill_edges_with::<Xmm, AES_NI_GROUP, NB>(proof, seeds, round, lanes, out);
}

#[target_feature(enable = "aes,sse4.1,avx2,vaes")]
fn fill_edges_vaes<const NB: usize>(
    proof: Vaes,
    seeds: &[EdgeSeed],
    round: u32,
    lanes: usize,
    out: &mut [u64],
) {
    fill_edges_with::<Ymm, VAES_GROUP, NB>(proof, seeds, round, lanes, out);
}

#[target_feature(enable = "aes,sse4.1,avx2,vaes,avx512f,avx512bw")]
fn fill_edges_vaes512<const NB: usize>(
    proof: Vaes512,
    seeds: &[EdgeSeed],
    round: u32,
    lanes: usize,
    out: &mut [u64],
) {
    fill_edges_with::<Zmm, VAES512_GROUP, NB>(proof, seeds, round, lanes, out);
}

#[target_feature(enable = "aes,sse4.1,avx2,vaes")]
fn fill_rounds_vaes(
    proof: Vaes,
    seed: &EdgeSeed,
    rounds: &[u32],
    lanes: usize,
    out: &mut [u64],
    stride: usize,
) {
    fill_rounds_with::<Ymm, 8>(proof, seed, rounds, lanes, out, stride);
}

#[target_feature(enable = "aes,sse4.1,avx2,vaes,avx512f,avx512bw")]
fn fill_rounds_vaes512(
    proof: Vaes512,
    seed: &EdgeSeed,
    rounds: &[u32],
    lanes: usize,
    out: &mut [u64],
    stride: usize,
) {
    fill_rounds_with::<Zmm, 8>(proof, seed, rounds, lanes, out, stride);
}

/// The caller's contract for every `fill_rounds`: `lanes` in 1..=32 and a row for every round.
fn check_rounds_shape(rounds: &[u32], lanes: usize, out: &[u64], stride: usize) {
    debug_assert!((1..=crate::MAX_LANES).contains(&lanes) && stride >= lanes);
    debug_assert!(rounds.is_empty() || out.len() >= (rounds.len() - 1) * stride + lanes);
}

/// The caller's contract for every `fill_edges`: `lanes` in 1..=32 and one output row per seed.
fn check_shape(seeds: &[EdgeSeed], lanes: usize, out: &[u64]) -> usize {
    debug_assert!((1..=crate::MAX_LANES).contains(&lanes));
    debug_assert_eq!(out.len(), seeds.len() * lanes);
    lanes.div_ceil(2)
}

impl AesNi {
    /// The many-edges shape on 128-bit AES-NI, 8 keys interleaved.
    pub(super) fn fill_edges(self, seeds: &[EdgeSeed], round: u32, lanes: usize, out: &mut [u64]) {
        let blocks = check_shape(seeds, lanes, out);
        // SAFETY: `self` proves the CPU has the kernel's target features (AES-NI, SSE4.1).
        unsafe { with_block_count!(fill_edges_aes_ni, blocks, self, seeds, round, lanes, out) }
    }
}

impl Vaes {
    /// The many-edges shape on 256-bit VAES, 2 keys per register.
    pub(super) fn fill_edges(self, seeds: &[EdgeSeed], round: u32, lanes: usize, out: &mut [u64]) {
        let blocks = check_shape(seeds, lanes, out);
        // SAFETY: `self` proves the CPU has the kernel's target features (AES-NI, AVX2, VAES).
        unsafe { with_block_count!(fill_edges_vaes, blocks, self, seeds, round, lanes, out) }
    }

    /// The one-edge shape on 256-bit VAES: `rounds[i]` into `out[i · stride ..][.. lanes]`.
    pub(super) fn fill_rounds(
        self,
        seed: &EdgeSeed,
        rounds: &[u32],
        lanes: usize,
        out: &mut [u64],
        stride: usize,
    ) {
        check_rounds_shape(rounds, lanes, out, stride);
        // SAFETY: `self` proves the CPU has the kernel's target features (AES-NI, AVX2, VAES).
        unsafe { fill_rounds_vaes(self, seed, rounds, lanes, out, stride) }
    }
}

impl Vaes512 {
    /// The many-edges shape on 512-bit VAES, 4 keys per register.
    pub(super) fn fill_edges(self, seeds: &[EdgeSeed], round: u32, lanes: usize, out: &mut [u64]) {
        let blocks = check_shape(seeds, lanes, out);
        // SAFETY: `self` proves the CPU has the kernel's target features (VAES, AVX-512F/BW).
        unsafe { with_block_count!(fill_edges_vaes512, blocks, self, seeds, round, lanes, out) }
    }

    /// The one-edge shape on 512-bit VAES: `rounds[i]` into `out[i · stride ..][.. lanes]`.
    pub(super) fn fill_rounds(
        self,
        seed: &EdgeSeed,
        rounds: &[u32],
        lanes: usize,
        out: &mut [u64],
        stride: usize,
    ) {
        check_rounds_shape(rounds, lanes, out, stride);
        // SAFETY: `self` proves the CPU has the kernel's target features (VAES, AVX-512F/BW).
        unsafe { fill_rounds_vaes512(self, seed, rounds, lanes, out, stride) }
    }
}
