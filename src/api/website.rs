//! Buckets served as static websites on `--web-addr`, and their configuration
//! (Put/Get/DeleteBucketWebsite on the S3 API).
//!
//! As AWS's website endpoints and Garage do: no authentication; the bucket is named by the
//! Host header (`<bucket>.<web-root-domain>`, or the whole host name); only buckets with a
//! website configuration are served; GET and HEAD only (OPTIONS answers CORS preflights);
//! the index document answers `/` and keys ending in `/`; a missing `dir` whose
//! `dir/<index>` exists redirects to `dir/`; a missing key gets the error document with
//! status 404, or a plain HTML 404. Objects stream as on GetObject, with `Range` and the
//! conditional headers.
//!
//! Unlike AWS, a name that is no bucket answers as a bucket without website configuration
//! (404 `NoSuchWebsiteConfiguration`), so that anonymous visitors cannot tell which names
//! exist.

use std::rc::Rc;

use super::conn::{Body, Response, ResponseBody};
use super::s3::objects;
use super::s3::op::S3Op;
use super::s3::router::{read_small_body, Caller};
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::meta::types::BucketRow;
use crate::model::bucket::{edit_bucket, BucketEdit};
use crate::s3::error::S3Error;
use crate::s3::website::{key_for_path, parse_website_configuration, website_configuration_xml};
use crate::s3::xml::escape;

/// `?website` on a bucket: PUT, GET, DELETE (owner only, as on S3: checked by the router).
pub async fn bucket_website_op(
    shard: &Rc<Gateway>,
    op: S3Op,
    head: &RequestHead,
    body: &mut Body<'_>,
    caller: &Caller,
    row: &BucketRow,
) -> Result<Response, S3Error> {
    match op {
        S3Op::PutBucketWebsite => {
            let xml = read_small_body(body, head, caller).await?;
            let config = parse_website_configuration(&xml)?;
            let edit = BucketEdit::SetWebsite(Some(config));
            edit_bucket(shard, &row.name, edit).await?;
            Ok(Response::new(200))
        }
        S3Op::GetBucketWebsite => match &row.website {
            Some(config) => Ok(Response::xml(200, website_configuration_xml(config))),
            None => Err(S3Error::NoSuchWebsiteConfiguration),
        },
        S3Op::DeleteBucketWebsite => {
            edit_bucket(shard, &row.name, BucketEdit::SetWebsite(None)).await?;
            Ok(Response::new(204))
        }
        _ => Err(S3Error::MethodNotAllowed),
    }
}

/// The bucket a website request names: `<bucket>.<web-root-domain>` in Host, or else the
/// whole host name (without port).
pub fn host_bucket(shard: &Gateway, head: &RequestHead) -> Option<String> {
    let host = head.header("host")?.trim();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(root) = &shard.config.web_root_domain {
        let root = root.trim_end_matches('.').to_ascii_lowercase();
        if let Some(bucket) = host
            .strip_suffix(root.as_str())
            .and_then(|b| b.strip_suffix('.'))
        {
            return Some(bucket.to_string());
        }
    }
    (!host.is_empty()).then_some(host)
}

/// Serves one request of the website listener. Errors are HTML pages, never XML.
pub async fn handle(shard: &Rc<Gateway>, head: &RequestHead, rid: &str) -> Response {
    match serve(shard, head).await {
        Ok(response) => response,
        Err(error) => error_page(&error, rid, head.method == "HEAD"),
    }
}

