//! UploadPartCopy: a part made of (a range of) an existing object. The bytes are read
//! from the source's blocks and cut into new blocks as an upload's would be (a block whose
//! content already exists only gains a reference), hashed for the part's ETag and for the
//! upload's checksum algorithm.

use std::rc::Rc;

use super::multipart::fetch_upload;
use super::objects::{
    check_copy_source_conditions, fetch_object, parse_copy_source, release_blocks,
};
use super::router::{check, lookup_bucket, Caller, Need};
use crate::api::Gateway;
use crate::constants::MULTIPART_PART_COUNT_MAX;
use crate::http::RequestHead;
use crate::meta::types::{
    BlockHash, BlockRef, BucketRow, ChecksumAlgorithm, Holder, ObjectData, PartRow,
};
use crate::model::ops::{BlockData, DataRequest};
use crate::s3::checksum::{self, Digests, Hashers};
use crate::s3::error::S3Error;
use crate::s3::xml;

/// S3's largest part.
const PART_BYTES_MAX: u64 = 5 << 30;

/// `x-amz-copy-source-range: bytes=first-last` against a source of `size` bytes:
/// `[first, last + 1)`. Bad syntax is `InvalidArgument`; a range outside the source is
/// `InvalidRange`, as S3 answers.
pub fn parse_copy_range(value: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let bad = || {
        S3Error::InvalidArgument(
            "the x-amz-copy-source-range value must be of the form bytes=first-last where \
             first and last are the zero-based offsets of the first and last bytes to copy"
                .into(),
        )
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last {
        return Err(bad());
    }
    if last >= size {
        return Err(S3Error::InvalidRange);
    }
    Ok((first, last + 1))
}

/// The bytes `[start, end)` of `data`, stored again as blocks of `block_size`. `blocks`
/// receives each block once it is written (on error, the caller releases those).
async fn copy_range(
    shard: &Rc<Gateway>,
    data: &ObjectData,
    start: u64,
    end: u64,
    algorithm: Option<ChecksumAlgorithm>,
    blocks: &mut NewBlocks,
) -> Result<Digests, S3Error> {
    let block_size = shard.config.block_size as usize;
    let mut hashers = Hashers::new(false, algorithm);
    match data {
        ObjectData::Inline(bytes) => {
            let piece = &bytes[start as usize..end as usize];
            hashers.update(piece);
            for chunk in piece.chunks(block_size) {
                write_block(shard, blocks, chunk.to_vec()).await?;
            }
        }
        ObjectData::Blocks(source) => {
            let mut buffer: Vec<u8> = Vec::with_capacity(block_size.min((end - start) as usize));
            let mut block_start = 0u64;
            for block in source {
                let block_end = block_start + u64::from(block.bytes);
                let mut from = start.max(block_start);
                let to = end.min(block_end);
                while from < to {
                    let want = (block_size - buffer.len()) as u64;
                    let len = (to - from).min(want);
                    let piece = shard
                        .call(DataRequest::ReadBlock {
                            hash: block.hash,
                            offset: (from - block_start) as u32,
                            len: len as u32,
                        })
                        .await
                        .block()?;
                    hashers.update(&piece);
                    buffer.extend_from_slice(&piece);
                    from += len;
                    if buffer.len() == block_size {
                        write_block(shard, blocks, std::mem::take(&mut buffer)).await?;
                    }
                    glommio::yield_if_needed().await;
                }
                block_start = block_end;
                if block_start >= end {
                    break;
                }
            }
            if !buffer.is_empty() {
                write_block(shard, blocks, buffer).await?;
            }
        }
    }
    Ok(hashers.finish())
}

/// The blocks a part copy writes, all held by the part's upload.
struct NewBlocks {
    holder: Holder,
    blocks: Vec<BlockRef>,
}

async fn write_block(
    shard: &Rc<Gateway>,
    out: &mut NewBlocks,
    data: Vec<u8>,
) -> Result<(), S3Error> {
    let hash = BlockHash::of(&data);
    let bytes = data.len() as u32;
    shard
        .call(DataRequest::PutBlock {
            hash,
            data: BlockData::Bytes(data),
            holder: out.holder,
        })
        .await
        .done()
        .map_err(S3Error::from)?;
    out.blocks.push(BlockRef { hash, bytes });
    Ok(())
}

pub async fn upload_part_copy(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    caller: &Caller,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Response, S3Error> {
    let number: u32 = head
        .query_param("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MULTIPART_PART_COUNT_MAX).contains(n))
        .ok_or_else(|| S3Error::InvalidArgument("partNumber must be 1 to 10000".into()))?;
    let upload = fetch_upload(shard, bucket, key, upload_id).await?;
    let (source_bucket, source_key) =
        parse_copy_source(head.header("x-amz-copy-source").unwrap_or(""))?;
    let source_bucket = lookup_bucket(shard, &source_bucket)?;
    check(caller, &source_bucket, Need::Read)?;
    let source = fetch_object(shard, &source_bucket, &source_key).await?;
    check_copy_source_conditions(head, &source)?;
    let (start, end) = match head.header("x-amz-copy-source-range") {
        Some(value) => parse_copy_range(value, source.bytes)?,
        None => (0, source.bytes),
    };
    if end - start > PART_BYTES_MAX {
        return Err(S3Error::InvalidRequest(
            "the specified copy source is larger than the maximum allowable size for a copy \
             source: 5368709120"
                .into(),
        ));
    }
    let mut blocks = NewBlocks {
        holder: Holder::random(),
        blocks: Vec::new(),
    };
    let copied = copy_range(
        shard,
        &source.data,
        start,
        end,
        upload.checksum_algorithm,
        &mut blocks,
    )
    .await;
    let digests = match copied {
        Ok(d) => d,
        Err(e) => {
            release_blocks(shard, blocks.holder, &blocks.blocks).await;
            return Err(e);
        }
    };
    let etag = checksum::etag_single(digests.md5);
    let stamp = shard.clock.stamp();
    let now = stamp.time_ms;
    let row = PartRow {
        upload_id: upload_id.into(),
        number,
        stamp,
        holder: blocks.holder,
        bytes: end - start,
        etag: etag.clone(),
        last_modified_ms: now,
        checksum: digests.checksum.clone(),
        blocks: blocks.blocks,
    };
    super::multipart::store_part(shard, bucket, key, row).await?;
    let checksums: Vec<(String, String)> = digests
        .checksum
        .iter()
        .map(|c| {
            (
                checksum::xml_element(c.algorithm).to_string(),
                c.base64.clone(),
            )
        })
        .collect();
    Ok(Response::xml(
        200,
        xml::copy_part_xml(&etag, now, &checksums),
    ))
}

use crate::api::conn::Response;

#[cfg(test)]
mod tests {
    use super::parse_copy_range;

    #[test]
    fn copy_ranges() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(parse_copy_range("bytes=99-99", 100).unwrap(), (99, 100));
        for bad in [
            "bytes=5-",
            "bytes=-5",
            "0-9",
            "bytes=9-1",
            "bytes=a-b",
            "bytes=0-1,3-4",
        ] {
            assert_eq!(
                parse_copy_range(bad, 100).unwrap_err().code(),
                "InvalidArgument",
                "{bad}"
            );
        }
        assert_eq!(
            parse_copy_range("bytes=0-100", 100).unwrap_err().code(),
            "InvalidRange"
        );
        assert_eq!(
            parse_copy_range("bytes=100-100", 100).unwrap_err().code(),
            "InvalidRange"
        );
    }
}
