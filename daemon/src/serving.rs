//! The daemon's side of serving an HTTP handler (`wrun run -d -p 8080:80
//! hello-http.tar`): the run is the server; `stop` drains it gracefully,
//! `kill` cuts it off, and the access log goes to the instance's log.

use tokio::sync::oneshot;
use wrun_runtime::{OutputTarget, PreparedModule};

use wrun_runtime::Runtime;

use crate::launch::Launch;
use crate::launch::ServeSettings;
use crate::lifecycle::StopKind;
use crate::serve::ServedPorts;

/// Serves until the instance is stopped (on its published ports, and in
/// process to its peers, see `serve::bind`); returns the exit code and
/// error the run ends with. `stop` and the daemon's shutdown drain in-flight
/// requests first; `kill` with any other signal than SIGTERM does not.
pub(super) async fn serve(
    runtime: &Runtime,
    access_log: OutputTarget,
    module: &PreparedModule,
    launch: Launch,
    ports: ServedPorts,
    settings: &ServeSettings,
    mut stop: oneshot::Receiver<StopKind>,
) -> (i64, String) {
    let mut options = settings.options(access_log);
    options.peer_ports = ports.peer_ports;
    let (drain, drained) = oneshot::channel::<()>();
    let serving = runtime.serve(module, ports.listeners, launch.spec, options, async {
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
                i64::from(crate::outcome::EXIT_RUN_ERROR),
                crate::error::describe(&anyhow::Error::from(e)),
            ),
        },
    }
}
