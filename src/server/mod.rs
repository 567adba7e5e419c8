//! The S3 server: one `Shard` per executor. A shard accepts connections (every shard binds
//! the S3 port with SO_REUSEPORT), parses and authenticates requests, and sends the work on
//! data to the shard that owns it (`shard_api`).

pub mod conn;
pub mod cors;
pub mod global;
pub mod list;
pub mod metrics;
pub mod multipart;
pub mod objects;
pub mod post_object;
pub mod router;
pub mod shard_api;
pub mod tasks;
pub mod tls;
pub mod website;

use std::cell::RefCell;
use std::rc::Rc;

use crate::config::ServerConfig;
use crate::runtime::mesh::Mesh;
use crate::storage::ShardStore;
use global::Global;
use shard_api::{ShardError, ShardRequest, ShardResponse};

pub struct Shard {
    pub id: u16,
    pub shards: u16,
    pub node_id: u64,
    pub config: Rc<ServerConfig>,
    pub store: Rc<ShardStore>,
    pub mesh: Rc<Mesh<ShardRequest, ShardResponse>>,
    pub global: RefCell<Global>,
    /// Keys with a conditional write in progress on this shard. A condition is checked
    /// against committed rows, so conditional writes to one key run one at a time.
    pub conditional_writes: RefCell<std::collections::HashSet<(BucketId, String)>>,
    /// S3 requests being served by this shard's connections (a graceful stop waits for
    /// them).
    pub requests_in_flight: std::cell::Cell<u64>,
    /// Request counters of this shard's connections.
    pub metrics: RefCell<metrics::Recorder>,
    /// The latest operator task of each kind on this shard.
    pub tasks: RefCell<Vec<metrics::TaskProgress>>,
}

fn storage_err(e: impl std::fmt::Display) -> ShardError {
    ShardError::Storage(e.to_string())
}

impl Shard {
    /// Sends a request to the shard that owns its data.
    pub async fn call(&self, request: ShardRequest) -> ShardResponse {
        let shard = request.shard(self.shards);
        self.mesh.call(usize::from(shard), request).await
    }

    /// Sends a request to a named shard (fan-out requests such as listings).
    pub async fn call_on(&self, shard: u16, request: ShardRequest) -> ShardResponse {
        self.mesh.call(usize::from(shard), request).await
    }

    /// Runs a request on this shard, which must own its data.
    pub async fn handle(self: Rc<Self>, request: ShardRequest) -> ShardResponse {
        use ShardRequest as R;
        use ShardResponse as A;
        let store = &self.store;
        match request {
            R::PutBlock { hash, data } => {
                assert_eq!(hash.partition().shard(self.shards), self.id);
                A::Done(store.put_block(hash, data).await.map_err(storage_err))
            }
            R::ReadBlock { hash, offset, len } => {
                assert_eq!(hash.partition().shard(self.shards), self.id);
                A::Block(
                    store
                        .read_block(&hash, offset, len)
                        .await
                        .map_err(|e| ShardError::BlockUnavailable(e.to_string())),
                )
            }
            R::DecrefBlock { hash } => {
                A::Done(store.decref_block(&hash).await.map_err(storage_err))
            }
            R::GetObject { bucket, key } => {
                A::Object(store.get_object(&bucket, &key).map_err(storage_err))
            }
            R::PutObject { row, condition } => A::Object(self.put_object(row, condition).await),
            R::DeleteObject { bucket, key } => A::Object(
                store
                    .delete_object(&bucket, &key)
                    .await
                    .map_err(storage_err),
            ),
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
            R::BucketHasObjects { bucket } => A::Flag(
                store
                    .list_objects(&bucket, "", "", 1)
                    .map(|rows| !rows.is_empty())
                    .and_then(|has| {
                        Ok(has || !store.list_uploads(&bucket, "", "", "", 1)?.is_empty())
                    })
                    .map_err(storage_err),
            ),
            R::PutUpload { row } => A::Done(store.put_upload(row).await.map_err(storage_err)),
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
            } => A::Parts(
                store
                    .delete_upload(&bucket, &key, &upload_id)
                    .await
                    .map(|(_, parts)| parts)
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
            R::PutPart { row, .. } => A::Part(store.put_part(row).await.map_err(storage_err)),
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
            R::PutBucket { row } => {
                assert_eq!(self.id, 0);
                global::put_bucket(&self, row).await
            }
            R::PutKey { row } => {
                assert_eq!(self.id, 0);
                global::put_key(&self, row).await
            }
            R::GlobalSnapshot => {
                assert_eq!(self.id, 0);
                let g = self.global.borrow();
                A::Global {
                    buckets: g.bucket_rows(),
                    keys: g.key_rows(),
                }
            }
            R::Stats => A::Stats(Box::new(self.stats())),
            R::StartTask { task } => A::Done(self.start_task(task)),
            R::GlobalUpdate { buckets, keys } => {
                self.global.borrow_mut().apply(buckets, keys);
                A::Done(Ok(()))
            }
        }
    }

    /// A put, with its condition checked atomically: conditional writes to one key are
    /// serialized on this (owning) shard, and each checks the row the previous one committed.
    async fn put_object(
        &self,
        row: ObjectRow,
        condition: Option<shard_api::WriteCondition>,
    ) -> shard_api::ShardResult<Option<ObjectRow>> {
        use shard_api::WriteCondition as C;
        let Some(condition) = condition else {
            return self.store.put_object(row).await.map_err(storage_err);
        };
        let slot = (row.bucket, row.key.clone());
        while !self.conditional_writes.borrow_mut().insert(slot.clone()) {
            glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
        }
        let result = async {
            let current = self
                .store
                .get_object(&row.bucket, &row.key)
                .map_err(storage_err)?;
            let holds = match (&condition, &current) {
                (C::Absent, None) => true,
                (C::Absent, Some(_)) => false,
                (C::EtagMatches(etag), Some(current)) => etags_equal(&current.etag, etag),
                (C::EtagMatches(_), None) => false,
            };
            if !holds {
                return Err(ShardError::PreconditionFailed);
            }
            self.store.put_object(row).await.map_err(storage_err)
        }
        .await;
        self.conditional_writes.borrow_mut().remove(&slot);
        result
    }
}

/// Two ETags name the same content, with or without their quotes.
pub fn etags_equal(a: &str, b: &str) -> bool {
    a.trim().trim_matches('"') == b.trim().trim_matches('"')
}

use crate::meta::types::{BucketId, ObjectRow};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
