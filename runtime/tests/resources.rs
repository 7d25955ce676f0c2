//! Attacks on the host's resources by a guest: runaway loops and sleeps vs
//! timeouts, memory and table growth vs limits, deep recursion, pool reuse,
//! stdout floods, fuel, and a full pool.

mod common;

use std::time::{Duration, Instant};

use common::{capture, prepare_wat, runtime};
use wrun_runtime::{
    InstanceSpec, Limits, MAX_SINK_CHUNK, ModuleDigest, PrepareOptions, RunOutcome, RuntimeError,
    TrapReason,
};

fn reason(outcome: &RunOutcome) -> Option<TrapReason> {
    match outcome {
        RunOutcome::Trapped { reason, .. } => Some(*reason),
        RunOutcome::Exited(_) => None,
    }
}

fn with_timeout(spec: InstanceSpec, timeout: Duration) -> InstanceSpec {
    spec.limits(Limits {
        timeout: Some(timeout),
        ..Limits::default()
    })
}

fn with_memory(spec: InstanceSpec, bytes: u64) -> InstanceSpec {
    spec.limits(Limits {
        memory: Some(bytes),
        ..Limits::default()
    })
}

/// Runs `wat` once as `spec` grants, on a fresh 4-slot runtime.
fn run_wat(wat: &str, spec: InstanceSpec) -> RunOutcome {
    let (rt, _scratch) = runtime(4);
    let module = prepare_wat(&rt, wat);
    rt.run_blocking(&module, spec).expect("run")
}

/// Runs `wat` with a memory limit of `limit` bytes, then without one (the
/// control), and returns both outcomes.
fn limited_then_unlimited(wat: &str, limit: u64) -> (RunOutcome, RunOutcome) {
    let (rt, _scratch) = runtime(4);
    let module = prepare_wat(&rt, wat);
    let limited = rt
        .run_blocking(&module, with_memory(InstanceSpec::new(["grow"]), limit))
        .expect("run");
    let unlimited = rt
        .run_blocking(&module, InstanceSpec::new(["grow"]))
        .expect("run");
    (limited, unlimited)
}

fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

const INFINITE_LOOP: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "_start") (loop $l (br $l))))"#;

#[test]
fn infinite_loop_is_interrupted_by_the_timeout() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_wat(&rt, INFINITE_LOOP);
    let started = Instant::now();
    let outcome = rt
        .run_blocking(
            &module,
            with_timeout(InstanceSpec::new(["loop"]), Duration::from_millis(200)),
        )
        .expect("run");
    assert_eq!(reason(&outcome), Some(TrapReason::Timeout), "{outcome:?}");
    // Generous bound: the point is that it stops at all, not how fast.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn guest_sleeping_in_poll_oneoff_is_interrupted_by_the_timeout() {
    let (rt, _scratch) = runtime(4);
    // One relative monotonic-clock subscription of 60 s.
    let module = prepare_wat(
        &rt,
        r#"(module
            (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "_start")
                (i32.store8 (i32.const 8) (i32.const 0))
                (i32.store (i32.const 16) (i32.const 1))
                (i64.store (i32.const 24) (i64.const 60000000000))
                (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 1) (i32.const 256)))))"#,
    );
    let started = Instant::now();
    let outcome = rt
        .run_blocking(
            &module,
            with_timeout(InstanceSpec::new(["sleep"]), Duration::from_millis(200)),
        )
        .expect("run");
    assert_eq!(reason(&outcome), Some(TrapReason::Timeout), "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited for the sleep"
    );
}

#[test]
fn looping_guest_does_not_starve_other_instances_on_the_same_thread() {
    let (rt, _scratch) = runtime(4);
    let spinner = prepare_wat(&rt, INFINITE_LOOP);
    let hello = common::prepare_file(&rt, &common::repo_path("examples/hello/hello.wasm"));
    let executor = executor();
    let (hello_done, loop_outcome) = executor.block_on(async {
        let spin = rt.run(
            &spinner,
            with_timeout(InstanceSpec::new(["loop"]), Duration::from_secs(5)),
        );
        let greet = async {
            let outcome = rt.run(&hello, InstanceSpec::new(["hello"])).await;
            (outcome, Instant::now())
        };
        let ((hello_outcome, hello_at), loop_outcome) = tokio::join!(greet, spin);
        assert_eq!(hello_outcome.expect("hello"), RunOutcome::Exited(0));
        (hello_at, (loop_outcome.expect("loop"), Instant::now()))
    });
    assert_eq!(reason(&loop_outcome.0), Some(TrapReason::Timeout));
    assert!(
        hello_done < loop_outcome.1,
        "hello only finished after the spinner was killed"
    );
}

