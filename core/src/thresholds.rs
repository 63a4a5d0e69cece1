//! The limits beyond which a measurement is not taken as a server result. The client flags its
//! own reports with them and the harness and crosscheck judge by them: one definition, so a
//! report and a table never disagree about what "saturated" or "noisy" means.

/// A load generator (or a tool in the crosscheck) that used more than this fraction of its CPU
/// capacity, or had one thread this busy, may have set the pace instead of the server.
pub const CLIENT_SATURATED: f64 = 0.90;

/// CPU steal above this percentage means the host's neighbours took enough of the machine to
/// move the result: the run is flagged and judgements refuse it.
pub const HIGH_STEAL_PERCENT: f64 = 5.0;

/// Open loop: a send that left more than this after its intended instant, on a connection that
/// was free to send, was late because of the load generator itself (its pacer or its CPU), not
/// the server. Counted apart from sends held back by an unanswered echo.
pub const PACER_LATE: std::time::Duration = std::time::Duration::from_micros(100);
