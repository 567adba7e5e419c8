//! From a parsed request to an S3 operation: addressing (path-style and virtual-host-style),
//! authentication (SigV4), permissions, dispatch. Errors become S3 XML here, in one place.

use std::cell::Cell;
use std::rc::Rc;

use super::{access, attributes, bucket_config, list, multipart, objects, part_copy};
use crate::api::conn::{Body, Response};
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::meta::types::{BucketRow, KeyRow};
use crate::model::bucket;
use crate::model::now_ms;
use crate::s3::error::S3Error;
use crate::s3::sigv2;
use crate::s3::sigv4::{self, AuthInput, PayloadMode, Verified};
use crate::s3::xml;

thread_local! {
    static REQUEST_COUNTER: Cell<u64> = const { Cell::new(0) };
}

/// A request id unique on this node: shard, then a per-shard counter.
pub fn request_id(shard: &Gateway) -> String {
    let n = REQUEST_COUNTER.with(|c| {
        let n = c.get() + 1;
        c.set(n);
        n
    });
    format!("{:02X}{:014X}", shard.id, n)
}

pub fn error_response(error: &S3Error, resource: &str, rid: &str, head_only: bool) -> Response {
    let status = error.status();
    if status == 500 {
        tracing::error!(request_id = rid, "{error:?}");
    }
    let mut response = if head_only || status == 304 {
        Response::new(status)
    } else {
        Response::xml(
            status,
            xml::error_xml(error.code(), &error.message(), resource, rid, &[]),
        )
    };
    if let S3Error::MethodNotAllowed = error {
        response
            .headers
            .push(("Allow".into(), "GET, PUT, HEAD, POST, DELETE".into()));
    }
    response
}

/// Who is asking, once the signature checked out.
pub struct Caller {
    pub key: KeyRow,
    pub verified: Verified,
}

impl Caller {
    pub fn payload(&self) -> &PayloadMode {
        &self.verified.payload
    }
}

/// The caller, or `None` for an unsigned (anonymous) request.
fn authenticate(shard: &Gateway, head: &RequestHead) -> Result<Option<Caller>, S3Error> {
    let input = AuthInput {
        method: &head.method,
        raw_path: &head.raw_path,
        raw_query: &head.raw_query,
        headers: &head.headers,
    };
    let now_s = (now_ms() / 1000) as i64;
    if let Some(presigned) = sigv2::parse(&input)? {
        let key = shard
            .global
            .borrow()
            .key(&presigned.access_key_id)
            .cloned()
            .ok_or(S3Error::InvalidAccessKeyId)?;
        let vhost = vhost_bucket(shard, head);
        sigv2::verify(
            &input,
            vhost.as_deref(),
            &presigned,
            &key.secret_access_key,
            now_s,
        )?;
        let verified = Verified {
            access_key_id: key.access_key_id.clone(),
            signing_key: [0; 32],
            amz_date: String::new(),
            scope: String::new(),
            seed_signature: String::new(),
            payload: PayloadMode::UnsignedPayload,
        };
        return Ok(Some(Caller { key, verified }));
    }
    let Some(parsed) = sigv4::parse(&input)? else {
        return Ok(None);
    };
    sigv4::check_region(&parsed, &shard.config.s3_region)?;
    let key = shard
        .global
        .borrow()
        .key(&parsed.access_key_id)
        .cloned()
        .ok_or(S3Error::InvalidAccessKeyId)?;
    let verified = sigv4::verify(&input, &parsed, &key.secret_access_key, now_s)?;
    Ok(Some(Caller { key, verified }))
}

/// The bucket named by the Host header under `--s3-root-domain`, if any.
fn vhost_bucket(shard: &Gateway, head: &RequestHead) -> Option<String> {
    let root = shard.config.s3_root_domain.as_ref()?;
    let host = head.header("host")?;
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.strip_suffix(root.as_str())
        .and_then(|b| b.strip_suffix('.'))
        .map(str::to_string)
}

