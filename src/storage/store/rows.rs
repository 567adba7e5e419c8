//! The rows a shard keeps: objects, multipart uploads and their parts, and the global
//! tables (buckets, access keys). Every write merges into the stored record in the metadata
//! transaction (`tables`); reads see the records' visible state.

use super::list::{merged, Run};
use super::tables;
use super::{decode_row, Op, OpResult, Result, ShardStore};
use crate::meta::keys::{object_key_in, parts_prefix, upload_key};
use crate::meta::types::{
    BucketId, BucketRecord, CompletedUpload, Condition, KeyRecord, ObjectRecord, ObjectRow,
    PartRow, Partition, Stamp, UploadRow, UploadState, VersionId,
};
use crate::storage::{Completing, Completion, ObjectPut, ObjectWrite, PutIf};

impl ShardStore {
    // ---------------------------------------------------------------- objects

    /// Writes an object version (the newest visible; an older write is dropped at once).
    /// Returns the object visible before and the versions dropped, whose blocks the caller
    /// releases.
    pub async fn put_object(&self, row: ObjectRow) -> Result<ObjectWrite> {
        match self.put_object_if(row, None).await? {
            ObjectPut::Written(w) => Ok(w),
            ObjectPut::Refused(_) => unreachable!("a write without condition is not refused"),
        }
    }

    /// Writes an object version if `condition` holds on the visible one, deciding
    /// atomically with the write (inside the shard's single write transaction).
    pub async fn put_object_if(
        &self,
        row: ObjectRow,
        condition: Option<Condition>,
    ) -> Result<ObjectPut> {
        let record = ObjectRecord::of_row(&row);
        self.object_op(record, condition).await
    }

    /// Deletes an object: writes a delete marker, version `version`, at `stamp` (on one
    /// node the tombstone is collected at once). Returns the versions dropped.
    pub async fn delete_object(
        &self,
        bucket: &BucketId,
        key: &str,
        version: VersionId,
        stamp: Stamp,
    ) -> Result<ObjectWrite> {
        match self
            .delete_object_if(bucket, key, (version, stamp), None)
            .await?
        {
            ObjectPut::Written(w) => Ok(w),
            ObjectPut::Refused(_) => unreachable!("a delete without condition is not refused"),
        }
    }

    /// [`ShardStore::delete_object`] if `condition` holds (e.g. lifecycle expiry: only if
    /// the visible version is still the one found expired).
    pub async fn delete_object_if(
        &self,
        bucket: &BucketId,
        key: &str,
        (version, stamp): (VersionId, Stamp),
        condition: Option<Condition>,
    ) -> Result<ObjectPut> {
        let marker = ObjectRecord::delete_marker(*bucket, key, version, stamp);
        self.object_op(marker, condition).await
    }

    async fn object_op(&self, record: ObjectRecord, cond: Option<Condition>) -> Result<ObjectPut> {
        match self.meta_op(Op::PutObject(Box::new(record), cond)).await? {
            OpResult::Object(r) => Ok(r),
            _ => unreachable!("object write result"),
        }
    }

    /// Returns once every metadata write sent before it has committed (reads after it see
    /// them all).
    pub async fn metadata_barrier(&self) -> Result<()> {
        self.meta_op(Op::Barrier).await.map(|_| ())
    }

    /// The visible object under `key`.
    pub fn get_object(&self, bucket: &BucketId, key: &str) -> Result<Option<ObjectRow>> {
        let r = self.env.read_txn()?;
        tables::get_object(&self.db, &r, bucket, key)
    }

