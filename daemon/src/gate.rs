//! Pausing and metering a running instance: its guest future is wrapped so
//! that, while paused, it is simply not polled, and the time spent polling it
//! is counted as the instance's CPU time.
//!
//! Why this pauses a busy guest too: wasm runs only inside `poll` (on the
//! guest's fiber), and the epoch deadline makes a running guest yield back
//! to the executor every few ticks; the next poll then finds the gate shut
//! and returns `Pending` without resuming the fiber. The instance keeps its
//! memory, its `/tmp` and its pool slot; timers it waits on may fire, but it
//! only sees them once unpaused. No thread or descriptor is held.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use wrun_runtime::MemoryGauge;

/// The controls and meters of one run of an instance.
#[derive(Debug, Default)]
pub struct RunGate {
    /// `Some(waker)` of the parked task while paused and polled; the flag is
    /// read and written under the same lock, so an unpause never misses a
    /// parked poll.
    state: Mutex<GateState>,
    busy_nanos: AtomicU64,
    /// Held while the guest is polled: [`RunGate::settle`] waits on it.
    polling: Mutex<()>,
    pub memory: MemoryGauge,
}

#[derive(Debug, Default)]
struct GateState {
    paused: bool,
    parked: Option<Waker>,
}

impl RunGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // Two plain fields, each assigned whole: usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops polling the guest from its next yield on.
    pub fn pause(&self) {
        self.lock().paused = true;
    }

    /// Lets the guest be polled again, waking it if it was parked.
    pub fn resume(&self) {
        let parked = {
            let mut s = self.lock();
            s.paused = false;
            s.parked.take()
        };
        if let Some(w) = parked {
            w.wake();
        }
    }

    /// Blocks until no poll of the guest is under way: after [`pause`],
    /// the guest then makes no call (no write to its files) until resumed.
    /// Brief: a running guest yields at its next epoch tick.
    ///
    /// [`pause`]: RunGate::pause
    pub fn settle(&self) {
        drop(self.polling.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Time the executor has spent running this instance (wasm and the
    /// host calls it made), summed over its polls.
    pub fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed))
    }

    /// Wraps the guest future.
    pub fn wrap<F: Future>(self: &std::sync::Arc<Self>, inner: F) -> Gated<F> {
        Gated {
            gate: std::sync::Arc::clone(self),
            inner: Box::pin(inner),
        }
    }
}

/// A guest future behind a [`RunGate`].
pub struct Gated<F> {
    gate: std::sync::Arc<RunGate>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut s = self.gate.lock();
            if s.paused {
                s.parked = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        let started = Instant::now();
        let this = &mut *self;
        let polling = this.gate.polling.lock().unwrap_or_else(|p| p.into_inner());
        let out = this.inner.as_mut().poll(cx);
        drop(polling);
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.gate.busy_nanos.fetch_add(spent, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A guest that counts its polls and always yields, like a busy loop
    /// interrupted by the epoch deadline.
    struct Busy(Arc<AtomicU64>);

    impl Future for Busy {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_paused_guest_is_not_polled_until_resumed() {
        let polls = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(RunGate::default());
        let task = tokio::spawn(gate.wrap(Busy(Arc::clone(&polls))));
        while polls.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        gate.pause();
        // At most one poll was already under way when the gate shut.
        tokio::task::yield_now().await;
        let frozen = polls.load(Ordering::SeqCst);
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(polls.load(Ordering::SeqCst), frozen, "polled while paused");
        gate.resume();
        while polls.load(Ordering::SeqCst) <= frozen {
            tokio::task::yield_now().await;
        }
        task.abort();
    }

    #[test]
    fn settle_waits_for_the_poll_under_way() {
        use std::time::Duration;
        let gate = Arc::new(RunGate::default());
        let polling = Arc::new(AtomicBool::new(false));
        let (p, g) = (Arc::clone(&polling), Arc::clone(&gate));
        // A guest whose one poll is a long host call.
        let guest = std::thread::spawn(move || {
            let mut fut = g.wrap(std::future::poll_fn(|_| {
                p.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                p.store(false, Ordering::SeqCst);
                Poll::Ready(())
            }));
            let waker = Waker::noop();
            let _ = Pin::new(&mut fut).poll(&mut Context::from_waker(waker));
        });
        while !polling.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        gate.pause();
        gate.settle();
        assert!(!polling.load(Ordering::SeqCst), "settle returned mid-poll");
        guest.join().unwrap();
    }

    #[tokio::test]
    async fn resuming_wakes_a_parked_guest() {
        let done = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(RunGate::default());
        gate.pause();
        let d = Arc::clone(&done);
        let task = tokio::spawn(gate.wrap(async move { d.store(true, Ordering::SeqCst) }));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!done.load(Ordering::SeqCst), "ran while paused");
        gate.resume();
        task.await.unwrap();
        assert!(done.load(Ordering::SeqCst));
    }
}
