//! glommio glue: one pinned executor per shard, the mesh between them, start-up order.

pub mod mesh;
pub mod notify;
pub mod ports;

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use glommio::LocalExecutorBuilder;

use crate::config::ServerConfig;
use crate::meta::placement::Placement;
use crate::meta::types::{KeyRow, Stamp};
use crate::server::global::Global;
use crate::server::shard_api::{ShardRequest, ShardResponse};
use crate::server::{conn, now_ms, Shard};
use crate::storage::ShardStore;

type Ready = mpsc::Sender<Result<u16, String>>;

/// Set from the signal thread: 0 running, 1 stop gracefully (SIGTERM or SIGINT), 2 stop
/// now (a second signal). Shards poll it; it is the only state they share.
static STOP: AtomicU8 = AtomicU8::new(0);
/// Shards that have no request in flight any more, once stopping.
static DRAINED: AtomicUsize = AtomicUsize::new(0);

/// Each shard's last sign of life (ms since the epoch), written by the shard every
/// `HEARTBEAT_EVERY`; the systemd watchdog is fed only while all of them are fresh.
static HEARTBEATS: std::sync::OnceLock<Box<[AtomicU64]>> = std::sync::OnceLock::new();
/// Connections each shard serves (or is about to): see [`connection_target`].
static CONNECTIONS: std::sync::OnceLock<Box<[AtomicUsize]>> = std::sync::OnceLock::new();
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
const STOP_POLL: Duration = Duration::from_millis(20);

/// True once the node is stopping: connections finish their request and close.
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed) > 0
}

/// Blocks SIGTERM and SIGINT in this thread and in every thread it starts afterwards, so
/// that only `wait_for_stop_signals` sees them.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialized by sigemptyset before any other use; the
    // calls only read and write that local set and this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Turns each SIGTERM or SIGINT into a step of `STOP`, and each SIGHUP into a reload of
