//! AWS Signature Version 4 for S3, sans-IO: parse the credentials a request carries,
//! verify them, verify the chained signatures of `aws-chunked` bodies, and sign requests
//! (for tests and tools).
//!
//! Forms accepted:
//! - `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`
//!   with `x-amz-content-sha256` = a hex SHA-256, `UNSIGNED-PAYLOAD`,
//!   `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` or
//!   `STREAMING-UNSIGNED-PAYLOAD-TRAILER`;
//! - presigned URLs (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
//!   `X-Amz-SignedHeaders`, `X-Amz-Signature`), payload `UNSIGNED-PAYLOAD`.
//!
//! Refused: SigV2 (`Authorization: AWS AK:sig`, `?AWSAccessKeyId=…&Signature=…`) with the
//! `InvalidRequest` AWS itself sends in regions that never had V2; SigV4A (ECDSA) with
//! `NotImplemented`.
//!
//! Canonicalization decisions (see `docs/` of the integrator for the summary):
//! - **Canonical URI.** S3 signs the path URI-encoded once (no double encoding, no
//!   dot-segment normalization). Clients (boto3, awscli, the Rust SDK, rclone, s3cmd)
//!   send on the wire exactly what they signed, so the raw path is tried first. When it
//!   does not match, the path normalized as AWS encodes (each `%XX` decoded, then every
//!   byte but `A-Za-z0-9-._~/` encoded as uppercase `%XX`) is tried too: this accepts
//!   clients that send a character raw (`!`, `'`, `(`, space…) or a lowercase escape but
//!   sign its encoded form. Accepting either costs one more HMAC, and only on failure.
//! - **Canonical query.** Each `name=value` (a bare `name` has an empty value) is
//!   percent-decoded (`+` stays a literal plus, as in RFC 3986), re-encoded with AWS's
//!   rules (everything but `A-Za-z0-9-._~` as `%XX`), and the pairs are sorted by encoded
//!   name then encoded value. `X-Amz-Signature` is left out for presigned URLs.
//! - **Missing `x-amz-content-sha256`** with header auth: AWS answers `InvalidRequest`
//!   ("Missing required header for this request: x-amz-content-sha256"); so do we. The
//!   signature could not be checked without it (the client signed a body hash we don't
//!   have yet).
//! - **Unsigned `x-amz-*` headers** (other than `x-amz-content-sha256`, which enters the
//!   canonical request anyway) are refused with `AccessDenied`, as AWS does: otherwise
//!   anyone holding a presigned URL could add e.g. `x-amz-copy-source`.
//! - The region is not checked by `verify`: `check_region` does it (the router calls it).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Largest `X-Amz-Expires` (seven days).
pub const MAX_PRESIGNED_EXPIRES_S: i64 = 604_800;
/// Largest clock difference accepted for header-signed requests.
pub const MAX_CLOCK_SKEW_S: i64 = 900;
/// `hex(sha256(""))`.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// What the HTTP layer hands over from a parsed request head.
#[derive(Clone, Copy, Debug)]
pub struct AuthInput<'a> {
    pub method: &'a str,
    /// Exactly as on the wire, not decoded.
    pub raw_path: &'a str,
    /// Exactly as on the wire (without the `?`), not decoded.
    pub raw_query: &'a str,
    /// Names lowercase, values trimmed; repeated names allowed (joined with `,`).
    pub headers: &'a [(String, String)],
}

impl AuthInput<'_> {
    /// First value of a header (names are lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request's authentication failed; maps one to one onto S3 error codes
/// (`From<AuthError> for S3Error` in `error.rs`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The access key is unknown: decided by the caller, which holds the key table.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. \
        Check your key and signing method."
    )]
    SignatureDoesNotMatch,
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    /// Expired presigned URL, unsigned `x-amz-*` headers, unusable date.
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    AuthorizationHeaderMalformed(String),
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    #[error("{0}")]
    MissingSecurityHeader(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// SigV4A and other algorithms we know of but do not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// The caller found that the body's SHA-256 is not the declared one.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    XAmzContentSHA256Mismatch,
}

/// How the body is protected, from `x-amz-content-sha256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    UnsignedPayload,
    /// The SHA-256 of the body, which the caller must check.
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: aws-chunked, each chunk signed.
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: as above, plus a signed trailer.
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked, no chunk signatures, a trailer.
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// Parse an `x-amz-content-sha256` value.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        match value {
            UNSIGNED_PAYLOAD => Ok(Self::UnsignedPayload),
            STREAMING_SIGNED => Ok(Self::StreamingSigned),
            STREAMING_SIGNED_TRAILER => Ok(Self::StreamingSignedTrailer),
            STREAMING_UNSIGNED_TRAILER => Ok(Self::StreamingUnsignedTrailer),
            v if v.starts_with("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD") => {
                Err(AuthError::NotImplemented(
                    "SigV4A (AWS4-ECDSA-P256-SHA256) is not supported".into(),
                ))
            }
            v => {
                let mut out = [0u8; 32];
                match hex::decode_to_slice(v, &mut out) {
                    Ok(()) => Ok(Self::Sha256(out)),
                    Err(_) => Err(AuthError::InvalidArgument(
                        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, \
                            STREAMING-UNSIGNED-PAYLOAD-TRAILER, \
                            STREAMING-AWS4-HMAC-SHA256-PAYLOAD, \
                            STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 \
                            value."
                            .into(),
                    )),
                }
            }
        }
    }

    /// The body is `aws-chunked`.
    pub fn is_streaming(&self) -> bool {
        matches!(
            self,
            Self::StreamingSigned | Self::StreamingSignedTrailer | Self::StreamingUnsignedTrailer
        )
    }

    /// Each chunk carries a `chunk-signature`.
    pub fn has_chunk_signatures(&self) -> bool {
        matches!(self, Self::StreamingSigned | Self::StreamingSignedTrailer)
    }

    /// The body ends with trailing headers.
    pub fn has_trailer(&self) -> bool {
        matches!(
            self,
            Self::StreamingSignedTrailer | Self::StreamingUnsignedTrailer
        )
    }
}

/// The credentials a request carries, before any secret is looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAuth {
    pub access_key_id: String,
    /// `yyyymmdd` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// `yyyymmddThhmmssZ`, from `x-amz-date` (or `Date`), or `X-Amz-Date`.
    pub amz_date: String,
    /// Lowercase names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// Lowercase hex.
    pub signature: String,
    pub presigned: bool,
    /// `X-Amz-Expires` of a presigned URL, seconds.
    pub expires: Option<i64>,
    pub payload: PayloadMode,
    /// The payload hash exactly as it enters the canonical request.
    pub payload_hash: String,
}

impl ParsedAuth {
    /// `<date>/<region>/<service>/aws4_request`
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// A request whose signature checked out: what body verification needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub signing_key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
    /// The request's own signature, which the first chunk signature chains from.
    pub seed_signature: String,
    pub payload: PayloadMode,
}

// ---------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX_UPPER[usize::from(b >> 4)] as char);
    out.push(HEX_UPPER[usize::from(b & 15)] as char);
}

