//! Segment record format: pure encode/decode, no I/O (sans-IO; never imports glommio or heed).
//!
//! A segment file is a sequence of records, each starting on a 4 KiB boundary:
//!
//! ```text
//! offset  size      field
//! 0       4         magic b"GRBK"
//! 4       2         format version (1), little-endian
//! 6       2         flags (0)
//! 8       4         data length in bytes (≤ RECORD_DATA_MAX)
//! 12      4         chunk count = ceil(data length / 64 KiB)
//! 16      32        blake3 hash of the data (the block's name)
//! 48      4 × n     crc32c of each 64 KiB chunk of the data
//! 48+4n   4         crc32c of all header bytes before it
//! 52+4n   len       the data
//! …       pad       zeros up to the next 4 KiB boundary
//! ```
//!
//! Every field a reader needs is in the header, so the segment files alone can rebuild the
//! index. Decoding never panics on arbitrary bytes: every failure is a [`RecordError`].

use crate::meta::types::BlockHash;

pub const MAGIC: [u8; 4] = *b"GRBK";
pub const VERSION: u16 = 1;
/// Records start and end on this boundary (O_DIRECT alignment).
pub const ALIGN: usize = 4096;
/// Data is checksummed per chunk of this size, so a range read verifies only what it reads.
pub const CHUNK: usize = 64 * 1024;
/// Largest data length a record may carry (`BLOCK_BYTES_MAX`).
pub const RECORD_DATA_MAX: usize = crate::constants::BLOCK_BYTES_MAX as usize;
/// Fixed part of the header (before the chunk checksums).
pub const HEADER_FIXED: usize = 48;
/// Enough bytes to hold any header.
pub const HEADER_MAX: usize = HEADER_FIXED + 4 * (RECORD_DATA_MAX / CHUNK) + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The buffer ends before the header (or record) does; `needed` bytes would be enough
    /// to go on. At a segment's tail this is a torn write.
    Short {
        needed: usize,
    },
    BadMagic,
    BadVersion(u16),
    BadLength(u32),
    BadHeaderChecksum,
    BadChunkChecksum {
        chunk: usize,
    },
    BadHash,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Short { needed } => write!(f, "record truncated (need {needed} bytes)"),
            RecordError::BadMagic => write!(f, "bad record magic"),
            RecordError::BadVersion(v) => write!(f, "unknown record format version {v}"),
            RecordError::BadLength(l) => write!(f, "bad record length {l}"),
            RecordError::BadHeaderChecksum => write!(f, "record header checksum mismatch"),
            RecordError::BadChunkChecksum { chunk } => {
                write!(f, "checksum mismatch in data chunk {chunk}")
            }
            RecordError::BadHash => write!(f, "block data does not match its blake3 hash"),
        }
    }
}

impl std::error::Error for RecordError {}

/// A decoded, checksum-verified record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub hash: BlockHash,
    pub data_len: u32,
    pub chunk_crcs: Vec<u32>,
}

pub fn chunk_count(data_len: usize) -> usize {
    data_len.div_ceil(CHUNK)
}

pub fn header_len(data_len: usize) -> usize {
    HEADER_FIXED + 4 * chunk_count(data_len) + 4
}

pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Bytes a record of `data_len` bytes takes in a segment, padding included.
pub fn record_len(data_len: usize) -> usize {
    align_up(header_len(data_len) + data_len)
}

