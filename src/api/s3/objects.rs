//! Object operations: put (hash each byte once while it passes, cut into blocks, send each
//! block to the shard owning its hash), get (streamed block by block, ranges, part numbers,
//! conditional headers), head, delete, delete-many, copy.

use std::io;
use std::rc::Rc;

use super::router::{self, check, prepare_body, Caller, Need};
use crate::api::conn::{Body, BodySink, ConnIo, Response, ResponseBody};
use crate::api::md5_lanes::Md5Stream;
use crate::api::Gateway;
use crate::http::{self, RequestHead};
use crate::meta::types::{
    BlockHash, BlockRef, BucketRow, Checksum, ChecksumAlgorithm, Holder, ObjectData, ObjectRow,
    PartSummary, VersionId,
};
use crate::model::ops::{BlockData, DataRequest, WriteCondition};
pub use crate::model::{release_blocks, release_dropped, release_object};
use crate::s3::checksum::{self, Hashers};
use crate::s3::conditions::{Conditions, Outcome};
use crate::s3::error::S3Error;
use crate::s3::sigv4::PayloadMode;
use crate::s3::xml;
use crate::storage::BlockBuf;

/// Blocks of one upload being written at once (per request): enough to keep both the
/// hashing and the owning shards busy, small enough to bound memory (this many blocks).
const BLOCK_WRITES_IN_FLIGHT_MAX: usize = crate::constants::UPLOAD_BLOCKS_BUFFERED as usize - 1;
/// How long an upload waits for room under `--max-buffered-bytes` before SlowDown: short,
/// so that uploads waiting behind stalled ones (until `--min-body-rate` ends those) do not
/// pile up; clients retry a SlowDown with backoff.
const UPLOAD_MEMORY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest piece of a block read and sent at once on GET (a default block: one read of
/// the record, header included); the first is smaller so the first byte leaves early.
/// Pieces of 256 KiB each read the record header again, or read from the block's start:
/// 1.3 MiB in 6 reads per 1 MiB block.
const READ_PIECE_BYTES: u32 = 1 << 20;
const FIRST_READ_PIECE_BYTES: u32 = 64 * 1024;
/// S3's limit on user metadata (`x-amz-meta-*` names and values).
const USER_METADATA_BYTES_MAX: usize = 2048;

/// Bytes of a body read into a vector before it goes into block buffers: an inline
/// object's are fewer, and the copy of these bytes into the first block is small.
const BLOCK_SINK_FROM: usize = 64 * 1024;

/// An upload's bytes on their way into blocks: the next block's record buffer, and what a
/// read gave past its end (a chunked body's decoded pieces can run over), which begins the
/// block after.
struct BlockSink {
    block: BlockBuf,
    overflow: Vec<u8>,
    block_size: usize,
    /// The node's buffer pool the blocks come from.
    pool: Option<std::sync::Arc<crate::storage::BufPool>>,
}

impl BlockSink {
    fn new(block_size: usize, pool: Option<&std::sync::Arc<crate::storage::BufPool>>) -> BlockSink {
        BlockSink {
            block: BlockBuf::with_capacity_in(pool, block_size),
            overflow: Vec::new(),
            block_size,
            pool: pool.cloned(),
        }
    }

    /// The next block to send, if one is ready: a full one while more bytes may come; once
    /// the body `ended`, whatever is left (then None: the buffer after the last block has no
    /// capacity, which is not "full", only empty).
    fn ready(&mut self, ended: bool) -> Option<BlockBuf> {
        let full = self.block.remaining() == 0;
        if (!ended && full) || (ended && !self.block.is_empty()) {
            Some(self.next_block(!ended))
        } else {
            None
        }
    }

    /// Takes the block filled so far; the next one (if `more` bytes may come, or some ran
    /// over) starts with what ran over.
    fn next_block(&mut self, more: bool) -> BlockBuf {
        let next = if more || !self.overflow.is_empty() {
            BlockBuf::with_capacity_in(self.pool.as_ref(), self.block_size)
        } else {
            BlockBuf::default()
        };
        let full = std::mem::replace(&mut self.block, next);
        let over = std::mem::take(&mut self.overflow);
        BodySink::extend_from_slice(self, &over);
        full
    }
}

impl BodySink for BlockSink {
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        let fits = bytes.len().min(self.block.remaining());
        self.block.extend_from_slice(&bytes[..fits]);
        self.overflow.extend_from_slice(&bytes[fits..]);
    }
    fn as_vec(&mut self) -> Option<&mut Vec<u8>> {
        None
    }
    fn room(&mut self, max: usize) -> &mut [u8] {
        self.block.spare_mut(max)
    }
    fn filled(&mut self, n: usize) {
        self.block.commit(n);
    }
}

/// What an upload's body became.
pub struct Ingested {
    pub bytes: u64,
    pub md5: [u8; 16],
    pub checksum: Option<Checksum>,
    pub data: ObjectData,
}

