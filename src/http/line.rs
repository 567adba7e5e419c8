//! A bounded accumulator for CRLF-terminated lines that may arrive split across inputs.

use super::HttpError;

#[derive(Debug, Default)]
pub(super) struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    /// Takes bytes from `input` up to and including the first LF. Returns how many bytes
    /// were taken and whether a whole line is now buffered. Errors when the line (with its
    /// CRLF) would exceed `max` bytes.
    pub(super) fn feed(&mut self, input: &[u8], max: usize) -> Result<(usize, bool), HttpError> {
        let (take, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        if self.buf.len() + take > max {
            return Err(HttpError::LineTooLong);
        }
        self.buf.extend_from_slice(&input[..take]);
        Ok((take, complete))
    }

    /// Removes the buffered whole line and returns it without its CRLF. A bare LF or a CR
    /// inside the line is an error (lenient line endings invite request smuggling).
    pub(super) fn take(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut line = std::mem::take(&mut self.buf);
        if !line.ends_with(b"\r\n") {
            return Err(HttpError::BadLineEnding);
        }
        line.truncate(line.len() - 2);
        if line.contains(&b'\r') {
            return Err(HttpError::BadLineEnding);
        }
        Ok(line)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Parses the `<hex-size>[ ][;extensions]` of a chunk line. Returns the size and the
/// extension text after the first `;` (empty if none).
pub(super) fn parse_chunk_size(line: &[u8]) -> Result<(u64, &[u8]), HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::BadChunkSize);
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).expect("checked hex digit") as u64;
        if size > (u64::MAX >> 4) {
            return Err(HttpError::ChunkSizeOverflow);
        }
        size = (size << 4) | d;
    }
    let mut rest = &line[digits..];
    while let [b' ' | b'\t', tail @ ..] = rest {
        rest = tail;
    }
    match rest {
        [] => Ok((size, &[])),
        [b';', ext @ ..] => Ok((size, ext)),
        _ => Err(HttpError::BadChunkSize),
    }
}

/// Parses one trailer line `name: value` (name lowercased, value trimmed).
pub(super) fn parse_trailer(line: &[u8]) -> Result<(String, String), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::BadTrailer)?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::BadTrailer);
    }
    let value = std::str::from_utf8(&line[colon + 1..]).map_err(|_| HttpError::BadTrailer)?;
    if value.bytes().any(|b| b == 0 || b == b'\n') {
        return Err(HttpError::BadTrailer);
    }
    let name = std::str::from_utf8(name).map_err(|_| HttpError::BadTrailer)?;
    Ok((
        name.to_ascii_lowercase(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

/// RFC 9110 token characters.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
