//! A partition's rows and blocks, read out of one shard's store and merged into another's
//! (`storage::placement` moves partitions between shards). Every import merges, and every
//! block reference is a row per holder, so an import repeated after a crash changes
//! nothing; a partition is dropped from its old shard only once its new shard has it.

use std::ops::Bound;

use heed::types::Bytes;
use heed::Database;

use super::tables::Tx;
use super::{decode_row, encode_row, get_entry, seg_add, Dbs, Op, OpResult, Result, ShardStore};
use crate::meta::keys::{block_range, partition_end};
use crate::meta::types::{BlockHash, Holder, Merge, ObjectRecord, PartRow, Partition, UploadRow};
use crate::storage::index::gc_key;
use crate::storage::Table;

/// Raw rows of one table: (key, encoded value).
pub type RawRows = Vec<(Vec<u8>, Vec<u8>)>;

impl ShardStore {
    /// Rows of partition `p` in `table` (objects, uploads or parts), after key `after`, at
    /// most `limit`.
    pub fn partition_rows(
        &self,
        table: Table,
        p: Partition,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RawRows> {
        let db = match table {
            Table::Objects => self.db.objects,
            Table::Uploads => self.db.uploads,
            Table::Parts => self.db.parts,
            other => unreachable!("{other:?} rows move with their blocks"),
        };
        let r = self.env.read_txn()?;
        let start = p.prefix().to_vec();
        let end = partition_end(p).map(|e| e.to_vec());
        read_range(db, &r, (&start, end.as_deref()), after, limit)
    }

    /// Blocks this shard indexes in partition `p`, after `after`, at most `limit`.
    pub fn partition_blocks(
        &self,
        p: Partition,
        after: Option<BlockHash>,
        limit: usize,
    ) -> Result<Vec<BlockHash>> {
        let r = self.env.read_txn()?;
        let (start, end) = block_range(p);
        let after = after.map(|h| h.0);
        let rows = read_range(
            self.db.blocks,
            &r,
            (&start, end.as_ref().map(|e| &e[..])),
            after.as_ref().map(|a| &a[..]),
            limit,
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, _)| k.try_into().ok().map(BlockHash))
            .collect())
    }

    /// Merges rows read from another shard's store into this one's.
    pub async fn import_rows(&self, table: Table, rows: RawRows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.meta_op(Op::ImportRows(table, rows)).await.map(|_| ())
    }

    /// Takes a block from another shard with its holders: its data if this shard lacks it,
    /// a reference per holder either way.
    pub async fn import_block(
        &self,
        hash: BlockHash,
        data: Vec<u8>,
        holders: &[Holder],
    ) -> Result<()> {
        let Some((first, rest)) = holders.split_first() else {
            return Ok(());
        };
        self.put_block(hash, data, *first).await?;
        for h in rest {
            if !self.add_block_ref(&hash, *h).await? {
                return Err(super::corrupt(format!(
                    "block {} vanished while it was moved",
                    hash.to_hex()
                )));
            }
        }
        Ok(())
    }

    /// Takes a block another shard holds but cannot read, with its holders: a bad entry
    /// here (never served; a later put of the same content repairs it), unless this shard
    /// holds the block already.
    pub async fn import_bad_block(
        &self,
        hash: BlockHash,
        data_len: u32,
        holders: &[Holder],
    ) -> Result<()> {
        let op = Op::ImportBadBlock(hash, data_len, holders.to_vec());
        self.meta_op(op).await.map(|_| ())
    }

    /// Removes everything of partition `p` from this shard: rows, references, and the
    /// index entries of its blocks (their records become dead space for compaction).
    pub async fn drop_partition(&self, p: Partition) -> Result<()> {
        match self.meta_op(Op::DropPartition(p)).await? {
            OpResult::Unit => Ok(()),
            _ => unreachable!("drop_partition result"),
        }
    }
}

