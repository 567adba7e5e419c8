//! The metadata rows, as stored (postcard) in each shard's LMDB environment, and the views
//! of them that the rest of Granary works with. Pure data: no I/O here.
//!
//! Stored rows are *records* that merge as CRDTs (`meta::crdt`, laws in
//! `docs/metadata.md`), so replicas converge whatever order they saw writes in:
//! - an object is the set of its versions (`ObjectRecord`), the newest visible; a delete is
//!   a tombstone version (a delete marker);
//! - a multipart upload's state moves one way (in progress, then completed or aborted), and
//!   its parts are last-writer-wins rows;
//! - a block's references are one row per holder (`BlockRefRow`: an object version, or one
//!   upload of a part), the count derived from them, never merged as a number;
//! - buckets and access keys are records of per-field last-writer-wins registers
//!   (`BucketRecord`, `KeyRecord`): two changes of different settings both stay. A bucket's
//!   permissions are a register per access key.
//!
//! postcard is not self-describing: `#[serde(default)]` does not let an old row decode
//! once a field is added. Changing any stored type here changes the stored format: raise
//! `storage::store::META_FORMAT` and migrate (`storage::migrate`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::crdt::{Lww, Merge, Stamp};

/// blake3 hash of a block's content; also its name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
    /// The partition a block lives in: the first bits of its hash.
    pub fn partition(&self) -> Partition {
        Partition::of_hash(&self.0)
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

/// One slice of the hash space. 16 bits wide in keys and messages, so that a cluster may
/// be made of up to 65,536 partitions; today every node has `PARTITION_COUNT` (256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Partition(pub u16);

/// log2 of `constants::PARTITION_COUNT`.
pub const PARTITION_BITS: u32 = crate::constants::PARTITION_COUNT.trailing_zeros();
const _: () = assert!(1 << PARTITION_BITS == crate::constants::PARTITION_COUNT);
const _: () = assert!(PARTITION_BITS <= 16);

impl Partition {
    /// The partition of a hash: its first `PARTITION_BITS` bits.
    pub fn of_hash(hash: &[u8; 32]) -> Self {
        let top = u16::from_be_bytes([hash[0], hash[1]]);
        Partition(((u32::from(top)) >> (16 - PARTITION_BITS)) as u16)
    }

    /// Partition of an object: of blake3(bucket_id, key).
    pub fn of_object(bucket: &BucketId, key: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&bucket.0);
        h.update(key.as_bytes());
        Self::of_hash(h.finalize().as_bytes())
    }

    /// Every partition, in order.
    pub fn all() -> impl Iterator<Item = Partition> {
        (0..crate::constants::PARTITION_COUNT).map(|p| Partition(p as u16))
    }

    /// The big-endian bytes every key of the partition starts with.
    pub fn prefix(&self) -> [u8; 2] {
        self.0.to_be_bytes()
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

/// One version of an object, random at its write. A multipart upload's id is the version
/// its Complete makes (its hex form).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionId(pub [u8; 16]);

impl VersionId {
    pub fn random() -> Self {
        Self(rand::random())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The version of an upload id (32 hex digits), if it is one.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

impl std::fmt::Debug for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VersionId({})", &self.to_hex()[..12])
    }
}

/// What holds a reference on a block: an object version (the blocks of a single PUT or a
/// copy), or one upload of one part (a part uploaded again is another holder, so releasing
/// the replaced one never releases the new one's blocks). A completed multipart object
/// keeps its parts' holders.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Holder(pub [u8; 16]);

impl Holder {
    /// Holds a block found in a segment's tail at recovery, not indexed before a crash: it
    /// may have been acknowledged, so it must not be collected; `granary repair refcounts`
    /// finds such references that nothing else explains.
    pub const RECOVERED: Holder = Holder([0xff; 16]);

    pub fn random() -> Self {
        Self(rand::random())
    }

    pub fn of_version(v: VersionId) -> Self {
        Self(v.0)
    }
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Holder({})", &hex::encode(self.0)[..12])
    }
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
    /// What holds this part's blocks (its upload's `PartRow::holder`).
    pub holder: Holder,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectData {
    /// Bytes stored in the row itself (objects under the inline threshold).
    Inline(Vec<u8>),
    /// Bytes stored in blocks, in order.
    Blocks(Vec<BlockRef>),
}

/// An object as handlers see it: its visible version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRow {
    pub bucket: BucketId,
    pub key: String,
    pub version: VersionId,
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

impl ObjectRow {
    /// The (block, holder) references this version holds: under its own version for a
    /// single PUT or a copy, under each part's holder for a multipart object.
    pub fn block_holders(&self) -> Vec<(BlockHash, Holder)> {
        let ObjectData::Blocks(blocks) = &self.data else {
            return Vec::new();
        };
        if self.parts.is_empty() {
            let holder = Holder::of_version(self.version);
            return blocks.iter().map(|b| (b.hash, holder)).collect();
        }
        let mut out = Vec::with_capacity(blocks.len());
        for (i, part) in self.parts.iter().enumerate() {
            let end = self
                .parts
                .get(i + 1)
                .map_or(blocks.len(), |next| next.first_block as usize);
            let start = (part.first_block as usize).min(end);
            out.extend(blocks[start..end].iter().map(|b| (b.hash, part.holder)));
        }
        out
    }
}

/// A condition on an object's visible version, decided in the transaction that writes the
/// key (`If-None-Match: *`, `If-Match`, and the lifecycle's "still the version found
/// expired").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// No object is visible under the key.
    Absent,
    /// The visible object has this ETag (quotes optional).
    EtagMatches(String),
    /// The visible object is this version.
    VersionIs(VersionId),
}

impl Condition {
    pub fn holds(&self, current: Option<&ObjectRow>) -> bool {
        match self {
            Condition::Absent => current.is_none(),
            Condition::EtagMatches(etag) => current.is_some_and(|c| etags_equal(&c.etag, etag)),
            Condition::VersionIs(v) => current.is_some_and(|c| c.version == *v),
        }
    }
}

/// Two ETags name the same content: with or without their quotes, weak or strong.
pub fn etags_equal(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim();
        let s = s.strip_prefix("W/").unwrap_or(s);
        s.trim_matches('"').to_string()
    };
    norm(a) == norm(b)
}

