//! Local superpositions (what a gateway sends) and wrapping lane sums (what the provider adds).
//!
//! Client `i` with reading `m_i` sends, lane-wise in Z/2^64,
//! `s_i = m_i + sum_{j in N(i), i < j} K_ij(r) - sum_{j in N(i), j < i} K_ji(r)`:
//! the lower id of an edge adds its key and the higher one subtracts it, so every key cancels in
//! the sum over all clients (DESIGN §1).

use crate::MAX_LANES;
use crate::keystream::fill_lanes;
use crate::seed::EdgeSeed;

/// Why a superposition could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuperposeError {
    /// The reading and the output buffer disagree on the lane count, or it is out of range.
    #[error(
        "lane count mismatch: reading has {reading} lanes, output has {output} (1..={MAX_LANES})"
    )]
    Lanes { reading: usize, output: usize },
    /// A client listed itself as its own neighbour.
    #[error("client {0} cannot share an edge with itself")]
    SelfEdge(u32),
}

/// Adds `x` into `acc` lane by lane, wrapping modulo 2^64.
pub fn add_lanes(acc: &mut [u64], x: &[u64]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.wrapping_add(*b);
    }
}

/// Subtracts `x` from `acc` lane by lane, wrapping modulo 2^64.
pub fn sub_lanes(acc: &mut [u64], x: &[u64]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.wrapping_sub(*b);
    }
}

/// Applies the already computed key of edge {me, other} to `out` with the sign DESIGN §1 gives
/// `me`: added when `me < other`, subtracted when `me > other`.
pub fn apply_edge_key(
    me: u32,
    other: u32,
    key: &[u64],
    out: &mut [u64],
) -> Result<(), SuperposeError> {
    match me.cmp(&other) {
        std::cmp::Ordering::Less => add_lanes(out, key),
        std::cmp::Ordering::Greater => sub_lanes(out, key),
        std::cmp::Ordering::Equal => return Err(SuperposeError::SelfEdge(me)),
    }
    Ok(())
}

/// The local superposition of client `me` for `round`: `reading` masked with the edge key of
/// every neighbour in `neighbours` (client id and shared seed).
pub fn local_superposition<'a>(
    me: u32,
    round: u32,
    reading: &[u64],
    neighbours: impl IntoIterator<Item = (u32, &'a EdgeSeed)>,
    out: &mut [u64],
) -> Result<(), SuperposeError> {
    resend_superposition(me, round, reading, neighbours, |_| false, out)
}

/// The corrected superposition a present client resends after neighbours went missing: like
/// [`local_superposition`] but without the keys shared with any neighbour for which
/// `is_missing` holds, so the sum over the present clients cancels again.
pub fn resend_superposition<'a>(
    me: u32,
    round: u32,
    reading: &[u64],
    neighbours: impl IntoIterator<Item = (u32, &'a EdgeSeed)>,
    is_missing: impl Fn(u32) -> bool,
    out: &mut [u64],
) -> Result<(), SuperposeError> {
    if reading.len() != out.len() || out.is_empty() || out.len() > MAX_LANES {
        return Err(SuperposeError::Lanes {
            reading: reading.len(),
            output: out.len(),
        });
    }
    out.copy_from_slice(reading);
    let mut key = [0u64; MAX_LANES];
    let key = &mut key[..out.len()];
    for (other, seed) in neighbours {
        if other == me {
            return Err(SuperposeError::SelfEdge(me));
        }
        if is_missing(other) {
            continue;
        }
        fill_lanes(seed, round, key);
        apply_edge_key(me, other, key, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{edge_seed, master_key};

    #[test]
    fn two_clients_cancel_to_the_sum_of_their_readings() {
        let seed = edge_seed(&master_key(5), 1, 10, 20);
        let (mut s10, mut s20) = ([0u64; 2], [0u64; 2]);
        local_superposition(10, 3, &[100, u64::MAX], [(20, &seed)], &mut s10).unwrap();
        local_superposition(20, 3, &[23, 2], [(10, &seed)], &mut s20).unwrap();
        assert_ne!(s10, [100, u64::MAX], "the reading must be masked");
        add_lanes(&mut s10, &s20);
        // Hand-computed: 100 + 23, and (2^64 - 1) + 2 wraps to 1.
        assert_eq!(s10, [123, 1]);
    }

    #[test]
    fn resend_without_any_live_neighbour_is_the_plain_reading() {
        let seed = edge_seed(&master_key(5), 1, 10, 20);
        let mut out = [0u64; 1];
        resend_superposition(10, 3, &[77], [(20, &seed)], |id| id == 20, &mut out).unwrap();
        assert_eq!(out, [77]);
    }

    #[test]
    fn rejects_self_edges_and_lane_mismatches() {
        let seed = edge_seed(&master_key(5), 1, 10, 20);
        let mut out = [0u64; 1];
        assert_eq!(
            local_superposition(10, 0, &[1], [(10, &seed)], &mut out),
            Err(SuperposeError::SelfEdge(10))
        );
        assert!(matches!(
            local_superposition(10, 0, &[1, 2], [(20, &seed)], &mut out),
            Err(SuperposeError::Lanes { .. })
        ));
    }
}