/// The checksum a request declares: algorithm, and the value if it came as a header
/// (otherwise it comes in a trailer).
fn declared_checksum(
    head: &RequestHead,
) -> Result<Option<(ChecksumAlgorithm, Option<String>)>, S3Error> {
    for (name, value) in &head.headers {
        if let Some(algorithm) = checksum::algorithm_from_header_name(name) {
            return Ok(Some((algorithm, Some(value.clone()))));
        }
    }
    if let Some(trailer) = head.header("x-amz-trailer") {
        let algorithm = checksum::algorithm_from_header_name(&trailer.trim().to_ascii_lowercase())
            .ok_or_else(|| S3Error::InvalidRequest(format!("unsupported trailer {trailer}")))?;
        return Ok(Some((algorithm, None)));
    }
    if let Some(name) = head.header("x-amz-sdk-checksum-algorithm") {
        let algorithm = checksum::parse_algorithm(name)
            .ok_or_else(|| S3Error::InvalidRequest(format!("unsupported checksum {name}")))?;
        return Ok(Some((algorithm, None)));
    }
    Ok(None)
}

/// An upload's blocks on their way: named by blake3 here, MD5-hashed in the shard's lanes,
/// then stored by the shards that own them, at most `BLOCK_WRITES_IN_FLIGHT_MAX` at once.
struct BlockWriter {
    md5: Md5Stream,
    blocks: Vec<BlockRef>,
    /// What holds the references the upload's blocks get.
    holder: Holder,
    in_flight: std::collections::VecDeque<glommio::task::JoinHandle<Result<(), S3Error>>>,
    /// The upload's share of `--max-buffered-bytes`, taken once its body needs blocks and
    /// held until its last block is written.
    room: Option<glommio::sync::StaticPermit>,
}

impl BlockWriter {
    /// Sends the upload's next block (waiting first if too many are in flight). It is
    /// named and sealed here, while its bytes are still in this core's cache; its shard
    /// writes the buffer as it is.
    async fn send(&mut self, shard: &Rc<Gateway>, mut data: BlockBuf) -> Result<(), S3Error> {
        let hash = BlockHash::of(&data);
        data.seal(&hash);
        self.blocks.push(BlockRef {
            hash,
            bytes: data.len() as u32,
        });
        if self.in_flight.len() >= BLOCK_WRITES_IN_FLIGHT_MAX {
            let first = self.in_flight.pop_front().expect("non-empty");
            first.await.expect("block writes are not cancelled")?;
        }
        let hashed = shard.md5.submit(&self.md5, data).await;
        let (shard, holder) = (Rc::clone(shard), self.holder);
        let task = glommio::spawn_local(async move {
            let data = hashed.done().await;
            shard
                .call(DataRequest::PutBlock {
                    hash,
                    data: BlockData::Record(data),
                    holder,
                })
                .await
                .done()
                .map_err(S3Error::from)
        })
        .detach();
        self.in_flight.push_back(task);
        Ok(())
    }

    /// Waits for every block sent; the first failure. Gives the upload's room back.
    async fn finish(&mut self) -> Result<(), S3Error> {
        let mut result = Ok(());
        for task in self.in_flight.drain(..) {
            let r = task.await.expect("block writes are not cancelled");
            if result.is_ok() {
                result = r;
            }
        }
        self.room = None;
        result
    }
}

/// The payload length an upload declares in `x-amz-decoded-content-length`, once its
/// declared lengths are checked against S3's 5 GiB limit (of a single PUT, and of a part):
/// refused before any of the body is read, as S3 does (the connection then closes, its
/// body unread). A plain body declares its length in `Content-Length`.
fn declared_length(head: &RequestHead, caller: &Caller) -> Result<Option<u64>, S3Error> {
    let single_put_max = crate::constants::OBJECT_BYTES_MAX_SINGLE_PUT;
    let framed_length = head
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if !caller.payload().is_streaming() && framed_length.is_some_and(|n| n > single_put_max) {
        return Err(S3Error::EntityTooLarge);
    }
    let decoded_length = match head.header("x-amz-decoded-content-length") {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| S3Error::InvalidArgument("bad x-amz-decoded-content-length".into()))?,
        ),
        None => None,
    };
    if decoded_length.is_some_and(|n| n > single_put_max) {
        return Err(S3Error::EntityTooLarge);
    }
    Ok(decoded_length)
}

/// Where an upload's body goes.
#[derive(Clone, Copy, Debug)]
pub struct Destination {
    /// Holds the references of the body's blocks: the object version, or the part upload.
    pub holder: Holder,
    /// The body may stay in the row when it is under the inline threshold.
    pub inline_ok: bool,
}