/// The data of a version that holds an object (a complete PUT, copy or multipart upload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub bytes: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub headers: Vec<(String, String)>,
    pub checksum: Option<Checksum>,
    pub parts: Vec<PartSummary>,
    pub data: ObjectData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionState {
    Complete(Box<ObjectMeta>),
    /// A delete: the tombstone of the versions before it.
    DeleteMarker,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    pub id: VersionId,
    pub stamp: Stamp,
    pub state: VersionState,
}

impl ObjectVersion {
    fn order(&self) -> (Stamp, VersionId) {
        (self.stamp, self.id)
    }
}

/// An object as stored: the set of its versions, ordered by (stamp, id), the newest
/// visible. Without versioning (not offered yet) only the newest is kept: a merge drops
/// every version older than the newest, and says which (their blocks are released).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bucket: BucketId,
    pub key: String,
    pub versions: Vec<ObjectVersion>,
}

impl ObjectRecord {
    pub fn of_row(row: &ObjectRow) -> ObjectRecord {
        ObjectRecord {
            bucket: row.bucket,
            key: row.key.clone(),
            versions: vec![ObjectVersion {
                id: row.version,
                stamp: row.stamp,
                state: VersionState::Complete(Box::new(ObjectMeta {
                    bytes: row.bytes,
                    etag: row.etag.clone(),
                    last_modified_ms: row.last_modified_ms,
                    headers: row.headers.clone(),
                    checksum: row.checksum.clone(),
                    parts: row.parts.clone(),
                    data: row.data.clone(),
                })),
            }],
        }
    }

