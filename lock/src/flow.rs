//! The program lock: a meter's tariff changes only with t of n signed approvals.
//!
//! 1. **Lock** ([`lock`], meter): the tariff is encrypted under a fresh random key K
//!    (ChaCha20-Poly1305, the lock header as associated data); K is split (t, n) with Shamir
//!    over GF(2^8). Share i is sealed to the *meter's own* X25519 key (so no holder can read
//!    it), that box is sealed to holder i's key, and the envelope is signed by the meter.
//!    K and the shares are wiped when `lock` returns; only the sealed forms leave it.
//! 2. **Request** ([`request`], a holder, normally a company): the new tariff text and a
//!    reason, bound to the current lock by its digest, signed.
//! 3. **Approve** ([`approve`], each agreeing holder): checks the meter's signatures and the
//!    request, opens its outer box and signs the inner box (still sealed to the meter) together
//!    with the request digest, so the approval counts for that request on that lock only.
//! 4. **Apply** ([`apply`], meter): verifies everything, needs t valid approvals, opens the
//!    inner boxes, recovers K, decrypts the locked tariff, and re-locks the new tariff under a
//!    fresh K with fresh shares and a new lock id. Old approvals and requests name the old
//!    lock and are refused from then on.
//!
//! Apply is all or nothing: one invalid approval (forged, altered, replayed, for another
//! request, duplicated) refuses the whole request, so nothing changes and the meter's
//! operator sees exactly which file was wrong. The steps are typed: only verified approvals
//! make a [`Quorum`], only a quorum whose key opens the lock makes an [`Unlocked`] lock, and
//! only that can be re-locked.
//!
//! Every signed object is signed over a [`Transcript`] with its own domain tag; files are TOML
//! with hex fields.

use std::fmt;

use ed25519_dalek::Signature;
use rand_core_010::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::encoding::{Transcript, hex_array, hex_vec, sha256, toml_error_line};
use crate::identity::{IdentityError, PublicFields, PublicIdentity, SecretIdentity};
use crate::seal::{self, SealError};
use crate::shamir::{self, ShamirError, Share};
use crate::tariff::{Tariff, TariffError};

const LOCK_FORMAT: &str = "dcnet-lock-v1";
const SHARE_FORMAT: &str = "dcnet-share-v1";
const REQUEST_FORMAT: &str = "dcnet-lock-request-v1";
const APPROVAL_FORMAT: &str = "dcnet-lock-approval-v1";

/// Longest reason a request may give.
pub const MAX_REASON_BYTES: usize = 4096;

/// Why a lock step refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// A file is not TOML of the expected shape, or a field does not decode.
    #[error("{0}")]
    Syntax(String),
    /// A file of another kind was given.
    #[error("format {found:?} where {expected:?} was expected")]
    WrongFormat {
        /// Format expected.
        expected: &'static str,
        /// Format found.
        found: String,
    },
    /// A key or identity problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The tariff (current or requested) is invalid.
    #[error("tariff: {0}")]
    Tariff(#[from] TariffError),
    /// Splitting or recovering the key failed.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// The holder set is unusable.
    #[error("holders: {0}")]
    Holders(String),
    /// The reason is empty or too long.
    #[error("the reason must be 1 to {MAX_REASON_BYTES} bytes")]
    BadReason,
    /// The lock record's signature does not verify.
    #[error("the lock record's meter signature does not verify: the lock file was altered")]
    BadLockSignature,
    /// The lock belongs to another meter than the one given.
    #[error(
        "the lock belongs to meter {lock_meter:?} ({lock_fingerprint}), not to {given:?} ({given_fingerprint})"
    )]
    WrongMeter {
        /// Meter named in the lock.
        lock_meter: String,
        /// Its fingerprint.
        lock_fingerprint: String,
        /// Meter given.
        given: String,
        /// Its fingerprint.
        given_fingerprint: String,
    },
    /// The signer is not a holder of the lock.
    #[error("{0:?} (with these keys) is not a holder of this lock")]
    NotAHolder(String),
    /// A share envelope belongs to another lock or holder.
    #[error("the share file is for {what}, not for this {expected}")]
    EnvelopeMismatch {
        /// What the envelope names.
        what: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A share envelope's meter signature does not verify.
    #[error("the share file's meter signature does not verify: it was altered")]
    BadEnvelopeSignature,
    /// The holder's box in the envelope does not open.
    #[error("the share file does not open with the key of {0:?}: {1}")]
    EnvelopeDoesNotOpen(String, SealError),
    /// The request names another lock generation.
    #[error(
        "the request was made for lock generation {request_generation} (lock id {request_lock}), \
         the meter's lock is generation {lock_generation} (lock id {lock}): requests cannot be \
         replayed across a re-lock"
    )]
    StaleRequest {
        /// Generation named by the request.
        request_generation: u64,
        /// Lock id named by the request.
        request_lock: String,
        /// Current generation.
        lock_generation: u64,
        /// Current lock id.
        lock: String,
    },
    /// The request's signature does not verify.
    #[error("the request's signature does not verify with the key of {0:?}: forged or altered")]
    BadRequestSignature(String),
    /// An approval names another lock generation.
    #[error(
        "{source_name}: approval for lock generation {approval_generation}, the meter's lock is \
         generation {lock_generation}: approvals cannot be replayed across a re-lock"
    )]
    StaleApproval {
        /// Where the approval came from.
        source_name: String,
        /// Generation the approval names.
        approval_generation: u64,
        /// Current generation.
        lock_generation: u64,
    },
    /// An approval approves another request.
    #[error(
        "{source_name}: approval of another request (digest {other}), not of this one ({this})"
    )]
    OtherRequest {
        /// Where the approval came from.
        source_name: String,
        /// Digest the approval names.
        other: String,
        /// This request's digest.
        this: String,
    },
    /// An approval names a holder the lock does not have.
    #[error("{source_name}: holder {holder:?} with index {index} is not a holder of this lock")]
    UnknownApprover {
        /// Where the approval came from.
        source_name: String,
        /// Holder named.
        holder: String,
        /// Index named.
        index: u8,
    },
    /// An approval's signature does not verify.
    #[error(
        "{source_name}: signature does not verify with the key of holder {holder:?}: forged or altered"
    )]
    BadApprovalSignature {
        /// Where the approval came from.
        source_name: String,
        /// Holder named.
        holder: String,
    },
    /// Two approvals from one holder.
    #[error("{source_name}: holder {holder:?} already approved in {first}")]
    DuplicateApproval {
        /// Where the second approval came from.
        source_name: String,
        /// Where the first came from.
        first: String,
        /// Holder.
        holder: String,
    },
    /// The share inside a signed approval does not open or is not the holder's.
    #[error("{source_name}: the share of holder {holder:?} does not open: it was altered")]
    ShareRejected {
        /// Where the approval came from.
        source_name: String,
        /// Holder named.
        holder: String,
    },
    /// Fewer valid approvals than the threshold.
    #[error("{valid} valid approval(s), the lock needs {needed}")]
    NotEnoughApprovals {
        /// Valid approvals.
        valid: usize,
        /// Threshold.
        needed: u8,
    },
    /// The plain tariff does not match the one the lock holds.
    #[error(
        "the current tariff (sha256 {found}) is not the locked one (sha256 {locked}): it was changed outside the lock"
    )]
    TariffMismatch {
        /// Digest of the tariff given.
        found: String,
        /// Digest in the lock.
        locked: String,
    },
    /// The recovered key does not open the locked tariff.
    #[error("the recovered key does not open the locked tariff")]
    KeyDoesNotOpen,
}

