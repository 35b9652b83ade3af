//! The gateway's round logic: from meter readings at round boundaries to masked lanes.
//!
//! Rounds are wall-clock intervals of a fixed period: round `r` runs from `r · period` to
//! `(r + 1) · period` (ms since the Unix epoch), so every gateway with the same period agrees on
//! round numbers without talking to the others; with a 15-minute period they are quarter hours
//! since the epoch, as in the simulator. At the boundary that ends round `r` the gateway reads
//! the meter; the difference to the reading at the boundary that started `r` is round `r`'s
//! consumption. [`DeltaTracker`] is that bookkeeping as a state machine consumed by value, and
//! it never produces a wrong delta: a failed read, a counter that went backwards or a missed
//! boundary yields a skipped round with its reason, and the next delta starts afresh.
//! [`mask`] turns a delta into the local superposition with the neighbours' edge keys.

use std::collections::BTreeSet;

use engine::{EdgeSeed, SuperposeError, local_superposition};

/// The seeds this gateway shares with its key-graph neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// Neighbour client ids and seeds, in file order.
    pub neighbours: Vec<(u32, EdgeSeed)>,
}

/// Why a key file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// A line is not `CLIENT_ID SEED_HEX`.
    #[error("{origin} line {line}: {message}")]
    Line {
        origin: String,
        line: usize,
        message: String,
    },
    /// No neighbours: the reading would go out unmasked.
    #[error("{origin}: no neighbours; a gateway without edge keys would send its reading in clear")]
    Empty { origin: String },
}

impl KeyFile {
    /// Parses a key file: one neighbour per line, `CLIENT_ID SEED` with the 16-byte seed in 32
    /// hex digits, separated by spaces, tabs or a comma; blank lines and `#` comments are
    /// ignored. `me` is this gateway's own client id, which may not appear.
    pub fn parse(origin: &str, text: &str, me: u32) -> Result<Self, KeyFileError> {
        let mut neighbours = Vec::new();
        let mut seen = BTreeSet::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let bad = |message: String| KeyFileError::Line {
                origin: origin.to_string(),
                line: line_no,
                message,
            };
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|f| !f.is_empty())
                .collect();
            let [id, seed] = fields.as_slice() else {
                return Err(bad(format!(
                    "expected `CLIENT_ID SEED_HEX`, found {} fields",
                    fields.len()
                )));
            };
            let id: u32 = id
                .parse()
                .map_err(|_| bad(format!("client id {id:?} is not a u32")))?;
            if id == me {
                return Err(bad(format!("client {id} is this gateway itself")));
            }
            if !seen.insert(id) {
                return Err(bad(format!("client {id} appears twice")));
            }
            let mut bytes = zeroize::Zeroizing::new([0u8; 16]);
            hex::decode_to_slice(seed, bytes.as_mut())
                .map_err(|_| bad("the seed must be 32 hex digits (16 bytes)".to_string()))?;
            neighbours.push((id, EdgeSeed::from_bytes(*bytes)));
        }
        if neighbours.is_empty() {
            return Err(KeyFileError::Empty {
                origin: origin.to_string(),
            });
        }
        Ok(KeyFile { neighbours })
    }
}

/// Masks `delta` (one value per lane) into client `me`'s local superposition for `round`.
pub fn mask(
    me: u32,
    round: u32,
    delta: &[u64],
    keys: &KeyFile,
) -> Result<Vec<u64>, SuperposeError> {
    let mut out = vec![0u64; delta.len()];
    local_superposition(
        me,
        round,
        delta,
        keys.neighbours.iter().map(|(id, seed)| (*id, seed)),
        &mut out,
    )?;
    Ok(out)
}

/// Fixed-period wall-clock rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundClock {
    period_ms: u64,
}

impl RoundClock {
    /// Rounds of `period_ms` (at least one second, so round numbers fit a u32 until 2106).
    pub fn new(period_ms: u64) -> Option<Self> {
        (period_ms >= 1000).then_some(Self { period_ms })
    }

    /// The period.
    pub fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// The round running at `unix_ms`.
    pub fn round_at(&self, unix_ms: u64) -> u32 {
        u32::try_from(unix_ms / self.period_ms).unwrap_or(u32::MAX)
    }

    /// When `round` starts, ms since the Unix epoch.
    pub fn start_of(&self, round: u32) -> u64 {
        u64::from(round) * self.period_ms
    }
}

