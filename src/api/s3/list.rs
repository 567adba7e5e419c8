//! Listing objects. Objects are spread over the shards by partition, so a listing merges
//! the shards' pages: each round asks every shard for its next keys after the cursor, and
//! only keys up to the smallest last key of a full page are certain to be in order.
//! A delimiter folds keys into common prefixes; after one, the cursor jumps past it.

use std::rc::Rc;

use super::router;
use super::router::Caller;
use crate::api::conn::Response;
use crate::api::Gateway;
use crate::http::{self, RequestHead};
use crate::meta::types::{BucketRow, ObjectRow};
use crate::model::ops::DataRequest;
use crate::s3::error::S3Error;
use crate::s3::{checksum, xml};

/// Keys asked of each shard per round.
const PAGE_KEYS: usize = 1000;

pub struct Listing {
    pub contents: Vec<ObjectRow>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned (where the next page starts).
    pub last: Option<String>,
}

/// The smallest string greater than every key starting with `prefix` (as far as valid
/// UTF-8 keys go): the cursor that skips a whole common prefix.
fn past_prefix(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

async fn page(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    prefix: &str,
    cursor: &str,
    limit: usize,
) -> Result<(Vec<ObjectRow>, Option<String>), S3Error> {
    let mut merged = Vec::new();
    let mut horizon: Option<String> = None;
    for s in 0..shard.shards {
        let request = DataRequest::ListObjects {
            bucket: bucket.id,
            prefix: prefix.into(),
            start_after: cursor.into(),
            limit,
        };
        let rows = shard.call_on(s, request).await.objects()?;
        if rows.len() == limit {
            let last = rows.last().expect("full page").key.clone();
            if horizon.as_ref().is_none_or(|h| last < *h) {
                horizon = Some(last);
            }
        }
        merged.extend(rows);
    }
    merged.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    if let Some(h) = &horizon {
        merged.retain(|r| r.key.as_bytes() <= h.as_bytes());
    }
    Ok((merged, horizon))
}

/// Lists up to `max_keys` entries (keys and common prefixes) after `start_after`.
pub async fn collect(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: &str,
    max_keys: usize,
) -> Result<Listing, S3Error> {
    let mut listing = Listing {
        contents: Vec::new(),
        common_prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    // S3 answers `max-keys=0` with an empty page that is not truncated.
    if max_keys == 0 {
        return Ok(listing);
    }
    let mut cursor = start_after.to_string();
    // A marker inside a common prefix continues after that prefix.
    if let Some(d) = delimiter.filter(|d| !d.is_empty()) {
        if let Some(rest) = cursor.strip_prefix(prefix) {
            if let Some(i) = rest.find(d) {
                cursor = past_prefix(&format!("{prefix}{}", &rest[..i + d.len()]));
            }
        }
    }
    let limit = PAGE_KEYS.min(max_keys + 1).max(1);
    'rounds: loop {
        let (rows, horizon) = page(shard, bucket, prefix, &cursor, limit).await?;
        if rows.is_empty() {
            return Ok(listing);
        }
        for row in rows {
            let entries = listing.contents.len() + listing.common_prefixes.len();
            if entries == max_keys {
                listing.truncated = true;
                return Ok(listing);
            }
            let folded = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                let rest = &row.key[prefix.len()..];
                rest.find(d)
                    .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
            });
            match folded {
                Some(common) => {
                    cursor = past_prefix(&common);
                    listing.last = Some(common.clone());
                    listing.common_prefixes.push(common);
                    continue 'rounds;
                }
                None => {
                    cursor = row.key.clone();
                    listing.last = Some(row.key.clone());
                    listing.contents.push(row);
                }
            }
        }
        if horizon.is_none() {
            return Ok(listing);
        }
    }
}

fn max_keys(head: &RequestHead) -> Result<usize, S3Error> {
    match head.query_param("max-keys") {
        None => Ok(1000),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(1000))
            .map_err(|_| S3Error::InvalidArgument("max-keys must be a number".into())),
    }
}

fn encoder(head: &RequestHead) -> Result<fn(&str) -> String, S3Error> {
    match head.query_param("encoding-type") {
        None => Ok(|s: &str| s.to_string()),
        Some("url") => Ok(http::url_encode_key),
        Some(other) => Err(S3Error::InvalidArgument(format!(
            "bad encoding-type {other}"
        ))),
    }
}

fn entries(
    listing: &Listing,
    encode: fn(&str) -> String,
    owner: Option<&xml::Owner>,
) -> Vec<xml::ObjectEntry> {
    listing
        .contents
        .iter()
        .map(|r| xml::ObjectEntry {
            key: encode(&r.key),
            last_modified_ms: r.last_modified_ms,
            etag: r.etag.clone(),
            size: r.bytes,
            owner: owner.cloned(),
            checksum_algorithm: r
                .checksum
                .as_ref()
                .map(|c| checksum::algorithm_name(c.algorithm).to_string()),
        })
        .collect()
}