/// A holder's role: the household's user or a company (provider, grid operator, regulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The household.
    User,
    /// A company.
    Company,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Company => "company",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A share holder: role and public identity. Holder i (1-based, in lock order) holds share i.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's role.
    pub role: Role,
    /// The holder's keys.
    pub identity: PublicIdentity,
}

/// The meter-signed public description of the current lock (the `lock.toml` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    lock_id: [u8; 16],
    generation: u64,
    threshold: u8,
    tariff_sha256: [u8; 32],
    meter: PublicIdentity,
    holders: Vec<Holder>,
    sealed_tariff: Vec<u8>,
    signature: Signature,
    digest: [u8; 32],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    format: String,
    lock_id: String,
    generation: u64,
    threshold: u8,
    tariff_sha256: String,
    sealed_tariff: String,
    signature: String,
    meter: PublicFields,
    #[serde(rename = "holder")]
    holders: Vec<HolderFields>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderFields {
    role: String,
    name: String,
    ed25519: String,
    x25519: String,
}

fn header_digest(
    lock_id: &[u8; 16],
    generation: u64,
    threshold: u8,
    tariff_sha256: &[u8; 32],
    meter: &PublicIdentity,
    holders: &[Holder],
) -> [u8; 32] {
    let mut transcript = Transcript::new("dcnet lock header v1");
    transcript
        .push(lock_id)
        .push_u64(generation)
        .push(&[threshold])
        .push(tariff_sha256)
        .push(meter.name().as_bytes())
        .push(meter.signing_key().as_bytes())
        .push(meter.exchange_key().as_bytes())
        .push_u64(holders.len() as u64);
    for holder in holders {
        transcript
            .push(holder.role.as_str().as_bytes())
            .push(holder.identity.name().as_bytes())
            .push(holder.identity.signing_key().as_bytes())
            .push(holder.identity.exchange_key().as_bytes());
    }
    transcript.digest()
}

fn record_message(digest: &[u8; 32], sealed_tariff: &[u8]) -> Transcript {
    let mut transcript = Transcript::new("dcnet lock record v1");
    transcript.push(digest).push(sealed_tariff);
    transcript
}

fn inner_context(lock_digest: &[u8; 32], index: u8) -> Transcript {
    let mut transcript = Transcript::new("dcnet share to meter v1");
    transcript.push(lock_digest).push(&[index]);
    transcript
}

fn outer_context(lock_digest: &[u8; 32], index: u8) -> Transcript {
    let mut transcript = Transcript::new("dcnet share to holder v1");
    transcript.push(lock_digest).push(&[index]);
    transcript
}

impl LockRecord {
    /// The lock id, fresh for every lock.
    pub fn lock_id(&self) -> String {
        hex::encode(self.lock_id)
    }

    /// How many times the tariff was changed under the lock.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// t: approvals needed.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The holders, share i held by `holders()[i - 1]`.
    pub fn holders(&self) -> &[Holder] {
        &self.holders
    }

    /// The meter.
    pub fn meter(&self) -> &PublicIdentity {
        &self.meter
    }

    /// SHA-256 of the header: what requests, envelopes and approvals bind to.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// SHA-256 of the tariff text the lock holds.
    pub fn tariff_sha256(&self) -> [u8; 32] {
        self.tariff_sha256
    }

    /// Checks that the lock was made by `meter` (a key the caller trusts).
    pub fn check_meter(&self, meter: &PublicIdentity) -> Result<(), FlowError> {
        if self.meter.same_keys(meter) {
            Ok(())
        } else {
            Err(FlowError::WrongMeter {
                lock_meter: self.meter.name().to_string(),
                lock_fingerprint: self.meter.fingerprint(),
                given: meter.name().to_string(),
                given_fingerprint: meter.fingerprint(),
            })
        }
    }

    fn holder_index(&self, identity: &PublicIdentity) -> Option<u8> {
        self.holders
            .iter()
            .position(|holder| holder.identity.same_keys(identity))
            .and_then(|position| u8::try_from(position + 1).ok())
    }

