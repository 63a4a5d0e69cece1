//! Serving one HTTP/1 connection with hyper, shared by both HTTP implementations (and by
//! `axum-ws`, whose upgrade needs it) so that they differ only in how requests are routed.
//! axum's own `axum::serve` would configure no header-read timeout; this driver does, which is
//! what closes slowloris connections.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use crate::acceptor::Stream;
use crate::fault::FaultPlan;
use crate::options::Options;

/// Largest request head (request line plus headers) accepted; beyond it hyper answers 431.
pub const MAX_HEAD: usize = 64 * 1024;

/// Serves `stream` until the client closes it, an error ends it, or `shutdown` is cancelled,
/// in which case the request in flight (if any) is answered before the connection closes.
pub(crate) async fn serve<S, B>(
    stream: Stream,
    service: S,
    options: &Options,
    faults: &Arc<FaultPlan>,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    match faults.faults().close_after {
        // Counting requests per connection only when asked keeps the usual path unwrapped.
        Some(after) => {
            let counted = CloseAfter {
                inner: service,
                after: after.get(),
                served: Arc::new(AtomicU64::new(0)),
            };
            drive(stream, counted, options, shutdown).await;
        }
        None => drive(stream, service, options, shutdown).await,
    }
}

async fn drive<S, B>(stream: Stream, service: S, options: &Options, shutdown: CancellationToken)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            // Idle keep-alive connections close at once; a request in flight is answered first.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // Broken clients are routine for a load-testing peer: note them, never fail on them.
        tracing::debug!(%err, "http connection ended with an error");
    }
}

/// Answers the Nth request of its connection with `Connection: close`, which makes hyper close
/// the connection after writing that response (the `close_after` fault for HTTP).
#[derive(Debug)]
struct CloseAfter<S> {
    inner: S,
    after: u64,
    /// Requests seen on this connection; an atomic only because hyper's `Service::call`
    /// takes `&self`. It is never contended: one connection, one request at a time.
    served: Arc<AtomicU64>,
}

impl<S, B> Service<Request<Incoming>> for CloseAfter<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let nth = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let close = nth >= self.after;
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if close {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}
