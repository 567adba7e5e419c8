//! Multipart uploads: create, upload part, complete (ETag = MD5 of the part MD5s, `-N`),
//! abort, list parts, list uploads. An upload and its parts live on the shard that owns the
//! object's partition, so completing one is a local operation there.

use std::rc::Rc;

use super::conn::{Body, Response};
use super::objects::{self, ingest, release_blocks, release_data, stored_headers};
use super::router::Caller;
use super::shard_api::ShardRequest;
use super::{now_ms, Shard};
use crate::constants::MULTIPART_PART_COUNT_MAX;
use crate::http::RequestHead;
use crate::meta::types::{
    BlockRef, BucketRow, ObjectData, ObjectRow, PartRow, PartSummary, Stamp, UploadRow,
};
use crate::s3::checksum;
use crate::s3::error::S3Error;
use crate::s3::xml;

/// S3's smallest part (but the last).
const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;

pub async fn fetch_upload(
    shard: &Rc<Shard>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<UploadRow, S3Error> {
    shard
        .call(ShardRequest::GetUpload {
            bucket: bucket.id,
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
        .upload()?
        .ok_or(S3Error::NoSuchUpload)
}

pub async fn create(
    shard: &Rc<Shard>,
    head: &RequestHead,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let checksum_algorithm = match head.header("x-amz-checksum-algorithm") {
        Some(name) => Some(
            checksum::parse_algorithm(name)
                .ok_or_else(|| S3Error::InvalidRequest(format!("unsupported checksum {name}")))?,
        ),
        None => None,
    };
    let upload_id = hex::encode(rand::random::<[u8; 16]>());
    let row = UploadRow {
        bucket: bucket.id,
        key: key.into(),
        upload_id: upload_id.clone(),
        initiated_ms: now_ms(),
        headers: stored_headers(head)?,
        checksum_algorithm,
    };
    shard.call(ShardRequest::PutUpload { row }).await.done()?;
    let mut response = Response::xml(
        200,
        xml::initiate_multipart_upload_xml(&bucket.name, key, &upload_id),
    );
    if let Some(a) = checksum_algorithm {
        response = response.header("x-amz-checksum-algorithm", checksum::algorithm_name(a));
    }
    Ok(response)
}

pub async fn upload_part(
    shard: &Rc<Shard>,
    head: &RequestHead,
    body: &mut Body<'_>,
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
    fetch_upload(shard, bucket, key, upload_id).await?;
    let ingested = ingest(shard, head, body, caller, false).await?;
    let blocks = match ingested.data {
        ObjectData::Blocks(blocks) => blocks,
        ObjectData::Inline(bytes) => {
            assert!(
                bytes.is_empty(),
                "ingest without inline keeps only empty bodies inline"
            );
            Vec::new()
        }
    };
    let etag = checksum::etag_single(ingested.md5);
    let row = PartRow {
        upload_id: upload_id.into(),
        number,
        bytes: ingested.bytes,
        etag: etag.clone(),
        last_modified_ms: now_ms(),
        checksum: ingested.checksum.clone(),
        blocks: blocks.clone(),
    };
    let put = ShardRequest::PutPart {
        bucket: bucket.id,
        key: key.into(),
        row,
    };
    match shard.call(put).await.part() {
        Ok(Some(replaced)) => release_blocks(shard, &replaced.blocks).await,
        Ok(None) => {}
        Err(e) => {
            release_blocks(shard, &blocks).await;
            return Err(e.into());
        }
    }
    // The upload may have been aborted or completed while the part was being written.
    if fetch_upload(shard, bucket, key, upload_id).await.is_err() {
        return Err(S3Error::NoSuchUpload);
    }
    let mut response = Response::new(200).header("ETag", etag);
    if let Some(c) = &ingested.checksum {
        response = response.header(checksum::header_name(c.algorithm), c.base64.clone());
    }
    Ok(response)
}

async fn all_parts(
    shard: &Rc<Shard>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Vec<PartRow>, S3Error> {
    let mut parts = Vec::new();
    let mut after = 0;
    loop {
        let request = ShardRequest::ListParts {
            bucket: bucket.id,
            key: key.into(),
            upload_id: upload_id.into(),
            after,
            limit: 1000,
        };
        let page = shard.call(request).await.parts()?;
        let Some(last) = page.last() else {
            return Ok(parts);
        };
        after = last.number;
        parts.extend(page);
    }
}

pub async fn complete(
    shard: &Rc<Shard>,
    head: &RequestHead,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
    body: &[u8],
) -> Result<Response, S3Error> {
    let wanted = xml::parse_complete_multipart_upload(body)?;
    if wanted.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    let upload = fetch_upload(shard, bucket, key, upload_id).await?;
    let stored = all_parts(shard, bucket, key, upload_id).await?;
    let mut chosen: Vec<&PartRow> = Vec::with_capacity(wanted.len());
    let mut previous = 0;
    for part in &wanted {
        if part.part_number <= previous {
            return Err(S3Error::InvalidPartOrder);
        }
        previous = part.part_number;
        let found = stored
            .iter()
            .find(|p| p.number == part.part_number && super::etags_equal(&p.etag, &part.etag))
            .ok_or(S3Error::InvalidPart)?;
        chosen.push(found);
    }
    for part in &chosen[..chosen.len() - 1] {
        if part.bytes < PART_BYTES_MIN {
            return Err(S3Error::EntityTooSmall);
        }
    }
    let md5s: Vec<[u8; 16]> = chosen
        .iter()
        .map(|p| checksum::parse_part_etag(&p.etag).expect("part ETags are MD5s we computed"))
        .collect();
    let etag = checksum::etag_multipart(&md5s);
    let mut blocks: Vec<BlockRef> = Vec::new();
    let mut parts = Vec::with_capacity(chosen.len());
    let mut bytes = 0;
    for part in &chosen {
        parts.push(PartSummary {
            number: part.number,
            bytes: part.bytes,
            etag: part.etag.clone(),
            first_block: blocks.len() as u32,
            checksum: part.checksum.clone(),
        });
        bytes += part.bytes;
        blocks.extend(part.blocks.iter().cloned());
    }
    let checksum = match upload.checksum_algorithm {
        Some(algorithm) => {
            let values: Option<Vec<&str>> = chosen
                .iter()
                .map(|p| p.checksum.as_ref().map(|c| c.base64.as_str()))
                .collect();
            match values {
                Some(values) => Some(checksum::composite_checksum(algorithm, &values)?),
                None => None,
            }
        }
        None => None,
    };
    let now = now_ms();
    let row = ObjectRow {
        bucket: bucket.id,
        key: key.into(),
        stamp: Stamp {
            time_ms: now,
            node: shard.node_id,
        },
        bytes,
        etag: etag.clone(),
        last_modified_ms: now,
        headers: upload.headers.clone(),
        checksum: checksum.clone(),
        parts,
        data: ObjectData::Blocks(blocks),
    };
    let condition = objects::write_condition(head)?;
    let replaced = shard
        .call(ShardRequest::PutObject { row, condition })
        .await
        .object()?;
    if let Some(replaced) = replaced {
        release_data(shard, &replaced.data).await;
    }
    // The object now holds the blocks of the chosen parts; parts not chosen are released.
    let removed = remove_upload(shard, bucket, key, upload_id).await?;
    for part in removed {
        if !chosen
            .iter()
            .any(|c| c.number == part.number && c.etag == part.etag)
        {
            release_blocks(shard, &part.blocks).await;
        }
    }
    let result = xml::CompleteResult {
        location: format!("/{}/{}", bucket.name, key),
        bucket: bucket.name.clone(),
        key: key.into(),
        etag,
        checksums: checksum
            .iter()
            .map(|c| {
                (
                    checksum::xml_element(c.algorithm).to_string(),
                    c.base64.clone(),
                )
            })
            .collect(),
    };
    Ok(Response::xml(
        200,
        xml::complete_multipart_upload_xml(&result),
    ))
}

/// Removes an upload and its parts; answers with the parts, whose blocks the caller
/// keeps or releases.
async fn remove_upload(
    shard: &Rc<Shard>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Vec<PartRow>, S3Error> {
    let request = ShardRequest::DeleteUpload {
        bucket: bucket.id,
        key: key.into(),
        upload_id: upload_id.into(),
    };
    Ok(shard.call(request).await.parts()?)
}

pub async fn abort(
    shard: &Rc<Shard>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Response, S3Error> {
    fetch_upload(shard, bucket, key, upload_id).await?;
    let removed = remove_upload(shard, bucket, key, upload_id).await?;
    for part in removed {
        release_blocks(shard, &part.blocks).await;
    }
    Ok(Response::new(204))
}

pub async fn list_parts(
    shard: &Rc<Shard>,
    head: &RequestHead,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Response, S3Error> {
    let upload = fetch_upload(shard, bucket, key, upload_id).await?;
    let max_parts: usize = head
        .query_param("max-parts")
        .map(|v| {
            v.parse()
                .map_err(|_| S3Error::InvalidArgument("bad max-parts".into()))
        })
        .transpose()?
        .unwrap_or(1000)
        .min(1000);
    let marker: u32 = head
        .query_param("part-number-marker")
        .map(|v| {
            v.parse()
                .map_err(|_| S3Error::InvalidArgument("bad part-number-marker".into()))
        })
        .transpose()?
        .unwrap_or(0);
    let request = ShardRequest::ListParts {
        bucket: bucket.id,
        key: key.into(),
        upload_id: upload_id.into(),
        after: marker,
        limit: max_parts + 1,
    };
    let mut parts = shard.call(request).await.parts()?;
    let truncated = parts.len() > max_parts;
    parts.truncate(max_parts);
    let listing = xml::ListParts {
        bucket: bucket.name.clone(),
        key: key.into(),
        upload_id: upload_id.into(),
        part_number_marker: marker,
        next_part_number_marker: parts.last().map_or(marker, |p| p.number),
        max_parts: max_parts as u32,
        is_truncated: truncated,
        parts: parts
            .iter()
            .map(|p| xml::PartEntry {
                part_number: p.number,
                last_modified_ms: p.last_modified_ms,
                etag: p.etag.clone(),
                size: p.bytes,
                checksums: p
                    .checksum
                    .iter()
                    .map(|c| {
                        (
                            checksum::xml_element(c.algorithm).to_string(),
                            c.base64.clone(),
                        )
                    })
                    .collect(),
            })
            .collect(),
        checksum_algorithm: upload
            .checksum_algorithm
            .map(|a| checksum::algorithm_name(a).to_string()),
        initiator: super::router::bucket_owner(bucket),
        owner: super::router::bucket_owner(bucket),
    };
    Ok(Response::xml(200, xml::list_parts_xml(&listing)))
}

pub async fn list_uploads(
    shard: &Rc<Shard>,
    head: &RequestHead,
    bucket: &BucketRow,
) -> Result<Response, S3Error> {
    let prefix = head.query_param("prefix").unwrap_or("").to_string();
    let key_marker = head.query_param("key-marker").unwrap_or("").to_string();
    let max: usize = head
        .query_param("max-uploads")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let mut uploads = Vec::new();
    for s in 0..shard.shards {
        let request = ShardRequest::ListUploads {
            bucket: bucket.id,
            prefix: prefix.clone(),
            key_marker: key_marker.clone(),
            limit: max + 1,
        };
        uploads.extend(shard.call_on(s, request).await.uploads()?);
    }
    uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let owner = super::router::bucket_owner(bucket);
    let listing = xml::ListUploads {
        bucket: bucket.name.clone(),
        key_marker,
        upload_id_marker: head
            .query_param("upload-id-marker")
            .unwrap_or("")
            .to_string(),
        next_key_marker: uploads.last().map(|u| u.key.clone()).unwrap_or_default(),
        next_upload_id_marker: uploads
            .last()
            .map(|u| u.upload_id.clone())
            .unwrap_or_default(),
        max_uploads: max as u64,
        is_truncated: truncated,
        prefix,
        delimiter: None,
        encoding_type: head.query_param("encoding-type").map(str::to_string),
        uploads: uploads
            .iter()
            .map(|u| xml::UploadEntry {
                key: u.key.clone(),
                upload_id: u.upload_id.clone(),
                initiated_ms: u.initiated_ms,
                owner: owner.clone(),
                initiator: owner.clone(),
                checksum_algorithm: u
                    .checksum_algorithm
                    .map(|a| checksum::algorithm_name(a).to_string()),
            })
            .collect(),
        common_prefixes: Vec::new(),
    };
    Ok(Response::xml(
        200,
        xml::list_multipart_uploads_xml(&listing),
    ))
}
