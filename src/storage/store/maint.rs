//! Background maintenance of a shard's store: block GC after the grace delay, segment
//! compaction, scrub. All of it runs in a low-shares glommio task queue, so foreground
//! reads and writes keep the shard's CPU; compaction's copies share the data stage's
//! batches.

use std::rc::{Rc, Weak};
use std::time::Duration;

use futures::channel::oneshot;
use glommio::{Latency, Shares};

use super::{
    bump, corrupt, seg_path, BlockEntry, Checkpoint, DataReq, Kind, Op, OpResult, Result,
    SegmentInfo, ShardStore, CHECKPOINT_KEY,
};
use crate::meta::types::BlockHash;
use crate::storage::{record, FsyncPolicy, StorageError};

/// Shares of the maintenance task queue (foreground tasks run in the default queue, 1000).
const MAINT_SHARES: usize = 50;
const GC_SWEEP_LIMIT: usize = 4096;

pub(super) fn spawn_background(store: &Rc<ShardStore>) {
    let tq = glommio::executor().create_task_queue(
        Shares::Static(MAINT_SHARES),
        Latency::NotImportant,
        "storage-maintenance",
    );
    if store.cfg.maintenance_interval_s > 0 {
        let every = Duration::from_secs(store.cfg.maintenance_interval_s);
        if let Ok(t) = glommio::spawn_local_into(maintenance_loop(Rc::downgrade(store), every), tq)
        {
            store.background.borrow_mut().push(t.detach());
        }
    }
    if store.cfg.scrub_bytes_per_s > 0 {
        let rate = store.cfg.scrub_bytes_per_s;
        if let Ok(t) = glommio::spawn_local_into(scrub_loop(Rc::downgrade(store), rate), tq) {
            store.background.borrow_mut().push(t.detach());
        }
    }
}

async fn maintenance_loop(store: Weak<ShardStore>, every: Duration) {
    loop {
        glommio::timer::sleep(every).await;
        let Some(s) = store.upgrade() else { return };
        if let Err(e) = s.gc_now().await {
            tracing::warn!(error = %e, "block GC failed");
        }
        if let Err(e) = s.compact_now().await {
            tracing::warn!(error = %e, "segment compaction failed");
        }
    }
}

async fn scrub_loop(store: Weak<ShardStore>, bytes_per_s: u64) {
    loop {
        let Some(s) = store.upgrade() else { return };
        let pause = match s.scrub_step(1).await {
            Ok(p) if p.wrapped && p.checked == 0 => Duration::from_secs(10),
            Ok(p) => Duration::from_secs_f64(p.bytes as f64 / bytes_per_s as f64),
            Err(e) => {
                tracing::warn!(error = %e, "scrub step failed");
                Duration::from_secs(10)
            }
        };
        drop(s);
        glommio::timer::sleep(pause.max(Duration::from_micros(100))).await;
    }
}

/// Progress of one [`ShardStore::scrub_step`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubProgress {
    pub checked: u64,
    pub bad: u64,
    pub bytes: u64,
    /// The pass reached the end of the index (the next step starts over).
    pub wrapped: bool,
}

impl ShardStore {
    /// Drop every block whose reference count has been 0 for longer than the GC delay.
    /// Returns how many were dropped. (Runs in the background every
    /// `maintenance_interval_s`; public for tests and admin.)
    pub async fn gc_now(&self) -> Result<u64> {
        let gc_delay_ms = self.cfg.block_gc_delay_s.saturating_mul(1000);
        let before_ms = self.cfg.clock.now_ms().saturating_sub(gc_delay_ms);
        let mut total = 0;
        loop {
            let n = match self
                .meta_op(Op::GcSweep {
                    before_ms,
                    limit: GC_SWEEP_LIMIT,
                })
                .await?
            {
                OpResult::Count(n) => n,
                _ => 0,
            };
            total += n;
            if n < GC_SWEEP_LIMIT as u64 {
                break;
            }
        }
        bump(&self.counters.gc_dropped, total);
        self.sweep_completed_uploads().await?;
        if total > 0 {
            tracing::info!(dropped = total, "block GC");
        }
        Ok(total)
    }

    /// Forgets completed multipart uploads older than `COMPLETED_UPLOAD_KEEP_MS` (with the
    /// block GC).
    async fn sweep_completed_uploads(&self) -> Result<()> {
        let keep_ms = crate::constants::COMPLETED_UPLOAD_KEEP_MS;
        let before_ms = self.cfg.clock.now_ms().saturating_sub(keep_ms);
        loop {
            let op = Op::SweepCompleted {
                before_ms,
                limit: GC_SWEEP_LIMIT,
            };
            match self.meta_op(op).await? {
                OpResult::Count(n) if n >= GC_SWEEP_LIMIT as u64 => continue,
                _ => return Ok(()),
            }
        }
    }

