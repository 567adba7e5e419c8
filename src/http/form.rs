//! `multipart/form-data` (RFC 7578) bodies, sans-IO and incremental, for POST Object: the
//! caller feeds bytes as they arrive and gets parts' heads and data back one event at a
//! time, so that a file part streams through without being held whole.
//!
//! Like the chunked decoders, `decode` accepts input split at any byte, returns how many
//! bytes it consumed and at most one event, and consumes nothing (asking for more input)
//! when it cannot decide yet. Part data is released as soon as it cannot be the start of
//! the next delimiter, so a part's bytes are copied once. Part heads are bounded by
//! `PART_HEAD_BYTES_MAX`; the preamble before the first delimiter by `PREAMBLE_BYTES_MAX`.

/// Longest head (header lines) of one part.
pub const PART_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Longest preamble accepted before the first delimiter.
pub const PREAMBLE_BYTES_MAX: usize = 8 * 1024;
/// Longest boundary RFC 2046 allows.
const BOUNDARY_BYTES_MAX: usize = 70;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("Content-Type is not multipart/form-data with a boundary")]
    NotMultipart,
    #[error("no delimiter where the form should start")]
    NoStart,
    #[error("malformed part head: {0}")]
    BadPartHead(String),
    #[error("part head larger than the limit")]
    PartHeadTooLarge,
    #[error("bytes after a delimiter that are not a line end")]
    BadDelimiter,
}

/// The head of one part: its field name, and for a file its file name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FormEvent<'a> {
    PartStart(PartHead),
    Data(&'a [u8]),
    PartEnd,
    /// The closing delimiter: the form is complete (the epilogue is not looked at).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    /// After a delimiter: `--` ends the form, otherwise a line end starts a part.
    AfterDelimiter,
    Head,
    Data,
    Done,
}

#[derive(Debug)]
pub struct FormParser {
    /// `\r\n--<boundary>`: what ends a part's data.
    delimiter: Vec<u8>,
    state: State,
    preamble_seen: usize,
}