const GROW_MEMORY: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    ;; exit 100 if growing by 16 pages failed (-1), 101 if it worked
    (func (export "_start")
        (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))
            (then (call $exit (i32.const 100)))
            (else (call $exit (i32.const 101))))))"#;

#[test]
fn memory_grow_past_the_limit_returns_minus_one_to_the_guest() {
    let (limited, unlimited) = limited_then_unlimited(GROW_MEMORY, 4 * 65536);
    assert_eq!(limited, RunOutcome::Exited(100));
    assert_eq!(
        unlimited,
        RunOutcome::Exited(101),
        "control: the grow works without a limit"
    );
}

#[test]
fn memory_grow_past_the_pool_slot_returns_minus_one() {
    // 64 MiB per instance in the test runtime; ask for 128 MiB without a limit.
    let outcome = run_wat(
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start")
                (call $exit (i32.eq (memory.grow (i32.const 2048)) (i32.const -1)))))"#,
        InstanceSpec::new(["grow"]),
    );
    assert_eq!(outcome, RunOutcome::Exited(1));
}

#[test]
fn allocation_failure_after_a_denied_grow_is_reported_as_memory_limit() {
    let outcome = run_wat(
        r#"(module
            (memory (export "memory") 1)
            (func (export "_start")
                (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))
                    (then unreachable))))"#,
        with_memory(InstanceSpec::new(["oom"]), 2 * 65536),
    );
    assert_eq!(
        reason(&outcome),
        Some(TrapReason::MemoryLimit),
        "{outcome:?}"
    );
}

#[test]
fn initial_memory_above_the_limit_is_a_memory_limit_outcome() {
    let outcome = run_wat(
        r#"(module (memory (export "memory") 32) (func (export "_start")))"#,
        with_memory(InstanceSpec::new(["big"]), 65536),
    );
    assert_eq!(
        reason(&outcome),
        Some(TrapReason::MemoryLimit),
        "{outcome:?}"
    );
}

const GROW_TABLE: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (table $t 1 funcref)
    ;; exit 100 if growing the table by 1000 failed, 101 if it worked
    (func (export "_start")
        (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))
            (then (call $exit (i32.const 100)))
            (else (call $exit (i32.const 101))))))"#;

#[test]
fn table_grow_past_the_limit_returns_minus_one_to_the_guest() {
    // One page of memory plus room for 10 table elements.
    let (limited, unlimited) = limited_then_unlimited(GROW_TABLE, 65536 + 8 * 10);
    assert_eq!(limited, RunOutcome::Exited(100));
    assert_eq!(
        unlimited,
        RunOutcome::Exited(101),
        "control: the grow works without a limit"
    );
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap_not_an_abort() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_wat(
        &rt,
        r#"(module
            (memory (export "memory") 1)
            (func $down (param i64) (result i64)
                (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
            (func (export "_start") (drop (call $down (i64.const 0)))))"#,
    );
    for _ in 0..3 {
        // Repeated: a reused pooled stack must overflow cleanly too.
        let outcome = rt
            .run_blocking(&module, InstanceSpec::new(["recurse"]))
            .expect("run");
        assert_eq!(
            reason(&outcome),
            Some(TrapReason::StackOverflow),
            "{outcome:?}"
        );
        if let RunOutcome::Trapped { backtrace, .. } = &outcome {
            assert!(
                backtrace.as_deref().is_some_and(|b| b.contains("down")),
                "{backtrace:?}"
            );
        }
    }
}

#[test]
fn pooled_instance_never_sees_the_previous_instances_memory() {
    // One slot, so the second instance reuses the first one's memory. With
    // two args the guest stores a secret at 70000 (past any data segment)
    // and checks it is there; with one it exits 13 if the address is not 0.
    let (rt, _scratch) = runtime(1);
    let module = prepare_wat(
        &rt,
        r#"(module
            (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 2)
            (func (export "_start")
                (drop (call $sizes (i32.const 0) (i32.const 4)))
                (if (i32.eq (i32.load (i32.const 0)) (i32.const 2))
                    (then
                        (i64.store (i32.const 70000) (i64.const 0x5ec2e75ec2e75ec2))
                        (call $exit (i64.ne (i64.load (i32.const 70000)) (i64.const 0x5ec2e75ec2e75ec2))))
                    (else
                        (call $exit (select (i32.const 13) (i32.const 0)
                            (i64.ne (i64.load (i32.const 70000)) (i64.const 0))))))))"#,
    );
    for _ in 0..3 {
        let wrote = rt
            .run_blocking(&module, InstanceSpec::new(["secret", "write"]))
            .expect("run");
        assert_eq!(wrote, RunOutcome::Exited(0));
        let read = rt
            .run_blocking(&module, InstanceSpec::new(["secret"]))
            .expect("run");
        assert_eq!(
            read,
            RunOutcome::Exited(0),
            "the previous instance's secret was visible"
        );
    }
}

