//! The harness's async runtime: current-thread, because the harness itself does little (it
//! starts, samples and waits for children, which do the work on their own CPUs). Every
//! subcommand that needs one gets it here.

/// A runtime; `None` after printing why none could be started.
pub fn start() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("Error: cannot start a tokio runtime: {err}");
            None
        }
    }
}

/// Cancels `interrupt` on SIGINT or SIGTERM, after printing `message` on stderr.
pub fn watch_signals(interrupt: tokio_util::sync::CancellationToken, message: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("\n{message}");
        interrupt.cancel();
    });
}
