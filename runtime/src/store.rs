//! The state of one wasmtime `Store` (a core module's or a component's), and
//! `new_store`, which charges it to its limiter and bounds its time and fuel.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::limiter::InstanceLimiter;
use crate::outcome::DeadlineExceeded;
use crate::outgoing::OutgoingHttp;
use crate::rootfs_p2::{RootfsFs, RootfsHost};
use crate::scratch::SharedTmp;
use crate::sockets::{InstanceSockets, SocketHost};
use crate::{Limits, RuntimeError};

/// How often (in fuel units) a metered guest yields to the executor.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// Store data of a core module instance.
pub(crate) struct CoreState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: InstanceLimiter,
    /// The writable rootfs the guest sees as `/`, when it has one, and the
    /// descriptors opened under it (served by the preview 1 calls).
    pub(crate) rootfs: Option<crate::rootfs_p1::ViewFds>,
    /// wasmtime-wasi's descriptors under a read-only preopen.
    pub(crate) read_only: crate::rootfs_p1::ReadOnlyFds,
    pub(crate) _tmp: Option<SharedTmp>,
}

/// Store data of a component instance.
pub(crate) struct ComponentState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: InstanceLimiter,
    /// `wasi:http` state; outgoing requests obey `outgoing`'s grants.
    pub(crate) http: WasiHttpCtx,
    pub(crate) outgoing: OutgoingHttp,
    /// Socket count and published-port binds (see `crate::sockets`).
    pub(crate) sockets: InstanceSockets,
    /// The writable rootfs the guest sees as `/`, when it has one (served
    /// by `crate::rootfs_p2`).
    pub(crate) rootfs: Option<wrun_rootfs::Layers>,
    pub(crate) _tmp: Option<SharedTmp>,
}

impl SocketHost for ComponentState {
    fn sockets_split(&mut self) -> (&mut InstanceSockets, WasiSocketsCtxView<'_>) {
        let view = WasiSocketsCtxView {
            ctx: self.ctx.sockets(),
            table: &mut self.table,
        };
        (&mut self.sockets, view)
    }
}

impl RootfsHost for ComponentState {
    fn rootfs_fs(&mut self) -> RootfsFs<'_> {
        let host = WasiFilesystemCtxView {
            ctx: self.ctx.filesystem(),
            table: &mut self.table,
        };
        RootfsFs::new(host, self.rootfs.as_ref())
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

/// Store data whose memory and tables are charged to an [`InstanceLimiter`].
pub(crate) trait HasLimiter: Send + 'static {
    fn limiter(&mut self) -> &mut InstanceLimiter;
    fn grow_denied(&self) -> bool;
}

impl HasLimiter for CoreState {
    fn limiter(&mut self) -> &mut InstanceLimiter {
        &mut self.limiter
    }
    fn grow_denied(&self) -> bool {
        self.limiter.grow_denied
    }
}

impl HasLimiter for ComponentState {
    fn limiter(&mut self) -> &mut InstanceLimiter {
        &mut self.limiter
    }
    fn grow_denied(&self) -> bool {
        self.limiter.grow_denied
    }
}

/// A store holding `state`: memory and tables charged to its limiter, the
/// fuel of `limits`, and an epoch callback that yields to the executor every
/// `yield_every` ticks and ends the guest at `deadline`.
pub(crate) fn new_store<T: HasLimiter>(
    engine: &Engine,
    state: T,
    limits: &Limits,
    deadline: Option<Instant>,
    yield_every: u64,
) -> Result<Store<T>, RuntimeError> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s.limiter());
    if let Some(fuel) = limits.fuel {
        let fuel_err = |e| RuntimeError::Engine {
            source: RuntimeError::boxed(e),
        };
        store.set_fuel(fuel).map_err(fuel_err)?;
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(fuel_err)?;
    }
    match deadline {
        None => {
            store.set_epoch_deadline(yield_every);
            store.epoch_deadline_callback(move |_| Ok(UpdateDeadline::Yield(yield_every)));
        }
        Some(deadline) => {
            let mut ticks = 0u64;
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                if Instant::now() >= deadline {
                    return Err(wasmtime::Error::new(DeadlineExceeded));
                }
                ticks += 1;
                Ok(if ticks.is_multiple_of(yield_every) {
                    UpdateDeadline::Yield(1)
                } else {
                    UpdateDeadline::Continue(1)
                })
            });
        }
    }
    Ok(store)
}
