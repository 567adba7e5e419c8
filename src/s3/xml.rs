//! S3 XML bodies, sans-IO: serializers for every response body S3 sends, and parsers for
//! the request bodies S3 reads (CompleteMultipartUpload, Delete, CreateBucketConfiguration).
//!
//! Serializers take plain structs and return the whole document with the
//! `<?xml version="1.0" encoding="UTF-8"?>` prolog, the S3 namespace on the root (except
//! `Error`, which S3 sends without one), and all text escaped. Keys and prefixes are
//! written as given: when the request asked `encoding-type=url`, the caller encodes them
//! first with `crate::http::url_encode_key` and sets `encoding_type`.
//!
//! Escaping: `& < > " '` become entity references; `\t \n \r` and other control
//! characters become character references (`&#xD;`), so that keys survive XML
//! end-of-line normalization. Control characters other than tab, LF and CR cannot be
//! represented in XML 1.0 at all; they are written as character references as AWS does,
//! which strict parsers refuse: clients that store such keys list with
//! `encoding-type=url` (boto3 and the AWS CLI always do).
//!
//! Parsers accept any namespace (or none), any prefix, whitespace between elements, and
//! elements in any order; they refuse malformed XML, a DOCTYPE, and nesting deeper than
//! `XML_DEPTH_MAX`.
//!
//! Cost: parsing is linear in the body and bounded whatever the body holds. A document is
//! at most `XML_BODY_BYTES_MAX` bytes, with at most `XML_ELEMENTS_MAX` elements and
//! `XML_ATTRIBUTES_PER_ELEMENT_MAX` attributes on each (quick-xml's own duplicate-attribute
//! check is quadratic in the attribute count: it is turned off, and the few attributes
//! allowed are compared here); the text kept is never longer than the body. The
//! operation parsers that follow do constant work per element, or check their counts
//! before any work that grows faster.

pub mod acl;
pub mod attributes;
pub mod lifecycle;
pub mod tagging;

use quick_xml::events::Event;
use quick_xml::Reader;
use std::fmt::Write as _;

/// The namespace of S3 documents.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const PROLOG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
/// Deepest element nesting accepted by the parsers.
pub const XML_DEPTH_MAX: usize = 16;
/// Largest XML request body read and parsed (S3's own documents stay far below it).
pub const XML_BODY_BYTES_MAX: usize = 2 << 20;
/// Most elements in one document. The largest S3 request document, a
/// CompleteMultipartUpload of 10,000 parts (each with its number, ETag and a checksum or
/// two), has about 50,000.
pub const XML_ELEMENTS_MAX: usize = 100_000;
/// Most attributes on one element. S3 documents carry namespace declarations and
/// `xsi:type`, two or three at most.
pub const XML_ATTRIBUTES_PER_ELEMENT_MAX: usize = 16;

/// Why a request body was refused. All of these are S3's `MalformedXML` (400), except
/// what the caller checks further (e.g. part order, `InvalidPart`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("root element <{found}> where <{expected}> was expected")]
    UnexpectedRoot {
        expected: &'static str,
        found: String,
    },
    #[error("missing element <{0}>")]
    MissingElement(&'static str),
    #[error("invalid value {value:?} in <{element}>")]
    InvalidValue {
        element: &'static str,
        value: String,
    },
    #[error("XML nested deeper than the limit")]
    TooDeep,
    #[error("XML document larger than the limit (bytes, elements or attributes)")]
    TooLarge,
}

// ------------------------------------------------------------------------- writing

/// Appends `s` with XML escaping (see the module documentation).
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\u{0}'..='\u{1f}' | '\u{7f}' | '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `s` with XML escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// An ISO-8601 UTC timestamp with milliseconds, as S3 writes them:
/// `2026-11-25T15:35:43.000Z`. Input: milliseconds since the Unix epoch.
pub fn iso8601_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59.999 UTC));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A small document builder; element names are trusted (ours), text is escaped.
struct Doc {
    s: String,
}

impl Doc {
    fn new(root: &str) -> Doc {
        let mut s = String::with_capacity(512);
        s.push_str(PROLOG);
        let _ = write!(s, "<{root} xmlns=\"{S3_XMLNS}\">");
        Doc { s }
    }
    fn open(&mut self, name: &str) {
        let _ = write!(self.s, "<{name}>");
    }
    fn close(&mut self, name: &str) {
        let _ = write!(self.s, "</{name}>");
    }
    fn text(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.s, text);
        self.close(name);
    }
    fn opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.text(name, t);
        }
    }
    fn num(&mut self, name: &str, n: u64) {
        let _ = write!(self.s, "<{name}>{n}</{name}>");
    }
    fn bool(&mut self, name: &str, b: bool) {
        self.text(name, if b { "true" } else { "false" });
    }
    fn time(&mut self, name: &str, ms: u64) {
        self.text(name, &iso8601_ms(ms));
    }
    fn owner(&mut self, name: &str, o: &Owner) {
        self.open(name);
        self.text("ID", &o.id);
        self.text("DisplayName", &o.display_name);
        self.close(name);
    }
    fn checksums(&mut self, checksums: &[(String, String)]) {
        for (name, value) in checksums {
            debug_assert!(is_element_name(name), "checksum element name {name:?}");
            self.text(name, value);
        }
    }
    fn common_prefixes(&mut self, prefixes: &[String]) {
        for p in prefixes {
            self.open("CommonPrefixes");
            self.text("Prefix", p);
            self.close("CommonPrefixes");
        }
    }
    fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.s
    }
}

