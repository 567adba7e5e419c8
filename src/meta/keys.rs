//! Order-preserving LMDB key encodings. Every key of a partitioned table starts with its
//! partition (two bytes, big-endian), so that a partition is one range of every table: what
//! a move between shards, and later a Merkle tree and a sync between nodes, walk. Within a
//! partition, objects sort by (bucket id, key bytes), as S3 lists keys in UTF-8 binary
//! order; a listing merges the ranges of the partitions it covers.
//!
//! Blocks need no prefix: a block's partition is the first bits of its hash, so the index
//! and the references keyed by hash are in partition order already.

use super::types::{BlockHash, BucketId, Holder, Partition};

/// Object table key: partition, bucket id (16 bytes), the key's UTF-8 bytes.
pub fn object_key(bucket: &BucketId, key: &str) -> Vec<u8> {
    object_key_in(Partition::of_object(bucket, key), bucket, key)
}

/// An object table key (or a prefix of keys) in partition `p`.
pub fn object_key_in(p: Partition, bucket: &BucketId, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(18 + key.len());
    k.extend_from_slice(&p.prefix());
    k.extend_from_slice(&bucket.0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Multipart upload key: the object's key, a zero byte, upload id (keys hold no NUL: the
/// server refuses them), so uploads list by key then upload id.
pub fn upload_key(bucket: &BucketId, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

/// Part key: the upload's partition, upload id, a zero byte, part number big-endian
/// (numeric order).
pub fn part_key(p: Partition, upload_id: &str, number: u32) -> Vec<u8> {
    let mut k = parts_prefix(p, upload_id);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

/// The prefix of every part key of an upload.
pub fn parts_prefix(p: Partition, upload_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(upload_id.len() + 7);
    k.extend_from_slice(&p.prefix());
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    k
}

/// A block reference's key: the block's hash, then its holder. A block's references are one
/// range; so are a partition's.
pub fn block_ref_key(hash: &BlockHash, holder: &Holder) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..32].copy_from_slice(&hash.0);
    k[32..].copy_from_slice(&holder.0);
    k
}

/// The holder named by a block reference's key.
pub fn holder_of_ref_key(key: &[u8]) -> Option<Holder> {
    Some(Holder(key.get(32..48)?.try_into().ok()?))
}

/// The partition a key of a partitioned table belongs to.
pub fn partition_of_key(key: &[u8]) -> Option<Partition> {
    Some(Partition(u16::from_be_bytes(
        key.get(..2)?.try_into().ok()?,
    )))
}

/// The first key past every key of partition `p` (`None` after the last partition).
pub fn partition_end(p: Partition) -> Option<[u8; 2]> {
    p.0.checked_add(1).map(u16::to_be_bytes)
}

/// The range of hashes (as 32-byte keys, end exclusive) of the blocks of partition `p`.
pub fn block_range(p: Partition) -> ([u8; 32], Option<[u8; 32]>) {
    let shift = 16 - super::types::PARTITION_BITS;
    let first = (u32::from(p.0) << shift) as u16;
    let mut start = [0u8; 32];
    start[..2].copy_from_slice(&first.to_be_bytes());
    let end = u32::from(p.0 + 1) << shift;
    let end = (end <= u32::from(u16::MAX)).then(|| {
        let mut e = [0u8; 32];
        e[..2].copy_from_slice(&(end as u16).to_be_bytes());
        e
    });
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn object_keys_sort_like_keys_within_a_partition(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let bucket = BucketId([7; 16]);
            let p = Partition(3);
            prop_assert_eq!(
                object_key_in(p, &bucket, &a).cmp(&object_key_in(p, &bucket, &b)),
                a.as_bytes().cmp(b.as_bytes())
            );
        }

        #[test]
        fn an_object_key_starts_with_its_partition(key in "\\PC{0,20}") {
            let bucket = BucketId([7; 16]);
            let k = object_key(&bucket, &key);
            prop_assert_eq!(partition_of_key(&k), Some(Partition::of_object(&bucket, &key)));
        }

        #[test]
        fn part_keys_sort_numerically(a: u32, b: u32) {
            let p = Partition(1);
            prop_assert_eq!(part_key(p, "u", a).cmp(&part_key(p, "u", b)), a.cmp(&b));
        }

        #[test]
        fn a_blocks_hash_falls_in_its_partitions_range(hash: [u8; 32]) {
            let h = BlockHash(hash);
            let (start, end) = block_range(h.partition());
            prop_assert!(hash >= start);
            prop_assert!(end.is_none_or(|e| hash < e));
        }
    }

    #[test]
    fn partition_ranges_tile_the_hash_space() {
        let mut expected_start = [0u8; 32];
        for p in Partition::all() {
            let (start, end) = block_range(p);
            assert_eq!(start, expected_start);
            match end {
                Some(e) => expected_start = e,
                None => assert_eq!(p.0 as u32, crate::constants::PARTITION_COUNT - 1),
            }
        }
        let k = block_ref_key(&BlockHash([1; 32]), &Holder([2; 16]));
        assert_eq!(holder_of_ref_key(&k), Some(Holder([2; 16])));
    }
}
