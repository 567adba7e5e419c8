//! Listings across partitions. Keys of a partitioned table start with their partition, so
//! a bucket's objects (or uploads) on a shard are one sorted run per partition the shard
//! owns; a listing merges the runs, reading about `limit` rows plus one per partition.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;

use heed::types::Bytes;
use heed::{Database, RoTxn};

use super::Result;

/// One partition's run: where it starts, and the prefix its keys keep.
pub(super) struct Run {
    pub start: Vec<u8>,
    pub prefix: Vec<u8>,
}

/// The rows of `runs`, merged in key order (ignoring the two bytes of partition every key
/// starts with), passed through `keep` (`None` skips a row), at most `limit` kept.
pub(super) fn merged<T>(
    db: Database<Bytes, Bytes>,
    r: &RoTxn,
    runs: Vec<Run>,
    limit: usize,
    mut keep: impl FnMut(&[u8], &[u8]) -> Result<Option<T>>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut cursors = Vec::with_capacity(runs.len());
    for run in &runs {
        let range = (
            Bound::Included(run.start.as_slice()),
            Bound::<&[u8]>::Unbounded,
        );
        cursors.push(db.range(r, &range)?);
    }
    // (key past its partition, run): the smallest next.
    let mut heap: BinaryHeap<Reverse<(Vec<u8>, usize)>> = BinaryHeap::new();
    let mut heads: Vec<Option<(&[u8], &[u8])>> = vec![None; runs.len()];
    for (i, cursor) in cursors.iter_mut().enumerate() {
        if let Some((k, v)) = next_in(cursor, &runs[i].prefix)? {
            heap.push(Reverse((k[2..].to_vec(), i)));
            heads[i] = Some((k, v));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let (k, v) = heads[i].take().expect("a run in the heap has a head");
        if let Some(row) = keep(k, v)? {
            out.push(row);
            if out.len() >= limit {
                break;
            }
        }
        if let Some((k, v)) = next_in(&mut cursors[i], &runs[i].prefix)? {
            heap.push(Reverse((k[2..].to_vec(), i)));
            heads[i] = Some((k, v));
        }
    }
    Ok(out)
}

/// The next row of a run, while its keys keep the run's prefix.
fn next_in<'t>(
    cursor: &mut heed::RoRange<'t, Bytes, Bytes>,
    prefix: &[u8],
) -> Result<Option<(&'t [u8], &'t [u8])>> {
    match cursor.next().transpose()? {
        Some((k, v)) if k.starts_with(prefix) && k.len() >= 2 => Ok(Some((k, v))),
        _ => Ok(None),
    }
}
