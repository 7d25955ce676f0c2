//! The API socket's accept loop and what one connection may hold: a request
//! head must arrive within the header timeout, so slow or silent clients
//! cannot pin connections forever (docs/daemon.md, "Slow and idle clients").

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::state::Daemon;
use wrun_api::API_VERSION;

/// How long a client has to send a whole request head, from the moment the
/// connection can take one (accepted, or its previous answer sent), when
/// `wrun daemon` gets no `--api-header-timeout`.
///
/// dockerd 23 and later give 5 minutes from the accept (20.10 gives no
/// bound) and never close a connection idle between requests; hyper's
/// timer also covers that idle wait, so a shorter bound is the one both
/// slow clients and abandoned keep-alive connections see. Clients of the
/// socket send a head in one write, and Go's and urllib3's connection
/// pools reopen a connection the server closed while idle.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP/1 settings every API connection is served with.
fn connection_settings(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // A client may shut its side once its request is sent (`docker
        // run`'s attach does, when it has no stdin): that is no reason to
        // drop the answer.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
}

/// Serves every connection to `listener` until a shutdown request, SIGTERM
/// or SIGINT; then ends the running instances.
pub async fn accept_loop(
    daemon: Arc<Daemon>,
    listener: std::os::unix::net::UnixListener,
    header_timeout: Duration,
) -> anyhow::Result<()> {
    let listener =
        tokio::net::UnixListener::from_std(listener).context("registering the socket")?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    eprintln!(
        "wrun daemon: listening on {} (API {API_VERSION})",
        daemon.socket.display()
    );
    let settings = Arc::new(connection_settings(header_timeout));
    loop {
        tokio::select! {
            _ = daemon.shutdown.notified() => break,
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let d = Arc::clone(&daemon);
                    let settings = Arc::clone(&settings);
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let d = Arc::clone(&d);
                            async move { Ok::<_, Infallible>(crate::handle(d, req).await) }
                        });
                        // A connection ends in an error when the client
                        // goes away or overstays the header timeout: the
                        // client's affair, nothing to report.
                        let _ = settings
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    });
                }
                Err(e) => {
                    // Out of descriptors or similar: back off, keep serving.
                    eprintln!("wrun daemon: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    daemon.stop_all().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    /// Serves one connection with the daemon's settings and a handler that
    /// answers "OK"; returns what the client read before the daemon closed.
    fn serve_one(
        header_timeout: Duration,
        client: impl FnOnce(&mut std::os::unix::net::UnixStream) + Send + 'static,
    ) -> Vec<u8> {
        let (server, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reader = std::thread::spawn(move || {
            client(&mut peer);
            let mut got = Vec::new();
            let _ = peer.read_to_end(&mut got);
            got
        });
        rt.block_on(async move {
            let stream = tokio::net::UnixStream::from_std(server).unwrap();
            let svc = service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"OK"),
                )))
            });
            let _ = super::connection_settings(header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        reader.join().unwrap()
    }

    #[test]
    fn a_head_that_never_ends_is_closed_at_the_header_timeout() {
        let got = serve_one(Duration::from_millis(200), |peer| {
            peer.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: a")
                .unwrap();
        });
        // Closed without an answer: hyper drops the connection.
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }

    #[test]
    fn a_whole_head_is_answered() {
        let got = serve_one(Duration::from_millis(200), |peer| {
            peer.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                .unwrap();
        });
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
}
