//! Outgoing `wasi:http` requests of any component, sent only to addresses the
//! instance's network grants allow (a name is never re-resolved after the
//! check), or in process to a peer on one of its networks.

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

use crate::checked_body::{CheckedBody, FrameCheck};
use crate::peer_net::{PeerError, PeerStream, Route};
use crate::{InstancePeers, NetworkGrants};

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
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
    let uri = request.uri().clone();
    let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let peer = match &grants.peers {
        Some(peers) => peer_stream(peers, authority.host(), port)?,
        None => None,
    };
    let addrs = match peer {
        Some(_) => Vec::new(),
        None => granted_addrs(&grants, authority.host(), port).await?,
    };
    if tls {
        return Err(HttpError::InternalError(Some(
            "wrun does not support outgoing HTTPS yet: use an http:// URL".to_owned(),
        )));
    }
    let options = options.unwrap_or_default();
    match peer {
        Some(stream) => exchange(stream, request, options).await,
        None => {
            let connect_timeout = options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
            let stream = connect_first(&addrs, connect_timeout).await?;
            exchange(stream, request, options).await
        }
    }
}

/// An in-process connection to `host:port` when `host` is a peer on one of
/// the instance's networks (a name it resolves, or a network address):
/// handed to the peer's listener, never to a host socket. `None`: not a
/// peer, the grants decide. A peer address nobody answers on is refused
/// here and never tried on the host.
fn peer_stream(
    peers: &InstancePeers,
    host: &str,
    port: u16,
) -> Result<Option<PeerStream>, HttpError> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs = match literal.parse::<IpAddr>() {
        Ok(ip) => match peers.route(ip) {
            Route::Host => return Ok(None),
            Route::Unreachable => return Err(HttpError::DestinationUnavailable),
            Route::Peer { .. } => vec![ip],
        },
        Err(_) => match peers.resolve(literal) {
            Some(addrs) => addrs,
            None => return Ok(None),
        },
    };
    let mut last = HttpError::ConnectionRefused;
    for ip in addrs {
        match peers.connect(SocketAddr::new(ip, port)) {
            Ok(stream) => return Ok(Some(stream)),
            Err(PeerError::Refused) => last = HttpError::ConnectionRefused,
            Err(_) => last = HttpError::DestinationUnavailable,
        }
    }
    Err(last)
}

/// Sends `request` as HTTP/1.1 over `stream` (a host socket or an
/// in-process pipe to a peer) within the request's timeouts.
async fn exchange<S>(
    stream: S,
    mut request: Request<WasiBody>,
    options: RequestOptions,
) -> Result<(Response<WasiBody>, IoFuture), HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let uri = request.uri().clone();
    let connect_timeout = options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
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
pub(crate) mod tests {
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

    /// `front` and `api` share network 10.0.0.0/24 (.2 and .3); `other`
    /// is alone on 10.1.0.0/24 (.2).
    pub(crate) struct TwoNetworks;

    const MEMBERS: [(&str, [u8; 4]); 3] = [
        ("front", [10, 0, 0, 2]),
        ("api", [10, 0, 0, 3]),
        ("other", [10, 1, 0, 2]),
    ];

    fn member(name: &str) -> Option<std::net::Ipv4Addr> {
        MEMBERS
            .iter()
            .find(|m| m.0 == name)
            .map(|m| std::net::Ipv4Addr::from(m.1))
    }

    fn same_network(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr) -> bool {
        a.octets()[..3] == b.octets()[..3]
    }

    impl crate::PeerDirectory for TwoNetworks {
        fn resolve(&self, instance: &str, name: &str) -> Vec<crate::peer_net::PeerAddr> {
            match (member(instance), member(name)) {
                (Some(me), Some(it)) if same_network(me, it) => {
                    vec![crate::peer_net::PeerAddr {
                        instance: name.into(),
                        addr: it,
                    }]
                }
                _ => Vec::new(),
            }
        }

        fn route(&self, instance: &str, addr: IpAddr) -> Route {
            let IpAddr::V4(to) = addr else {
                return Route::Host;
            };
            if !matches!(to.octets(), [10, 0 | 1, 0, _]) {
                return Route::Host;
            }
            let me = member(instance).filter(|me| same_network(*me, to));
            let it = MEMBERS.iter().find(|m| std::net::Ipv4Addr::from(m.1) == to);
            match (me, it) {
                (Some(from), Some(it)) => Route::Peer {
                    peer: it.0.into(),
                    from,
                },
                _ => Route::Unreachable,
            }
        }

        fn own_addresses(&self, instance: &str) -> Vec<std::net::Ipv4Addr> {
            member(instance).into_iter().collect()
        }
    }

    fn get(url: &str) -> Request<WasiBody> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        Request::builder().uri(url).body(body).expect("request")
    }

    /// `api` answers `from api: PATH` on port 80 of its network address,
    /// through an in-process listener only.
    async fn serve_api(net: &crate::PeerNet) -> crate::InstancePeers {
        let api = net.attach("api");
        let listener = api.listen(None, 80, 8).expect("listen");
        tokio::spawn(async move {
            while let Ok(stream) = listener.accept().await {
                let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| {
                    let text = format!("from api: {}", req.uri().path());
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                            Bytes::from(text),
                        )))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        api
    }

    async fn body_of(url: &str, grants: &Arc<NetworkGrants>) -> Result<String, HttpError> {
        let (response, _io) = send_granted(Arc::clone(grants), get(url), None).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn a_request_to_a_peer_is_handed_over_in_process() {
        block_on(async {
            let net = crate::PeerNet::new(Arc::new(TwoNetworks));
            let _api = serve_api(&net).await;
            // No host grant at all: only the network makes `api` reachable.
            let front = Arc::new(NetworkGrants {
                peers: Some(net.attach("front")),
                ..NetworkGrants::default()
            });
            assert_eq!(
                body_of("http://api/hello", &front).await.expect("by name"),
                "from api: /hello"
            );
            assert_eq!(
                body_of("http://10.0.0.3/x", &front)
                    .await
                    .expect("by address"),
                "from api: /x"
            );
            // Nobody listens on 8080 there: refused, not tried on the host.
            assert!(matches!(
                body_of("http://api:8080/", &front).await,
                Err(HttpError::ConnectionRefused)
            ));
        });
    }

    /// The attack: an instance on another network asks for the peer by
    /// name and by its network address.
    #[test]
    fn an_instance_off_the_network_cannot_reach_a_peer() {
        block_on(async {
            let net = crate::PeerNet::new(Arc::new(TwoNetworks));
            let _api = serve_api(&net).await;
            let other = Arc::new(NetworkGrants {
                peers: Some(net.attach("other")),
                ..NetworkGrants::default()
            });
            // Not a peer name for it, and no DNS granted: denied.
            assert!(matches!(
                body_of("http://api/", &other).await,
                Err(HttpError::HttpRequestDenied)
            ));
            // A network address it has no route to never goes to the host.
            assert!(matches!(
                body_of("http://10.0.0.3/", &other).await,
                Err(HttpError::DestinationUnavailable)
            ));
        });
    }

    #[test]
    fn with_dns_a_name_keeps_only_granted_addresses() {
        let g = grants(&["10.0.0.0/8:8080"], true);
        // localhost resolves to loopback only: nothing granted is left.
        assert!(denied(block_on(granted_addrs(&g, "localhost", 8080))));
    }
}
