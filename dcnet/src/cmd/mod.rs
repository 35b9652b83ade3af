//! One module per subcommand; each runs from a validated config (see `cli`).

pub mod aggregate;
pub mod audit;
pub mod bench;
pub mod churn;
pub mod demo;
pub mod export;
pub mod files;
pub mod gateway;
pub mod graph;
pub mod inspect;
pub mod keygen;
pub mod lock;
pub mod meter;
pub mod progress;
pub mod simulate;
pub mod tariff;