impl Header {
    pub fn header_len(&self) -> usize {
        header_len(self.data_len as usize)
    }
    pub fn record_len(&self) -> usize {
        record_len(self.data_len as usize)
    }
    /// Verify chunk `index` of the data (the whole chunk, `CHUNK` bytes except the last).
    pub fn verify_chunk(&self, index: usize, bytes: &[u8]) -> Result<(), RecordError> {
        let expected = self
            .chunk_crcs
            .get(index)
            .ok_or(RecordError::BadChunkChecksum { chunk: index })?;
        if crc32c(bytes) != *expected {
            return Err(RecordError::BadChunkChecksum { chunk: index });
        }
        Ok(())
    }
    /// Verify the whole data: every chunk checksum, then the blake3 hash.
    pub fn verify_data(&self, data: &[u8]) -> Result<(), RecordError> {
        if data.len() != self.data_len as usize {
            return Err(RecordError::Short {
                needed: self.data_len as usize,
            });
        }
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            self.verify_chunk(i, chunk)?;
        }
        if BlockHash::of(data) != self.hash {
            return Err(RecordError::BadHash);
        }
        Ok(())
    }
}

/// The chunks that cover data bytes `[offset, offset + len)`: (first chunk index, byte
/// range of data to read so that whole chunks are read).
pub fn chunk_span(data_len: u32, offset: u32, len: u32) -> Option<(usize, std::ops::Range<usize>)> {
    let end = offset.checked_add(len)?;
    if end > data_len {
        return None;
    }
    if len == 0 {
        return Some((0, 0..0));
    }
    let first = offset as usize / CHUNK;
    let last = (end as usize - 1) / CHUNK;
    let start = first * CHUNK;
    let stop = ((last + 1) * CHUNK).min(data_len as usize);
    Some((first, start..stop))
}

/// Encode a record for `data` into `out`, which must hold `record_len(data.len())` bytes;
/// returns the record length. Padding is zeroed.
pub fn encode_into(hash: &BlockHash, data: &[u8], out: &mut [u8]) -> usize {
    assert!(
        data.len() <= RECORD_DATA_MAX,
        "block too large for a record"
    );
    let hl = header_len(data.len());
    let rl = record_len(data.len());
    assert!(out.len() >= rl, "output buffer too small for record");
    // One pass over the data: each chunk is copied, then checksummed while it is still in
    // the cache (two passes over a 1 MiB block read it from memory twice).
    let (header, body) = out.split_at_mut(hl);
    for (i, (chunk, dst)) in data.chunks(CHUNK).zip(body.chunks_mut(CHUNK)).enumerate() {
        dst[..chunk.len()].copy_from_slice(chunk);
        put_chunk_crc(header, i, crc32c(chunk));
    }
    finish_header(header, hash, data.len());
    out[hl + data.len()..rl].fill(0);
    rl
}

fn put_chunk_crc(header: &mut [u8], index: usize, crc: u32) {
    header[HEADER_FIXED + 4 * index..HEADER_FIXED + 4 * index + 4]
        .copy_from_slice(&crc.to_le_bytes());
}

/// The header's fixed fields and its own checksum (the chunk checksums are in place).
fn finish_header(header: &mut [u8], hash: &BlockHash, data_len: usize) {
    let hl = header_len(data_len);
    header[0..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&VERSION.to_le_bytes());
    header[6..8].copy_from_slice(&0u16.to_le_bytes());
    header[8..12].copy_from_slice(&(data_len as u32).to_le_bytes());
    header[12..16].copy_from_slice(&(chunk_count(data_len) as u32).to_le_bytes());
    header[16..48].copy_from_slice(&hash.0);
    let hcrc = crc32c(&header[..hl - 4]);
    header[hl - 4..hl].copy_from_slice(&hcrc.to_le_bytes());
}

/// Seal a record whose data is already in place: `rec[header_len(data_len)..]` holds the
/// `data_len` data bytes. Writes the header (chunk checksums computed over the data where it
/// lies) and zeroes the padding; returns the record length. `rec` must hold
/// `record_len(data_len)` bytes. The same bytes as [`encode_into`] produces, without the copy.
pub fn seal_in_place(hash: &BlockHash, data_len: usize, rec: &mut [u8]) -> usize {
    assert!(data_len <= RECORD_DATA_MAX, "block too large for a record");
    let hl = header_len(data_len);
    let rl = record_len(data_len);
    assert!(rec.len() >= rl, "buffer too small for record");
    let (header, body) = rec.split_at_mut(hl);
    for (i, chunk) in body[..data_len].chunks(CHUNK).enumerate() {
        put_chunk_crc(header, i, crc32c(chunk));
    }
    finish_header(header, hash, data_len);
    body[data_len..rl - hl].fill(0);
    rl
}

