//! Time-of-use billing on the meter and the threshold program lock that guards its tariff.
//!
//! Whoever can change a tariff's period hours changes the bill: a provider that stretches the
//! expensive period overcharges, a customer that stretches the cheap one pays too little. So
//! the meter locks its tariff-changing program under a key K that it splits with Shamir's
//! (t, n) scheme among one user and n - 1 companies; a change needs t signed approvals.
//!
//! - [`tariff`] and [`billing`]: tariff files and exact decimal bills.
//! - [`security`]: the security degree sd(n, t, p) that guides the choice of t.
//! - [`identity`], [`seal`], [`shamir`]: signing/exchange keys, sealed boxes, secret sharing.
//! - [`flow`]: lock, request, approve and apply, as typed steps.
//!
//! The crate does no I/O: it parses and produces text, and the `dcnet` binary handles files.
#![forbid(unsafe_code)]

pub mod billing;
mod encoding;
pub mod flow;
pub mod identity;
pub mod seal;
pub mod security;
pub mod shamir;
pub mod tariff;

pub use billing::{Bill, BillDiff, BillingError, Reading, ReadingsError};
pub use flow::{Approval, FlowError, Holder, LockRecord, Locked, Request, Role, ShareEnvelope};
pub use identity::{IdentityError, PublicIdentity, SecretIdentity, os_rng};
pub use security::{ExactDecimal, Probability, SecurityError};
pub use tariff::{Tariff, TariffError};
