//! The runtime: one pinned glommio executor per shard, each running what the node gives it;
//! the mesh between them; stop signals, systemd notifications, heartbeats and the watchdog;
//! the checks of the listening ports. It knows no handler: `node` wires those in.

pub mod mesh;
pub mod notify;
pub mod ports;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::clock::system_ms as now_ms;

const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
const STOP_POLL: Duration = Duration::from_millis(20);

/// A node's life as its shards and threads share it: how far it is in stopping, which
/// shards are drained, and each shard's last sign of life. One per node, so that several
/// nodes can live in one process (tests, a simulation) and stop one at a time.
pub struct Life {
    /// 0 running, 1 stop gracefully (SIGTERM or SIGINT, `stop`), 2 stop now (again).
    stop: AtomicU8,
    /// Shards that have no request in flight any more, once stopping.
    drained: AtomicUsize,
    /// Each shard's last sign of life (ms since the epoch), written every
    /// `HEARTBEAT_EVERY`; the systemd watchdog is fed only while all of them are fresh.
    heartbeats: Box<[AtomicU64]>,
}

impl Life {
    pub fn new(shards: u16) -> Arc<Life> {
        Arc::new(Life {
            stop: AtomicU8::new(0),
            drained: AtomicUsize::new(0),
            heartbeats: (0..shards).map(|_| AtomicU64::new(now_ms())).collect(),
        })
    }

    /// True once the node is stopping: connections finish their request and close.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) > 0
    }

    /// True once a second request to stop came: no more waiting for work in flight.
    pub fn stopping_now(&self) -> bool {
        self.stop.load(Ordering::SeqCst) >= 2
    }

    /// One step towards stopping (as a SIGTERM): the first stops gracefully, the second
    /// at once. Returns the level reached.
    pub fn stop(&self) -> u8 {
        let step = self
            .stop
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1)
            .min(2);
        self.stop.store(step, Ordering::SeqCst);
        step
    }

    /// Sleeps until the node stops (polled: see `node::accept`).
    pub async fn until_stopping(&self) {
        while !self.stopping() {
            glommio::timer::sleep(STOP_POLL).await;
        }
    }

    /// A graceful stop's wait on one shard: until `idle()` holds here, then until every
    /// shard got that far (work on one shard may still need another's data). A second
    /// stop or `deadline` cuts it short.
    pub async fn drain(&self, deadline: Instant, idle: impl Fn() -> bool) {
        let waiting = || !self.stopping_now() && Instant::now() < deadline;
        while !idle() && waiting() {
            glommio::timer::sleep(STOP_POLL).await;
        }
        self.drained.fetch_add(1, Ordering::SeqCst);
        while self.drained.load(Ordering::SeqCst) < self.heartbeats.len() && waiting() {
            glommio::timer::sleep(STOP_POLL).await;
        }
    }

    /// Marks shard `id` alive every `HEARTBEAT_EVERY` until the node stops.
    async fn heartbeat(&self, id: u16) {
        while !self.stopping() {
            if let Some(beat) = self.heartbeats.get(usize::from(id)) {
                beat.store(now_ms(), Ordering::Relaxed);
            }
            glommio::timer::sleep(HEARTBEAT_EVERY).await;
        }
    }

    /// The first shard whose last heartbeat is older than `stale_after_ms`.
    fn stale_shard(&self, stale_after_ms: u64) -> Option<usize> {
        let now = now_ms();
        self.heartbeats
            .iter()
            .position(|b| now.saturating_sub(b.load(Ordering::Relaxed)) > stale_after_ms)
    }
}

/// The stop signals, blocked in every thread (`block_stop_signals`) until
/// `watch_stop_signals` takes them.
pub struct StopSignals(libc::sigset_t);

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread and in every thread it starts
/// afterwards, so that only `watch_stop_signals` sees them. Call it before starting threads.
pub fn block_stop_signals() -> StopSignals {
    // SAFETY: sigset_t is plain data, initialized by sigemptyset before any other use; the
    // calls only read and write that local set and this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        StopSignals(set)
    }
}

/// Starts the signal thread: each SIGTERM or SIGINT is a step of `life`'s stop, each SIGHUP
/// calls `reload`.
pub fn watch_stop_signals(
    signals: StopSignals,
    life: Arc<Life>,
    reload: impl Fn() + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || wait_for_stop_signals(signals.0, &life, reload))
        .context("starting the signal thread")?;
    Ok(())
}

/// Turns each SIGTERM or SIGINT into a step of the stop, and each SIGHUP into a `reload`
/// (of the TLS certificate).
fn wait_for_stop_signals(set: libc::sigset_t, life: &Life, reload: impl Fn()) {
    loop {
        let mut signal = 0;
        // SAFETY: `set` is a valid signal set and `signal` a valid out-pointer.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        if signal == libc::SIGHUP {
            reload();
            continue;
        }
        if !life.stopping() {
            notify::notify("STOPPING=1\nSTATUS=finishing requests in flight");
        }
        let step = life.stop();
        if step == 1 {
            tracing::info!(
                signal,
                "stopping: finishing requests in flight (signal again to stop now)"
            );
        } else {
            tracing::warn!(signal, "stopping now");
        }
    }
}