/// Reads an upload's body: hashes it (MD5 for the ETag, SHA-256 when signed, the declared
/// checksum), stores it in blocks held by `to.holder` (or keeps it for inline storage when
/// it is small and `to.inline_ok`), and checks every digest the client declared.
pub async fn ingest(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    to: Destination,
) -> Result<Ingested, S3Error> {
    let inline_ok = to.inline_ok;
    prepare_body(body, caller);
    let expected_length = declared_length(head, caller)?;
    let content_md5 = head
        .header("content-md5")
        .map(checksum::parse_content_md5)
        .transpose()?;
    let declared = declared_checksum(head)?;
    let signed_sha = match caller.payload() {
        PayloadMode::Sha256(expected) => Some(*expected),
        _ => None,
    };
    // MD5 goes block by block through the shard's SIMD lanes (`md5_lanes`), shared with
    // the other uploads; the other digests are computed as the bytes come.
    let mut hashers =
        Hashers::new(signed_sha.is_some(), declared.as_ref().map(|d| d.0)).without_md5();
    let md5 = Md5Stream::new(&shard.md5);
    let inline_threshold = shard.config.inline_threshold as usize;
    let mut writer = BlockWriter {
        md5,
        blocks: Vec::new(),
        holder: to.holder,
        in_flight: Default::default(),
        room: None,
    };
    // The body's first bytes go to a vector: they may be an inline object.
    let mut buffer: Vec<u8> = Vec::with_capacity(inline_threshold.max(BLOCK_SINK_FROM));
    let read = read_body(
        shard,
        body,
        &mut hashers,
        &mut writer,
        &mut buffer,
        inline_ok,
    )
    .await;
    // Even on error, wait for the writes already sent, so that their blocks can be released.
    let finished = writer.finish().await;
    let result = read.and_then(|total| finished.map(|()| total));
    let (md5, blocks) = (writer.md5, writer.blocks);
    let finish = || -> Result<Ingested, S3Error> {
        let total = result?;
        if let Some(expected) = expected_length {
            if expected != total {
                return Err(S3Error::IncompleteBody);
            }
        }
        if blocks.is_empty() {
            // An inline body never went through the lanes.
            md5.update(&buffer);
        }
        let digests = hashers.finish_with_md5(md5.finish());
        if let (Some(expected), Some(actual)) = (signed_sha, digests.sha256) {
            if expected != actual {
                return Err(S3Error::XAmzContentSHA256Mismatch);
            }
        }
        if let Some(expected) = content_md5 {
            if expected != digests.md5 {
                return Err(S3Error::BadDigest(None));
            }
        }
        let checksum = checked_checksum(declared, digests.checksum.clone(), body.trailers())?;
        let data = if blocks.is_empty() {
            ObjectData::Inline(std::mem::take(&mut buffer))
        } else {
            ObjectData::Blocks(blocks.clone())
        };
        Ok(Ingested {
            bytes: total,
            md5: digests.md5,
            checksum,
            data,
        })
    };
    let outcome = finish();
    if outcome.is_err() {
        release_blocks(shard, to.holder, &blocks).await;
    }
    outcome
}

/// The checksum a client declared (in a header, or in a trailer of its aws-chunked body),
/// checked against the one computed.
fn checked_checksum(
    declared: Option<(ChecksumAlgorithm, Option<String>)>,
    computed: Option<Checksum>,
    trailers: &[(String, String)],
) -> Result<Option<Checksum>, S3Error> {
    let Some((algorithm, value)) = declared else {
        return Ok(None);
    };
    let actual = computed.expect("hashers computed the declared checksum");
    let expected = value.or_else(|| {
        let name = checksum::header_name(algorithm);
        trailers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    });
    if let Some(expected) = expected {
        checksum::check_checksum(&actual, &expected)?;
    }
    Ok(Some(actual))
}

