//! `wrun run` of an HTTP handler (a `wasi:http/proxy` component) in the
//! foreground: `wrun run -p 8080:80 hello-http.tar` serves until Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use wrun_daemon::launch::{self, Launch, ServeSettings};
use wrun_daemon::serve::{bind, url};
use wrun_image::Store;
use wrun_runtime::{OutputTarget, Runtime, RuntimeConfig};

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
    let module = launch::prepare(&runtime, &launch)?;
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
