//! Edge keys: AES-128-CTR keystream lanes per (edge seed, round) (DESIGN §2, normative).
//!
//! The counter block of round `r`, block `b` is `r as u64 BE || b as u64 BE`, i.e. CTR with a
//! 128-bit big-endian counter starting at `r << 64`. Lane `l` is keystream bytes `[8l, 8l + 8)`
//! read as a little-endian u64, so `L` lanes need `ceil(L / 2)` blocks.
//!
//! [`fill_lanes`] computes one key with the `ctr` crate: the reference, and plenty for a
//! gateway that needs a handful of keys per round. A provider or a simulator needs millions per
//! second; [`Keystream`] fills whole batches, choosing the strategy by shape:
//!
//! - **many edges × one round** ([`Keystream::fill_edges`]): a multi-key kernel encrypts 8 to 16
//!   keys at once with every key schedule computed in registers, on AES-NI, or on VAES with two
//!   (256-bit) or four (512-bit) keys per register;
//! - **one edge × many rounds** ([`Keystream::fill_rounds`]): the key is expanded once and all
//!   counter blocks go through `aes::Aes128Enc`'s parallel-block path.
//!
//! [`Keystream::fill_grid`] takes seeds × rounds and picks between the two. Every backend gives
//! the same lanes as `ctr::Ctr128BE<aes::Aes128>`; the property tests below check each one the
//! machine supports.

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

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

/// An implementation of the batch kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// The `aes` crate: one key expansion per edge (it uses AES-NI itself when present).
    Portable,
    /// Hand-written AES-NI kernel: 8 keys interleaved in 128-bit registers.
    AesNi,
    /// Hand-written VAES kernel on 256-bit registers, 2 keys per register (AVX2 machines).
    Vaes,
    /// Hand-written VAES kernel on 512-bit registers, 4 keys per register (AVX-512 machines).
    Vaes512,
}

impl Backend {
    /// Every backend, slowest first.
    pub const ALL: [Backend; 4] = [
        Backend::Portable,
        Backend::AesNi,
        Backend::Vaes,
        Backend::Vaes512,
    ];

    /// The name used on the command line and in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::AesNi => "aes-ni",
            Backend::Vaes => "vaes",
            Backend::Vaes512 => "vaes512",
        }
    }

    /// Whether this CPU can run the backend (detected once per process).
    pub fn is_available(self) -> bool {
        Engine::for_backend(self).is_some()
    }

    /// The backends this CPU can run, slowest first.
    pub fn available() -> impl Iterator<Item = Backend> {
        Self::ALL.into_iter().filter(|b| b.is_available())
    }

    /// The fastest backend this CPU can run (detected once per process).
    pub fn best() -> Backend {
        static BEST: OnceLock<Backend> = OnceLock::new();
        *BEST.get_or_init(|| Self::available().last().unwrap_or(Backend::Portable))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = KeystreamError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == text)
            .ok_or_else(|| KeystreamError::UnknownBackend(text.to_owned()))
    }
}

/// Why a batch could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeystreamError {
    /// The CPU lacks the instructions of the requested backend.
    #[error("the {0} keystream backend needs CPU features this machine lacks")]
    Unavailable(Backend),
    /// A backend name that does not exist.
    #[error("unknown keystream backend {0:?} (expected portable, aes-ni, vaes or vaes512)")]
    UnknownBackend(String),
    /// A lane count outside 1..=32.
    #[error("an edge key has 1..={MAX_LANES} lanes, not {0}")]
    Lanes(usize),
    /// The output slice does not hold exactly one key per (seed, round).
    #[error("the output holds {got} lanes, the batch needs {needed}")]
    OutputLength { needed: usize, got: usize },
}

/// A backend together with the proof that this CPU can run it.
#[derive(Debug, Clone, Copy)]
enum Engine {
    Portable,
    #[cfg(target_arch = "x86_64")]
    AesNi(x86::AesNi),
    #[cfg(target_arch = "x86_64")]
    Vaes(x86::Vaes),
    #[cfg(target_arch = "x86_64")]
    Vaes512(x86::Vaes512),
}