    /// A delete of the key at `stamp`.
    pub fn delete_marker(bucket: BucketId, key: &str, id: VersionId, stamp: Stamp) -> Self {
        ObjectRecord {
            bucket,
            key: key.into(),
            versions: vec![ObjectVersion {
                id,
                stamp,
                state: VersionState::DeleteMarker,
            }],
        }
    }

    /// The version of `id` as an object, if it holds one.
    pub fn row(&self, version: &ObjectVersion) -> Option<ObjectRow> {
        let VersionState::Complete(meta) = &version.state else {
            return None;
        };
        let meta = meta.as_ref().clone();
        Some(ObjectRow {
            bucket: self.bucket,
            key: self.key.clone(),
            version: version.id,
            stamp: version.stamp,
            bytes: meta.bytes,
            etag: meta.etag,
            last_modified_ms: meta.last_modified_ms,
            headers: meta.headers,
            checksum: meta.checksum,
            parts: meta.parts,
            data: meta.data,
        })
    }

    /// The newest version, as an object; `None` when it is a delete marker.
    pub fn visible(&self) -> Option<ObjectRow> {
        self.versions.last().and_then(|v| self.row(v))
    }

    /// Only delete markers: a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.versions
            .iter()
            .all(|v| v.state == VersionState::DeleteMarker)
    }

    /// Merges `other` in and drops the versions older than the newest; returns the objects
    /// dropped (including, for a write older than the current version, that write itself).
    pub fn merge_pruned(&mut self, other: &ObjectRecord) -> Vec<ObjectRow> {
        for v in &other.versions {
            match self
                .versions
                .binary_search_by(|mine| mine.order().cmp(&v.order()))
            {
                Ok(at) => {
                    // One version seen twice; equal unless something is wrong: keep one
                    // deterministically.
                    if crate::meta::crdt::encoded(v)
                        > crate::meta::crdt::encoded(&self.versions[at])
                    {
                        self.versions[at] = v.clone();
                    }
                }
                Err(at) => self.versions.insert(at, v.clone()),
            }
        }
        let keep_from = self.versions.len().saturating_sub(1);
        let dropped: Vec<ObjectVersion> = self.versions.drain(..keep_from).collect();
        dropped.iter().filter_map(|v| self.row(v)).collect()
    }
}

impl Merge for ObjectRecord {
    fn merge(&mut self, other: &Self) {
        self.merge_pruned(other);
    }
}

/// Where a multipart upload stands. It only moves forward: from in progress to completed
/// or aborted (of those two, the later stamp wins should both ever be written).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadState {
    InProgress,
    /// Completed into an object version of the upload's id: how, so that a retried
    /// CompleteMultipartUpload gets the first answer, as AWS gives it.
    Completed(CompletedUpload),
    Aborted,
}

/// What a completed multipart upload leaves behind (`UploadState::Completed`). Kept for
/// `COMPLETED_UPLOAD_KEEP_MS` with the upload's row, then swept with the block GC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedUpload {
    pub upload_id: String,
    /// The parts the object was made of, as (number, ETag), in order.
    pub parts: Vec<(u32, String)>,
    pub etag: String,
    pub checksum: Option<Checksum>,
    pub completed_ms: u64,
}

/// A multipart upload. Its parts are rows of their own (`PartRow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRow {
    pub bucket: BucketId,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub headers: Vec<(String, String)>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub state: Lww<UploadState>,
}

impl UploadRow {
    pub fn in_progress(&self) -> bool {
        self.state.value == UploadState::InProgress
    }
}

impl Merge for UploadRow {
    fn merge(&mut self, other: &Self) {
        let rank = |s: &Lww<UploadState>| (s.value != UploadState::InProgress, s.stamp);
        let take = match rank(&other.state).cmp(&rank(&self.state)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                crate::meta::crdt::encoded(other) > crate::meta::crdt::encoded(self)
            }
        };
        if take {
            *self = other.clone();
        }
    }
}

/// One uploaded part of a multipart upload. A re-upload of the same number replaces it
/// (last writer wins), under a holder of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRow {
    pub upload_id: String,
    pub number: u32,
    pub stamp: Stamp,
    pub holder: Holder,
    pub bytes: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksum: Option<Checksum>,
    pub blocks: Vec<BlockRef>,
}

