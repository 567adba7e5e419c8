//! Multipart uploads: create, upload part, complete (ETag = MD5 of the part MD5s, `-N`),
//! abort, list parts, list uploads. An upload and its parts live on the shard that owns the
//! object's partition, so completing one is a local operation there.

use std::rc::Rc;

use super::objects::{self, ingest, stored_headers, Destination};
use super::router::Caller;
use crate::api::conn::{Body, Response};
use crate::api::Gateway;
use crate::constants::MULTIPART_PART_COUNT_MAX;
use crate::http::RequestHead;
use crate::meta::types::{
    BlockRef, BucketRow, Checksum, CompletedUpload, Holder, Lww, ObjectData, ObjectRow, PartRow,
    PartSummary, UploadRow, UploadState, VersionId,
};
use crate::model::ops::DataRequest;
use crate::model::ops::{Completion, PutIf};
use crate::model::{release_blocks, release_dropped};
use crate::s3::checksum;
use crate::s3::error::S3Error;
use crate::s3::xml;

/// S3's smallest part (but the last).
const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;

pub async fn fetch_upload(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<UploadRow, S3Error> {
    shard
        .call(DataRequest::GetUpload {
            bucket: bucket.id,
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
        .upload()?
        .ok_or(S3Error::NoSuchUpload)
}

pub async fn create(
    shard: &Rc<Gateway>,
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
    // The upload's id is the version its Complete makes.
    let upload_id = VersionId::random().to_hex();
    let stamp = shard.clock.stamp();
    let row = UploadRow {
        bucket: bucket.id,
        key: key.into(),
        upload_id: upload_id.clone(),
        initiated_ms: stamp.time_ms,
        headers: stored_headers(head)?,
        checksum_algorithm,
        state: Lww::new(stamp, UploadState::InProgress),
    };
    shard.call(DataRequest::PutUpload { row }).await.done()?;
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
    shard: &Rc<Gateway>,
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
    // This upload of the part holds its blocks: a part uploaded again is another holder.
    let holder = Holder::random();
    let to = Destination {
        holder,
        inline_ok: false,
    };
    let ingested = ingest(shard, head, body, caller, to).await?;
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
    let stamp = shard.clock.stamp();
    let row = PartRow {
        upload_id: upload_id.into(),
        number,
        stamp,
        holder,
        bytes: ingested.bytes,
        etag: etag.clone(),
        last_modified_ms: stamp.time_ms,
        checksum: ingested.checksum.clone(),
        blocks,
    };
    store_part(shard, bucket, key, row).await?;
    let mut response = Response::new(200).header("ETag", etag);
    if let Some(c) = &ingested.checksum {
        response = response.header(checksum::header_name(c.algorithm), c.base64.clone());
    }
    Ok(response)
}

/// Stores a part whose blocks are stored: the upload's shard writes it only if the upload
/// is still in progress (it may have been aborted or completed while the part's body was
/// read), in the transaction that writes it. Releases the blocks of the part it replaces,
/// or, refused, its own.
pub async fn store_part(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
    row: PartRow,
) -> Result<(), S3Error> {
    let (holder, blocks) = (row.holder, row.blocks.clone());
    let put = DataRequest::PutPart {
        bucket: bucket.id,
        key: key.into(),
        row,
    };
    let outcome = shard.call(put).await.part();
    match outcome {
        Ok(PutIf::Written(replaced)) => {
            if let Some(replaced) = replaced {
                release_blocks(shard, replaced.holder, &replaced.blocks).await;
            }
            Ok(())
        }
        Ok(PutIf::Refused(_)) => {
            release_blocks(shard, holder, &blocks).await;
            Err(S3Error::NoSuchUpload)
        }
        Err(e) => {
            release_blocks(shard, holder, &blocks).await;
            Err(e.into())
        }
    }
}

async fn all_parts(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Vec<PartRow>, S3Error> {
    let mut parts = Vec::new();
    let mut after = 0;
    loop {
        let request = DataRequest::ListParts {
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

/// Times a Complete is tried again when a part it chose was uploaded again meanwhile.
const COMPLETE_TRIES_MAX: usize = 4;

/// CompleteMultipartUpload. The object is written, and the upload removed, by one
/// transaction on the upload's shard (`ShardStore::complete_upload`): of two Completes of
/// one upload, or a Complete and an Abort, exactly one acts. A Complete of an upload
/// completed before with the same parts (a client retrying after a lost answer) gets the
/// first answer again, as AWS gives it.
pub async fn complete(
    shard: &Rc<Gateway>,
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
    let condition = objects::write_condition(head)?;
    for _ in 0..COMPLETE_TRIES_MAX {
        let upload = match fetch_upload(shard, bucket, key, upload_id).await {
            Err(S3Error::NoSuchUpload) => {
                return completed_before(shard, bucket, key, upload_id, &wanted).await
            }
            other => other?,
        };
        let stored = all_parts(shard, bucket, key, upload_id).await?;
        let chosen = match choose_parts(&wanted, &stored) {
            // The parts went between the two reads: completed or aborted meanwhile.
            Err(S3Error::InvalidPart)
                if fetch_upload(shard, bucket, key, upload_id).await.is_err() =>
            {
                return completed_before(shard, bucket, key, upload_id, &wanted).await;
            }
            chosen => chosen?,
        };
        let row = object_of_parts(shard, bucket, key, &upload, &chosen)?;
        let request = DataRequest::CompleteUpload {
            row: row.clone(),
            upload_id: upload_id.into(),
            chosen,
            condition: condition.clone(),
        };
        match shard.call(request).await.completion()? {
            Completion::Completed { written, unused } => {
                release_dropped(shard, &written).await;
                for part in unused {
                    release_blocks(shard, part.holder, &part.blocks).await;
                }
                return Ok(complete_response(
                    bucket,
                    key,
                    &row.etag,
                    row.checksum.as_ref(),
                ));
            }
            Completion::AlreadyCompleted(done) => {
                return repeat_answer(bucket, key, &done, &wanted)
            }
            Completion::NoSuchUpload => return Err(S3Error::NoSuchUpload),
            Completion::PartsChanged => continue,
            Completion::Refused(current) => {
                let condition = condition.expect("only a condition refuses");
                return Err(crate::model::condition_refused(&condition, current.as_ref()).into());
            }
        }
    }
    Err(S3Error::InternalError(
        "the upload's parts kept changing while it was being completed".into(),
    ))
}

/// The parts a Complete body names, as stored: ascending numbers, matching ETags, every
/// part but the last at least 5 MiB.
fn choose_parts(
    wanted: &[xml::CompletedPart],
    stored: &[PartRow],
) -> Result<Vec<PartRow>, S3Error> {
    let mut chosen: Vec<PartRow> = Vec::with_capacity(wanted.len());
    let mut previous = 0;
    for part in wanted {
        if part.part_number <= previous {
            return Err(S3Error::InvalidPartOrder);
        }
        previous = part.part_number;
        let found = stored
            .iter()
            .find(|p| {
                p.number == part.part_number && crate::model::etags_equal(&p.etag, &part.etag)
            })
            .ok_or(S3Error::InvalidPart)?;
        chosen.push(found.clone());
    }
    for part in &chosen[..chosen.len() - 1] {
        if part.bytes < PART_BYTES_MIN {
            return Err(S3Error::EntityTooSmall);
        }
    }
    Ok(chosen)
}

/// The object a Complete makes of its parts.
fn object_of_parts(
    shard: &Gateway,
    bucket: &BucketRow,
    key: &str,
    upload: &UploadRow,
    chosen: &[PartRow],
) -> Result<ObjectRow, S3Error> {
    let md5s: Vec<[u8; 16]> = chosen
        .iter()
        .map(|p| checksum::parse_part_etag(&p.etag).expect("part ETags are MD5s we computed"))
        .collect();
    let etag = checksum::etag_multipart(&md5s);
    let mut blocks: Vec<BlockRef> = Vec::new();
    let mut parts = Vec::with_capacity(chosen.len());
    let mut bytes = 0;
    for part in chosen {
        parts.push(PartSummary {
            number: part.number,
            bytes: part.bytes,
            etag: part.etag.clone(),
            first_block: blocks.len() as u32,
            checksum: part.checksum.clone(),
            holder: part.holder,
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
    let stamp = shard.clock.stamp();
    let now = stamp.time_ms;
    // The upload's id names the version its Complete makes.
    let version = VersionId::from_hex(&upload.upload_id).unwrap_or_else(VersionId::random);
    Ok(ObjectRow {
        bucket: bucket.id,
        key: key.into(),
        version,
        stamp,
        bytes,
        etag,
        last_modified_ms: now,
        headers: upload.headers.clone(),
        checksum,
        parts,
        data: ObjectData::Blocks(blocks),
    })
}

/// A Complete of an upload that is not in progress: the first Complete's answer if it was
/// completed with these very parts, else NoSuchUpload.
async fn completed_before(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
    wanted: &[xml::CompletedPart],
) -> Result<Response, S3Error> {
    let request = DataRequest::GetCompletedUpload {
        bucket: bucket.id,
        key: key.into(),
        upload_id: upload_id.into(),
    };
    match shard.call(request).await.completed()? {
        Some(done) => repeat_answer(bucket, key, &done, wanted),
        None => Err(S3Error::NoSuchUpload),
    }
}

fn repeat_answer(
    bucket: &BucketRow,
    key: &str,
    done: &CompletedUpload,
    wanted: &[xml::CompletedPart],
) -> Result<Response, S3Error> {
    let same = done.parts.len() == wanted.len()
        && done.parts.iter().zip(wanted).all(|((number, etag), w)| {
            *number == w.part_number && crate::model::etags_equal(etag, &w.etag)
        });
    if !same {
        return Err(S3Error::NoSuchUpload);
    }
    Ok(complete_response(
        bucket,
        key,
        &done.etag,
        done.checksum.as_ref(),
    ))
}

fn complete_response(
    bucket: &BucketRow,
    key: &str,
    etag: &str,
    checksum: Option<&Checksum>,
) -> Response {
    let result = xml::CompleteResult {
        location: format!("/{}/{}", bucket.name, key),
        bucket: bucket.name.clone(),
        key: key.into(),
        etag: etag.into(),
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
    Response::xml(200, xml::complete_multipart_upload_xml(&result))
}

/// AbortMultipartUpload: removes the upload and its parts in one transaction, and
/// releases their blocks. An upload that is not in progress (completed, aborted, never
/// made) is NoSuchUpload, as AWS answers.
pub async fn abort(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
    upload_id: &str,
) -> Result<Response, S3Error> {
    let request = DataRequest::DeleteUpload {
        bucket: bucket.id,
        key: key.into(),
        upload_id: upload_id.into(),
        stamp: shard.clock.stamp(),
    };
    let (upload, removed) = shard.call(request).await.upload_removed()?;
    for part in removed {
        release_blocks(shard, part.holder, &part.blocks).await;
    }
    match upload {
        Some(_) => Ok(Response::new(204)),
        None => Err(S3Error::NoSuchUpload),
    }
}

pub async fn list_parts(
    shard: &Rc<Gateway>,
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
    let request = DataRequest::ListParts {
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
    shard: &Rc<Gateway>,
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
        let request = DataRequest::ListUploads {
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
