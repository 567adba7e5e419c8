//! Access control beyond the per-key permission check (`router::check`, with the
//! permission `op::S3Op::need` names): anonymous reads of public buckets, canned ACLs
//! (`x-amz-acl`), and the ACL views (Get/PutBucketAcl, Get/PutObjectAcl). See `s3::acl` for
//! how permissions map to ACL grants.
//!
//! Required permissions (checked by the router): bucket ACL get/put and object ACL put
//! need `owner`; object ACL get needs `read`.

use std::rc::Rc;

use super::op::S3Op;
use super::router::{self, Caller};
use super::{list, objects};
use crate::api::conn::{Body, Response};
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::meta::types::BucketRow;
use crate::model::bucket::{self, BucketEdit};
use crate::s3::acl::{self, CannedAcl};
use crate::s3::error::S3Error;
use crate::s3::xml;

fn denied() -> S3Error {
    S3Error::AccessDenied("anonymous access is allowed only to read public-read buckets".into())
}

/// An unsigned request: GetObject, HeadObject, ListObjects (V1 and V2) and HeadBucket on
/// a `public-read` bucket; `AccessDenied` for everything else (whether the bucket exists
/// or not, so that names do not leak).
pub async fn anonymous(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    bucket: Option<&str>,
    key: Option<&str>,
) -> Result<Response, S3Error> {
    let Some(bucket) = bucket else {
        return Err(denied());
    };
    let row = shard
        .global
        .borrow()
        .bucket(bucket)
        .cloned()
        .ok_or_else(denied)?;
    if !row.public_read || !op.public_read() {
        return Err(denied());
    }
    let overrides = head
        .raw_query
        .split('&')
        .any(|p| p.starts_with("response-"));
    if overrides {
        return Err(S3Error::InvalidRequest(
            "request specific response headers cannot be used for anonymous GET requests".into(),
        ));
    }
    match (op, key) {
        (S3Op::GetObject | S3Op::HeadObject, Some(key)) => {
            objects::get_object(shard, head, &row, key).await
        }
        (S3Op::HeadBucket, None) => {
            Ok(Response::new(200).header("x-amz-bucket-region", &shard.config.s3_region))
        }
        _ => list::list_objects(shard, head, &row).await,
    }
}

/// `x-amz-grant-*` headers are refused: Granary's ACLs are canned.
fn refuse_grant_headers(head: &RequestHead) -> Result<(), S3Error> {
    match acl::GRANT_HEADERS.iter().find(|h| head.header(h).is_some()) {
        Some(h) => Err(S3Error::NotImplemented(format!(
            "{h}: only the canned ACLs private and public-read (x-amz-acl) are supported"
        ))),
        None => Ok(()),
    }
}

/// The canned ACL of a CreateBucket: whether the bucket starts public.
pub fn create_bucket_public_read(head: &RequestHead) -> Result<bool, S3Error> {
    refuse_grant_headers(head)?;
    Ok(match head.header("x-amz-acl") {
        Some(v) => acl::parse_canned(v)? == CannedAcl::PublicRead,
        None => false,
    })
}

/// A canned ACL on an object write (PutObject, CopyObject, CreateMultipartUpload): an
/// object has its bucket's ACL, so `private` is accepted (the object is as private as its
/// bucket) and `public-read` only on a public-read bucket; anything else is refused.
/// Object tags (`x-amz-tagging`) are refused too rather than dropped.
pub fn check_object_acl(head: &RequestHead, bucket: &BucketRow) -> Result<(), S3Error> {
    refuse_grant_headers(head)?;
    if head.header("x-amz-tagging").is_some() {
        return Err(S3Error::NotImplemented(
            "object tagging (x-amz-tagging); bucket tagging is supported".into(),
        ));
    }
    let Some(value) = head.header("x-amz-acl") else {
        return Ok(());
    };
    match acl::parse_canned(value)? {
        CannedAcl::Private => Ok(()),
        CannedAcl::PublicRead if bucket.public_read => Ok(()),
        CannedAcl::PublicRead => Err(S3Error::NotImplemented(
            "per-object ACLs: objects have their bucket's ACL; make the bucket public-read \
             (PutBucketAcl with x-amz-acl: public-read)"
                .into(),
        )),
    }
}

pub fn get_bucket_acl(bucket: &BucketRow) -> Result<Response, S3Error> {
    let grants = acl::bucket_grants(&bucket.grants, bucket.public_read);
    let owner = router::bucket_owner(bucket);
    Ok(Response::xml(
        200,
        xml::acl::access_control_policy_xml(&owner, &grants),
    ))
}

pub async fn put_bucket_acl(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &BucketRow,
) -> Result<Response, S3Error> {
    let document = router::read_small_body(body, head, caller).await?;
    let current = acl::bucket_grants(&bucket.grants, false);
    let public_read = requested_public_read(head, &document, &current)?;
    if public_read != bucket.public_read {
        let edit = BucketEdit::SetPublicRead(public_read);
        bucket::edit_bucket(shard, &bucket.name, edit).await?;
    }
    Ok(Response::new(200))
}

pub async fn get_object_acl(
    shard: &Rc<Gateway>,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    objects::fetch_object(shard, bucket, key).await?;
    let grants = acl::object_grants(&bucket.grants, bucket.public_read);
    let owner = router::bucket_owner(bucket);
    Ok(Response::xml(
        200,
        xml::acl::access_control_policy_xml(&owner, &grants),
    ))
}

pub async fn put_object_acl(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let document = router::read_small_body(body, head, caller).await?;
    objects::fetch_object(shard, bucket, key).await?;
    let current = acl::object_grants(&bucket.grants, false);
    let public_read = requested_public_read(head, &document, &current)?;
    if public_read && !bucket.public_read {
        return Err(S3Error::NotImplemented(
            "per-object ACLs: objects have their bucket's ACL; make the bucket public-read".into(),
        ));
    }
    Ok(Response::new(200))
}

/// The ACL a PutBucketAcl / PutObjectAcl asks for, as "public-read or not": from the
/// canned `x-amz-acl`, or from an ACL document that keeps every key grant as it is and
/// adds or removes AllUsers READ (what clients that edit ACLs send).
fn requested_public_read(
    head: &RequestHead,
    document: &[u8],
    current: &[acl::Grant],
) -> Result<bool, S3Error> {
    refuse_grant_headers(head)?;
    let has_document = !document.iter().all(u8::is_ascii_whitespace);
    match (head.header("x-amz-acl"), has_document) {
        (Some(_), true) => Err(S3Error::InvalidRequest(
            "give either x-amz-acl or an ACL document, not both".into(),
        )),
        (Some(value), false) => Ok(acl::parse_canned(value)? == CannedAcl::PublicRead),
        (None, true) => {
            let requested = xml::acl::parse_access_control_policy(document)?;
            acl::public_read_from_document(current, &requested)
        }
        (None, false) => Err(S3Error::InvalidRequest(
            "a PutAcl request needs x-amz-acl or an AccessControlPolicy body".into(),
        )),
    }
}
