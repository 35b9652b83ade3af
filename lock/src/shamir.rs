//! Shamir (t, n) secret sharing of the program lock key over GF(2^8).
//!
//! The arithmetic is `vsss-rs`'s `Gf256`: a maintained, audited implementation whose field
//! operations are constant-time (no log/exp tables indexed by secret bytes, which leak through
//! the cache on a meter's CPU). Each secret byte gets its own random polynomial of degree
//! t - 1; share i is the evaluation at x = i, so at most 255 shares exist. Any t shares
//! interpolate the secret; t - 1 shares are consistent with every secret equally.
//!
//! A share is `x || y_0 .. y_(len-1)`, wiped on drop, with a redacting `Debug`.

use std::fmt;

use chacha20::ChaCha20Rng;
use rand_core_010::{CryptoRng, SeedableRng};
use vsss_rs::Gf256;
use zeroize::Zeroizing;

/// Most shares GF(2^8) allows: x ranges over the non-zero field elements.
pub const MAX_SHARES: u8 = 255;

/// Why a split or a recovery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShamirError {
    /// t < 2: a single holder could open the lock alone.
    #[error("threshold t = {0} is below 2: one holder alone could open the lock")]
    ThresholdTooSmall(u8),
    /// t > n.
    #[error("threshold t = {t} exceeds the number of shares n = {n}")]
    ThresholdAboveShares {
        /// Threshold.
        t: u8,
        /// Share count.
        n: u8,
    },
    /// Nothing to share.
    #[error("the secret is empty")]
    EmptySecret,
    /// A share is malformed: too short, index 0, or a length different from the others.
    #[error("share is malformed")]
    BadShare,
    /// Two shares have the same index.
    #[error("two shares have the index {0}")]
    DuplicateIndex(u8),
    /// Fewer shares than the threshold.
    #[error("{given} shares given, {needed} needed")]
    NotEnoughShares {
        /// Shares given.
        given: usize,
        /// Threshold.
        needed: u8,
    },
    /// The sharing library refused (should not happen after the checks above).
    #[error("secret sharing failed: {0}")]
    Library(String),
}

/// One share: its index (the x coordinate, 1..=255) and one y byte per secret byte.
#[derive(Clone, PartialEq, Eq)]
pub struct Share(Zeroizing<Vec<u8>>);

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share(index {}, <redacted>)", self.index())
    }
}

impl Share {
    /// Wraps share bytes `x || y..`, checking the shape.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Result<Self, ShamirError> {
        if bytes.len() < 2 || bytes[0] == 0 {
            return Err(ShamirError::BadShare);
        }
        Ok(Self(bytes))
    }

    /// The share's index, its x coordinate.
    pub fn index(&self) -> u8 {
        self.0[0]
    }

    /// The bytes `x || y..`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Splits `secret` into `n` shares with indices 1..=n, any `t` of which recover it.