fn is_element_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An owner or initiator: `<ID>` and `<DisplayName>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

/// `<Error>`: the body of every S3 error response. `extra` elements (e.g. `Key`,
/// `BucketName`, `Method`) go between `Message` and `Resource`; an empty `resource` is
/// left out.
pub fn error_xml(
    code: &str,
    message: &str,
    resource: &str,
    request_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(PROLOG);
    let mut d = Doc { s };
    d.open("Error");
    d.text("Code", code);
    d.text("Message", message);
    for (name, value) in extra {
        debug_assert!(is_element_name(name), "error element name {name:?}");
        d.text(name, value);
    }
    if !resource.is_empty() {
        d.text("Resource", resource);
    }
    d.text("RequestId", request_id);
    d.finish("Error")
}

/// One bucket of ListBuckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub creation_ms: u64,
}

/// `<ListAllMyBucketsResult>` (ListBuckets). `continuation_token`: where the next page
/// starts, when this one is truncated; `prefix`: the request's, echoed.
pub fn list_buckets_xml(
    owner: &Owner,
    buckets: &[BucketEntry],
    continuation_token: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let root = "ListAllMyBucketsResult";
    let mut d = Doc::new(root);
    d.owner("Owner", owner);
    d.open("Buckets");
    for b in buckets {
        d.open("Bucket");
        d.text("Name", &b.name);
        d.time("CreationDate", b.creation_ms);
        d.close("Bucket");
    }
    d.close("Buckets");
    d.opt("ContinuationToken", continuation_token);
    d.opt("Prefix", prefix);
    d.finish(root)
}

/// One object of ListObjects (V1 and V2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The key, url-encoded by the caller when `encoding-type=url`.
    pub key: String,
    pub last_modified_ms: u64,
    /// The ETag with its double quotes, e.g. `"781e5e24…"`.
    pub etag: String,
    pub size: u64,
    /// V1: always `Some`. V2: `Some` only with `fetch-owner=true`.
    pub owner: Option<Owner>,
    /// `ChecksumAlgorithm` element, e.g. `CRC32`, when the object has one.
    pub checksum_algorithm: Option<String>,
}

impl Doc {
    fn contents(&mut self, objects: &[ObjectEntry]) {
        for o in objects {
            self.open("Contents");
            self.text("Key", &o.key);
            self.time("LastModified", o.last_modified_ms);
            self.text("ETag", &o.etag);
            self.opt("ChecksumAlgorithm", o.checksum_algorithm.as_deref());
            self.num("Size", o.size);
            if let Some(owner) = &o.owner {
                self.owner("Owner", owner);
            }
            self.text("StorageClass", "STANDARD");
            self.close("Contents");
        }
    }
}

/// ListObjects (V1) result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListObjectsV1 {
    pub bucket: String,
    pub prefix: String,
    pub marker: String,
    /// Set by the caller when truncated and a delimiter was given (S3's rule).
    pub next_marker: Option<String>,
    pub max_keys: u64,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    /// `Some("url")` when the keys and prefixes were url-encoded.
    pub encoding_type: Option<String>,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
}

/// `<ListBucketResult>` for ListObjects (V1).
pub fn list_objects_v1_xml(r: &ListObjectsV1) -> String {
    let root = "ListBucketResult";
    let mut d = Doc::new(root);
    d.text("Name", &r.bucket);
    d.text("Prefix", &r.prefix);
    d.text("Marker", &r.marker);
    d.opt("NextMarker", r.next_marker.as_deref());
    d.num("MaxKeys", r.max_keys);
    d.opt("Delimiter", r.delimiter.as_deref());
    d.bool("IsTruncated", r.is_truncated);
    d.opt("EncodingType", r.encoding_type.as_deref());
    d.contents(&r.contents);
    d.common_prefixes(&r.common_prefixes);
    d.finish(root)
}

/// ListObjectsV2 result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListObjectsV2 {
    pub bucket: String,
    pub prefix: String,
    pub max_keys: u64,
    /// Number of `Contents` plus `CommonPrefixes` returned.
    pub key_count: u64,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    pub continuation_token: Option<String>,
    pub next_continuation_token: Option<String>,
    pub start_after: Option<String>,
    pub encoding_type: Option<String>,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
}

/// `<ListBucketResult>` for ListObjectsV2.
pub fn list_objects_v2_xml(r: &ListObjectsV2) -> String {
    let root = "ListBucketResult";
    let mut d = Doc::new(root);
    d.text("Name", &r.bucket);
    d.text("Prefix", &r.prefix);
    d.num("MaxKeys", r.max_keys);
    d.num("KeyCount", r.key_count);
    d.opt("Delimiter", r.delimiter.as_deref());
    d.bool("IsTruncated", r.is_truncated);
    d.opt("ContinuationToken", r.continuation_token.as_deref());
    d.opt(
        "NextContinuationToken",
        r.next_continuation_token.as_deref(),
    );
    d.opt("StartAfter", r.start_after.as_deref());
    d.opt("EncodingType", r.encoding_type.as_deref());
    d.contents(&r.contents);
    d.common_prefixes(&r.common_prefixes);
    d.finish(root)
}

/// One entry of ListObjectVersions: a `Version`, or a `DeleteMarker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    pub key: String,
    /// `null` for unversioned buckets.
    pub version_id: String,
    pub is_latest: bool,
    pub is_delete_marker: bool,
    pub last_modified_ms: u64,
    /// Ignored for delete markers.
    pub etag: String,
    /// Ignored for delete markers.
    pub size: u64,
    pub owner: Owner,
}

/// ListObjectVersions result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListVersions {
    pub bucket: String,
    pub prefix: String,
    pub key_marker: String,
    pub version_id_marker: String,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
    pub max_keys: u64,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    pub encoding_type: Option<String>,
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
}

/// `<ListVersionsResult>` (ListObjectVersions).
pub fn list_versions_xml(r: &ListVersions) -> String {
    let root = "ListVersionsResult";
    let mut d = Doc::new(root);
    d.text("Name", &r.bucket);
    d.text("Prefix", &r.prefix);
    d.text("KeyMarker", &r.key_marker);
    d.text("VersionIdMarker", &r.version_id_marker);
    d.opt("NextKeyMarker", r.next_key_marker.as_deref());
    d.opt("NextVersionIdMarker", r.next_version_id_marker.as_deref());
    d.num("MaxKeys", r.max_keys);
    d.opt("Delimiter", r.delimiter.as_deref());
    d.bool("IsTruncated", r.is_truncated);
    d.opt("EncodingType", r.encoding_type.as_deref());
    for v in &r.versions {
        let name = if v.is_delete_marker {
            "DeleteMarker"
        } else {
            "Version"
        };
        d.open(name);
        d.text("Key", &v.key);
        d.text("VersionId", &v.version_id);
        d.bool("IsLatest", v.is_latest);
        d.time("LastModified", v.last_modified_ms);
        if !v.is_delete_marker {
            d.text("ETag", &v.etag);
            d.num("Size", v.size);
            d.text("StorageClass", "STANDARD");
        }
        d.owner("Owner", &v.owner);
        d.close(name);
    }
    d.common_prefixes(&r.common_prefixes);
    d.finish(root)
}

/// `<LocationConstraint>` (GetBucketLocation). `us-east-1` (and an empty region) give an
/// empty element, as S3 answers for that region.
pub fn location_constraint_xml(region: &str) -> String {
    let root = "LocationConstraint";
    let mut d = Doc::new(root);
    if region != "us-east-1" {
        escape_into(&mut d.s, region);
    }
    d.finish(root)
}

