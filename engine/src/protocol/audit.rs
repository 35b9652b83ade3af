//! The provider's audit trail: every action as one line of a SHA-256 hash chain.
//!
//! Line format (one entry per line, fields separated by one space):
//!
//! ```text
//! <seq> <prev: 64 hex> <hash: 64 hex> <action> <key>=<value> ...
//! ```
//!
//! `hash = SHA-256("dcnet audit v1" || seq u64 LE || prev || action text)` and `prev` is the
//! previous entry's `hash` (all zeros for entry 0). Editing an entry breaks its own hash, or, if
//! the hash is recomputed, the next entry's `prev`; deleting or reordering entries breaks the
//! sequence numbers. Truncating the tail is only visible against a published head hash, which
//! `verify_chain` checks when given one. This module is pure: reading and appending the file is
//! the caller's job.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

const AUDIT_DOMAIN: &[u8] = b"dcnet audit v1";

/// One provider action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A newcomer was placed in a net with random neighbours.
    Assigned {
        net: u32,
        client: u32,
        neighbours: Vec<u32>,
    },
    /// A client that was out re-registered.
    Restored {
        net: u32,
        client: u32,
        live: Vec<u32>,
        out: Vec<u32>,
    },
    /// A relay tunnel for one key exchange was opened.
    KexOpened {
        net: u32,
        exchange: u64,
        a: u32,
        b: u32,
    },
    /// A key share was relayed.
    Relayed {
        net: u32,
        exchange: u64,
        from: u32,
        to: u32,
    },
    /// A gateway refused a relayed share (its signature failed).
    KexRefused {
        net: u32,
        exchange: u64,
        by: u32,
        peer: u32,
    },
    /// Both ends confirmed an exchange: the edge is in the key graph.
    Linked {
        net: u32,
        exchange: u64,
        a: u32,
        b: u32,
    },
    /// A client finished joining.
    Joined { net: u32, client: u32 },
    /// A client left; its partners were told.
    Exited {
        net: u32,
        client: u32,
        partners: Vec<u32>,
    },
    /// A notification was sent to (or queued for) a client about another client.
    Notified {
        net: u32,
        to: u32,
        what: String,
        about: u32,
    },
    /// Clients were missing in a round; their neighbours were told (notification 4).
    CorrectionRequested {
        net: u32,
        round: u32,
        missing: Vec<u32>,
        neighbours: Vec<u32>,
        resend: bool,
    },
    /// A round's sum was released.
    Released {
        net: u32,
        round: u32,
        expected: usize,
        present: usize,
        resent: usize,
    },
    /// A round's sum was withheld by a privacy guard.
    Withheld {
        net: u32,
        round: u32,
        expected: usize,
        present: usize,
        reason: String,
    },
    /// A round could not be corrected; no sum was released.
    Unrecoverable {
        net: u32,
        round: u32,
        expected: usize,
        present: usize,
        reason: String,
    },
    /// A message from a client was refused.
    Rejected {
        net: u32,
        client: u32,
        message: String,
        reason: String,
    },
}

