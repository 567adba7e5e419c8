//! Bucket subresources kept in the bucket's row: `?acl` (see `access`), `?lifecycle`,
//! `?tagging`, and `?versioning` writes. Reading or changing any of them needs `owner`,
//! except GetBucketVersioning (`read`, in `router`).

use std::rc::Rc;

use super::access;
use super::router::{self, check, lookup_bucket, Caller, Need};
use crate::api::conn::{Body, Response};
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::model::bucket::{edit_bucket, BucketEdit};
use crate::s3::error::S3Error;
use crate::s3::xml;

/// Handles the request if it names one of these subresources.
pub async fn handle(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &str,
) -> Option<Result<Response, S3Error>> {
    let sub = ["acl", "lifecycle", "tagging"]
        .into_iter()
        .find(|s| head.has_query(s))
        .or_else(|| {
            (head.method == "PUT" && head.has_query("versioning")).then_some("versioning")
        })?;
    Some(run(shard, head, body, caller, bucket, sub).await)
}

async fn run(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    bucket: &str,
    sub: &str,
) -> Result<Response, S3Error> {
    let row = lookup_bucket(shard, bucket)?;
    let method = head.method.as_str();
    match (sub, method) {
        ("acl", "GET") => access::get_bucket_acl(caller, &row),
        ("acl", "PUT") => access::put_bucket_acl(shard, head, body, caller, &row).await,
        ("lifecycle", "GET") => {
            check(caller, &row, Need::Owner)?;
            match &row.lifecycle {
                Some(config) => Ok(Response::xml(200, xml::lifecycle::lifecycle_xml(config))),
                None => Err(S3Error::NoSuchLifecycleConfiguration),
            }
        }
        ("lifecycle", "PUT") => {
            check(caller, &row, Need::Owner)?;
            let document = router::read_small_body(body, head, caller).await?;
            let config = xml::lifecycle::parse_lifecycle(&document)?;
            edit_bucket(shard, bucket, BucketEdit::SetLifecycle(Some(config))).await?;
            Ok(Response::new(200))
        }
        ("lifecycle", "DELETE") => {
            check(caller, &row, Need::Owner)?;
            if row.lifecycle.is_some() {
                edit_bucket(shard, bucket, BucketEdit::SetLifecycle(None)).await?;
            }
            Ok(Response::new(204))
        }
        ("tagging", "GET") => {
            check(caller, &row, Need::Owner)?;
            if row.tags.is_empty() {
                return Err(S3Error::NoSuchTagSet);
            }
            Ok(Response::xml(200, xml::tagging::tagging_xml(&row.tags)))
        }
        ("tagging", "PUT") => {
            check(caller, &row, Need::Owner)?;
            let document = router::read_small_body(body, head, caller).await?;
            let tags = xml::tagging::parse_tagging(&document)?;
            edit_bucket(shard, bucket, BucketEdit::SetTags(tags)).await?;
            Ok(Response::new(204))
        }
        ("tagging", "DELETE") => {
            check(caller, &row, Need::Owner)?;
            if !row.tags.is_empty() {
                edit_bucket(shard, bucket, BucketEdit::SetTags(Vec::new())).await?;
            }
            Ok(Response::new(204))
        }
        ("versioning", _) => {
            check(caller, &row, Need::Owner)?;
            Err(S3Error::NotImplemented(
                "bucket versioning (GetBucketVersioning answers: never enabled)".into(),
            ))
        }
        _ => Err(S3Error::MethodNotAllowed),
    }
}
