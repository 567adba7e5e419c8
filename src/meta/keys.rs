//! Order-preserving LMDB key encodings. The byte order of an encoded key is the order
//! listing needs: objects by (bucket id, key bytes), as S3 lists keys in UTF-8 binary order.

use super::types::BucketId;

/// Object table key: bucket id (16 bytes) then the key's UTF-8 bytes.
pub fn object_key(bucket: &BucketId, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&bucket.0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Multipart upload key: bucket id, key, a zero byte, upload id (keys hold no NUL:
/// the server refuses them), so uploads list by key then upload id.
pub fn upload_key(bucket: &BucketId, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

/// Part key: upload id, a zero byte, part number big-endian (numeric order).
pub fn part_key(upload_id: &str, number: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(upload_id.len() + 5);
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn object_keys_sort_like_keys(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let bucket = BucketId([7; 16]);
            prop_assert_eq!(object_key(&bucket, &a).cmp(&object_key(&bucket, &b)),
                a.as_bytes().cmp(b.as_bytes()));
        }

        #[test]
        fn part_keys_sort_numerically(a: u32, b: u32) {
            prop_assert_eq!(part_key("u", a).cmp(&part_key("u", b)), a.cmp(&b));
        }
    }
}