/// The boundary of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Result<String, FormError> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(FormError::NotMultipart);
    }
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() || value.len() > BOUNDARY_BYTES_MAX {
                return Err(FormError::NotMultipart);
            }
            return Ok(value.to_string());
        }
    }
    Err(FormError::NotMultipart)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl FormParser {
    pub fn new(boundary: &str) -> Self {
        assert!(!boundary.is_empty() && boundary.len() <= BOUNDARY_BYTES_MAX);
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        FormParser {
            delimiter,
            state: State::Preamble,
            preamble_seen: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`: (bytes consumed, event). `(0, None)` asks for more input.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<FormEvent<'a>>), FormError> {
        match self.state {
            State::Preamble => self.preamble(input),
            State::AfterDelimiter => self.after_delimiter(input),
            State::Head => self.head(input),
            State::Data => Ok(self.data(input)),
            State::Done => Ok((0, Some(FormEvent::Done))),
        }
    }

    fn preamble(&mut self, input: &[u8]) -> Result<(usize, Option<FormEvent<'static>>), FormError> {
        // The first delimiter may open the body without the line end before it.
        if self.preamble_seen == 0 {
            let dash_boundary = &self.delimiter[2..];
            if input.starts_with(dash_boundary) {
                self.state = State::AfterDelimiter;
                return Ok((dash_boundary.len(), None));
            }
            if dash_boundary.starts_with(input) {
                return Ok((0, None));
            }
        }
        if let Some(at) = find(input, &self.delimiter) {
            self.state = State::AfterDelimiter;
            return Ok((at + self.delimiter.len(), None));
        }
        let skip = input.len().saturating_sub(self.delimiter.len() - 1);
        self.preamble_seen += skip;
        if self.preamble_seen > PREAMBLE_BYTES_MAX {
            return Err(FormError::NoStart);
        }
        Ok((skip, None))
    }

    fn after_delimiter(
        &mut self,
        input: &[u8],
    ) -> Result<(usize, Option<FormEvent<'static>>), FormError> {
        if input.len() < 2 {
            return Ok((0, None));
        }
        if input.starts_with(b"--") {
            self.state = State::Done;
            return Ok((2, Some(FormEvent::Done)));
        }
        // Transport padding (spaces, tabs) may precede the line end.
        let pad = input
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if pad > 256 {
            return Err(FormError::BadDelimiter);
        }
        let rest = &input[pad..];
        if rest.len() < 2 {
            return Ok((0, None));
        }
        if !rest.starts_with(b"\r\n") {
            return Err(FormError::BadDelimiter);
        }
        self.state = State::Head;
        Ok((pad + 2, None))
    }

    fn head(&mut self, input: &[u8]) -> Result<(usize, Option<FormEvent<'static>>), FormError> {
        let window = &input[..input.len().min(PART_HEAD_BYTES_MAX)];
        // A part without header lines starts with the empty line at once.
        let end = if window.starts_with(b"\r\n") {
            Some((0, 2))
        } else {
            find(window, b"\r\n\r\n").map(|at| (at, at + 4))
        };
        let Some((head_end, consumed)) = end else {
            if window.len() >= PART_HEAD_BYTES_MAX {
                return Err(FormError::PartHeadTooLarge);
            }
            return Ok((0, None));
        };
        let text = std::str::from_utf8(&input[..head_end])
            .map_err(|_| FormError::BadPartHead("not UTF-8".into()))?;
        let head = parse_part_head(text)?;
        self.state = State::Data;
        Ok((consumed, Some(FormEvent::PartStart(head))))
    }

    fn data<'a>(&mut self, input: &'a [u8]) -> (usize, Option<FormEvent<'a>>) {
        match find(input, &self.delimiter) {
            Some(0) => {
                self.state = State::AfterDelimiter;
                (self.delimiter.len(), Some(FormEvent::PartEnd))
            }
            Some(at) => (at, Some(FormEvent::Data(&input[..at]))),
            None => {
                // Keep back what could be the start of the delimiter.
                let keep = (1..self.delimiter.len().min(input.len() + 1))
                    .rev()
                    .find(|&n| self.delimiter.starts_with(&input[input.len() - n..]))
                    .unwrap_or(0);
                let safe = input.len() - keep;
                if safe == 0 {
                    (0, None)
                } else {
                    (safe, Some(FormEvent::Data(&input[..safe])))
                }
            }
        }
    }
}

/// Parses the header lines of a part (its `Content-Disposition` must be `form-data` with
/// a `name`).
fn parse_part_head(text: &str) -> Result<PartHead, FormError> {
    let mut disposition = None;
    let mut content_type = None;
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(FormError::BadPartHead(format!("header line {line:?}")));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value);
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        }
    }
    let disposition =
        disposition.ok_or_else(|| FormError::BadPartHead("no Content-Disposition".into()))?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(FormError::BadPartHead(format!("disposition {kind:?}")));
    }
    let params = parse_params(params)?;
    let param = |n: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let name = param("name").ok_or_else(|| FormError::BadPartHead("no name".into()))?;
    Ok(PartHead {
        name,
        filename: param("filename"),
        content_type,
    })
}

/// `; name="value"; other=token` parameters; quoted strings may hold `;` and `\"`.
fn parse_params(mut s: &str) -> Result<Vec<(String, String)>, FormError> {
    let bad = || FormError::BadPartHead("Content-Disposition parameters".into());
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ';']);
        if s.is_empty() {
            return Ok(out);
        }
        let (name, rest) = s.split_once('=').ok_or_else(bad)?;
        let rest = rest.trim_start();
        let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next().ok_or_else(bad)?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.ok_or_else(bad)?..])
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            (rest[..end].trim().to_string(), &rest[end..])
        };
        out.push((name.trim().to_string(), value));
        s = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] = b"--XyZ\r\n\
        Content-Disposition: form-data; name=\"key\"\r\n\r\n\
        uploads/${filename}\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"x-amz-meta-note\"\r\n\r\n\
        a; b \"c\"\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"ph\\\"oto;1.jpg\"\r\n\
        Content-Type: image/jpeg\r\n\r\n\
        \r\n--XyW\r\n-\r\n\r\n\
        --XyZ--\r\n";

    /// Every part as (head, data), decoding `body` fed in pieces of `step` bytes.
    fn parse_all(body: &[u8], step: usize) -> Result<Vec<(PartHead, Vec<u8>)>, FormError> {
        let mut parser = FormParser::new("XyZ");
        let mut parts: Vec<(PartHead, Vec<u8>)> = Vec::new();
        let mut buffer: Vec<u8> = Vec::new();
        let mut fed = 0;
        loop {
            let (consumed, event) = parser.decode(&buffer)?;
            match event {
                Some(FormEvent::PartStart(h)) => parts.push((h, Vec::new())),
                Some(FormEvent::Data(d)) => parts.last_mut().unwrap().1.extend_from_slice(d),
                Some(FormEvent::PartEnd) | None => {}
                Some(FormEvent::Done) => return Ok(parts),
            }
            buffer.drain(..consumed);
            if consumed == 0 {
                if fed == body.len() {
                    return Err(FormError::NoStart);
                }
                let next = (fed + step).min(body.len());
                buffer.extend_from_slice(&body[fed..next]);
                fed = next;
            }
        }
    }

    #[test]
    fn fields_and_file_parse_at_any_split() {
        for step in [1, 2, 3, 7, 64, BODY.len()] {
            let parts = parse_all(BODY, step).unwrap();
            assert_eq!(parts.len(), 3, "step {step}");
            assert_eq!(parts[0].0.name, "key");
            assert_eq!(parts[0].1, b"uploads/${filename}");
            assert_eq!(parts[1].1, b"a; b \"c\"");
            assert_eq!(parts[2].0.name, "file");
            assert_eq!(parts[2].0.filename.as_deref(), Some("ph\"oto;1.jpg"));
            assert_eq!(parts[2].0.content_type.as_deref(), Some("image/jpeg"));
            assert_eq!(parts[2].1, b"\r\n--XyW\r\n-\r\n");
        }
    }

    #[test]
    fn preamble_and_padding_are_skipped() {
        let body = b"ignored preamble\r\n--XyZ  \r\nContent-Disposition: form-data; name=a\r\n\
            \r\n1\r\n--XyZ--";
        let parts = parse_all(body, 5).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            (parts[0].0.name.as_str(), parts[0].1.as_slice()),
            ("a", &b"1"[..])
        );
    }

    #[test]
    fn bad_forms_are_refused() {
        let no_disposition = b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(
            parse_all(no_disposition, 4),
            Err(FormError::BadPartHead(_))
        ));
        let bad_after = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZzz";
        assert_eq!(
            parse_all(bad_after, 4).unwrap_err(),
            FormError::BadDelimiter
        );
        let huge_head = [b"--XyZ\r\nX: ".as_slice(), &[b'a'; 9000]].concat();
        assert_eq!(
            parse_all(&huge_head, 4096).unwrap_err(),
            FormError::PartHeadTooLarge
        );
        let no_start = [b'a'; 10000];
        assert_eq!(parse_all(&no_start, 1000).unwrap_err(), FormError::NoStart);
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert!(boundary("multipart/mixed; boundary=abc").is_err());
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))).is_err());
    }

    proptest! {
        #[test]
        fn file_bytes_survive_any_content_and_split(
            data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'-'),
                Just(b'X'), Just(b'y'), Just(b'Z'), any::<u8>()], 0..400),
            step in 1usize..50,
        ) {
            let mut body =
                b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n--XyZ--\r\n");
            // Data that holds the delimiter itself ends the part early; skip those.
            prop_assume!(find(&[b"\r\n".as_slice(), &data].concat(), b"\r\n--XyZ").is_none());
            let parts = parse_all(&body, step).unwrap();
            prop_assert_eq!(parts.len(), 1);
            prop_assert_eq!(&parts[0].1, &data);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all(&data, 7);
        }
    }
}
