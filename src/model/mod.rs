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

use crate::config::ServerConfig;
use crate::meta::types::{BlockRef, ObjectData};
use crate::storage::ShardStore;
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
        id: u16,
        node_id: u64,
        config: Rc<ServerConfig>,
        store: Rc<ShardStore>,
        peers: Rc<dyn Peers>,
        global: Global,
    ) -> Self {
        Self {
            id,
            shards: config.shards,
            node_id,
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
        match placement::owner(&request, self.shards) {
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

/// Drops one reference to each block (the object or part that held them is gone).
pub async fn release_blocks(shard: &Shard, blocks: &[BlockRef]) {
    for block in blocks {
        let released = shard
            .call(DataRequest::DecrefBlock { hash: block.hash })
            .await
            .done();
        if let Err(e) = released {
            tracing::warn!(?block.hash, "could not release a block: {e:?}");
        }
    }
}

pub async fn release_data(shard: &Shard, data: &ObjectData) {
    if let ObjectData::Blocks(blocks) = data {
        release_blocks(shard, blocks).await;
    }
}

/// Two ETags name the same content, with or without their quotes.
pub use crate::s3::conditions::etags_equal;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
