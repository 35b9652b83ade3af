//! A meter: a profile at a unit id on a bus.

use std::sync::Arc;

use crate::client::{Bus, ReadError, ReadRequest, UnitId};
use crate::profile::{Profile, Role};
use crate::reading::{self, BlockWords, Value, ValueError};

/// Why a meter could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The bus exchange failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The answer did not decode into the values the profile describes.
    #[error("unit {unit} ({profile}): {source}")]
    Value {
        unit: u8,
        profile: String,
        source: ValueError,
    },
}

/// One meter on a bus, described by a profile.
#[derive(Clone)]
pub struct Meter {
    bus: Bus,
    unit: UnitId,
    profile: Arc<Profile>,
}

impl Meter {
    /// The meter at `unit` on `bus`.
    pub fn new(bus: Bus, unit: UnitId, profile: Arc<Profile>) -> Self {
        Self { bus, unit, profile }
    }

    /// Its unit id.
    pub fn unit(&self) -> UnitId {
        self.unit
    }

    /// Its profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The bus it is on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    fn value_error(&self, source: ValueError) -> MeterError {
        MeterError::Value {
            unit: self.unit.get(),
            profile: self.profile.name.clone(),
            source,
        }
    }

    /// Reads the given blocks (indices into the profile's blocks), one request each.
    pub async fn read_blocks(&self, blocks: &[usize]) -> Result<BlockWords, MeterError> {
        let mut words = BlockWords::new(&self.profile);
        for &index in blocks {
            let Some(block) = self.profile.blocks.get(index) else {
                continue;
            };
            let answer = self
                .bus
                .read(ReadRequest {
                    unit: self.unit,
                    function: block.function,
                    address: block.address,
                    count: block.count,
                    timing: self.profile.timing,
                })
                .await?;
            words
                .insert(&self.profile, index, answer)
                .map_err(|e| self.value_error(e))?;
        }
        Ok(words)
    }

    /// Reads every block and decodes every register.
    pub async fn read_all(&self) -> Result<Vec<Value>, MeterError> {
        let all: Vec<usize> = (0..self.profile.blocks.len()).collect();
        let words = self.read_blocks(&all).await?;
        reading::decode_all(&self.profile, &words).map_err(|e| self.value_error(e))
    }

    /// Reads only what is needed for the energy counters with these roles and returns them
    /// in Wh, in the same order.
    pub async fn read_energy_wh(&self, roles: &[Role]) -> Result<Vec<u64>, MeterError> {
        let words = self
            .read_blocks(&self.profile.blocks_for_roles(roles))
            .await?;
        // Pinned registers (model ids) in the blocks read must still match.
        reading::decode_all(&self.profile, &words).map_err(|e| self.value_error(e))?;
        roles
            .iter()
            .map(|&role| {
                reading::energy_wh(&self.profile, &words, role).map_err(|e| self.value_error(e))
            })
            .collect()
    }
}