/// `<InitiateMultipartUploadResult>` (CreateMultipartUpload).
pub fn initiate_multipart_upload_xml(bucket: &str, key: &str, upload_id: &str) -> String {
    let root = "InitiateMultipartUploadResult";
    let mut d = Doc::new(root);
    d.text("Bucket", bucket);
    d.text("Key", key);
    d.text("UploadId", upload_id);
    d.finish(root)
}

/// CompleteMultipartUpload result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompleteResult {
    /// URL of the object, e.g. `http://host/bucket/key`.
    pub location: String,
    pub bucket: String,
    pub key: String,
    /// With quotes and the `-N` suffix.
    pub etag: String,
    /// `(element name, value)`, e.g. `("ChecksumCRC32", "…-2")`, `("ChecksumType", …)`.
    pub checksums: Vec<(String, String)>,
}

/// `<CompleteMultipartUploadResult>`.
pub fn complete_multipart_upload_xml(r: &CompleteResult) -> String {
    let root = "CompleteMultipartUploadResult";
    let mut d = Doc::new(root);
    d.text("Location", &r.location);
    d.text("Bucket", &r.bucket);
    d.text("Key", &r.key);
    d.text("ETag", &r.etag);
    d.checksums(&r.checksums);
    d.finish(root)
}

fn copy_result(
    root: &str,
    etag: &str,
    last_modified_ms: u64,
    checksums: &[(String, String)],
) -> String {
    let mut d = Doc::new(root);
    d.time("LastModified", last_modified_ms);
    d.text("ETag", etag);
    d.checksums(checksums);
    d.finish(root)
}

/// `<CopyObjectResult>` (CopyObject). `checksums` as in `CompleteResult`.
pub fn copy_object_xml(
    etag: &str,
    last_modified_ms: u64,
    checksums: &[(String, String)],
) -> String {
    copy_result("CopyObjectResult", etag, last_modified_ms, checksums)
}

/// `<CopyPartResult>` (UploadPartCopy).
pub fn copy_part_xml(etag: &str, last_modified_ms: u64, checksums: &[(String, String)]) -> String {
    copy_result("CopyPartResult", etag, last_modified_ms, checksums)
}

/// One outcome of DeleteObjects. In quiet mode the caller leaves out `Deleted` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted {
        key: String,
        version_id: Option<String>,
    },
    Error {
        key: String,
        version_id: Option<String>,
        code: String,
        message: String,
    },
}

/// `<DeleteResult>` (DeleteObjects).
pub fn delete_result_xml(outcomes: &[DeleteOutcome]) -> String {
    let root = "DeleteResult";
    let mut d = Doc::new(root);
    for o in outcomes {
        match o {
            DeleteOutcome::Deleted { key, version_id } => {
                d.open("Deleted");
                d.text("Key", key);
                d.opt("VersionId", version_id.as_deref());
                d.close("Deleted");
            }
            DeleteOutcome::Error {
                key,
                version_id,
                code,
                message,
            } => {
                d.open("Error");
                d.text("Key", key);
                d.opt("VersionId", version_id.as_deref());
                d.text("Code", code);
                d.text("Message", message);
                d.close("Error");
            }
        }
    }
    d.finish(root)
}

/// One part of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEntry {
    pub part_number: u32,
    pub last_modified_ms: u64,
    pub etag: String,
    pub size: u64,
    pub checksums: Vec<(String, String)>,
}

/// ListParts result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListParts {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number_marker: u32,
    /// S3 sends the last listed part number (0 when none).
    pub next_part_number_marker: u32,
    pub max_parts: u32,
    pub is_truncated: bool,
    pub initiator: Owner,
    pub owner: Owner,
    pub checksum_algorithm: Option<String>,
    pub parts: Vec<PartEntry>,
}

/// `<ListPartsResult>`.
pub fn list_parts_xml(r: &ListParts) -> String {
    let root = "ListPartsResult";
    let mut d = Doc::new(root);
    d.text("Bucket", &r.bucket);
    d.text("Key", &r.key);
    d.text("UploadId", &r.upload_id);
    d.num("PartNumberMarker", r.part_number_marker.into());
    d.num("NextPartNumberMarker", r.next_part_number_marker.into());
    d.num("MaxParts", r.max_parts.into());
    d.bool("IsTruncated", r.is_truncated);
    for p in &r.parts {
        d.open("Part");
        d.num("PartNumber", p.part_number.into());
        d.time("LastModified", p.last_modified_ms);
        d.text("ETag", &p.etag);
        d.num("Size", p.size);
        d.checksums(&p.checksums);
        d.close("Part");
    }
    d.owner("Initiator", &r.initiator);
    d.owner("Owner", &r.owner);
    d.text("StorageClass", "STANDARD");
    d.opt("ChecksumAlgorithm", r.checksum_algorithm.as_deref());
    d.finish(root)
}

/// One upload of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub owner: Owner,
    pub initiator: Owner,
    pub checksum_algorithm: Option<String>,
}

/// ListMultipartUploads result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListUploads {
    pub bucket: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub next_key_marker: String,
    pub next_upload_id_marker: String,
    pub max_uploads: u64,
    pub is_truncated: bool,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub encoding_type: Option<String>,
    pub uploads: Vec<UploadEntry>,
    pub common_prefixes: Vec<String>,
}

/// `<ListMultipartUploadsResult>`.
pub fn list_multipart_uploads_xml(r: &ListUploads) -> String {
    let root = "ListMultipartUploadsResult";
    let mut d = Doc::new(root);
    d.text("Bucket", &r.bucket);
    d.text("KeyMarker", &r.key_marker);
    d.text("UploadIdMarker", &r.upload_id_marker);
    d.text("NextKeyMarker", &r.next_key_marker);
    d.text("NextUploadIdMarker", &r.next_upload_id_marker);
    d.text("Prefix", &r.prefix);
    d.opt("Delimiter", r.delimiter.as_deref());
    d.num("MaxUploads", r.max_uploads);
    d.bool("IsTruncated", r.is_truncated);
    d.opt("EncodingType", r.encoding_type.as_deref());
    for u in &r.uploads {
        d.open("Upload");
        d.text("Key", &u.key);
        d.text("UploadId", &u.upload_id);
        d.owner("Initiator", &u.initiator);
        d.owner("Owner", &u.owner);
        d.text("StorageClass", "STANDARD");
        d.time("Initiated", u.initiated_ms);
        d.opt("ChecksumAlgorithm", u.checksum_algorithm.as_deref());
        d.close("Upload");
    }
    d.common_prefixes(&r.common_prefixes);
    d.finish(root)
}

