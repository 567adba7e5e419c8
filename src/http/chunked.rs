//! HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), as an incremental pull decoder.

use super::line::{parse_chunk_size, parse_trailer, LineBuf};
use super::{HttpError, CHUNK_LINE_BYTES_MAX, TRAILER_BYTES_MAX, TRAILER_COUNT_MAX};

/// What the chunked decoder produced from the bytes it consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEvent<'a> {
    /// Body bytes, borrowed from the input.
    Data(&'a [u8]),
    /// The last chunk and the trailer section were read; `trailers()` holds the fields.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Decodes a chunked body. Feed it bytes with `decode`; it never reads past the body's end.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: LineBuf,
    trailers: Vec<(String, String)>,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: LineBuf::default(),
            trailers: Vec::new(),
            trailer_bytes: 0,
        }
    }

    /// Consumes a prefix of `input`. Returns the number of bytes consumed and, maybe, an
    /// event. When no event comes back, all of `input` was consumed (buffered internally
    /// when it is part of a line) and more input is needed. After `Done`, every call
    /// returns `(0, Some(Done))`. Chunk extensions are ignored.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<BodyEvent<'a>>), HttpError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok((pos, Some(BodyEvent::Done))),
                State::Data(remaining) => {
                    if pos == input.len() {
                        return Ok((pos, None));
                    }
                    let n = remaining.min((input.len() - pos) as u64) as usize;
                    self.state = if remaining == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data(remaining - n as u64)
                    };
                    return Ok((pos + n, Some(BodyEvent::Data(&input[pos..pos + n]))));
                }
                State::Size | State::DataEnd | State::Trailer => {
                    if pos == input.len() {
                        return Ok((pos, None));
                    }
                    let max = if self.state == State::Trailer {
                        (TRAILER_BYTES_MAX - self.trailer_bytes).min(CHUNK_LINE_BYTES_MAX)
                    } else {
                        CHUNK_LINE_BYTES_MAX
                    };
                    let (n, complete) = self.line.feed(&input[pos..], max).map_err(|e| {
                        if self.state == State::Trailer {
                            HttpError::TrailersTooLarge
                        } else {
                            e
                        }
                    })?;
                    pos += n;
                    if !complete {
                        return Ok((pos, None));
                    }
                    let line = self.line.take()?;
                    match self.state {
                        State::Size => {
                            let (size, _ext) = parse_chunk_size(&line)?;
                            self.state = if size == 0 {
                                State::Trailer
                            } else {
                                State::Data(size)
                            };
                        }
                        State::DataEnd => {
                            if !line.is_empty() {
                                return Err(HttpError::MissingChunkCrlf);
                            }
                            self.state = State::Size;
                        }
                        _ => {
                            if line.is_empty() {
                                self.state = State::Done;
                                return Ok((pos, Some(BodyEvent::Done)));
                            }
                            self.trailer_bytes += line.len() + 2;
                            if self.trailers.len() >= TRAILER_COUNT_MAX {
                                return Err(HttpError::TrailersTooLarge);
                            }
                            self.trailers.push(parse_trailer(&line)?);
                        }
                    }
                }
            }
        }
    }

    /// Trailer fields read after the last chunk (names lowercased, values trimmed).
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}
