//! Bucket subresources kept in the bucket's row: `?acl` (see `access`), `?lifecycle`,
//! `?tagging`, and `?versioning` writes. Reading or changing any of them needs `owner`
//! (`op::S3Op::need`), except GetBucketVersioning (`read`, answered in `router`).

use std::rc::Rc;

use super::access;
use super::op::S3Op;
use super::router::{self, Caller};
use crate::api::conn::{Body, Response};
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::meta::types::BucketRow;
use crate::model::bucket::{edit_bucket, BucketEdit};
use crate::s3::error::S3Error;
use crate::s3::xml;

/// Runs one of these operations on `row`, whose owner the caller is (checked by the router
/// as `op` needs), or refuses a method they do not take.
pub async fn run(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    row: &BucketRow,
) -> Result<Response, S3Error> {
    let bucket = row.name.as_str();
    match op {
        S3Op::GetBucketAcl => access::get_bucket_acl(row),
        S3Op::PutBucketAcl => access::put_bucket_acl(shard, head, body, caller, row).await,
        S3Op::GetBucketLifecycleConfiguration => match &row.lifecycle {
            Some(config) => Ok(Response::xml(200, xml::lifecycle::lifecycle_xml(config))),
            None => Err(S3Error::NoSuchLifecycleConfiguration),
        },
        S3Op::PutBucketLifecycleConfiguration => {
            let document = router::read_small_body(body, head, caller).await?;
            let config = xml::lifecycle::parse_lifecycle(&document)?;
            edit_bucket(shard, bucket, BucketEdit::SetLifecycle(Some(config))).await?;
            Ok(Response::new(200))
        }
        S3Op::DeleteBucketLifecycle => {
            if row.lifecycle.is_some() {
                edit_bucket(shard, bucket, BucketEdit::SetLifecycle(None)).await?;
            }
            Ok(Response::new(204))
        }
        S3Op::GetBucketTagging => {
            if row.tags.is_empty() {
                return Err(S3Error::NoSuchTagSet);
            }
            Ok(Response::xml(200, xml::tagging::tagging_xml(&row.tags)))
        }
        S3Op::PutBucketTagging => {
            let document = router::read_small_body(body, head, caller).await?;
            let tags = xml::tagging::parse_tagging(&document)?;
            edit_bucket(shard, bucket, BucketEdit::SetTags(tags)).await?;
            Ok(Response::new(204))
        }
        S3Op::DeleteBucketTagging => {
            if !row.tags.is_empty() {
                edit_bucket(shard, bucket, BucketEdit::SetTags(Vec::new())).await?;
            }
            Ok(Response::new(204))
        }
        S3Op::PutBucketVersioning => Err(S3Error::NotImplemented(
            "bucket versioning (GetBucketVersioning answers: never enabled)".into(),
        )),
        _ => Err(S3Error::MethodNotAllowed),
    }
}
