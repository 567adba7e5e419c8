//! The node: the one place that wires everything together. It starts the runtime's
//! executors, and on each one opens the shard's store, builds its data side (`model`) and
//! its API side (`api`), joins the mesh and dispatches what arrives on it, and accepts
//! connections (`accept`) until the node stops.

mod accept;
mod message;
mod root_key;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

pub use accept::Handoff;
pub use message::{Control, Message, Reply};

use crate::api::conn::Listener;
use crate::api::tls::Tls;
use crate::api::{Connections, Gateway, ShardControl};
use crate::config::ServerConfig;
use crate::model::global::Global;
use crate::model::ops::DataRequest;
use crate::model::{NodeParts, Peers, Shard};
use crate::runtime::mesh::{self, Mesh};
use crate::runtime::{self, notify, Life};
use crate::storage::ShardStore;

/// How a node is started beside others (tests, a simulation): the production defaults are
/// what `run` uses.
#[derive(Clone, Default)]
pub struct Options {
    /// Leave the shards unpinned: nodes that share a machine must not pile onto one core.
    pub unpinned: bool,
    /// The node's clock (default: the system clock). Tests give a clock they move by hand.
    pub clock: Option<crate::clock::Clock>,
    /// The node's life (default: a new one). `run` gives the one its signals stop, so that
    /// a stop during a long migration or move is heard before the node serves.
    pub life: Option<Arc<Life>>,
}

/// A running node: everything of it lives here and in its threads, nothing in process-wide
/// state, so a process may run several (`tests/two_nodes.rs`).
pub struct NodeHandle {
    life: Arc<Life>,
    tls: Arc<Tls>,
    executors: runtime::Executors,
}

impl NodeHandle {
    /// Asks the node to stop (as a SIGTERM does; a second call stops it at once).
    pub fn stop(&self) {
        self.life.stop();
    }

    /// Waits until every shard of the node has ended.
    pub fn join(self) -> anyhow::Result<()> {
        self.executors.join()?;
        tracing::info!("Granary stopped");
        Ok(())
    }
}

/// Runs a node until it stops (SIGTERM, SIGINT), as `granary server` does: pinned shards,
/// the system clock, signals, systemd's notifications and watchdog. Returns once every
/// shard has ended.
pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    let signals = runtime::block_stop_signals();
    let life = Life::new(config.shards);
    // The TLS certificate a SIGHUP reloads is the node's, known once it starts.
    let tls: Arc<std::sync::OnceLock<Arc<Tls>>> = Arc::default();
    let reload = Arc::clone(&tls);
    runtime::watch_stop_signals(signals, Arc::clone(&life), move || {
        if let Some(tls) = reload.get() {
            tls.reload();
        }
    })?;
    let options = Options {
        life: Some(life),
        ..Options::default()
    };
    let node = start(config.clone(), options)?;
    let _ = tls.set(Arc::clone(&node.tls));
    notify::notify(&format!(
        "READY=1\nSTATUS=serving S3 on {} with {} shards",
        config.s3_addr, config.shards
    ));
    runtime::start_watchdog(Arc::clone(&node.life))?;
    node.join()
}

/// Starts a node: prepares its data directory (migration, partition moves), starts one
/// executor per shard, and returns once every shard serves.
pub fn start(config: ServerConfig, options: Options) -> anyhow::Result<NodeHandle> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let node_id = node_id(&config)?;
    let shards = config.shards;
    let tls = Tls::new(config.tls.clone())?;
    runtime::check_ports_free(&listeners(&config))?;
    let clock = options
        .clock
        .unwrap_or_else(|| crate::clock::Clock::system(node_id));
    let life = options.life.unwrap_or_else(|| Life::new(shards));
    let watch = crate::storage::placement::Watch {
        stopping: {
            let life = Arc::clone(&life);
            Arc::new(move || life.stopping())
        },
        progress: Arc::new(|status: &str| {
            // A migration or partition move can outlast systemd's start timeout: each step
            // asks for more time.
            notify::notify(&format!("EXTEND_TIMEOUT_USEC=600000000\nSTATUS={status}"));
        }),
    };
    let placement = crate::storage::placement::prepare(&config.data_dir, shards, &clock, &watch)?;
    let node = Arc::new(Node {
        parts: NodeParts {
            id: node_id,
            started_ms: clock.now_ms(),
            clock,
            placement: Arc::new(placement),
            life: Arc::clone(&life),
        },
        tls: Arc::clone(&tls),
        connections: Connections::new(shards),
        storage: Default::default(),
    });
    let mesh = mesh::builder::<Message, Reply>(usize::from(shards));
    // The storage engine writes a group commit from registered (io_uring) buffers: room for
    // two batches in flight. Registration needs memlock (root, or LimitMEMLOCK in the
    // systemd unit); without it glommio warns and falls back to ordinary buffers. LMDB
    // commits run on an unpinned blocking thread, so they do not compete with the shard's
    // own core.
    let io_memory = usize::try_from(2 * config.fsync_batch_bytes + (4 << 20))
        .expect("fsync_batch_bytes is bounded by validation");
    let spec = runtime::ExecutorSpec {
        shards,
        io_memory,
        pin: !options.unpinned,
    };
    let shard_config = config.clone();
    let executors = runtime::start(spec, Arc::clone(&life), move |id, ready| {
        let node = Arc::clone(&node);
        shard_main(id, node, shard_config.clone(), mesh.clone(), ready)
    })?;
    runtime::check_ports_ours(&listeners(&config))?;
    tracing::info!(
        shards,
        s3 = %config.s3_addr,
        data = %config.data_dir.display(),
        web = %config.web_addr,
        "Granary is ready: S3 API on http://{}, websites on http://{}",
        config.s3_addr,
        config.web_addr
    );
    Ok(NodeHandle {
        life,
        tls,
        executors,
    })
}

