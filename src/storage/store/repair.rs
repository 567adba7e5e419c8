//! What the offline repair of reference counts reads and sets (`storage::refcheck` decides).

use std::collections::HashMap;

use super::{corrupt, decode_row, BlockEntry, Op, OpResult, Result, ShardStore};
use crate::meta::types::{BlockHash, ObjectData, ObjectRow, PartRow};
use crate::storage::refcheck::Indexed;
use crate::storage::StorageError;

impl ShardStore {
    /// Adds the block references this shard's rows hold to `held`: one per entry of each
    /// object's block list and each upload part's.
    pub fn count_row_refs(&self, held: &mut HashMap<BlockHash, u64>) -> Result<()> {
        let r = self.env.read_txn()?;
        for item in self.db.objects.iter(&r)? {
            let (_, v) = item?;
            let row: ObjectRow = decode_row(v)?;
            if let ObjectData::Blocks(blocks) = &row.data {
                for b in blocks {
                    *held.entry(b.hash).or_default() += 1;
                }
            }
        }
        for item in self.db.parts.iter(&r)? {
            let (_, v) = item?;
            let row: PartRow = decode_row(v)?;
            for b in &row.blocks {
                *held.entry(b.hash).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Every block this shard indexes, with its count.
    pub fn indexed_blocks(&self) -> Result<Vec<Indexed>> {
        let r = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.blocks.iter(&r)? {
            let (k, v) = item?;
            let hash = BlockHash(k.try_into().map_err(|_| corrupt("bad block index key"))?);
            let e = BlockEntry::decode(v).ok_or_else(|| corrupt("bad block index entry"))?;
            out.push(Indexed {
                hash,
                refs: e.refs,
                record_len: e.record_len,
            });
        }
        Ok(out)
    }

    /// Sets blocks' counts, in one metadata commit. A count reaching 0 queues the block for
    /// GC (after the grace delay), as a release does; a count leaving 0 takes it out.
    pub async fn set_block_refs(&self, counts: Vec<(BlockHash, u64)>) -> Result<()> {
        let ops: Vec<Op> = counts
            .into_iter()
            .map(|(hash, refs)| Op::SetRefs(hash, refs))
            .collect();
        for result in self.meta_ops(ops).await? {
            if let OpResult::NotFound = result {
                return Err(StorageError::NotFound);
            }
        }
        Ok(())
    }
}