/// Reads a body to its end, hashing it as it comes and cutting it into blocks sent to their
/// shards. Its first bytes go to `buffer`; past `BLOCK_SINK_FROM` bytes it is read straight
/// into block record buffers. A body that may stay inline (`inline_ok` and under the
/// threshold) is left in `buffer`. Returns the bytes read.
async fn read_body(
    shard: &Rc<Gateway>,
    body: &mut Body<'_>,
    hashers: &mut Hashers,
    writer: &mut BlockWriter,
    buffer: &mut Vec<u8>,
    inline_ok: bool,
) -> Result<u64, S3Error> {
    let block_size = shard.config.block_size as usize;
    let inline_threshold = shard.config.inline_threshold as usize;
    let mut sink: Option<BlockSink> = None;
    let mut total: u64 = 0;
    loop {
        let n = match sink.as_mut() {
            None => {
                let want = (block_size - buffer.len()).min(256 * 1024);
                let before = buffer.len();
                let n = body.read_into(buffer, want).await?;
                hashers.update(&buffer[before..]);
                n
            }
            Some(s) => {
                let before = s.block.len();
                let n = body
                    .read_into(s, s.block.remaining().min(256 * 1024))
                    .await?;
                hashers.update(&s.block[before..]);
                hashers.update(&s.overflow);
                n
            }
        };
        // Hashing is the CPU-heavy part of a PUT: let the shard's other tasks run.
        glommio::yield_if_needed().await;
        total += n as u64;
        if total > crate::constants::OBJECT_BYTES_MAX_SINGLE_PUT {
            return Err(S3Error::EntityTooLarge);
        }
        let ended = n == 0;
        if sink.is_none() && !ended && buffer.len() >= BLOCK_SINK_FROM.min(block_size) {
            writer.room = Some(reserve_upload_memory(shard, body).await?);
            let mut s = BlockSink::new(block_size, Some(shard.store.buffers()));
            s.extend_from_slice(buffer);
            *buffer = Vec::new();
            sink = Some(s);
        }
        match sink.as_mut() {
            Some(s) => {
                while let Some(block) = s.ready(ended) {
                    writer.send(shard, block).await?;
                }
            }
            None if ended
                && !buffer.is_empty()
                && !(inline_ok && buffer.len() < inline_threshold) =>
            {
                // A small body not kept inline: blocks of exactly its size.
                for piece in buffer.chunks(block_size) {
                    writer.send(shard, BlockBuf::from(piece)).await?;
                }
                buffer.clear();
            }
            None => {}
        }
        if ended {
            return Ok(total);
        }
    }
}

/// Takes room for an upload's blocks in memory out of the shard's share of
/// `--max-buffered-bytes`: as many bytes as its blocks in flight can hold, or its length
/// when that is less. Waits for room while other uploads hold it, at most
/// `UPLOAD_MEMORY_WAIT`; then SlowDown (503), as S3 answers a client to back off.
async fn reserve_upload_memory(
    shard: &Rc<Gateway>,
    body: &Body<'_>,
) -> Result<glommio::sync::StaticPermit, S3Error> {
    let most = crate::constants::UPLOAD_BLOCKS_BUFFERED * shard.config.block_size;
    let bytes = body.length_hint().map_or(most, |n| n.clamp(1, most));
    let budget = Rc::clone(&shard.upload_memory);
    let wait = glommio::timer::timeout(UPLOAD_MEMORY_WAIT, async move {
        Ok(budget.acquire_static_permit(bytes).await)
    });
    match wait.await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(S3Error::SlowDown),
        Err(_) => {
            tracing::warn!(
                shard = shard.id,
                bytes,
                "no room for an upload's blocks within --max-buffered-bytes: SlowDown"
            );
            Err(S3Error::SlowDown)
        }
    }
}

/// Headers of a PUT that are stored and returned with the object.
pub fn stored_headers(head: &RequestHead) -> Result<Vec<(String, String)>, S3Error> {
    let mut out = Vec::new();
    let mut user_bytes = 0;
    for (name, value) in &head.headers {
        let keep = match name.as_str() {
            "content-type"
            | "content-disposition"
            | "content-language"
            | "cache-control"
            | "expires"
            | "x-amz-website-redirect-location" => true,
            "content-encoding" => {
                let rest: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.eq_ignore_ascii_case("aws-chunked") && !p.is_empty())
                    .collect();
                if !rest.is_empty() {
                    out.push((name.clone(), rest.join(", ")));
                }
                false
            }
            n if n.starts_with("x-amz-meta-") => {
                user_bytes += n.len() - "x-amz-meta-".len() + value.len();
                true
            }
            _ => false,
        };
        if keep {
            out.push((name.clone(), value.clone()));
        }
    }
    if user_bytes > USER_METADATA_BYTES_MAX {
        return Err(S3Error::MetadataTooLarge);
    }
    Ok(out)
}

/// The condition of a conditional write: `If-None-Match: *` or `If-Match: <etag>`.
pub fn write_condition(head: &RequestHead) -> Result<Option<WriteCondition>, S3Error> {
    if let Some(v) = head.header("if-none-match") {
        if v.trim() == "*" {
            return Ok(Some(WriteCondition::Absent));
        }
        return Err(S3Error::NotImplemented(
            "If-None-Match other than * on writes".into(),
        ));
    }
    Ok(head
        .header("if-match")
        .map(|v| WriteCondition::EtagMatches(v.trim().to_string())))
}