/// Bucket and key named by the request, from the Host header (virtual-host style under
/// `--s3-root-domain`) or from the path.
pub(crate) fn address<'h>(
    shard: &Gateway,
    head: &'h RequestHead,
) -> (Option<String>, Option<&'h str>) {
    let path = head.path.strip_prefix('/').unwrap_or(&head.path);
    if let Some(bucket) = vhost_bucket(shard, head) {
        return (Some(bucket), (!path.is_empty()).then_some(path));
    }
    if path.is_empty() {
        return (None, None);
    }
    match path.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => (Some(bucket.to_string()), Some(key)),
        Some((bucket, _)) => (Some(bucket.to_string()), None),
        None => (Some(path.to_string()), None),
    }
}

/// The bucket a request on the S3 listener names, if any.
pub fn request_bucket(shard: &Gateway, head: &RequestHead) -> Option<String> {
    address(shard, head).0
}

pub use super::op::{Need, S3Op};

pub fn check(caller: &Caller, bucket: &BucketRow, need: Need) -> Result<(), S3Error> {
    let granted = bucket
        .grants
        .iter()
        .find(|(id, _)| *id == caller.key.access_key_id)
        .map(|(_, p)| *p)
        .unwrap_or_default();
    let ok = match need {
        Need::Read => granted.read || granted.owner,
        Need::Write => granted.write || granted.owner,
        Need::Owner => granted.owner,
    };
    if ok {
        Ok(())
    } else {
        Err(S3Error::AccessDenied(format!(
            "key {} lacks the permission on bucket {}",
            caller.key.access_key_id, bucket.name
        )))
    }
}

/// The owner shown in listings: the first key with owner rights on the bucket.
pub fn bucket_owner(bucket: &BucketRow) -> xml::Owner {
    let id = bucket
        .grants
        .iter()
        .find(|(_, p)| p.owner)
        .map(|(id, _)| id.clone());
    let id = id.unwrap_or_default();
    xml::Owner {
        display_name: id.clone(),
        id,
    }
}

pub fn lookup_bucket(shard: &Gateway, name: &str) -> Result<BucketRow, S3Error> {
    shard
        .global
        .borrow()
        .bucket(name)
        .cloned()
        .ok_or(S3Error::NoSuchBucket)
}

/// Sets up the body's decoding for the payload mode the signature declared. The framing
/// follows `x-amz-content-sha256` alone, as on S3: `Content-Encoding: aws-chunked` on a
/// payload that is not `STREAMING-…` frames nothing (and is not stored either).
pub fn prepare_body(body: &mut Body<'_>, caller: &Caller) {
    match caller.payload() {
        PayloadMode::StreamingSigned => {
            body.enable_aws_chunked(Some(sigv4::ChunkVerifier::new(&caller.verified)), false);
        }
        PayloadMode::StreamingSignedTrailer => {
            body.enable_aws_chunked(Some(sigv4::ChunkVerifier::new(&caller.verified)), true);
        }
        PayloadMode::StreamingUnsignedTrailer => body.enable_aws_chunked(None, false),
        PayloadMode::UnsignedPayload | PayloadMode::Sha256(_) => {}
    }
}

/// Reads a small request body (XML) whole, checking its signed SHA-256 if there is one.
pub async fn read_small_body(
    body: &mut Body<'_>,
    head: &RequestHead,
    caller: &Caller,
) -> Result<Vec<u8>, S3Error> {
    prepare_body(body, caller);
    let bytes = body.read_to_end(xml::XML_BODY_BYTES_MAX).await?;
    if let PayloadMode::Sha256(expected) = caller.payload() {
        let actual: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        if &actual != expected {
            return Err(S3Error::XAmzContentSHA256Mismatch);
        }
    }
    if let Some(md5) = head.header("content-md5") {
        let expected = crate::s3::checksum::parse_content_md5(md5)?;
        let actual: [u8; 16] = md5_many::md5(&bytes);
        if actual != expected {
            return Err(S3Error::BadDigest(None));
        }
    }
    Ok(bytes)
}

