//! What the offline repair of block references reads and sets (`storage::refcheck`
//! decides).

use std::collections::{BTreeSet, HashMap};

use super::{corrupt, decode_row, tables, BlockEntry, Op, OpResult, Result, ShardStore};
use crate::meta::types::{BlockHash, Holder, ObjectRecord, PartRow};
use crate::storage::refcheck::Indexed;
use crate::storage::StorageError;

impl ShardStore {
    /// Adds the (block, holder) references this shard's rows hold to `held`: every version
    /// of every object, and every upload part.
    pub fn collect_row_holders(
        &self,
        held: &mut HashMap<BlockHash, BTreeSet<Holder>>,
    ) -> Result<()> {
        let r = self.env.read_txn()?;
        for item in self.db.objects.iter(&r)? {
            let (_, v) = item?;
            let record: ObjectRecord = decode_row(v)?;
            for version in &record.versions {
                if let Some(row) = record.row(version) {
                    for (hash, holder) in row.block_holders() {
                        held.entry(hash).or_default().insert(holder);
                    }
                }
            }
        }
        for item in self.db.parts.iter(&r)? {
            let (_, v) = item?;
            let row: PartRow = decode_row(v)?;
            for b in &row.blocks {
                held.entry(b.hash).or_default().insert(row.holder);
            }
        }
        Ok(())
    }

    /// Every block this shard indexes, with its count and the holders of its references.
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
                holders: tables::holders(&self.db, &r, &hash)?,
                record_len: e.record_len,
            });
        }
        Ok(out)
    }

    /// Sets blocks' references to these holders, in one metadata commit. A block left with
    /// none is queued for GC (after the grace delay), as a release does.
    pub async fn set_block_holders(&self, fixes: Vec<(BlockHash, Vec<Holder>)>) -> Result<()> {
        let ops: Vec<Op> = fixes
            .into_iter()
            .map(|(hash, holders)| Op::SetHolders(hash, holders))
            .collect();
        for result in self.meta_ops(ops).await? {
            if let OpResult::NotFound = result {
                return Err(StorageError::NotFound);
            }
        }
        Ok(())
    }

    /// The holders of a block's references (tests, repair).
    pub fn block_holders(&self, hash: &BlockHash) -> Result<Vec<Holder>> {
        let r = self.env.read_txn()?;
        tables::holders(&self.db, &r, hash)
    }
}