impl Merge for PartRow {
    fn merge(&mut self, other: &Self) {
        let take = match other.stamp.cmp(&self.stamp) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                crate::meta::crdt::encoded(other) > crate::meta::crdt::encoded(self)
            }
        };
        if take {
            *self = other.clone();
        }
    }
}

/// One holder's reference on a block (keyed by block and holder). Released, it stays a
/// tombstone until every replica has it (on one node: it is removed at once); a release
/// wins over the reference it releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRefRow {
    pub stamp: Stamp,
    pub released: bool,
}

impl Merge for BlockRefRow {
    fn merge(&mut self, other: &Self) {
        self.released |= other.released;
        self.stamp = self.stamp.max(other.stamp);
    }
}

/// Per-bucket permissions of an access key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Permissions {
    pub fn any(&self) -> bool {
        self.read || self.write || self.owner
    }
}

/// A bucket as handlers see it (`BucketRecord::view`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRow {
    pub id: BucketId,
    pub name: String,
    pub created_ms: u64,
    /// The newest stamp of any of its settings.
    pub stamp: Stamp,
    /// Deleted buckets stay as tombstones so replicas converge.
    pub deleted: bool,
    /// Access key id → permissions on this bucket (keys with none are not listed).
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

/// A bucket as stored: every setting its own last-writer-wins register, so that two
/// changes of different settings made at once (CORS and tags, as Terraform puts them) both
/// stay wherever they were made; permissions a register per access key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub id: BucketId,
    pub name: String,
    pub created_ms: u64,
    pub deleted: Lww<bool>,
    pub website: Lww<Option<super::website::WebsiteConfig>>,
    pub cors: Lww<Vec<super::website::CorsRule>>,
    pub public_read: Lww<bool>,
    pub lifecycle: Lww<Option<super::lifecycle::LifecycleConfig>>,
    pub tags: Lww<Vec<(String, String)>>,
    pub grants: BTreeMap<String, Lww<Permissions>>,
}

impl BucketRecord {
    /// A record holding `view`, every setting stamped `stamp`.
    pub fn of_view(view: &BucketRow, stamp: Stamp) -> BucketRecord {
        BucketRecord {
            id: view.id,
            name: view.name.clone(),
            created_ms: view.created_ms,
            deleted: Lww::new(stamp, view.deleted),
            website: Lww::new(stamp, view.website.clone()),
            cors: Lww::new(stamp, view.cors.clone()),
            public_read: Lww::new(stamp, view.public_read),
            lifecycle: Lww::new(stamp, view.lifecycle.clone()),
            tags: Lww::new(stamp, view.tags.clone()),
            grants: view
                .grants
                .iter()
                .map(|(k, p)| (k.clone(), Lww::new(stamp, *p)))
                .collect(),
        }
    }

    /// Sets, at `stamp`, every setting in which `view` differs from the record: the change
    /// a bucket edit made, field by field.
    pub fn update(&mut self, view: &BucketRow, stamp: Stamp) {
        let now = self.view();
        if view.deleted != now.deleted {
            self.deleted.set(stamp, view.deleted);
        }
        if view.website != now.website {
            self.website.set(stamp, view.website.clone());
        }
        if view.cors != now.cors {
            self.cors.set(stamp, view.cors.clone());
        }
        if view.public_read != now.public_read {
            self.public_read.set(stamp, view.public_read);
        }
        if view.lifecycle != now.lifecycle {
            self.lifecycle.set(stamp, view.lifecycle.clone());
        }
        if view.tags != now.tags {
            self.tags.set(stamp, view.tags.clone());
        }
        let wanted: BTreeMap<&String, Permissions> =
            view.grants.iter().map(|(k, p)| (k, *p)).collect();
        let keys: Vec<String> = self.grants.keys().cloned().collect();
        for key in keys {
            if !wanted.contains_key(&key) && self.grants[&key].value.any() {
                self.grants
                    .entry(key)
                    .and_modify(|g| g.set(stamp, Permissions::default()));
            }
        }
        for (key, p) in wanted {
            let current = self.grants.get(key).map(|g| g.value).unwrap_or_default();
            if current != p {
                self.grants
                    .entry(key.clone())
                    .or_insert_with(|| Lww::new(Stamp::ZERO, Permissions::default()))
                    .set(stamp, p);
            }
        }
    }

