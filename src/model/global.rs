//! The global tables (buckets and access keys): small, read on every request, written
//! rarely. Shard 0 keeps them in its store and copies every change to all shards, so that
//! every shard answers authentication and bucket lookups from memory.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::bucket::{self, BucketEdit, NameHold};
use super::ops::{DataError, DataRequest, DataResponse};
use super::Shard;
use crate::meta::types::{BucketId, BucketRecord, BucketRow, KeyRecord, KeyRow, Merge};

#[derive(Default)]
pub struct Global {
    /// Every bucket record (tombstones included), merged as they come.
    bucket_records: HashMap<BucketId, BucketRecord>,
    /// Live buckets by name (views of the records).
    buckets: BTreeMap<String, BucketRow>,
    /// Ids of the live buckets: a row is written only into one of these
    /// (`Shard::check_bucket_live`).
    live_ids: HashSet<BucketId>,
    /// The latest view under each name, a tombstone included.
    last: HashMap<String, BucketRow>,
    /// Every access key record (tombstones included).
    key_records: HashMap<String, KeyRecord>,
    /// Live access keys by id.
    keys: HashMap<String, KeyRow>,
}

impl Global {
    pub fn bucket(&self, name: &str) -> Option<&BucketRow> {
        self.buckets.get(name)
    }
    /// The latest row under `name`, a tombstone included.
    pub fn last_row(&self, name: &str) -> Option<&BucketRow> {
        self.last.get(name)
    }
    pub fn bucket_record(&self, id: &BucketId) -> Option<&BucketRecord> {
        self.bucket_records.get(id)
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
    pub fn key_record(&self, access_key_id: &str) -> Option<&KeyRecord> {
        self.key_records.get(access_key_id)
    }
    pub fn keys(&self) -> impl Iterator<Item = &KeyRow> {
        self.keys.values()
    }
    pub fn bucket_rows(&self) -> Vec<BucketRecord> {
        self.bucket_records.values().cloned().collect()
    }
    pub fn key_rows(&self) -> Vec<KeyRecord> {
        self.key_records.values().cloned().collect()
    }

    /// Merges records (CRDT merges: any order, any number of times, the same tables); a
    /// deleted bucket or key hides the live one.
    pub fn apply(&mut self, buckets: Vec<BucketRecord>, keys: Vec<KeyRecord>) {
        for record in buckets {
            let merged = match self.bucket_records.get_mut(&record.id) {
                Some(mine) => {
                    mine.merge(&record);
                    mine.clone()
                }
                None => {
                    self.bucket_records.insert(record.id, record.clone());
                    record
                }
            };
            self.show_bucket(merged.view());
        }
        for record in keys {
            let merged = match self.key_records.get_mut(&record.access_key_id) {
                Some(mine) => {
                    mine.merge(&record);
                    mine.clone()
                }
                None => {
                    self.key_records
                        .insert(record.access_key_id.clone(), record.clone());
                    record
                }
            };
            let view = merged.view();
            if view.deleted {
                self.keys.remove(&view.access_key_id);
            } else {
                self.keys.insert(view.access_key_id.clone(), view);
            }
        }
    }

    /// Updates the views of a name from one of its buckets' merged view: the newest bucket
    /// of a name is the one shown (a bucket deleted and made again is another id).
    fn show_bucket(&mut self, view: BucketRow) {
        let newest = self
            .last
            .get(&view.name)
            .is_none_or(|old| old.id == view.id || old.stamp < view.stamp);
        if !newest {
            return;
        }
        if let Some(old) = self.buckets.remove(&view.name) {
            self.live_ids.remove(&old.id);
        }
        if !view.deleted {
            self.live_ids.insert(view.id);
            self.buckets.insert(view.name.clone(), view.clone());
        }
        self.last.insert(view.name.clone(), view);
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
    let current = shard.global.borrow().bucket(name).cloned();
    let row = match bucket::apply(edit, current.as_ref()) {
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
    // The change, field by field, on the bucket's record (a new one for a new bucket):
    // each setting it changed gets a new stamp, the others keep theirs.
    let stamp = shard.clock.stamp();
    let record = match shard.global.borrow().bucket_record(&row.id).cloned() {
        Some(mut record) => {
            record.update(&row, stamp);
            record
        }
        None => BucketRecord::of_view(&row, stamp),
    };
    let record = match shard.store.put_bucket(record).await {
        Ok(merged) => merged,
        Err(e) => return DataResponse::Bucket(Err(super::owner::storage_err(e))),
    };
    let view = record.view();
    let live = (!view.deleted).then_some(view);
    match broadcast(shard, vec![record], vec![]).await {
        DataResponse::Done(Ok(())) => {
            if hold == NameHold::Take {
                held.insert(name.to_string());
            }
            DataResponse::Bucket(Ok(live))
        }
        other => other,
    }
}

/// Stores an access key (as its view says it should be) on shard 0 and copies it to every
/// shard: the settings it changes get a new stamp.
pub async fn put_key(shard: &Shard, row: KeyRow) -> DataResponse {
    let stamp = shard.clock.stamp();
    let record = match shard
        .global
        .borrow()
        .key_record(&row.access_key_id)
        .cloned()
    {
        Some(mut record) => {
            record.update(&row, stamp);
            record
        }
        None => KeyRecord::of_view(&row, stamp),
    };
    let record = match shard.store.put_key(record).await {
        Ok(merged) => merged,
        Err(e) => return DataResponse::Done(Err(super::owner::storage_err(e))),
    };
    broadcast(shard, vec![], vec![record]).await
}

async fn broadcast(
    shard: &Shard,
    buckets: Vec<BucketRecord>,
    keys: Vec<KeyRecord>,
) -> DataResponse {
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
