//! In-process start latency at scale (issue 5): N `examples/idle` instances
//! on one tokio runtime, started one after another and all kept alive; for
//! each, the time from the spawn of its run to the first write of its
//! stdout (`ready`) reaching the output sink. Reported over all N and over
//! the last 10 % (the starts made with ~N instances already running).
//!
//! Run: cargo bench -p wrun-runtime --bench start_latency -- [-n 10000] [--tmp]
//! (`--tmp`: give each instance a private /tmp, as `wrun run` without
//! `--read-only` does.) Writes target/start-latency/results.json.

mod common;

use common::prepared_example;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use wrun_runtime::{InstanceSpec, OutputSink, OutputTarget, RuntimeConfig};

/// Sends the time of the first chunk it is given; ignores the rest.
struct FirstWrite(Mutex<Option<oneshot::Sender<Instant>>>);

impl OutputSink for FirstWrite {
    fn write(&self, _chunk: &[u8]) -> std::io::Result<()> {
        let now = Instant::now();
        let first = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = first {
            let _ = tx.send(now);
        }
        Ok(())
    }
}

struct Args {
    n: usize,
    tmp: bool,
}

fn args() -> Args {
    let mut out = Args {
        n: 10_000,
        tmp: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => {
                out.n = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("-n takes a number")
            }
            "--tmp" => out.tmp = true,
            // cargo bench passes --bench; nothing else is expected.
            _ => {}
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn summary(latencies: &[Duration]) -> Summary {
    let mut v = latencies.to_vec();
    v.sort();
    Summary {
        count: v.len(),
        p50_us: percentile(&v, 50.0),
        p90_us: percentile(&v, 90.0),
        p99_us: percentile(&v, 99.0),
        max_us: v.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    }
}

struct Summary {
    count: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
}

impl Summary {
    /// As JSON (the runtime's benches have no serde).
    fn json(&self) -> String {
        format!(
            "{{\"count\": {}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \"p99_us\": {:.1}, \"max_us\": {:.1}}}",
            self.count, self.p50_us, self.p90_us, self.p99_us, self.max_us
        )
    }
}

fn main() {
    let args = args();
    let work = tempfile::tempdir().expect("tempdir");
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("mkdir rootfs");
    // The daemon's settings, sized for N.
    let (runtime, module) = prepared_example(
        "idle",
        RuntimeConfig {
            max_instances: u32::try_from(args.n + 16).expect("n fits in u32"),
            scratch_dir: Some(work.path().join("scratch")),
            ..RuntimeConfig::default()
        },
    );
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");

    let base = InstanceSpec::new(["idle"]).rootfs(&rootfs).tmp(args.tmp);
    let started_all = Instant::now();
    let latencies = executor.block_on(async {
        let mut latencies = Vec::with_capacity(args.n);
        let mut tasks = Vec::with_capacity(args.n);
        for i in 0..args.n {
            let (tx, rx) = oneshot::channel();
            let sink = Arc::new(FirstWrite(Mutex::new(Some(tx))));
            let spec = base.clone().stdout(OutputTarget::Sink(sink));
            let (rt, m) = (runtime.clone(), module.clone());
            let t0 = Instant::now();
            tasks.push(tokio::spawn(async move {
                let outcome = rt.run(&m, spec).await;
                panic!("instance {i} ended: {outcome:?}");
            }));
            let ready = rx
                .await
                .unwrap_or_else(|_| panic!("instance {i} never wrote"));
            latencies.push(ready - t0);
        }
        for t in &tasks {
            t.abort();
        }
        latencies
    });
    let wall = started_all.elapsed();

    let all = summary(&latencies);
    let tail = summary(&latencies[latencies.len() - latencies.len() / 10..]);
    println!(
        "start -> first stdout write, {} idle instances kept alive ({}):",
        args.n,
        if args.tmp { "private /tmp" } else { "no /tmp" }
    );
    println!(
        "  all {:>6}:  p50 {:>7.1} us  p90 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us",
        all.count, all.p50_us, all.p90_us, all.p99_us, all.max_us
    );
    println!(
        "  last {:>5}:  p50 {:>7.1} us  p90 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us",
        tail.count, tail.p50_us, tail.p90_us, tail.p99_us, tail.max_us
    );
    println!("  {} serial starts in {:.2} s", args.n, wall.as_secs_f64());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/start-latency");
    std::fs::create_dir_all(&out).expect("mkdir target/start-latency");
    std::fs::write(
        out.join("results.json"),
        format!(
            "{{\"n\": {}, \"tmp\": {}, \"wall_s\": {:.3}, \"all\": {}, \"last_tenth\": {}}}\n",
            args.n,
            args.tmp,
            wall.as_secs_f64(),
            all.json(),
            tail.json()
        ),
    )
    .expect("write results.json");
}