#[test]
fn stdout_flood_reaches_the_sink_in_bounded_chunks() {
    let (rt, _scratch) = runtime(4);
    // Writes 10 MiB from memory offset 1024 in as many fd_write calls as it
    // takes, then exits 0; exits 1 if a write fails.
    let module = prepare_wat(
        &rt,
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 170)
            (func (export "_start") (local $left i32) (local $at i32)
                (local.set $left (i32.const 10485760))
                (local.set $at (i32.const 1024))
                (block $done (loop $more
                    (br_if $done (i32.eqz (local.get $left)))
                    (i32.store (i32.const 0) (local.get $at))
                    (i32.store (i32.const 4) (local.get $left))
                    (if (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
                        (then (call $exit (i32.const 1))))
                    (local.set $at (i32.add (local.get $at) (i32.load (i32.const 8))))
                    (local.set $left (i32.sub (local.get $left) (i32.load (i32.const 8))))
                    (br $more)))))"#,
    );
    let (sink, target) = capture();
    let outcome = rt
        .run_blocking(&module, InstanceSpec::new(["flood"]).stdout(target))
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    let chunks = sink.chunks.lock().expect("lock");
    assert_eq!(chunks.iter().sum::<usize>(), 10 << 20);
    assert!(
        chunks.iter().all(|&c| c <= MAX_SINK_CHUNK),
        "a chunk exceeded the bound"
    );
    assert!(chunks.len() >= (10 << 20) / MAX_SINK_CHUNK);
}

#[test]
fn fuel_budget_stops_a_runaway_guest() {
    let (rt, _scratch) = runtime(4);
    let wasm = wat::parse_str(INFINITE_LOOP).expect("wat");
    let digest = ModuleDigest::of(&wasm);
    let plain = rt
        .prepare(&digest, &wasm, PrepareOptions::default())
        .expect("prepare");
    let fuel = Limits {
        fuel: Some(1_000_000),
        ..Limits::default()
    };
    let err = rt
        .run_blocking(&plain, InstanceSpec::new(["loop"]).limits(fuel))
        .expect_err("fuel on an unmetered module accepted");
    assert!(matches!(err, RuntimeError::FuelNotPrepared), "{err:?}");

    let metered = rt
        .prepare(
            &digest,
            &wasm,
            PrepareOptions {
                fuel: true,
                ..PrepareOptions::default()
            },
        )
        .expect("prepare metered");
    let outcome = rt
        .run_blocking(&metered, InstanceSpec::new(["loop"]).limits(fuel))
        .expect("run");
    assert_eq!(reason(&outcome), Some(TrapReason::OutOfFuel), "{outcome:?}");
}

#[test]
fn creating_instances_past_the_pool_size_is_a_capacity_error() {
    let (rt, _scratch) = runtime(1);
    let spinner = prepare_wat(&rt, INFINITE_LOOP);
    let executor = executor();
    executor.block_on(async {
        let hold = rt.run(
            &spinner,
            with_timeout(InstanceSpec::new(["hold"]), Duration::from_secs(3)),
        );
        let second = async {
            // Let the first instance take the only slot.
            tokio::time::sleep(Duration::from_millis(100)).await;
            rt.run(
                &spinner,
                with_timeout(InstanceSpec::new(["second"]), Duration::from_secs(1)),
            )
            .await
        };
        let (held, second) = tokio::join!(hold, second);
        assert_eq!(
            reason(&held.expect("first runs")),
            Some(TrapReason::Timeout)
        );
        let err = second.expect_err("second instance got a slot");
        assert!(matches!(err, RuntimeError::Capacity { .. }), "{err:?}");
    });
}