/// ListObjects (V1) and ListObjectsV2.
pub async fn list_objects(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    bucket: &BucketRow,
) -> Result<Response, S3Error> {
    let encode = encoder(head)?;
    let encoding_type = head.query_param("encoding-type").map(str::to_string);
    let v2 = head.query_param("list-type") == Some("2");
    let prefix = head.query_param("prefix").unwrap_or("");
    let delimiter = head.query_param("delimiter").filter(|d| !d.is_empty());
    let max_keys = max_keys(head)?;
    let continuation = head.query_param("continuation-token");
    let start = if v2 {
        match continuation {
            Some(token) => decode_token(token)?,
            None => head.query_param("start-after").unwrap_or("").to_string(),
        }
    } else {
        head.query_param("marker").unwrap_or("").to_string()
    };
    let listing = collect(shard, bucket, prefix, delimiter, &start, max_keys).await?;
    let next = listing.last.as_deref().filter(|_| listing.truncated);
    let owner = router::bucket_owner(bucket);
    let common_prefixes: Vec<String> = listing.common_prefixes.iter().map(|p| encode(p)).collect();
    let xml = if v2 {
        let fetch_owner = head.query_param("fetch-owner") == Some("true");
        xml::list_objects_v2_xml(&xml::ListObjectsV2 {
            bucket: bucket.name.clone(),
            prefix: encode(prefix),
            max_keys: max_keys as u64,
            key_count: (listing.contents.len() + listing.common_prefixes.len()) as u64,
            delimiter: delimiter.map(encode),
            is_truncated: listing.truncated,
            continuation_token: continuation.map(str::to_string),
            next_continuation_token: next.map(encode_token),
            start_after: head.query_param("start-after").map(encode),
            encoding_type,
            contents: entries(&listing, encode, fetch_owner.then_some(&owner)),
            common_prefixes,
        })
    } else {
        xml::list_objects_v1_xml(&xml::ListObjectsV1 {
            bucket: bucket.name.clone(),
            prefix: encode(prefix),
            marker: encode(head.query_param("marker").unwrap_or("")),
            // S3 sends NextMarker only with a delimiter; clients use the last key otherwise.
            next_marker: next.filter(|_| delimiter.is_some()).map(encode),
            max_keys: max_keys as u64,
            delimiter: delimiter.map(encode),
            is_truncated: listing.truncated,
            encoding_type,
            contents: entries(&listing, encode, Some(&owner)),
            common_prefixes,
        })
    };
    Ok(Response::xml(200, xml))
}

/// ListObjectVersions on a bucket without versioning: every object is its one version,
/// `null`, and the latest.
pub async fn list_versions(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    bucket: &BucketRow,
) -> Result<Response, S3Error> {
    let encode = encoder(head)?;
    let prefix = head.query_param("prefix").unwrap_or("");
    let delimiter = head.query_param("delimiter").filter(|d| !d.is_empty());
    let max_keys = max_keys(head)?;
    let key_marker = head.query_param("key-marker").unwrap_or("");
    let listing = collect(shard, bucket, prefix, delimiter, key_marker, max_keys).await?;
    let next = listing.last.as_deref().filter(|_| listing.truncated);
    let owner = router::bucket_owner(bucket);
    let versions = listing
        .contents
        .iter()
        .map(|r| xml::VersionEntry {
            key: encode(&r.key),
            version_id: "null".into(),
            is_latest: true,
            is_delete_marker: false,
            last_modified_ms: r.last_modified_ms,
            etag: r.etag.clone(),
            size: r.bytes,
            owner: owner.clone(),
        })
        .collect();
    let result = xml::ListVersions {
        bucket: bucket.name.clone(),
        prefix: encode(prefix),
        key_marker: encode(key_marker),
        version_id_marker: head
            .query_param("version-id-marker")
            .unwrap_or("")
            .to_string(),
        next_key_marker: next.map(encode),
        next_version_id_marker: next.map(|_| "null".to_string()),
        max_keys: max_keys as u64,
        delimiter: delimiter.map(encode),
        is_truncated: listing.truncated,
        encoding_type: head.query_param("encoding-type").map(str::to_string),
        versions,
        common_prefixes: listing.common_prefixes.iter().map(|p| encode(p)).collect(),
    };
    Ok(Response::xml(200, xml::list_versions_xml(&result)))
}

/// Largest `max-buckets` of ListBuckets, as on S3.
const MAX_BUCKETS_MAX: usize = 10_000;

/// What a ListBuckets request asks: `prefix`, `continuation-token` (decoded: the last name
/// of the previous page) and `max-buckets` (`None`: every bucket, on one page).
#[derive(Debug, PartialEq, Eq)]
struct BucketsQuery {
    prefix: Option<String>,
    after: Option<String>,
    max: Option<usize>,
}

