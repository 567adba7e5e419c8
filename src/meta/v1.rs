//! The rows of metadata format 1 (every release before rows became records that merge),
//! kept only to read a data directory written by such a release and migrate it
//! (`storage::migrate`). Their postcard encodings are what format 1 stored.

use serde::{Deserialize, Serialize};

use super::types::{BlockRef, BucketId, Checksum, ChecksumAlgorithm, ObjectData, Permissions};

/// Format 1's stamp: wall-clock milliseconds, then node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub time_ms: u64,
    pub node: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    pub number: u32,
    pub bytes: u64,
    pub etag: String,
    pub first_block: u32,
    pub checksum: Option<Checksum>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRow {
    pub bucket: BucketId,
    pub key: String,
    pub stamp: Stamp,
    pub bytes: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub headers: Vec<(String, String)>,
    pub checksum: Option<Checksum>,
    pub parts: Vec<PartSummary>,
    pub data: ObjectData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRow {
    pub bucket: BucketId,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub headers: Vec<(String, String)>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRow {
    pub id: BucketId,
    pub name: String,
    pub created_ms: u64,
    pub stamp: Stamp,
    pub deleted: bool,
    pub grants: Vec<(String, Permissions)>,
    pub website: Option<super::website::WebsiteConfig>,
    pub cors: Vec<super::website::CorsRule>,
    pub public_read: bool,
    pub lifecycle: Option<super::lifecycle::LifecycleConfig>,
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
    pub create_bucket: bool,
}
