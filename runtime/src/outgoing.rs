//! Outgoing `wasi:http` requests of any component, sent only to addresses the
//! instance's network grants allow; a name is never re-resolved after the check.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::NetworkGrants;
use crate::checked_body::{CheckedBody, FrameCheck};

/// How long an outgoing connection may take when the guest sets no
/// `connect-timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first byte of an outgoing response, and then each further
/// chunk, may take when the guest sets no timeout of its own.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The `wasi:http` hooks of one instance: outgoing requests go only where
/// its network grants allow.
pub(crate) struct OutgoingHttp {
    pub(crate) grants: Arc<NetworkGrants>,
}

impl OutgoingHttp {
    pub(crate) fn new(grants: &NetworkGrants) -> Self {
        Self {
            grants: Arc::new(grants.clone()),
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        Box::new(send_granted(Arc::clone(&self.grants), request, options))
    }
}

/// Sends one outgoing request over plain HTTP/1.1 to an address the grants
/// allow. Refused (`HTTP-request-denied`) before any packet leaves when the
/// destination is not granted; HTTPS is refused with a message (wrun links
/// no TLS stack).
async fn send_granted(
    grants: Arc<NetworkGrants>,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
    let uri = request.uri().clone();
    let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs = granted_addrs(&grants, authority.host(), port).await?;
    if tls {
        return Err(HttpError::InternalError(Some(
            "wrun does not support outgoing HTTPS yet: use an http:// URL".to_owned(),
        )));
    }
    let options = options.unwrap_or_default();
    let connect_timeout = options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let stream = connect_first(&addrs, connect_timeout).await?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    let conn = wasmtime_wasi::runtime::spawn(conn);
    // The request line carries only the path: the full URI is for proxies.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let first_byte = options.first_byte_timeout.unwrap_or(DEFAULT_READ_TIMEOUT);
    let between = options
        .between_bytes_timeout
        .unwrap_or(DEFAULT_READ_TIMEOUT)
        .max(Duration::from_millis(1));
    let response = tokio::time::timeout(first_byte, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let response = response.map(|body| {
        CheckedBody {
            inner: body,
            check: IdleBound {
                idle: between,
                timer: Box::pin(tokio::time::sleep(between)),
            },
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move { conn.await.map_err(HttpError::from) });
    Ok((response, io))
}

/// The addresses a request to `host:port` may connect to: a literal address
/// if a rule allows it; a name granted by name, resolved on the host; or,
/// with DNS granted, a name resolved and kept to the addresses a rule
/// allows. A name that is neither is refused without a lookup.
async fn granted_addrs(
    grants: &NetworkGrants,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, HttpError> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        return if grants.allows_addr(addr) {
            Ok(vec![addr])
        } else {
            Err(HttpError::HttpRequestDenied)
        };
    }
    let by_name = grants.allows_host(literal, port);
    if !by_name && !grants.dns {
        return Err(HttpError::HttpRequestDenied);
    }
    let found = tokio::net::lookup_host((literal, port))
        .await
        .map_err(|_| HttpError::DnsError {
            rcode: Some("address not found".to_owned()),
            info_code: None,
        })?;
    let allowed: Vec<SocketAddr> = found
        .filter(|a| by_name || grants.allows_addr(*a))
        .collect();
    if allowed.is_empty() {
        return Err(HttpError::HttpRequestDenied);
    }
    Ok(allowed)
}

async fn connect_first(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<tokio::net::TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

/// Fails a response body when no chunk arrives for `idle`.
struct IdleBound {
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl FrameCheck for IdleBound {
    fn frame(&mut self, _frame: &Frame<Bytes>) -> Result<(), HttpError> {
        let next = tokio::time::Instant::now() + self.idle;
        self.timer.as_mut().reset(next);
        Ok(())
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), HttpError> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Err(HttpError::ConnectionReadTimeout),
            Poll::Pending => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(rules: &[&str], dns: bool) -> NetworkGrants {
        NetworkGrants {
            connect: rules
                .iter()
                .map(|r| r.parse().unwrap_or_else(|e| panic!("{r}: {e}")))
                .collect(),
            dns,
            ..NetworkGrants::default()
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn denied(r: Result<Vec<SocketAddr>, HttpError>) -> bool {
        matches!(r, Err(HttpError::HttpRequestDenied))
    }

    #[test]
    fn metadata_address_and_ungranted_ports_are_denied() {
        let g = grants(&["127.0.0.1:8080"], false);
        assert!(denied(block_on(granted_addrs(&g, "169.254.169.254", 80))));
        assert!(denied(block_on(granted_addrs(&g, "127.0.0.1", 8081))));
        assert!(denied(block_on(granted_addrs(
            &g,
            "[::ffff:169.254.169.254]",
            80
        ))));
        let ok = block_on(granted_addrs(&g, "127.0.0.1", 8080)).expect("granted");
        assert_eq!(
            ok,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn names_are_not_looked_up_without_a_name_rule_or_dns() {
        // `localhost` resolves to 127.0.0.1, which the rule allows: only a
        // lookup could find that, and without --allow-dns there is none.
        let g = grants(&["127.0.0.1:8080"], false);
        assert!(denied(block_on(granted_addrs(&g, "localhost", 8080))));
        let g = grants(&["localhost:8080"], false);
        let found = block_on(granted_addrs(&g, "localhost", 8080)).expect("granted by name");
        assert!(found.iter().all(|a| a.port() == 8080));
    }

    #[test]
    fn with_dns_a_name_keeps_only_granted_addresses() {
        let g = grants(&["10.0.0.0/8:8080"], true);
        // localhost resolves to loopback only: nothing granted is left.
        assert!(denied(block_on(granted_addrs(&g, "localhost", 8080))));
    }
}
