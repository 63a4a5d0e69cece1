//! The `echo-server` command line: flags to [`Options`], a runtime sized to the CPUs this
//! process may use, one ready line on stdout, and a graceful stop on SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use echo_servers::{
    Broadcast, DEFAULT_MAX_MESSAGE, Faults, Identity, Impl, Options, OptionsError, PemFiles,
    Policy, Stall,
};

/// Reference echo server: HTTP (hyper, axum), WebSocket (tungstenite, axum-ws) or raw TCP.
///
/// When it is ready it prints exactly one line to stdout, `listening <URL>` (for example
/// `listening ws://127.0.0.1:40123/ws`); logs go to stderr (set RUST_LOG, e.g. RUST_LOG=debug).
/// SIGINT or SIGTERM stops it gracefully: it stops accepting, WebSocket peers get close 1001,
/// HTTP requests in flight are answered, and it exits 0 within 5 seconds.
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-server", version, max_term_width = 100)]
pub(crate) struct Args {
    /// The implementation to run: hyper, axum, tungstenite, axum-ws or tcp (see --list).
    #[arg(required_unless_present_any = ["list", "make_cert"])]
    pub(crate) implementation: Option<Impl>,

    /// Print every implementation, one per line (name, protocol, library), and exit.
    #[arg(long)]
    pub(crate) list: bool,

    /// Address to listen on. Port 0 picks a free port; the ready line tells which.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) addr: SocketAddr,

    /// Runtime worker threads. 1 runs a current-thread runtime (best when pinned to one CPU).
    /// Default: the number of CPUs this process may run on (its affinity mask, not the
    /// machine's core count).
    #[arg(short, long)]
    pub(crate) threads: Option<NonZeroUsize>,

    /// Serve as P processes listening on --addr together (SO_REUSEPORT; the kernel spreads new
    /// connections over them), for more connections than one process may open files for.
    /// Each runs --threads threads [default: this process's CPUs / P, at least 1]. The ready
    /// line comes once all are listening; SIGINT/SIGTERM stops them all; one that exits on
    /// its own stops the rest and the server fails. Each process has its own broadcast
    /// relay: /broadcast relays among the subscribers one process holds (tcp --broadcast,
    /// and the faults that act across the whole server, are refused).
    #[arg(long, value_name = "P")]
    pub(crate) processes: Option<std::num::NonZeroU32>,

    /// One process of --processes: bind --addr shared with the others (SO_REUSEPORT).
    #[arg(long, hide = true)]
    pub(crate) reuseport: bool,

    /// Largest HTTP request body or WebSocket message in bytes; larger bodies get 413, larger
    /// WebSocket messages close 1009. Ignored by tcp.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE)]
    pub(crate) max_message: usize,

    /// Time a client has to send a whole HTTP request head or WebSocket handshake before the
    /// connection is closed (defeats slowloris clients).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) header_timeout: Duration,

    /// WebSocket servers: bytes of read buffer each connection preallocates. Default: the
    /// library's (128 KiB for tungstenite), which costs throughput with many connections.
    #[arg(long, value_name = "BYTES")]
    pub(crate) ws_read_buffer: Option<usize>,

    /// Serve over TLS (https://, wss://, tls://) with a certificate made at start, signed by
    /// an authority also made at start, for localhost, 127.0.0.1, ::1 and the --addr IP.
    /// Clients trust it through --cert-out.
    #[arg(long, help_heading = "TLS")]
    pub(crate) tls: bool,

    /// Serve over TLS with this PEM certificate chain (leaf first) instead; needs --key.
    #[arg(long, value_name = "FILE", requires = "key", help_heading = "TLS")]
    pub(crate) cert: Option<PathBuf>,

    /// The PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub(crate) key: Option<PathBuf>,

    /// Write the certificate a client must trust (PEM; e.g. echo-client --cacert FILE, curl
    /// --cacert FILE) to FILE before the ready line.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub(crate) cert_out: Option<PathBuf>,

    /// Make a certificate authority and a server certificate it signs (for localhost,
    /// 127.0.0.1 and ::1), write them to DIR as ca.pem (what clients trust), cert.pem and
    /// key.pem (what any server takes, e.g. --cert/--key), and exit without serving.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["implementation", "list"], help_heading = "TLS")]
    pub(crate) make_cert: Option<PathBuf>,

