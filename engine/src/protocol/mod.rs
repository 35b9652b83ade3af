//! The DC-net lifecycle (DESIGN §1): registration, exit and connection loss.
//!
//! `gateway` and `provider` are explicit state machines consumed by value; `messages` are the
//! typed messages between them; `kex` is the signed X25519 exchange the provider relays but
//! cannot read; `audit` is the provider's hash-chained action log; `churn` drives providers and
//! gateways in process over many rounds. Nothing here does I/O: time and randomness are passed
//! in.

pub mod audit;
pub mod churn;
pub mod gateway;
pub mod kex;
pub mod messages;
pub mod provider;

pub use audit::{AuditChain, AuditEntry, AuditError, AuditEvent};
pub use gateway::{GatewayConfig, GatewayError, GatewayState};
pub use kex::{IdentityKey, IdentityRegistry, KexError, KeyShare, PendingExchange, SignedExit};
pub use messages::{AckKind, Envelope, Notification, ToGateway, ToProvider};
pub use provider::{
    MemberStatus, Provider, ProviderConfig, ProviderError, RoundOutcome, RoundStatus,
    WithheldReason,
};

#[cfg(test)]
mod tests;