impl AuditEvent {
    /// The action's name, the first word of its text.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Assigned { .. } => "assigned",
            Self::Restored { .. } => "restored",
            Self::KexOpened { .. } => "kex-opened",
            Self::Relayed { .. } => "relayed",
            Self::KexRefused { .. } => "kex-refused",
            Self::Linked { .. } => "linked",
            Self::Joined { .. } => "joined",
            Self::Exited { .. } => "exited",
            Self::Notified { .. } => "notified",
            Self::CorrectionRequested { .. } => "correction",
            Self::Released { .. } => "released",
            Self::Withheld { .. } => "withheld",
            Self::Unrecoverable { .. } => "unrecoverable",
            Self::Rejected { .. } => "rejected",
        }
    }

    /// The net the action concerns.
    pub fn net(&self) -> u32 {
        match self {
            Self::Assigned { net, .. }
            | Self::Restored { net, .. }
            | Self::KexOpened { net, .. }
            | Self::Relayed { net, .. }
            | Self::KexRefused { net, .. }
            | Self::Linked { net, .. }
            | Self::Joined { net, .. }
            | Self::Exited { net, .. }
            | Self::Notified { net, .. }
            | Self::CorrectionRequested { net, .. }
            | Self::Released { net, .. }
            | Self::Withheld { net, .. }
            | Self::Unrecoverable { net, .. }
            | Self::Rejected { net, .. } => *net,
        }
    }

    /// Every client the action names, for `dcnet audit show --client`.
    pub fn clients(&self) -> Vec<u32> {
        match self {
            Self::Assigned {
                client, neighbours, ..
            } => once_and(*client, neighbours),
            Self::Restored {
                client, live, out, ..
            } => {
                let mut all = once_and(*client, live);
                all.extend(out);
                all
            }
            Self::KexOpened { a, b, .. } | Self::Linked { a, b, .. } => vec![*a, *b],
            Self::Relayed { from, to, .. } => vec![*from, *to],
            Self::KexRefused { by, peer, .. } => vec![*by, *peer],
            Self::Joined { client, .. } | Self::Rejected { client, .. } => vec![*client],
            Self::Exited {
                client, partners, ..
            } => once_and(*client, partners),
            Self::Notified { to, about, .. } => vec![*to, *about],
            Self::CorrectionRequested {
                missing,
                neighbours,
                ..
            } => missing.iter().chain(neighbours).copied().collect(),
            Self::Released { .. } | Self::Withheld { .. } | Self::Unrecoverable { .. } => {
                Vec::new()
            }
        }
    }
}

fn once_and(first: u32, rest: &[u32]) -> Vec<u32> {
    std::iter::once(first).chain(rest.iter().copied()).collect()
}

fn list(values: &[u32]) -> String {
    if values.is_empty() {
        "-".to_string()
    } else {
        values
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} net={}", self.action(), self.net())?;
        match self {
            Self::Assigned {
                client, neighbours, ..
            } => write!(f, " client={client} neighbours={}", list(neighbours)),
            Self::Restored {
                client, live, out, ..
            } => write!(f, " client={client} live={} out={}", list(live), list(out)),
            Self::KexOpened { exchange, a, b, .. } | Self::Linked { exchange, a, b, .. } => {
                write!(f, " exchange={exchange} a={a} b={b}")
            }
            Self::Relayed {
                exchange, from, to, ..
            } => write!(f, " exchange={exchange} from={from} to={to}"),
            Self::KexRefused {
                exchange, by, peer, ..
            } => write!(f, " exchange={exchange} by={by} peer={peer}"),
            Self::Joined { client, .. } => write!(f, " client={client}"),
            Self::Exited {
                client, partners, ..
            } => write!(f, " client={client} partners={}", list(partners)),
            Self::Notified {
                to, what, about, ..
            } => write!(f, " to={to} what={what} about={about}"),
            Self::CorrectionRequested {
                round,
                missing,
                neighbours,
                resend,
                ..
            } => write!(
                f,
                " round={round} missing={} neighbours={} resend={resend}",
                list(missing),
                list(neighbours)
            ),
            Self::Released {
                round,
                expected,
                present,
                resent,
                ..
            } => write!(
                f,
                " round={round} expected={expected} present={present} resent={resent}"
            ),
            Self::Withheld {
                round,
                expected,
                present,
                reason,
                ..
            }
            | Self::Unrecoverable {
                round,
                expected,
                present,
                reason,
                ..
            } => write!(
                f,
                " round={round} expected={expected} present={present} reason={reason}"
            ),
            Self::Rejected {
                client,
                message,
                reason,
                ..
            } => write!(f, " client={client} message={message} reason={reason}"),
        }
    }
}