/// `<VersioningConfiguration>` (GetBucketVersioning). `None`: versioning never enabled
/// (an empty element, as S3 answers); otherwise `Enabled` or `Suspended`.
pub fn versioning_xml(status: Option<&str>) -> String {
    let root = "VersioningConfiguration";
    let mut d = Doc::new(root);
    d.opt("Status", status);
    d.finish(root)
}

/// `<PostResponse>`: the answer to a POST form upload with `success_action_status` 201.
pub fn post_response_xml(location: &str, bucket: &str, key: &str, etag: &str) -> String {
    let root = "PostResponse";
    let mut d = Doc::new(root);
    d.text("Location", location);
    d.text("Bucket", bucket);
    d.text("Key", key);
    d.text("ETag", etag);
    d.finish(root)
}

// ------------------------------------------------------------------------- parsing

/// A parsed element: local name, its text (all text and CDATA directly inside it,
/// concatenated, unescaped, not trimmed), and its child elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub(crate) fn children_named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'s Node> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

fn local_name(name: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(name)
        .map(str::to_string)
        .map_err(|_| XmlError::Malformed("element name is not UTF-8".into()))
}

/// Attaches a finished element to its parent, or makes it the root.
fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(XmlError::Malformed("more than one root element".into())),
    }
    Ok(())
}

/// Checks a start tag (depth, single root, attribute count and syntax, no duplicate
/// attribute) and makes its node.
fn open_node(
    e: &quick_xml::events::BytesStart,
    stack: &[Node],
    root: &Option<Node>,
) -> Result<Node, XmlError> {
    if stack.is_empty() && root.is_some() {
        return Err(XmlError::Malformed("more than one root element".into()));
    }
    if stack.len() >= XML_DEPTH_MAX {
        return Err(XmlError::TooDeep);
    }
    let mut attributes = e.attributes();
    // quick-xml's duplicate check compares each attribute with all before it: quadratic.
    attributes.with_checks(false);
    let mut names: Vec<&[u8]> = Vec::new();
    for a in attributes {
        let a = a.map_err(malformed)?;
        if names.len() == XML_ATTRIBUTES_PER_ELEMENT_MAX {
            return Err(XmlError::TooLarge);
        }
        let name = a.key.into_inner();
        if names.contains(&name) {
            return Err(XmlError::Malformed("duplicate attribute".into()));
        }
        names.push(name);
    }
    Ok(Node {
        name: local_name(e.local_name().as_ref())?,
        ..Node::default()
    })
}

/// NUL is no XML 1.0 character, not even as `&#x0;` (quick-xml lets it through): refused,
/// so that no NUL reaches a key or an answer that echoes one.
fn refuse_nul(text: &str) -> Result<(), XmlError> {
    if text.contains('\0') {
        return Err(XmlError::Malformed("NUL is not an XML character".into()));
    }
    Ok(())
}

/// Parses a whole document into its root element.
pub(crate) fn parse_tree(bytes: &[u8]) -> Result<Node, XmlError> {
    if bytes.len() > XML_BODY_BYTES_MAX {
        return Err(XmlError::TooLarge);
    }
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            elements += 1;
            if elements > XML_ELEMENTS_MAX {
                return Err(XmlError::TooLarge);
            }
        }
        match event {
            Event::Start(e) => {
                let node = open_node(&e, &stack, &root)?;
                stack.push(node);
            }
            Event::Empty(e) => {
                let node = open_node(&e, &stack, &root)?;
                attach(&mut stack, &mut root, node)?;
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unmatched end tag".into()))?;
                attach(&mut stack, &mut root, node)?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(malformed)?;
                refuse_nul(&text)?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(XmlError::Malformed("text outside the root".into())),
                }
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c).map_err(malformed)?;
                refuse_nul(text)?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(text),
                    None => return Err(XmlError::Malformed("CDATA outside the root".into())),
                }
            }
            Event::DocType(_) => return Err(XmlError::Malformed("DOCTYPE not allowed".into())),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".into()))
}

pub(crate) fn expect_root(node: &Node, expected: &'static str) -> Result<(), XmlError> {
    if node.name == expected {
        Ok(())
    } else {
        Err(XmlError::UnexpectedRoot {
            expected,
            found: node.name.clone(),
        })
    }
}

/// One `<Part>` of a CompleteMultipartUpload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    /// As the client sent it (usually with quotes; rclone sends none), whitespace trimmed.
    pub etag: String,
    /// `Checksum*` elements: `(element name, value)`, e.g. `("ChecksumCRC32", "yG5QvA==")`.
    pub checksums: Vec<(String, String)>,
}

/// Parses a CompleteMultipartUpload body, keeping the parts in the order sent (the
/// caller checks that they ascend).
pub fn parse_complete_multipart_upload(bytes: &[u8]) -> Result<Vec<CompletedPart>, XmlError> {
    let root = parse_tree(bytes)?;
    expect_root(&root, "CompleteMultipartUpload")?;
    root.children_named("Part")
        .map(|p| {
            let number = p
                .child("PartNumber")
                .ok_or(XmlError::MissingElement("PartNumber"))?;
            let part_number =
                number
                    .text
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| XmlError::InvalidValue {
                        element: "PartNumber",
                        value: number.text.clone(),
                    })?;
            let etag = p
                .child("ETag")
                .ok_or(XmlError::MissingElement("ETag"))?
                .text
                .trim()
                .to_string();
            let checksums = p
                .children
                .iter()
                .filter(|c| c.name.starts_with("Checksum"))
                .map(|c| (c.name.clone(), c.text.trim().to_string()))
                .collect();
            Ok(CompletedPart {
                part_number,
                etag,
                checksums,
            })
        })
        .collect()
}

/// One `<Object>` of a Delete body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectToDelete {
    /// Exactly as sent (not trimmed: keys may begin or end with spaces).
    pub key: String,
    pub version_id: Option<String>,
}

/// A DeleteObjects request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteRequest {
    pub quiet: bool,
    pub objects: Vec<ObjectToDelete>,
}

/// Most keys in one DeleteObjects request, as on S3.
pub const DELETE_OBJECTS_MAX: usize = 1000;

