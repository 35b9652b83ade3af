//! Serial line settings, RTU character timing, and opening a port.

use std::time::Duration;

use serde::Deserialize;
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

/// Parity bit of each character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit (the Modbus spec then asks for two stop bits, but most meters ship 8N1).
    #[default]
    None,
    /// Even parity, the Modbus default.
    Even,
    /// Odd parity.
    Odd,
}

/// Stop bits per character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "u8")]
pub enum StopBits {
    /// One stop bit.
    #[default]
    One,
    /// Two stop bits.
    Two,
}

impl TryFrom<u8> for StopBits {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(StopBits::One),
            2 => Ok(StopBits::Two),
            other => Err(format!("stop bits must be 1 or 2, not {other}")),
        }
    }
}

impl std::str::FromStr for Parity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" | "n" | "N" => Ok(Parity::None),
            "even" | "e" | "E" => Ok(Parity::Even),
            "odd" | "o" | "O" => Ok(Parity::Odd),
            other => Err(format!("parity must be none, even or odd, not {other:?}")),
        }
    }
}

impl std::fmt::Display for Parity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        })
    }
}

impl std::fmt::Display for StopBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopBits::One => "1",
            StopBits::Two => "2",
        })
    }
}

/// Baud rate, parity and stop bits; RTU always uses 8 data bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
}

impl SerialSettings {
    /// Bits on the wire per character: start, 8 data, optional parity, stop.
    pub fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        let stop = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        1 + 8 + parity + stop
    }

    /// Time to send one character.
    pub fn char_time(&self) -> Duration {
        Duration::from_nanos(
            u64::from(self.bits_per_char()) * 1_000_000_000 / u64::from(self.baud.max(1)),
        )
    }

    /// The RTU inter-frame silence: 3.5 character times, but at least 1.75 ms, the fixed value
    /// the Modbus serial-line spec prescribes above 19200 baud.
    pub fn inter_frame_silence(&self) -> Duration {
        (self.char_time() * 7 / 2).max(Duration::from_micros(1750))
    }

    /// Settings in the usual `9600 8N1` notation.
    pub fn describe(&self) -> String {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        format!("{} 8{}{}", self.baud, parity, self.stop_bits)
    }
}

/// Opens a serial port (an RS-485 adapter or a pseudo-terminal) with these settings and drops
/// whatever the driver had buffered, so stale bytes are never read as an answer.
pub fn open_port(path: &str, settings: &SerialSettings) -> std::io::Result<SerialStream> {
    let parity = match settings.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match settings.stop_bits {
        StopBits::One => tokio_serial::StopBits::One,
        StopBits::Two => tokio_serial::StopBits::Two,
    };
    let port = tokio_serial::new(path, settings.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|e| std::io::Error::other(format!("{path}: {e}")))?;
    port.clear(tokio_serial::ClearBuffer::All)
        .map_err(|e| std::io::Error::other(format!("{path}: {e}")))?;
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_timing() {
        // 9600 8N1: 10 bits per character, 1.0417 ms; 3.5 characters = 3.646 ms.
        let s = SerialSettings {
            baud: 9600,
            parity: Parity::None,
            stop_bits: StopBits::One,
        };
        assert_eq!(s.bits_per_char(), 10);
        assert_eq!(s.char_time(), Duration::from_nanos(1_041_666));
        assert_eq!(s.inter_frame_silence(), Duration::from_nanos(3_645_831));
        // 19200 8E1: 11 bits, 0.573 ms per char, 2.005 ms for 3.5.
        let s = SerialSettings {
            baud: 19200,
            parity: Parity::Even,
            stop_bits: StopBits::One,
        };
        assert_eq!(s.bits_per_char(), 11);
        assert_eq!(s.inter_frame_silence(), Duration::from_nanos(2_005_206));
        // Above 19200 baud the silence is fixed at 1.75 ms.
        let s = SerialSettings {
            baud: 115_200,
            parity: Parity::None,
            stop_bits: StopBits::Two,
        };
        assert_eq!(s.inter_frame_silence(), Duration::from_micros(1750));
        assert_eq!(s.describe(), "115200 8N2");
    }

    #[test]
    fn parse_parity() {
        assert_eq!("even".parse::<Parity>(), Ok(Parity::Even));
        assert!("mark".parse::<Parity>().is_err());
        assert_eq!(StopBits::try_from(2), Ok(StopBits::Two));
        assert!(StopBits::try_from(3).is_err());
    }
}
