//! `echo-client`: a fixed-duration round-trip load generator for HTTP, WebSocket and TCP echo
//! servers, built to stay cheaper than the server it measures and to say when it is not.
//!
//! [`run`](run::run) takes a [`Config`] and returns a [`Report`]: N virtual clients each
//! connect, do R round trips (send a unique message, wait for the echo, verify it), close and
//! are replaced at once, for a fixed duration (or a fixed number of round trips). Closed loop by
//! default; with a rate, open loop with latency corrected for coordinated omission.
//!
//! Each worker thread runs its share of the connections on its own current-thread runtime and
//! records into thread-local HDR histograms, merged exactly at the end; the report carries the
//! client's CPU use and the machine's CPU steal so a client-bound or noisy run is flagged.
//!
//! The settings and the report are `echobench-core` types ([`Config`], [`Report`]): the same
//! ones the harness reads.
//!
//! ```no_run
//! use echo_client::{Config, run::{run_blocking, RunOptions}};
//!
//! let mut config = Config::new("http://127.0.0.1:8080/echo");
//! config.connections = 16;
//! let report = run_blocking(config, RunOptions::default())?;
//! println!("{:.0} round trips/s, p99 {} ns", report.summary.round_trips_per_s, report.latency.round_trip.p99);
//! # Ok::<(), echo_client::run::RunError>(())
//! ```

pub mod broadcast;
pub mod cli;
pub mod error;
pub mod export;
pub mod merge;
pub mod message;
pub mod processes;
pub mod protocol;
pub mod recorder;
pub mod run;
pub mod schedule;
pub mod summary;
pub mod target;
pub mod tls;

mod pacer;
mod progress;
mod quota;
mod timeline;
mod worker;

pub use echobench_core::{Config, Payload, Report, WsMode};
