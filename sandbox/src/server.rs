//! The listener: accepts loopback connections and serves each on its own
//! task with hyper's HTTP/1.1 server, so that a handler can kill the very
//! connection its request came on (the `Drop` fault).
//!
//! Every request gets a [`ConnectionKill`] extension. Firing it makes the
//! connection task drop the hyper connection, and with it the socket and
//! the in-flight handler, before any response byte is written; the client
//! sees a closed/reset connection. Requests on other connections, and later
//! requests on keep-alive connections that were not killed, are unaffected.
//!
//! HTTP/1.1 only: with HTTP/2 hyper would run handlers on their own tasks
//! and a kill could not take the handler down with the connection.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// How long a graceful shutdown waits for in-flight requests before it
/// aborts their connections: long enough for normal requests, short enough
/// that a `Slow` fault cannot hold a test's teardown hostage.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Request extension that lets a handler close its own connection unanswered.
#[derive(Clone)]
pub(crate) struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    /// Closes the connection this request arrived on without answering.
    ///
    /// Never completes normally: the connection task drops this handler's
    /// future along with the connection. `notify_one` stores a permit, so the
    /// kill is not lost if the connection task is not waiting at this instant.
    pub(crate) async fn fire(&self) -> Response {
        self.0.notify_one();
        std::future::pending::<()>().await;
        unreachable_response()
    }
}

/// Closes the request's connection if it came through [`serve`]; otherwise
/// (a router driven in-process without the accept loop) answers 500 so the
/// fault is still visible.
pub(crate) async fn drop_connection(kill: Option<&ConnectionKill>) -> Response {
    match kill {
        Some(kill) => kill.fire().await,
        None => unreachable_response(),
    }
}

fn unreachable_response() -> Response {
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "connection drop requested outside the sandbox accept loop",
    )
        .into_response()
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then
/// lets in-flight requests finish (bounded by [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Reap finished connection tasks so the set does not grow with
            // every connection a long benchmark opens.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Responses are small and written in pieces; without
                    // NODELAY, Nagle + delayed ACK adds ~40 ms per request.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Typically EMFILE; back off briefly instead of spinning.
                    tracing::warn!(%error, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// Serves one connection until it ends, is killed by a handler, or the
/// sandbox shuts down.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    shutdown: CancellationToken,
) {
    let kill = Arc::new(Notify::new());
    let handle = ConnectionKill(Arc::clone(&kill));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_connection_end(result),
        // Dropping the pinned connection closes the socket unanswered.
        _ = kill.notified() => {}
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                _ = kill.notified() => {}
            }
        }
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Clients hanging up mid-request are normal under fault tests.
        tracing::debug!(%error, "sandbox connection ended with an error");
    }
}