/// Encode a record into a fresh vector (tests and tools).
pub fn encode(hash: &BlockHash, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; record_len(data.len())];
    encode_into(hash, data, &mut v);
    v
}

/// CRC-32C (Castagnoli, as iSCSI and ext4 use it).
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decode and verify a header from the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<Header, RecordError> {
    if buf.len() < HEADER_FIXED {
        return Err(RecordError::Short {
            needed: HEADER_FIXED,
        });
    }
    if buf[0..4] != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    if version != VERSION {
        return Err(RecordError::BadVersion(version));
    }
    let data_len = u32_at(buf, 8);
    let n = u32_at(buf, 12);
    if data_len as usize > RECORD_DATA_MAX || n as usize != chunk_count(data_len as usize) {
        return Err(RecordError::BadLength(data_len));
    }
    let hl = header_len(data_len as usize);
    if buf.len() < hl {
        return Err(RecordError::Short { needed: hl });
    }
    if crc32c(&buf[..hl - 4]) != u32_at(buf, hl - 4) {
        return Err(RecordError::BadHeaderChecksum);
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&buf[16..48]);
    let chunk_crcs = (0..n as usize)
        .map(|i| u32_at(buf, HEADER_FIXED + 4 * i))
        .collect();
    Ok(Header {
        hash: BlockHash(hash),
        data_len,
        chunk_crcs,
    })
}

/// Decode and fully verify the record at the start of `buf` (header, every chunk, blake3).
/// Returns the header and the data slice.
pub fn decode(buf: &[u8]) -> Result<(Header, &[u8]), RecordError> {
    let h = decode_header(buf)?;
    let hl = h.header_len();
    let end = hl + h.data_len as usize;
    if buf.len() < end {
        return Err(RecordError::Short { needed: end });
    }
    let data = &buf[hl..end];
    h.verify_data(data)?;
    Ok((h, data))
}