    /// Objects of `bucket` whose key starts with `prefix` and sorts after `start_after`
    /// (exclusive; "" = from the start), in key byte order, at most `limit`: merged from
    /// the runs of the partitions this shard owns.
    pub fn list_objects(
        &self,
        bucket: &BucketId,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> Result<Vec<ObjectRow>> {
        let r = self.env.read_txn()?;
        let runs = self
            .partitions
            .borrow()
            .iter()
            .map(|&p| {
                let (start, prefix) = tables::listing_start(p, bucket, prefix, start_after);
                Run { start, prefix }
            })
            .collect();
        merged(self.db.objects, &r, runs, limit, |_, v| {
            Ok(decode_row::<ObjectRecord>(v)?.visible())
        })
    }

    /// Whether the shard holds no object of the bucket (a seek per partition).
    pub fn bucket_is_empty(&self, bucket: &BucketId) -> Result<bool> {
        Ok(self.list_objects(bucket, "", "", 1)?.is_empty())
    }

    /// Number of objects of the bucket in this shard (walks them).
    pub fn bucket_object_count(&self, bucket: &BucketId) -> Result<u64> {
        let r = self.env.read_txn()?;
        let mut n = 0;
        for &p in self.partitions.borrow().iter() {
            for item in self
                .db
                .objects
                .prefix_iter(&r, &object_key_in(p, bucket, ""))?
            {
                let (_, v) = item?;
                n += u64::from(decode_row::<ObjectRecord>(v)?.visible().is_some());
            }
        }
        Ok(n)
    }

    // ---------------------------------------------------------------- multipart

    pub async fn put_upload(&self, row: UploadRow) -> Result<()> {
        self.meta_op(Op::PutUpload(Box::new(row))).await.map(|_| ())
    }

    fn upload_row(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRow>> {
        let r = self.env.read_txn()?;
        self.db
            .uploads
            .get(&r, &upload_key(bucket, key, upload_id))?
            .map(decode_row)
            .transpose()
    }

    /// The upload, if it is in progress.
    pub fn get_upload(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRow>> {
        Ok(self
            .upload_row(bucket, key, upload_id)?
            .filter(UploadRow::in_progress))
    }

    /// How an upload was completed, if it was in the last `COMPLETED_UPLOAD_KEEP_MS`.
    pub fn get_completed_upload(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<CompletedUpload>> {
        Ok(self
            .upload_row(bucket, key, upload_id)?
            .and_then(|u| match u.state.value {
                UploadState::Completed(done) => Some(done),
                _ => None,
            }))
    }

    /// Aborts an upload in progress and removes its parts; returns the upload (`None`: it
    /// was not in progress) and the parts (the caller releases their blocks).
    pub async fn abort_upload(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
        stamp: Stamp,
    ) -> Result<(Option<UploadRow>, Vec<PartRow>)> {
        let op = Op::AbortUpload(*bucket, key.to_string(), upload_id.to_string(), stamp);
        match self.meta_op(op).await? {
            OpResult::Upload(u, parts) => Ok((u, parts)),
            _ => unreachable!("abort_upload result"),
        }
    }

    /// Uploads in progress of `bucket` under `prefix`, in (key, upload id) order, after the
    /// markers as S3's ListMultipartUploads defines them: with an upload id marker, uploads
    /// of `key_marker` with a greater id then greater keys; without, keys after
    /// `key_marker`.
    pub fn list_uploads(
        &self,
        bucket: &BucketId,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<UploadRow>> {
        let r = self.env.read_txn()?;
        let runs = self
            .partitions
            .borrow()
            .iter()
            .map(|&p| {
                let pfx = object_key_in(p, bucket, prefix);
                let from = if key_marker.is_empty() {
                    None
                } else if upload_id_marker.is_empty() {
                    // Past every upload of key_marker ("key\0id"): "key\x01".
                    let mut k = object_key_in(p, bucket, key_marker);
                    k.push(1);
                    Some(k)
                } else {
                    let mut k = object_key_in(p, bucket, key_marker);
                    k.push(0);
                    k.extend_from_slice(upload_id_marker.as_bytes());
                    k.push(0);
                    Some(k)
                };
                let start = match from {
                    Some(f) if f > pfx => f,
                    _ => pfx.clone(),
                };
                Run { start, prefix: pfx }
            })
            .collect();
        merged(self.db.uploads, &r, runs, limit, |_, v| {
            Ok(Some(decode_row::<UploadRow>(v)?).filter(UploadRow::in_progress))
        })
    }

    /// Writes a part row of the upload (`bucket`, `key`, `row.upload_id`), replacing the
    /// same part number: `Written` with the replaced row (the caller releases its blocks;
    /// a write older than the stored part is itself what is replaced), or `Refused` when
    /// the upload is not in progress (never started, aborted or completed), decided in the
    /// transaction that would write it.
    pub async fn put_part(
        &self,
        bucket: &BucketId,
        key: &str,
        row: PartRow,
    ) -> Result<PutIf<PartRow>> {
        match self
            .meta_op(Op::PutPart(*bucket, key.to_string(), Box::new(row)))
            .await?
        {
            OpResult::Part(p) => Ok(p),
            _ => unreachable!("put_part result"),
        }
    }

    /// Completes a multipart upload in one metadata transaction: if the upload is still in
    /// progress, its chosen parts are unchanged and the write condition holds, the object
    /// version is written, the upload marked completed (for a retried Complete) and all its
    /// parts removed. The object keeps the chosen parts' holders: their block references
    /// stay as they are. The caller releases the blocks of `unused` parts and of the
    /// versions the write dropped. Two Completes, or a Complete and an Abort, are ordered by
    /// the transaction: exactly one of them acts.
    pub async fn complete_upload(&self, completing: Completing) -> Result<Completion> {
        match self
            .meta_op(Op::CompleteUpload(Box::new(completing)))
            .await?
        {
            OpResult::Completion(c) => Ok(c),
            _ => unreachable!("complete_upload result"),
        }
    }

    /// Removes every upload of `bucket` and their parts (DeleteBucket removes a bucket's
    /// unfinished uploads, as AWS does); returns the parts, whose blocks the caller
    /// releases.
    pub async fn delete_bucket_uploads(&self, bucket: &BucketId) -> Result<Vec<PartRow>> {
        let op = Op::DeleteBucketUploads(*bucket, self.partitions());
        match self.meta_op(op).await? {
            OpResult::Parts(p) => Ok(p),
            _ => unreachable!("delete_bucket_uploads result"),
        }
    }

    /// Parts of an upload of (`bucket`, `key`) with number > `after_part`, in number
    /// order, at most `limit`.
    pub fn list_parts(
        &self,
        (bucket, key): (&BucketId, &str),
        upload_id: &str,
        after_part: u32,
        limit: usize,
    ) -> Result<Vec<PartRow>> {
        let p = Partition::of_object(bucket, key);
        let Some(start) = after_part.checked_add(1) else {
            return Ok(Vec::new());
        };
        let r = self.env.read_txn()?;
        let run = Run {
            start: crate::meta::keys::part_key(p, upload_id, start),
            prefix: parts_prefix(p, upload_id),
        };
        merged(self.db.parts, &r, vec![run], limit, |_, v| {
            Ok(Some(decode_row::<PartRow>(v)?))
        })
    }

    // ---------------------------------------------------------------- global tables

    /// Merges a bucket record into the stored one (keyed by bucket id; deleted buckets stay
    /// as tombstones); returns the merged record.
    pub async fn put_bucket(&self, record: BucketRecord) -> Result<BucketRecord> {
        match self.meta_op(Op::PutBucket(Box::new(record))).await? {
            OpResult::Bucket(b) => Ok(*b),
            _ => unreachable!("put_bucket result"),
        }
    }

    pub fn get_bucket(&self, id: &BucketId) -> Result<Option<BucketRecord>> {
        let r = self.env.read_txn()?;
        self.db.buckets.get(&r, &id.0)?.map(decode_row).transpose()
    }

    /// Every bucket record (tombstones included), sorted by name.
    pub fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let r = self.env.read_txn()?;
        let mut out: Vec<BucketRecord> = Vec::new();
        for item in self.db.buckets.iter(&r)? {
            out.push(decode_row(item?.1)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Merges an access key record into the stored one; returns the merged record.
    pub async fn put_key(&self, record: KeyRecord) -> Result<KeyRecord> {
        match self.meta_op(Op::PutKey(Box::new(record))).await? {
            OpResult::Key(k) => Ok(*k),
            _ => unreachable!("put_key result"),
        }
    }

    pub fn get_key(&self, access_key_id: &str) -> Result<Option<KeyRecord>> {
        let r = self.env.read_txn()?;
        self.db
            .keys
            .get(&r, access_key_id.as_bytes())?
            .map(decode_row)
            .transpose()
    }

    /// Every access key record (tombstones included), by access key id.
    pub fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let r = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.keys.iter(&r)? {
            out.push(decode_row(item?.1)?);
        }
        Ok(out)
    }
}