/// Parses a Delete (DeleteObjects) body: 1 to `DELETE_OBJECTS_MAX` objects, as S3 wants.
pub fn parse_delete(bytes: &[u8]) -> Result<DeleteRequest, XmlError> {
    let root = parse_tree(bytes)?;
    expect_root(&root, "Delete")?;
    match root.children_named("Object").count() {
        0 => return Err(XmlError::MissingElement("Object")),
        n if n > DELETE_OBJECTS_MAX => return Err(XmlError::TooLarge),
        _ => {}
    }
    let quiet = match root.child("Quiet") {
        None => false,
        Some(q) => match q.text.trim() {
            t if t.eq_ignore_ascii_case("true") => true,
            t if t.eq_ignore_ascii_case("false") => false,
            _ => {
                return Err(XmlError::InvalidValue {
                    element: "Quiet",
                    value: q.text.clone(),
                })
            }
        },
    };
    let objects = root
        .children_named("Object")
        .map(|o| {
            Ok(ObjectToDelete {
                key: o
                    .child("Key")
                    .ok_or(XmlError::MissingElement("Key"))?
                    .text
                    .clone(),
                version_id: o.child("VersionId").map(|v| v.text.trim().to_string()),
            })
        })
        .collect::<Result<_, XmlError>>()?;
    Ok(DeleteRequest { quiet, objects })
}