    /// tcp: serve the broadcast relay instead of echo: messages framed as a 4-byte big-endian
    /// length and that many bytes go to every connection. (The WebSocket servers relay on
    /// /broadcast without it.)
    #[arg(long, help_heading = "Broadcast")]
    pub(crate) broadcast: bool,

    /// What a broadcast subscriber whose queue is full gets: drop (the message is dropped for
    /// it and counted) or disconnect (WebSocket close 1008; TCP: closed).
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "disconnect",
        help_heading = "Broadcast"
    )]
    pub(crate) broadcast_policy: Policy,

    /// Messages each broadcast subscriber's queue holds before the policy applies.
    #[arg(long, value_name = "N", default_value_t = echo_servers::broadcast::DEFAULT_QUEUE, help_heading = "Broadcast")]
    pub(crate) broadcast_queue: NonZeroUsize,

    /// Fault: delay every echo by DURATION (e.g. 5ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Faults (for testing clients)")]
    pub(crate) delay: Option<Duration>,

    /// Fault: close each connection after N echoes. WebSocket: close 1000 after N messages;
    /// HTTP: the Nth response on a connection carries `Connection: close`; TCP: close after N
    /// reads.
    #[arg(long, value_name = "N", help_heading = "Faults (for testing clients)")]
    pub(crate) close_after: Option<NonZeroU64>,

    /// Fault: flip one byte of every Nth echo, counted across the whole server (an empty echo
    /// gets one byte instead).
    #[arg(long, value_name = "N", help_heading = "Faults (for testing clients)")]
    pub(crate) corrupt_every: Option<NonZeroU64>,

    /// Fault: every PERIOD after start, the whole server stops answering for --stall-for;
    /// echoes due meanwhile go out when the stall ends (for coordinated-omission tests).
    #[arg(long, value_name = "PERIOD", value_parser = humantime::parse_duration, requires = "stall_for", help_heading = "Faults (for testing clients)")]
    pub(crate) stall_every: Option<Duration>,

    /// Fault: how long each stall lasts; shorter than --stall-every.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "stall_every", help_heading = "Faults (for testing clients)")]
    pub(crate) stall_for: Option<Duration>,

    /// Fault: burn DURATION of CPU before every echo (e.g. 2us, at most 1s): a known handicap
    /// per round trip.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Faults (for testing clients)")]
    pub(crate) echo_cost: Option<Duration>,

    /// Fault: send at most N echoes per second in total; the rest queue in arrival order (a
    /// server with a known capacity). With tcp --broadcast: N deliveries per second.
    #[arg(long, value_name = "N", help_heading = "Faults (for testing clients)")]
    pub(crate) max_rate: Option<std::num::NonZeroU32>,
}

impl Args {
    /// What clap cannot check: `--broadcast` is for `tcp` only, and the relay has no echo to
    /// close after or corrupt (usage errors, exit 2).
    pub(crate) fn check(&self) -> Result<(), clap::Error> {
        let conflict = |message: String| {
            Err(<Args as clap::CommandFactory>::command()
                .error(clap::error::ErrorKind::ArgumentConflict, message))
        };
        match self.implementation {
            Some(implementation) if self.broadcast && implementation != Impl::Tcp => conflict(
                format!("--broadcast is for tcp; {implementation} relays on /broadcast without it"),
            ),
            Some(_) if self.broadcast && (self.close_after.is_some() || self.corrupt_every.is_some()) => {
                conflict("--close-after and --corrupt-every act on echoes; the --broadcast relay applies only --delay, --stall-every, --echo-cost and --max-rate, per delivery".to_owned())
            }
            _ if self.processes.is_some_and(|p| p.get() > 1)
                && (self.broadcast
                    || self.corrupt_every.is_some()
                    || self.max_rate.is_some()
                    || self.stall_every.is_some()) =>
            {
                conflict("--processes: --broadcast, --corrupt-every, --max-rate and --stall-every act across the whole server, which P processes cannot share; use one process".to_owned())
            }
            _ => Ok(()),
        }
    }