pub async fn put_object(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let headers = stored_headers(head)?;
    let condition = write_condition(head)?;
    let version = VersionId::random();
    let to = Destination {
        holder: Holder::of_version(version),
        inline_ok: true,
    };
    let ingested = ingest(shard, head, body, caller, to).await?;
    let etag = checksum::etag_single(ingested.md5);
    // Stamped once the body is in: of two PUTs of one key, the later to finish wins.
    let stamp = shard.clock.stamp();
    let now = stamp.time_ms;
    let row = ObjectRow {
        bucket: bucket.id,
        key: key.to_string(),
        version,
        stamp,
        bytes: ingested.bytes,
        etag: etag.clone(),
        last_modified_ms: now,
        headers,
        checksum: ingested.checksum.clone(),
        parts: Vec::new(),
        data: ingested.data,
    };
    let written = row.clone();
    let expiration = expiration_header(shard, bucket, &row);
    match shard
        .call(DataRequest::PutObject { row, condition })
        .await
        .written()
    {
        Ok(done) => release_dropped(shard, &done).await,
        Err(e) => {
            release_object(shard, &written).await;
            return Err(e.into());
        }
    }
    let mut response = Response::new(200).header("ETag", etag);
    if let Some(value) = expiration {
        response = response.header("x-amz-expiration", value);
    }
    if let Some(c) = &ingested.checksum {
        response = response.header(checksum::header_name(c.algorithm), c.base64.clone());
    }
    Ok(response)
}

pub async fn fetch_object(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
) -> Result<ObjectRow, S3Error> {
    shard
        .call(DataRequest::GetObject {
            bucket: bucket.id,
            key: key.to_string(),
        })
        .await
        .object()?
        .ok_or(S3Error::NoSuchKey)
}

/// `Range: bytes=...` against an object of `size` bytes: None for the whole object.
pub fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: S3 sends the whole object
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 {
            return Err(S3Error::InvalidRange);
        }
        (size.saturating_sub(suffix), size)
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Ok(None);
        };
        let end = if last.is_empty() {
            size
        } else {
            let Ok(last) = last.parse::<u64>() else {
                return Ok(None);
            };
            if last < start {
                return Ok(None);
            }
            last.saturating_add(1).min(size)
        };
        if start >= size {
            return Err(S3Error::InvalidRange);
        }
        (start, end)
    };
    Ok(Some(range))
}

/// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, as S3 evaluates them
/// (see `s3::conditions`).
pub fn check_conditions(head: &RequestHead, row: &ObjectRow) -> Result<(), S3Error> {
    let conditions = Conditions {
        if_match: head.header("if-match"),
        if_none_match: head.header("if-none-match"),
        if_modified_since: head.header("if-modified-since"),
        if_unmodified_since: head.header("if-unmodified-since"),
    };
    match conditions.evaluate(&row.etag, row.last_modified_ms) {
        Outcome::Proceed => Ok(()),
        Outcome::NotModified => Err(S3Error::NotModified),
        Outcome::Failed => Err(S3Error::PreconditionFailed),
    }
}

/// The `x-amz-copy-source-if-*` conditions of a copy, against its source: 412 when one
/// fails (a copy has no 304).
pub fn check_copy_source_conditions(head: &RequestHead, source: &ObjectRow) -> Result<(), S3Error> {
    let conditions = Conditions {
        if_match: head.header("x-amz-copy-source-if-match"),
        if_none_match: head.header("x-amz-copy-source-if-none-match"),
        if_modified_since: head.header("x-amz-copy-source-if-modified-since"),
        if_unmodified_since: head.header("x-amz-copy-source-if-unmodified-since"),
    };
    match conditions.evaluate(&source.etag, source.last_modified_ms) {
        Outcome::Proceed => Ok(()),
        Outcome::NotModified | Outcome::Failed => Err(S3Error::PreconditionFailed),
    }
}

/// `x-amz-expiration: expiry-date="<HTTP date>", rule-id="<id>"` when a lifecycle rule of
/// the bucket will expire the object.
pub fn expiration_header(shard: &Gateway, bucket: &BucketRow, row: &ObjectRow) -> Option<String> {
    let day_ms = shard.config.lifecycle_day_secs * 1000;
    let (at, rule) =
        bucket
            .lifecycle
            .as_ref()?
            .object_expiry(&row.key, row.last_modified_ms, day_ms)?;
    Some(format!(
        "expiry-date=\"{}\", rule-id=\"{}\"",
        last_modified(at),
        rule.replace('"', "")
    ))
}

pub fn last_modified(row_ms: u64) -> String {
    http::http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(row_ms))
}