/// Why a round produced no frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The meter could not be read at the round's end.
    ReadFailed(String),
    /// The meter was not read at the round's start (first boundary, or the read then failed).
    NoPreviousReading,
    /// Boundaries were missed since the previous reading (the gateway was stalled or asleep),
    /// so the consumption cannot be attributed to one round.
    Gap {
        /// The boundary of the previous reading.
        previous_boundary: u32,
    },
    /// A counter is lower than before (meter replaced or reset).
    CounterWentBackwards {
        /// Lane of the counter.
        lane: usize,
        /// Previous reading, Wh.
        previous: u64,
        /// This reading, Wh.
        now: u64,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::ReadFailed(e) => write!(f, "meter read failed: {e}"),
            SkipReason::NoPreviousReading => {
                f.write_str("no reading at the start of the round to take a difference from")
            }
            SkipReason::Gap { previous_boundary } => write!(
                f,
                "the previous reading is from the start of round {previous_boundary}, not of this one"
            ),
            SkipReason::CounterWentBackwards {
                lane,
                previous,
                now,
            } => write!(
                f,
                "counter of lane {lane} went backwards from {previous} Wh to {now} Wh"
            ),
        }
    }
}

/// What happened at a round boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// The first reading: nothing to send yet.
    Baseline {
        /// The boundary: round `boundary` starts here.
        boundary: u32,
    },
    /// Round `round` ended with this consumption per lane, in Wh.
    Send {
        /// The round that just ended.
        round: u32,
        /// Wh per lane.
        delta: Vec<u64>,
    },
    /// Round `round` ended and no frame may be sent for it.
    Skip {
        /// The round that just ended.
        round: u32,
        /// Why.
        reason: SkipReason,
    },
}

/// The counters at the last boundary, if they were read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaTracker {
    previous: Option<(u32, Vec<u64>)>,
    started: bool,
}