/// A shard's way to say that it is ready to serve (it listens), once.
#[derive(Clone)]
pub struct Ready {
    id: u16,
    tx: mpsc::Sender<Result<u16, String>>,
}

impl Ready {
    pub fn ready(&self) {
        let _ = self.tx.send(Ok(self.id));
    }
}

/// How the executors are made.
pub struct ExecutorSpec {
    pub shards: u16,
    /// Memory each executor registers for io_uring (see `node::run`).
    pub io_memory: usize,
    /// Pin each shard to a core of its own (when there are enough): off for nodes that
    /// share a machine with others (tests, several nodes in one process).
    pub pin: bool,
}

/// The running executors, one per shard.
pub struct Executors {
    handles: Vec<ExecutorJoinHandle<()>>,
}

/// Starts one executor per shard, each pinned to its core when there are no more shards
/// than cores (and `spec.pin`), each running `main(id, ready)` after starting its
/// heartbeat. Returns once every shard has called `ready`, or with the first shard's error.
pub fn start<F, Fut>(spec: ExecutorSpec, life: Arc<Life>, main: F) -> anyhow::Result<Executors>
where
    F: Fn(u16, Ready) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = anyhow::Result<()>> + 'static,
{
    let shards = spec.shards;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::new();
    for id in 0..shards {
        let placement = if spec.pin && usize::from(shards) <= cores {
            Placement::Fixed(usize::from(id))
        } else {
            Placement::Unbound
        };
        let (main, life) = (main.clone(), Arc::clone(&life));
        let ready = Ready {
            id,
            tx: ready_tx.clone(),
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            .io_memory(spec.io_memory)
            .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(1))
            .spawn(move || async move {
                let beating = Arc::clone(&life);
                glommio::spawn_local(async move { beating.heartbeat(id).await }).detach();
                let tx = ready.tx.clone();
                if let Err(e) = main(id, ready).await {
                    let _ = tx.send(Err(format!("shard {id}: {e:#}")));
                }
            })
            .map_err(|e| anyhow::anyhow!("starting the executor of shard {id}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("{e}"),
            Err(_) => anyhow::bail!("a shard ended during start-up"),
        }
    }
    Ok(Executors { handles })
}

impl Executors {
    /// Waits until every shard has ended.
    pub fn join(self) -> anyhow::Result<()> {
        for handle in self.handles {
            handle
                .join()
                .map_err(|e| anyhow::anyhow!("a shard failed: {e}"))?;
        }
        Ok(())
    }
}

/// Starts the thread that feeds systemd's watchdog, if systemd asked for one.
pub fn start_watchdog(life: Arc<Life>) -> anyhow::Result<()> {
    if let Some(every) = notify::watchdog_interval() {
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || feed_watchdog(every, &life))
            .context("starting the watchdog thread")?;
    }
    Ok(())
}

/// The listening addresses of a node: (what, address, sockets the node itself listens
/// with).
pub type Listeners = [(&'static str, std::net::SocketAddr, usize)];

/// Refuses to start where another process listens (`ports`): before the shards start,
/// nobody may listen on the node's addresses.
pub fn check_ports_free(listeners: &Listeners) -> anyhow::Result<()> {
    for &(what, addr, _) in listeners {
        if addr.port() != 0 && ports::listening_on(addr)? > 0 {
            anyhow::bail!(
                "the {what} address {addr} is already in use: another process (another \
                 granary server?) listens there; stop it or choose another address"
            );
        }
    }
    Ok(())
}

/// Once every shard listens, only the node's own sockets may listen on its addresses: a
/// server that started on them in the same instant is seen here.
pub fn check_ports_ours(listeners: &Listeners) -> anyhow::Result<()> {
    for &(what, addr, ours) in listeners {
        let found = if addr.port() == 0 {
            ours
        } else {
            ports::listening_on(addr)?
        };
        if found > ours {
            anyhow::bail!(
                "the {what} address {addr} is in use by another process too ({found} \
                 listening sockets, {ours} of them this node's): stopping"
            );
        }
    }
    Ok(())
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for, as long as every shard
/// beats: a stuck shard lets the watchdog fire and systemd restart the node.
fn feed_watchdog(every: Duration, life: &Life) {
    let stale_after_ms = (every.as_millis() as u64).max(2 * HEARTBEAT_EVERY.as_millis() as u64);
    loop {
        std::thread::sleep(every / 2);
        if life.stopping() {
            // A stop is bounded by --shutdown-timeout (and systemd's TimeoutStopSec).
            notify::notify("WATCHDOG=1");
            continue;
        }
        match life.stale_shard(stale_after_ms) {
            None => notify::notify("WATCHDOG=1"),
            Some(shard) => tracing::warn!(shard, "shard missed its heartbeat: watchdog not fed"),
        }
    }
}