    /// The server options these flags describe, validated.
    pub(crate) fn options(&self) -> Result<Options, OptionsError> {
        let stall = match (self.stall_every, self.stall_for) {
            (Some(every), Some(duration)) => Some(Stall { every, duration }),
            _ => None,
        };
        let tls = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(Identity::from_files(cert, key)?),
            _ if self.tls || self.cert_out.is_some() => {
                let ip = self.addr.ip();
                let names: Vec<String> = (!ip.is_unspecified())
                    .then(|| ip.to_string())
                    .into_iter()
                    .collect();
                Some(Identity::generate(&names)?)
            }
            _ => None,
        };
        let options = Options {
            tls,
            max_message: self.max_message,
            header_timeout: self.header_timeout,
            ws_read_buffer: self.ws_read_buffer,
            faults: Faults {
                delay: self.delay,
                close_after: self.close_after,
                corrupt_every: self.corrupt_every,
                stall,
                echo_cost: self.echo_cost,
                max_rate: self.max_rate,
            },
            broadcast: Broadcast {
                policy: self.broadcast_policy,
                queue: self.broadcast_queue,
                tcp_relay: self.broadcast,
            },
        };
        options.validate()?;
        Ok(options)
    }
}

/// The `--list` output: one line per implementation, columns name, protocol, library.
pub(crate) fn list() -> String {
    Impl::ALL
        .iter()
        .map(|imp| {
            format!(
                "{:<12} {:<10} {}\n",
                imp.name(),
                imp.protocol().to_string(),
                imp.library()
            )
        })
        .collect()
}

/// Runs the command: serves until SIGINT/SIGTERM, prints the list, or writes a certificate.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.make_cert {
        let files = PemFiles::in_dir(dir);
        Identity::generate(&[])?.write(&files)?;
        println!(
            "trust {}; serve with --cert {} --key {}",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        );
        return Ok(());
    }
    let Some(implementation) = args.implementation.filter(|_| !args.list) else {
        print!("{}", list());
        return Ok(());
    };
    if args.reuseport {
        // A copy of `--processes` ends with the process that started it, however that ends.
        echobench_core::copies::end_with_parent().map_err(anyhow::Error::msg)?;
    }
    let options = args.options()?;
    if let (Some(path), Some(identity)) = (&args.cert_out, &options.tls) {
        std::fs::write(path, &identity.ca_pem).with_context(|| {
            format!(
                "cannot write the certificate to trust to {} (--cert-out)",
                path.display()
            )
        })?;
    }
    let processes = args.processes.map_or(1, std::num::NonZeroU32::get);
    let threads = match args.threads {
        Some(threads) => threads.get(),
        // available_parallelism honours the affinity mask (sched_getaffinity) on Linux.
        None => (std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
            / processes as usize)
            .max(1),
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("could not start the tokio runtime")?;
    if processes > 1 {
        return runtime.block_on(async {
            let shutdown = CancellationToken::new();
            let signals = wait_for_signal(shutdown.clone())?;
            crate::processes::serve(
                implementation,
                args.addr,
                options,
                processes,
                threads,
                signals,
                shutdown,
            )
            .await
        });
    }
    runtime.block_on(serve_until_signal(
        implementation,
        args.addr,
        options,
        threads,
        args.reuseport,
    ))
}

async fn serve_until_signal(
    implementation: Impl,
    addr: SocketAddr,
    options: Options,
    threads: usize,
    shared: bool,
) -> anyhow::Result<()> {
    let bound = if shared {
        echo_servers::bind_shared(addr)
    } else {
        echo_servers::bind(addr)
    };
    let listener = bound.with_context(|| {
        format!("cannot listen on {addr}; pick another address or port with --addr")
    })?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let shutdown = CancellationToken::new();
    let signals = wait_for_signal(shutdown.clone())?;
    let tls = options.tls.is_some();
    let server = tokio::spawn(implementation.serve(listener, options, shutdown));

    announce(&implementation.url(local, tls));
    tracing::info!(%implementation, %local, threads, "serving");

    signals.await;
    server
        .await
        .context("the server task failed")?
        .context("the server stopped with an error")
}