    /// Compact every sealed segment whose live bytes fell under `compact_live_ratio`: copy
    /// its live records to the active segment, repoint the index, delete the file.
    /// Returns the number of segments reclaimed.
    pub async fn compact_now(&self) -> Result<u64> {
        let mut n = 0;
        for id in self.compaction_candidates()? {
            if self.compact_segment(id).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    fn compaction_candidates(&self) -> Result<Vec<u32>> {
        let r = self.env.read_txn()?;
        let ckpt = self
            .db
            .state
            .get(&r, CHECKPOINT_KEY)?
            .and_then(Checkpoint::decode)
            .unwrap_or_default();
        let (active, files): (u32, Vec<u32>) = {
            let s = self.segs.borrow();
            (s.active, s.files.keys().copied().collect())
        };
        let mut out = Vec::new();
        for id in files {
            if id == active || id >= ckpt.segment {
                continue;
            }
            let info = self
                .db
                .segments
                .get(&r, &super::segment_key(id))?
                .and_then(SegmentInfo::decode)
                .unwrap_or_default();
            if (info.live_bytes as f64) < self.cfg.compact_live_ratio * info.total_bytes as f64
                || info.total_bytes == 0
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    async fn compact_segment(&self, id: u32) -> Result<bool> {
        let Some(file) = self.segs.borrow().files.get(&id).cloned() else {
            return Ok(false);
        };
        let size = file.file_size().await?;
        let mut waits: Vec<oneshot::Receiver<Result<OpResult>>> = Vec::new();
        let mut pending_bytes = 0u64;
        let mut moved = 0u64;
        let mut pos = 0u64;
        let mut clean = true;
        while pos < size {
            let want = (size - pos).min(record::HEADER_MAX as u64) as usize;
            let hb = file.read_at(pos, want).await?;
            let h = match record::decode_header(&hb[..]) {
                Ok(h) => h,
                Err(_) => {
                    clean = false;
                    break;
                }
            };
            let rl = h.record_len() as u64;
            if let Some(e) = self.block_entry(&h.hash)? {
                if e.segment == id && e.offset == pos {
                    pending_bytes += self.relocate(&file, h.hash, e, &mut waits).await?;
                    moved += 1;
                }
            }
            pos += rl;
            if pending_bytes >= self.cfg.fsync_batch_bytes {
                wait_all(&mut waits).await?;
                pending_bytes = 0;
            }
            glommio::yield_if_needed().await;
        }
        if !clean {
            // Records after a corrupt region cannot be found by scanning: look them up.
            tracing::warn!(
                segment = id,
                at = pos,
                "compaction: unreadable region, searching the index"
            );
            let entries = self.entries_in_segment(id)?;
            for (hash, e) in entries {
                pending_bytes += self.relocate(&file, hash, e, &mut waits).await?;
                moved += 1;
                if pending_bytes >= self.cfg.fsync_batch_bytes {
                    wait_all(&mut waits).await?;
                    pending_bytes = 0;
                }
            }
        }
        wait_all(&mut waits).await?;
        let live = {
            let r = self.env.read_txn()?;
            self.db
                .segments
                .get(&r, &super::segment_key(id))?
                .and_then(SegmentInfo::decode)
                .unwrap_or_default()
                .live_bytes
        };
        if live > 0 {
            tracing::warn!(
                segment = id,
                live,
                "compaction left live records; keeping the segment"
            );
            return Ok(false);
        }
        // The copies and the repointed index must be durable before the original goes.
        if self.cfg.data_fsync != FsyncPolicy::Always
            || self.cfg.metadata_fsync != FsyncPolicy::Always
        {
            self.sync_all().await?;
        }
        self.meta_op(Op::DropSegment(id)).await?;
        {
            let mut s = self.segs.borrow_mut();
            s.files.remove(&id);
            s.dirty.remove(&id);
        }
        self.disk.remove(&seg_path(&self.dir, id))?;
        bump(&self.counters.compacted_segments, 1);
        tracing::info!(segment = id, moved, bytes = size, "segment compacted");
        Ok(true)
    }

    /// Queue the copy of one live record (or detach a bad one); returns bytes queued.
    async fn relocate(
        &self,
        file: &super::SegFile,
        hash: BlockHash,
        e: BlockEntry,
        waits: &mut Vec<oneshot::Receiver<Result<OpResult>>>,
    ) -> Result<u64> {
        if e.bad {
            let (tx, rx) = oneshot::channel();
            self.send_meta(vec![(Op::Orphan(hash, e.segment, e.offset), Some(tx))]);
            waits.push(rx);
            return Ok(0);
        }
        let hl = record::header_len(e.data_len as usize);
        let body = file.read_at(e.offset, hl + e.data_len as usize).await?;
        match record::decode(&body[..]) {
            Ok((h, data)) if h.hash == hash => {
                let (tx, rx) = oneshot::channel();
                self.data_tx
                    .borrow()
                    .as_ref()
                    .ok_or(StorageError::Closed)?
                    .unbounded_send(DataReq {
                        kind: Kind::Relocate(e.segment, e.offset),
                        hash,
                        holder: crate::meta::types::Holder::RECOVERED,
                        stamp: crate::meta::types::Stamp::ZERO,
                        data: super::BlockBuf::sealed_copy(&hash, data),
                        reply: tx,
                    })
                    .map_err(|_| StorageError::Closed)?;
                waits.push(rx);
                Ok(e.record_len as u64)
            }
            _ => {
                tracing::error!(block = %hash.to_hex(), segment = e.segment, offset = e.offset, "compaction found a corrupt record: marking bad");
                let (tx, rx) = oneshot::channel();
                self.send_meta(vec![
                    (Op::MarkBad(hash, e.segment, e.offset), None),
                    (Op::Orphan(hash, e.segment, e.offset), Some(tx)),
                ]);
                waits.push(rx);
                Ok(0)
            }
        }
    }

    fn entries_in_segment(&self, id: u32) -> Result<Vec<(BlockHash, BlockEntry)>> {
        let r = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.blocks.iter(&r)? {
            let (k, v) = item?;
            let e = BlockEntry::decode(v).ok_or_else(|| corrupt("bad block index entry"))?;
            if e.segment == id {
                let h: [u8; 32] = k.try_into().map_err(|_| corrupt("bad block index key"))?;
                out.push((BlockHash(h), e));
            }
        }
        Ok(out)
    }

    /// Re-read and verify up to `max_blocks` blocks after the scrub cursor (a corrupt one
    /// is marked bad and logged by the read path). The background scrub calls this at
    /// `scrub_bytes_per_s`.
    pub async fn scrub_step(&self, max_blocks: usize) -> Result<ScrubProgress> {
        let mut p = ScrubProgress::default();
        let batch: Vec<(BlockHash, BlockEntry)> = {
            let r = self.env.read_txn()?;
            let cursor = *self.scrub_cursor.borrow();
            let lower = match &cursor {
                Some(c) => std::ops::Bound::Excluded(&c[..]),
                None => std::ops::Bound::Unbounded,
            };
            let mut v = Vec::new();
            for item in self
                .db
                .blocks
                .range(&r, &(lower, std::ops::Bound::<&[u8]>::Unbounded))?
            {
                let (k, val) = item?;
                let (Ok(h), Some(e)) = (<[u8; 32]>::try_from(k), BlockEntry::decode(val)) else {
                    continue;
                };
                v.push((BlockHash(h), e));
                if v.len() >= max_blocks {
                    break;
                }
            }
            v
        };
        if batch.len() < max_blocks {
            p.wrapped = true;
            *self.scrub_cursor.borrow_mut() = None;
        }
        for (h, e) in batch {
            if !p.wrapped {
                *self.scrub_cursor.borrow_mut() = Some(h.0);
            }
            if e.bad {
                continue;
            }
            p.checked += 1;
            p.bytes += e.record_len as u64;
            bump(&self.counters.scrubbed_blocks, 1);
            match self.read_block_data(&h, 0, e.data_len).await {
                Ok(_) | Err(StorageError::NotFound) => {}
                Err(StorageError::Corrupt(_)) => {
                    p.bad += 1;
                    bump(&self.counters.scrub_bad_found, 1);
                }
                Err(other) => return Err(other),
            }
            bump(&self.counters.scrub_pass_checked, 1);
        }
        if p.wrapped {
            bump(&self.counters.scrub_passes, 1);
            self.counters.scrub_pass_checked.set(0);
        }
        Ok(p)
    }
}

async fn wait_all(waits: &mut Vec<oneshot::Receiver<Result<OpResult>>>) -> Result<()> {
    let mut first_err = None;
    for w in waits.drain(..) {
        match w.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(StorageError::Closed);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