impl Engine {
    #[cfg(target_arch = "x86_64")]
    fn for_backend(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Portable => Some(Engine::Portable),
            Backend::AesNi => x86::AesNi::detect().map(Engine::AesNi),
            Backend::Vaes => x86::Vaes::detect().map(Engine::Vaes),
            Backend::Vaes512 => x86::Vaes512::detect().map(Engine::Vaes512),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn for_backend(backend: Backend) -> Option<Self> {
        (backend == Backend::Portable).then_some(Engine::Portable)
    }

    fn backend(self) -> Backend {
        match self {
            Engine::Portable => Backend::Portable,
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(_) => Backend::AesNi,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(_) => Backend::Vaes,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(_) => Backend::Vaes512,
        }
    }
}

/// Below this many edges, [`Keystream::fill_grid`] expands each key once and runs its rounds
/// through the parallel-block path instead of the multi-key kernel.
pub const MULTI_KEY_MIN_EDGES: usize = 8;

/// Fills batches of edge keys with one backend.
///
/// Output layout: one row of `lanes` u64 per key, rows in the order the method documents.
/// The lanes are key material: callers that keep them should zeroize them when done.
#[derive(Debug, Clone, Copy)]
pub struct Keystream {
    engine: Engine,
}

impl Default for Keystream {
    fn default() -> Self {
        Self::new()
    }
}

fn check_lanes(lanes: usize) -> Result<(), KeystreamError> {
    if (1..=MAX_LANES).contains(&lanes) {
        Ok(())
    } else {
        Err(KeystreamError::Lanes(lanes))
    }
}

fn check_output(needed: usize, out: &[u64]) -> Result<(), KeystreamError> {
    if out.len() == needed {
        Ok(())
    } else {
        Err(KeystreamError::OutputLength {
            needed,
            got: out.len(),
        })
    }
}

impl Keystream {
    /// The fastest backend this CPU supports.
    pub fn new() -> Self {
        Self::with_backend(Backend::best()).unwrap_or(Self {
            engine: Engine::Portable,
        })
    }

