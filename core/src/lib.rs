//! `echobench-core`: what crosses between echobench's crates, and nothing else.
//!
//! The servers, the load generator and the harness are separate programs that meet here: the
//! [`protocol`] table (schemes, paths, ports), the load model a report embeds ([`config`], with
//! its [`tls`] settings), the raw [`measurement`] with its exact merge and the versioned [`report`] derived from it, the
//! [`latency`] histograms and their codec, the [`error`] kinds, the [`thresholds`] behind the
//! flags, the [`monitor`] readings (CPU, affinity, steal), atomic writes ([`fs`]), the human
//! [`format`] of counts and durations, and the [`exit`] codes one binary reads from another.
//!
//! It holds no async runtime, no sockets and no command-line parsing: a crate that needs one of
//! those is not the boundary (ARCHITECTURE.md).

pub mod broadcast;
pub mod config;
pub mod copies;
pub mod error;
pub mod exit;
pub mod format;
pub mod fs;
pub mod latency;
pub mod measurement;
pub mod monitor;
pub mod protocol;
pub mod report;
pub mod sample;
pub mod shard;
pub mod slo;
pub mod source;
pub mod stages;
pub mod thresholds;
pub mod tls;

pub use config::{Config, Payload, WsMode};
pub use measurement::Measurement;
pub use protocol::Protocol;
pub use report::Report;
