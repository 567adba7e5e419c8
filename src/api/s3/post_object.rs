//! POST Object: browser form uploads (`multipart/form-data` POSTed to a bucket).
//!
//! The fields before the file are read (bounded by `FORM_FIELDS_BYTES_MAX`), the SigV4
//! signature over the base64 policy is verified with the secret of the key named by
//! `x-amz-credential`, the policy is checked (expiration, conditions, with `${filename}`
//! in `key` replaced by the file's name first), then the file part streams into the same
//! ingest as PutObject: a form filter on the request body passes on only the file's bytes,
//! refusing them as soon as they leave the policy's `content-length-range` (or the 5 GiB
//! single-upload limit). Fields after the file are ignored, as S3 does.
//!
//! The answer follows `success_action_redirect` (303 to it, with bucket, key and ETag in
//! its query) or `success_action_status`: 200 or 204 (default) without body, 201 with a
//! `PostResponse` document.

use std::rc::Rc;

use super::objects;
use super::router::{self, check, Caller, Need};
use crate::api::conn::{Body, PayloadFilter, Response};
use crate::api::Gateway;
use crate::http::form::{self, FormEvent, FormParser, PartHead};
use crate::http::{url_encode_key, RequestHead};
use crate::model::now_ms;
use crate::s3::error::S3Error;
use crate::s3::policy;
use crate::s3::sigv4::{PayloadMode, Verified};
use crate::s3::xml;

/// Bytes of form fields accepted before the file (S3 bounds its policy to 20 KiB).
const FORM_FIELDS_BYTES_MAX: usize = 64 * 1024;
const READ_BYTES: usize = 64 * 1024;

/// Headers of the stored object that a form may set, as fields of these names.
const OBJECT_FIELDS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-type",
    "expires",
    "x-amz-website-redirect-location",
];

fn malformed(e: form::FormError) -> S3Error {
    S3Error::MalformedPOSTRequest(format!(
        "The body of your POST request is not well-formed multipart/form-data: {e}"
    ))
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The form's fields up to its file part: (fields, file part head, the parser positioned
/// in the file's data, payload bytes read but not parsed yet).
async fn read_fields(
    body: &mut Body<'_>,
    mut parser: FormParser,
) -> Result<(Vec<(String, String)>, PartHead, FormParser, Vec<u8>), S3Error> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    let mut field_bytes = 0usize;
    loop {
        let (consumed, event) = parser.decode(&buffer[pos..]).map_err(malformed)?;
        let mut file = None;
        match event {
            Some(FormEvent::PartStart(h)) if h.name.eq_ignore_ascii_case("file") => file = Some(h),
            Some(FormEvent::PartStart(h)) => {
                field_bytes += h.name.len();
                current = Some((h.name, Vec::new()));
            }
            Some(FormEvent::Data(data)) => {
                field_bytes += data.len();
                if field_bytes > FORM_FIELDS_BYTES_MAX {
                    return Err(S3Error::MaxPostPreDataLengthExceededError);
                }
                current
                    .as_mut()
                    .expect("data comes inside a part")
                    .1
                    .extend_from_slice(data);
            }
            Some(FormEvent::PartEnd) => {
                let (name, value) = current.take().expect("a part ends after it started");
                let value = String::from_utf8(value).map_err(|_| {
                    S3Error::InvalidArgument(format!("form field {name} is not UTF-8"))
                })?;
                fields.push((name, value));
            }
            Some(FormEvent::Done) => return Err(S3Error::IncorrectNumberOfFilesInPostRequest),
            None => {}
        }
        pos += consumed;
        if let Some(file) = file {
            return Ok((fields, file, parser, buffer.split_off(pos)));
        }
        if consumed == 0 {
            buffer.drain(..pos);
            pos = 0;
            if body.read_into(&mut buffer, READ_BYTES).await? == 0 {
                return Err(malformed(form::FormError::NoStart));
            }
        }
    }
}

/// Passes on the bytes of the file part only, within the allowed size range.
struct FileFilter {
    parser: FormParser,
    produced: u64,
    min: u64,
    max: u64,
}

