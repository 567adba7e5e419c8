//! The owner's side of every data operation: what a shard does with a request for data it
//! owns (`ops::DataRequest`), whichever shard (later: node) sent it.

use std::rc::Rc;

use super::ops::PutIf;
use super::ops::{self, BlockData, Completion, DataError, DataRequest, DataResponse, DataResult};
use super::{global, placement, Shard};
use crate::meta::types::{BucketId, ObjectRow, PartRow, UploadRow};
use crate::s3::conditions::etags_equal;
use crate::storage::Completing;

pub(crate) fn storage_err(e: impl std::fmt::Display) -> DataError {
    DataError::Storage(e.to_string())
}

impl Shard {
    /// Refuses a row for a bucket this shard knows as deleted. Called right before the row
    /// is handed to the store, with no await in between: a row either reached the
    /// metadata stage before this shard saw the bucket's tombstone (and DeleteBucket's last
    /// emptiness check, which waits for the stage, finds it), or it is refused.
    fn check_bucket_live(&self, bucket: &BucketId) -> DataResult<()> {
        if self.global.borrow().bucket_is_live(bucket) {
            Ok(())
        } else {
            Err(DataError::Rejected(crate::s3::error::S3Error::NoSuchBucket))
        }
    }

    async fn put_upload(&self, row: UploadRow) -> DataResult<()> {
        self.check_bucket_live(&row.bucket)?;
        self.store.put_upload(row).await.map_err(storage_err)
    }

    async fn put_part(
        &self,
        bucket: &BucketId,
        key: &str,
        row: PartRow,
    ) -> DataResult<PutIf<PartRow>> {
        self.check_bucket_live(bucket)?;
        let written = self.store.put_part(bucket, key, row).await;
        written.map(PutIf::from).map_err(storage_err)
    }

    async fn complete_upload(
        &self,
        row: ObjectRow,
        upload_id: String,
        chosen: Vec<PartRow>,
        condition: Option<ops::WriteCondition>,
    ) -> DataResult<Completion> {
        self.check_bucket_live(&row.bucket)?;
        let completing = Completing {
            object: row,
            upload_id,
            chosen,
            condition: condition.map(condition_fn),
        };
        let completed = self.store.complete_upload(completing).await;
        completed.map(Completion::from).map_err(storage_err)
    }

    /// Whether this shard holds an object of `bucket`, counting every row sent to the
    /// store before the question (so the second check of DeleteBucket sees every row
    /// accepted before the tombstone). Unfinished uploads do not count: DeleteBucket
    /// removes them, as AWS does.
    async fn bucket_has_objects(&self, bucket: &BucketId) -> DataResult<bool> {
        let store = &self.store;
        store.metadata_barrier().await.map_err(storage_err)?;
        Ok(!store
            .list_objects(bucket, "", "", 1)
            .map_err(storage_err)?
            .is_empty())
    }

    /// Runs a request on this shard, which must own its data.
    pub async fn handle(self: Rc<Self>, request: DataRequest) -> DataResponse {
        use DataRequest as R;
        use DataResponse as A;
        if let Some(owner) = placement::owner(&request, self.shards) {
            if owner != self.id {
                let id = self.id;
                let why = format!("shard {id} got {request:?}, which shard {owner} owns");
                return A::Failed(DataError::Protocol(why));
            }
        }
        let store = &self.store;
        match request {
            R::PutBlock { hash, data } => {
                let stored = match data {
                    BlockData::Record(buf) => store.put_block_buf(hash, buf).await,
                    BlockData::Bytes(bytes) => store.put_block(hash, bytes).await,
                };
                A::Done(stored.map_err(storage_err))
            }
            R::ReadBlock { hash, offset, len } => A::Block(
                store
                    .read_block(&hash, offset, len)
                    .await
                    .map_err(|e| DataError::BlockUnavailable(e.to_string())),
            ),
            R::DecrefBlock { hash } => {
                A::Done(store.decref_block(&hash).await.map_err(storage_err))
            }
            R::IncrefBlock { hash } => {
                A::Flag(store.incref_block(&hash).await.map_err(storage_err))
            }
            R::GetObject { bucket, key } => {
                A::Object(store.get_object(&bucket, &key).map_err(storage_err))
            }
            R::PutObject { row, condition } => A::Object(self.put_object(row, condition).await),
            R::DeleteObject {
                bucket,
                key,
                condition,
            } => A::Object(self.delete_object(&bucket, &key, condition).await),
            R::ListObjects {
                bucket,
                prefix,
                start_after,
                limit,
            } => A::Objects(
                store
                    .list_objects(&bucket, &prefix, &start_after, limit)
                    .map_err(storage_err),
            ),
            R::BucketHasObjects { bucket } => A::Flag(self.bucket_has_objects(&bucket).await),
            R::PutUpload { .. }
            | R::GetUpload { .. }
            | R::DeleteUpload { .. }
            | R::CompleteUpload { .. }
            | R::GetCompletedUpload { .. }
            | R::DeleteBucketUploads { .. }
            | R::ListUploads { .. }
            | R::PutPart { .. }
            | R::ListParts { .. } => self.handle_upload(request).await,
            R::ChangeBucket { name, edit, hold } => {
                global::change_bucket(&self, &name, edit, hold).await
            }
            R::PutKey { row } => global::put_key(&self, row).await,
            R::GlobalSnapshot => {
                let g = self.global.borrow();
                A::Global {
                    buckets: g.bucket_rows(),
                    keys: g.key_rows(),
                }
            }
            R::StartTask { task } => A::Done(self.start_task(task)),
            R::GlobalUpdate { buckets, keys } => {
                self.global.borrow_mut().apply(buckets, keys);
                A::Done(Ok(()))
            }
        }
    }

