//! The rows of a shard's tables inside the metadata transaction: every write of a row goes
//! through [`Tx::write`], which merges nothing itself but reports the change (old and new
//! value) to the row-change hook (`RowChange`): the one place a Merkle tree will be kept
//! current. Merging (`meta::crdt`) is done by the callers here, one function per operation.

use heed::RwTxn;

use super::{decode_row, encode_row, get_entry, set_refs, Dbs, Result};
use crate::meta::keys::{
    block_ref_key, object_key, object_key_in, part_key, parts_prefix, upload_key,
};
use crate::meta::types::{
    BlockHash, BlockRefRow, BucketId, BucketRecord, Condition, Holder, KeyRecord, Merge,
    ObjectRecord, ObjectRow, PartRow, Partition, Stamp, UploadRow, UploadState,
};
use crate::storage::{Completing, Completion, ObjectPut, ObjectWrite, PutIf, RowChange, Table};

/// A metadata write transaction and the row changes it made.
pub(super) struct Tx<'e> {
    pub w: RwTxn<'e>,
    pub changes: Vec<RowChange>,
}

impl<'e> Tx<'e> {
    fn table(db: &Dbs, table: Table) -> heed::Database<heed::types::Bytes, heed::types::Bytes> {
        match table {
            Table::Objects => db.objects,
            Table::Uploads => db.uploads,
            Table::Parts => db.parts,
            Table::BlockRefs => db.block_refs,
            Table::Buckets => db.buckets,
            Table::Keys => db.keys,
        }
    }

    /// Writes (`Some`) or removes (`None`) a row, and reports the change.
    pub fn write(&mut self, db: &Dbs, table: Table, key: &[u8], new: Option<&[u8]>) -> Result<()> {
        let old = Self::table(db, table)
            .get(&self.w, key)?
            .map(|b| *blake3::hash(b).as_bytes());
        self.write_over(db, table, key, old, new)
    }

    /// `write`, for a caller that read the row in this transaction already (`read`) and
    /// gives its hash: the row is not looked up a second time.
    pub fn write_over(
        &mut self,
        db: &Dbs,
        table: Table,
        key: &[u8],
        old: Option<[u8; 32]>,
        new: Option<&[u8]>,
    ) -> Result<()> {
        let t = Self::table(db, table);
        match new {
            Some(bytes) => t.put(&mut self.w, key, bytes)?,
            None => {
                if old.is_none() {
                    return Ok(());
                }
                t.delete(&mut self.w, key)?;
            }
        }
        self.changes.push(RowChange {
            table,
            key: key.to_vec(),
            old,
            new: new.map(|b| *blake3::hash(b).as_bytes()),
        });
        Ok(())
    }

    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        db: &Dbs,
        table: Table,
        key: &[u8],
    ) -> Result<Option<T>> {
        Self::table(db, table)
            .get(&self.w, key)?
            .map(decode_row)
            .transpose()
    }

    /// A row and the hash of its stored bytes (what `write_over` reports as the old value).
    pub fn read<T: serde::de::DeserializeOwned>(
        &self,
        db: &Dbs,
        table: Table,
        key: &[u8],
    ) -> Result<Option<(T, [u8; 32])>> {
        Self::table(db, table)
            .get(&self.w, key)?
            .map(|b| Ok((decode_row(b)?, *blake3::hash(b).as_bytes())))
            .transpose()
    }

    pub fn put<T: serde::Serialize>(
        &mut self,
        db: &Dbs,
        table: Table,
        key: &[u8],
        row: &T,
    ) -> Result<()> {
        self.write(db, table, key, Some(&encode_row(row)?))
    }
}

// ------------------------------------------------------------------------------ objects