    fn holder(&self, index: u8) -> Option<&Holder> {
        usize::from(index)
            .checked_sub(1)
            .and_then(|position| self.holders.get(position))
    }

    /// The `lock.toml` text.
    pub fn to_toml(&self) -> String {
        let file = LockFile {
            format: LOCK_FORMAT.into(),
            lock_id: hex::encode(self.lock_id),
            generation: self.generation,
            threshold: self.threshold,
            tariff_sha256: hex::encode(self.tariff_sha256),
            sealed_tariff: hex::encode(&self.sealed_tariff),
            signature: hex::encode(self.signature.to_bytes()),
            meter: self.meter.fields(),
            holders: self
                .holders
                .iter()
                .map(|holder| {
                    let fields = holder.identity.fields();
                    HolderFields {
                        role: holder.role.as_str().into(),
                        name: fields.name,
                        ed25519: fields.ed25519,
                        x25519: fields.x25519,
                    }
                })
                .collect(),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// Reads `lock.toml`, checking its shape and the meter's signature under the key it names.
    /// Callers that trust a meter key also call [`LockRecord::check_meter`].
    pub fn from_toml(text: &str) -> Result<Self, FlowError> {
        let file: LockFile = parse_toml(text)?;
        expect_format(LOCK_FORMAT, &file.format)?;
        let lock_id = hex_array::<16>("lock_id", &file.lock_id).map_err(FlowError::Syntax)?;
        let tariff_sha256 =
            hex_array::<32>("tariff_sha256", &file.tariff_sha256).map_err(FlowError::Syntax)?;
        let sealed_tariff =
            hex_vec("sealed_tariff", &file.sealed_tariff).map_err(FlowError::Syntax)?;
        let signature = signature_field("signature", &file.signature)?;
        let meter = PublicIdentity::from_fields(&file.meter)?;
        let holders = file
            .holders
            .iter()
            .map(|fields| {
                let role = match fields.role.as_str() {
                    "user" => Role::User,
                    "company" => Role::Company,
                    other => {
                        return Err(FlowError::Syntax(format!(
                            "holder {:?}: role {other:?} is neither \"user\" nor \"company\"",
                            fields.name
                        )));
                    }
                };
                let identity = PublicIdentity::from_fields(&PublicFields {
                    name: fields.name.clone(),
                    ed25519: fields.ed25519.clone(),
                    x25519: fields.x25519.clone(),
                })?;
                Ok(Holder { role, identity })
            })
            .collect::<Result<Vec<_>, FlowError>>()?;
        check_holders(&meter, &holders, file.threshold)?;
        let digest = header_digest(
            &lock_id,
            file.generation,
            file.threshold,
            &tariff_sha256,
            &meter,
            &holders,
        );
        meter
            .verify(
                record_message(&digest, &sealed_tariff).as_bytes(),
                &signature,
            )
            .map_err(|_| FlowError::BadLockSignature)?;
        Ok(Self {
            lock_id,
            generation: file.generation,
            threshold: file.threshold,
            tariff_sha256,
            meter,
            holders,
            sealed_tariff,
            signature,
            digest,
        })
    }
}

/// One holder's sealed share, as the meter hands it out (`shares/<holder>.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareEnvelope {
    lock_digest: [u8; 32],
    generation: u64,
    holder: String,
    index: u8,
    sealed: Vec<u8>,
    signature: Signature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareFile {
    format: String,
    lock_digest: String,
    generation: u64,
    holder: String,
    index: u8,
    sealed: String,
    signature: String,
}

fn envelope_message(lock_digest: &[u8; 32], index: u8, holder: &str, sealed: &[u8]) -> Transcript {
    let mut transcript = Transcript::new("dcnet share envelope v1");
    transcript
        .push(lock_digest)
        .push(&[index])
        .push(holder.as_bytes())
        .push(sealed);
    transcript
}

impl ShareEnvelope {
    /// The holder it belongs to.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The share index.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The share file's text.
    pub fn to_toml(&self) -> String {
        let file = ShareFile {
            format: SHARE_FORMAT.into(),
            lock_digest: hex::encode(self.lock_digest),
            generation: self.generation,
            holder: self.holder.clone(),
            index: self.index,
            sealed: hex::encode(&self.sealed),
            signature: hex::encode(self.signature.to_bytes()),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// Reads a share file (signatures are checked by [`approve`], which knows the lock).
    pub fn from_toml(text: &str) -> Result<Self, FlowError> {
        let file: ShareFile = parse_toml(text)?;
        expect_format(SHARE_FORMAT, &file.format)?;
        Ok(Self {
            lock_digest: hex_array::<32>("lock_digest", &file.lock_digest)
                .map_err(FlowError::Syntax)?,
            generation: file.generation,
            holder: file.holder,
            index: file.index,
            sealed: hex_vec("sealed", &file.sealed).map_err(FlowError::Syntax)?,
            signature: signature_field("signature", &file.signature)?,
        })
    }
}

/// A lock as `lock` and `apply` produce it: the record and one envelope per holder.
#[derive(Debug, Clone)]
pub struct Locked {
    /// The public lock record.
    pub record: LockRecord,
    /// Envelope i - 1 is for holder i.
    pub envelopes: Vec<ShareEnvelope>,
}

fn check_holders(
    meter: &PublicIdentity,
    holders: &[Holder],
    threshold: u8,
) -> Result<(), FlowError> {
    let n = holders.len();
    if !(2..=usize::from(shamir::MAX_SHARES)).contains(&n) {
        return Err(FlowError::Holders(format!(
            "{n} holders, a lock needs 2 to 255"
        )));
    }
    let users = holders
        .iter()
        .filter(|holder| holder.role == Role::User)
        .count();
    if users != 1 {
        return Err(FlowError::Holders(format!(
            "{users} users, a lock has exactly one user"
        )));
    }
    for (position, holder) in holders.iter().enumerate() {
        if holder.identity.same_keys(meter) {
            return Err(FlowError::Holders(format!(
                "{:?} has the meter's keys: the meter cannot hold a share of its own lock",
                holder.identity.name()
            )));
        }
        for earlier in &holders[..position] {
            if earlier.identity.name() == holder.identity.name()
                || earlier.identity.same_keys(&holder.identity)
            {
                return Err(FlowError::Holders(format!(
                    "{:?} and {:?} have the same name or keys",
                    earlier.identity.name(),
                    holder.identity.name()
                )));
            }
        }
    }
    if threshold < 2 || usize::from(threshold) > n {
        return Err(FlowError::Holders(format!(
            "threshold t = {threshold} must satisfy 2 <= t <= n = {n}"
        )));
    }
    Ok(())
}

/// Locks `tariff_text` under a fresh key split (`threshold`, `holders.len()`).
pub fn lock(
    meter: &SecretIdentity,
    tariff_text: &str,
    holders: Vec<Holder>,
    threshold: u8,
    generation: u64,
    rng: &mut impl CryptoRng,
) -> Result<Locked, FlowError> {
    Tariff::from_toml(tariff_text)?;
    let meter_public = meter.public();
    check_holders(&meter_public, &holders, threshold)?;
    let n =
        u8::try_from(holders.len()).map_err(|_| FlowError::Holders("too many holders".into()))?;
    let mut lock_id = [0u8; 16];
    rng.fill_bytes(&mut lock_id);
    let tariff_sha256 = sha256(tariff_text.as_bytes());
    let digest = header_digest(
        &lock_id,
        generation,
        threshold,
        &tariff_sha256,
        &meter_public,
        &holders,
    );

    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(key.as_mut());
    let sealed_tariff = seal::encrypt_once(&key, tariff_text.as_bytes(), &digest);
    let shares = shamir::split(key.as_ref(), threshold, n, rng)?;
    drop(key);

    let mut envelopes = Vec::with_capacity(holders.len());
    for (holder, share) in holders.iter().zip(&shares) {
        let index = share.index();
        let inner = seal::seal(
            meter_public.exchange_key(),
            share.as_bytes(),
            inner_context(&digest, index).as_bytes(),
            rng,
        );
        let sealed = seal::seal(
            holder.identity.exchange_key(),
            &inner,
            outer_context(&digest, index).as_bytes(),
            rng,
        );
        let name = holder.identity.name().to_string();
        let signature = meter.sign(envelope_message(&digest, index, &name, &sealed).as_bytes());
        envelopes.push(ShareEnvelope {
            lock_digest: digest,
            generation,
            holder: name,
            index,
            sealed,
            signature,
        });
    }
    // The shares are wiped here, before the lock leaves the meter.
    drop(shares);

    let signature = meter.sign(record_message(&digest, &sealed_tariff).as_bytes());
    Ok(Locked {
        record: LockRecord {
            lock_id,
            generation,
            threshold,
            tariff_sha256,
            meter: meter_public,
            holders,
            sealed_tariff,
            signature,
            digest,
        },
        envelopes,
    })
}

/// A signed request to replace the locked tariff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    lock_digest: [u8; 32],
    generation: u64,
    lock_id: [u8; 16],
    requester: String,
    reason: String,
    nonce: [u8; 16],
    tariff: String,
    signature: Signature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    format: String,
    lock_id: String,
    generation: u64,
    lock_digest: String,
    requester: String,
    reason: String,
    nonce: String,
    signature: String,
    tariff: String,
}

impl Request {
    fn message(&self) -> Transcript {
        let mut transcript = Transcript::new("dcnet lock request v1");
        transcript
            .push(&self.lock_digest)
            .push(self.requester.as_bytes())
            .push(self.reason.as_bytes())
            .push(&self.nonce)
            .push(self.tariff.as_bytes());
        transcript
    }

    /// SHA-256 of the signed content: what approvals name.
    pub fn digest(&self) -> [u8; 32] {
        self.message().digest()
    }

    /// Who asked.
    pub fn requester(&self) -> &str {
        &self.requester
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The requested tariff text.
    pub fn tariff_text(&self) -> &str {
        &self.tariff
    }

    /// Lock generation the request is for.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The request file's text.
    pub fn to_toml(&self) -> String {
        let file = RequestFile {
            format: REQUEST_FORMAT.into(),
            lock_id: hex::encode(self.lock_id),
            generation: self.generation,
            lock_digest: hex::encode(self.lock_digest),
            requester: self.requester.clone(),
            reason: self.reason.clone(),
            nonce: hex::encode(self.nonce),
            signature: hex::encode(self.signature.to_bytes()),
            tariff: self.tariff.clone(),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// Reads a request file (signatures are checked against a lock by [`approve`]/[`apply`]).
    pub fn from_toml(text: &str) -> Result<Self, FlowError> {
        let file: RequestFile = parse_toml(text)?;
        expect_format(REQUEST_FORMAT, &file.format)?;
        Ok(Self {
            lock_digest: hex_array::<32>("lock_digest", &file.lock_digest)
                .map_err(FlowError::Syntax)?,
            generation: file.generation,
            lock_id: hex_array::<16>("lock_id", &file.lock_id).map_err(FlowError::Syntax)?,
            requester: file.requester,
            reason: file.reason,
            nonce: hex_array::<16>("nonce", &file.nonce).map_err(FlowError::Syntax)?,
            tariff: file.tariff,
            signature: signature_field("signature", &file.signature)?,
        })
    }

    /// Checks the request against the current lock: same lock, a holder's valid signature and
    /// a valid tariff. Returns the parsed new tariff.
    pub fn verify(&self, record: &LockRecord) -> Result<Tariff, FlowError> {
        if self.lock_digest != record.digest {
            return Err(FlowError::StaleRequest {
                request_generation: self.generation,
                request_lock: hex::encode(self.lock_id),
                lock_generation: record.generation,
                lock: record.lock_id(),
            });
        }
        let holder = record
            .holders
            .iter()
            .find(|holder| holder.identity.name() == self.requester)
            .ok_or_else(|| FlowError::NotAHolder(self.requester.clone()))?;
        holder
            .identity
            .verify(self.message().as_bytes(), &self.signature)
            .map_err(|_| FlowError::BadRequestSignature(self.requester.clone()))?;
        check_reason(&self.reason)?;
        Ok(Tariff::from_toml(&self.tariff)?)
    }
}

fn check_reason(reason: &str) -> Result<(), FlowError> {
    if reason.trim().is_empty() || reason.len() > MAX_REASON_BYTES {
        Err(FlowError::BadReason)
    } else {
        Ok(())
    }
}

/// A holder makes and signs a request to change the tariff of the lock in `record`.
pub fn request(
    requester: &SecretIdentity,
    record: &LockRecord,
    tariff_text: &str,
    reason: &str,
    rng: &mut impl CryptoRng,
) -> Result<Request, FlowError> {
    Tariff::from_toml(tariff_text)?;
    check_reason(reason)?;
    let public = requester.public();
    let index = record
        .holder_index(&public)
        .ok_or_else(|| FlowError::NotAHolder(public.name().to_string()))?;
    let name = record
        .holder(index)
        .map(|h| h.identity.name().to_string())
        .unwrap_or_default();
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let mut request = Request {
        lock_digest: record.digest,
        generation: record.generation,
        lock_id: record.lock_id,
        requester: name,
        reason: reason.to_string(),
        nonce,
        tariff: tariff_text.to_string(),
        signature: Signature::from_bytes(&[0u8; 64]),
    };
    request.signature = requester.sign(request.message().as_bytes());
    Ok(request)
}

/// A holder's signed agreement to one request, carrying its share still sealed to the meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    lock_digest: [u8; 32],
    generation: u64,
    request_digest: [u8; 32],
    holder: String,
    index: u8,
    share: Vec<u8>,
    signature: Signature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalFile {
    format: String,
    generation: u64,
    lock_digest: String,
    request_digest: String,
    holder: String,
    index: u8,
    share: String,
    signature: String,
}

impl Approval {
    fn message(&self) -> Transcript {
        let mut transcript = Transcript::new("dcnet lock approval v1");
        transcript
            .push(&self.lock_digest)
            .push(&self.request_digest)
            .push(&[self.index])
            .push(self.holder.as_bytes())
            .push(&self.share);
        transcript
    }

    /// The approving holder.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The approval file's text.
    pub fn to_toml(&self) -> String {
        let file = ApprovalFile {
            format: APPROVAL_FORMAT.into(),
            generation: self.generation,
            lock_digest: hex::encode(self.lock_digest),
            request_digest: hex::encode(self.request_digest),
            holder: self.holder.clone(),
            index: self.index,
            share: hex::encode(&self.share),
            signature: hex::encode(self.signature.to_bytes()),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// Reads an approval file (verified by [`apply`]).
    pub fn from_toml(text: &str) -> Result<Self, FlowError> {
        let file: ApprovalFile = parse_toml(text)?;
        expect_format(APPROVAL_FORMAT, &file.format)?;
        Ok(Self {
            lock_digest: hex_array::<32>("lock_digest", &file.lock_digest)
                .map_err(FlowError::Syntax)?,
            generation: file.generation,
            request_digest: hex_array::<32>("request_digest", &file.request_digest)
                .map_err(FlowError::Syntax)?,
            holder: file.holder,
            index: file.index,
            share: hex_vec("share", &file.share).map_err(FlowError::Syntax)?,
            signature: signature_field("signature", &file.signature)?,
        })
    }
}

/// A holder approves `request`: checks the lock (made by the trusted `meter`), its own share
/// envelope and the request, then signs its sealed share for this request only.
pub fn approve(
    holder: &SecretIdentity,
    meter: &PublicIdentity,
    record: &LockRecord,
    envelope: &ShareEnvelope,
    request: &Request,
) -> Result<Approval, FlowError> {
    record.check_meter(meter)?;
    let public = holder.public();
    let index = record
        .holder_index(&public)
        .ok_or_else(|| FlowError::NotAHolder(public.name().to_string()))?;
    let name = record
        .holder(index)
        .map(|h| h.identity.name().to_string())
        .unwrap_or_default();
    if envelope.lock_digest != record.digest {
        return Err(FlowError::EnvelopeMismatch {
            what: format!("lock generation {}", envelope.generation),
            expected: "lock",
        });
    }
    if envelope.index != index || envelope.holder != name {
        return Err(FlowError::EnvelopeMismatch {
            what: format!("holder {:?} (share {})", envelope.holder, envelope.index),
            expected: "holder",
        });
    }
    meter
        .verify(
            envelope_message(
                &envelope.lock_digest,
                envelope.index,
                &envelope.holder,
                &envelope.sealed,
            )
            .as_bytes(),
            &envelope.signature,
        )
        .map_err(|_| FlowError::BadEnvelopeSignature)?;
    request.verify(record)?;
    let inner = seal::open(
        holder.exchange_secret(),
        &envelope.sealed,
        outer_context(&record.digest, index).as_bytes(),
    )
    .map_err(|err| FlowError::EnvelopeDoesNotOpen(name.clone(), err))?;
    let mut approval = Approval {
        lock_digest: record.digest,
        generation: record.generation,
        request_digest: request.digest(),
        holder: name,
        index,
        share: inner.to_vec(),
        signature: Signature::from_bytes(&[0u8; 64]),
    };
    approval.signature = holder.sign(approval.message().as_bytes());
    Ok(approval)
}

/// At least t verified approvals with their shares opened: the only way to an [`Unlocked`] lock.
pub struct Quorum {
    shares: Vec<Share>,
    approvers: Vec<String>,
}

impl fmt::Debug for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Quorum(approvers {:?}, <shares redacted>)",
            self.approvers
        )
    }
}

impl Quorum {
    /// Verifies `request` and every approval against the current lock; `meter` must be the
    /// lock's meter. `approvals` pairs each approval with a name for errors (its file).
    pub fn verify(
        meter: &SecretIdentity,
        record: &LockRecord,
        request: &Request,
        approvals: &[(String, Approval)],
    ) -> Result<(Self, Tariff), FlowError> {
        record.check_meter(&meter.public())?;
        let new_tariff = request.verify(record)?;
        let request_digest = request.digest();
        let mut shares = Vec::with_capacity(approvals.len());
        let mut approvers: Vec<String> = Vec::with_capacity(approvals.len());
        let mut sources: Vec<&str> = Vec::with_capacity(approvals.len());
        for (source, approval) in approvals {
            let source_name = source.clone();
            if approval.lock_digest != record.digest {
                return Err(FlowError::StaleApproval {
                    source_name,
                    approval_generation: approval.generation,
                    lock_generation: record.generation,
                });
            }
            if approval.request_digest != request_digest {
                return Err(FlowError::OtherRequest {
                    source_name,
                    other: hex::encode(&approval.request_digest[..8]),
                    this: hex::encode(&request_digest[..8]),
                });
            }
            let holder = record
                .holder(approval.index)
                .filter(|holder| holder.identity.name() == approval.holder)
                .ok_or_else(|| FlowError::UnknownApprover {
                    source_name: source.clone(),
                    holder: approval.holder.clone(),
                    index: approval.index,
                })?;
            holder
                .identity
                .verify(approval.message().as_bytes(), &approval.signature)
                .map_err(|_| FlowError::BadApprovalSignature {
                    source_name: source.clone(),
                    holder: approval.holder.clone(),
                })?;
            if let Some(first) = approvers.iter().position(|name| *name == approval.holder) {
                return Err(FlowError::DuplicateApproval {
                    source_name,
                    first: sources[first].to_string(),
                    holder: approval.holder.clone(),
                });
            }
            let rejected = || FlowError::ShareRejected {
                source_name: source.clone(),
                holder: approval.holder.clone(),
            };
            let bytes = seal::open(
                meter.exchange_secret(),
                &approval.share,
                inner_context(&record.digest, approval.index).as_bytes(),
            )
            .map_err(|_| rejected())?;
            let share = Share::from_bytes(bytes).map_err(|_| rejected())?;
            if share.index() != approval.index {
                return Err(rejected());
            }
            shares.push(share);
            approvers.push(approval.holder.clone());
            sources.push(source);
        }
        if shares.len() < usize::from(record.threshold) {
            return Err(FlowError::NotEnoughApprovals {
                valid: shares.len(),
                needed: record.threshold,
            });
        }
        Ok((Self { shares, approvers }, new_tariff))
    }

    /// The holders whose approvals make up the quorum.
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }

    /// Recovers K and opens the locked tariff, which must be `current_tariff_text`.
    pub fn unlock(
        self,
        record: &LockRecord,
        current_tariff_text: &str,
    ) -> Result<Unlocked, FlowError> {
        let found = sha256(current_tariff_text.as_bytes());
        if found != record.tariff_sha256 {
            return Err(FlowError::TariffMismatch {
                found: hex::encode(found),
                locked: hex::encode(record.tariff_sha256),
            });
        }
        let key = shamir::recover(&self.shares, record.threshold)?;
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(
            <[u8; 32]>::try_from(key.as_slice()).map_err(|_| FlowError::KeyDoesNotOpen)?,
        );
        let tariff = seal::decrypt_once(&key, &record.sealed_tariff, &record.digest)
            .map_err(|_| FlowError::KeyDoesNotOpen)?;
        if sha256(&tariff) != record.tariff_sha256 {
            return Err(FlowError::KeyDoesNotOpen);
        }
        Ok(Unlocked {
            holders: record.holders.clone(),
            threshold: record.threshold,
            generation: record.generation,
        })
    }
}

/// A lock opened by a quorum: it can only be re-locked, with a new tariff under a new key.
#[derive(Debug)]
pub struct Unlocked {
    holders: Vec<Holder>,
    threshold: u8,
    generation: u64,
}

impl Unlocked {
    /// Locks `tariff_text` under a fresh key and fresh shares, one generation later.
    pub fn relock(
        self,
        meter: &SecretIdentity,
        tariff_text: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<Locked, FlowError> {
        lock(
            meter,
            tariff_text,
            self.holders,
            self.threshold,
            self.generation + 1,
            rng,
        )
    }
}

/// The result of a successful [`apply`].
#[derive(Debug)]
pub struct Applied {
    /// The new lock and envelopes.
    pub locked: Locked,
    /// The tariff now in force.
    pub tariff: Tariff,
    /// Holders whose approvals were used.
    pub approvers: Vec<String>,
}

/// The meter applies a request: verify, recover K, open, re-lock the new tariff.
pub fn apply(
    meter: &SecretIdentity,
    record: &LockRecord,
    current_tariff_text: &str,
    request: &Request,
    approvals: &[(String, Approval)],
    rng: &mut impl CryptoRng,
) -> Result<Applied, FlowError> {
    let (quorum, tariff) = Quorum::verify(meter, record, request, approvals)?;
    let approvers = quorum.approvers().to_vec();
    let unlocked = quorum.unlock(record, current_tariff_text)?;
    let locked = unlocked.relock(meter, request.tariff_text(), rng)?;
    Ok(Applied {
        locked,
        tariff,
        approvers,
    })
}

fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, FlowError> {
    toml::from_str(text).map_err(|err| FlowError::Syntax(toml_error_line(text, &err)))
}

fn expect_format(expected: &'static str, found: &str) -> Result<(), FlowError> {
    if found == expected {
        Ok(())
    } else {
        Err(FlowError::WrongFormat {
            expected,
            found: found.to_string(),
        })
    }
}

fn signature_field(field: &'static str, text: &str) -> Result<Signature, FlowError> {
    hex_array::<64>(field, text)
        .map(|bytes| Signature::from_bytes(&bytes))
        .map_err(FlowError::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::os_rng;

    const TARIFF: &str = "currency = \"EUR\"\n[[period]]\nname = \"day\"\nprice = \"0.3\"\nhours = [\"07:00-19:00\"]\n\
                          [[period]]\nname = \"night\"\nprice = \"0.1\"\nhours = [\"19:00-07:00\"]\n";
    const NEW_TARIFF: &str = "currency = \"EUR\"\n[[period]]\nname = \"day\"\nprice = \"0.3\"\nhours = [\"07:00-20:00\"]\n\
                              [[period]]\nname = \"night\"\nprice = \"0.1\"\nhours = [\"20:00-07:00\"]\n";

    struct World {
        meter: SecretIdentity,
        holders: Vec<SecretIdentity>,
        locked: Locked,
    }

    /// A meter, a user and three companies, t = 3 of n = 4.
    fn world() -> World {
        let rng = &mut os_rng();
        let meter = SecretIdentity::generate("meter", rng).unwrap();
        let holders: Vec<SecretIdentity> = ["user", "grid", "supplier", "regulator"]
            .iter()
            .map(|name| SecretIdentity::generate(name, rng).unwrap())
            .collect();
        let roles = holders
            .iter()
            .enumerate()
            .map(|(i, h)| Holder {
                role: if i == 0 { Role::User } else { Role::Company },
                identity: h.public(),
            })
            .collect();
        let locked = lock(&meter, TARIFF, roles, 3, 0, rng).unwrap();
        World {
            meter,
            holders,
            locked,
        }
    }

    fn approvals(world: &World, request: &Request, who: &[usize]) -> Vec<(String, Approval)> {
        who.iter()
            .map(|&i| {
                let approval = approve(
                    &world.holders[i],
                    &world.meter.public(),
                    &world.locked.record,
                    &world.locked.envelopes[i],
                    request,
                )
                .unwrap();
                (format!("approval-{i}"), approval)
            })
            .collect()
    }

    #[test]
    fn files_round_trip() {
        let world = world();
        let record = LockRecord::from_toml(&world.locked.record.to_toml()).unwrap();
        assert_eq!(record, world.locked.record);
        let envelope = ShareEnvelope::from_toml(&world.locked.envelopes[1].to_toml()).unwrap();
        assert_eq!(envelope, world.locked.envelopes[1]);
        let request = request(
            &world.holders[1],
            &record,
            NEW_TARIFF,
            "summer\nhours",
            &mut os_rng(),
        )
        .unwrap();
        assert_eq!(Request::from_toml(&request.to_toml()).unwrap(), request);
        let (_, approval) = approvals(&world, &request, &[0]).remove(0);
        assert_eq!(Approval::from_toml(&approval.to_toml()).unwrap(), approval);
    }

    #[test]
    fn t_approvals_change_the_tariff_and_relock() {
        let world = world();
        let request = request(
            &world.holders[1],
            &world.locked.record,
            NEW_TARIFF,
            "longer day",
            &mut os_rng(),
        )
        .unwrap();
        let given = approvals(&world, &request, &[3, 0, 2]);
        let applied = apply(
            &world.meter,
            &world.locked.record,
            TARIFF,
            &request,
            &given,
            &mut os_rng(),
        )
        .unwrap();
        assert_eq!(applied.tariff, Tariff::from_toml(NEW_TARIFF).unwrap());
        assert_eq!(applied.approvers, ["regulator", "user", "supplier"]);
        let relocked = &applied.locked.record;
        assert_eq!(relocked.generation(), 1);
        assert_ne!(relocked.lock_id(), world.locked.record.lock_id());
        assert_eq!(relocked.tariff_sha256(), sha256(NEW_TARIFF.as_bytes()));
        // The same approvals are useless against the new lock.
        let again = apply(
            &world.meter,
            relocked,
            NEW_TARIFF,
            &request,
            &given,
            &mut os_rng(),
        );
        assert!(
            matches!(again, Err(FlowError::StaleRequest { .. })),
            "{again:?}"
        );
    }

    #[test]
    fn fewer_than_t_approvals_are_refused() {
        let world = world();
        let request = request(
            &world.holders[0],
            &world.locked.record,
            NEW_TARIFF,
            "cheaper",
            &mut os_rng(),
        )
        .unwrap();
        let given = approvals(&world, &request, &[0, 1]);
        let result = apply(
            &world.meter,
            &world.locked.record,
            TARIFF,
            &request,
            &given,
            &mut os_rng(),
        );
        assert_eq!(
            result.unwrap_err(),
            FlowError::NotEnoughApprovals {
                valid: 2,
                needed: 3
            }
        );
    }

    #[test]
    fn a_validly_signed_but_altered_share_is_refused() {
        // A dishonest holder alters its sealed share and signs the result properly: the
        // signature verifies, the box to the meter does not open.
        let world = world();
        let request = request(
            &world.holders[1],
            &world.locked.record,
            NEW_TARIFF,
            "x",
            &mut os_rng(),
        )
        .unwrap();
        let mut given = approvals(&world, &request, &[0, 1, 2]);
        let (_, approval) = &mut given[2];
        approval.share[40] ^= 0x80;
        approval.signature = world.holders[2].sign(approval.message().as_bytes());
        let result = apply(
            &world.meter,
            &world.locked.record,
            TARIFF,
            &request,
            &given,
            &mut os_rng(),
        );
        assert_eq!(
            result.unwrap_err(),
            FlowError::ShareRejected {
                source_name: "approval-2".into(),
                holder: "supplier".into()
            }
        );
    }

    #[test]
    fn a_share_moved_to_another_holder_slot_is_refused() {
        // Holder 3 copies holder 2's sealed share into its own approval: the box binds the
        // share index, so it does not open as share 3.
        let world = world();
        let request = request(
            &world.holders[1],
            &world.locked.record,
            NEW_TARIFF,
            "x",
            &mut os_rng(),
        )
        .unwrap();
        let mut given = approvals(&world, &request, &[0, 1, 2]);
        let stolen = given[1].1.share.clone();
        let (_, approval) = &mut given[2];
        approval.share = stolen;
        approval.signature = world.holders[2].sign(approval.message().as_bytes());
        let result = apply(
            &world.meter,
            &world.locked.record,
            TARIFF,
            &request,
            &given,
            &mut os_rng(),
        );
        assert!(
            matches!(result, Err(FlowError::ShareRejected { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn approvals_for_another_request_and_duplicates_are_refused() {
        let world = world();
        let record = &world.locked.record;
        let first = request(&world.holders[1], record, NEW_TARIFF, "one", &mut os_rng()).unwrap();
        let second = request(&world.holders[1], record, NEW_TARIFF, "two", &mut os_rng()).unwrap();
        let mut given = approvals(&world, &first, &[0, 1]);
        given.extend(approvals(&world, &second, &[2]));
        let result = apply(&world.meter, record, TARIFF, &first, &given, &mut os_rng());
        assert!(
            matches!(result, Err(FlowError::OtherRequest { .. })),
            "{result:?}"
        );
        let mut given = approvals(&world, &first, &[0, 1, 1]);
        given[2].0 = "copy".into();
        let result = apply(&world.meter, record, TARIFF, &first, &given, &mut os_rng());
        assert!(
            matches!(result, Err(FlowError::DuplicateApproval { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_holder_cannot_read_its_own_share() {
        // The holder's box holds another box, sealed to the meter: opening it with the
        // holder's own key fails.
        let world = world();
        let envelope = &world.locked.envelopes[0];
        let digest = world.locked.record.digest();
        let inner = seal::open(
            world.holders[0].exchange_secret(),
            &envelope.sealed,
            outer_context(&digest, 1).as_bytes(),
        )
        .unwrap();
        assert!(
            seal::open(
                world.holders[0].exchange_secret(),
                &inner,
                inner_context(&digest, 1).as_bytes()
            )
            .is_err()
        );
        assert!(
            seal::open(
                world.meter.exchange_secret(),
                &inner,
                inner_context(&digest, 1).as_bytes()
            )
            .is_ok()
        );
    }

    #[test]
    fn outsiders_and_wrong_meters_are_refused() {
        let world = world();
        let outsider = SecretIdentity::generate("outsider", &mut os_rng()).unwrap();
        let record = &world.locked.record;
        assert!(matches!(
            request(&outsider, record, NEW_TARIFF, "x", &mut os_rng()),
            Err(FlowError::NotAHolder(_))
        ));
        let request = request(&world.holders[1], record, NEW_TARIFF, "x", &mut os_rng()).unwrap();
        let result = approve(
            &world.holders[0],
            &outsider.public(),
            record,
            &world.locked.envelopes[0],
            &request,
        );
        assert!(
            matches!(result, Err(FlowError::WrongMeter { .. })),
            "{result:?}"
        );
        let result = approve(
            &world.holders[0],
            &world.meter.public(),
            record,
            &world.locked.envelopes[1],
            &request,
        );
        assert!(
            matches!(result, Err(FlowError::EnvelopeMismatch { .. })),
            "{result:?}"
        );
        let given = approvals(&world, &request, &[0, 1, 2]);
        let result = apply(&outsider, record, TARIFF, &request, &given, &mut os_rng());
        assert!(
            matches!(result, Err(FlowError::WrongMeter { .. })),
            "{result:?}"
        );
        let result = apply(
            &world.meter,
            record,
            NEW_TARIFF,
            &request,
            &given,
            &mut os_rng(),
        );
        assert!(
            matches!(result, Err(FlowError::TariffMismatch { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn an_altered_lock_file_is_refused() {
        let world = world();
        let text = world
            .locked
            .record
            .to_toml()
            .replace("threshold = 3", "threshold = 2");
        assert_eq!(
            LockRecord::from_toml(&text),
            Err(FlowError::BadLockSignature)
        );
    }

    #[test]
    fn bad_holder_sets_are_refused() {
        let rng = &mut os_rng();
        let meter = SecretIdentity::generate("meter", rng).unwrap();
        let user = SecretIdentity::generate("user", rng).unwrap();
        let company = SecretIdentity::generate("company", rng).unwrap();
        let holder = |role, who: &SecretIdentity| Holder {
            role,
            identity: who.public(),
        };
        let cases = [
            (vec![holder(Role::User, &user)], 2),
            (
                vec![
                    holder(Role::Company, &user),
                    holder(Role::Company, &company),
                ],
                2,
            ),
            (
                vec![holder(Role::User, &user), holder(Role::Company, &company)],
                1,
            ),
            (
                vec![holder(Role::User, &user), holder(Role::Company, &company)],
                3,
            ),
            (
                vec![holder(Role::User, &user), holder(Role::Company, &meter)],
                2,
            ),
            (
                vec![holder(Role::User, &user), holder(Role::Company, &user)],
                2,
            ),
        ];
        for (holders, t) in cases {
            assert!(matches!(
                lock(&meter, TARIFF, holders, t, 0, rng),
                Err(FlowError::Holders(_))
            ));
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = LockRecord::from_toml(&text);
            let _ = ShareEnvelope::from_toml(&text);
            let _ = Request::from_toml(&text);
            let _ = Approval::from_toml(&text);
        }
    }
}
