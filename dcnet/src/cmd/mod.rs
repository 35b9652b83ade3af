//! One module per subcommand; each runs from a validated config (see `cli`).

pub mod aggregate;
pub mod demo;
pub mod inspect;
pub mod simulate;
