//! Where an idle instance's memory goes: starts N `examples/idle` instances
//! (no rootfs, no `/tmp`, stdout to a counting sink) on one tokio runtime,
//! waits until all printed `ready`, and prints the growth of this process's
//! resident memory by mapping (from `/proc/self/smaps`), per instance.
//!
//! Run: cargo bench -p wrun-runtime --bench idle_memory -- [N]   (default 4000)

mod common;

use common::prepared_example;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wrun_runtime::{InstanceSpec, OutputSink, OutputTarget, RuntimeConfig};

/// Counts instances that wrote to stdout (each writes `ready` once).
struct Ready(Arc<AtomicUsize>);

impl OutputSink for Ready {
    fn write(&self, _chunk: &[u8]) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Resident and proportional KiB by mapping, keyed by the mapping's name
/// (`[heap]`, `[anon]`, a file) and its size class in MiB.
fn smaps() -> BTreeMap<String, (i64, i64)> {
    let text = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut key = String::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let name = line.split_whitespace().nth(5).unwrap_or("[anon]");
            // The heap's size changes as it grows: key it by name alone.
            key = if name.starts_with('[') && name != "[anon]" {
                name.to_owned()
            } else {
                format!("{name} ({} MiB mapping)", (end - start) >> 20)
            };
            continue;
        }
        let mut value = || -> i64 { fields.next().and_then(|v| v.parse().ok()).unwrap_or(0) };
        match first {
            "Rss:" => out.entry(key.clone()).or_default().0 += value(),
            "Pss:" => out.entry(key.clone()).or_default().1 += value(),
            _ => {}
        }
    }
    out
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("N must be a number"))
        .unwrap_or(4000);
    let (runtime, module) = prepared_example(
        "idle",
        RuntimeConfig {
            max_instances: u32::try_from(n + 8).expect("N fits u32"),
            max_memory_per_instance: 64 << 20,
            ..RuntimeConfig::default()
        },
    );
    let module = Arc::new(module);
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let ready = Arc::new(AtomicUsize::new(0));
    let before = smaps();
    executor.block_on(async {
        let mut instances = Vec::with_capacity(n);
        for _ in 0..n {
            let runtime = runtime.clone();
            let module = Arc::clone(&module);
            let spec = InstanceSpec::new(["idle"])
                .stdout(OutputTarget::Sink(Arc::new(Ready(Arc::clone(&ready)))));
            instances.push(tokio::spawn(
                async move { runtime.run(&module, spec).await },
            ));
        }
        while ready.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut rows: Vec<(String, i64, i64)> = smaps()
            .into_iter()
            .map(|(k, (rss, pss))| {
                let (rss0, pss0) = before.get(&k).copied().unwrap_or((0, 0));
                (k, rss - rss0, pss - pss0)
            })
            .filter(|(_, rss, pss)| *rss != 0 || *pss != 0)
            .collect();
        rows.sort_by_key(|(_, _, pss)| -pss);
        let per = |kib: i64| kib as f64 / n as f64;
        let total: i64 = rows.iter().map(|r| r.2).sum();
        println!(
            "{n} idle instances: PSS grew {total} KiB, {:.1} KiB per instance",
            per(total)
        );
        println!(
            "{:<55} {:>12} {:>12}",
            "mapping", "RSS/inst KiB", "PSS/inst KiB"
        );
        for (name, rss, pss) in rows.iter().take(10) {
            println!("{name:<55} {:>12.1} {:>12.1}", per(*rss), per(*pss));
        }
        for instance in &instances {
            instance.abort();
        }
    });
}