pub async fn get_object(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let row = fetch_object(shard, bucket, key).await?;
    if let Err(e) = check_conditions(head, &row) {
        if e == S3Error::NotModified {
            // S3 sends the validators with a 304.
            return Ok(Response::new(304)
                .header("ETag", row.etag.clone())
                .header("Last-Modified", last_modified(row.last_modified_ms)));
        }
        return Err(e);
    }
    let size = row.bytes;
    let mut status = 200;
    let mut range = (0, size);
    let mut response = Response::new(200);
    if let Some(part) = head.query_param("partNumber") {
        let number: u32 = part
            .parse()
            .map_err(|_| S3Error::InvalidArgument("bad partNumber".into()))?;
        let (start, end) = part_range(&row, number)?;
        range = (start, end);
        status = 206;
        let parts = row.parts.len().max(1);
        response
            .headers
            .push(("x-amz-mp-parts-count".into(), parts.to_string()));
    } else if let Some(value) = head.header("range") {
        if let Some(r) = parse_range(value, size)? {
            range = r;
            status = 206;
        }
    }
    response.status = status;
    if status == 206 {
        let content_range = format!("bytes {}-{}/{}", range.0, range.1.saturating_sub(1), size);
        response
            .headers
            .push(("Content-Range".into(), content_range));
    }
    response.headers.push(("ETag".into(), row.etag.clone()));
    response
        .headers
        .push(("Last-Modified".into(), last_modified(row.last_modified_ms)));
    if let Some(value) = expiration_header(shard, bucket, &row) {
        response.headers.push(("x-amz-expiration".into(), value));
    }
    response
        .headers
        .push(("Accept-Ranges".into(), "bytes".into()));
    if !row.headers.iter().any(|(n, _)| n == "content-type") {
        response
            .headers
            .push(("Content-Type".into(), "binary/octet-stream".into()));
    }
    for (name, value) in &row.headers {
        response.headers.push((name.clone(), value.clone()));
    }
    // With `x-amz-checksum-mode: ENABLED`: the object's checksum for the whole object, the
    // part's for a `partNumber` read of a multipart object; none for a byte range.
    if head
        .header("x-amz-checksum-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"))
    {
        let whole = range == (0, size) && status == 200;
        let part = head
            .query_param("partNumber")
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|n| row.parts.iter().find(|p| p.number == n));
        let shown = match part {
            Some(p) => p.checksum.as_ref(),
            None if whole || row.parts.is_empty() && status == 206 && range == (0, size) => {
                row.checksum.as_ref()
            }
            None => None,
        };
        if let Some(c) = shown {
            response
                .headers
                .push((checksum::header_name(c.algorithm).into(), c.base64.clone()));
            let kind = if c.composite {
                "COMPOSITE"
            } else {
                "FULL_OBJECT"
            };
            response
                .headers
                .push(("x-amz-checksum-type".into(), kind.into()));
        }
    }
    override_headers(head, &mut response);
    response.body = if head.method == "HEAD" {
        ResponseBody::HeadOnly {
            content_length: range.1 - range.0,
        }
    } else {
        ResponseBody::Object(ObjectBody {
            data: row.data,
            start: range.0,
            end: range.1,
            first: None,
        })
    };
    Ok(response)
}

/// The `response-*` query parameters of a GET replace the stored headers they name.
fn override_headers(head: &RequestHead, response: &mut Response) {
    for (param, header) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(value) = head.query_param(param) {
            response
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(header));
            response.headers.push((header.into(), value.into()));
        }
    }
}

/// The byte range of part `number` of an object.
fn part_range(row: &ObjectRow, number: u32) -> Result<(u64, u64), S3Error> {
    if row.parts.is_empty() {
        return if number == 1 {
            Ok((0, row.bytes))
        } else {
            Err(S3Error::InvalidPartNumber)
        };
    }
    let mut start = 0;
    for part in &row.parts {
        if part.number == number {
            return Ok((start, start + part.bytes));
        }
        start += part.bytes;
    }
    Err(S3Error::InvalidPartNumber)
}

/// Object bytes `[start, end)` to be streamed to a connection.
pub struct ObjectBody {
    pub data: ObjectData,
    pub start: u64,
    pub end: u64,
    /// The first piece, read before the response head is sent (`ObjectBody::prefetch`).
    pub first: Option<Vec<u8>>,
}

impl ObjectBody {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block pieces to read, in order: (block, offset in block, length).
    fn pieces(&self, blocks: &[BlockRef]) -> Vec<(BlockHash, u32, u32)> {
        let mut pieces = Vec::new();
        let mut block_start = 0u64;
        for block in blocks {
            let block_end = block_start + u64::from(block.bytes);
            let from = self.start.max(block_start);
            let to = self.end.min(block_end);
            let mut offset = from;
            while offset < to {
                let piece_max = if pieces.is_empty() {
                    FIRST_READ_PIECE_BYTES
                } else {
                    READ_PIECE_BYTES
                };
                let len = (to - offset).min(u64::from(piece_max));
                pieces.push((block.hash, (offset - block_start) as u32, len as u32));
                offset += len;
            }
            block_start = block_end;
            if block_start >= self.end {
                break;
            }
        }
        pieces
    }