impl PayloadFilter for FileFilter {
    fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), S3Error> {
        let (consumed, event) = self.parser.decode(input).map_err(malformed)?;
        match event {
            Some(FormEvent::Data(data)) => {
                self.produced += data.len() as u64;
                if self.produced > self.max {
                    return Err(S3Error::EntityTooLarge);
                }
                out.extend_from_slice(data);
                Ok((consumed, false))
            }
            Some(FormEvent::PartEnd) => {
                if self.produced < self.min {
                    return Err(S3Error::EntityTooSmall);
                }
                Ok((consumed, true))
            }
            Some(FormEvent::PartStart(_) | FormEvent::Done) => {
                unreachable!("the parser is inside the file part until its end")
            }
            None => Ok((consumed, false)),
        }
    }
}

/// Checks the form's signature and policy; returns the caller (the key that signed) and
/// the object key.
fn authorize(
    shard: &Gateway,
    fields: &[(String, String)],
    file: &PartHead,
    bucket: &str,
) -> Result<(Caller, String, policy::PostPolicy), S3Error> {
    let auth = policy::parse_post_auth(fields)?
        .ok_or_else(|| S3Error::AccessDenied("anonymous POST uploads are not allowed".into()))?;
    let key_row = shard
        .global
        .borrow()
        .key(&auth.access_key_id)
        .cloned()
        .ok_or(S3Error::InvalidAccessKeyId)?;
    if auth.version == policy::PostSignatureVersion::V4 && auth.region != shard.config.s3_region {
        return Err(S3Error::AuthorizationQueryParametersError(format!(
            "Error parsing the X-Amz-Credential parameter; the region '{}' is wrong; \
             expecting '{}'",
            auth.region, shard.config.s3_region
        )));
    }
    policy::verify_post_signature(&auth, &key_row.secret_access_key)?;
    let post_policy = policy::parse_policy(&auth.policy_base64)?;
    let raw_key = field(fields, "key").ok_or_else(|| {
        S3Error::InvalidArgument("Bucket POST must contain a field named 'key'.".into())
    })?;
    let filename = file.filename.as_deref().unwrap_or("");
    let key = raw_key.replace("${filename}", filename);
    if key.is_empty() {
        return Err(S3Error::InvalidArgument(
            "User key must have a length greater than 0.".into(),
        ));
    }
    if key.len() > crate::constants::OBJECT_KEY_BYTES_MAX {
        return Err(S3Error::KeyTooLongError);
    }
    if key.contains('\0') {
        return Err(S3Error::InvalidArgument(
            "object keys may not contain NUL".into(),
        ));
    }
    // The policy sees the key the object gets (`${filename}` replaced).
    let checked: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| {
            let v = if n.eq_ignore_ascii_case("key") {
                key.clone()
            } else {
                v.clone()
            };
            (n.clone(), v)
        })
        .collect();
    post_policy.check(&checked, bucket, (now_ms() / 1000) as i64)?;
    let caller = Caller {
        verified: Verified {
            access_key_id: key_row.access_key_id.clone(),
            signing_key: [0; 32],
            amz_date: auth.amz_date.clone(),
            scope: String::new(),
            seed_signature: auth.signature.clone(),
            payload: PayloadMode::UnsignedPayload,
        },
        key: key_row,
    };
    Ok((caller, key, post_policy))
}

/// The head PutObject sees: the form's object fields as headers.
fn object_head(head: &RequestHead, fields: &[(String, String)], file: &PartHead) -> RequestHead {
    let mut headers: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| {
            OBJECT_FIELDS.contains(&n.as_str())
                || n.starts_with("x-amz-meta-")
                || n.starts_with("x-amz-checksum-")
        })
        .collect();
    if !headers.iter().any(|(n, _)| n == "content-type") {
        if let Some(t) = &file.content_type {
            headers.push(("content-type".into(), t.clone()));
        }
    }
    RequestHead {
        method: "PUT".into(),
        raw_query: String::new(),
        query: Vec::new(),
        headers,
        ..head.clone()
    }
}

