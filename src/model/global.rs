//! The global tables (buckets and access keys): small, read on every request, written
//! rarely. Shard 0 keeps them in its store and copies every change to all shards, so that
//! every shard answers authentication and bucket lookups from memory.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::bucket::{self, BucketEdit, NameHold};
use super::ops::{DataError, DataRequest, DataResponse};
use super::{now_ms, Shard};
use crate::meta::types::{BucketId, BucketRow, KeyRow, Stamp};

#[derive(Default)]
pub struct Global {
    /// Live buckets by name.
    buckets: BTreeMap<String, BucketRow>,
    /// Ids of the live buckets: a row is written only into one of these
    /// (`Shard::check_bucket_live`).
    live_ids: HashSet<BucketId>,
    /// Live access keys by id.
    keys: HashMap<String, KeyRow>,
    /// Every row ever seen (tombstones included), for last-writer-wins merges.
    bucket_rows: HashMap<String, BucketRow>,
}

impl Global {
    pub fn bucket(&self, name: &str) -> Option<&BucketRow> {
        self.buckets.get(name)
    }
    /// The latest row under `name`, a tombstone included.
    pub fn last_row(&self, name: &str) -> Option<&BucketRow> {
        self.bucket_rows.get(name)
    }
    pub fn bucket_is_live(&self, id: &BucketId) -> bool {
        self.live_ids.contains(id)
    }
    pub fn buckets(&self) -> impl Iterator<Item = &BucketRow> {
        self.buckets.values()
    }
    pub fn key(&self, access_key_id: &str) -> Option<&KeyRow> {
        self.keys.get(access_key_id)
    }
    pub fn keys(&self) -> impl Iterator<Item = &KeyRow> {
        self.keys.values()
    }
    pub fn bucket_rows(&self) -> Vec<BucketRow> {
        self.bucket_rows.values().cloned().collect()
    }
    pub fn key_rows(&self) -> Vec<KeyRow> {
        self.keys.values().cloned().collect()
    }

    /// Merges rows last-writer-wins by stamp; deleted rows hide the live ones.
    pub fn apply(&mut self, buckets: Vec<BucketRow>, keys: Vec<KeyRow>) {
        for row in buckets {
            let newer = self
                .bucket_rows
                .get(&row.name)
                .is_none_or(|old| old.stamp < row.stamp);
            if !newer {
                continue;
            }
            if let Some(old) = self.buckets.remove(&row.name) {
                self.live_ids.remove(&old.id);
            }
            if !row.deleted {
                self.live_ids.insert(row.id);
                self.buckets.insert(row.name.clone(), row.clone());
            }
            self.bucket_rows.insert(row.name.clone(), row);
        }
        for row in keys {
            let newer = self
                .keys
                .get(&row.access_key_id)
                .is_none_or(|old| old.stamp < row.stamp);
            if !newer {
                continue;
            }
            if row.deleted {
                self.keys.remove(&row.access_key_id);
            } else {
                self.keys.insert(row.access_key_id.clone(), row);
            }
        }
    }
}

/// Applies a change to a bucket's row on shard 0, stores the row and copies it to every
/// shard. Changes wait for each other: each one sees the row the one before it stored.
pub async fn change_bucket(
    shard: &Shard,
    name: &str,
    edit: BucketEdit,
    hold: NameHold,
) -> DataResponse {
    let mut held = shard.bucket_changes.lock().await;
    let name_held = match hold {
        NameHold::Release => {
            held.remove(name);
            false
        }
        NameHold::None | NameHold::Take => held.contains(name),
    };
    let (current, last_stamp) = {
        let g = shard.global.borrow();
        let last = g.last_row(name).map(|r| r.stamp);
        (g.bucket(name).cloned(), last)
    };
    let mut row = match bucket::apply(edit, current.as_ref()) {
        Ok(Some(row)) => row,
        Ok(None) => return DataResponse::Bucket(Ok(current)),
        Err(e) => return DataResponse::Bucket(Err(DataError::Rejected(e))),
    };
    if name_held && current.is_none() && !row.deleted {
        return DataResponse::Bucket(Err(DataError::Rejected(
            crate::s3::error::S3Error::OperationAborted,
        )));
    }
    if row.name != name {
        let why = format!("an edit of bucket {name} made a row named {}", row.name);
        return DataResponse::Bucket(Err(DataError::Protocol(why)));
    }
    row.stamp = Stamp {
        time_ms: last_stamp.map_or(0, |s| s.time_ms + 1).max(now_ms()),
        node: shard.node_id,
    };
    if let Err(e) = shard.store.put_bucket(row.clone()).await {
        return DataResponse::Bucket(Err(super::owner::storage_err(e)));
    }
    let live = (!row.deleted).then(|| row.clone());
    match broadcast(shard, vec![row], vec![]).await {
        DataResponse::Done(Ok(())) => {
            if hold == NameHold::Take {
                held.insert(name.to_string());
            }
            DataResponse::Bucket(Ok(live))
        }
        other => other,
    }
}

/// Stores an access key row on shard 0 and copies it to every shard.
pub async fn put_key(shard: &Shard, row: KeyRow) -> DataResponse {
    if let Err(e) = shard.store.put_key(row.clone()).await {
        return DataResponse::Done(Err(super::owner::storage_err(e)));
    }
    broadcast(shard, vec![], vec![row]).await
}

async fn broadcast(shard: &Shard, buckets: Vec<BucketRow>, keys: Vec<KeyRow>) -> DataResponse {
    shard
        .global
        .borrow_mut()
        .apply(buckets.clone(), keys.clone());
    for other in 1..shard.shards {
        let update = DataRequest::GlobalUpdate {
            buckets: buckets.clone(),
            keys: keys.clone(),
        };
        // Applying an update cannot fail; sending it can (later, across a network).
        if let Err(e) = shard.call_on(other, update).await.done() {
            tracing::error!(shard = other, "a global update did not arrive: {e:?}");
            return DataResponse::Done(Err(e));
        }
    }
    DataResponse::Done(Ok(()))
}
