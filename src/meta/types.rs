//! The metadata rows, as stored (postcard) in each shard's LMDB environment.
//! Pure data: no I/O here. Every row that replicas may hold merges last-writer-wins on
//! `Stamp` (timestamp, then node id), so replicas converge whatever order they saw writes in.
//!
//! postcard is not self-describing: `#[serde(default)]` does not let an old row decode
//! once a field is added. Changing any row type here changes the stored format: raise
//! `storage::store::META_FORMAT` (a store of another format is refused at open).

use serde::{Deserialize, Serialize};

/// blake3 hash of a block's content; also its name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
    /// The partition a block lives in: the first byte of its hash.
    pub fn partition(&self) -> Partition {
        Partition(self.0[0])
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockHash({})", &self.to_hex()[..16])
    }
}

/// One of the 256 slices of the hash space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Partition(pub u8);

impl Partition {
    /// Partition of an object: first byte of blake3(bucket_id, key).
    pub fn of_object(bucket: &BucketId, key: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&bucket.0);
        h.update(key.as_bytes());
        Partition(h.finalize().as_bytes()[0])
    }
    /// The shard of this node that owns the partition (design.md: `p % shards`).
    pub fn shard(&self, shards: u16) -> u16 {
        assert!(shards > 0);
        u16::from(self.0) % shards
    }
}

/// A bucket's identity, random at creation, so a re-created bucket never sees old objects.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BucketId(pub [u8; 16]);

impl std::fmt::Debug for BucketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BucketId({})", hex::encode(self.0))
    }
}

/// Last-writer-wins stamp: wall-clock milliseconds, then node id to break ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub time_ms: u64,
    pub node: u64,
}

/// Checksum algorithms S3 clients send (`x-amz-checksum-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// A checksum value as S3 returns it: base64 of the big-endian digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub base64: String,
    /// `COMPOSITE` checksums of multipart objects carry `-N`; full-object ones do not.
    pub composite: bool,
}

/// One block of an object's data, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    pub hash: BlockHash,
    pub bytes: u32,
}

/// A part of a completed multipart object (for `partNumber` reads and GetObjectAttributes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    pub number: u32,
    pub bytes: u64,
    pub etag: String,
    /// Index into `ObjectData::Blocks` of this part's first block.
    pub first_block: u32,
    pub checksum: Option<Checksum>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectData {
    /// Bytes stored in the row itself (objects under the inline threshold).
    Inline(Vec<u8>),
    /// Bytes stored in blocks, in order.
    Blocks(Vec<BlockRef>),
}

/// The current version of an object. (Versioning is not enabled: one row per key.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRow {
    pub bucket: BucketId,
    pub key: String,
    pub stamp: Stamp,
    pub bytes: u64,
    /// With quotes, as S3 returns it: `"<md5 hex>"` or `"<md5 of md5s>-N"`.
    pub etag: String,
    pub last_modified_ms: u64,
    /// Stored response headers: content-type, content-encoding, content-disposition,
    /// content-language, cache-control, expires, and every `x-amz-meta-*` (lowercase names).
    pub headers: Vec<(String, String)>,
    pub checksum: Option<Checksum>,
    pub parts: Vec<PartSummary>,
    pub data: ObjectData,
}

/// An in-progress multipart upload. Its parts are rows of their own (`PartRow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRow {
    pub bucket: BucketId,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub headers: Vec<(String, String)>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// One uploaded part of a multipart upload. A re-upload of the same number replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRow {
    pub upload_id: String,
    pub number: u32,
    pub bytes: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksum: Option<Checksum>,
    pub blocks: Vec<BlockRef>,
}

/// What a completed multipart upload leaves behind, so that a retried
/// CompleteMultipartUpload (its first answer lost) gets the same answer, as AWS gives, and a
/// late Abort or UploadPart of it is refused. Kept for `COMPLETED_UPLOAD_KEEP_MS`, then
/// swept with the block GC. A table of its own: the rows of the other tables are unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedUpload {
    pub upload_id: String,
    /// The parts the object was made of, as (number, ETag), in order.
    pub parts: Vec<(u32, String)>,
    pub etag: String,
    pub checksum: Option<Checksum>,
    pub completed_ms: u64,
}

/// Per-bucket permissions of an access key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRow {
    pub id: BucketId,
    pub name: String,
    pub created_ms: u64,
    pub stamp: Stamp,
    /// Deleted buckets stay as tombstones so replicas converge.
    pub deleted: bool,
    /// Access key id → permissions on this bucket.
    pub grants: Vec<(String, Permissions)>,
    /// Served as a static website when set (PutBucketWebsite, `granary bucket website`).
    pub website: Option<super::website::WebsiteConfig>,
    /// CORS rules (PutBucketCors); empty when the bucket has no CORS configuration.
    pub cors: Vec<super::website::CorsRule>,
    /// Canned ACL `public-read`: anyone may read objects and list them without signing.
    pub public_read: bool,
    /// Lifecycle rules (expiration, abort of incomplete uploads), applied in the background.
    pub lifecycle: Option<super::lifecycle::LifecycleConfig>,
    /// Bucket tags (PutBucketTagging), in the order given.
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub name: String,
    pub created_ms: u64,
    pub stamp: Stamp,
    pub deleted: bool,
    /// May create buckets (and becomes their owner).
    pub create_bucket: bool,
}