/// Why an audit line could not be read or the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The line is not an audit entry.
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    /// Entries are missing or out of order.
    #[error("line {line}: entry {found} where entry {expected} should be (deleted or reordered)")]
    Sequence {
        line: usize,
        expected: u64,
        found: u64,
    },
    /// The entry does not carry the hash of the entry before it.
    #[error(
        "line {line}: entry {seq} does not carry the hash of entry {} (an earlier entry was altered, deleted or reordered)",
        seq.saturating_sub(1)
    )]
    PrevMismatch { line: usize, seq: u64 },
    /// The entry's own hash does not match its content.
    #[error("line {line}: entry {seq} was altered (its hash does not match its content)")]
    HashMismatch { line: usize, seq: u64 },
    /// The chain ends at another head than the published one (entries cut off or replaced).
    #[error(
        "the chain of {entries} entries ends at head {found}, not at the expected head {expected}"
    )]
    HeadMismatch {
        entries: u64,
        found: String,
        expected: String,
    },
}

/// One entry of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    pub event: AuditEvent,
}

impl fmt::Display for AuditEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.seq,
            hex(&self.prev),
            hex(&self.hash),
            self.event
        )
    }
}

/// `SHA-256("dcnet audit v1" || seq u64 LE || prev || action text)`.
pub fn entry_hash(seq: u64, prev: &[u8; 32], action: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(AUDIT_DOMAIN)
        .chain_update(seq.to_le_bytes())
        .chain_update(prev)
        .chain_update(action.as_bytes())
        .finalize()
        .into()
}

/// Lower-case hex of a hash.
pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 lower-case hex digits (the only spelling, so no two texts carry the same hash).
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if text.len() != 64 || !text.as_bytes().iter().all(lower_hex) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The writer's side of the chain: the next sequence number and the current head.
#[derive(Debug, Clone, Default)]
pub struct AuditChain {
    next_seq: u64,
    head: [u8; 32],
}

impl AuditChain {
    /// A new chain (entry 0 links to 32 zero bytes).
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues a chain whose last entry is `last` (appending to an existing file).
    pub fn after(last: &AuditEntry) -> Self {
        Self {
            next_seq: last.seq + 1,
            head: last.hash,
        }
    }

    /// Links `event` into the chain.
    pub fn append(&mut self, event: AuditEvent) -> AuditEntry {
        let seq = self.next_seq;
        let prev = self.head;
        let hash = entry_hash(seq, &prev, &event.to_string());
        self.next_seq += 1;
        self.head = hash;
        AuditEntry {
            seq,
            prev,
            hash,
            event,
        }
    }

    /// The hash of the last entry (zeros before the first): publish it to pin the tail.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// Number of entries appended so far.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

/// What a verified chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub entries: u64,
    pub head: [u8; 32],
}

/// Parses one line (`line_no` is 1-based, for the error) without checking its links.
pub fn parse_entry(text: &str, line_no: usize) -> Result<AuditEntry, AuditError> {
    let malformed = |reason: String| AuditError::Malformed {
        line: line_no,
        reason,
    };
    let mut parts = text.splitn(4, ' ');
    let (Some(seq), Some(prev), Some(hash), Some(action)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "expected `<seq> <prev> <hash> <action ...>`".into(),
        ));
    };
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|n| n.to_string() == seq)
        .ok_or_else(|| malformed(format!("sequence number {seq:?} is not a plain integer")))?;
    let prev = parse_hash(prev).ok_or_else(|| malformed("prev is not 64 hex digits".into()))?;
    let hash = parse_hash(hash).ok_or_else(|| malformed("hash is not 64 hex digits".into()))?;
    let event = action.parse().map_err(malformed)?;
    Ok(AuditEntry {
        seq,
        prev,
        hash,
        event,
    })
}

