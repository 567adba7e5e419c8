//! Where data lives: which shard of the node owns a partition. Nothing but `model` asks;
//! the answer is the placement recorded in the data directory (`meta::placement`,
//! `storage::placement`), and in a cluster the layout.

use super::ops::DataRequest;
use crate::meta::placement::Placement;
use crate::meta::types::{BlockHash, BucketId, Partition};

/// The shard of this node that owns `partition`.
pub fn shard_of(partition: Partition, placement: &Placement) -> u16 {
    placement.shard_of(partition)
}

/// The shard that owns the object `key` of `bucket`.
pub fn object_shard(bucket: &BucketId, key: &str, placement: &Placement) -> u16 {
    shard_of(Partition::of_object(bucket, key), placement)
}

/// The shard that owns the block `hash`.
pub fn block_shard(hash: &BlockHash, placement: &Placement) -> u16 {
    shard_of(hash.partition(), placement)
}

/// The shard that must handle `request`: the owner of its data, shard 0 for the global
/// tables, `None` for requests sent to each shard in turn (`Shard::call_on`).
pub fn owner(request: &DataRequest, placement: &Placement) -> Option<u16> {
    use DataRequest as R;
    let object = |bucket: &BucketId, key: &str| Some(object_shard(bucket, key, placement));
    match request {
        R::PutBlock { hash, .. }
        | R::ReadBlock { hash, .. }
        | R::ReleaseBlock { hash, .. }
        | R::AddBlockRef { hash, .. } => Some(block_shard(hash, placement)),
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
    fn a_partition_belongs_to_the_shard_the_placement_records() {
        for shards in 1..=7u16 {
            let placement = Placement::striped(shards).rebalanced(shards.max(2) - 1);
            for p in Partition::all() {
                let s = shard_of(p, &placement);
                assert!(s < placement.shards);
                assert_eq!(s, placement.owner[usize::from(p.0)]);
            }
        }
    }

    #[test]
    fn requests_go_to_the_owner_of_their_data() {
        let (three, four) = (Placement::striped(3), Placement::striped(4));
        let bucket = BucketId([3; 16]);
        let get = DataRequest::GetObject {
            bucket,
            key: "k".into(),
        };
        assert_eq!(owner(&get, &four), Some(object_shard(&bucket, "k", &four)));
        let hash = BlockHash([200; 32]);
        let release = DataRequest::ReleaseBlock {
            hash,
            holder: crate::meta::types::Holder([1; 16]),
        };
        assert_eq!(owner(&release, &three), Some(200 % 3));
        assert_eq!(owner(&DataRequest::GlobalSnapshot, &four), Some(0));
        let fan_out = DataRequest::BucketHasObjects { bucket };
        assert_eq!(owner(&fan_out, &four), None);
    }
}