async fn serve(shard: &Rc<Gateway>, head: &RequestHead) -> Result<Response, S3Error> {
    // A name that is no bucket answers as a bucket that is no website: visitors are
    // anonymous, and must not learn which names exist.
    let name = host_bucket(shard, head).ok_or(S3Error::NoSuchWebsiteConfiguration)?;
    let bucket = shard.global.borrow().bucket(&name).cloned();
    let Some(bucket) = bucket else {
        return Err(S3Error::NoSuchWebsiteConfiguration);
    };
    let Some(config) = bucket.website.clone() else {
        return Err(S3Error::NoSuchWebsiteConfiguration);
    };
    if head.method == "OPTIONS" {
        return super::s3::cors::preflight(shard, head, Some(&name));
    }
    if head.method != "GET" && head.method != "HEAD" {
        return Err(S3Error::MethodNotAllowed);
    }
    if let Some(redirect) = &config.redirect_all {
        let scheme = redirect.protocol.as_deref().unwrap_or("http");
        let mut location = format!("{scheme}://{}{}", redirect.host_name, head.raw_path);
        if !head.raw_query.is_empty() {
            location.push('?');
            location.push_str(&head.raw_query);
        }
        return Ok(Response::new(301).header("Location", location));
    }
    let key = key_for_path(&head.path, &config.index_suffix);
    if key.len() > crate::constants::OBJECT_KEY_BYTES_MAX || key.contains('\0') {
        return Err(S3Error::NoSuchKey);
    }
    // The query string names no object here: `?partNumber` or `?response-*` do not apply.
    let object_head = RequestHead {
        raw_query: String::new(),
        query: Vec::new(),
        ..head.clone()
    };
    match objects::get_object(shard, &object_head, &bucket, &key).await {
        Ok(response) => Ok(redirect_or(response)),
        Err(S3Error::NoSuchKey) => {
            // `dir` missing but `dir/<index>` present: send the browser to `dir/`.
            if !key.ends_with('/') && !head.path.ends_with('/') {
                let index = format!("{key}/{}", config.index_suffix);
                if objects::fetch_object(shard, &bucket, &index).await.is_ok() {
                    let location = format!("{}/", head.raw_path);
                    return Ok(Response::new(302).header("Location", location));
                }
            }
            match &config.error_document {
                Some(error_key) => error_document(shard, head, &bucket, error_key).await,
                None => Err(S3Error::NoSuchKey),
            }
        }
        Err(e) => Err(e),
    }
}

/// An object stored with `x-amz-website-redirect-location` redirects instead of serving.
fn redirect_or(response: Response) -> Response {
    let location = response
        .headers
        .iter()
        .find(|(n, _)| n == "x-amz-website-redirect-location")
        .map(|(_, v)| v.clone());
    match location {
        Some(location) => Response::new(301).header("Location", location),
        None => response,
    }
}

/// The bucket's error document, with status 404; a plain 404 when it is missing too.
async fn error_document(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    bucket: &BucketRow,
    error_key: &str,
) -> Result<Response, S3Error> {
    // Whole, whatever the request's range or conditions.
    let plain = RequestHead {
        raw_query: String::new(),
        query: Vec::new(),
        headers: head
            .headers
            .iter()
            .filter(|(n, _)| !n.starts_with("if-") && n != "range")
            .cloned()
            .collect(),
        ..head.clone()
    };
    match objects::get_object(shard, &plain, bucket, error_key).await {
        Ok(mut response) => {
            response.status = 404;
            response
                .headers
                .retain(|(n, _)| n != "Accept-Ranges" && n != "x-amz-website-redirect-location");
            Ok(response)
        }
        Err(S3Error::NoSuchKey) => Err(S3Error::NoSuchKey),
        Err(e) => Err(e),
    }
}

/// An error as a small HTML page, as AWS's website endpoints answer.
fn error_page(error: &S3Error, rid: &str, head_only: bool) -> Response {
    let status = error.status();
    if status == 500 {
        tracing::error!(request_id = rid, "{error:?}");
    }
    let mut response = Response::new(status);
    if let S3Error::MethodNotAllowed = error {
        response
            .headers
            .push(("Allow".into(), "GET, HEAD, OPTIONS".into()));
    }
    if status == 304 {
        return response;
    }
    let title = format!("{status} {}", crate::http::reason_phrase(status));
    let page = format!(
        "<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n\
         <li>Code: {}</li>\n<li>Message: {}</li>\n<li>RequestId: {}</li>\n</ul>\n<hr/>\n\
         </body>\n</html>\n",
        escape(error.code()),
        escape(&error.message()),
        escape(rid)
    );
    response
        .headers
        .push(("Content-Type".into(), "text/html; charset=utf-8".into()));
    response.body = if head_only {
        ResponseBody::HeadOnly {
            content_length: page.len() as u64,
        }
    } else {
        ResponseBody::Bytes(page.into_bytes())
    };
    response
}
