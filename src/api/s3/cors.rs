//! CORS on both listeners: Put/Get/DeleteBucketCors, preflight `OPTIONS` answered from the
//! bucket's rules (no signature needed, as browsers send none), and `Access-Control-*`
//! headers on actual responses whose origin and method a rule allows. The rule matching
//! itself is pure, in `crate::s3::cors`.

use std::rc::Rc;

use super::op::S3Op;
use super::router::{self, read_small_body, Caller};
use crate::api::conn::{Body, Listener, Response};
use crate::api::website;
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::meta::types::BucketRow;
use crate::model::bucket::{edit_bucket, BucketEdit};
use crate::s3::cors;
use crate::s3::error::S3Error;

/// `?cors` on a bucket: PUT, GET, DELETE (owner only, as on S3: checked by the router).
pub async fn bucket_cors_op(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    row: &BucketRow,
) -> Result<Response, S3Error> {
    match op {
        S3Op::PutBucketCors => {
            let xml = read_small_body(body, head, caller).await?;
            let rules = cors::parse_cors_configuration(&xml)?;
            edit_bucket(shard, &row.name, BucketEdit::SetCors(rules)).await?;
            Ok(Response::new(200))
        }
        S3Op::GetBucketCors if row.cors.is_empty() => Err(S3Error::NoSuchCORSConfiguration),
        S3Op::GetBucketCors => Ok(Response::xml(200, cors::cors_configuration_xml(&row.cors))),
        S3Op::DeleteBucketCors => {
            edit_bucket(shard, &row.name, BucketEdit::SetCors(Vec::new())).await?;
            Ok(Response::new(204))
        }
        _ => Err(S3Error::MethodNotAllowed),
    }
}

/// Answers a preflight `OPTIONS` request for `bucket` from its rules. A bucket that does
/// not exist answers as one without rules (403 `AccessForbidden`): a preflight is
/// anonymous, and must not tell which names exist.
pub fn preflight(
    shard: &Gateway,
    head: &RequestHead,
    bucket: Option<&str>,
) -> Result<Response, S3Error> {
    let rules = bucket
        .and_then(|b| shard.global.borrow().bucket(b).map(|row| row.cors.clone()))
        .unwrap_or_default();
    let headers = cors::preflight(
        &rules,
        head.header("origin"),
        head.header("access-control-request-method"),
        head.header("access-control-request-headers"),
    )?;
    let mut response = Response::new(200);
    response.headers.extend(headers);
    Ok(response)
}

/// Adds the `Access-Control-*` headers of the matching rule to an actual response (of any
/// status, as S3 does) when the request carries an `Origin`.
pub fn add_response_headers(
    shard: &Gateway,
    head: &RequestHead,
    listener: Listener,
    response: &mut Response,
) {
    let Some(origin) = head.header("origin") else {
        return;
    };
    if head.method == "OPTIONS"
        || response
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("access-control-allow-origin"))
    {
        return;
    }
    let bucket = match listener {
        Listener::S3 => router::request_bucket(shard, head),
        Listener::Web => website::host_bucket(shard, head),
    };
    let Some(bucket) = bucket else {
        return;
    };
    let global = shard.global.borrow();
    let Some(row) = global.bucket(&bucket) else {
        return;
    };
    if let Some(rule) = cors::find_rule(&row.cors, origin, &head.method, &[]) {
        response.headers.extend(cors::actual_headers(rule, origin));
    }
}
