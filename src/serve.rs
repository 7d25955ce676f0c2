//! Serving an image whose module is a `wasi:http/proxy` component: the
//! limits the flags ask for, binding its published ports, and the foreground
//! server (`wrun run -p 8080:80 hello-http.tar`). The daemon's side is
//! `daemon/serving.rs`.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use wrun_image::Store;
use wrun_runtime::{
    NetworkGrants, OutputTarget, Protocol, PublishError, Runtime, RuntimeConfig, ServeOptions,
};

use crate::launch::Launch;

/// The per-request deadline when the run gives no `--timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `--max-concurrency`, `--max-body-size` and `--header-timeout` ask
/// for; `None`: the default of [`ServeOptions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeSettings {
    pub max_concurrency: Option<usize>,
    pub max_body_size: Option<u64>,
    pub header_timeout: Option<Duration>,
}

impl ServeSettings {
    /// The runtime's serve options, the access log going to `access_log`.
    pub fn options(&self, access_log: OutputTarget) -> ServeOptions {
        let defaults = ServeOptions::default();
        ServeOptions {
            max_concurrency: self.max_concurrency.unwrap_or(defaults.max_concurrency),
            max_body_size: self.max_body_size.unwrap_or(defaults.max_body_size),
            header_read_timeout: self.header_timeout.unwrap_or(defaults.header_read_timeout),
            access_log,
            ..defaults
        }
    }
}

/// Readies `launch` for serving: each request gets `--timeout` (or
/// [`DEFAULT_REQUEST_TIMEOUT`]), and the published TCP ports are bound now,
/// so a taken port fails the start. The mappings are updated with the ports
/// the kernel picked for `-p GUESTPORT`.
///
/// A private `/tmp` is refused: a request's instance lives for one request,
/// and creating and removing a directory on the store's disk for each one
/// cut throughput to a third (docs/serving.md); without it, all requests
/// share one set of rootfs and volume handles.
pub fn bind(image: &str, launch: &mut Launch) -> anyhow::Result<Vec<TcpListener>> {
    if launch.spec.tmp {
        bail!(
            "{image} is an HTTP handler (wasi:http/proxy): --tmpfs /tmp is not available to it (each request runs in an instance of its own); keep state in a volume (-v)"
        );
    }
    launch
        .spec
        .limits
        .timeout
        .get_or_insert(DEFAULT_REQUEST_TIMEOUT);
    bind_published(image, &mut launch.spec.network)
}

fn bind_published(image: &str, network: &mut NetworkGrants) -> anyhow::Result<Vec<TcpListener>> {
    if network.publish.is_empty() {
        bail!(
            "{image} is an HTTP handler (wasi:http/proxy): publish the port to serve it on, e.g. -p 8080:80"
        );
    }
    let mut listeners = Vec::with_capacity(network.publish.len());
    for m in &mut network.publish {
        if m.protocol != Protocol::Tcp {
            bail!(
                "cannot publish {}: {image} is an HTTP handler and serves TCP only",
                m.spec()
            );
        }
        let addr = m.host_addr();
        let listener = TcpListener::bind(addr).map_err(|source| PublishError::Bind {
            mapping: m.spec(),
            addr,
            protocol: m.protocol,
            source,
        })?;
        m.host_port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Where a published mapping can be reached, for the start-up message.
pub fn url(m: &wrun_runtime::PortMapping) -> String {
    match m.host_addr() {
        std::net::SocketAddr::V6(a) => format!("http://[{}]:{}/", a.ip(), a.port()),
        a => format!("http://{a}/"),
    }
}

/// Serves in the foreground until Ctrl-C or SIGTERM, then drains in-flight
/// requests (a second signal exits at once). The access log and the guests'
/// output go to stderr and stdout.
pub fn foreground(
    store: &Store,
    mut launch: Launch,
    image: &str,
    settings: &ServeSettings,
) -> anyhow::Result<ExitCode> {
    let listeners = bind(image, &mut launch)?;
    let options = settings.options(OutputTarget::Inherit);
    // One pool slot per concurrent request (the runtime `run` made for a
    // command holds 4); the module is mapped from the disk cache again.
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: u32::try_from(options.max_concurrency)
            .unwrap_or(u32::MAX)
            .saturating_add(1),
        cache_dir: Some(store.cache_dir().join("modules")),
        scratch_dir: Some(store.root().join("scratch")),
        ..RuntimeConfig::default()
    })
    .context("starting the wasm runtime")?;
    let module = crate::launch::prepare(&runtime, &launch)?;
    for m in &launch.spec.network.publish {
        eprintln!("Serving {image} on {} ({m})", url(m));
    }
    let executor = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async executor")?;
    let report = executor.block_on(async {
        let shutdown = async {
            stop_signal().await;
            eprintln!("Stopping: finishing requests in flight (again to quit at once)");
            tokio::spawn(async {
                stop_signal().await;
                std::process::exit(130);
            });
        };
        runtime
            .serve(&module, listeners, launch.spec, options, shutdown)
            .await
    })?;
    if report.cut_off > 0 {
        eprintln!(
            "Stopped after {} requests; {} in flight were cut off",
            report.requests, report.cut_off
        );
    } else {
        eprintln!("Stopped after {} requests", report.requests);
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(specs: &[&str]) -> NetworkGrants {
        NetworkGrants {
            publish: specs.iter().map(|s| s.parse().unwrap()).collect(),
            ..NetworkGrants::default()
        }
    }

    #[test]
    fn serving_needs_a_published_tcp_port() {
        let err = bind_published("h.tar", &mut grants(&[])).unwrap_err();
        assert!(err.to_string().contains("-p 8080:80"), "{err}");
        let err = bind_published("h.tar", &mut grants(&["127.0.0.1::53/udp"])).unwrap_err();
        assert!(err.to_string().contains("TCP only"), "{err}");
    }

    #[test]
    fn a_taken_port_is_named_and_a_free_one_is_resolved() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err =
            bind_published("h.tar", &mut grants(&[&format!("127.0.0.1:{port}:80")])).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
        let mut g = grants(&["127.0.0.1::80"]);
        let listeners = bind_published("h.tar", &mut g).unwrap();
        assert_eq!(
            g.publish[0].host_port,
            listeners[0].local_addr().unwrap().port()
        );
    }
}
