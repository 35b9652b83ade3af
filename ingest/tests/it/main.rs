//! Integration tests of the ingest crate: the DESIGN §5 rules over real superpositions, and the
//! log reader against damaged input.

mod properties;
mod robustness;
