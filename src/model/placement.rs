//! Where data lives: which shard of the node owns a partition. Nothing but `model` asks;
//! today it is arithmetic (design.md: partition `p` belongs to shard `p % shards`), later a
//! table recorded in the data directory and the layout.

use super::ops::DataRequest;
use crate::meta::types::{BlockHash, BucketId, Partition};

/// The shard of this node that owns `partition`.
pub fn shard_of(partition: Partition, shards: u16) -> u16 {
    assert!(shards > 0);
    u16::from(partition.0) % shards
}

/// The shard that owns the object `key` of `bucket`.
pub fn object_shard(bucket: &BucketId, key: &str, shards: u16) -> u16 {
    shard_of(Partition::of_object(bucket, key), shards)
}

/// The shard that owns the block `hash`.
pub fn block_shard(hash: &BlockHash, shards: u16) -> u16 {
    shard_of(hash.partition(), shards)
}

/// The shard that must handle `request`: the owner of its data, shard 0 for the global
/// tables, `None` for requests sent to each shard in turn (`Shard::call_on`).
pub fn owner(request: &DataRequest, shards: u16) -> Option<u16> {
    use DataRequest as R;
    let object = |bucket: &BucketId, key: &str| Some(object_shard(bucket, key, shards));
    match request {
        R::PutBlock { hash, .. }
        | R::ReadBlock { hash, .. }
        | R::DecrefBlock { hash }
        | R::IncrefBlock { hash } => Some(block_shard(hash, shards)),
        R::GetObject { bucket, key }
        | R::DeleteObject { bucket, key, .. }
        | R::GetUpload { bucket, key, .. }
        | R::DeleteUpload { bucket, key, .. }
        | R::PutPart { bucket, key, .. }
        | R::GetCompletedUpload { bucket, key, .. }
        | R::ListParts { bucket, key, .. } => object(bucket, key),
        R::PutObject { row, .. } | R::CompleteUpload { row, .. } => object(&row.bucket, &row.key),
        R::PutUpload { row } => object(&row.bucket, &row.key),
        R::ChangeBucket { .. } | R::PutKey { .. } | R::GlobalSnapshot => Some(0),
        R::ListObjects { .. }
        | R::BucketHasObjects { .. }
        | R::DeleteBucketUploads { .. }
        | R::ListUploads { .. }
        | R::GlobalUpdate { .. }
        | R::StartTask { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_belongs_to_one_shard_of_any_count() {
        for shards in 1..=7u16 {
            for p in 0..=255u8 {
                let s = shard_of(Partition(p), shards);
                assert!(s < shards);
                assert_eq!(s, u16::from(p) % shards);
            }
        }
    }

    #[test]
    fn requests_go_to_the_owner_of_their_data() {
        let bucket = BucketId([3; 16]);
        let get = DataRequest::GetObject {
            bucket,
            key: "k".into(),
        };
        assert_eq!(owner(&get, 4), Some(object_shard(&bucket, "k", 4)));
        let hash = BlockHash([200; 32]);
        let decref = DataRequest::DecrefBlock { hash };
        assert_eq!(owner(&decref, 3), Some(200 % 3));
        assert_eq!(owner(&DataRequest::GlobalSnapshot, 4), Some(0));
        let fan_out = DataRequest::BucketHasObjects { bucket };
        assert_eq!(owner(&fan_out, 4), None);
    }
}