    /// A specific backend, e.g. to test or benchmark it; an error if this CPU cannot run it.
    pub fn with_backend(backend: Backend) -> Result<Self, KeystreamError> {
        Engine::for_backend(backend)
            .map(|engine| Self { engine })
            .ok_or(KeystreamError::Unavailable(backend))
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// Many edges × one round: the key of `seeds[e]` for `round` goes to
    /// `out[e · lanes .. (e + 1) · lanes]`, so `out` holds `seeds.len() · lanes` u64.
    pub fn fill_edges(
        &self,
        seeds: &[EdgeSeed],
        round: u32,
        lanes: usize,
        out: &mut [u64],
    ) -> Result<(), KeystreamError> {
        check_lanes(lanes)?;
        check_output(seeds.len() * lanes, out)?;
        match self.engine {
            Engine::Portable => portable::fill_edges(seeds, round, lanes, out),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(kernel) => kernel.fill_edges(seeds, round, lanes, out),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(kernel) => kernel.fill_edges(seeds, round, lanes, out),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(kernel) => kernel.fill_edges(seeds, round, lanes, out),
        }
        Ok(())
    }

    /// One edge × many rounds: the key of `seed` for `rounds[i]` goes to
    /// `out[i · lanes .. (i + 1) · lanes]`. The key is expanded once.
    pub fn fill_rounds(
        &self,
        seed: &EdgeSeed,
        rounds: &[u32],
        lanes: usize,
        out: &mut [u64],
    ) -> Result<(), KeystreamError> {
        check_lanes(lanes)?;
        check_output(rounds.len() * lanes, out)?;
        self.rounds_strided(seed, rounds, lanes, out, lanes);
        Ok(())
    }

    /// `rounds[i]` into `out[i · stride ..][.. lanes]`; the shape is already checked.
    fn rounds_strided(
        &self,
        seed: &EdgeSeed,
        rounds: &[u32],
        lanes: usize,
        out: &mut [u64],
        stride: usize,
    ) {
        match self.engine {
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(kernel) => kernel.fill_rounds(seed, rounds, lanes, out, stride),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(kernel) => kernel.fill_rounds(seed, rounds, lanes, out, stride),
            // AES-NI with one key is what the `aes` crate's parallel blocks already do.
            _ => portable::fill_rounds_strided(seed, rounds, lanes, out, stride),
        }
    }

    /// Every seed × every round: the key of `seeds[e]` for `rounds[r]` goes to
    /// `out[(r · seeds.len() + e) · lanes ..][.. lanes]` (round-major, as a round's
    /// superpositions need them).
    ///
    /// With at least [`MULTI_KEY_MIN_EDGES`] seeds each round is one multi-key batch; with
    /// fewer, each seed is expanded once and runs all its rounds.
    pub fn fill_grid(
        &self,
        seeds: &[EdgeSeed],
        rounds: &[u32],
        lanes: usize,
        out: &mut [u64],
    ) -> Result<(), KeystreamError> {
        check_lanes(lanes)?;
        let row = seeds.len() * lanes;
        check_output(rounds.len() * row, out)?;
        if out.is_empty() {
            return Ok(());
        }
        if seeds.len() >= MULTI_KEY_MIN_EDGES {
            for (round, out) in rounds.iter().zip(out.chunks_exact_mut(row)) {
                self.fill_edges(seeds, *round, lanes, out)?;
            }
        } else {
            for (e, seed) in seeds.iter().enumerate() {
                let out = &mut out[e * lanes..];
                // The last round's row ends `lanes` after its start, not a whole row later.
                let strided = &mut out[..(rounds.len() - 1) * row + lanes];
                self.rounds_strided(seed, rounds, lanes, strided, row);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{edge_seed, master_key};
    use proptest::prelude::*;

    const DESIGN_VECTORS: &str = include_str!("../../../data/vectors/design-s8.txt");

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

    /// The lanes of `seed` for `round` computed straight from `ctr::Ctr128BE<aes::Aes128>`,
    /// independently of every code path above.
    fn reference(seed: &[u8; 16], round: u32, lanes: usize) -> Vec<u64> {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&u64::from(round).to_be_bytes());
        let mut bytes = vec![0u8; lanes.div_ceil(2) * 16];
        ctr::Ctr128BE::<aes::Aes128>::new(seed.into(), &iv.into()).apply_keystream(&mut bytes);
        bytes
            .chunks_exact(8)
            .take(lanes)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn available() -> Vec<Keystream> {
        Backend::available()
            .map(|b| Keystream::with_backend(b).unwrap())
            .collect()
    }

    fn round_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), Just(u32::MAX), Just(1u32), any::<u32>()]
    }

    fn seeds_strategy(max: usize) -> impl Strategy<Value = Vec<[u8; 16]>> {
        proptest::collection::vec(any::<[u8; 16]>(), 0..=max)
    }

    /// Every backend this CPU has, forced, on many edges × one round.
    fn check_edges(raw: &[[u8; 16]], round: u32, lanes: usize) -> Result<(), TestCaseError> {
        let seeds: Vec<EdgeSeed> = raw.iter().map(|s| EdgeSeed::from_bytes(*s)).collect();
        let expected: Vec<u64> = raw
            .iter()
            .flat_map(|s| reference(s, round, lanes))
            .collect();
        for keystream in available() {
            let mut out = vec![0u64; seeds.len() * lanes];
            keystream
                .fill_edges(&seeds, round, lanes, &mut out)
                .unwrap();
            prop_assert_eq!(&out, &expected, "backend {}", keystream.backend());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_backend_matches_ctr_on_many_edges(
            raw in seeds_strategy(40),
            round in round_strategy(),
            lanes in 1usize..=MAX_LANES,
        ) {
            check_edges(&raw, round, lanes)?;
        }

        #[test]
        fn every_backend_matches_ctr_on_one_edge_many_rounds(
            seed in any::<[u8; 16]>(),
            rounds in proptest::collection::vec(round_strategy(), 0..=200),
            lanes in 1usize..=MAX_LANES,
        ) {
            let expected: Vec<u64> =
                rounds.iter().flat_map(|r| reference(&seed, *r, lanes)).collect();
            for keystream in available() {
                let mut out = vec![0u64; rounds.len() * lanes];
                keystream
                    .fill_rounds(&EdgeSeed::from_bytes(seed), &rounds, lanes, &mut out)
                    .unwrap();
                prop_assert_eq!(&out, &expected, "backend {}", keystream.backend());
            }
        }

        #[test]
        fn every_backend_matches_ctr_on_a_grid(
            raw in seeds_strategy(20),
            rounds in proptest::collection::vec(round_strategy(), 0..=5),
            lanes in 1usize..=MAX_LANES,
        ) {
            let seeds: Vec<EdgeSeed> = raw.iter().map(|s| EdgeSeed::from_bytes(*s)).collect();
            let expected: Vec<u64> = rounds
                .iter()
                .flat_map(|r| raw.iter().flat_map(move |s| reference(s, *r, lanes)))
                .collect();
            for keystream in available() {
                let mut out = vec![0u64; rounds.len() * seeds.len() * lanes];
                keystream.fill_grid(&seeds, &rounds, lanes, &mut out).unwrap();
                prop_assert_eq!(&out, &expected, "backend {}", keystream.backend());
            }
        }
    }

    #[test]
    fn every_backend_matches_ctr_at_the_edges_of_the_shapes() {
        // Rounds 0 and u32::MAX, every lane count, and batch sizes around the interleave
        // widths (8 keys for AES-NI, 12 for VAES, 16 for VAES-512) and their tails.
        for count in [1, 2, 3, 7, 8, 9, 12, 13, 16, 17, 33] {
            let raw: Vec<[u8; 16]> = (0..count)
                .map(|i| std::array::from_fn(|b| (i * 31 + b * 7 + 1) as u8))
                .collect();
            for lanes in 1..=MAX_LANES {
                for round in [0, u32::MAX] {
                    check_edges(&raw, round, lanes).unwrap();
                }
            }
        }
    }

    #[test]
    fn every_backend_gives_the_design_vectors() {
        let seed = edge_seed(&master_key(42), 7, 3, 11);
        let rounds = [0, 1, 96];
        let expected: Vec<u64> = rounds.iter().flat_map(|r| expected_lanes(*r)).collect();
        let many: Vec<EdgeSeed> = (0..20).map(|_| seed.clone()).collect();
        for keystream in available() {
            let mut out = vec![0u64; 9];
            keystream.fill_rounds(&seed, &rounds, 3, &mut out).unwrap();
            assert_eq!(out, expected, "{} fill_rounds", keystream.backend());
            for (i, round) in rounds.iter().enumerate() {
                let mut out = vec![0u64; many.len() * 3];
                keystream.fill_edges(&many, *round, 3, &mut out).unwrap();
                for key in out.chunks_exact(3) {
                    assert_eq!(key, &expected[i * 3..i * 3 + 3], "{}", keystream.backend());
                }
            }
        }
    }

    #[test]
    fn backends_are_forced_or_refused_and_parse_by_name() {
        assert!(Backend::Portable.is_available());
        assert_eq!(Backend::available().last(), Some(Backend::best()));
        for backend in Backend::ALL {
            assert_eq!(backend.name().parse::<Backend>(), Ok(backend));
            match Keystream::with_backend(backend) {
                Ok(keystream) => assert_eq!(keystream.backend(), backend),
                Err(error) => {
                    assert!(!backend.is_available());
                    assert_eq!(error, KeystreamError::Unavailable(backend));
                }
            }
        }
        assert!(matches!(
            "sse".parse::<Backend>(),
            Err(KeystreamError::UnknownBackend(_))
        ));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let keystream = Keystream::new();
        let seeds = [EdgeSeed::from_bytes([1; 16])];
        let mut out = [0u64; 33];
        assert_eq!(
            keystream.fill_edges(&seeds, 1, 0, &mut out[..0]),
            Err(KeystreamError::Lanes(0))
        );
        assert_eq!(
            keystream.fill_edges(&seeds, 1, 33, &mut out),
            Err(KeystreamError::Lanes(33))
        );
        assert_eq!(
            keystream.fill_rounds(&seeds[0], &[1, 2], 2, &mut out[..3]),
            Err(KeystreamError::OutputLength { needed: 4, got: 3 })
        );
        assert_eq!(
            keystream.fill_grid(&seeds, &[1, 2], 2, &mut out[..5]),
            Err(KeystreamError::OutputLength { needed: 4, got: 5 })
        );
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
