//! A block's bytes held where its segment record will be written from.
//!
//! A [`BlockBuf`] is an aligned allocation laid out as a record (`record`): room for the
//! header, then the data. The caller fills the data (a server receives a body straight into
//! it) and may seal it ([`BlockBuf::seal`]: chunk checksums and header, computed where the
//! bytes lie) while they are still in its cache. The owning shard then writes the record
//! as it is, with no copy: a batch of one block is this buffer's own O_DIRECT write. A
//! batch of several is copied into one buffer, since several appending writes of one file
//! wait on each other in ext4 (see `encode_records` in `store`).
//!
//! The memory comes from glommio's global DMA allocation (`allocate_dma_buffer_global`): a
//! plain 4 KiB-aligned heap allocation tied to no executor, so a `BlockBuf` can be filled
//! on one shard, written by another and freed by a third thread. A node keeps idle buffers
//! for reuse in its [`BufPool`] ([`POOL_BYTES_MAX`]): fresh ones came from `mmap` every
//! time, and faulting in a new 1 MiB buffer for every block cost a large PUT a third of its
//! throughput (server CPU 1.4 → 2.2 s/GB; 530,000 page faults for 2 GiB against 40,000).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use glommio::io::DmaBuffer;

use super::record;
use crate::meta::types::BlockHash;

/// Most bytes of idle buffers kept for reuse (beyond, a buffer given back is freed).
pub const POOL_BYTES_MAX: usize = 64 << 20;

/// Idle buffers by length, for lengths that have been asked for (a buffer trimmed to a
/// short record's length is not kept: that length is seldom asked for again).
#[derive(Default)]
struct Pool {
    free: HashMap<usize, Vec<Mem>>,
    bytes: usize,
}

/// A buffer made by `allocate_dma_buffer_global` (see the `Send` impl of [`BlockBuf`]).
struct Mem(DmaBuffer);

// SAFETY: as for `BlockBuf` below: only buffers of glommio's global allocation are pooled.
unsafe impl Send for Mem {}

/// The idle block buffers of one node, shared by its shards (one per node: no process-wide
/// state, so that two nodes in one process keep their own).
#[derive(Default)]
pub struct BufPool {
    pool: Mutex<Pool>,
}

impl BufPool {
    /// A buffer of `len` bytes: an idle one if there is one, else a new one.
    fn take(&self, len: usize) -> DmaBuffer {
        let reused = self.pool.lock().ok().and_then(|mut pool| {
            let idle = pool.free.entry(len).or_default();
            let mem = idle.pop()?;
            pool.bytes -= len;
            Some(mem.0)
        });
        reused.unwrap_or_else(|| glommio::allocate_dma_buffer_global(len))
    }

    /// Keeps `mem` for reuse if its length is one asked for and the pool has room; else it
    /// is freed here.
    fn give_back(&self, mem: DmaBuffer) {
        let len = mem.len();
        if let Ok(mut pool) = self.pool.lock() {
            if pool.bytes + len <= POOL_BYTES_MAX {
                if let Some(idle) = pool.free.get_mut(&len) {
                    idle.push(Mem(mem));
                    pool.bytes += len;
                    return;
                }
            }
        }
        drop(mem);
    }
}

/// A block's data in record layout (see the module docs). Dereferences to the data.
#[derive(Default)]
pub struct BlockBuf {
    /// None until there is capacity (an empty `BlockBuf` allocates nothing).
    mem: Option<DmaBuffer>,
    /// Where the data starts in `mem`: the header length for `cap` (or for `len` once
    /// sealed).
    at: usize,
    len: usize,
    cap: usize,
    /// The hash the header was sealed with; cleared when the data changes.
    sealed: Option<BlockHash>,
    /// A written-out buffer trimmed to a short record: freed, never reused.
    trimmed: Option<DmaBuffer>,
    /// Where `mem` goes back to when the buffer is dropped (none: it is freed).
    pool: Option<Arc<BufPool>>,
}

// SAFETY: `DmaBuffer` is not `Send` because of its storage variants that point into an
// executor's registered memory or eventfd. `BlockBuf` only ever holds buffers made by
// `glommio::allocate_dma_buffer_global`, whose storage is a heap allocation that the buffer
// alone owns and frees with the global allocator (glommio 0.9, `sys/dma_buffer.rs`:
// `SysAlloc`), so moving it to another thread is sound. A buffer received back from a write
// ([`BlockBuf::spent`]) is the same buffer.
unsafe impl Send for BlockBuf {}

impl BlockBuf {
    /// An empty buffer with room for `cap` data bytes (at most `record::RECORD_DATA_MAX`),
    /// freed when dropped.
    pub fn with_capacity(cap: usize) -> BlockBuf {
        BlockBuf::with_capacity_in(None, cap)
    }