///
/// The polynomial coefficients come from a ChaCha20 stream seeded with 32 bytes of `rng`:
/// the sharing draws one word per coefficient (t per secret byte), and with the operating
/// system's generator each draw would be a system call. The stream's state is wiped on drop.
pub fn split(
    secret: &[u8],
    t: u8,
    n: u8,
    rng: &mut impl CryptoRng,
) -> Result<Vec<Share>, ShamirError> {
    if t < 2 {
        return Err(ShamirError::ThresholdTooSmall(t));
    }
    if t > n {
        return Err(ShamirError::ThresholdAboveShares { t, n });
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    let mut coefficients = ChaCha20Rng::from_rng(rng);
    let shares = Gf256::split_bytes(usize::from(t), usize::from(n), secret, &mut coefficients)
        .map_err(|err| ShamirError::Library(err.to_string()))?;
    Ok(shares
        .into_iter()
        .map(|bytes| Share(Zeroizing::new(bytes)))
        .collect())
}

/// Recovers the secret from at least `t` shares with distinct indices; the first `t` are used.
///
/// With fewer than t shares interpolation would still produce bytes, just not the secret, so
/// the count is checked here; a share that was altered also yields wrong bytes, which the
/// caller detects by the AEAD that the secret keys.
pub fn recover(shares: &[Share], t: u8) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if t < 2 {
        return Err(ShamirError::ThresholdTooSmall(t));
    }
    if shares.len() < usize::from(t) {
        return Err(ShamirError::NotEnoughShares {
            given: shares.len(),
            needed: t,
        });
    }
    let used = &shares[..usize::from(t)];
    let len = used[0].0.len();
    let mut seen = [false; 256];
    for share in used {
        if share.0.len() != len {
            return Err(ShamirError::BadShare);
        }
        let slot = &mut seen[usize::from(share.index())];
        if *slot {
            return Err(ShamirError::DuplicateIndex(share.index()));
        }
        *slot = true;
    }
    let owned: Vec<Vec<u8>> = used.iter().map(|share| share.0.to_vec()).collect();
    let owned = Zeroizing::new(owned);
    Gf256::combine_bytes(owned.as_slice())
        .map(Zeroizing::new)
        .map_err(|err| ShamirError::Library(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::os_rng;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any t of the n shares, in any order, recover the secret.
        #[test]
        fn any_t_shares_recover(
            secret in proptest::collection::vec(any::<u8>(), 1..40),
            n in 2u8..40,
            t_seed in any::<u8>(),
            pick_seed in any::<u64>(),
        ) {
            let t = 2 + t_seed % (n - 1);
            let shares = split(&secret, t, n, &mut os_rng()).unwrap();
            prop_assert_eq!(shares.len(), usize::from(n));
            let mut chosen = shares.clone();
            shuffle(&mut chosen, pick_seed);
            chosen.truncate(usize::from(t));
            let recovered = recover(&chosen, t).unwrap();
            prop_assert_eq!(recovered.as_slice(), secret.as_slice());
        }

        /// Any t - 1 shares interpolate to something else: the polynomial through them is
        /// random, so for a 32-byte secret a match has probability 2^-256.
        #[test]
        fn t_minus_one_shares_do_not_recover(
            secret in proptest::collection::vec(any::<u8>(), 32..=32),
            n in 3u8..40,
            t_seed in any::<u8>(),
            pick_seed in any::<u64>(),
        ) {
            let t = 3 + t_seed % (n - 2);
            let shares = split(&secret, t, n, &mut os_rng()).unwrap();
            let mut chosen = shares.clone();
            shuffle(&mut chosen, pick_seed);
            chosen.truncate(usize::from(t - 1));
            let refused = matches!(recover(&chosen, t), Err(ShamirError::NotEnoughShares { .. }));
            prop_assert!(refused);
            // Interpolating the t - 1 shares as if the threshold were t - 1.
            let guessed = recover(&chosen, t - 1).unwrap();
            prop_assert_ne!(guessed.as_slice(), secret.as_slice());
        }
    }

    /// Deterministic Fisher-Yates driven by a splitmix64 stream.
    fn shuffle(shares: &mut [Share], mut state: u64) {
        for i in (1..shares.len()).rev() {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            shares.swap(i, (z % (i as u64 + 1)) as usize);
        }
    }

    #[test]
    fn one_byte_secret_t_minus_one_shares_fit_every_secret() {
        // With t = 2, one share (x, y) lies on a line through (0, s) for every s: the value
        // at 0 of the line through (x, y) and (x', y') ranges over all 256 bytes as y' does.
        let shares = split(&[0x5a], 2, 3, &mut os_rng()).unwrap();
        let mut reachable = [false; 256];
        for y in 0..=255u8 {
            let other = Share::from_bytes(Zeroizing::new(vec![shares[1].index(), y])).unwrap();
            let secret = recover(&[shares[0].clone(), other], 2).unwrap();
            reachable[usize::from(secret[0])] = true;
        }
        assert!(reachable.iter().all(|r| *r));
    }

    #[test]
    fn full_size_and_bad_inputs() {
        let secret = [0xabu8; 32];
        let shares = split(&secret, 255, 255, &mut os_rng()).unwrap();
        assert_eq!(shares.last().unwrap().index(), 255);
        assert_eq!(recover(&shares, 255).unwrap().as_slice(), &secret);
        assert_eq!(
            split(&secret, 1, 3, &mut os_rng()),
            Err(ShamirError::ThresholdTooSmall(1))
        );
        assert_eq!(
            split(&secret, 4, 3, &mut os_rng()),
            Err(ShamirError::ThresholdAboveShares { t: 4, n: 3 })
        );
        assert_eq!(
            split(&[], 2, 3, &mut os_rng()),
            Err(ShamirError::EmptySecret)
        );
        let twice = [shares[0].clone(), shares[0].clone()];
        assert_eq!(recover(&twice, 2), Err(ShamirError::DuplicateIndex(1)));
        assert!(Share::from_bytes(Zeroizing::new(vec![0, 1])).is_err());
        assert!(format!("{:?}", shares[0]).contains("redacted"));
    }
}