/// Merges an object record (a new version, or a delete marker) into the stored one, if
/// `condition` holds on the visible version. On one node a record left holding only a
/// delete marker is removed at once: no other replica needs the tombstone.
pub(super) fn put_object(
    tx: &mut Tx,
    db: &Dbs,
    record: ObjectRecord,
    condition: Option<Condition>,
) -> Result<ObjectPut> {
    let k = object_key(&record.bucket, &record.key);
    let (stored, old) = match tx.read::<ObjectRecord>(db, Table::Objects, &k)? {
        Some((row, hash)) => (Some(row), Some(hash)),
        None => (None, None),
    };
    let previous = stored.as_ref().and_then(ObjectRecord::visible);
    if let Some(c) = condition {
        if !c.holds(previous.as_ref()) {
            return Ok(ObjectPut::Refused(previous));
        }
    }
    let (merged, dropped) = match stored {
        Some(mut s) => {
            let dropped = s.merge_pruned(&record);
            (s, dropped)
        }
        None => (record, Vec::new()),
    };
    let bytes = if merged.is_tombstone() {
        None
    } else {
        Some(encode_row(&merged)?)
    };
    tx.write_over(db, Table::Objects, &k, old, bytes.as_deref())?;
    Ok(ObjectPut::Written(ObjectWrite { previous, dropped }))
}

pub(super) fn get_object<'t>(
    db: &Dbs,
    r: &heed::RoTxn<'t>,
    bucket: &BucketId,
    key: &str,
) -> Result<Option<ObjectRow>> {
    let record: Option<ObjectRecord> = db
        .objects
        .get(r, &object_key(bucket, key))?
        .map(decode_row)
        .transpose()?;
    Ok(record.and_then(|r| r.visible()))
}

/// The first key of partition `p`'s objects of `bucket` to list: under `prefix`, past
/// `start_after`.
pub(super) fn listing_start(
    p: Partition,
    bucket: &BucketId,
    prefix: &str,
    start_after: &str,
) -> (Vec<u8>, Vec<u8>) {
    let pfx = object_key_in(p, bucket, prefix);
    let mut from = object_key_in(p, bucket, start_after);
    if from > pfx {
        from.push(0);
        (from, pfx)
    } else {
        (pfx.clone(), pfx)
    }
}

// ------------------------------------------------------------------------------ blocks

/// Adds a holder's reference to an indexed block (nothing if it holds one already: a
/// retried write counts once). The count is derived: the references held.
pub(super) fn add_ref(
    tx: &mut Tx,
    db: &Dbs,
    hash: &BlockHash,
    holder: Holder,
    stamp: Stamp,
) -> Result<()> {
    let k = block_ref_key(hash, &holder);
    if tx.get::<BlockRefRow>(db, Table::BlockRefs, &k)?.is_some() {
        return Ok(());
    }
    let Some(entry) = get_entry(db, &tx.w, hash)? else {
        return Ok(());
    };
    let row = BlockRefRow {
        stamp,
        released: false,
    };
    tx.put(db, Table::BlockRefs, &k, &row)?;
    set_refs(db, &mut tx.w, hash, entry, entry.refs + 1, 0).map(|_| ())
}

/// Releases a holder's reference (nothing if it holds none: a retried release counts
/// once). On one node the released reference is removed at once.
pub(super) fn release_ref(
    tx: &mut Tx,
    db: &Dbs,
    hash: &BlockHash,
    holder: Holder,
    now: u64,
) -> Result<()> {
    let k = block_ref_key(hash, &holder);
    if tx.get::<BlockRefRow>(db, Table::BlockRefs, &k)?.is_none() {
        return Ok(());
    }
    tx.write(db, Table::BlockRefs, &k, None)?;
    if let Some(entry) = get_entry(db, &tx.w, hash)? {
        let refs = entry.refs.saturating_sub(1);
        set_refs(db, &mut tx.w, hash, entry, refs, now)?;
    }
    Ok(())
}

/// The holders of a block's references.
pub(super) fn holders<'t>(db: &Dbs, r: &heed::RoTxn<'t>, hash: &BlockHash) -> Result<Vec<Holder>> {
    let mut out = Vec::new();
    for item in db.block_refs.prefix_iter(r, &hash.0)? {
        let (k, _) = item?;
        if let Some(h) = crate::meta::keys::holder_of_ref_key(k) {
            out.push(h);
        }
    }
    Ok(out)
}

