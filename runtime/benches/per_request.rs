//! Per-request cost of serving examples/hello-http: one GET over a kept-alive
//! 127.0.0.1 connection to `Runtime::serve`, which answers each request
//! from a fresh instance (instantiate, `handle`, drop). The figure includes
//! HTTP/1.1 parsing on both sides and loopback TCP; the client runs on its
//! own thread, the server on a two-thread tokio runtime.
//!
//! Run: cargo bench -p wrun-runtime --bench per_request -- --quick

mod common;

use common::prepared_example;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use wrun_runtime::{InstanceSpec, RuntimeConfig, ServeOptions};

fn per_request(c: &mut Criterion) {
    let (runtime, module) = prepared_example(
        "hello-http",
        RuntimeConfig {
            max_instances: 64,
            ..RuntimeConfig::default()
        },
    );
    let module = Arc::new(module);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let runtime = runtime.clone();
        let module = Arc::clone(&module);
        server.spawn(async move {
            runtime
                .serve(
                    &module,
                    vec![listener],
                    InstanceSpec::new(["hello-http"]),
                    ServeOptions::default(),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
        })
    };

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut sender = client.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender
    });

    c.bench_function(
        "hello-http: GET over keep-alive loopback (instance per request)",
        |b| {
            b.iter(|| {
                client.block_on(async {
                    let request = hyper::Request::get("/bench")
                        .header("host", "bench")
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let response = sender.send_request(request).await.expect("send");
                    assert_eq!(response.status(), 200);
                    let body = response.into_body().collect().await.expect("body");
                    assert!(body.to_bytes().ends_with(b"/bench\n"));
                });
            });
        },
    );

    let _ = stop.send(());
    let report = server.block_on(serving).expect("join").expect("serve");
    assert!(report.requests > 0);
}

criterion_group!(benches, per_request);
criterion_main!(benches);