/// Rows of `db` in [start, end), after `after`, at most `limit`.
fn read_range(
    db: Database<Bytes, Bytes>,
    r: &heed::RoTxn,
    (start, end): (&[u8], Option<&[u8]>),
    after: Option<&[u8]>,
    limit: usize,
) -> Result<RawRows> {
    let lower = match after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Included(start),
    };
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    for item in db.range(r, &(lower, upper))? {
        let (k, v) = item?;
        out.push((k.to_vec(), v.to_vec()));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The transaction of `import_rows`: each row merged into the stored one.
pub(super) fn import_rows(tx: &mut Tx, db: &Dbs, table: Table, rows: RawRows) -> Result<()> {
    for (k, v) in rows {
        let bytes = match table {
            Table::Objects => merged_bytes::<ObjectRecord>(tx, db, table, &k, &v)?,
            Table::Uploads => merged_bytes::<UploadRow>(tx, db, table, &k, &v)?,
            Table::Parts => merged_bytes::<PartRow>(tx, db, table, &k, &v)?,
            other => unreachable!("{other:?} rows are not imported"),
        };
        tx.write(db, table, &k, Some(&bytes))?;
    }
    Ok(())
}

fn merged_bytes<T>(tx: &Tx, db: &Dbs, table: Table, key: &[u8], incoming: &[u8]) -> Result<Vec<u8>>
where
    T: Merge + serde::Serialize + serde::de::DeserializeOwned,
{
    let mut row: T = decode_row(incoming)?;
    if let Some(stored) = tx.get::<T>(db, table, key)? {
        row.merge(&stored);
    }
    encode_row(&row)
}

/// The transaction of `import_bad_block`.
pub(super) fn import_bad_block(
    tx: &mut Tx,
    db: &Dbs,
    (hash, data_len): (BlockHash, u32),
    holders: &[Holder],
) -> Result<()> {
    if get_entry(db, &tx.w, &hash)?.is_none() {
        let entry = crate::storage::index::BlockEntry {
            segment: 0,
            offset: 0,
            data_len,
            record_len: 0,
            refs: 0,
            zero_since_ms: 0,
            bad: true,
        };
        db.blocks.put(&mut tx.w, &hash.0, &entry.encode())?;
        super::add_bad(db, &mut tx.w, 1)?;
    }
    for h in holders {
        super::tables::add_ref(tx, db, &hash, *h, crate::meta::types::Stamp::ZERO)?;
    }
    Ok(())
}

/// The transaction of `drop_partition`.
pub(super) fn drop_partition(tx: &mut Tx, db: &Dbs, p: Partition) -> Result<()> {
    let start = p.prefix().to_vec();
    let end = partition_end(p).map(|e| e.to_vec());
    for (table, d) in [
        (Table::Objects, db.objects),
        (Table::Uploads, db.uploads),
        (Table::Parts, db.parts),
    ] {
        let keys: Vec<Vec<u8>> = read_range(d, &tx.w, (&start, end.as_deref()), None, usize::MAX)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            tx.write(db, table, &k, None)?;
        }
    }
    let (bstart, bend) = block_range(p);
    let refs: Vec<Vec<u8>> = read_range(
        db.block_refs,
        &tx.w,
        (&bstart, bend.as_ref().map(|e| &e[..])),
        None,
        usize::MAX,
    )?
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    for k in refs {
        tx.write(db, Table::BlockRefs, &k, None)?;
    }
    let blocks = read_range(
        db.blocks,
        &tx.w,
        (&bstart, bend.as_ref().map(|e| &e[..])),
        None,
        usize::MAX,
    )?;
    for (k, _) in blocks {
        let hash = BlockHash(
            k.as_slice()
                .try_into()
                .map_err(|_| super::corrupt("bad key"))?,
        );
        if let Some(e) = get_entry(db, &tx.w, &hash)? {
            if e.zero_since_ms != 0 {
                db.gc.delete(&mut tx.w, &gc_key(e.zero_since_ms, &hash))?;
            }
            if e.segment != 0 {
                seg_add(db, &mut tx.w, e.segment, 0, -(e.record_len as i64))?;
            }
            if e.bad {
                super::add_bad(db, &mut tx.w, -1)?;
            }
            db.blocks.delete(&mut tx.w, &k)?;
        }
    }
    Ok(())
}