/// Sets a block's references to exactly `wanted` (the offline repair).
pub(super) fn set_holders(
    tx: &mut Tx,
    db: &Dbs,
    hash: &BlockHash,
    wanted: &[Holder],
    now: u64,
) -> Result<()> {
    let mut have = Vec::new();
    for item in db.block_refs.prefix_iter(&tx.w, &hash.0)? {
        let (k, _) = item?;
        if let Some(h) = crate::meta::keys::holder_of_ref_key(k) {
            have.push(h);
        }
    }
    for h in &have {
        if !wanted.contains(h) {
            release_ref(tx, db, hash, *h, now)?;
        }
    }
    for h in wanted {
        add_ref(tx, db, hash, *h, Stamp::ZERO)?;
    }
    // The derived count follows the rows, whatever it was.
    if let Some(entry) = get_entry(db, &tx.w, hash)? {
        let n = {
            let mut n = 0;
            for item in db.block_refs.prefix_iter(&tx.w, &hash.0)? {
                item?;
                n += 1;
            }
            n
        };
        if entry.refs != n {
            set_refs(db, &mut tx.w, hash, entry, n, now)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------ uploads

pub(super) fn put_part(
    tx: &mut Tx,
    db: &Dbs,
    bucket: &BucketId,
    key: &str,
    row: PartRow,
) -> Result<PutIf<PartRow>> {
    let upload: Option<UploadRow> =
        tx.get(db, Table::Uploads, &upload_key(bucket, key, &row.upload_id))?;
    if !upload.is_some_and(|u| u.in_progress()) {
        return Ok(PutIf::Refused(None));
    }
    let p = Partition::of_object(bucket, key);
    let k = part_key(p, &row.upload_id, row.number);
    let prev: Option<PartRow> = tx.get(db, Table::Parts, &k)?;
    let mut merged = row.clone();
    if let Some(prev) = &prev {
        merged.merge(prev);
    }
    tx.put(db, Table::Parts, &k, &merged)?;
    // The replaced part is returned (its blocks released), unless the write was older.
    Ok(PutIf::Written(if merged == row { prev } else { Some(row) }))
}

/// Removes every part row of an upload; returns them.
pub(super) fn take_parts(
    tx: &mut Tx,
    db: &Dbs,
    p: Partition,
    upload_id: &str,
) -> Result<Vec<PartRow>> {
    let pfx = parts_prefix(p, upload_id);
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    for item in db.parts.prefix_iter(&tx.w, &pfx)? {
        let (k, v) = item?;
        keys.push(k.to_vec());
        parts.push(decode_row(v)?);
    }
    for k in keys {
        tx.write(db, Table::Parts, &k, None)?;
    }
    Ok(parts)
}

/// Ends an upload (aborted, or completed by `complete_upload`): its state moves on, its
/// parts go. Returns the row as it was and the parts removed; nothing for an upload not in
/// progress.
pub(super) fn end_upload(
    tx: &mut Tx,
    db: &Dbs,
    (bucket, key, upload_id): (&BucketId, &str, &str),
    state: UploadState,
    stamp: Stamp,
) -> Result<(Option<UploadRow>, Vec<PartRow>)> {
    let k = upload_key(bucket, key, upload_id);
    let Some(mut row) = tx.get::<UploadRow>(db, Table::Uploads, &k)? else {
        return Ok((None, Vec::new()));
    };
    if !row.in_progress() {
        return Ok((None, Vec::new()));
    }
    let before = row.clone();
    row.state.set(stamp, state);
    tx.put(db, Table::Uploads, &k, &row)?;
    let parts = take_parts(tx, db, Partition::of_object(bucket, key), upload_id)?;
    Ok((Some(before), parts))
}

/// The transaction of `ShardStore::complete_upload`.
pub(super) fn complete_upload(
    tx: &mut Tx,
    db: &Dbs,
    c: Completing,
    now: u64,
) -> Result<Completion> {
    let Completing {
        object,
        upload_id,
        chosen,
        condition,
    } = c;
    let uk = upload_key(&object.bucket, &object.key, &upload_id);
    let upload: Option<UploadRow> = tx.get(db, Table::Uploads, &uk)?;
    match upload.as_ref().map(|u| &u.state.value) {
        None | Some(UploadState::Aborted) => return Ok(Completion::NoSuchUpload),
        Some(UploadState::Completed(done)) => {
            return Ok(Completion::AlreadyCompleted(done.clone()))
        }
        Some(UploadState::InProgress) => {}
    }
    // The caller built the object from parts it read before: each must still be as read
    // (a part uploaded again meanwhile would leave the object pointing at released blocks).
    let p = Partition::of_object(&object.bucket, &object.key);
    for part in &chosen {
        let stored: Option<PartRow> =
            tx.get(db, Table::Parts, &part_key(p, &upload_id, part.number))?;
        if stored.as_ref() != Some(part) {
            return Ok(Completion::PartsChanged);
        }
    }
    let record = ObjectRecord::of_row(&object);
    let written = match put_object(tx, db, record, condition)? {
        ObjectPut::Refused(current) => return Ok(Completion::Refused(current)),
        ObjectPut::Written(w) => w,
    };
    let done = crate::meta::types::CompletedUpload {
        upload_id: upload_id.clone(),
        parts: chosen.iter().map(|p| (p.number, p.etag.clone())).collect(),
        etag: object.etag.clone(),
        checksum: object.checksum.clone(),
        completed_ms: now,
    };
    let ids = (&object.bucket, object.key.as_str(), upload_id.as_str());
    let (_, parts) = end_upload(tx, db, ids, UploadState::Completed(done), object.stamp)?;
    let unused = parts
        .into_iter()
        .filter(|p| !chosen.iter().any(|c| c.number == p.number))
        .collect();
    Ok(Completion::Completed { written, unused })
}

/// Removes every upload of a bucket and its parts (DeleteBucket); returns the parts.
pub(super) fn delete_bucket_uploads(
    tx: &mut Tx,
    db: &Dbs,
    bucket: &BucketId,
    partitions: &[Partition],
) -> Result<Vec<PartRow>> {
    let mut rows = Vec::new();
    for &p in partitions {
        for item in db
            .uploads
            .prefix_iter(&tx.w, &object_key_in(p, bucket, ""))?
        {
            let (k, v) = item?;
            rows.push((k.to_vec(), p, decode_row::<UploadRow>(v)?.upload_id));
        }
    }
    let mut parts = Vec::new();
    for (k, p, id) in rows {
        tx.write(db, Table::Uploads, &k, None)?;
        parts.extend(take_parts(tx, db, p, &id)?);
    }
    Ok(parts)
}

/// Forgets ended uploads (completed or aborted) older than `before_ms`, at most `limit`.
pub(super) fn sweep_ended_uploads(
    tx: &mut Tx,
    db: &Dbs,
    before_ms: u64,
    limit: usize,
) -> Result<u64> {
    let mut old = Vec::new();
    for item in db.uploads.iter(&tx.w)? {
        let (k, v) = item?;
        let row: UploadRow = decode_row(v)?;
        if !row.in_progress() && row.state.stamp.time_ms < before_ms {
            old.push(k.to_vec());
            if old.len() >= limit {
                break;
            }
        }
    }
    for k in &old {
        tx.write(db, Table::Uploads, k, None)?;
    }
    Ok(old.len() as u64)
}

// ------------------------------------------------------------------------------ global

pub(super) fn put_bucket(tx: &mut Tx, db: &Dbs, record: BucketRecord) -> Result<BucketRecord> {
    let k = record.id.0;
    let mut merged = record;
    if let Some(stored) = tx.get::<BucketRecord>(db, Table::Buckets, &k)? {
        merged.merge(&stored);
    }
    tx.put(db, Table::Buckets, &k, &merged)?;
    Ok(merged)
}

pub(super) fn put_key(tx: &mut Tx, db: &Dbs, record: KeyRecord) -> Result<KeyRecord> {
    let k = record.access_key_id.clone().into_bytes();
    let mut merged = record;
    if let Some(stored) = tx.get::<KeyRecord>(db, Table::Keys, &k)? {
        merged.merge(&stored);
    }
    tx.put(db, Table::Keys, &k, &merged)?;
    Ok(merged)
}