use sha2::Digest;

/// Dispatches one request, whose operation (`op`) the connection worked out.
pub async fn handle(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    body: &mut Body<'_>,
) -> Result<Response, S3Error> {
    // Browsers sign neither CORS preflights nor form uploads (the form carries its own).
    match op {
        S3Op::PreflightCors => {
            let (bucket, _) = address(shard, head);
            return super::cors::preflight(shard, head, bucket.as_deref());
        }
        S3Op::PostObject { form: true } => {
            if let (Some(bucket), None) = address(shard, head) {
                return super::post_object::handle(shard, head, body, &bucket).await;
            }
        }
        _ => {}
    }
    let authenticated = authenticate(shard, head)?;
    let (bucket, key) = address(shard, head);
    let Some(caller) = authenticated else {
        return access::anonymous(shard, op, head, bucket.as_deref(), key).await;
    };
    let Some(bucket) = bucket else {
        return match op {
            S3Op::ListBuckets => list::list_buckets(shard, head, &caller),
            _ => Err(S3Error::MethodNotAllowed),
        };
    };
    match key {
        None => bucket_op(shard, op, head, body, &caller, &bucket).await,
        Some(key) => {
            if key.len() > crate::constants::OBJECT_KEY_BYTES_MAX {
                return Err(S3Error::KeyTooLongError);
            }
            if key.contains('\0') {
                return Err(S3Error::InvalidArgument(
                    "object keys may not contain NUL".into(),
                ));
            }
            let row = lookup_bucket(shard, &bucket)?;
            object_op(shard, op, head, body, &caller, &row, key).await
        }
    }
}

/// An operation on a bucket. What is refused whatever the bucket is refused first; then
/// the bucket is looked up and the caller's permission on it checked, as `op` needs.
async fn bucket_op(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &str,
) -> Result<Response, S3Error> {
    use S3Op as Op;
    match op {
        Op::Unsupported { sub, .. } => {
            return Err(S3Error::NotImplemented(format!(
                "bucket subresource ?{sub}"
            )))
        }
        Op::MethodNotAllowed { sub: None } => return Err(S3Error::MethodNotAllowed),
        Op::CreateBucket => return create_bucket(shard, head, body, caller, bucket).await,
        // Form uploads (multipart/form-data) went to post_object before authentication.
        Op::PostObject { .. } => {
            return Err(S3Error::MalformedPOSTRequest(
                "The body of your POST request is not well-formed multipart/form-data.".into(),
            ))
        }
        _ => {}
    }
    let row = lookup_bucket(shard, bucket)?;
    if let Some(need) = op.need() {
        check(caller, &row, need)?;
    }
    match op {
        Op::GetBucketWebsite
        | Op::PutBucketWebsite
        | Op::DeleteBucketWebsite
        | Op::MethodNotAllowed {
            sub: Some("website"),
        } => super::super::website::bucket_website_op(shard, op, head, body, caller, &row).await,
        Op::GetBucketCors
        | Op::PutBucketCors
        | Op::DeleteBucketCors
        | Op::MethodNotAllowed { sub: Some("cors") } => {
            super::cors::bucket_cors_op(shard, op, head, body, caller, &row).await
        }
        Op::DeleteBucket => {
            bucket::delete_empty_bucket(shard, &row).await?;
            Ok(Response::new(204))
        }
        Op::HeadBucket => {
            Ok(Response::new(200).header("x-amz-bucket-region", &shard.config.s3_region))
        }
        Op::GetBucketLocation => {
            let region = &shard.config.s3_region;
            let text = if region == "us-east-1" {
                ""
            } else {
                region.as_str()
            };
            Ok(Response::xml(200, xml::location_constraint_xml(text)))
        }
        Op::GetBucketVersioning => Ok(Response::xml(200, xml::versioning_xml(None))),
        Op::ListMultipartUploads => multipart::list_uploads(shard, head, &row).await,
        Op::ListObjectVersions => list::list_versions(shard, head, &row).await,
        Op::ListObjects | Op::ListObjectsV2 => list::list_objects(shard, head, &row).await,
        Op::DeleteObjects => {
            let xml_body = read_small_body(body, head, caller).await?;
            objects::delete_objects(shard, &row, &xml_body).await
        }
        // The bucket subresources kept in its row, and their wrong methods.
        _ => bucket_config::run(shard, op, head, body, caller, &row).await,
    }
}