/// As S3: without `max-buckets`, a request that names none of `prefix`,
/// `continuation-token` and `bucket-region` gets every bucket; one that names any of them
/// gets pages of 10,000.
fn buckets_query(head: &RequestHead) -> Result<BucketsQuery, S3Error> {
    let paged = ["prefix", "continuation-token", "bucket-region"]
        .iter()
        .any(|p| head.query_param(p).is_some());
    let max = match head.query_param("max-buckets") {
        None => paged.then_some(MAX_BUCKETS_MAX),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_BUCKETS_MAX).contains(&n) => Some(n),
            _ => {
                return Err(S3Error::InvalidArgument(
                    "max-buckets must be an integer from 1 to 10000".into(),
                ))
            }
        },
    };
    Ok(BucketsQuery {
        prefix: head.query_param("prefix").map(str::to_string),
        after: head
            .query_param("continuation-token")
            .map(decode_token)
            .transpose()?,
        max,
    })
}

/// One page of bucket names (sorted): those under the prefix after the cursor, and
/// whether more follow.
fn bucket_page<'n>(
    names: impl Iterator<Item = &'n str>,
    query: &BucketsQuery,
) -> (Vec<&'n str>, bool) {
    let prefix = query.prefix.as_deref().unwrap_or("");
    let after = query.after.as_deref();
    let max = query.max.unwrap_or(usize::MAX);
    let mut page = Vec::new();
    for name in names.filter(|n| n.starts_with(prefix) && after.is_none_or(|a| *n > a)) {
        if page.len() == max {
            return (page, true);
        }
        page.push(name);
    }
    (page, false)
}

/// ListBuckets: the buckets the caller may read or owns, paged as S3 does since 2024
/// (`max-buckets`, `continuation-token`, `prefix`; `bucket-region` other than the node's
/// lists nothing, since every bucket is in the node's region).
pub fn list_buckets(
    shard: &Gateway,
    head: &RequestHead,
    caller: &Caller,
) -> Result<Response, S3Error> {
    let query = buckets_query(head)?;
    let other_region = head
        .query_param("bucket-region")
        .is_some_and(|r| r != shard.config.s3_region);
    let global = shard.global.borrow();
    let mine = global.buckets().filter(|b| {
        !other_region
            && b.grants
                .iter()
                .any(|(id, p)| *id == caller.key.access_key_id && (p.read || p.owner))
    });
    let (names, truncated) = bucket_page(mine.map(|b| b.name.as_str()), &query);
    let buckets: Vec<xml::BucketEntry> = names
        .iter()
        .filter_map(|n| global.bucket(n))
        .map(|b| xml::BucketEntry {
            name: b.name.clone(),
            creation_ms: b.created_ms,
        })
        .collect();
    let owner = xml::Owner {
        id: caller.key.access_key_id.clone(),
        display_name: caller.key.name.clone(),
    };
    let next = names.last().filter(|_| truncated).map(|n| encode_token(n));
    let body = xml::list_buckets_xml(&owner, &buckets, next.as_deref(), query.prefix.as_deref());
    Ok(Response::xml(200, body))
}

/// Continuation tokens are opaque to clients: the base64 of the cursor key.
fn encode_token(cursor: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor)
}

fn decode_token(token: &str) -> Result<String, S3Error> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::InvalidArgument("The continuation token provided is incorrect".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(prefix: Option<&str>, after: Option<&str>, max: Option<usize>) -> BucketsQuery {
        BucketsQuery {
            prefix: prefix.map(str::to_string),
            after: after.map(str::to_string),
            max,
        }
    }

    #[test]
    fn bucket_pages() {
        let names = ["a1", "a2", "a3", "b1"];
        let page = |q: &BucketsQuery| bucket_page(names.iter().copied(), q);
        assert_eq!(page(&query(None, None, None)), (names.to_vec(), false));
        assert_eq!(page(&query(None, None, Some(2))), (vec!["a1", "a2"], true));
        assert_eq!(
            page(&query(None, Some("a2"), Some(2))),
            (vec!["a3", "b1"], false)
        );
        assert_eq!(page(&query(None, Some("a2"), Some(1))), (vec!["a3"], true));
        assert_eq!(
            page(&query(Some("a"), None, Some(3))),
            (vec!["a1", "a2", "a3"], false)
        );
        assert_eq!(
            page(&query(Some("a"), Some("a1"), None)),
            (vec!["a2", "a3"], false)
        );
        assert_eq!(page(&query(Some("c"), None, Some(1))), (vec![], false));
        assert_eq!(decode_token(&encode_token("a2")).unwrap(), "a2");
        assert!(decode_token("%%%").is_err());
    }
}