/// the TLS certificate.
fn wait_for_stop_signals(set: libc::sigset_t) {
    loop {
        let mut signal = 0;
        // SAFETY: `set` is a valid signal set and `signal` a valid out-pointer.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        if signal == libc::SIGHUP {
            crate::server::tls::reload();
            continue;
        }
        if STOP.load(Ordering::SeqCst) == 0 {
            notify::notify("STOPPING=1\nSTATUS=finishing requests in flight");
        }
        let step = STOP.fetch_add(1, Ordering::SeqCst).saturating_add(1).min(2);
        STOP.store(step, Ordering::SeqCst);
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

/// Runs a node until it stops. Returns once every shard has ended.
pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let node_id = node_id(&config)?;
    let shards = config.shards;
    let signals = block_stop_signals();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    crate::server::tls::init(config.tls.clone())?;
    let _ = HEARTBEATS.set((0..shards).map(|_| AtomicU64::new(now_ms())).collect());
    let _ = CONNECTIONS.set((0..shards).map(|_| AtomicUsize::new(0)).collect());
    check_ports_free(&config)?;
    let clock = crate::clock::Clock::system(node_id);
    let placement = Arc::new(crate::storage::placement::prepare(
        &config.data_dir,
        shards,
        &clock,
    )?);
    let config = std::sync::Arc::new(config);
    let mesh = mesh::builder::<ShardRequest, ShardResponse>(usize::from(shards));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::new();
    for id in 0..shards {
        let pin = if usize::from(shards) <= cores {
            glommio::Placement::Fixed(usize::from(id))
        } else {
            glommio::Placement::Unbound
        };
        let config = (*config).clone();
        let (clock, placement) = (clock.clone(), Arc::clone(&placement));
        let mesh = mesh.clone();
        let ready = ready_tx.clone();
        // The storage engine writes a group commit from registered (io_uring) buffers:
        // room for two batches in flight. Registration needs memlock (root, or
        // LimitMEMLOCK in the systemd unit); without it glommio warns and falls back to
        // ordinary buffers. LMDB commits run on an unpinned blocking thread, so they do
        // not compete with the shard's own core.
        let io_memory = usize::try_from(2 * config.fsync_batch_bytes + (4 << 20))
            .expect("fsync_batch_bytes is bounded by validation");
        let handle = LocalExecutorBuilder::new(pin)
            .name(&format!("shard-{id}"))
            .io_memory(io_memory)
            .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(1))
            .spawn(move || async move {
                let start = (node_id, clock, placement);
                if let Err(e) = shard_main(id, start, config, mesh, ready.clone()).await {
                    let _ = ready.send(Err(format!("shard {id}: {e:#}")));
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
    check_ports_ours(&config)?;
    tracing::info!(
        shards,
        s3 = %config.s3_addr,
        data = %config.data_dir.display(),
        web = %config.web_addr,
        "Granary is ready: S3 API on http://{}, websites on http://{}",
        config.s3_addr,
        config.web_addr
    );
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || wait_for_stop_signals(signals))
        .context("starting the signal thread")?;
    notify::notify(&format!(
        "READY=1\nSTATUS=serving S3 on {} with {shards} shards",
        config.s3_addr
    ));
    if let Some(every) = notify::watchdog_interval() {
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || feed_watchdog(every))
            .context("starting the watchdog thread")?;
    }
    for handle in handles {
        handle
            .join()
            .map_err(|e| anyhow::anyhow!("a shard failed: {e}"))?;
    }
    tracing::info!("Granary stopped");
    Ok(())
}

/// The node's listening addresses: (what, address, sockets the node itself listens with).
fn listeners(config: &ServerConfig) -> [(&'static str, std::net::SocketAddr, usize); 3] {
    let shards = usize::from(config.shards);
    [
        ("S3", config.s3_addr, shards),
        ("website", config.web_addr, shards),
        ("admin", config.admin_addr, 1),
    ]
}

/// Refuses to start where another process listens (`ports`): before the shards start,
/// nobody may listen on the node's addresses.
fn check_ports_free(config: &ServerConfig) -> anyhow::Result<()> {
    for (what, addr, _) in listeners(config) {
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
fn check_ports_ours(config: &ServerConfig) -> anyhow::Result<()> {
    for (what, addr, ours) in listeners(config) {
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
fn feed_watchdog(every: Duration) {
    let stale_after_ms = (every.as_millis() as u64).max(2 * HEARTBEAT_EVERY.as_millis() as u64);
    loop {
        std::thread::sleep(every / 2);
        if stopping() {
            // A stop is bounded by --shutdown-timeout (and systemd's TimeoutStopSec).
            notify::notify("WATCHDOG=1");
            continue;
        }
        let now = now_ms();
        let beats = HEARTBEATS.get().map(|b| &b[..]).unwrap_or_default();
        let stale = beats
            .iter()
            .position(|b| now.saturating_sub(b.load(Ordering::Relaxed)) > stale_after_ms);
        match stale {
            None => notify::notify("WATCHDOG=1"),
            Some(shard) => tracing::warn!(shard, "shard missed its heartbeat: watchdog not fed"),
        }
    }
}

/// Marks this shard alive every `HEARTBEAT_EVERY` until the node stops.
async fn heartbeat(id: u16) {
    while !stopping() {
        if let Some(beat) = HEARTBEATS.get().and_then(|b| b.get(usize::from(id))) {
            beat.store(now_ms(), Ordering::Relaxed);
        }
        glommio::timer::sleep(HEARTBEAT_EVERY).await;
    }
}

/// The node's identity, made at first start and kept in the data directory.
fn node_id(config: &ServerConfig) -> anyhow::Result<u64> {
    let path = config.data_dir.join("node_id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return u64::from_str_radix(text.trim(), 16)
            .with_context(|| format!("{} does not hold a node id", path.display()));
    }
    let id: u64 = rand::random();
    std::fs::write(&path, format!("{id:016x}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// What every shard of a node shares: its id, its clock, and where its partitions are.
type NodeStart = (u64, crate::clock::Clock, Arc<Placement>);

async fn shard_main(
    id: u16,
    (node_id, clock, placement): NodeStart,
    config: ServerConfig,
    mesh: mesh::Builder<ShardRequest, ShardResponse>,
    ready: Ready,
) -> anyhow::Result<()> {
    let dir = config.data_dir.join(format!("shard-{id}"));
    let storage = crate::storage::StorageConfig {
        clock: clock.clone(),
        ..crate::storage::StorageConfig::from_server(&config)
    };
    let store = ShardStore::open(&dir, storage)
        .await
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    store.set_partitions(placement.partitions_of(id));
    let mesh = mesh::Mesh::join(mesh).await;
    assert_eq!(mesh.me(), usize::from(id), "mesh ids follow shard ids");
    let mut global = Global::default();
    if id == 0 {
        global.apply(store.list_buckets()?, store.list_keys()?);
    }
    let upload_memory = config.limits.max_buffered_bytes / u64::from(config.shards);
    let shard = Rc::new(Shard {
        id,
        shards: config.shards,
        node_id,
        placement,
        clock,
        config: Rc::new(config),
        store,
        mesh: Rc::clone(&mesh),
        global: std::cell::RefCell::new(global),
        lifecycle_stats: Default::default(),
        bucket_changes: Default::default(),
        requests_in_flight: std::cell::Cell::new(0),
        metrics: Default::default(),
        tasks: Default::default(),
        md5: crate::server::md5_lanes::Md5Lanes::start(),
        upload_memory: Rc::new(glommio::sync::Semaphore::new(upload_memory)),
    });
    let handler_shard = Rc::clone(&shard);
    mesh.set_handler(Rc::new(move |request| {
        let shard = Rc::clone(&handler_shard);
        Box::pin(async move { shard.handle(request).await })
    }));
    if id == 0 {
        ensure_root_key(&shard).await?;
        let token = match &shard.config.admin_token {
            Some(token) => token.clone(),
            None => crate::admin::load_or_create_token(&shard.config.admin_token_file)
                .with_context(|| {
                    format!(
                        "reading or creating the admin token {}",
                        shard.config.admin_token_file.display()
                    )
                })?,
        };
        let admin = glommio::net::TcpListener::bind(shard.config.admin_addr).map_err(|e| {
            anyhow::anyhow!(
                "binding the admin listener on {}: {e}",
                shard.config.admin_addr
            )
        })?;
        glommio::spawn_local(crate::admin::serve(
            Rc::clone(&shard),
            admin,
            Rc::new(token),
        ))
        .detach();
    } else {
        match shard.call_on(0, ShardRequest::GlobalSnapshot).await {
            ShardResponse::Global { buckets, keys } => {
                shard.global.borrow_mut().apply(buckets, keys)
            }
            other => anyhow::bail!("shard 0 answered {other:?} to a snapshot request"),
        }
    }
    crate::server::lifecycle::spawn(&shard);
    let listener = glommio::net::TcpListener::bind(shard.config.s3_addr)
        .map_err(|e| anyhow::anyhow!("binding the S3 listener on {}: {e}", shard.config.s3_addr))?;
    glommio::spawn_local(heartbeat(id)).detach();
    let web = glommio::net::TcpListener::bind(shard.config.web_addr).map_err(|e| {
        anyhow::anyhow!(
            "binding the website listener on {}: {e}",
            shard.config.web_addr
        )
    })?;
    let _ = ready.send(Ok(id));
    futures_lite::future::zip(
        accept_until_stopped(&shard, listener, conn::Listener::S3),
        accept_until_stopped(&shard, web, conn::Listener::Web),
    )
    .await;
    drain_and_close(&shard).await;
    Ok(())
}

/// Accepts connections until the node stops.
///
/// The accept loop runs in a task of its own, woken only by the listener. Polling a pending
/// glommio accept again (as `or(accept, stop_timer)` did every 20 ms) adds one more waker
/// to its source each time; after about 11 idle minutes the task's reference count
/// overflowed and the shard panicked. The stop is watched here and the loop cancelled.
///
/// Every shard listens on the same port (`SO_REUSEPORT`), and the kernel spreads
/// connections by a hash of their addresses: 16 connections came as 14 on one shard and 2
/// on the other in one measured run, leaving a core idle under a large upload. So a shard
/// that serves more connections than another hands the new one to the least busy shard.
async fn accept_until_stopped(
    shard: &Rc<Shard>,
    listener: glommio::net::TcpListener,
    kind: conn::Listener,
) {
    let accepting = {
        let shard = Rc::clone(shard);
        glommio::spawn_local(async move {
            loop {
                match listener.shared_accept().await {
                    Ok(accepted) => {
                        if connections_served() >= shard.config.limits.max_connections {
                            let tcp = accepted.bind_to_executor();
                            glommio::spawn_local(conn::refuse(Rc::clone(&shard), tcp)).detach();
                            continue;
                        }
                        let target = connection_target(shard.id);
                        let conn = Handoff {
                            stream: accepted,
                            kind,
                        };
                        if target == shard.id {
                            conn.serve(&shard);
                        } else {
                            let shard = Rc::clone(&shard);
                            glommio::spawn_local(async move {
                                let request = ShardRequest::Adopt { conn };
                                if let ShardResponse::Done(Err(e)) =
                                    shard.call_on(target, request).await
                                {
                                    tracing::warn!(target, "handing a connection over: {e:?}");
                                    connection_closed(target);
                                }
                            })
                            .detach();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(shard = shard.id, "accept failed: {e}");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    };
    while !stopping() {
        glommio::timer::sleep(STOP_POLL).await;
    }
    accepting.cancel().await;
}

/// The shard that should serve a new connection accepted by shard `me`: `me` unless
/// another serves fewer. The connection is counted on it from now on.
fn connection_target(me: u16) -> u16 {
    let Some(counts) = CONNECTIONS.get() else {
        return me;
    };
    let load = |i: u16| counts[usize::from(i)].load(Ordering::Relaxed);
    let mut target = me;
    for i in 0..counts.len() as u16 {
        if load(i) < load(target) {
            target = i;
        }
    }
    counts[usize::from(target)].fetch_add(1, Ordering::Relaxed);
    target
}

/// Connections the node serves now, over all shards.
fn connections_served() -> u64 {
    CONNECTIONS.get().map_or(0, |counts| {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as u64)
            .sum()
    })
}

fn connection_closed(shard: u16) {
    if let Some(counts) = CONNECTIONS.get() {
        counts[usize::from(shard)].fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted connection on its way to the shard that serves it (`ShardRequest::Adopt`).
pub struct Handoff {
    stream: glommio::net::AcceptedTcpStream,
    kind: conn::Listener,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handoff({:?})", self.kind)
    }
}

impl Handoff {
    /// Closes the connection unserved (the node is stopping).
    pub fn close(self) {
        drop(self.stream.bind_to_executor());
    }

    /// Serves the connection on the current shard (which [`connection_target`] chose).
    pub fn serve(self, shard: &Rc<Shard>) {
        let stream = self.stream.bind_to_executor();
        let (shard, kind) = (Rc::clone(shard), self.kind);
        glommio::spawn_local(async move {
            let id = shard.id;
            conn::serve(shard, stream, kind).await;
            connection_closed(id);
        })
        .detach();
    }
}

/// A graceful stop: wait for this shard's requests in flight, then for every shard's (a
/// request on one shard may still need another's data), then sync and close the store.
async fn drain_and_close(shard: &Rc<Shard>) {
    let deadline = Instant::now() + Duration::from_secs(shard.config.shutdown_timeout_s);
    let waiting = || STOP.load(Ordering::SeqCst) < 2 && Instant::now() < deadline;
    while shard.requests_in_flight.get() > 0 && waiting() {
        glommio::timer::sleep(STOP_POLL).await;
    }
    DRAINED.fetch_add(1, Ordering::SeqCst);
    while DRAINED.load(Ordering::SeqCst) < usize::from(shard.shards) && waiting() {
        glommio::timer::sleep(STOP_POLL).await;
    }
    match shard.store.close().await {
        Ok(()) => tracing::info!(shard = shard.id, "shard stopped; store synced"),
        Err(e) => tracing::error!(shard = shard.id, "closing the store failed: {e}"),
    }
}

/// On first start, creates the administrator key: from `GRANARY_ROOT_ACCESS_KEY_ID` and
/// `GRANARY_ROOT_SECRET_ACCESS_KEY` when both are set, otherwise generated and printed once.
async fn ensure_root_key(shard: &Rc<Shard>) -> anyhow::Result<()> {
    if shard.global.borrow().keys().next().is_some() {
        return Ok(());
    }
    let from_env = (
        std::env::var("GRANARY_ROOT_ACCESS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty()),
        std::env::var("GRANARY_ROOT_SECRET_ACCESS_KEY")
            .ok()
            .filter(|v| !v.is_empty()),
    );
    let (access_key_id, secret_access_key, generated) = match from_env {
        (Some(id), Some(secret)) => (id, secret, false),
        _ => (generate_access_key_id(), generate_secret(), true),
    };
    let row = KeyRow {
        access_key_id: access_key_id.clone(),
        secret_access_key: secret_access_key.clone(),
        name: "root".into(),
        created_ms: now_ms(),
        stamp: Stamp::ZERO,
        deleted: false,
        create_bucket: true,
    };
    shard
        .call_on(0, ShardRequest::PutKey { row })
        .await
        .done()
        .map_err(|e| anyhow::anyhow!("storing the root key: {e:?}"))?;
    if generated {
        let endpoint = format!("http://{}", shard.config.s3_addr);
        println!(
            "\nGranary created an administrator access key. It is printed this once: keep it.\n\
             \n    Access key ID:     {access_key_id}\n    Secret access key: {secret_access_key}\n\
             \nTo use it with the AWS CLI:\n\
             \n    aws configure set aws_access_key_id {access_key_id}\
             \n    aws configure set aws_secret_access_key {secret_access_key}\
             \n    aws configure set region {}\
             \n    aws --endpoint-url {endpoint} s3 mb s3://my-bucket\n",
            shard.config.s3_region
        );
    } else {
        tracing::info!(
            access_key_id,
            "created the administrator key from the environment"
        );
    }
    Ok(())
}

fn random_chars(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

fn generate_access_key_id() -> String {
    format!(
        "GR{}",
        random_chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 18)
    )
}

fn generate_secret() -> String {
    random_chars(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    )
}