/// An operation on an object of an existing bucket: refused whatever the object is, or
/// checked against the permission it needs, then done.
async fn object_op(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    use S3Op as Op;
    match op {
        Op::Unsupported { sub, .. } => {
            return Err(S3Error::NotImplemented(format!(
                "object subresource ?{sub}"
            )))
        }
        Op::MethodNotAllowed { .. } => return Err(S3Error::MethodNotAllowed),
        _ => {}
    }
    if let Some(need) = op.need() {
        check(caller, bucket, need)?;
    }
    let upload_id = head.query_param("uploadId").unwrap_or_default();
    match op {
        Op::GetObjectAcl => access::get_object_acl(shard, bucket, key).await,
        Op::PutObjectAcl => access::put_object_acl(shard, head, body, caller, bucket, key).await,
        Op::GetObjectAttributes => {
            attributes::get_object_attributes(shard, head, bucket, key).await
        }
        Op::ListParts => multipart::list_parts(shard, head, bucket, key, upload_id).await,
        Op::UploadPartCopy => {
            part_copy::upload_part_copy(shard, head, caller, bucket, key, upload_id).await
        }
        Op::CopyObject => {
            access::check_object_acl(head, bucket)?;
            objects::copy_object(shard, head, caller, bucket, key).await
        }
        Op::UploadPart => {
            multipart::upload_part(shard, head, body, caller, bucket, key, upload_id).await
        }
        Op::PutObject => {
            access::check_object_acl(head, bucket)?;
            objects::put_object(shard, head, body, caller, bucket, key).await
        }
        Op::AbortMultipartUpload => multipart::abort(shard, bucket, key, upload_id).await,
        Op::DeleteObject => objects::delete_object(shard, bucket, key).await,
        Op::CreateMultipartUpload => {
            access::check_object_acl(head, bucket)?;
            multipart::create(shard, head, bucket, key).await
        }
        Op::CompleteMultipartUpload => {
            let xml_body = read_small_body(body, head, caller).await?;
            multipart::complete(shard, head, bucket, key, upload_id, &xml_body).await
        }
        Op::ObjectPostWithoutUpload => Err(S3Error::InvalidRequest(
            "POST on an object needs ?uploads or ?uploadId".into(),
        )),
        // GetObject and HeadObject.
        _ => objects::get_object(shard, head, bucket, key).await,
    }
}

async fn create_bucket(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    name: &str,
) -> Result<Response, S3Error> {
    if !bucket::valid_bucket_name(name) {
        return Err(S3Error::InvalidBucketName);
    }
    let config = read_small_body(body, head, caller).await?;
    xml::parse_create_bucket_configuration(&config)?;
    let public_read = access::create_bucket_public_read(head)?;
    if let Some(existing) = shard.global.borrow().bucket(name) {
        return Err(bucket::name_taken(
            existing,
            Some(&caller.key.access_key_id),
        ));
    }
    if !caller.key.create_bucket {
        return Err(S3Error::AccessDenied(
            "this key may not create buckets".into(),
        ));
    }
    let key = caller.key.access_key_id.as_str();
    bucket::create_bucket(shard, name, Some(key), public_read, Some(key)).await?;
    Ok(Response::new(200).header("Location", format!("/{name}")))
}
