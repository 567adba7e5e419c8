//! The model: bucket, key and object rules, and the only code that asks where data lives.
//! A [`Shard`] is the data side of one executor: its store, its copy of the global tables,
//! and the way to the other shards (`Peers`). What shards ask of each other are the
//! operations of `ops`, run by their owner (`owner`).

pub mod bucket;
pub mod global;
pub mod lifecycle;
pub mod ops;
mod owner;
pub mod placement;
pub mod tasks;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::future::LocalBoxFuture;

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::meta::placement::Placement;
use crate::meta::types::{BlockHash, BlockRef, Holder, ObjectRow};
use crate::storage::{ObjectWrite, ShardStore};
use global::Global;
use ops::{DataError, DataRequest, DataResponse};

pub use owner::condition_refused;

/// The way to the shards that own data: the node's mesh today (`node`), a replica's
/// node later. A call to the shard itself runs its handler directly.
pub trait Peers {
    fn call(&self, shard: u16, request: DataRequest) -> LocalBoxFuture<'_, DataResponse>;
}

/// The data side of one shard.
pub struct Shard {
    pub id: u16,
    pub shards: u16,
    pub node_id: u64,
    /// Which shard holds each partition (recorded in the data directory).
    pub placement: std::sync::Arc<Placement>,
    /// The node's clock: stamps of writes.
    pub clock: Clock,
    /// The node's life: whether it is stopping.
    pub life: std::sync::Arc<crate::runtime::Life>,
    /// When the node started (ms since the epoch).
    pub started_ms: u64,
    pub config: Rc<ServerConfig>,
    pub store: Rc<ShardStore>,
    /// The other shards (and this one), to send operations on data they own.
    pub peers: Rc<dyn Peers>,
    pub global: RefCell<Global>,
    /// What the lifecycle worker of this shard has done (for logs and metrics).
    pub lifecycle_stats: lifecycle::LifecycleStats,
    /// Work on this shard that a graceful stop waits for: S3 requests being served by its
    /// connections, and the lifecycle worker's batches.
    pub requests_in_flight: Cell<u64>,
    /// The latest operator task of each kind on this shard.
    pub tasks: RefCell<Vec<tasks::TaskProgress>>,
    /// Taken by each bucket change on shard 0 (`global::change_bucket`), so they do not
    /// overlap; holds the names that DeleteBucket holds (`bucket::NameHold`).
    pub bucket_changes: futures::lock::Mutex<std::collections::HashSet<String>>,
}

impl Shard {
    /// The data side of shard `id`, with the global tables as given.
    pub fn new(
        (id, node): (u16, &NodeParts),
        config: Rc<ServerConfig>,
        store: Rc<ShardStore>,
        peers: Rc<dyn Peers>,
        global: Global,
    ) -> Self {
        Self {
            id,
            shards: config.shards,
            node_id: node.id,
            placement: std::sync::Arc::clone(&node.placement),
            clock: node.clock.clone(),
            life: std::sync::Arc::clone(&node.life),
            started_ms: node.started_ms,
            config,
            store,
            peers,
            global: RefCell::new(global),
            lifecycle_stats: Default::default(),
            requests_in_flight: Cell::new(0),
            tasks: Default::default(),
            bucket_changes: Default::default(),
        }
    }

    /// Sends a request to the shard that owns its data.
    pub async fn call(&self, request: DataRequest) -> DataResponse {
        match placement::owner(&request, &self.placement) {
            Some(shard) => self.peers.call(shard, request).await,
            None => DataResponse::Failed(DataError::Protocol(format!(
                "{request:?} goes to each shard in turn, not to an owner"
            ))),
        }
    }

    /// Sends a request to a named shard (fan-out requests such as listings).
    pub async fn call_on(&self, shard: u16, request: DataRequest) -> DataResponse {
        self.peers.call(shard, request).await
    }
}

/// What every shard of a node shares: its id, its clock, where its partitions are, its
/// life, and when it started. One per node: nothing of a node is process-wide.
pub struct NodeParts {
    pub id: u64,
    pub clock: Clock,
    pub placement: std::sync::Arc<Placement>,
    pub life: std::sync::Arc<crate::runtime::Life>,
    pub started_ms: u64,
}

/// Releases `holder`'s reference on each block (the object version or part that held them
/// is gone). A release is idempotent: a block named twice is released once.
pub async fn release_blocks(shard: &Shard, holder: Holder, blocks: &[BlockRef]) {
    let pairs: Vec<(BlockHash, Holder)> = blocks.iter().map(|b| (b.hash, holder)).collect();
    release_holders(shard, &pairs).await;
}

/// Releases the references an object version holds (on each block, under its own version
/// or its parts' holders).
pub async fn release_object(shard: &Shard, row: &ObjectRow) {
    release_holders(shard, &row.block_holders()).await;
}

/// Releases the references of the versions a write dropped.
pub async fn release_dropped(shard: &Shard, written: &ObjectWrite) {
    for row in &written.dropped {
        release_object(shard, row).await;
    }
}

async fn release_holders(shard: &Shard, pairs: &[(BlockHash, Holder)]) {
    let mut seen = std::collections::HashSet::new();
    for &(hash, holder) in pairs {
        if !seen.insert((hash, holder)) {
            continue;
        }
        let released = shard
            .call(DataRequest::ReleaseBlock { hash, holder })
            .await
            .done();
        if let Err(e) = released {
            tracing::warn!(?hash, "could not release a block: {e:?}");
        }
    }
}

/// Two ETags name the same content, with or without their quotes.
pub use crate::s3::conditions::etags_equal;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    crate::clock::system_ms()
}
