//! `echo-harness`: runs server/client pairs over a matrix of loads and publishes
//! self-describing results.
//!
//! A [`config`] (TOML, or the built-in default) names the servers and the loads; the
//! [`matrix`] expands them into cells; the [`runner`] runs every cell once per trial, trials
//! interleaved, each trial starting its server pinned to the server CPUs ([`server`],
//! [`process`]), checking one echo, running `echo-client` pinned to the client CPUs
//! ([`client`]) while [`sampler`] measures the server's CPU and memory. [`aggregate`] and
//! [`stats`] turn trials into per-cell figures, and [`export`] rewrites the run folder after
//! every trial. [`compare`] judges two runs against each other, and [`crosscheck`] checks
//! echo-client against wrk, h2load, oha and peer clients on the same server.
//!
//! Only the harness writes `results/`. It reads the client's versioned JSON report, never its
//! human output.

pub mod aggregate;
pub mod binaries;
pub mod capacity;
pub mod cli;
pub mod client;
pub mod compare;
pub mod config;
pub mod cpuset;
pub mod crosscheck;
pub mod exec;
pub mod exit;
pub mod export;
pub mod hosts;
pub mod idle;
pub mod machine;
pub mod matrix;
pub mod plan;
pub mod process;
pub mod progress;
pub mod runner;
pub mod runtime;
pub mod sampler;
pub mod server;
pub mod session;
pub mod stats;
pub mod trial;
pub mod workload;
