//! In-process entry points for the cargo-fuzz targets (`fuzz/`, feature
//! `fuzzing`): the Engine API router without a socket, and the parsers of
//! request bodies and filters on their own. Not an API for anything else.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use wrun_runtime::{Runtime, RuntimeConfig};

use crate::error::DaemonError;
use crate::http::Query;
use crate::state::Daemon;

/// A daemon on a store, answering requests over in-memory connections.
pub struct Engine {
    daemon: Arc<Daemon>,
}

impl Engine {
    /// Loads a daemon on `store` (its records, its logs) with a small
    /// runtime: `max_instances` at once, 64 MiB each. The socket is never
    /// bound; requests come through [`Engine::send`]. Call it inside a tokio
    /// runtime, which then runs the instances.
    pub fn open(store: wrun_image::Store, max_instances: u32) -> anyhow::Result<Self> {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances,
            max_memory_per_instance: 64 << 20,
            cache_dir: Some(store.cache_dir().join("modules")),
            scratch_dir: Some(store.root().join("scratch")),
            ..RuntimeConfig::default()
        })?;
        let socket = store.root().join("wrun.sock");
        let daemon = Daemon::load(store, runtime, socket)?;
        Ok(Self { daemon })
    }

    /// Sends `req` through the daemon's request handler (the one the socket
    /// serves) over a fresh in-memory HTTP/1 connection, and returns the
    /// answer as the client reads it: the body may still be streaming. The
    /// connection is served on a task of the current tokio runtime and ends
    /// when the response is dropped.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> hyper::Result<Response<Incoming>> {
        let (client, server) = tokio::io::duplex(64 << 10);
        let daemon = Arc::clone(&self.daemon);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let d = Arc::clone(&daemon);
                async move { Ok::<_, std::convert::Infallible>(crate::handle(d, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .serve_connection(TokioIo::new(server), svc)
                .with_upgrades()
                .await;
        });
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(client)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender.send_request(req).await
    }
}

/// Which parser [`parse`] feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// `POST /containers/create`'s body: Config, HostConfig,
    /// NetworkingConfig, read and adapted as the route does before it looks
    /// up the image.
    ContainerCreate,
    /// `GET /events?filters=`.
    EventFilters,
    /// `POST /containers/prune?filters=`.
    ContainerPruneFilters,
    /// `POST /images/prune?filters=` (with `dangling`).
    ImagePruneFilters,
}

impl Parser {
    pub const ALL: [Parser; 4] = [
        Parser::ContainerCreate,
        Parser::EventFilters,
        Parser::ContainerPruneFilters,
        Parser::ImagePruneFilters,
    ];
}

/// Runs one parser on `input` (a filters value is taken as the query
/// value, percent-encoded first); on refusal, the status and the message
/// the client would get.
pub fn parse(parser: Parser, input: &[u8]) -> Result<(), (StatusCode, String)> {
    let filters_query = || {
        let value: String = form_urlencoded::byte_serialize(input).collect();
        Query::parse(Some(&format!("filters={value}")))
    };
    let refused = |e: DaemonError| (e.status(), e.message().to_owned());
    match parser {
        Parser::ContainerCreate => crate::containers::parse_create(input).map(|_| ()),
        Parser::EventFilters => {
            let value = String::from_utf8_lossy(input);
            crate::events::EventFilter::parse(Some(&value)).map(|_| ())
        }
        Parser::ContainerPruneFilters => {
            crate::prune_filters::PruneFilters::parse(&filters_query()).map(|_| ())
        }
        Parser::ImagePruneFilters => {
            crate::prune_filters::PruneFilters::parse_with(&filters_query(), &["dangling"])
                .map(|_| ())
        }
    }
    .map_err(refused)
}
