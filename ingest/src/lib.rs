//! dcnet frames and round logs: the wire codecs of DESIGN §3–§4, a log reader that never
//! panics, the companion CSV tables and the provider's aggregation rules of DESIGN §5.
#![deny(unsafe_code)]

pub mod aggregate;
pub mod batch;
pub mod columnar;
pub mod crc;
pub mod export;
pub mod fast;
pub mod frame;
pub mod log;
pub mod mmap;
pub mod pipeline;
pub mod reject;
pub mod spill;
pub mod tables;
pub mod window;

pub use aggregate::{
    AggregateOptions, AggregateReport, Aggregator, Nets, RoundResult, RoundStatus,
};
pub use frame::{Frame, FrameError, FrameFields, FrameView, Notification};
pub use log::{FrameScanner, LogError, LogHeader, LogWriter};
pub use reject::{FrameSource, RejectCounts, RejectReason, Rejected};
pub use spill::{RejectList, SpillError};