/// Scan a segment image from its start: the verified records in order (offset, header) and
/// the end of the valid prefix. Everything from `valid_end` on is a torn or corrupt tail.
/// (Recovery does the same over the file, reading record by record.)
pub fn scan(buf: &[u8]) -> (Vec<(usize, Header)>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match decode(&buf[pos..]) {
            Ok((h, _)) => {
                let rl = h.record_len();
                if pos + rl > buf.len() {
                    break;
                }
                out.push((pos, h));
                pos += rl;
            }
            Err(_) => break,
        }
    }
    (out, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    proptest! {
        #[test]
        fn sealing_in_place_gives_the_encoded_record(len in 0usize..300_000, seed: u8) {
            let data = sample(len, seed);
            let hash = BlockHash::of(&data);
            let mut rec = vec![0xAAu8; record_len(len)];
            rec[header_len(len)..header_len(len) + len].copy_from_slice(&data);
            prop_assert_eq!(seal_in_place(&hash, len, &mut rec), record_len(len));
            prop_assert!(rec == encode(&hash, &data));
        }
    }

    #[test]
    fn scan_every_truncation() {
        let recs: Vec<Vec<u8>> = [10usize, 5000, 9000]
            .iter()
            .enumerate()
            .map(|(i, &l)| sample(l, i as u8))
            .collect();
        let mut seg = Vec::new();
        let mut ends = vec![0];
        for d in &recs {
            seg.extend(encode(&BlockHash::of(d), d));
            ends.push(seg.len());
        }
        for cut in 0..=seg.len() {
            let (found, end) = scan(&seg[..cut]);
            let complete = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(found.len(), complete, "cut {cut}");
            assert_eq!(end, ends[complete]);
            for (i, (off, h)) in found.iter().enumerate() {
                assert_eq!(*off, ends[i]);
                assert_eq!(h.hash, BlockHash::of(&recs[i]));
            }
        }
    }

    #[test]
    fn round_trip_sizes() {
        for len in [
            0,
            1,
            100,
            4096 - 52,
            4096,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            1 << 20,
        ] {
            let data = sample(len, 3);
            let hash = BlockHash::of(&data);
            let rec = encode(&hash, &data);
            assert_eq!(rec.len() % ALIGN, 0);
            assert_eq!(rec.len(), record_len(len));
            let (h, d) = decode(&rec).unwrap();
            assert_eq!(h.hash, hash);
            assert_eq!(d, &data[..]);
        }
    }

    #[test]
    fn corruption_detected() {
        let data = sample(3 * CHUNK + 10, 9);
        let hash = BlockHash::of(&data);
        let rec = encode(&hash, &data);
        let hl = header_len(data.len());
        for pos in [
            0,
            5,
            9,
            20,
            50,
            hl - 1,
            hl,
            hl + CHUNK + 7,
            hl + data.len() - 1,
        ] {
            let mut bad = rec.clone();
            bad[pos] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {pos} not detected");
        }
        // Torn: every prefix shorter than header + data fails.
        for cut in [0, 10, hl - 1, hl, hl + data.len() - 1] {
            assert!(matches!(
                decode(&rec[..cut]),
                Err(RecordError::Short { .. })
            ));
        }
    }

    #[test]
    fn wrong_hash_detected() {
        let data = sample(1000, 1);
        let rec = encode(&BlockHash([0; 32]), &data);
        assert_eq!(decode(&rec).unwrap_err(), RecordError::BadHash);
    }

    #[test]
    fn spans() {
        let l = (3 * CHUNK + 5) as u32;
        assert_eq!(chunk_span(l, 0, 1), Some((0, 0..CHUNK)));
        assert_eq!(chunk_span(l, CHUNK as u32, 1), Some((1, CHUNK..2 * CHUNK)));
        assert_eq!(chunk_span(l, 10, CHUNK as u32), Some((0, 0..2 * CHUNK)));
        assert_eq!(chunk_span(l, l - 1, 1), Some((3, 3 * CHUNK..3 * CHUNK + 5)));
        assert_eq!(chunk_span(l, l, 1), None);
        assert_eq!(chunk_span(l, u32::MAX, 2), None);
    }

    proptest! {
        #[test]
        fn prop_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300_000)) {
            let hash = BlockHash::of(&data);
            let rec = encode(&hash, &data);
            let (h, d) = decode(&rec).unwrap();
            prop_assert_eq!(h.hash, hash);
            prop_assert_eq!(d, &data[..]);
            // Any span reads verifiable whole chunks.
            if !data.is_empty() {
                let off = (data.len() / 3) as u32;
                let len = (data.len() as u32 - off).min(100_000);
                let (first, r) = chunk_span(h.data_len, off, len).unwrap();
                let hl = h.header_len();
                for (i, c) in rec[hl + r.start..hl + r.end].chunks(CHUNK).enumerate() {
                    prop_assert!(h.verify_chunk(first + i, c).is_ok());
                }
            }
        }

        #[test]
        fn prop_garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let _ = decode(&buf);
            let _ = decode_header(&buf);
        }

        #[test]
        fn prop_valid_header_then_garbage(len in 0usize..200_000, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let data = sample(len, 7);
            let orig = encode(&BlockHash::of(&data), &data);
            let mut rec = orig.clone();
            for (pos, x) in flips {
                let p = pos % rec.len();
                rec[p] ^= x;
            }
            let meaningful = header_len(len) + len;
            let changed = rec[..meaningful] != orig[..meaningful];
            let r = decode(&rec);
            if changed {
                prop_assert!(r.is_err());
            }
        }
    }
}