impl DeltaTracker {
    /// No reading yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the reading (Wh per lane) at the start of round `boundary`, i.e. the end of round
    /// `boundary - 1`.
    pub fn at_boundary(
        self,
        boundary: u32,
        reading: Result<Vec<u64>, String>,
    ) -> (Self, RoundOutcome) {
        let ended = boundary.wrapping_sub(1);
        let now = match reading {
            Ok(now) => now,
            Err(e) => {
                let outcome = RoundOutcome::Skip {
                    round: ended,
                    reason: SkipReason::ReadFailed(e),
                };
                return (
                    Self {
                        previous: None,
                        started: true,
                    },
                    outcome,
                );
            }
        };
        let next = Self {
            previous: Some((boundary, now.clone())),
            started: true,
        };
        let outcome = match self.previous {
            None if !self.started => RoundOutcome::Baseline { boundary },
            None => RoundOutcome::Skip {
                round: ended,
                reason: SkipReason::NoPreviousReading,
            },
            Some((previous_boundary, _)) if previous_boundary != ended => RoundOutcome::Skip {
                round: ended,
                reason: SkipReason::Gap { previous_boundary },
            },
            Some((_, before)) => {
                match before
                    .iter()
                    .zip(&now)
                    .enumerate()
                    .find(|(_, (b, n))| n < b)
                {
                    Some((lane, (&previous, &now))) => RoundOutcome::Skip {
                        round: ended,
                        reason: SkipReason::CounterWentBackwards {
                            lane,
                            previous,
                            now,
                        },
                    },
                    None => RoundOutcome::Send {
                        round: ended,
                        delta: now.iter().zip(&before).map(|(n, b)| n - b).collect(),
                    },
                }
            }
        };
        (next, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{add_lanes, edge_seed, master_key};

    const SEED_HEX: &str = "d9acda94594dd7190406acd48c726e52";

    #[test]
    fn key_file_parses_ids_seeds_and_comments() {
        let text = format!("# neighbours of 3\n11 {SEED_HEX}\n\n 12,{SEED_HEX} # second\n");
        let keys = KeyFile::parse("k.txt", &text, 3).unwrap();
        assert_eq!(keys.neighbours.len(), 2);
        assert_eq!(keys.neighbours[0].0, 11);
        assert_eq!(keys.neighbours[1].0, 12);
        // DESIGN §8: edge_seed(master_key(42), net=7, 3, 11) is this seed.
        assert_eq!(keys.neighbours[0].1, edge_seed(&master_key(42), 7, 3, 11));
    }

    #[test]
    fn key_file_errors_name_the_line() {
        for (text, needle) in [
            (
                format!("11 {SEED_HEX}\n3 {SEED_HEX}"),
                "line 2: client 3 is this gateway",
            ),
            (
                format!("11 {SEED_HEX}\n11 {SEED_HEX}"),
                "line 2: client 11 appears twice",
            ),
            (
                "11 abcd".to_string(),
                "line 1: the seed must be 32 hex digits",
            ),
            ("x 00".to_string(), "line 1: client id \"x\""),
            ("11".to_string(), "line 1: expected"),
            ("# nothing\n".to_string(), "no neighbours"),
        ] {
            let error = KeyFile::parse("k.txt", &text, 3).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn masked_deltas_of_a_triangle_sum_to_the_plain_total() {
        let master = master_key(7);
        let seed = |a, b| edge_seed(&master, 1, a, b);
        let keys = |me: u32, others: [u32; 2]| KeyFile {
            neighbours: others.iter().map(|&o| (o, seed(me, o))).collect(),
        };
        let round = 1_900_000;
        let mut sum = vec![0u64; 1];
        for (me, others, delta) in [(1, [2, 3], 100), (2, [1, 3], 250), (3, [1, 2], 7)] {
            let masked = mask(me, round, &[delta], &keys(me, others)).unwrap();
            assert_ne!(masked, vec![delta]);
            add_lanes(&mut sum, &masked);
        }
        assert_eq!(sum, vec![357]);
    }

    #[test]
    fn round_clock() {
        let clock = RoundClock::new(900_000).unwrap();
        // 2026-01-12 00:00 UTC is day 20465: quarter hour 20465 * 96 = 1964640.
        assert_eq!(clock.round_at(1_768_176_000_000), 1_964_640);
        assert_eq!(clock.round_at(1_768_176_000_000 + 899_999), 1_964_640);
        assert_eq!(clock.start_of(1_964_641), 1_768_176_900_000);
        assert!(RoundClock::new(999).is_none());
    }

    #[test]
    fn deltas_and_every_skip_reason() {
        let t = DeltaTracker::new();
        let (t, o) = t.at_boundary(10, Ok(vec![1000]));
        assert_eq!(o, RoundOutcome::Baseline { boundary: 10 });
        let (t, o) = t.at_boundary(11, Ok(vec![1070]));
        assert_eq!(
            o,
            RoundOutcome::Send {
                round: 10,
                delta: vec![70]
            }
        );
        // A failed read skips the round that ended...
        let (t, o) = t.at_boundary(12, Err("timeout".into()));
        assert!(matches!(
            o,
            RoundOutcome::Skip {
                round: 11,
                reason: SkipReason::ReadFailed(_)
            }
        ));
        // ...and the next one, which has no start reading.
        let (t, o) = t.at_boundary(13, Ok(vec![1200]));
        assert_eq!(
            o,
            RoundOutcome::Skip {
                round: 12,
                reason: SkipReason::NoPreviousReading
            }
        );
        // A missed boundary: the delta would span rounds 13 and 14.
        let (t, o) = t.at_boundary(15, Ok(vec![1300]));
        assert_eq!(
            o,
            RoundOutcome::Skip {
                round: 14,
                reason: SkipReason::Gap {
                    previous_boundary: 13
                }
            }
        );
        // A counter that went backwards (meter exchanged).
        let (t, o) = t.at_boundary(16, Ok(vec![5]));
        assert_eq!(
            o,
            RoundOutcome::Skip {
                round: 15,
                reason: SkipReason::CounterWentBackwards {
                    lane: 0,
                    previous: 1300,
                    now: 5
                }
            }
        );
        // Then deltas resume from the new counter.
        let (_, o) = t.at_boundary(17, Ok(vec![9]));
        assert_eq!(
            o,
            RoundOutcome::Send {
                round: 16,
                delta: vec![4]
            }
        );
    }

    #[test]
    fn first_read_failing_is_a_skip_not_a_baseline() {
        let (t, o) = DeltaTracker::new().at_boundary(10, Err("timeout".into()));
        assert!(matches!(o, RoundOutcome::Skip { round: 9, .. }));
        let (_, o) = t.at_boundary(11, Ok(vec![1]));
        assert_eq!(
            o,
            RoundOutcome::Skip {
                round: 10,
                reason: SkipReason::NoPreviousReading
            }
        );
    }
}