/// What the shards of one node share.
struct Node {
    parts: NodeParts,
    tls: Arc<Tls>,
    connections: Arc<Connections>,
    /// The stores' shared resources (buffer pool, open directories, freeing thread).
    storage: Arc<crate::storage::resources::Resources>,
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

async fn shard_main(
    id: u16,
    node: Arc<Node>,
    config: ServerConfig,
    mesh: mesh::Builder<Message, Reply>,
    ready: runtime::Ready,
) -> anyhow::Result<()> {
    let (gateway, mesh) = open_shard(id, &node, config, mesh).await?;
    let shard = Rc::clone(&gateway.shard);
    if id == 0 {
        root_key::ensure_root_key(&shard).await?;
        start_admin(&gateway)?;
    } else {
        let (buckets, keys) = shard
            .call_on(0, DataRequest::GlobalSnapshot)
            .await
            .global()
            .map_err(|e| anyhow::anyhow!("asking shard 0 for the global tables: {e:?}"))?;
        shard.global.borrow_mut().apply(buckets, keys);
    }
    crate::model::lifecycle::spawn(&shard);
    let listener = glommio::net::TcpListener::bind(shard.config.s3_addr)
        .map_err(|e| anyhow::anyhow!("binding the S3 listener on {}: {e}", shard.config.s3_addr))?;
    let web = glommio::net::TcpListener::bind(shard.config.web_addr).map_err(|e| {
        anyhow::anyhow!(
            "binding the website listener on {}: {e}",
            shard.config.web_addr
        )
    })?;
    ready.ready();
    futures_lite::future::zip(
        accept::accept_until_stopped(&gateway, &mesh, listener, Listener::S3),
        accept::accept_until_stopped(&gateway, &mesh, web, Listener::Web),
    )
    .await;
    drain_and_close(&shard).await;
    Ok(())
}

/// Opens shard `id`'s store, joins the mesh, and makes the shard's data side and API side,
/// which the mesh's handler serves from then on.
async fn open_shard(
    id: u16,
    node: &Node,
    config: ServerConfig,
    mesh: mesh::Builder<Message, Reply>,
) -> anyhow::Result<(Rc<Gateway>, Rc<Mesh<Message, Reply>>)> {
    let dir = config.data_dir.join(format!("shard-{id}"));
    let storage = crate::storage::StorageConfig {
        clock: node.parts.clock.clone(),
        resources: Arc::clone(&node.storage),
        ..crate::storage::StorageConfig::from_server(&config)
    };
    let store = ShardStore::open(&dir, storage)
        .await
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    store.set_partitions(node.parts.placement.partitions_of(id));
    let mesh = mesh::Mesh::join(mesh).await;
    assert_eq!(mesh.me(), usize::from(id), "mesh ids follow shard ids");
    let mut global = Global::default();
    if id == 0 {
        global.apply(store.list_buckets()?, store.list_keys()?);
    }
    let peers: Rc<dyn Peers> = Rc::clone(&mesh) as _;
    let shard = Rc::new(Shard::new(
        (id, &node.parts),
        Rc::new(config),
        store,
        peers,
        global,
    ));
    let control: Rc<dyn ShardControl> = Rc::clone(&mesh) as _;
    let node_api = (Arc::clone(&node.tls), Arc::clone(&node.connections));
    let gateway = Rc::new(Gateway::new(shard, control, node_api));
    let handler_gateway = Rc::clone(&gateway);
    mesh.set_handler(Rc::new(move |message| {
        let gateway = Rc::clone(&handler_gateway);
        Box::pin(async move { message::dispatch(gateway, message).await })
    }));
    Ok((gateway, mesh))
}

/// Starts the admin API on shard 0, which keeps the global tables.
fn start_admin(gateway: &Rc<Gateway>) -> anyhow::Result<()> {
    let config = &gateway.config;
    let token = match &config.admin_token {
        Some(token) => token.clone(),
        None => crate::api::admin::load_or_create_token(&config.admin_token_file).with_context(
            || {
                format!(
                    "reading or creating the admin token {}",
                    config.admin_token_file.display()
                )
            },
        )?,
    };
    let admin = glommio::net::TcpListener::bind(config.admin_addr)
        .map_err(|e| anyhow::anyhow!("binding the admin listener on {}: {e}", config.admin_addr))?;
    glommio::spawn_local(crate::api::admin::serve(
        Rc::clone(gateway),
        admin,
        Rc::new(token),
    ))
    .detach();
    Ok(())
}

/// A graceful stop: wait for this shard's requests in flight, then for every shard's (a
/// request on one shard may still need another's data), then sync and close the store.
async fn drain_and_close(shard: &Rc<Shard>) {
    let deadline = Instant::now() + Duration::from_secs(shard.config.shutdown_timeout_s);
    let life = Arc::clone(&shard.life);
    life.drain(deadline, || shard.requests_in_flight.get() == 0)
        .await;
    match shard.store.close().await {
        Ok(()) => tracing::info!(shard = shard.id, "shard stopped; store synced"),
        Err(e) => tracing::error!(shard = shard.id, "closing the store failed: {e}"),
    }
}