    /// The requests of multipart uploads.
    async fn handle_upload(&self, request: DataRequest) -> DataResponse {
        use DataRequest as R;
        use DataResponse as A;
        let store = &self.store;
        match request {
            R::PutUpload { row } => A::Done(self.put_upload(row).await),
            R::GetUpload {
                bucket,
                key,
                upload_id,
            } => A::Upload(
                store
                    .get_upload(&bucket, &key, &upload_id)
                    .map_err(storage_err),
            ),
            R::DeleteUpload {
                bucket,
                key,
                upload_id,
            } => A::UploadRemoved(
                store
                    .delete_upload(&bucket, &key, &upload_id)
                    .await
                    .map_err(storage_err),
            ),
            R::CompleteUpload {
                row,
                upload_id,
                chosen,
                condition,
            } => A::Completion(
                self.complete_upload(row, upload_id, chosen, condition)
                    .await,
            ),
            R::GetCompletedUpload {
                bucket,
                key,
                upload_id,
            } => A::Completed(
                store
                    .get_completed_upload(&bucket, &key, &upload_id)
                    .map_err(storage_err),
            ),
            R::DeleteBucketUploads { bucket } => A::Parts(
                store
                    .delete_bucket_uploads(&bucket)
                    .await
                    .map_err(storage_err),
            ),
            R::ListUploads {
                bucket,
                prefix,
                key_marker,
                limit,
            } => A::Uploads(
                store
                    .list_uploads(&bucket, &prefix, &key_marker, "", limit)
                    .map_err(storage_err),
            ),
            R::PutPart { row, bucket, key } => A::Part(self.put_part(&bucket, &key, row).await),
            R::ListParts {
                upload_id,
                after,
                limit,
                ..
            } => A::Parts(
                store
                    .list_parts(&upload_id, after, limit)
                    .map_err(storage_err),
            ),
            other => unreachable!("not an upload request: {other:?}"),
        }
    }

    /// A put, with its condition decided by the store inside the write transaction that
    /// commits it: every write of the key (conditional or not) is ordered by that
    /// transaction, so a condition always sees the row it replaces.
    async fn put_object(
        &self,
        row: ObjectRow,
        condition: Option<ops::WriteCondition>,
    ) -> ops::DataResult<Option<ObjectRow>> {
        self.check_bucket_live(&row.bucket)?;
        let Some(condition) = condition else {
            return self.store.put_object(row).await.map_err(storage_err);
        };
        let outcome = self
            .store
            .put_object_if(row, condition_fn(condition.clone()))
            .await;
        match outcome.map_err(storage_err)? {
            crate::storage::PutIf::Written(previous) => Ok(previous),
            crate::storage::PutIf::Refused(current) => {
                Err(condition_refused(&condition, current.as_ref()))
            }
        }
    }
}

impl Shard {
    /// A delete, with its condition decided by the store inside the write transaction that
    /// commits it (as a put's).
    async fn delete_object(
        &self,
        bucket: &BucketId,
        key: &str,
        condition: Option<ops::WriteCondition>,
    ) -> DataResult<Option<ObjectRow>> {
        let Some(condition) = condition else {
            return self
                .store
                .delete_object(bucket, key)
                .await
                .map_err(storage_err);
        };
        let outcome = self
            .store
            .delete_object_if(bucket, key, condition_fn(condition.clone()))
            .await;
        match outcome.map_err(storage_err)? {
            crate::storage::PutIf::Written(previous) => Ok(previous),
            crate::storage::PutIf::Refused(current) => {
                Err(condition_refused(&condition, current.as_ref()))
            }
        }
    }
}

/// The check of a write condition against the current row, for the store to run in the
/// transaction that writes.
fn condition_fn(condition: ops::WriteCondition) -> crate::storage::WriteCond {
    use ops::WriteCondition as C;
    match condition {
        C::Absent => Box::new(|cur: Option<&ObjectRow>| cur.is_none()),
        C::EtagMatches(etag) => Box::new(move |cur: Option<&ObjectRow>| {
            cur.is_some_and(|c| etags_equal(&c.etag, &etag))
        }),
        C::StampIs(stamp) => {
            Box::new(move |cur: Option<&ObjectRow>| cur.is_some_and(|c| c.stamp == stamp))
        }
    }
}

/// Why a conditional write was refused: `If-Match` on a key that does not exist is a 404,
/// as S3 answers; anything else a failed precondition.
pub fn condition_refused(
    condition: &ops::WriteCondition,
    current: Option<&ObjectRow>,
) -> DataError {
    match (condition, current) {
        (ops::WriteCondition::EtagMatches(_), None) => DataError::NoSuchKey,
        _ => DataError::PreconditionFailed,
    }
}