pub async fn handle(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    body: &mut Body<'_>,
    bucket_name: &str,
) -> Result<Response, S3Error> {
    let boundary = form::boundary(head.header("content-type").unwrap_or("")).map_err(malformed)?;
    let (fields, file, parser, pending) = read_fields(body, FormParser::new(&boundary)).await?;
    let (caller, key, post_policy) = authorize(shard, &fields, &file, bucket_name)?;
    // Looked up only once the form's signature and policy hold: an anonymous or forged
    // form learns nothing of which buckets exist.
    let bucket = router::lookup_bucket(shard, bucket_name)?;
    check(&caller, &bucket, Need::Write)?;
    let single_put_max = crate::constants::OBJECT_BYTES_MAX_SINGLE_PUT;
    let (min, max) = post_policy
        .content_length_range()
        .unwrap_or((0, single_put_max));
    body.set_filter(
        Box::new(FileFilter {
            parser,
            produced: 0,
            min,
            max: max.min(single_put_max),
        }),
        pending,
    );
    let put_head = object_head(head, &fields, &file);
    let stored = objects::put_object(shard, &put_head, body, &caller, &bucket, &key).await;
    // What follows the file (more fields, the closing delimiter) is read unfiltered.
    body.clear_filter();
    let stored = stored?;
    let etag = stored
        .headers
        .iter()
        .find(|(n, _)| n == "ETag")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let host = head.header("host").unwrap_or("localhost");
    let path_style = head.path.trim_matches('/') == bucket_name;
    let location = if path_style {
        format!("http://{host}/{bucket_name}/{}", url_encode_key(&key))
    } else {
        format!("http://{host}/{}", url_encode_key(&key))
    };
    let redirect = field(&fields, "success_action_redirect").or_else(|| field(&fields, "redirect"));
    if let Some(target) = redirect.filter(|r| r.starts_with("http://") || r.starts_with("https://"))
    {
        let separator = if target.contains('?') { '&' } else { '?' };
        let target = format!(
            "{target}{separator}bucket={}&key={}&etag={}",
            url_encode_key(bucket_name),
            url_encode_key(&key),
            url_encode_key(&etag)
        );
        return Ok(Response::new(303)
            .header("Location", target)
            .header("ETag", etag));
    }
    let response = match field(&fields, "success_action_status") {
        Some("200") => Response::new(200),
        Some("201") => Response::xml(
            201,
            xml::post_response_xml(&location, bucket_name, &key, &etag),
        ),
        _ => Response::new(204),
    };
    Ok(response.header("ETag", etag).header("Location", location))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter positioned at the start of the file part of a form with boundary `b`.
    fn filter(min: u64, max: u64) -> FileFilter {
        let mut parser = FormParser::new("b");
        let head = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n";
        let mut pos = 0;
        loop {
            let (consumed, event) = parser.decode(&head[pos..]).unwrap();
            pos += consumed;
            if let Some(FormEvent::PartStart(h)) = event {
                assert_eq!(h.name, "file");
                break;
            }
        }
        assert_eq!(pos, head.len());
        FileFilter {
            parser,
            produced: 0,
            min,
            max,
        }
    }

    /// Feeds `input` whole; returns what the filter passed on, or its error.
    fn run(mut f: FileFilter, input: &[u8]) -> Result<Vec<u8>, S3Error> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let (consumed, ended) = f.filter(&input[pos..], &mut out)?;
            pos += consumed;
            if ended {
                return Ok(out);
            }
            assert!(consumed > 0, "the whole form was given");
        }
    }

    #[test]
    fn only_the_file_bytes_pass_within_the_range() {
        let form =
            b"file \r\n-- bytes\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--";
        assert_eq!(run(filter(0, 100), form).unwrap(), b"file \r\n-- bytes");
        assert_eq!(run(filter(15, 15), form).unwrap(), b"file \r\n-- bytes");
        assert_eq!(run(filter(0, 14), form), Err(S3Error::EntityTooLarge));
        assert_eq!(run(filter(16, 100), form), Err(S3Error::EntityTooSmall));
    }
}
