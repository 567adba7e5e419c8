//! HTTP/1.1 for the S3 front end, sans-IO: request heads, body framing, the chunked and
//! aws-chunked body decoders, response heads, and the percent-encoding S3 needs.
//!
//! Nothing here does I/O or allocates per byte: the connection code owns the buffers, feeds
//! bytes in and acts on what comes out. Every decoder accepts its input split at any byte
//! boundary, and never consumes bytes past the end of the body it decodes (pipelined
//! requests stay in the caller's buffer).

mod aws_chunked;
mod chunked;
mod date;
pub mod form;
mod head;
mod line;
mod response;
mod uri;

pub use aws_chunked::{AwsChunkEvent, AwsChunkedDecoder};
pub use chunked::{BodyEvent, ChunkedDecoder};
pub use date::parse_http_date;
pub use head::{body_framing, parse_head, BodyFraming, RequestHead};
pub use response::{http_date, reason_phrase, write_chunk, write_last_chunk, write_response_head};
pub use uri::{uri_decode, url_encode_key};

/// Longest chunk-size line (size, extensions, CRLF) accepted by the chunk decoders.
/// An aws-chunked line with a signature is about 85 bytes.
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;
/// Total bytes of trailer lines accepted after the last chunk.
pub const TRAILER_BYTES_MAX: usize = 16 * 1024;
/// Number of trailer fields accepted after the last chunk.
pub const TRAILER_COUNT_MAX: usize = 64;

/// Every way a request can fail to parse. `status()` gives the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than the limit")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("malformed request head: {0}")]
    Malformed(String),
    #[error("request target is not origin-form or absolute-form")]
    BadTarget,
    #[error("invalid percent-encoding or UTF-8 in the path")]
    BadPath,
    #[error("invalid percent-encoding or UTF-8 in the query")]
    BadQuery,
    #[error("invalid percent-encoding")]
    BadPercentEncoding,
    #[error("percent-decoded bytes are not UTF-8")]
    NotUtf8,
    #[error("header value is not UTF-8")]
    BadHeaderValue,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("both Transfer-Encoding and Content-Length")]
    TransferEncodingWithContentLength,
    #[error("Transfer-Encoding does not end with chunked, or sent in HTTP/1.0")]
    BadTransferEncoding,
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    #[error("invalid chunk size line")]
    BadChunkSize,
    #[error("chunk size does not fit in 64 bits")]
    ChunkSizeOverflow,
    #[error("line longer than the limit in a chunked body")]
    LineTooLong,
    #[error("line not terminated by CRLF in a chunked body")]
    BadLineEnding,
    #[error("chunk data not followed by CRLF")]
    MissingChunkCrlf,
    #[error("invalid trailer field")]
    BadTrailer,
    #[error("trailer section larger than the limit")]
    TrailersTooLarge,
    #[error("body ended before its framing said it would")]
    Truncated,
}

impl HttpError {
    /// The status code a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::TrailersTooLarge => 431,
            _ => 400,
        }
    }
}

#[cfg(test)]
mod tests;
