//! The API: S3 handlers (`s3`), the admin API (`admin`), buckets served as websites, the
//! connection loop, TLS, metrics and the MD5 lanes. A handler parses and authenticates a
//! request, then asks `model` for the data.

pub mod admin;
pub mod conn;
pub mod md5_lanes;
pub mod metrics;
pub mod s3;
pub mod tls;
pub mod website;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use crate::model::Shard;
use metrics::{LifecycleFigures, Md5Figures, ShardStats};

/// What the API asks of the node's shards beside data (which goes through `model`):
/// provided by `node`, which owns the mesh.
pub trait ShardControl {
    /// Shard `shard`'s snapshot: counters, storage figures, operator tasks (`None`: the
    /// shard could not be asked).
    fn stats(&self, shard: u16) -> LocalBoxFuture<'_, Option<ShardStats>>;
}

/// The API side of one shard: what serving clients needs beside the data (`Shard`, which
/// it dereferences to).
pub struct Gateway {
    pub shard: Rc<Shard>,
    /// Request counters of this shard's connections.
    pub metrics: RefCell<metrics::Recorder>,
    /// MD5 of this shard's uploads, many at once.
    pub md5: md5_lanes::Md5Lanes,
    /// This shard's share of `--max-buffered-bytes`, in bytes: uploads take their room for
    /// blocks in memory from it (`objects::reserve_upload_memory`).
    pub upload_memory: Rc<glommio::sync::Semaphore>,
    /// The node's shards, for their snapshots (admin API).
    pub control: Rc<dyn ShardControl>,
    /// The node's TLS certificate (new connections take the current one).
    pub tls: Arc<tls::Tls>,
    /// The connections each shard of the node serves.
    pub connections: Arc<Connections>,
}

/// The connections each shard of a node serves (or is about to): a new connection goes to
/// the shard that serves the fewest (`node::accept`), and the node refuses one beyond
/// `--max-connections`.
pub struct Connections(Box<[AtomicUsize]>);

impl Connections {
    pub fn new(shards: u16) -> Arc<Connections> {
        Arc::new(Connections(
            (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        ))
    }

    /// The shard that should serve a new connection accepted by shard `me`: `me` unless
    /// another serves fewer. The connection is counted on it from now on.
    pub fn target(&self, me: u16) -> u16 {
        let load = |i: u16| self.0[usize::from(i)].load(Ordering::Relaxed);
        let mut target = me;
        for i in 0..self.0.len() as u16 {
            if load(i) < load(target) {
                target = i;
            }
        }
        self.0[usize::from(target)].fetch_add(1, Ordering::Relaxed);
        target
    }

    /// Connections the node serves now, over all shards.
    pub fn served(&self) -> u64 {
        self.0
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as u64)
            .sum()
    }

    pub fn closed(&self, shard: u16) {
        self.0[usize::from(shard)].fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Gateway {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        &self.shard
    }
}

impl Gateway {
    /// The API side of `shard`; starts its MD5 lanes on the current executor.
    pub fn new(
        shard: Rc<Shard>,
        control: Rc<dyn ShardControl>,
        (tls, connections): (Arc<tls::Tls>, Arc<Connections>),
    ) -> Self {
        let config = &shard.config;
        let upload_memory = config.limits.max_buffered_bytes / u64::from(config.shards);
        Self {
            metrics: Default::default(),
            md5: md5_lanes::Md5Lanes::start(),
            upload_memory: Rc::new(glommio::sync::Semaphore::new(upload_memory)),
            control,
            tls,
            connections,
            shard,
        }
    }

    /// The shard's counters, storage figures and tasks.
    pub fn stats(&self) -> ShardStats {
        let mut stats = ShardStats {
            shard: self.id,
            requests_in_flight: self.requests_in_flight.get(),
            storage: self.store.stats(),
            tasks: self.tasks.borrow().clone(),
            ..Default::default()
        };
        self.metrics.borrow().fill(&mut stats);
        let m = self.md5.counters();
        stats.md5 = Md5Figures {
            rounds: m.rounds.get(),
            blocks: m.jobs.get(),
            bytes: m.bytes.get(),
        };
        let l = &self.lifecycle_stats;
        stats.lifecycle = LifecycleFigures {
            passes: l.passes.get(),
            objects_scanned: l.objects_scanned.get(),
            objects_expired: l.objects_expired.get(),
            uploads_scanned: l.uploads_scanned.get(),
            uploads_aborted: l.uploads_aborted.get(),
            last_pass_ms: l.last_pass_ms.get(),
        };
        stats
    }
}