    /// Reads the first piece of a block-stored body, before the response head is sent: a
    /// missing or corrupt first block is then answered with an error status, not with a
    /// 200 whose body stops short. (A block missing further on can only cut the body:
    /// the head is gone by then.) The error is logged and counted.
    pub async fn prefetch(&mut self, shard: &Rc<Gateway>) -> Result<(), S3Error> {
        let ObjectData::Blocks(blocks) = &self.data else {
            return Ok(());
        };
        let Some((hash, offset, len)) = self.pieces(blocks).into_iter().next() else {
            return Ok(());
        };
        let read = shard
            .call(DataRequest::ReadBlock { hash, offset, len })
            .await
            .block();
        match read {
            Ok(data) => {
                self.first = Some(data);
                Ok(())
            }
            Err(e) => {
                shard.metrics.borrow_mut().object_read_failed();
                tracing::error!(block = %hash.to_hex(), "object data unreadable: {e:?}");
                Err(S3Error::InternalError(format!(
                    "the object's data is unreadable (block {}): {e:?}",
                    hash.to_hex()
                )))
            }
        }
    }

    /// Streams the bytes: each piece is read from the shard that owns its block while the
    /// previous one is being written, so the disk and the socket work at once.
    pub async fn stream_to(self, shard: &Rc<Gateway>, io: &mut ConnIo) -> io::Result<()> {
        let blocks = match &self.data {
            ObjectData::Inline(bytes) => {
                return io
                    .write_all(&bytes[self.start as usize..self.end as usize])
                    .await;
            }
            ObjectData::Blocks(blocks) => blocks,
        };
        let fetch = |(hash, offset, len): (BlockHash, u32, u32)| {
            let shard = Rc::clone(shard);
            glommio::spawn_local(async move {
                let read = shard
                    .call(DataRequest::ReadBlock { hash, offset, len })
                    .await
                    .block();
                if let Err(e) = &read {
                    shard.metrics.borrow_mut().object_read_failed();
                    tracing::error!(
                        block = %hash.to_hex(),
                        "object data unreadable in the middle of a response: {e:?}"
                    );
                }
                read
            })
            .detach()
        };
        let mut pieces = self.pieces(blocks).into_iter();
        if let Some(first) = self.first {
            pieces.next();
            let next = pieces.next().map(fetch);
            io.write_all(&first).await?;
            return stream_pieces(io, pieces, next, fetch).await;
        }
        let next = pieces.next().map(fetch);
        stream_pieces(io, pieces, next, fetch).await
    }
}

type PieceRead = glommio::task::JoinHandle<Result<Vec<u8>, crate::model::ops::DataError>>;

/// Writes the pieces in order, each fetched while the one before is written.
async fn stream_pieces(
    io: &mut ConnIo,
    mut pieces: impl Iterator<Item = (BlockHash, u32, u32)>,
    mut next: Option<PieceRead>,
    fetch: impl Fn((BlockHash, u32, u32)) -> PieceRead,
) -> io::Result<()> {
    while let Some(current) = next.take() {
        next = pieces.next().map(&fetch);
        let data = current
            .await
            .expect("block reads are not cancelled")
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        io.write_all(&data).await?;
    }
    Ok(())
}

pub async fn delete_object(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let written = shard
        .call(DataRequest::DeleteObject {
            bucket: bucket.id,
            key: key.to_string(),
            version: VersionId::random(),
            stamp: shard.clock.stamp(),
            condition: None,
        })
        .await
        .written()?;
    release_dropped(shard, &written).await;
    Ok(Response::new(204))
}

