//! Percent-decoding of request targets and percent-encoding of keys in listings.

use super::HttpError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Decodes `%XX` escapes and checks the result is UTF-8. `+` stays `+`: AWS clients encode
/// a space as `%20` in paths and in SigV4-canonical queries. A `%` not followed by two hex
/// digits is an error (a lenient decoder would let two spellings of one key through).
pub fn uri_decode(s: &str) -> Result<String, HttpError> {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(s.to_string());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(HttpError::BadPercentEncoding)?;
            let hi = (hex[0] as char).to_digit(16);
            let lo = (hex[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(HttpError::BadPercentEncoding),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::NotUtf8)
}

/// Characters kept as they are by `url_encode_key`: RFC 3986 unreserved, and `/`.
const KEY_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes a key or prefix for a listing asked with `encoding-type=url`, as AWS does:
/// `A-Za-z0-9-_.~/` kept, every other byte of the UTF-8 as `%XX` (upper-case hex; a space
/// is `%20`, a `+` is `%2B`, so both `unquote` and `unquote_plus` decoders get it back).
pub fn url_encode_key(s: &str) -> String {
    utf8_percent_encode(s, KEY_KEEP).to_string()
}
