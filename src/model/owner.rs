//! The owner's side of every data operation: what a shard does with a request for data it
//! owns (`ops::DataRequest`), whichever shard (later: node) sent it.

use std::rc::Rc;

use super::ops::PutIf;
use super::ops::{self, BlockData, Completion, DataError, DataRequest, DataResponse, DataResult};
use super::{global, placement, Shard};
use crate::meta::types::{BucketId, ObjectRow, PartRow, Stamp, UploadRow, VersionId};
use crate::storage::{Completing, ObjectPut, ObjectWrite};

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
            condition,
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
        if let Some(owner) = placement::owner(&request, &self.placement) {
            if owner != self.id {
                let id = self.id;
                let why = format!("shard {id} got {request:?}, which shard {owner} owns");
                return A::Failed(DataError::Protocol(why));
            }
        }
        let store = &self.store;
        match request {
            R::PutBlock { hash, data, holder } => {
                let stored = match data {
                    BlockData::Record(buf) => store.put_block_buf(hash, buf, holder).await,
                    BlockData::Bytes(bytes) => store.put_block(hash, bytes, holder).await,
                };
                A::Done(stored.map_err(storage_err))
            }
            R::ReadBlock { hash, offset, len } => A::Block(
                store
                    .read_block(&hash, offset, len)
                    .await
                    .map_err(|e| DataError::BlockUnavailable(e.to_string())),
            ),
            R::ReleaseBlock { hash, holder } => A::Done(
                store
                    .release_block(&hash, holder)
                    .await
                    .map_err(storage_err),
            ),
            R::AddBlockRef { hash, holder } => A::Flag(
                store
                    .add_block_ref(&hash, holder)
                    .await
                    .map_err(storage_err),
            ),
            R::GetObject { bucket, key } => {
                A::Object(store.get_object(&bucket, &key).map_err(storage_err))
            }
            R::PutObject { row, condition } => A::Written(self.put_object(row, condition).await),
            R::DeleteObject {
                bucket,
                key,
                version,
                stamp,
                condition,
            } => {
                let marker = (version, stamp);
                A::Written(self.delete_object(&bucket, &key, marker, condition).await)
            }
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
                stamp,
            } => A::UploadRemoved(
                store
                    .abort_upload(&bucket, &key, &upload_id, stamp)
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
                bucket,
                key,
                upload_id,
                after,
                limit,
            } => A::Parts(
                store
                    .list_parts((&bucket, &key), &upload_id, after, limit)
                    .map_err(storage_err),
            ),
            other => unreachable!("not an upload request: {other:?}"),
        }
    }

    /// A put, with its condition decided by the store inside the write transaction that
    /// commits it: every write of the key (conditional or not) is ordered by that
    /// transaction, so a condition always sees the version it would replace.
    async fn put_object(
        &self,
        row: ObjectRow,
        condition: Option<ops::WriteCondition>,
    ) -> DataResult<ObjectWrite> {
        self.check_bucket_live(&row.bucket)?;
        let outcome = self.store.put_object_if(row, condition.clone()).await;
        written_or_refused(outcome.map_err(storage_err)?, condition)
    }
}

impl Shard {
    /// A delete (a delete marker), with its condition decided by the store inside the
    /// write transaction that commits it (as a put's).
    async fn delete_object(
        &self,
        bucket: &BucketId,
        key: &str,
        marker: (VersionId, Stamp),
        condition: Option<ops::WriteCondition>,
    ) -> DataResult<ObjectWrite> {
        let outcome = self
            .store
            .delete_object_if(bucket, key, marker, condition.clone())
            .await;
        written_or_refused(outcome.map_err(storage_err)?, condition)
    }
}

fn written_or_refused(
    outcome: ObjectPut,
    condition: Option<ops::WriteCondition>,
) -> DataResult<ObjectWrite> {
    match outcome {
        ObjectPut::Written(written) => Ok(written),
        ObjectPut::Refused(current) => {
            let condition = condition.expect("only a condition refuses");
            Err(condition_refused(&condition, current.as_ref()))
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
