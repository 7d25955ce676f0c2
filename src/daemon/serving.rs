//! The daemon's side of serving an HTTP handler (`wrun run -d -p 8080:80
//! hello-http.tar`): the run is the server; `stop` drains it gracefully,
//! `kill` cuts it off, and the access log goes to the instance's log.

use std::net::TcpListener;

use tokio::sync::oneshot;
use wrun_runtime::{OutputTarget, PreparedModule};

use super::http::ApiError;
use super::logs::STDOUT;
use super::state::{Container, Daemon, StopKind};
use crate::api::containers::HostConfig;
use crate::launch::Launch;
use crate::serve::ServeSettings;

/// The serve limits a create request's `HostConfig` asks for.
pub(super) fn settings(host: &HostConfig) -> Result<ServeSettings, ApiError> {
    let header_timeout = match host.wrun_http_header_timeout {
        0 => None,
        t if t < 0 => {
            return Err(ApiError::bad_request(
                "WrunHttpHeaderTimeout must not be negative",
            ));
        }
        t => Some(std::time::Duration::from_nanos(t as u64)),
    };
    Ok(ServeSettings {
        max_concurrency: Some(host.wrun_http_max_concurrency)
            .filter(|n| *n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        max_body_size: Some(host.wrun_http_max_body_size).filter(|n| *n > 0),
        header_timeout,
    })
}

/// Serves until the instance is stopped; returns the exit code and error
/// the run ends with. `stop` and the daemon's shutdown drain in-flight
/// requests first; `kill` with any other signal than SIGTERM does not.
pub(super) async fn serve(
    daemon: &Daemon,
    c: &Container,
    module: &PreparedModule,
    launch: Launch,
    listeners: Vec<TcpListener>,
    settings: &ServeSettings,
    mut stop: oneshot::Receiver<StopKind>,
) -> (i64, String) {
    let options = settings.options(OutputTarget::Sink(c.log.sink(STDOUT)));
    let (drain, drained) = oneshot::channel::<()>();
    let serving = daemon
        .runtime
        .serve(module, listeners, launch.spec, options, async {
            let _ = drained.await;
        });
    tokio::pin!(serving);
    tokio::select! {
        biased;
        kind = &mut stop => {
            let kind = kind.unwrap_or(StopKind::Signal(9));
            if matches!(kind, StopKind::Stop | StopKind::Shutdown | StopKind::Signal(15)) {
                let _ = drain.send(());
                let _ = serving.await;
            }
            let (code, error) = kind.exit();
            (code, error.to_string())
        }
        ended = &mut serving => match ended {
            // Serving ends only when asked to; an early end is an error.
            Ok(_) => (0, String::new()),
            Err(e) => (
                i64::from(crate::commands::EXIT_RUN_ERROR),
                crate::commands::describe(&anyhow::Error::from(e)),
            ),
        },
    }
}