/// Parses a CreateBucketConfiguration body: the `LocationConstraint`, if any. An empty
/// (or whitespace-only) body gives `None`, as does an empty `LocationConstraint`.
pub fn parse_create_bucket_configuration(bytes: &[u8]) -> Result<Option<String>, XmlError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let root = parse_tree(bytes)?;
    expect_root(&root, "CreateBucketConfiguration")?;
    Ok(root
        .child("LocationConstraint")
        .map(|l| l.text.trim().to_string())
        .filter(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    const T: u64 = 1_795_620_943_000; // 2026-11-25T15:35:43.000Z

    fn owner() -> Owner {
        Owner {
            id: "GKowner".into(),
            display_name: "owner".into(),
        }
    }

    fn unwrap_root(doc: &str, root: &str) -> String {
        let head = format!("{NS}<{root} xmlns=\"{S3_XMLNS}\">");
        assert!(doc.starts_with(&head), "{doc}");
        let tail = format!("</{root}>");
        assert!(doc.ends_with(&tail), "{doc}");
        doc[head.len()..doc.len() - tail.len()].to_string()
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601_ms(T), "2026-11-25T15:35:43.000Z");
        assert_eq!(iso8601_ms(T + 7), "2026-11-25T15:35:43.007Z");
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"c'd"), "a&lt;b&gt;&amp;&quot;c&apos;d");
        assert_eq!(escape("é日本\u{1F600}"), "é日本\u{1F600}");
        assert_eq!(escape("\t\n\r\u{1}\u{7f}"), "&#x9;&#xA;&#xD;&#x1;&#x7F;");
    }

    #[test]
    fn error_document() {
        let x = error_xml(
            "NoSuchKey",
            "The specified key does not exist.",
            "/b/a<b",
            "req1",
            &[("Key", "a<b")],
        );
        assert_eq!(
            x,
            format!(
                "{NS}<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>\
                 <Key>a&lt;b</Key><Resource>/b/a&lt;b</Resource><RequestId>req1</RequestId></Error>"
            )
        );
        let x = error_xml("AccessDenied", "Access Denied", "", "r", &[]);
        assert!(!x.contains("Resource"));
        assert!(parse_tree(x.as_bytes()).is_ok());
    }

    #[test]
    fn list_buckets_document() {
        let x = list_buckets_xml(
            &owner(),
            &[BucketEntry {
                name: "wire".into(),
                creation_ms: T,
            }],
            None,
            None,
        );
        assert_eq!(
            unwrap_root(&x, "ListAllMyBucketsResult"),
            "<Owner><ID>GKowner</ID><DisplayName>owner</DisplayName></Owner><Buckets><Bucket>\
             <Name>wire</Name><CreationDate>2026-11-25T15:35:43.000Z</CreationDate></Bucket></Buckets>"
        );
        let x = list_buckets_xml(&owner(), &[], Some("dG9r"), Some("a&b"));
        assert!(x.ends_with(
            "</Buckets><ContinuationToken>dG9r</ContinuationToken><Prefix>a&amp;b</Prefix>\
             </ListAllMyBucketsResult>"
        ));
    }

    fn entry(key: &str, owner: Option<Owner>) -> ObjectEntry {
        ObjectEntry {
            key: key.into(),
            last_modified_ms: T,
            etag: "\"781e5e245d69b566979b86e28d23f2c7\"".into(),
            size: 10,
            owner,
            checksum_algorithm: None,
        }
    }

    #[test]
    fn list_objects_v1_document() {
        let x = list_objects_v1_xml(&ListObjectsV1 {
            bucket: "wire".into(),
            prefix: "".into(),
            marker: "".into(),
            next_marker: Some("a&b".into()),
            max_keys: 1000,
            delimiter: Some("/".into()),
            is_truncated: true,
            encoding_type: None,
            contents: vec![entry("a&b", Some(owner()))],
            common_prefixes: vec!["dir/".into()],
        });
        assert_eq!(
            unwrap_root(&x, "ListBucketResult"),
            "<Name>wire</Name><Prefix></Prefix><Marker></Marker><NextMarker>a&amp;b</NextMarker>\
             <MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>\
             <Contents><Key>a&amp;b</Key><LastModified>2026-11-25T15:35:43.000Z</LastModified>\
             <ETag>&quot;781e5e245d69b566979b86e28d23f2c7&quot;</ETag><Size>10</Size>\
             <Owner><ID>GKowner</ID><DisplayName>owner</DisplayName></Owner>\
             <StorageClass>STANDARD</StorageClass></Contents>\
             <CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>"
        );
        let tree = parse_tree(x.as_bytes()).unwrap();
        assert_eq!(
            tree.child("Contents").unwrap().child("Key").unwrap().text,
            "a&b"
        );
    }

    #[test]
    fn list_objects_v2_document() {
        let x = list_objects_v2_xml(&ListObjectsV2 {
            bucket: "wire".into(),
            prefix: "p".into(),
            max_keys: 2,
            key_count: 1,
            delimiter: None,
            is_truncated: false,
            continuation_token: Some("tok".into()),
            next_continuation_token: None,
            start_after: Some("s".into()),
            encoding_type: Some("url".into()),
            contents: vec![ObjectEntry {
                checksum_algorithm: Some("CRC32".into()),
                ..entry("p%20q", None)
            }],
            common_prefixes: vec![],
        });
        assert_eq!(
            unwrap_root(&x, "ListBucketResult"),
            "<Name>wire</Name><Prefix>p</Prefix><MaxKeys>2</MaxKeys><KeyCount>1</KeyCount>\
             <IsTruncated>false</IsTruncated><ContinuationToken>tok</ContinuationToken>\
             <StartAfter>s</StartAfter><EncodingType>url</EncodingType>\
             <Contents><Key>p%20q</Key><LastModified>2026-11-25T15:35:43.000Z</LastModified>\
             <ETag>&quot;781e5e245d69b566979b86e28d23f2c7&quot;</ETag>\
             <ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>10</Size>\
             <StorageClass>STANDARD</StorageClass></Contents>"
        );
    }

    #[test]
    fn list_versions_document() {
        let x = list_versions_xml(&ListVersions {
            bucket: "wire".into(),
            max_keys: 1000,
            versions: vec![
                VersionEntry {
                    key: "k".into(),
                    version_id: "null".into(),
                    is_latest: true,
                    is_delete_marker: false,
                    last_modified_ms: T,
                    etag: "\"e\"".into(),
                    size: 3,
                    owner: owner(),
                },
                VersionEntry {
                    key: "d".into(),
                    version_id: "null".into(),
                    is_latest: true,
                    is_delete_marker: true,
                    last_modified_ms: T,
                    etag: String::new(),
                    size: 0,
                    owner: owner(),
                },
            ],
            common_prefixes: vec!["x/".into()],
            ..ListVersions::default()
        });
        let body = unwrap_root(&x, "ListVersionsResult");
        assert!(body.starts_with(
            "<Name>wire</Name><Prefix></Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>\
             <MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Version><Key>k</Key>\
             <VersionId>null</VersionId><IsLatest>true</IsLatest>"
        ), "{body}");
        assert!(body.contains("<DeleteMarker><Key>d</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>2026-11-25T15:35:43.000Z</LastModified><Owner>"));
        assert!(body.ends_with("<CommonPrefixes><Prefix>x/</Prefix></CommonPrefixes>"));
        parse_tree(x.as_bytes()).unwrap();
    }

    #[test]
    fn small_documents() {
        assert_eq!(
            location_constraint_xml("us-east-1"),
            format!("{NS}<LocationConstraint xmlns=\"{S3_XMLNS}\"></LocationConstraint>")
        );
        assert_eq!(
            unwrap_root(&location_constraint_xml("garage"), "LocationConstraint"),
            "garage"
        );
        assert_eq!(
            unwrap_root(
                &initiate_multipart_upload_xml("b", "k&", "u1"),
                "InitiateMultipartUploadResult"
            ),
            "<Bucket>b</Bucket><Key>k&amp;</Key><UploadId>u1</UploadId>"
        );
        let c = complete_multipart_upload_xml(&CompleteResult {
            location: "http://h/b/k".into(),
            bucket: "b".into(),
            key: "k".into(),
            etag: "\"4e10-2\"".into(),
            checksums: vec![("ChecksumCRC32".into(), "abc=-2".into())],
        });
        assert_eq!(
            unwrap_root(&c, "CompleteMultipartUploadResult"),
            "<Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key>\
             <ETag>&quot;4e10-2&quot;</ETag><ChecksumCRC32>abc=-2</ChecksumCRC32>"
        );
        assert_eq!(
            unwrap_root(&copy_object_xml("\"e\"", T, &[]), "CopyObjectResult"),
            "<LastModified>2026-11-25T15:35:43.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
        );
        assert_eq!(
            unwrap_root(
                &copy_part_xml("\"e\"", T, &[("ChecksumSHA256".into(), "x".into())]),
                "CopyPartResult"
            ),
            "<LastModified>2026-11-25T15:35:43.000Z</LastModified><ETag>&quot;e&quot;</ETag>\
             <ChecksumSHA256>x</ChecksumSHA256>"
        );
        assert_eq!(
            unwrap_root(&versioning_xml(None), "VersioningConfiguration"),
            ""
        );
        assert_eq!(
            unwrap_root(&versioning_xml(Some("Enabled")), "VersioningConfiguration"),
            "<Status>Enabled</Status>"
        );
        assert_eq!(
            unwrap_root(
                &delete_result_xml(&[
                    DeleteOutcome::Deleted {
                        key: "a".into(),
                        version_id: None
                    },
                    DeleteOutcome::Error {
                        key: "b".into(),
                        version_id: Some("null".into()),
                        code: "AccessDenied".into(),
                        message: "Access Denied".into()
                    },
                ]),
                "DeleteResult"
            ),
            "<Deleted><Key>a</Key></Deleted><Error><Key>b</Key><VersionId>null</VersionId>\
             <Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        );
    }

    #[test]
    fn list_parts_and_uploads_documents() {
        let x = list_parts_xml(&ListParts {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u".into(),
            part_number_marker: 0,
            next_part_number_marker: 1,
            max_parts: 1000,
            is_truncated: false,
            initiator: owner(),
            owner: owner(),
            checksum_algorithm: None,
            parts: vec![PartEntry {
                part_number: 1,
                last_modified_ms: T,
                etag: "\"p\"".into(),
                size: 5,
                checksums: vec![("ChecksumCRC32".into(), "yG5QvA==".into())],
            }],
        });
        assert_eq!(
            unwrap_root(&x, "ListPartsResult"),
            "<Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId><PartNumberMarker>0</PartNumberMarker>\
             <NextPartNumberMarker>1</NextPartNumberMarker><MaxParts>1000</MaxParts>\
             <IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber>\
             <LastModified>2026-11-25T15:35:43.000Z</LastModified><ETag>&quot;p&quot;</ETag>\
             <Size>5</Size><ChecksumCRC32>yG5QvA==</ChecksumCRC32></Part>\
             <Initiator><ID>GKowner</ID><DisplayName>owner</DisplayName></Initiator>\
             <Owner><ID>GKowner</ID><DisplayName>owner</DisplayName></Owner>\
             <StorageClass>STANDARD</StorageClass>"
        );
        let x = list_multipart_uploads_xml(&ListUploads {
            bucket: "b".into(),
            max_uploads: 1000,
            delimiter: Some("/".into()),
            uploads: vec![UploadEntry {
                key: "k".into(),
                upload_id: "u".into(),
                initiated_ms: T,
                owner: owner(),
                initiator: owner(),
                checksum_algorithm: None,
            }],
            common_prefixes: vec!["d/".into()],
            ..ListUploads::default()
        });
        assert_eq!(
            unwrap_root(&x, "ListMultipartUploadsResult"),
            "<Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>\
             <NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker><Prefix></Prefix>\
             <Delimiter>/</Delimiter><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>\
             <Upload><Key>k</Key><UploadId>u</UploadId>\
             <Initiator><ID>GKowner</ID><DisplayName>owner</DisplayName></Initiator>\
             <Owner><ID>GKowner</ID><DisplayName>owner</DisplayName></Owner>\
             <StorageClass>STANDARD</StorageClass><Initiated>2026-11-25T15:35:43.000Z</Initiated></Upload>\
             <CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes>"
        );
    }

    // ------------------------------------------------------------- parsers

    #[test]
    fn complete_bodies_from_the_wire() {
        // boto3 / AWS CLI v1: raw quotes, checksums.
        let boto3 = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"0b5e53c213786454fc7f98edd8ded582"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>At163w==</ChecksumCRC32></Part><Part><ETag>"c6fe027ffe971b349cc46d259a77d639"</ETag><PartNumber>2</PartNumber><ChecksumCRC32>U2x9nA==</ChecksumCRC32></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart_upload(boto3).unwrap();
        assert_eq!(
            parts,
            vec![
                CompletedPart {
                    part_number: 1,
                    etag: "\"0b5e53c213786454fc7f98edd8ded582\"".into(),
                    checksums: vec![("ChecksumCRC32".into(), "At163w==".into())],
                },
                CompletedPart {
                    part_number: 2,
                    etag: "\"c6fe027ffe971b349cc46d259a77d639\"".into(),
                    checksums: vec![("ChecksumCRC32".into(), "U2x9nA==".into())],
                },
            ]
        );
        // aws-sdk-rust: &quot;, checksum before PartNumber.
        let sdk = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&quot;74843a3ab193a389bced899402d99d5f&quot;</ETag><ChecksumCRC32>yG5QvA==</ChecksumCRC32><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart_upload(sdk).unwrap();
        assert_eq!(parts[0].etag, "\"74843a3ab193a389bced899402d99d5f\"");
        assert_eq!(parts[0].part_number, 1);
        // rclone (Go): &#34;. rust-s3: no namespace, no quotes, PartNumber first.
        let go = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&#34;34690d006b22592c59daf5ae23c9fbae&#34;</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>&#34;1e8cfc32b7c82e1324e48ea3652e5e18&#34;</ETag></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart_upload(go).unwrap();
        assert_eq!(parts[1].etag, "\"1e8cfc32b7c82e1324e48ea3652e5e18\"");
        assert_eq!(parts[1].part_number, 2);
        let rs3 = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>34690d006b22592c59daf5ae23c9fbae</ETag></Part></CompleteMultipartUpload>";
        let parts = parse_complete_multipart_upload(rs3).unwrap();
        assert_eq!(parts[0].etag, "34690d006b22592c59daf5ae23c9fbae");
        assert!(parts[0].checksums.is_empty());
        // Pretty-printed with a prolog, a prefix and a comment.
        let pretty = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<s3:CompleteMultipartUpload xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  <!-- c -->\n  <s3:Part>\n    <s3:PartNumber> 7 </s3:PartNumber>\n    <s3:ETag>\"e\"</s3:ETag>\n  </s3:Part>\n</s3:CompleteMultipartUpload>\n";
        let parts = parse_complete_multipart_upload(pretty).unwrap();
        assert_eq!((parts[0].part_number, parts[0].etag.as_str()), (7, "\"e\""));
        assert_eq!(
            parse_complete_multipart_upload(b"<CompleteMultipartUpload/>").unwrap(),
            vec![]
        );
    }

    #[test]
    fn complete_body_errors() {
        let p = |b: &str| parse_complete_multipart_upload(b.as_bytes());
        assert_eq!(
            p("<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>"),
            Err(XmlError::MissingElement("PartNumber"))
        );
        assert_eq!(
            p("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"),
            Err(XmlError::MissingElement("ETag"))
        );
        for bad in ["x", "-1", "4294967296", ""] {
            assert!(matches!(
                p(&format!("<CompleteMultipartUpload><Part><PartNumber>{bad}</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>")),
                Err(XmlError::InvalidValue { element: "PartNumber", .. })
            ), "{bad}");
        }
        assert!(matches!(
            p("<Delete/>"),
            Err(XmlError::UnexpectedRoot { .. })
        ));
    }

    #[test]
    fn delete_bodies() {
        let boto3 = br#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>cli-api-small</Key></Object><Quiet>true</Quiet></Delete>"#;
        assert_eq!(
            parse_delete(boto3).unwrap(),
            DeleteRequest {
                quiet: true,
                objects: vec![ObjectToDelete {
                    key: "cli-api-small".into(),
                    version_id: None
                }],
            }
        );
        let odd = "<Delete><Object><Key> a&lt;&amp;&quot;&apos;&gt; é&#xD;</Key><VersionId>null</VersionId></Object>\
                   <Object><Key><![CDATA[<raw>]]></Key></Object><Object><Key></Key></Object></Delete>";
        let d = parse_delete(odd.as_bytes()).unwrap();
        assert!(!d.quiet);
        assert_eq!(d.objects[0].key, " a<&\"'> é\r");
        assert_eq!(d.objects[0].version_id.as_deref(), Some("null"));
        assert_eq!(d.objects[1].key, "<raw>");
        assert_eq!(d.objects[2].key, "");
        assert_eq!(
            parse_delete(b"<Delete><Object><VersionId>x</VersionId></Object></Delete>"),
            Err(XmlError::MissingElement("Key"))
        );
        assert!(matches!(
            parse_delete(b"<Delete><Object><Key>k</Key></Object><Quiet>yes</Quiet></Delete>"),
            Err(XmlError::InvalidValue {
                element: "Quiet",
                ..
            })
        ));
        // Issue 25: S3 wants 1 to 1000 objects; a NUL (even as a reference) is no XML.
        for empty in [
            "<Delete></Delete>",
            "<Delete/>",
            "<Delete><Quiet>true</Quiet></Delete>",
        ] {
            assert_eq!(
                parse_delete(empty.as_bytes()),
                Err(XmlError::MissingElement("Object"))
            );
        }
        let objects = |n: usize| {
            let o = "<Object><Key>k</Key></Object>".repeat(n);
            format!("<Delete>{o}</Delete>")
        };
        assert_eq!(
            parse_delete(objects(1000).as_bytes())
                .unwrap()
                .objects
                .len(),
            1000
        );
        assert_eq!(
            parse_delete(objects(1001).as_bytes()),
            Err(XmlError::TooLarge)
        );
        for nul in ["a&#x0;b", "a&#0;b", "a\0b", "<![CDATA[a\0b]]>"] {
            let body = format!("<Delete><Object><Key>{nul}</Key></Object></Delete>");
            assert!(
                matches!(parse_delete(body.as_bytes()), Err(XmlError::Malformed(_))),
                "{nul:?}"
            );
        }
    }

    #[test]
    fn create_bucket_bodies() {
        assert_eq!(parse_create_bucket_configuration(b""), Ok(None));
        assert_eq!(parse_create_bucket_configuration(b" \r\n"), Ok(None));
        assert_eq!(
            parse_create_bucket_configuration(
                br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"#
            ),
            Ok(Some("eu-west-1".into()))
        );
        assert_eq!(
            parse_create_bucket_configuration(b"<CreateBucketConfiguration/>"),
            Ok(None)
        );
        assert_eq!(
            parse_create_bucket_configuration(
                b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>"
            ),
            Ok(None)
        );
        assert!(parse_create_bucket_configuration(b"<Foo/>").is_err());
    }

    #[test]
    fn malformed_documents() {
        for bad in [
            "<Delete>",
            "<Delete></Delet>",
            "<Delete></Delete><Delete></Delete>",
            "<Delete/><x/>",
            "text<Delete/>",
            "<Delete/>text",
            "<Delete>&bogus;</Delete>",
            "<Delete>&#xZZ;</Delete>",
            "</Delete>",
            "<Delete a></Delete>",
            "<Delete a=\"1\" a=\"2\"></Delete>",
            "<!DOCTYPE d [<!ENTITY x \"y\">]><Delete/>",
            "<Delete><Object><Key>a</Object></Key></Delete>",
            "",
            "   ",
            "<<Delete/>",
        ] {
            assert!(parse_delete(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_delete(b"<Delete>\xff</Delete>").is_err());
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(parse_tree(deep.as_bytes()), Err(XmlError::TooDeep));
    }

    /// Issue 25: four DeleteObjects bodies of one element with 150,000 attributes froze a
    /// node for minutes (quick-xml's duplicate check is quadratic). They are refused at
    /// the 17th attribute now; documents just inside every limit still parse.
    #[test]
    fn hostile_documents_are_refused_by_their_limits() {
        let mut many = String::from("<Delete");
        for i in 0..150_000 {
            many.push_str(&format!(" a{i}=\"v\""));
        }
        many.push_str("></Delete>");
        assert_eq!(parse_delete(many.as_bytes()), Err(XmlError::TooLarge));
        let attrs = |n: usize| {
            let a: String = (0..n).map(|i| format!(" a{i}=\"v\"")).collect();
            format!("<Delete{a}><Object><Key>k</Key></Object></Delete>")
        };
        assert!(parse_delete(attrs(XML_ATTRIBUTES_PER_ELEMENT_MAX).as_bytes()).is_ok());
        assert_eq!(
            parse_delete(attrs(XML_ATTRIBUTES_PER_ELEMENT_MAX + 1).as_bytes()),
            Err(XmlError::TooLarge)
        );
        let elements = |n: usize| format!("<Delete>{}</Delete>", "<x/>".repeat(n - 1));
        assert!(parse_tree(elements(XML_ELEMENTS_MAX).as_bytes()).is_ok());
        assert_eq!(
            parse_tree(elements(XML_ELEMENTS_MAX + 1).as_bytes()),
            Err(XmlError::TooLarge)
        );
        let big = format!("<Delete>{}</Delete>", " ".repeat(XML_BODY_BYTES_MAX));
        assert_eq!(parse_tree(big.as_bytes()), Err(XmlError::TooLarge));
        // Duplicates are still refused, namespaced or not.
        assert!(parse_tree(b"<D xmlns:a=\"u\" a:b=\"1\" a:b=\"2\"/>").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn escaped_text_round_trips(key in "[\\PC\t\r\n\u{1}-\u{8}]{0,40}") {
            let x = delete_result_xml(&[DeleteOutcome::Deleted { key: key.clone(), version_id: None }]);
            let tree = parse_tree(x.as_bytes()).unwrap();
            let got = &tree.child("Deleted").unwrap().child("Key").unwrap().text;
            prop_assert_eq!(got, &key);
        }

        #[test]
        fn delete_body_round_trips(keys in prop::collection::vec("\\PC{0,30}", 1..5), quiet in any::<bool>()) {
            let mut body = format!("<Delete xmlns=\"{S3_XMLNS}\">");
            for k in &keys {
                body.push_str("<Object><Key>");
                escape_into(&mut body, k);
                body.push_str("</Key></Object>");
            }
            body.push_str(&format!("<Quiet>{quiet}</Quiet></Delete>"));
            let d = parse_delete(body.as_bytes()).unwrap();
            prop_assert_eq!(d.quiet, quiet);
            prop_assert_eq!(d.objects.into_iter().map(|o| o.key).collect::<Vec<_>>(), keys);
        }

        #[test]
        fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_complete_multipart_upload(&bytes);
            let _ = parse_delete(&bytes);
            let _ = parse_create_bucket_configuration(&bytes);
        }

        #[test]
        fn parsers_never_panic_on_near_xml(
            parts in prop::collection::vec(prop::sample::select(vec![
                "<", ">", "/", "</", "<Part>", "</Part>", "<PartNumber>", "</PartNumber>", "1",
                "<ETag>", "</ETag>", "&quot;", "&", ";", "\"", "<![CDATA[", "]]>", "<?xml", "?>",
                "<!--", "-->", "<CompleteMultipartUpload>", "</CompleteMultipartUpload>", " ", "x:",
                "<Delete>", "</Delete>", "<Object>", "<Key>", "</Key>", "</Object>", "=", "a",
            ]), 0..40),
        ) {
            let body = parts.concat();
            let _ = parse_complete_multipart_upload(body.as_bytes());
            let _ = parse_delete(body.as_bytes());
            let _ = parse_create_bucket_configuration(body.as_bytes());
        }
    }
}