/// Checks a whole chain, line by line, and names the first bad entry. With `expected_head`, the
/// chain must also end at that published head.
pub fn verify_chain<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    expected_head: Option<&[u8; 32]>,
) -> Result<ChainSummary, AuditError> {
    let mut chain = AuditChain::new();
    for (index, text) in lines.into_iter().enumerate() {
        let line = index + 1;
        let entry = parse_entry(text, line)?;
        let (seq, action) = (entry.seq, text.splitn(4, ' ').nth(3).unwrap_or_default());
        if entry_hash(seq, &entry.prev, action) != entry.hash {
            return Err(AuditError::HashMismatch { line, seq });
        }
        if seq != chain.next_seq {
            return Err(AuditError::Sequence {
                line,
                expected: chain.next_seq,
                found: seq,
            });
        }
        if entry.prev != chain.head {
            return Err(AuditError::PrevMismatch { line, seq });
        }
        chain = AuditChain::after(&entry);
    }
    if let Some(expected) = expected_head.filter(|head| **head != chain.head) {
        return Err(AuditError::HeadMismatch {
            entries: chain.len(),
            found: hex(&chain.head),
            expected: hex(expected),
        });
    }
    Ok(ChainSummary {
        entries: chain.len(),
        head: chain.head,
    })
}

/// The `key=value` fields of an action, in order.
struct Fields<'a> {
    action: &'a str,
    map: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn parse(text: &'a str) -> Result<Self, String> {
        let mut words = text.split(' ');
        let action = words.next().unwrap_or_default();
        let mut map = BTreeMap::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("{action}: field {word:?} is not key=value"))?;
            if map.insert(key, value).is_some() {
                return Err(format!("{action}: field {key} appears twice"));
            }
        }
        Ok(Self { action, map })
    }

    fn raw(&self, key: &str) -> Result<&'a str, String> {
        self.map
            .get(key)
            .copied()
            .ok_or_else(|| format!("{}: missing field {key}", self.action))
    }

    fn num<T: FromStr>(&self, key: &str) -> Result<T, String> {
        let raw = self.raw(key)?;
        raw.parse()
            .map_err(|_| format!("{}: field {key}={raw} is not a number", self.action))
    }

    fn list(&self, key: &str) -> Result<Vec<u32>, String> {
        let raw = self.raw(key)?;
        if raw == "-" {
            return Ok(Vec::new());
        }
        raw.split(',')
            .map(|v| {
                v.parse().map_err(|_| {
                    format!(
                        "{}: field {key} has a non-numeric client {v:?}",
                        self.action
                    )
                })
            })
            .collect()
    }

    fn text(&self, key: &str) -> Result<String, String> {
        self.raw(key).map(str::to_string)
    }

    fn flag(&self, key: &str) -> Result<bool, String> {
        match self.raw(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                "{}: field {key}={other} is not true/false",
                self.action
            )),
        }
    }
}

impl FromStr for AuditEvent {
    type Err = String;

