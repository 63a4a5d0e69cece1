//! `hyper`: HTTP/1.1 on hyper 1.x with a hand-written `service_fn` router, no framework. This
//! is the HTTP floor: whatever axum costs on top of it shows up as the difference between the
//! two in the results.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{ALLOW_GET, ALLOW_POST};
use crate::acceptor::{self, Accept};
use crate::fault::FaultPlan;
use crate::options::Options;

/// Serves HTTP echo on `listener` until `shutdown` is cancelled and connections have finished.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let accept = Accept::new(&options, super::ALPN)?;
    let faults = Arc::new(FaultPlan::new(options.faults));
    let options = Arc::new(options);
    acceptor::run(listener, accept, shutdown, move |stream, _peer, token| {
        let options = Arc::clone(&options);
        let faults = Arc::clone(&faults);
        async move {
            let limit = options.max_message;
            let service = service_fn({
                let faults = Arc::clone(&faults);
                move |request| handle(request, limit, Arc::clone(&faults))
            });
            super::connection::serve(stream, service, &options, &faults, token).await;
        }
    })
    .await
}

async fn handle(
    request: Request<Incoming>,
    limit: usize,
    faults: Arc<FaultPlan>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let is_get = parts.method == Method::GET || parts.method == Method::HEAD;
    let is_post = parts.method == Method::POST;
    let response = match parts.uri.path() {
        "/" if is_get => super::index(),
        "/" => super::method_not_allowed(ALLOW_GET),
        "/echo" if is_post => match read_body(body, limit).await {
            Ok(body) => super::echo(&faults, &parts.headers, body).await,
            Err(response) => response,
        },
        "/json" if is_post => match read_body(body, limit).await {
            Ok(body) => super::json(&faults, &body).await,
            Err(response) => response,
        },
        "/echo" | "/json" => super::method_not_allowed(ALLOW_POST),
        path => match path.strip_prefix("/status/") {
            Some(code) if !code.is_empty() && !code.contains('/') => {
                if is_get {
                    super::status(code)
                } else {
                    super::method_not_allowed(ALLOW_GET)
                }
            }
            _ => super::not_found(),
        },
    };
    Ok(response)
}

/// Reads the whole body, refusing one over `limit` — before reading a byte of it when
/// `Content-Length` already says so, which also means no `100 Continue` is sent for it.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Response<Full<Bytes>>> {
    if body.size_hint().lower() > limit as u64 {
        return Err(super::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(super::too_large(limit)),
        Err(err) => Err(super::bad_body(&err)),
    }
}