/// Prints the ready line. It is the one thing this program writes to stdout.
pub(crate) fn announce(url: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "listening {url}").and_then(|()| stdout.flush()) {
        tracing::warn!(%err, "could not write the ready line to stdout");
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM; the returned future ends then too.
fn wait_for_signal(
    shutdown: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        shutdown.cancel();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("echo-server").chain(args.iter().copied()))
    }

    /// Flags turn into the options they name; unset faults stay off.
    #[test]
    fn flags_to_options() {
        let args = parse(&[
            "tcp",
            "--delay",
            "5ms",
            "--close-after",
            "3",
            "--corrupt-every",
            "7",
            "--stall-every",
            "1s",
            "--stall-for",
            "200ms",
            "--max-message",
            "1024",
            "--ws-read-buffer",
            "4096",
            "--echo-cost",
            "3us",
            "--max-rate",
            "500",
            "--broadcast",
            "--broadcast-policy",
            "drop",
            "--broadcast-queue",
            "16",
        ])
        .unwrap();
        assert_eq!(args.implementation, Some(Impl::Tcp));
        let options = args.options().unwrap();
        assert_eq!(options.max_message, 1024);
        assert_eq!(options.ws_read_buffer, Some(4096));
        assert_eq!(options.faults.delay, Some(Duration::from_millis(5)));
        assert_eq!(options.faults.close_after, NonZeroU64::new(3));
        assert_eq!(options.faults.corrupt_every, NonZeroU64::new(7));
        assert_eq!(options.faults.echo_cost, Some(Duration::from_micros(3)));
        assert_eq!(options.faults.max_rate, std::num::NonZeroU32::new(500));
        assert_eq!(
            options.broadcast,
            Broadcast {
                policy: Policy::Drop,
                queue: NonZeroUsize::new(16).unwrap(),
                tcp_relay: true
            }
        );
        assert_eq!(
            options.faults.stall,
            Some(Stall {
                every: Duration::from_secs(1),
                duration: Duration::from_millis(200)
            })
        );
        let plain = parse(&["hyper"]).unwrap().options().unwrap();
        assert_eq!(plain, Options::default());
    }

    /// Bad flags are refused by the parser (exit code 2), each naming the problem.
    #[test]
    fn bad_flags_are_refused() {
        let cases: [(&[&str], &str); 9] = [
            (&[], "required"),
            (&["tcp", "--make-cert", "dir"], "cannot be used with"),
            (
                &["tcp", "--broadcast-policy", "slow"],
                "unknown broadcast policy `slow`",
            ),
            (&["nginx"], "unknown server implementation `nginx`"),
            (&["tcp", "--close-after", "0"], "--close-after"),
            (&["tcp", "--delay", "soon"], "--delay"),
            (&["tcp", "--max-rate", "0"], "--max-rate"),
            (&["tcp", "--stall-every", "1s"], "--stall-for"),
            (&["tcp", "--addr", "localhost"], "--addr"),
        ];
        for (args, needle) in cases {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
        let err = parse(&["axum-ws", "--broadcast"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("--broadcast is for tcp; axum-ws relays on /broadcast without it"),
            "{err}"
        );
        assert!(parse(&["tcp", "--broadcast"]).unwrap().check().is_ok());
        assert!(
            parse(&["tcp", "--broadcast", "--max-rate", "10"])
                .unwrap()
                .check()
                .is_ok()
        );
        let err = parse(&["tcp", "--broadcast", "--close-after", "3"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("act on echoes"), "{err}");
        let err = parse(&["tcp", "--stall-every", "1s", "--stall-for", "2s"])
            .unwrap()
            .options()
            .unwrap_err();
        assert!(err.to_string().contains("shorter than --stall-every"));
        let err = parse(&["tungstenite", "--ws-read-buffer", "16"])
            .unwrap()
            .options()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--ws-read-buffer 16 is too small; use 256 bytes or more"
        );
        let err = parse(&["tcp", "--echo-cost", "2s"])
            .unwrap()
            .options()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--echo-cost 2s is longer than 1s"),
            "{err}"
        );
    }

    /// `--list` has one line per implementation starting with its name.
    #[test]
    fn list_names_every_implementation() {
        let listing = list();
        let names: Vec<&str> = listing
            .lines()
            .map(|line| line.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(names, ["hyper", "axum", "tungstenite", "axum-ws", "tcp"]);
        assert!(listing.lines().nth(2).unwrap().contains("websocket"));
    }
}