pub async fn delete_objects(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    body: &[u8],
) -> Result<Response, S3Error> {
    // 1 to 1000 objects, no NUL in any key (`xml::parse_delete`).
    let request = xml::parse_delete(body)?;
    let mut outcomes = Vec::new();
    for object in request.objects {
        let deleted = if object.key.len() > crate::constants::OBJECT_KEY_BYTES_MAX {
            Err(S3Error::KeyTooLongError)
        } else {
            delete_object(shard, bucket, &object.key).await
        };
        match deleted {
            Ok(_) if request.quiet => {}
            Ok(_) => outcomes.push(xml::DeleteOutcome::Deleted {
                key: object.key,
                version_id: object.version_id,
            }),
            Err(e) => outcomes.push(xml::DeleteOutcome::Error {
                key: object.key,
                version_id: object.version_id,
                code: e.code().into(),
                message: e.message(),
            }),
        }
    }
    Ok(Response::xml(200, xml::delete_result_xml(&outcomes)))
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=...]`, URL-encoded.
pub fn parse_copy_source(value: &str) -> Result<(String, String), S3Error> {
    let value = value.split_once('?').map_or(value, |(path, _)| path);
    let decoded = http::uri_decode(value)
        .map_err(|_| S3Error::InvalidArgument("bad x-amz-copy-source".into()))?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.into(), key.into()))
        }
        _ => Err(S3Error::InvalidArgument(
            "x-amz-copy-source must be bucket/key".into(),
        )),
    }
}

/// Gives `holder` a reference on every block of `data`: a stored block gains one without
/// its data being read or written; one that is missing or bad is read (failing with the
/// reason if it cannot be) and stored again.
async fn hold_blocks(
    shard: &Rc<Gateway>,
    data: &ObjectData,
    holder: Holder,
) -> Result<(), S3Error> {
    if let ObjectData::Blocks(blocks) = data {
        for block in blocks {
            let counted = shard
                .call(DataRequest::AddBlockRef {
                    hash: block.hash,
                    holder,
                })
                .await
                .flag()?;
            if counted {
                continue;
            }
            let data = shard
                .call(DataRequest::ReadBlock {
                    hash: block.hash,
                    offset: 0,
                    len: block.bytes,
                })
                .await
                .block()?;
            shard
                .call(DataRequest::PutBlock {
                    hash: block.hash,
                    data: BlockData::Bytes(data),
                    holder,
                })
                .await
                .done()?;
        }
    }
    Ok(())
}

pub async fn copy_object(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    caller: &Caller,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let (source_bucket, source_key) =
        parse_copy_source(head.header("x-amz-copy-source").unwrap_or(""))?;
    let source_bucket = router::lookup_bucket(shard, &source_bucket)?;
    check(caller, &source_bucket, Need::Read)?;
    let source = fetch_object(shard, &source_bucket, &source_key).await?;
    check_copy_source_conditions(head, &source)?;
    let replace = match head.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(other) => {
            return Err(S3Error::InvalidArgument(format!(
                "bad metadata directive {other}"
            )))
        }
    };
    if !replace && source_bucket.id == bucket.id && source_key == key {
        return Err(S3Error::InvalidRequest(
            "copying an object onto itself without changing anything is not allowed".into(),
        ));
    }
    // The copy's version holds its own reference on every block: no data is read or
    // written. A block that is missing or bad cannot be referenced; reading it then fails
    // with the reason.
    let version = VersionId::random();
    let holder = Holder::of_version(version);
    hold_blocks(shard, &source.data, holder).await?;
    let stamp = shard.clock.stamp();
    let now = stamp.time_ms;
    let parts = source
        .parts
        .iter()
        .map(|p| PartSummary {
            holder,
            ..p.clone()
        })
        .collect();
    let row = ObjectRow {
        bucket: bucket.id,
        key: key.to_string(),
        version,
        stamp,
        last_modified_ms: now,
        parts,
        headers: if replace {
            stored_headers(head)?
        } else {
            source.headers.clone()
        },
        ..source
    };
    let etag = row.etag.clone();
    let written = row.clone();
    let put = DataRequest::PutObject {
        row,
        condition: None,
    };
    match shard.call(put).await.written() {
        Ok(done) => release_dropped(shard, &done).await,
        Err(e) => {
            release_object(shard, &written).await;
            return Err(e.into());
        }
    }
    Ok(Response::xml(200, xml::copy_object_xml(&etag, now, &[])))
}

#[cfg(test)]
mod tests {
    use super::{parse_range, BlockSink, BodySink};

    /// Feeds `pieces` to a block sink as `read_body` does; the blocks it sends.
    fn cut(block_size: usize, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut sink = BlockSink::new(block_size, None);
        let mut sent = Vec::new();
        for piece in pieces {
            sink.extend_from_slice(piece);
            while let Some(block) = sink.ready(false) {
                sent.push(block.to_vec());
            }
        }
        while let Some(block) = sink.ready(true) {
            sent.push(block.to_vec());
            assert!(
                sent.len() < 100,
                "the sink keeps sending once the body ended"
            );
        }
        sent
    }

    #[test]
    fn a_block_sink_cuts_whole_blocks_and_carries_what_runs_over() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
        // Pieces straddle block ends; one is longer than a whole block.
        let pieces = [
            &data[..3000],
            &data[3000..4000],
            &data[4000..9500],
            &data[9500..],
        ];
        let blocks = cut(4096, &pieces);
        let lens: Vec<usize> = blocks.iter().map(Vec::len).collect();
        assert_eq!(lens, [4096, 4096, 10_000 - 8192]);
        assert_eq!(blocks.concat(), data);
    }

    #[test]
    fn a_body_ending_on_a_block_end_or_not_sends_no_empty_block() {
        let data = vec![7u8; 8192];
        assert_eq!(cut(4096, &[&data[..]]).len(), 2);
        assert_eq!(cut(4096, &[&data[..5000]]).len(), 2);
        assert!(cut(4096, &[]).is_empty());
    }

    #[test]
    fn ranges_parse_as_s3_reads_them() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 100)));
        assert_eq!(parse_range("bytes=-5", 100).unwrap(), Some((95, 100)));
        assert_eq!(parse_range("bytes=-500", 100).unwrap(), Some((0, 100)));
        assert_eq!(parse_range("bytes=50-1000", 100).unwrap(), Some((50, 100)));
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", 100).unwrap(),
            Some((0, 100))
        );
        // Unsatisfiable: 416. Unparseable or several ranges: the whole object.
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
        assert_eq!(parse_range("bytes=9-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=a-b", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
    }
}
