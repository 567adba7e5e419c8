//! The `aws-chunked` content coding of S3 streaming uploads, as an incremental pull decoder.
//!
//! Shapes seen from real clients (see `/work/shared/wire`), all accepted:
//! - `a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\n\r\n` (unsigned, trailer)
//! - `A;chunk-signature=<64 hex>\r\n<data>\r\n0;chunk-signature=<64 hex>\r\n`
//!   `x-amz-checksum-crc32:…\r\nx-amz-trailer-signature:<64 hex>\r\n\r\n` (signed, trailer)
//! - `…0;chunk-signature=<64 hex>\r\n\r\n` (signed, no trailer) and `…0\r\n\r\n`.
//!
//! This module only parses; the SigV4 code checks signatures from the events.

use super::line::{parse_chunk_size, parse_trailer, LineBuf};
use super::{HttpError, CHUNK_LINE_BYTES_MAX, TRAILER_BYTES_MAX, TRAILER_COUNT_MAX};

/// What the aws-chunked decoder produced from the bytes it consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsChunkEvent<'a> {
    /// A chunk header. The final chunk has size 0 (and is followed by `ChunkEnd` at once).
    ChunkStart {
        size: u64,
        signature: Option<String>,
    },
    /// Chunk bytes, borrowed from the input.
    Data(&'a [u8]),
    /// The end of the chunk opened by the last `ChunkStart`.
    ChunkEnd,
    /// A trailer field after the final chunk; name lowercased, value trimmed.
    Trailer { name: String, value: String },
    /// The whole payload was read.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    /// The zero-size chunk was announced; its `ChunkEnd` is owed.
    LastChunkEnd,
    Trailer,
    Done,
}

/// Decodes an aws-chunked payload (the body, or the output of `ChunkedDecoder`).
#[derive(Debug)]
pub struct AwsChunkedDecoder {
    state: State,
    line: LineBuf,
    trailer_bytes: usize,
    trailer_count: usize,
}

impl Default for AwsChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsChunkedDecoder {
    pub fn new() -> Self {
        AwsChunkedDecoder {
            state: State::Size,
            line: LineBuf::default(),
            trailer_bytes: 0,
            trailer_count: 0,
        }
    }

    /// Consumes a prefix of `input`. Returns the number of bytes consumed and, maybe, an
    /// event. When no event comes back, all of `input` was consumed and more is needed.
    /// After `Done`, every call returns `(0, Some(Done))`.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<AwsChunkEvent<'a>>), HttpError> {
        match self.state {
            State::Done => Ok((0, Some(AwsChunkEvent::Done))),
            State::LastChunkEnd => {
                self.state = State::Trailer;
                Ok((0, Some(AwsChunkEvent::ChunkEnd)))
            }
            _ if input.is_empty() => Ok((0, None)),
            State::Data(remaining) => {
                let n = remaining.min(input.len() as u64) as usize;
                self.state = if remaining == n as u64 {
                    State::DataEnd
                } else {
                    State::Data(remaining - n as u64)
                };
                Ok((n, Some(AwsChunkEvent::Data(&input[..n]))))
            }
            State::Size | State::DataEnd | State::Trailer => {
                let trailer = self.state == State::Trailer;
                let max = if trailer {
                    (TRAILER_BYTES_MAX - self.trailer_bytes).min(CHUNK_LINE_BYTES_MAX)
                } else {
                    CHUNK_LINE_BYTES_MAX
                };
                let (n, complete) = self.line.feed(input, max).map_err(|e| {
                    if trailer {
                        HttpError::TrailersTooLarge
                    } else {
                        e
                    }
                })?;
                if !complete {
                    return Ok((n, None));
                }
                let line = self.line.take()?;
                let event = match self.state {
                    State::Size => {
                        let (size, ext) = parse_chunk_size(&line)?;
                        let signature = chunk_signature(ext)?;
                        self.state = if size == 0 {
                            State::LastChunkEnd
                        } else {
                            State::Data(size)
                        };
                        AwsChunkEvent::ChunkStart { size, signature }
                    }
                    State::DataEnd => {
                        if !line.is_empty() {
                            return Err(HttpError::MissingChunkCrlf);
                        }
                        self.state = State::Size;
                        AwsChunkEvent::ChunkEnd
                    }
                    _ if line.is_empty() => {
                        self.state = State::Done;
                        AwsChunkEvent::Done
                    }
                    _ => {
                        self.trailer_bytes += line.len() + 2;
                        self.trailer_count += 1;
                        if self.trailer_count > TRAILER_COUNT_MAX {
                            return Err(HttpError::TrailersTooLarge);
                        }
                        let (name, value) = parse_trailer(&line)?;
                        AwsChunkEvent::Trailer { name, value }
                    }
                };
                Ok((n, Some(event)))
            }
        }
    }

    /// Tells the decoder that its input ended. Succeeds when the payload is complete, and
    /// also, leniently, when the input ends after the final chunk (and any whole trailer
    /// lines) without the closing empty line. Returns whether `Done` is still owed to the
    /// caller (true in the lenient case).
    pub fn finish(&mut self) -> Result<bool, HttpError> {
        match self.state {
            State::Done => Ok(false),
            State::Trailer if self.line.is_empty() => {
                self.state = State::Done;
                Ok(true)
            }
            _ => Err(HttpError::Truncated),
        }
    }

    /// Whether the whole payload has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// Finds `chunk-signature=<value>` among `;`-separated chunk extensions.
fn chunk_signature(ext: &[u8]) -> Result<Option<String>, HttpError> {
    let mut signature = None;
    if ext.is_empty() {
        return Ok(None);
    }
    for item in ext.split(|&b| b == b';') {
        let item = std::str::from_utf8(item).map_err(|_| HttpError::BadChunkSize)?;
        let (name, value) = item.split_once('=').unwrap_or((item, ""));
        if name.trim().eq_ignore_ascii_case("chunk-signature") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(HttpError::BadChunkSize);
            }
            signature = Some(value.to_string());
        }
    }
    Ok(signature)
}
