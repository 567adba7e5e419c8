//! What the stores of one node share: the directories it has open, the pool of idle block
//! buffers, and the thread that frees spent buffers. One per node (`StorageConfig::
//! resources`), never a process-wide static, so that two nodes in one process (a test, a
//! simulation) keep their own.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::blockbuf::{BlockBuf, BufPool};

#[derive(Default)]
pub struct Resources {
    /// Shard directories open (an LMDB environment must not be opened twice in a process).
    open: Mutex<HashSet<PathBuf>>,
    /// Idle block buffers, for reuse.
    pub pool: Arc<BufPool>,
    /// The thread that frees spent buffers, started at the first need.
    freer: OnceLock<Option<std::sync::mpsc::Sender<Vec<Spent>>>>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resources")
    }
}

/// A block's memory, done with, for [`Resources::free_elsewhere`].
pub(crate) enum Spent {
    Vec(#[allow(dead_code)] Vec<u8>),
    Block(#[allow(dead_code)] BlockBuf),
}

impl Spent {
    fn is_nothing(&self) -> bool {
        match self {
            Spent::Vec(v) => v.capacity() == 0,
            Spent::Block(b) => !b.holds_memory(),
        }
    }
}

impl From<Vec<u8>> for Spent {
    fn from(v: Vec<u8>) -> Spent {
        Spent::Vec(v)
    }
}

impl From<BlockBuf> for Spent {
    fn from(b: BlockBuf) -> Spent {
        Spent::Block(b)
    }
}

impl Resources {
    pub(crate) fn open_dirs(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frees a batch's block buffers on a thread of their own, after its acknowledgements,
    /// so that no `free` sits between a sync and the acks it releases. In the storage bench
    /// a 1 MiB buffer's drop took 70–95 µs of the shard thread's CPU time
    /// (`CLOCK_THREAD_CPUTIME_ID` around it; blocks made by another thread before the run),
    /// a tenth of a block's acknowledgement at concurrency 1. How much a `free` costs
    /// depends on the allocator's state; in a server's `granary-bench large` PUT this made
    /// no difference beyond noise. Not the blocking pool: frees there would queue ahead of
    /// LMDB commits, and a job still queued when the executor ends makes its thread panic.
    /// This thread answers nobody; it ends with the node's last store.
    pub(crate) fn free_elsewhere(&self, buffers: Vec<Spent>) {
        if buffers.iter().all(Spent::is_nothing) {
            return;
        }
        let freer = self.freer.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Spent>>();
            std::thread::Builder::new()
                .name("granary-free".into())
                .spawn(move || {
                    // Started from a shard, it would share that shard's one core.
                    super::store::unpin_current_thread();
                    rx.into_iter().for_each(drop)
                })
                .ok()
                .map(|_| tx)
        });
        // Without the thread (it could not start), the buffers are freed here.
        if let Some(tx) = freer {
            let _ = tx.send(buffers);
        }
    }
}