    /// An empty buffer with room for `cap` data bytes, taken from `pool` (if any) and
    /// given back to it when dropped.
    pub fn with_capacity_in(pool: Option<&Arc<BufPool>>, cap: usize) -> BlockBuf {
        assert!(
            cap <= record::RECORD_DATA_MAX,
            "block capacity {cap} above the record maximum"
        );
        let len = record::record_len(cap);
        let mem = match pool {
            Some(pool) => pool.take(len),
            None => glommio::allocate_dma_buffer_global(len),
        };
        BlockBuf {
            mem: Some(mem),
            at: record::header_len(cap),
            len: 0,
            cap,
            sealed: None,
            trimmed: None,
            pool: pool.cloned(),
        }
    }

    /// A copy of `data`, sealed with `hash` in the same pass (each chunk is checksummed
    /// as it is copied).
    pub fn sealed_copy(hash: &BlockHash, data: &[u8]) -> BlockBuf {
        BlockBuf::sealed_copy_in(None, hash, data)
    }

    /// [`BlockBuf::sealed_copy`] in a buffer of `pool`.
    pub fn sealed_copy_in(pool: Option<&Arc<BufPool>>, hash: &BlockHash, data: &[u8]) -> BlockBuf {
        let mut b = BlockBuf::with_capacity_in(pool, data.len());
        let mem = b.mem.as_mut().expect("allocated");
        record::encode_into(hash, data, mem.as_bytes_mut());
        b.len = data.len();
        b.sealed = Some(*hash);
        b
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Whether the buffer owns an allocation (a default or written-out one does not).
    pub(crate) fn holds_memory(&self) -> bool {
        self.mem.is_some() || self.trimmed.is_some()
    }

    /// Room left for data.
    pub fn remaining(&self) -> usize {
        self.cap - self.len
    }

    /// Appends `bytes` (at most [`BlockBuf::remaining`] of them).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        assert!(bytes.len() <= self.remaining(), "block buffer overflow");
        if bytes.is_empty() {
            return;
        }
        let (at, len) = (self.at, self.len);
        let mem = self.mem.as_mut().expect("capacity implies memory");
        mem.as_bytes_mut()[at + len..at + len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.sealed = None;
    }

    /// Room for at most `max` more data bytes, to read into (its contents are unspecified:
    /// whatever the memory held); [`BlockBuf::commit`] then keeps what was filled.
    pub fn spare_mut(&mut self, max: usize) -> &mut [u8] {
        let n = max.min(self.remaining());
        let (at, len) = (self.at, self.len);
        match self.mem.as_mut() {
            Some(mem) => &mut mem.as_bytes_mut()[at + len..at + len + n],
            None => &mut [],
        }
    }

    /// Keeps the first `n` bytes of the room [`BlockBuf::spare_mut`] gave as data.
    pub fn commit(&mut self, n: usize) {
        assert!(n <= self.remaining(), "block buffer overflow");
        self.len += n;
        if n > 0 {
            self.sealed = None;
        }
    }

    /// Writes the record's header for `hash` around the data where it lies (moving the data
    /// only when fewer chunk checksums fit than the capacity reserved room for). Sealing
    /// twice with the same hash does nothing more.
    pub fn seal(&mut self, hash: &BlockHash) {
        if self.sealed == Some(*hash) {
            return;
        }
        if self.mem.is_none() {
            *self = BlockBuf::with_capacity_in(self.pool.as_ref(), 0);
        }
        let hl = record::header_len(self.len);
        let mem = self.mem.as_mut().expect("allocated above");
        let bytes = mem.as_bytes_mut();
        if hl != self.at {
            bytes.copy_within(self.at..self.at + self.len, hl);
            self.at = hl;
        }
        record::seal_in_place(hash, self.len, bytes);
        self.sealed = Some(*hash);
    }

    /// The sealed record's bytes, if it is sealed with `hash`.
    pub(crate) fn record(&self, hash: &BlockHash) -> Option<&[u8]> {
        match (&self.mem, self.sealed == Some(*hash)) {
            (Some(mem), true) => Some(&mem.as_bytes()[..record::record_len(self.len)]),
            _ => None,
        }
    }

    /// The record for `hash` as one DMA buffer of exactly its length, to be written as it
    /// is (sealing it first if needed): what [`BlockBuf::spent`] takes back once written.
    pub(crate) fn into_record(mut self, hash: &BlockHash) -> Record {
        self.seal(hash);
        let rl = record::record_len(self.len);
        let mut mem = self.mem.take().expect("sealed implies memory");
        let whole = rl == mem.len();
        if !whole {
            mem.trim_to_size(rl);
        }
        Record {
            mem,
            whole,
            pool: self.pool.take(),
        }
    }

    /// Wraps a record that [`BlockBuf::into_record`] gave out, once written, so that it can
    /// be dropped on another thread: given back to its pool if it is whole (not trimmed),
    /// else freed.
    pub(crate) fn spent(record: Record) -> BlockBuf {
        let (mem, trimmed) = if record.whole {
            (Some(record.mem), None)
        } else {
            (None, Some(record.mem))
        };
        BlockBuf {
            mem,
            at: 0,
            len: 0,
            cap: 0,
            sealed: None,
            trimmed,
            pool: record.pool,
        }
    }
}

/// A block's record out of its buffer, for one O_DIRECT write (`BlockBuf::into_record`).
pub(crate) struct Record {
    pub mem: DmaBuffer,
    /// The whole allocation (not trimmed to a short record): worth giving back.
    pub whole: bool,
    /// The pool it came from.
    pub pool: Option<Arc<BufPool>>,
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            match &self.pool {
                Some(pool) => pool.give_back(mem),
                None => drop(mem),
            }
        }
    }
}