/// AWS's `UriEncode`: every byte but `A-Za-z0-9-._~` (and `/` unless `encode_slash`) as
/// uppercase `%XX`. Use it to build the path of an object key (`encode_slash = false`)
/// and query names and values (`true`).
pub fn uri_encode(input: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    for &b in input {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(b as char);
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode (`+` stays `+`); an invalid escape is kept literally.
pub fn percent_decode(input: &str) -> Vec<u8> {
    let b = input.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The path as AWS would have encoded it: decode, then `uri_encode(_, false)`.
fn normalized_path(raw_path: &str) -> String {
    let p = uri_encode(&percent_decode(raw_path), false);
    if p.is_empty() {
        "/".into()
    } else {
        p
    }
}

/// Split a raw query into decoded `(name, value)` pairs; empty segments are skipped.
pub fn query_pairs(raw_query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|seg| match seg.split_once('=') {
            Some((n, v)) => (percent_decode(n), percent_decode(v)),
            None => (percent_decode(seg), Vec::new()),
        })
        .collect()
}

/// The canonical query string; `skip_signature` leaves out `X-Amz-Signature`.
pub fn canonical_query(raw_query: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .into_iter()
        .filter(|(n, _)| !(skip_signature && n == b"X-Amz-Signature"))
        .map(|(n, v)| (uri_encode(&n, true), uri_encode(&v, true)))
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 16);
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Header value as it enters the canonical request: trimmed, runs of blanks collapsed.
fn push_trimmed(out: &mut String, v: &str) {
    let mut prev_space = false;
    for c in v.trim_matches(|c| c == ' ' || c == '\t').chars() {
        if c == ' ' || c == '\t' {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
}

/// `name:value\n` for each signed header, in the given (sorted) order; repeated headers
/// are joined with `,`; a signed header absent from the request gets an empty value.
fn canonical_headers(headers: &[(String, String)], signed: &[String]) -> String {
    let mut out = String::with_capacity(256);
    for name in signed {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for (n, v) in headers {
            if n == name {
                if !first {
                    out.push(',');
                }
                push_trimmed(&mut out, v);
                first = false;
            }
        }
        out.push('\n');
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service),
/// "aws4_request")`. Depends only on (secret, day, region, service): cacheable per day.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k = Vec::with_capacity(4 + secret_access_key.len());
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret_access_key.as_bytes());
    let k = hmac(&k, date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Hex HMAC-SHA256 of a string to sign.
fn sign_hex(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Constant-time equality of two hex signatures (lengths are public).
fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The canonical request, from its parts.
#[allow(clippy::too_many_arguments)]
fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(String, String)],
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(method);
    out.push('\n');
    out.push_str(uri);
    out.push('\n');
    out.push_str(query);
    out.push('\n');
    out.push_str(&canonical_headers(headers, signed_headers));
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

// ---------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parse `yyyymmddThhmmssZ` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Format Unix seconds as `yyyymmddThhmmssZ`.
pub fn format_amz_date(unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(unix_s.div_euclid(86_400));
    let t = unix_s.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Credential = `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`.
fn parse_credential(
    cred: &str,
    err: impl Fn(String) -> AuthError,
) -> Result<(String, String, String, String), AuthError> {
    let mut it = cred.rsplitn(5, '/');
    let (term, service, region, date, key) =
        match (it.next(), it.next(), it.next(), it.next(), it.next()) {
            (Some(t), Some(s), Some(r), Some(d), Some(k)) => (t, s, r, d, k),
            _ => {
                return Err(err(format!(
                    "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; \
                        expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\". ({cred})"
                )))
            }
        };
    if key.is_empty() {
        return Err(err("Error parsing the Credential: empty access key".into()));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "Invalid credential date \"{date}\". This date is not the same as X-Amz-Date: \
                \"yyyyMMdd\" expected."
        )));
    }
    if region.is_empty() {
        return Err(err("Error parsing the Credential: empty region".into()));
    }
    if term != "aws4_request" {
        return Err(err(format!(
            "Error parsing the Credential; incorrect terminal \"{term}\". This endpoint uses \
                \"aws4_request\"."
        )));
    }
    if service != "s3" {
        return Err(err(format!(
            "Error parsing the Credential; incorrect service \"{service}\". This endpoint \
                belongs to \"s3\"."
        )));
    }
    Ok((key.into(), date.into(), region.into(), service.into()))
}

fn parse_signed_headers(
    list: &str,
    err: impl Fn(String) -> AuthError,
) -> Result<Vec<String>, AuthError> {
    let v: Vec<String> = list
        .split(';')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    if v.iter().any(|s| s.is_empty()) {
        return Err(err(format!("SignedHeaders is malformed: \"{list}\"")));
    }
    Ok(v)
}

/// The request's date for header auth: `x-amz-date`, else a `Date` header (either the
/// ISO 8601 basic form or an HTTP date in any form RFC 7231 or RFC 2822 allows,
/// converted).
fn header_amz_date(input: &AuthInput) -> Result<String, AuthError> {
    let bad = || {
        AuthError::AccessDenied(
            "AWS authentication requires a valid Date or x-amz-date header".into(),
        )
    };
    if let Some(d) = input.header("x-amz-date") {
        return parse_amz_date(d).map(|_| d.to_string()).ok_or_else(bad);
    }
    let d = input.header("date").ok_or_else(bad)?;
    if parse_amz_date(d).is_some() {
        return Ok(d.to_string());
    }
    let t = crate::http::parse_http_date(d).ok_or_else(bad)?;
    Ok(format_amz_date(t))
}

fn sigv2_refused() -> AuthError {
    AuthError::InvalidRequest(
        "The authorization mechanism you have provided is not supported. Please use \
            AWS4-HMAC-SHA256."
            .into(),
    )
}

/// Read the credentials of a request. `Ok(None)`: anonymous.
pub fn parse(input: &AuthInput) -> Result<Option<ParsedAuth>, AuthError> {
    let auth = input.header("authorization");
    let pairs = query_pairs(input.raw_query);
    let qget = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let presigned = qget("X-Amz-Algorithm").is_some();
    match auth {
        Some(_) if presigned => Err(AuthError::InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
                    Signature query string parameter or the Authorization header should be \
                    specified"
                .into(),
        )),
        Some(a) => parse_header_form(input, a).map(Some),
        None if presigned => parse_query_form(input, &qget).map(Some),
        None => {
            if qget("AWSAccessKeyId").is_some() && qget("Signature").is_some() {
                return Err(sigv2_refused());
            }
            Ok(None)
        }
    }
}

fn parse_header_form(input: &AuthInput, auth: &str) -> Result<ParsedAuth, AuthError> {
    let malformed = AuthError::AuthorizationHeaderMalformed;
    let (alg, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    match alg {
        ALGORITHM => {}
        "AWS" => return Err(sigv2_refused()),
        "AWS4-ECDSA-P256-SHA256" => {
            return Err(AuthError::NotImplemented(
                "SigV4A (AWS4-ECDSA-P256-SHA256) is not supported".into(),
            ))
        }
        _ => {
            return Err(AuthError::InvalidArgument(
                "Unsupported Authorization Type".into(),
            ))
        }
    }
    let (mut cred, mut sh, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            malformed(format!(
                "The authorization header is malformed; the authorization component \"{part}\" \
                    is malformed."
            ))
        })?;
        match k.trim() {
            "Credential" => cred = Some(v.trim()),
            "SignedHeaders" => sh = Some(v.trim()),
            "Signature" => sig = Some(v.trim()),
            _ => {
                return Err(malformed(format!(
                    "The authorization header is malformed; the authorization component \
                        \"{part}\" is malformed."
                )))
            }
        }
    }
    let (Some(cred), Some(sh), Some(sig)) = (cred, sh, sig) else {
        return Err(malformed(
            "The authorization header is malformed; it must contain Credential, SignedHeaders \
                and Signature."
                .into(),
        ));
    };
    let (access_key_id, date, region, service) = parse_credential(cred, malformed)?;
    let signed_headers = parse_signed_headers(sh, malformed)?;
    if !is_hex64(sig) {
        return Err(malformed(
            "The authorization header is malformed; the Signature must be 64 hexadecimal digits."
                .into(),
        ));
    }
    let amz_date = header_amz_date(input)?;
    if amz_date[..8] != date {
        return Err(malformed(format!(
            "The authorization header is malformed; Invalid credential date. Date is not the \
                same as X-Amz-Date: \"{date}\"."
        )));
    }
    let payload_hash = input
        .header("x-amz-content-sha256")
        .ok_or_else(|| {
            AuthError::InvalidRequest(
                "Missing required header for this request: x-amz-content-sha256".into(),
            )
        })?
        .to_string();
    let payload = PayloadMode::parse(&payload_hash)?;
    Ok(ParsedAuth {
        access_key_id,
        date,
        region,
        service,
        amz_date,
        signed_headers,
        signature: sig.to_ascii_lowercase(),
        presigned: false,
        expires: None,
        payload,
        payload_hash,
    })
}

fn parse_query_form(
    input: &AuthInput,
    qget: &dyn Fn(&str) -> Option<String>,
) -> Result<ParsedAuth, AuthError> {
    let qerr = AuthError::AuthorizationQueryParametersError;
    let (Some(alg), Some(cred), Some(amz_date), Some(expires), Some(sh), Some(sig)) = (
        qget("X-Amz-Algorithm"),
        qget("X-Amz-Credential"),
        qget("X-Amz-Date"),
        qget("X-Amz-Expires"),
        qget("X-Amz-SignedHeaders"),
        qget("X-Amz-Signature"),
    ) else {
        return Err(qerr(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                X-Amz-Expires parameters."
                .into(),
        ));
    };
    if alg == "AWS4-ECDSA-P256-SHA256" {
        return Err(AuthError::NotImplemented(
            "SigV4A (AWS4-ECDSA-P256-SHA256) is not supported".into(),
        ));
    }
    if alg != ALGORITHM {
        return Err(qerr(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let (access_key_id, date, region, service) = parse_credential(&cred, qerr)?;
    if parse_amz_date(&amz_date).is_none() {
        return Err(qerr(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".into(),
        ));
    }
    if amz_date[..8] != date {
        return Err(qerr(format!(
            "Invalid credential date \"{date}\". This date is not the same as X-Amz-Date: \"{}\".",
            &amz_date[..8]
        )));
    }
    let expires: i64 = expires
        .parse()
        .map_err(|_| qerr("X-Amz-Expires should be a number".into()))?;
    if expires < 0 {
        return Err(qerr("X-Amz-Expires must be non-negative".into()));
    }
    if expires > MAX_PRESIGNED_EXPIRES_S {
        return Err(qerr(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".into(),
        ));
    }
    let signed_headers = parse_signed_headers(&sh, qerr)?;
    if !is_hex64(&sig) {
        return Err(qerr("X-Amz-Signature must be 64 hexadecimal digits".into()));
    }
    // Presigned URLs sign `UNSIGNED-PAYLOAD`, unless the signer put a hash in the query
    // (or, rarely, in the header).
    let payload_hash = qget("X-Amz-Content-Sha256")
        .or_else(|| input.header("x-amz-content-sha256").map(str::to_string))
        .unwrap_or_else(|| UNSIGNED_PAYLOAD.to_string());
    let payload = PayloadMode::parse(&payload_hash)?;
    Ok(ParsedAuth {
        access_key_id,
        date,
        region,
        service,
        amz_date,
        signed_headers,
        signature: sig.to_ascii_lowercase(),
        presigned: true,
        expires: Some(expires),
        payload,
        payload_hash,
    })
}

/// Refuses a credential scope of another region than the node's, as AWS does:
/// `AuthorizationHeaderMalformed` for the header form, `AuthorizationQueryParametersError`
/// for a presigned URL (both 400), the message naming the region expected (clients read it
/// to find the right region).
pub fn check_region(parsed: &ParsedAuth, region: &str) -> Result<(), AuthError> {
    if parsed.region == region {
        return Ok(());
    }
    let wrong = format!(
        "the region '{}' is wrong; expecting '{region}'",
        parsed.region
    );
    Err(if parsed.presigned {
        AuthError::AuthorizationQueryParametersError(format!(
            "Error parsing the X-Amz-Credential parameter; {wrong}"
        ))
    } else {
        AuthError::AuthorizationHeaderMalformed(format!(
            "The authorization header is malformed; {wrong}"
        ))
    })
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// Check a parsed request against the secret of its access key, at `now_unix_s`.
pub fn verify(
    input: &AuthInput,
    parsed: &ParsedAuth,
    secret_access_key: &str,
    now_unix_s: i64,
) -> Result<Verified, AuthError> {
    check_time_and_headers(input, parsed, now_unix_s)?;
    let key = signing_key(
        secret_access_key,
        &parsed.date,
        &parsed.region,
        &parsed.service,
    );
    check_signature(input, parsed, key)
}

/// As `verify`, with a signing key the caller cached for `(access key, parsed.date,
/// parsed.region, parsed.service)`: saves the four HMACs of the key derivation.
pub fn verify_with_key(
    input: &AuthInput,
    parsed: &ParsedAuth,
    signing_key: [u8; 32],
    now_unix_s: i64,
) -> Result<Verified, AuthError> {
    check_time_and_headers(input, parsed, now_unix_s)?;
    check_signature(input, parsed, signing_key)
}

/// Date, expiry, skew, and which headers must be signed.
fn check_time_and_headers(
    input: &AuthInput,
    parsed: &ParsedAuth,
    now_unix_s: i64,
) -> Result<(), AuthError> {
    let t = parse_amz_date(&parsed.amz_date).ok_or_else(|| {
        AuthError::AccessDenied(
            "AWS authentication requires a valid Date or x-amz-date header".into(),
        )
    })?;
    if parsed.amz_date.get(..8) != Some(parsed.date.as_str()) {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "Invalid credential date. Date is not the same as X-Amz-Date.".into(),
        ));
    }
    if parsed.presigned {
        // `X-Amz-Expires=0` is a URL that was never valid (S3 answers it expired).
        let expires = parsed.expires.unwrap_or(0);
        if expires == 0 || t.saturating_add(expires) < now_unix_s {
            return Err(AuthError::AccessDenied("Request has expired".into()));
        }
        if t > now_unix_s.saturating_add(MAX_CLOCK_SKEW_S) {
            return Err(AuthError::AccessDenied("Request is not valid yet".into()));
        }
    } else if (now_unix_s - t).abs() > MAX_CLOCK_SKEW_S {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    if !parsed.signed_headers.iter().any(|h| h == "host") {
        let msg = "Signed headers must include 'host'".to_string();
        return Err(if parsed.presigned {
            AuthError::AuthorizationQueryParametersError(msg)
        } else {
            AuthError::AuthorizationHeaderMalformed(msg)
        });
    }
    let unsigned = input.headers.iter().find(|(n, _)| {
        n.starts_with("x-amz-")
            && n != "x-amz-content-sha256"
            && !parsed.signed_headers.iter().any(|s| s == n)
    });
    if let Some((n, _)) = unsigned {
        return Err(AuthError::AccessDenied(format!(
            "There were headers present in the request which were not signed: {n}"
        )));
    }
    Ok(())
}

/// The canonical request, string to sign and signature; the raw path first, then the
/// normalized one.
fn check_signature(
    input: &AuthInput,
    parsed: &ParsedAuth,
    key: [u8; 32],
) -> Result<Verified, AuthError> {
    let scope = parsed.scope();
    let query = canonical_query(input.raw_query, parsed.presigned);
    let raw_uri = if input.raw_path.is_empty() {
        "/"
    } else {
        input.raw_path
    };
    let check = |uri: &str| {
        let creq = canonical_request(
            input.method,
            uri,
            &query,
            input.headers,
            &parsed.signed_headers,
            &parsed.payload_hash,
        );
        let sig = sign_hex(&key, &string_to_sign(&parsed.amz_date, &scope, &creq));
        ct_eq(&sig, &parsed.signature)
    };
    let ok = check(raw_uri) || {
        let norm = normalized_path(input.raw_path);
        norm != raw_uri && check(&norm)
    };
    if !ok {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    Ok(Verified {
        access_key_id: parsed.access_key_id.clone(),
        signing_key: key,
        amz_date: parsed.amz_date.clone(),
        scope,
        seed_signature: parsed.signature.clone(),
        payload: parsed.payload,
    })
}

// ---------------------------------------------------------------------------------------
// Streaming (aws-chunked) signatures
// ---------------------------------------------------------------------------------------

/// Signature of one chunk: string to sign `AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n
/// <previous signature>\n<sha256("")>\n<sha256(chunk)>`.
pub fn chunk_signature(
    signing_key: &[u8; 32],
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    chunk_sha256: &[u8; 32],
) -> String {
    let sts = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n\
         {EMPTY_SHA256_HEX}\n{}",
        hex::encode(chunk_sha256)
    );
    sign_hex(signing_key, &sts)
}

/// Signature of the trailer: string to sign `AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n
/// <previous signature>\n<sha256(trailer bytes)>`, the trailer bytes being each trailing
/// header (but `x-amz-trailer-signature`) as `name:value\n`.
pub fn trailer_signature(
    signing_key: &[u8; 32],
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    trailer_bytes: &[u8],
) -> String {
    let sts = format!(
        "AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{}",
        sha256_hex(trailer_bytes)
    );
    sign_hex(signing_key, &sts)
}

/// The bytes a trailer signature covers: each trailing header but
/// `x-amz-trailer-signature`, in the order sent, as `name:value\n` with the name lowercase
/// and the value trimmed.
pub fn canonical_trailer(trailers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for (n, v) in trailers {
        let n = n.trim().to_ascii_lowercase();
        if n == "x-amz-trailer-signature" {
            continue;
        }
        out.extend_from_slice(n.as_bytes());
        out.push(b':');
        out.extend_from_slice(v.trim().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Checks the chain of chunk signatures of an aws-chunked body, in order.
#[derive(Clone, Debug)]
pub struct ChunkVerifier {
    signing_key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl ChunkVerifier {
    pub fn new(v: &Verified) -> Self {
        Self {
            signing_key: v.signing_key,
            amz_date: v.amz_date.clone(),
            scope: v.scope.clone(),
            previous: v.seed_signature.clone(),
        }
    }

    /// The signature the next one chains from.
    pub fn previous_signature(&self) -> &str {
        &self.previous
    }

    /// Check the next chunk (the final, empty one included). On failure the chain does
    /// not advance.
    pub fn verify_chunk(
        &mut self,
        chunk_sha256: &[u8; 32],
        signature_hex: &str,
    ) -> Result<(), AuthError> {
        let expected = chunk_signature(
            &self.signing_key,
            &self.amz_date,
            &self.scope,
            &self.previous,
            chunk_sha256,
        );
        if !ct_eq(&expected, &signature_hex.to_ascii_lowercase()) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        self.previous = expected;
        Ok(())
    }

    /// Check the trailer's `x-amz-trailer-signature`, after the final chunk.
    /// `trailer_bytes` is each trailing header but the signature as `name:value\n`, which
    /// is what current SDKs sign (aws-c-auth added the final newline in 2023); the bytes
    /// without their final newline are accepted too, for signers from before that change.
    pub fn verify_trailer(
        &mut self,
        trailer_bytes: &[u8],
        signature_hex: &str,
    ) -> Result<(), AuthError> {
        let given = signature_hex.to_ascii_lowercase();
        let sign = |bytes: &[u8]| {
            trailer_signature(
                &self.signing_key,
                &self.amz_date,
                &self.scope,
                &self.previous,
                bytes,
            )
        };
        let mut expected = sign(trailer_bytes);
        if !ct_eq(&expected, &given) {
            match trailer_bytes.strip_suffix(b"\n") {
                Some(short) => expected = sign(short),
                None => return Err(AuthError::SignatureDoesNotMatch),
            }
            if !ct_eq(&expected, &given) {
                return Err(AuthError::SignatureDoesNotMatch);
            }
        }
        self.previous = expected;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Signing (tests, tools, load generator)
// ---------------------------------------------------------------------------------------

/// Who signs, where and when.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    /// `yyyymmddThhmmssZ`; its first 8 characters are the scope's date.
    pub amz_date: &'a str,
}

impl SigningParams<'_> {
    pub fn scope(&self) -> String {
        format!("{}/{}/s3/aws4_request", &self.amz_date[..8], self.region)
    }
    pub fn signing_key(&self) -> [u8; 32] {
        signing_key(
            self.secret_access_key,
            &self.amz_date[..8],
            self.region,
            "s3",
        )
    }
}

fn sorted_lower(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    v.sort();
    v.dedup();
    v
}

/// The signature (hex) of a request, signing the headers named in `signed_headers`
/// (which must be present in `headers` with lowercase names: at least `host`, and
/// normally `x-amz-date` and `x-amz-content-sha256`). `raw_path` and `raw_query` are as
/// they will be sent; `payload_hash` is the `x-amz-content-sha256` value.
#[allow(clippy::too_many_arguments)]
pub fn signature(
    params: &SigningParams,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    signed_headers: &[&str],
    payload_hash: &str,
) -> String {
    let signed = sorted_lower(signed_headers);
    let creq = canonical_request(
        method,
        if raw_path.is_empty() { "/" } else { raw_path },
        &canonical_query(raw_query, false),
        headers,
        &signed,
        payload_hash,
    );
    sign_hex(
        &params.signing_key(),
        &string_to_sign(params.amz_date, &params.scope(), &creq),
    )
}

/// The `Authorization` header value for a request (see `signature`).
pub fn sign_request(
    params: &SigningParams,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    signed_headers: &[&str],
    payload_hash: &str,
) -> String {
    let sig = signature(
        params,
        method,
        raw_path,
        raw_query,
        headers,
        signed_headers,
        payload_hash,
    );
    format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={sig}",
        params.access_key_id,
        params.scope(),
        sorted_lower(signed_headers).join(";")
    )
}

/// A presigned URL's path and query (`/bucket/key?…&X-Amz-Signature=…`) signing only
/// `host`; prepend `scheme://host`. `raw_query` holds the request's own parameters, if any.
pub fn presign_url(
    params: &SigningParams,
    method: &str,
    host: &str,
    raw_path: &str,
    raw_query: &str,
    expires_s: i64,
) -> String {
    let cred = format!("{}/{}", params.access_key_id, params.scope());
    let mut query = String::from(raw_query);
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(&format!(
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={}\
         &X-Amz-Expires={expires_s}&X-Amz-SignedHeaders=host",
        uri_encode(cred.as_bytes(), true),
        params.amz_date
    ));
    let headers = [("host".to_string(), host.to_string())];
    let sig = signature(
        params,
        method,
        raw_path,
        &query,
        &headers,
        &["host"],
        UNSIGNED_PAYLOAD,
    );
    format!("{raw_path}?{query}&X-Amz-Signature={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> i64 {
        parse_amz_date(DATE).unwrap()
    }

    fn input<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a [(String, String)],
    ) -> AuthInput<'a> {
        AuthInput {
            method,
            raw_path: path,
            raw_query: query,
            headers,
        }
    }

    fn auth_header(signed: &str, sig: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 \
                Credential={AK}/20130524/us-east-1/s3/aws4_request,\
                SignedHeaders={signed},Signature={sig}"
        )
    }

    fn check(
        method: &str,
        path: &str,
        query: &str,
        mut hs: Vec<(String, String)>,
        signed: &str,
        sig: &str,
    ) -> Result<Verified, AuthError> {
        hs.push(("authorization".into(), auth_header(signed, sig)));
        let inp = input(method, path, query, &hs);
        let p = parse(&inp)?.expect("authenticated");
        verify(&inp, &p, SK, now())
    }

    // AWS "Signature Calculations for the Authorization Header: Transferring Payload in a
    // Single Chunk", example GET Object.
    #[test]
    fn aws_example_get_object() {
        let hs = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256_HEX),
            ("x-amz-date", DATE),
        ]);
        let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let v = check(
            "GET",
            "/test.txt",
            "",
            hs.clone(),
            "host;range;x-amz-content-sha256;x-amz-date",
            sig,
        )
        .unwrap();
        assert_eq!(v.payload, PayloadMode::Sha256(Sha256::digest(b"").into()));
        assert_eq!(v.scope, "20130524/us-east-1/s3/aws4_request");
        // The signer agrees.
        let params = SigningParams {
            access_key_id: AK,
            secret_access_key: SK,
            region: "us-east-1",
            amz_date: DATE,
        };
        let a = sign_request(
            &params,
            "GET",
            "/test.txt",
            "",
            &hs,
            &["host", "range", "x-amz-content-sha256", "x-amz-date"],
            EMPTY_SHA256_HEX,
        );
        assert!(a.ends_with(sig), "{a}");
        // One bit changed anywhere: refused.
        let mut bad = sig.to_string().into_bytes();
        bad[10] ^= 1;
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            check(
                "GET",
                "/test.txt",
                "",
                hs.clone(),
                "host;range;x-amz-content-sha256;x-amz-date",
                &bad
            )
            .unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let mut hs2 = hs.clone();
        hs2[1].1 = "bytes=0-8".into();
        assert_eq!(
            check(
                "GET",
                "/test.txt",
                "",
                hs2,
                "host;range;x-amz-content-sha256;x-amz-date",
                sig
            )
            .unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        assert_eq!(
            check(
                "GET",
                "/test.txt",
                "",
                hs,
                "host;range;x-amz-content-sha256;x-amz-date",
                &sig.to_uppercase()
            )
            .map(|_| ()),
            Ok(())
        );
    }

    // Example PUT Object: the path is `/test$file.text` on the wire, `/test%24file.text`
    // in the canonical request; a `Date` header is signed too.
    #[test]
    fn aws_example_put_object_with_dollar() {
        let body = b"Welcome to Amazon S3.";
        let hash = hex::encode(Sha256::digest(body));
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let hs = h(&[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", &hash),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let signed = "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class";
        let sig = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
        check("PUT", "/test%24file.text", "", hs.clone(), signed, sig).unwrap();
        check("PUT", "/test$file.text", "", hs.clone(), signed, sig).unwrap();
        check("PUT", "/test%24file.text", "", hs, signed, sig).unwrap();
    }

    #[test]
    fn aws_example_get_lifecycle_and_list() {
        let hs = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256_HEX),
            ("x-amz-date", DATE),
        ]);
        let signed = "host;x-amz-content-sha256;x-amz-date";
        check(
            "GET",
            "/",
            "lifecycle",
            hs.clone(),
            signed,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        )
        .unwrap();
        check(
            "GET",
            "/",
            "lifecycle=",
            hs.clone(),
            signed,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        )
        .unwrap();
        let sig = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
        check("GET", "/", "max-keys=2&prefix=J", hs.clone(), signed, sig).unwrap();
        // Order of parameters on the wire does not matter.
        check("GET", "/", "prefix=J&max-keys=2", hs.clone(), signed, sig).unwrap();
        check("GET", "", "prefix=J&max-keys=2", hs.clone(), signed, sig).unwrap();
        assert_eq!(
            check("GET", "/", "max-keys=3&prefix=J", hs, signed, sig).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
    }

    // "Authenticating Requests: Using Query Parameters", example presigned GET.
    #[test]
    fn aws_example_presigned() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
            &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
            &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let hs = h(&[("host", "examplebucket.s3.amazonaws.com")]);
        let inp = input("GET", "/test.txt", q, &hs);
        let p = parse(&inp).unwrap().unwrap();
        assert!(p.presigned);
        assert_eq!(p.expires, Some(86400));
        assert_eq!(p.payload, PayloadMode::UnsignedPayload);
        verify(&inp, &p, SK, now()).unwrap();
        verify(&inp, &p, SK, now() + 86400).unwrap();
        assert_eq!(
            verify(&inp, &p, SK, now() + 86401).unwrap_err(),
            AuthError::AccessDenied("Request has expired".into())
        );
        assert!(matches!(
            verify(&inp, &p, SK, now() - 3600).unwrap_err(),
            AuthError::AccessDenied(_)
        ));
        assert_eq!(
            verify(&inp, &p, "other", now()).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        // The signer produces the same URL.
        let params = SigningParams {
            access_key_id: AK,
            secret_access_key: SK,
            region: "us-east-1",
            amz_date: DATE,
        };
        assert_eq!(
            presign_url(
                &params,
                "GET",
                "examplebucket.s3.amazonaws.com",
                "/test.txt",
                "",
                86400
            ),
            format!("/test.txt?{q}")
        );
        // Unsigned x-amz-* header added by whoever holds the URL: refused.
        let hs2 = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-copy-source", "b/k"),
        ]);
        let inp2 = input("GET", "/test.txt", q, &hs2);
        assert!(matches!(
            verify(&inp2, &p, SK, now()).unwrap_err(),
            AuthError::AccessDenied(_)
        ));
        // Issue 25: `X-Amz-Expires=0` was accepted in the second it was signed.
        let url = presign_url(&params, "GET", "h", "/test.txt", "", 0);
        let (_, q0) = url.split_once('?').unwrap();
        let hs0 = h(&[("host", "h")]);
        let inp0 = input("GET", "/test.txt", q0, &hs0);
        let p0 = parse(&inp0).unwrap().unwrap();
        assert_eq!(p0.expires, Some(0));
        assert_eq!(
            verify(&inp0, &p0, SK, now()).unwrap_err(),
            AuthError::AccessDenied("Request has expired".into())
        );
        // A presigned URL of another region: AWS's code and message for the query form.
        assert_eq!(
            check_region(&p0, "eu-west-1").unwrap_err(),
            AuthError::AuthorizationQueryParametersError(
                "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is \
                 wrong; expecting 'eu-west-1'"
                    .into()
            )
        );
    }

    // "Transferring Payload in Multiple Chunks": seed and chunk signatures, 64 KiB chunks.
    #[test]
    fn aws_example_streaming() {
        let hs = h(&[
            ("content-encoding", "aws-chunked"),
            ("content-length", "66824"),
            ("host", "s3.amazonaws.com"),
            ("x-amz-content-sha256", STREAMING_SIGNED),
            ("x-amz-date", DATE),
            ("x-amz-decoded-content-length", "66560"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let signed = "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
            x-amz-decoded-content-length;x-amz-storage-class";
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let v = check(
            "PUT",
            "/examplebucket/chunkObject.txt",
            "",
            hs,
            signed,
            seed,
        )
        .unwrap();
        assert_eq!(v.payload, PayloadMode::StreamingSigned);
        assert_eq!(v.seed_signature, seed);
        let mut cv = ChunkVerifier::new(&v);
        let c1: [u8; 32] = Sha256::digest(vec![b'a'; 65536]).into();
        let c2: [u8; 32] = Sha256::digest(vec![b'a'; 1024]).into();
        let c3: [u8; 32] = Sha256::digest(b"").into();
        // Out of order: refused, chain unchanged.
        assert_eq!(
            cv.verify_chunk(
                &c2,
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
            ),
            Err(AuthError::SignatureDoesNotMatch)
        );
        cv.verify_chunk(
            &c1,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        )
        .unwrap();
        cv.verify_chunk(
            &c2,
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        )
        .unwrap();
        cv.verify_chunk(
            &c3,
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        )
        .unwrap();
    }

    // "Signature calculations for trailing headers": chunk and trailer signatures chained
    // from the published seed signature
    // (64 KiB + 1 KiB + final empty chunk, as in the AWS example).
    #[test]
    fn aws_example_streaming_trailer() {
        let key = signing_key(SK, "20130524", "us-east-1", "s3");
        let v = Verified {
            access_key_id: AK.into(),
            signing_key: key,
            amz_date: DATE.into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            seed_signature: "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
                .into(),
            payload: PayloadMode::StreamingSignedTrailer,
        };
        let mut cv = ChunkVerifier::new(&v);
        let c1: [u8; 32] = Sha256::digest(vec![b'a'; 65536]).into();
        let c2: [u8; 32] = Sha256::digest(vec![b'a'; 1024]).into();
        let c3: [u8; 32] = Sha256::digest(b"").into();
        cv.verify_chunk(
            &c1,
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        )
        .unwrap();
        cv.verify_chunk(
            &c2,
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        )
        .unwrap();
        cv.verify_chunk(
            &c3,
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        )
        .unwrap();
        // The trailer signature itself is covered by `trailer_chain` (round trip) only: no
        // published value was at hand to check it against.
        assert_eq!(
            cv.previous_signature(),
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
        );
    }

    #[test]
    fn trailer_chain() {
        let params = SigningParams {
            access_key_id: AK,
            secret_access_key: SK,
            region: "us-east-1",
            amz_date: DATE,
        };
        let mut hs = h(&[
            ("content-encoding", "aws-chunked"),
            ("host", "localhost:3900"),
            ("x-amz-content-sha256", STREAMING_SIGNED_TRAILER),
            ("x-amz-date", DATE),
            ("x-amz-decoded-content-length", "10"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]);
        let names: Vec<String> = hs.iter().map(|(n, _)| n.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let auth = sign_request(
            &params,
            "PUT",
            "/b/k",
            "x-id=PutObject",
            &hs,
            &names,
            STREAMING_SIGNED_TRAILER,
        );
        hs.push(("authorization".into(), auth));
        let inp = input("PUT", "/b/k", "x-id=PutObject", &hs);
        let p = parse(&inp).unwrap().unwrap();
        let v = verify(&inp, &p, SK, now()).unwrap();
        assert!(v.payload.has_trailer() && v.payload.has_chunk_signatures());
        let key = params.signing_key();
        let scope = params.scope();
        let c1: [u8; 32] = Sha256::digest(b"0123456789").into();
        let c2: [u8; 32] = Sha256::digest(b"").into();
        let s1 = chunk_signature(&key, DATE, &scope, &v.seed_signature, &c1);
        let s2 = chunk_signature(&key, DATE, &scope, &s1, &c2);
        let trailer = &canonical_trailer(&h(&[
            ("X-Amz-Checksum-Crc32", " poTHxg=="),
            ("x-amz-trailer-signature", "ignored"),
        ]));
        assert_eq!(trailer, b"x-amz-checksum-crc32:poTHxg==\n");
        let st = trailer_signature(&key, DATE, &scope, &s2, trailer);
        let mut cv = ChunkVerifier::new(&v);
        cv.verify_chunk(&c1, &s1).unwrap();
        cv.verify_chunk(&c2, &s2).unwrap();
        let mut cv2 = cv.clone();
        assert_eq!(
            cv2.verify_trailer(b"x-amz-checksum-crc32:poTHxA==\n", &st),
            Err(AuthError::SignatureDoesNotMatch)
        );
        let mut cv3 = cv.clone();
        cv.verify_trailer(trailer, &st).unwrap();
        // A signer that left out the final newline.
        let st_old = trailer_signature(&key, DATE, &scope, &s2, b"x-amz-checksum-crc32:poTHxg==");
        cv3.verify_trailer(trailer, &st_old).unwrap();
    }

    #[test]
    fn parse_forms_and_errors() {
        let base = h(&[
            ("host", "h"),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
        ]);
        let with = |auth: &str| {
            let mut v = base.clone();
            v.push(("authorization".into(), auth.into()));
            v
        };
        let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        // Anonymous.
        assert_eq!(parse(&input("GET", "/", "", &base)).unwrap(), None);
        // Spaces or not after commas.
        for a in [
            format!(
                "AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request, \
                SignedHeaders=host;x-amz-date, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 \
                Credential={AK}/20130524/us-east-1/s3/aws4_request,\
                SignedHeaders=host;x-amz-date,Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256  Credential={AK}/20130524/us-east-1/s3/aws4_request \
                ,  SignedHeaders=host;x-amz-date , Signature={sig}"
            ),
        ] {
            let hs = with(&a);
            let p = parse(&input("GET", "/", "", &hs)).unwrap().unwrap();
            assert_eq!(p.access_key_id, AK);
            assert_eq!(p.region, "us-east-1");
            assert_eq!(p.signed_headers, vec!["host", "x-amz-date"]);
            assert_eq!(p.payload, PayloadMode::UnsignedPayload);
            assert_eq!(p.amz_date, DATE);
            assert_eq!(p.date, "20130524");
        }
        let err = |a: &str| parse(&input("GET", "/", "", &with(a))).unwrap_err();
        assert!(matches!(
            err("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="),
            AuthError::InvalidRequest(_)
        ));
        assert!(matches!(
            err("AWS4-ECDSA-P256-SHA256 Credential=x"),
            AuthError::NotImplemented(_)
        ));
        assert!(matches!(err("Bearer x"), AuthError::InvalidArgument(_)));
        assert!(matches!(
            err("AWS4-HMAC-SHA256 Credential=a/b"),
            AuthError::AuthorizationHeaderMalformed(_)
        ));
        assert!(matches!(
            err(&format!(
                "AWS4-HMAC-SHA256 Credential={AK}/20130525/us-east-1/s3/aws4_request, \
                SignedHeaders=host, Signature={sig}"
            )),
            AuthError::AuthorizationHeaderMalformed(_)
        ));
        assert!(matches!(
            err(&format!(
                "AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request, \
                SignedHeaders=host, Signature=abc"
            )),
            AuthError::AuthorizationHeaderMalformed(_)
        ));
        assert!(matches!(
            err(&format!(
                "AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_req, \
                SignedHeaders=host, Signature={sig}"
            )),
            AuthError::AuthorizationHeaderMalformed(_)
        ));
        // Missing x-amz-content-sha256.
        let hs = h(&[
            ("host", "h"),
            ("x-amz-date", DATE),
            ("authorization", &auth_header("host", sig)),
        ]);
        assert!(matches!(
            parse(&input("GET", "/", "", &hs)).unwrap_err(),
            AuthError::InvalidRequest(_)
        ));
        // Bad x-amz-content-sha256.
        let hs = h(&[
            ("host", "h"),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", "abc"),
            ("authorization", &auth_header("host", sig)),
        ]);
        assert!(matches!(
            parse(&input("GET", "/", "", &hs)).unwrap_err(),
            AuthError::InvalidArgument(_)
        ));
        // Missing date.
        let hs = h(&[
            ("host", "h"),
            ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ("authorization", &auth_header("host", sig)),
        ]);
        assert!(matches!(
            parse(&input("GET", "/", "", &hs)).unwrap_err(),
            AuthError::AccessDenied(_)
        ));
        // SigV2 presigned.
        assert!(matches!(
            parse(&input(
                "GET",
                "/",
                "AWSAccessKeyId=A&Expires=1&Signature=x",
                &base
            ))
            .unwrap_err(),
            AuthError::InvalidRequest(_)
        ));
        // Presigned, missing or bad parameters.
        let q = |s: &str| parse(&input("GET", "/", s, &base)).unwrap_err();
        assert!(matches!(
            q("X-Amz-Algorithm=AWS4-HMAC-SHA256"),
            AuthError::AuthorizationQueryParametersError(_)
        ));
        let full = |exp: &str| {
            format!(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256\
                &X-Amz-Credential={AK}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
                &X-Amz-Date={DATE}&X-Amz-Expires={exp}&X-Amz-SignedHeaders=host\
                &X-Amz-Signature={sig}"
            )
        };
        assert!(matches!(
            q(&full("604801")),
            AuthError::AuthorizationQueryParametersError(_)
        ));
        assert!(matches!(
            q(&full("-1")),
            AuthError::AuthorizationQueryParametersError(_)
        ));
        assert!(matches!(
            q(&full("x")),
            AuthError::AuthorizationQueryParametersError(_)
        ));
        let hs = base
            .iter()
            .filter(|(n, _)| n == "host")
            .cloned()
            .collect::<Vec<_>>();
        assert!(parse(&input("GET", "/", &full("604800"), &hs))
            .unwrap()
            .is_some());
        // Both mechanisms at once.
        assert!(matches!(
            parse(&input(
                "GET",
                "/",
                &full("60"),
                &with(&auth_header("host", sig))
            ))
            .unwrap_err(),
            AuthError::InvalidArgument(_)
        ));
    }

    #[test]
    fn payload_modes() {
        assert_eq!(
            PayloadMode::parse(STREAMING_UNSIGNED_TRAILER),
            Ok(PayloadMode::StreamingUnsignedTrailer)
        );
        assert_eq!(
            PayloadMode::parse(STREAMING_SIGNED_TRAILER),
            Ok(PayloadMode::StreamingSignedTrailer)
        );
        assert!(matches!(
            PayloadMode::parse("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
            Err(AuthError::NotImplemented(_))
        ));
        assert!(PayloadMode::StreamingUnsignedTrailer.is_streaming());
        assert!(!PayloadMode::StreamingUnsignedTrailer.has_chunk_signatures());
    }

    #[test]
    fn skew() {
        let params = SigningParams {
            access_key_id: AK,
            secret_access_key: SK,
            region: "us-east-1",
            amz_date: DATE,
        };
        let mut hs = h(&[
            ("host", "h"),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", EMPTY_SHA256_HEX),
        ]);
        let a = sign_request(
            &params,
            "GET",
            "/b",
            "",
            &hs,
            &["host", "x-amz-date", "x-amz-content-sha256"],
            EMPTY_SHA256_HEX,
        );
        hs.push(("authorization".into(), a));
        let inp = input("GET", "/b", "", &hs);
        let p = parse(&inp).unwrap().unwrap();
        verify(&inp, &p, SK, now() + 900).unwrap();
        verify_with_key(&inp, &p, params.signing_key(), now()).unwrap();
        assert_eq!(
            verify_with_key(&inp, &p, [0; 32], now()).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        verify(&inp, &p, SK, now() - 900).unwrap();
        assert_eq!(
            verify(&inp, &p, SK, now() + 901).unwrap_err(),
            AuthError::RequestTimeTooSkewed
        );
        assert_eq!(
            verify(&inp, &p, SK, now() - 901).unwrap_err(),
            AuthError::RequestTimeTooSkewed
        );
        assert!(check_region(&p, "us-east-1").is_ok());
        assert!(matches!(
            check_region(&p, "garage").unwrap_err(),
            AuthError::AuthorizationHeaderMalformed(_)
        ));
        // Unsigned x-amz-* header.
        hs.push(("x-amz-meta-a".into(), "1".into()));
        let inp = input("GET", "/b", "", &hs);
        assert!(matches!(
            verify(&inp, &p, SK, now()).unwrap_err(),
            AuthError::AccessDenied(_)
        ));
    }

    #[test]
    fn date_header_and_repeated_headers() {
        let params = SigningParams {
            access_key_id: AK,
            secret_access_key: SK,
            region: "us-east-1",
            amz_date: DATE,
        };
        // No x-amz-date: the HTTP Date header gives the time.
        let mut hs = h(&[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", "h"),
            ("x-amz-content-sha256", EMPTY_SHA256_HEX),
            ("x-amz-meta-a", "one"),
            ("x-amz-meta-a", "two   three"),
        ]);
        let signed = ["date", "host", "x-amz-content-sha256", "x-amz-meta-a"];
        let a = sign_request(&params, "GET", "/b", "", &hs, &signed, EMPTY_SHA256_HEX);
        hs.push(("authorization".into(), a));
        let inp = input("GET", "/b", "", &hs);
        let p = parse(&inp).unwrap().unwrap();
        assert_eq!(p.amz_date, DATE);
        verify(&inp, &p, SK, now()).unwrap();
        // The canonical form joins repeated headers and collapses blanks.
        let ch = canonical_headers(&hs, &["x-amz-meta-a".to_string()]);
        assert_eq!(ch, "x-amz-meta-a:one,two three\n");
        // Issue 25: botocore signs with an RFC 2822 date in the `-0000` zone.
        for date in [
            "Fri, 24 May 2013 00:00:00 -0000",
            "24 May 2013 02:00:00 +0200",
        ] {
            let hs = h(&[
                ("date", date),
                ("host", "h"),
                ("x-amz-content-sha256", EMPTY_SHA256_HEX),
            ]);
            assert_eq!(header_amz_date(&input("GET", "/b", "", &hs)).unwrap(), DATE);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date(DATE), Some(1_369_353_600));
        assert_eq!(format_amz_date(1_369_353_600), DATE);
        assert_eq!(parse_amz_date("20130524T000000"), None);
        assert_eq!(parse_amz_date("20131324T000000Z"), None);
        assert_eq!(parse_amz_date("2013052AT000000Z"), None);
    }

    #[test]
    fn encodings() {
        assert_eq!(
            uri_encode("a b+c=d/é~".as_bytes(), false),
            "a%20b%2Bc%3Dd/%C3%A9~"
        );
        assert_eq!(uri_encode(b"a/b", true), "a%2Fb");
        assert_eq!(normalized_path("/a b/%2b%7e!"), "/a%20b/%2B~%21");
        assert_eq!(
            canonical_query("b=2&a=1&a=0&uploads", false),
            "a=0&a=1&b=2&uploads="
        );
        assert_eq!(
            canonical_query("delimiter=%2F&prefix=&x=a+b", false),
            "delimiter=%2F&prefix=&x=a%2Bb"
        );
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
    }

    fn encode_pair(n: &str, v: &str) -> String {
        format!(
            "{}={}",
            uri_encode(n.as_bytes(), true),
            uri_encode(v.as_bytes(), true)
        )
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9._~-]",
                Just(" ".to_string()),
                Just("+".to_string()),
                Just("=".to_string()),
                Just("/".to_string()),
                Just("%".to_string()),
                Just("&".to_string()),
                Just("é".to_string()),
                Just("日".to_string()),
                Just("!".to_string()),
                Just("$".to_string()),
            ],
            1..20,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn sign_verify_roundtrip(
            key in key_strategy(),
            params in proptest::collection::vec((key_strategy(), key_strategy()), 0..4),
            meta in "[ a-zA-Z0-9]{0,20}",
            flip in 0usize..64,
        ) {
            let path = format!("/bucket/{}", uri_encode(key.as_bytes(), false));
            let query = params
                .iter()
                .map(|(n, v)| encode_pair(n, v))
                .collect::<Vec<_>>()
                .join("&");
            let sp = SigningParams {
                access_key_id: AK,
                secret_access_key: SK,
                region: "eu-west-3",
                amz_date: DATE,
            };
            let mut hs = h(&[
                ("host", "127.0.0.1:3900"),
                ("x-amz-date", DATE),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
                ("x-amz-meta-m", &meta),
            ]);
            let signed = ["host", "x-amz-date", "x-amz-content-sha256", "x-amz-meta-m"];
            let a = sign_request(&sp, "PUT", &path, &query, &hs, &signed, UNSIGNED_PAYLOAD);
            hs.push(("authorization".into(), a.clone()));
            let inp = input("PUT", &path, &query, &hs);
            let p = parse(&inp).unwrap().unwrap();
            prop_assert!(verify(&inp, &p, SK, now()).is_ok());
            // Flip one hex digit of the signature.
            let mut p2 = p.clone();
            let mut b = p2.signature.into_bytes();
            b[flip] = if b[flip] == b'0' { b'1' } else { b'0' };
            p2.signature = String::from_utf8(b).unwrap();
            let e = verify(&inp, &p2, SK, now()).unwrap_err();
            prop_assert_eq!(e, AuthError::SignatureDoesNotMatch);
            // A different path fails.
            let other = format!("{path}x");
            let inp3 = input("PUT", &other, &query, &hs);
            let e = verify(&inp3, &p, SK, now()).unwrap_err();
            prop_assert_eq!(e, AuthError::SignatureDoesNotMatch);
            // Presigned form round trip.
            let url = presign_url(&sp, "GET", "127.0.0.1:3900", &path, &query, 3600);
            let (pp, pq) = url.split_once('?').unwrap();
            let hs2 = h(&[("host", "127.0.0.1:3900")]);
            let inp4 = input("GET", pp, pq, &hs2);
            let p4 = parse(&inp4).unwrap().unwrap();
            prop_assert!(verify(&inp4, &p4, SK, now() + 3600).is_ok());
            prop_assert!(verify(&inp4, &p4, SK, now() + 3601).is_err());
        }

        /// Clients that send some characters raw or with lowercase escapes but sign AWS's
        /// encoding still verify, through the normalized-path fallback.
        #[test]
        fn sloppy_path_encoding_verifies(key in key_strategy(), mask in any::<u64>()) {
            let signed_path = format!("/b/{}", uri_encode(key.as_bytes(), false));
            let mut wire_path = String::from("/b/");
            for (i, &b) in key.as_bytes().iter().enumerate() {
                let raw_ok = matches!(b, b'!' | b'$' | b'+' | b'=' | b'&');
                if raw_ok && mask >> (i % 64) & 1 == 1 {
                    wire_path.push(b as char);
                } else if !is_unreserved(b) && b != b'/' {
                    wire_path.push_str(&format!("%{b:02x}"));
                } else {
                    wire_path.push(b as char);
                }
            }
            let sp = SigningParams {
                access_key_id: AK,
                secret_access_key: SK,
                region: "us-east-1",
                amz_date: DATE,
            };
            let mut hs = h(&[
                ("host", "h"),
                ("x-amz-date", DATE),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ]);
            let signed = ["host", "x-amz-date", "x-amz-content-sha256"];
            let a = sign_request(&sp, "GET", &signed_path, "", &hs, &signed, UNSIGNED_PAYLOAD);
            hs.push(("authorization".into(), a));
            let inp = input("GET", &wire_path, "", &hs);
            let p = parse(&inp).unwrap().unwrap();
            prop_assert!(verify(&inp, &p, SK, now()).is_ok(), "{} vs {}", wire_path, signed_path);
        }

        /// A chain of chunk signatures verifies in order; reordering or altering a chunk
        /// breaks it from that chunk on.
        #[test]
        fn chunk_chain(
            chunks in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..64),
                1..6,
            ),
            bad in any::<usize>(),
        ) {
            let key = signing_key(SK, "20130524", "us-east-1", "s3");
            let scope = "20130524/us-east-1/s3/aws4_request";
            let seed = "0".repeat(64);
            let v = Verified {
                access_key_id: AK.into(),
                signing_key: key,
                amz_date: DATE.into(),
                scope: scope.into(),
                seed_signature: seed.clone(),
                payload: PayloadMode::StreamingSigned,
            };
            let mut prev = seed;
            let mut sigs = Vec::new();
            for c in &chunks {
                let d: [u8; 32] = Sha256::digest(c).into();
                prev = chunk_signature(&key, DATE, scope, &prev, &d);
                sigs.push(prev.clone());
            }
            let mut cv = ChunkVerifier::new(&v);
            for (c, sig) in chunks.iter().zip(&sigs) {
                prop_assert!(cv.verify_chunk(&Sha256::digest(c).into(), sig).is_ok());
            }
            let i = bad % chunks.len();
            let mut cv = ChunkVerifier::new(&v);
            for (j, (c, sig)) in chunks.iter().zip(&sigs).enumerate() {
                let mut c = c.clone();
                if j == i {
                    c.push(1);
                }
                let r = cv.verify_chunk(&Sha256::digest(&c).into(), sig);
                prop_assert_eq!(r.is_ok(), j < i);
                if j >= i {
                    break;
                }
            }
        }

        #[test]
        fn canonical_query_order_independent(
            mut params in proptest::collection::vec((key_strategy(), key_strategy()), 0..6),
            seed in any::<u64>(),
        ) {
            let enc = |ps: &[(String, String)]| ps.iter()
                .map(|(n, v)| encode_pair(n, v))
                .collect::<Vec<_>>().join("&");
            let a = canonical_query(&enc(&params), false);
            let n = params.len();
            if n > 1 { params.swap(0, (seed as usize) % n); }
            prop_assert_eq!(a, canonical_query(&enc(&params), false));
        }

        #[test]
        fn uri_encode_decode_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(percent_decode(&uri_encode(&bytes, true)), bytes.clone());
            prop_assert_eq!(percent_decode(&uri_encode(&bytes, false)), bytes);
        }

        #[test]
        fn parse_never_panics(auth in ".{0,200}", query in ".{0,200}", date in ".{0,20}") {
            let hs = h(&[
                ("host", "h"),
                ("x-amz-date", &date),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
                ("authorization", &auth),
            ]);
            let _ = parse(&input("GET", "/", &query, &hs));
            let hs = h(&[("host", "h")]);
            if let Ok(Some(p)) = parse(&input("GET", "/", &query, &hs)) {
                let _ = verify(&input("GET", "/", &query, &hs), &p, SK, 0);
            }
        }

        #[test]
        fn date_roundtrip(t in 0i64..10_000_000_000) {
            prop_assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
    }
}