    /// Parses an action's text; it must print back to exactly the same text, so two texts
    /// never describe the same event.
    fn from_str(text: &str) -> Result<Self, String> {
        let f = Fields::parse(text)?;
        let net = f.num("net")?;
        let event = match f.action {
            "assigned" => Self::Assigned {
                net,
                client: f.num("client")?,
                neighbours: f.list("neighbours")?,
            },
            "restored" => Self::Restored {
                net,
                client: f.num("client")?,
                live: f.list("live")?,
                out: f.list("out")?,
            },
            "kex-opened" => Self::KexOpened {
                net,
                exchange: f.num("exchange")?,
                a: f.num("a")?,
                b: f.num("b")?,
            },
            "linked" => Self::Linked {
                net,
                exchange: f.num("exchange")?,
                a: f.num("a")?,
                b: f.num("b")?,
            },
            "relayed" => Self::Relayed {
                net,
                exchange: f.num("exchange")?,
                from: f.num("from")?,
                to: f.num("to")?,
            },
            "kex-refused" => Self::KexRefused {
                net,
                exchange: f.num("exchange")?,
                by: f.num("by")?,
                peer: f.num("peer")?,
            },
            "joined" => Self::Joined {
                net,
                client: f.num("client")?,
            },
            "exited" => Self::Exited {
                net,
                client: f.num("client")?,
                partners: f.list("partners")?,
            },
            "notified" => Self::Notified {
                net,
                to: f.num("to")?,
                what: f.text("what")?,
                about: f.num("about")?,
            },
            "correction" => Self::CorrectionRequested {
                net,
                round: f.num("round")?,
                missing: f.list("missing")?,
                neighbours: f.list("neighbours")?,
                resend: f.flag("resend")?,
            },
            "released" => Self::Released {
                net,
                round: f.num("round")?,
                expected: f.num("expected")?,
                present: f.num("present")?,
                resent: f.num("resent")?,
            },
            "withheld" => Self::Withheld {
                net,
                round: f.num("round")?,
                expected: f.num("expected")?,
                present: f.num("present")?,
                reason: f.text("reason")?,
            },
            "unrecoverable" => Self::Unrecoverable {
                net,
                round: f.num("round")?,
                expected: f.num("expected")?,
                present: f.num("present")?,
                reason: f.text("reason")?,
            },
            "rejected" => Self::Rejected {
                net,
                client: f.num("client")?,
                message: f.text("message")?,
                reason: f.text("reason")?,
            },
            other => return Err(format!("unknown action {other:?}")),
        };
        if event.to_string() != text {
            return Err(format!(
                "{}: not in canonical form (unknown, reordered or repeated fields)",
                f.action
            ));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_events() -> Vec<AuditEvent> {
        vec![
            AuditEvent::Assigned {
                net: 1,
                client: 5,
                neighbours: vec![1, 2, 3],
            },
            AuditEvent::KexOpened {
                net: 1,
                exchange: 0,
                a: 5,
                b: 1,
            },
            AuditEvent::Relayed {
                net: 1,
                exchange: 0,
                from: 5,
                to: 1,
            },
            AuditEvent::Linked {
                net: 1,
                exchange: 0,
                a: 1,
                b: 5,
            },
            AuditEvent::Joined { net: 1, client: 5 },
            AuditEvent::CorrectionRequested {
                net: 1,
                round: 3,
                missing: vec![2],
                neighbours: vec![1, 5],
                resend: true,
            },
            AuditEvent::Released {
                net: 1,
                round: 3,
                expected: 5,
                present: 4,
                resent: 2,
            },
            AuditEvent::Withheld {
                net: 1,
                round: 4,
                expected: 5,
                present: 2,
                reason: "too-few-present".into(),
            },
            AuditEvent::Exited {
                net: 1,
                client: 5,
                partners: vec![],
            },
        ]
    }

    fn chain_lines() -> Vec<String> {
        let mut chain = AuditChain::new();
        sample_events()
            .into_iter()
            .map(|e| chain.append(e).to_string())
            .collect()
    }

    fn verify(lines: &[String]) -> Result<ChainSummary, AuditError> {
        verify_chain(lines.iter().map(String::as_str), None)
    }

    #[test]
    fn entry_hash_is_sha256_of_the_documented_bytes() {
        // Reproduce: python3 -c 'import hashlib;print(hashlib.sha256(b"dcnet audit v1"
        //   +(0).to_bytes(8,"little")+bytes(32)+b"joined net=1 client=5").hexdigest())'
        assert_eq!(
            hex(&entry_hash(0, &[0; 32], "joined net=1 client=5")),
            "e3e81f101fdaa409d7870886c28c73e14d7cfbfd31d65b23c427c0682a267076"
        );
    }

    #[test]
    fn events_print_and_parse_back() {
        for event in sample_events() {
            let text = event.to_string();
            assert_eq!(text.parse::<AuditEvent>(), Ok(event), "{text}");
        }
        assert!(
            "joined net=1 client=5 extra=1"
                .parse::<AuditEvent>()
                .is_err()
        );
        assert!("joined client=5 net=1".parse::<AuditEvent>().is_err());
        assert!("vanished net=1".parse::<AuditEvent>().is_err());
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_its_head() {
        let lines = chain_lines();
        let summary = verify(&lines).unwrap();
        assert_eq!(summary.entries, lines.len() as u64);
        let last = parse_entry(lines.last().unwrap(), 9).unwrap();
        assert_eq!(summary.head, last.hash);
        assert!(
            verify_chain(lines.iter().map(String::as_str), Some(&last.hash)).is_ok(),
            "matching head"
        );
    }

    #[test]
    fn edits_are_named_at_the_edited_entry_or_the_next_one() {
        let lines = chain_lines();
        // Edit without recomputing the hash: the entry itself is flagged.
        let mut edited = lines.clone();
        edited[6] = edited[6].replace("present=4", "present=5");
        assert_eq!(
            verify(&edited),
            Err(AuditError::HashMismatch { line: 7, seq: 6 })
        );
        // Edit with a recomputed hash: the next entry no longer links to it.
        let mut forged = lines.clone();
        let entry = parse_entry(&lines[6], 7).unwrap();
        let action = entry.event.to_string().replace("present=4", "present=5");
        let hash = entry_hash(6, &entry.prev, &action);
        forged[6] = format!("6 {} {} {action}", hex(&entry.prev), hex(&hash));
        assert_eq!(
            verify(&forged),
            Err(AuditError::PrevMismatch { line: 8, seq: 7 })
        );
    }

    #[test]
    fn deleting_or_reordering_is_detected() {
        let lines = chain_lines();
        let mut deleted = lines.clone();
        deleted.remove(3);
        assert_eq!(
            verify(&deleted),
            Err(AuditError::Sequence {
                line: 4,
                expected: 3,
                found: 4
            })
        );
        let mut swapped = lines.clone();
        swapped.swap(2, 5);
        assert!(matches!(
            verify(&swapped),
            Err(AuditError::Sequence { line: 3, .. })
        ));
        // Cutting the tail leaves a valid prefix: only the published head reveals it.
        let head = verify(&lines).unwrap().head;
        let cut = &lines[..lines.len() - 1];
        assert!(verify(cut).is_ok());
        assert!(matches!(
            verify_chain(cut.iter().map(String::as_str), Some(&head)),
            Err(AuditError::HeadMismatch { entries: 8, .. })
        ));
    }

    proptest! {
        #[test]
        fn any_single_byte_change_is_detected(index in 0usize..9, pos in any::<usize>(), byte in any::<u8>()) {
            let lines = chain_lines();
            let head = verify(&lines).unwrap().head;
            let mut bytes = lines[index].clone().into_bytes();
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != byte);
            bytes[pos] = byte;
            let mut tampered = lines.clone();
            tampered[index] = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(verify_chain(tampered.iter().map(String::as_str), Some(&head)).is_err());
        }

        #[test]
        fn arbitrary_lines_are_errors_not_panics(text in ".{0,200}", action in "[a-z-]{1,12}( [a-z]{1,8}=[0-9a-z,-]{0,6}){0,6}") {
            let _ = parse_entry(&text, 1);
            let _ = verify_chain([text.as_str()], None);
            let _ = action.parse::<AuditEvent>();
            let line = format!("0 {} {} {action}", hex(&[0; 32]), hex(&[1; 32]));
            prop_assert!(verify_chain([line.as_str()], None).is_err());
        }

        #[test]
        fn removing_or_moving_any_entry_is_detected(from in 0usize..9, to in 0usize..9) {
            let lines = chain_lines();
            let head = verify(&lines).unwrap().head;
            let mut removed = lines.clone();
            removed.remove(from);
            prop_assert!(verify_chain(removed.iter().map(String::as_str), Some(&head)).is_err());
            prop_assume!(from != to);
            let mut moved = lines.clone();
            let entry = moved.remove(from);
            moved.insert(to, entry);
            prop_assert!(verify_chain(moved.iter().map(String::as_str), Some(&head)).is_err());
        }
    }
}