    pub fn view(&self) -> BucketRow {
        let stamps = [
            self.deleted.stamp,
            self.website.stamp,
            self.cors.stamp,
            self.public_read.stamp,
            self.lifecycle.stamp,
            self.tags.stamp,
        ];
        let grant_stamps = self.grants.values().map(|g| g.stamp);
        BucketRow {
            id: self.id,
            name: self.name.clone(),
            created_ms: self.created_ms,
            stamp: stamps
                .into_iter()
                .chain(grant_stamps)
                .max()
                .unwrap_or_default(),
            deleted: self.deleted.value,
            grants: self
                .grants
                .iter()
                .filter(|(_, g)| g.value.any())
                .map(|(k, g)| (k.clone(), g.value))
                .collect(),
            website: self.website.value.clone(),
            cors: self.cors.value.clone(),
            public_read: self.public_read.value,
            lifecycle: self.lifecycle.value.clone(),
            tags: self.tags.value.clone(),
        }
    }
}

impl Merge for BucketRecord {
    fn merge(&mut self, other: &Self) {
        debug_assert_eq!(self.id, other.id, "records of one bucket merge");
        self.deleted.merge(&other.deleted);
        self.website.merge(&other.website);
        self.cors.merge(&other.cors);
        self.public_read.merge(&other.public_read);
        self.lifecycle.merge(&other.lifecycle);
        self.tags.merge(&other.tags);
        Merge::merge(&mut self.grants, &other.grants);
    }
}

/// An access key as handlers see it (`KeyRecord::view`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub name: String,
    pub created_ms: u64,
    /// The newest stamp of any of its settings.
    pub stamp: Stamp,
    pub deleted: bool,
    /// May create buckets (and becomes their owner).
    pub create_bucket: bool,
}

/// An access key as stored: its settings last-writer-wins registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub created_ms: u64,
    pub name: Lww<String>,
    pub deleted: Lww<bool>,
    pub create_bucket: Lww<bool>,
}

impl KeyRecord {
    pub fn of_view(view: &KeyRow, stamp: Stamp) -> KeyRecord {
        KeyRecord {
            access_key_id: view.access_key_id.clone(),
            secret_access_key: view.secret_access_key.clone(),
            created_ms: view.created_ms,
            name: Lww::new(stamp, view.name.clone()),
            deleted: Lww::new(stamp, view.deleted),
            create_bucket: Lww::new(stamp, view.create_bucket),
        }
    }

    /// Sets, at `stamp`, every setting in which `view` differs from the record.
    pub fn update(&mut self, view: &KeyRow, stamp: Stamp) {
        if view.name != self.name.value {
            self.name.set(stamp, view.name.clone());
        }
        if view.deleted != self.deleted.value {
            self.deleted.set(stamp, view.deleted);
        }
        if view.create_bucket != self.create_bucket.value {
            self.create_bucket.set(stamp, view.create_bucket);
        }
    }

    pub fn view(&self) -> KeyRow {
        KeyRow {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            name: self.name.value.clone(),
            created_ms: self.created_ms,
            stamp: self
                .name
                .stamp
                .max(self.deleted.stamp)
                .max(self.create_bucket.stamp),
            deleted: self.deleted.value,
            create_bucket: self.create_bucket.value,
        }
    }
}

impl Merge for KeyRecord {
    fn merge(&mut self, other: &Self) {
        debug_assert_eq!(self.access_key_id, other.access_key_id);
        self.name.merge(&other.name);
        self.deleted.merge(&other.deleted);
        self.create_bucket.merge(&other.create_bucket);
    }
}

#[cfg(test)]
mod tests;
