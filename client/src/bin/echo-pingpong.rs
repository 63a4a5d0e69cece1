//! `echo-pingpong`: the latency floor. One blocking TCP connection, no runtime, no event
//! loop: write a message, read its echo, verify it, repeat for a fixed time. echo-client's
//! `tcp://` latency at one connection is compared with this to show what its event loop costs.
//!
//! Usage: `echo-pingpong tcp://HOST:PORT [SECONDS] [SIZE]`. Prints one JSON line: round trips,
//! seconds, round_trips_per_s, errors, p50_us, p99_us, max_us (from an HDR histogram).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use echo_client::message;
use echo_client::target::{Protocol, Target};
use echobench_core::latency::{self, Percentiles};

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: echo-pingpong tcp://HOST:PORT [SECONDS] [SIZE]";
    let url = args.first().ok_or(usage)?;
    let seconds: f64 = args
        .get(1)
        .map_or(Ok(10.0), |s| s.parse())
        .map_err(|_| usage)?;
    let size: usize = args
        .get(2)
        .map_or(Ok(32), |s| s.parse())
        .map_err(|_| usage)?;
    if size == 0 || !seconds.is_finite() || seconds <= 0.0 {
        return Err(usage.to_owned());
    }
    let target = Target::parse(url, false).map_err(|err| err.to_string())?;
    if target.protocol != Protocol::Tcp {
        return Err(format!("{url}: echo-pingpong speaks raw TCP only (tcp://)"));
    }
    let mut stream =
        TcpStream::connect(target.addr).map_err(|err| format!("cannot connect to {url}: {err}"))?;
    stream.set_nodelay(true).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|err| err.to_string())?;
    let mut sent = vec![0u8; size];
    message::fill(&mut sent);
    let mut echo = vec![0u8; size];
    let mut histogram = latency::histogram();
    let mut errors = 0u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut id = 0u64;
    while Instant::now() < deadline {
        id += 1;
        message::stamp(&mut sent, id);
        let t0 = Instant::now();
        stream
            .write_all(&sent)
            .map_err(|err| format!("write failed: {err}"))?;
        stream
            .read_exact(&mut echo)
            .map_err(|err| format!("read failed: {err}"))?;
        let took = t0.elapsed();
        if message::verify(&sent, &echo).is_ok() {
            latency::record(
                &mut histogram,
                u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            );
        } else {
            errors += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let p = Percentiles::of(&histogram);
    let us = |nanos: u64| nanos as f64 / 1000.0;
    Ok(serde_json::json!({
        "tool": "echo-pingpong",
        "round_trips": p.count,
        "seconds": elapsed,
        "round_trips_per_s": p.count as f64 / elapsed,
        "errors": errors,
        "p50_us": us(p.p50),
        "p99_us": us(p.p99),
        "max_us": us(p.max),
    })
    .to_string())
}
