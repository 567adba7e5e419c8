//! Request heads: parsing with httparse, the request target, and body framing.

use super::uri::uri_decode;
use super::HttpError;
use crate::constants::{HTTP_HEADER_COUNT_MAX, HTTP_HEAD_BYTES_MAX};

/// A parsed request head. Header names are lowercased and values trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (origin-form or absolute-form).
    pub raw_target: String,
    /// The path as sent, not decoded (SigV4 canonicalizes from it).
    pub raw_path: String,
    /// The path percent-decoded (UTF-8 checked; `+` is not a space).
    pub path: String,
    /// The query as sent, without `?` (empty if none).
    pub raw_query: String,
    /// Decoded query pairs in order; `?uploads` gives `("uploads", "")`.
    pub query: Vec<(String, String)>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header, in order.
    pub fn headers_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter (decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the query has this parameter, with or without a value.
    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    /// Whether the connection stays open after this request: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers_all("connection")
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if has("close") {
            return false;
        }
        self.minor_version >= 1 || has("keep-alive")
    }

    /// Whether the client waits for `100 Continue` before sending the body (ignored for
    /// HTTP/1.0, as RFC 9110 §10.1.1 requires).
    pub fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: the head is not complete yet
/// (read more). `Ok(Some((head, n)))`: the head took the first `n` bytes; the body starts
/// at `n`. A head that is not complete within `HTTP_HEAD_BYTES_MAX` bytes is an error.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let window = &buf[..buf.len().min(HTTP_HEAD_BYTES_MAX)];
    let mut headers = [httparse::EMPTY_HEADER; HTTP_HEADER_COUNT_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if window.len() >= HTTP_HEAD_BYTES_MAX {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let method = req.method.ok_or(HttpError::Malformed("no method".into()))?;
    let target = req.path.ok_or(HttpError::Malformed("no target".into()))?;
    let minor_version = req
        .version
        .ok_or(HttpError::Malformed("no version".into()))?;
    let mut out_headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HttpError::BadHeaderValue)?;
        out_headers.push((
            h.name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    let (raw_path, raw_query) = split_target(target)?;
    let path = uri_decode(raw_path).map_err(|_| HttpError::BadPath)?;
    let query = parse_query(raw_query).map_err(|_| HttpError::BadQuery)?;
    Ok(Some((
        RequestHead {
            method: method.to_string(),
            raw_target: target.to_string(),
            raw_path: raw_path.to_string(),
            path,
            raw_query: raw_query.to_string(),
            query,
            minor_version,
            headers: out_headers,
        },
        n,
    )))
}

/// Splits a request target into raw path and raw query. Origin-form `/p?q`,
/// absolute-form `http://host/p?q` (path `/` when absent), and `*` (for OPTIONS).
fn split_target(target: &str) -> Result<(&str, &str), HttpError> {
    let rest = if target.starts_with('/') || target == "*" {
        target
    } else {
        let lower_prefix = |p: &str| {
            target
                .as_bytes()
                .get(..p.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes()))
        };
        let after_scheme = if lower_prefix("http://") {
            &target[7..]
        } else if lower_prefix("https://") {
            &target[8..]
        } else {
            return Err(HttpError::BadTarget);
        };
        let end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        if end == 0 {
            return Err(HttpError::BadTarget);
        }
        &after_scheme[end..]
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() { "/" } else { path };
    Ok((path, query))
}

/// Splits a raw query on `&` and `=`, decoding names and values (`+` kept literally).
/// Empty segments are skipped.
fn parse_query(raw: &str) -> Result<Vec<(String, String)>, HttpError> {
    raw.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((uri_decode(name)?, uri_decode(value)?))
        })
        .collect()
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no Content-Length, no Transfer-Encoding).
    Empty,
    /// Exactly this many bytes (`Content-Length: 0` gives `Length(0)`).
    Length(u64),
    /// HTTP chunked transfer coding: decode with `ChunkedDecoder`.
    Chunked,
}

/// Decides the body framing (RFC 9112 §6.3). Transfer-Encoding together with
/// Content-Length is rejected (a classic smuggling vector); Transfer-Encoding must be
/// exactly `chunked` (other codings: 501); differing or invalid Content-Length values
/// are rejected; repeated identical values are accepted.
pub fn body_framing(head: &RequestHead) -> Result<BodyFraming, HttpError> {
    let mut te_codings = head
        .headers_all("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .peekable();
    let has_te = te_codings.peek().is_some() || head.header("transfer-encoding").is_some();
    let has_cl = head.header("content-length").is_some();
    if has_te {
        if has_cl {
            return Err(HttpError::TransferEncodingWithContentLength);
        }
        if head.minor_version == 0 {
            return Err(HttpError::BadTransferEncoding);
        }
        let codings: Vec<&str> = te_codings.collect();
        match codings.as_slice() {
            [c] if c.eq_ignore_ascii_case("chunked") => return Ok(BodyFraming::Chunked),
            [.., last] if last.eq_ignore_ascii_case("chunked") => {
                return Err(HttpError::UnsupportedTransferEncoding)
            }
            _ => return Err(HttpError::BadTransferEncoding),
        }
    }
    let mut length: Option<u64> = None;
    for value in head
        .headers_all("content-length")
        .flat_map(|v| v.split(','))
    {
        let value = value.trim();
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadContentLength);
        }
        let n: u64 = value.parse().map_err(|_| HttpError::BadContentLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::BadContentLength);
        }
        length = Some(n);
    }
    Ok(match length {
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::Empty,
    })
}
