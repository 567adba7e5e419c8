//! Fixed binary encodings of the storage engine's own LMDB values (block index entries,
//! segment accounting, the recovery checkpoint, GC queue keys). Pure: no I/O.

use crate::meta::types::BlockHash;

/// Where a block's record lives, and its reference count. One row per block hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEntry {
    pub segment: u32,
    /// Byte offset of the record (4 KiB aligned) in its segment.
    pub offset: u64,
    pub data_len: u32,
    pub record_len: u32,
    pub refs: u64,
    /// Wall-clock ms when `refs` last reached 0 (0 while referenced).
    pub zero_since_ms: u64,
    /// Marked bad by a read or the scrub: never served, repaired by a later put.
    pub bad: bool,
}

pub const BLOCK_ENTRY_LEN: usize = 37;

impl BlockEntry {
    pub fn encode(&self) -> [u8; BLOCK_ENTRY_LEN] {
        let mut b = [0u8; BLOCK_ENTRY_LEN];
        b[0..4].copy_from_slice(&self.segment.to_le_bytes());
        b[4..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..16].copy_from_slice(&self.data_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.record_len.to_le_bytes());
        b[20..28].copy_from_slice(&self.refs.to_le_bytes());
        b[28..36].copy_from_slice(&self.zero_since_ms.to_le_bytes());
        b[36] = self.bad as u8;
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != BLOCK_ENTRY_LEN || b[36] > 1 {
            return None;
        }
        Some(Self {
            segment: u32::from_le_bytes(b[0..4].try_into().ok()?),
            offset: u64::from_le_bytes(b[4..12].try_into().ok()?),
            data_len: u32::from_le_bytes(b[12..16].try_into().ok()?),
            record_len: u32::from_le_bytes(b[16..20].try_into().ok()?),
            refs: u64::from_le_bytes(b[20..28].try_into().ok()?),
            zero_since_ms: u64::from_le_bytes(b[28..36].try_into().ok()?),
            bad: b[36] == 1,
        })
    }
}

/// Space accounting of one segment: bytes of records written, bytes of records still indexed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentInfo {
    pub total_bytes: u64,
    pub live_bytes: u64,
}

impl SegmentInfo {
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.total_bytes.to_le_bytes());
        b[8..16].copy_from_slice(&self.live_bytes.to_le_bytes());
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 16 {
            return None;
        }
        Some(Self {
            total_bytes: u64::from_le_bytes(b[0..8].try_into().ok()?),
            live_bytes: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }
}

/// Segment table key: id big-endian, so segments list in id order.
pub fn segment_key(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

pub fn segment_id(key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(key.try_into().ok()?))
}

/// The recovery checkpoint: every record before (segment, offset) is indexed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    pub segment: u32,
    pub offset: u64,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.segment.to_le_bytes());
        b[4..12].copy_from_slice(&self.offset.to_le_bytes());
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 12 {
            return None;
        }
        Some(Self {
            segment: u32::from_le_bytes(b[0..4].try_into().ok()?),
            offset: u64::from_le_bytes(b[4..12].try_into().ok()?),
        })
    }
}

/// GC queue key: time the block's count reached zero (big-endian, so oldest first), hash.
pub fn gc_key(zero_since_ms: u64, hash: &BlockHash) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[0..8].copy_from_slice(&zero_since_ms.to_be_bytes());
    k[8..40].copy_from_slice(&hash.0);
    k
}

pub fn decode_gc_key(k: &[u8]) -> Option<(u64, BlockHash)> {
    if k.len() != 40 {
        return None;
    }
    let t = u64::from_be_bytes(k[0..8].try_into().ok()?);
    Some((t, BlockHash(k[8..40].try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entry_round_trip(segment: u32, offset: u64, data_len: u32, record_len: u32, refs: u64, z: u64, bad: bool) {
            let e = BlockEntry { segment, offset, data_len, record_len, refs, zero_since_ms: z, bad };
            prop_assert_eq!(BlockEntry::decode(&e.encode()), Some(e));
        }

        #[test]
        fn gc_keys_sort_by_time(a: u64, b: u64, h: [u8; 32]) {
            let h = BlockHash(h);
            prop_assert_eq!(gc_key(a, &h).cmp(&gc_key(b, &h)), a.cmp(&b));
            prop_assert_eq!(decode_gc_key(&gc_key(a, &h)), Some((a, h)));
        }

        #[test]
        fn segment_keys_sort(a: u32, b: u32) {
            prop_assert_eq!(segment_key(a).cmp(&segment_key(b)), a.cmp(&b));
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BlockEntry::decode(&b);
            let _ = SegmentInfo::decode(&b);
            let _ = Checkpoint::decode(&b);
            let _ = decode_gc_key(&b);
        }
    }
}