impl Deref for BlockBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.mem {
            Some(mem) => &mem.as_bytes()[self.at..self.at + self.len],
            None => &[],
        }
    }
}

impl From<&[u8]> for BlockBuf {
    fn from(data: &[u8]) -> BlockBuf {
        let mut b = BlockBuf::with_capacity(data.len());
        b.extend_from_slice(data);
        b
    }
}

impl std::fmt::Debug for BlockBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .field("sealed", &self.sealed.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn a_filled_and_sealed_buffer_is_the_encoded_record() {
        // Capacity of a whole block, data shorter by enough chunks that the header shrinks.
        for (cap, len) in [
            (1 << 20, 1 << 20),
            (1 << 20, 100_000),
            (1 << 20, 0),
            (10, 7),
        ] {
            let data = sample(len);
            let hash = BlockHash::of(&data);
            let mut b = BlockBuf::with_capacity(cap);
            for piece in data.chunks(3000) {
                b.extend_from_slice(piece);
            }
            assert_eq!(&b[..], &data[..]);
            b.seal(&hash);
            assert_eq!(&b[..], &data[..], "data moved with the header");
            let expected = record::encode(&hash, &data);
            assert_eq!(b.record(&hash), Some(&expected[..]));
            assert_eq!(b.into_record(&hash).mem.as_bytes(), &expected[..]);
        }
    }

    #[test]
    fn reads_into_the_spare_room_become_data() {
        let mut b = BlockBuf::with_capacity(10_000);
        b.extend_from_slice(b"head");
        let room = b.spare_mut(1 << 20);
        assert_eq!(room.len(), 10_000 - 4);
        room[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(&b[..], b"headabc");
        assert!(BlockBuf::default().spare_mut(10).is_empty());
    }

    #[test]
    fn a_sealed_copy_matches_and_changing_the_data_unseals() {
        let data = sample(70_000);
        let hash = BlockHash::of(&data);
        let b = BlockBuf::sealed_copy(&hash, &data);
        assert_eq!(b.record(&hash), Some(&record::encode(&hash, &data)[..]));
        let mut b = BlockBuf::with_capacity(80_000);
        b.extend_from_slice(&data);
        b.seal(&hash);
        b.extend_from_slice(b"more");
        assert_eq!(b.record(&hash), None);
        assert_eq!(BlockBuf::default().record(&hash), None);
    }

    #[test]
    fn an_empty_buffer_seals_into_an_empty_block() {
        let hash = BlockHash::of(b"");
        let rec = BlockBuf::default().into_record(&hash);
        assert_eq!(rec.mem.as_bytes(), &record::encode(&hash, b"")[..]);
    }

    #[test]
    fn a_dropped_buffer_is_reused_and_a_trimmed_one_is_not() {
        let pool = Arc::new(BufPool::default());
        let cap = 3 * 65_536 + 11;
        let b = BlockBuf::with_capacity_in(Some(&pool), cap);
        let first = b.mem.as_ref().unwrap().as_bytes().as_ptr();
        drop(b);
        let b = BlockBuf::with_capacity_in(Some(&pool), cap);
        assert_eq!(b.mem.as_ref().unwrap().as_bytes().as_ptr(), first);
        // Written out short: the record is trimmed to its length, which nobody asks for.
        let mut short = b;
        short.extend_from_slice(b"x");
        let rec = short.into_record(&BlockHash::of(b"x"));
        assert_eq!((rec.mem.len(), rec.whole), (record::record_len(1), false));
        let spent = BlockBuf::spent(rec);
        assert!(
            spent.mem.is_none() && spent.trimmed.is_some(),
            "kept apart, to be freed"
        );
        assert!(spent.holds_memory());
    }

    #[test]
    fn a_buffer_moves_between_threads() {
        let data = sample(5000);
        let hash = BlockHash::of(&data);
        let b = std::thread::spawn(move || BlockBuf::sealed_copy(&hash, &data))
            .join()
            .unwrap();
        let rec = std::thread::spawn(move || b.into_record(&hash).mem.as_bytes().to_vec())
            .join()
            .unwrap();
        assert_eq!(rec, record::encode(&hash, &sample(5000)));
    }
}
