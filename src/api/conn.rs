//! One HTTP/1.1 connection: read a head (bounded in size and time), hand the request and a
//! streaming `Body` to the router, write the response (streamed for objects), repeat while
//! keep-alive holds. Memory per connection is bounded whatever the object size: the read
//! buffer, plus one block being assembled by the operation.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use sha2::{Digest, Sha256};

use super::s3::objects::ObjectBody;
use super::s3::op::S3Op;
use super::tls::Stream;
use crate::api::Gateway;
use crate::http::{self, AwsChunkEvent, AwsChunkedDecoder, BodyEvent, BodyFraming, ChunkedDecoder};
use crate::s3::error::S3Error;
use crate::s3::sigv4::ChunkVerifier;

/// A connection idle longer than this between requests is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request head must arrive whole within this time once its first byte has.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Each read of a request body and each write of a response must progress within this time.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of an unread request body the server reads and discards to keep a connection.
const DRAIN_BYTES_MAX: u64 = 1 << 20;
/// A connection closed with its request body unread is shut for writing first, then read
/// and discarded for at most this long and this many bytes, so that the client reads the
/// answer instead of a TCP reset (which unread bytes at close would send).
const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
const LINGER_BYTES_MAX: u64 = 32 << 20;
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// The read buffer of a connection between requests and while it reads a head: a whole
/// head fits (`HTTP_HEAD_BYTES_MAX`). A body's reads grow it to `READ_CHUNK_BYTES`, and it
/// shrinks back after the request, so an idle connection costs this much, not a chunk.
const IDLE_BUFFER_BYTES: usize = crate::constants::HTTP_HEAD_BYTES_MAX;
/// Room a head's read asks for at least.
const HEAD_READ_ROOM_MIN: usize = 4096;
/// The time a body may take before `--min-body-rate` applies (as Apache's mod_reqtimeout
/// does: a body's allowance is this plus one second per `min_body_rate` bytes received).
const BODY_RATE_GRACE: Duration = Duration::from_secs(20);
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub struct ConnIo {
    stream: Stream,
    /// The read buffer: `rbuf[rpos..rend]` holds bytes received and not yet consumed. Its
    /// length is what has been zeroed; reads go into `rbuf[rend..]` and never zero it again
    /// (zeroing 256 KiB before each read was a third of the server's CPU for small
    /// requests). It starts one read long and grows only when unconsumed bytes leave less
    /// than a read's room.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// The client sent `Expect: 100-continue` and has not been told to go on yet.
    continue_pending: bool,
    /// `--min-body-rate`, bytes per second (0: no minimum).
    min_body_rate: u64,
}

impl ConnIo {
    fn new(stream: Stream, min_body_rate: u64) -> ConnIo {
        ConnIo {
            stream,
            rbuf: vec![0; IDLE_BUFFER_BYTES],
            rpos: 0,
            rend: 0,
            continue_pending: false,
            min_body_rate,
        }
    }

    /// Between requests: gives back the memory a body's reads took, keeping what is
    /// buffered (a pipelined request).
    fn shrink(&mut self) {
        let held = self.rend - self.rpos;
        if self.rbuf.len() <= IDLE_BUFFER_BYTES || held > IDLE_BUFFER_BYTES {
            return;
        }
        self.rbuf.copy_within(self.rpos..self.rend, 0);
        (self.rpos, self.rend) = (0, held);
        self.rbuf.truncate(IDLE_BUFFER_BYTES);
        self.rbuf.shrink_to_fit();
    }

    fn available(&self) -> &[u8] {
        &self.rbuf[self.rpos..self.rend]
    }

    fn consume(&mut self, n: usize) {
        assert!(self.rpos + n <= self.rend);
        self.rpos += n;
    }

    /// Reads more bytes from the socket, with room for at least `room_min` of them.
    /// Returns 0 at end of stream.
    async fn fill(&mut self, room_min: usize) -> io::Result<usize> {
        // Tell a client waiting on `Expect: 100-continue` to send its body, unless it has
        // started already (clients wait about a second, then send anyway): a 100 that
        // arrives in the middle of a body confuses them.
        if std::mem::take(&mut self.continue_pending) && self.available().is_empty() {
            self.stream.write_all(CONTINUE).await?;
        }
        if self.rpos == self.rend {
            (self.rpos, self.rend) = (0, 0);
        } else if self.rend + room_min > self.rbuf.len() {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            (self.rpos, self.rend) = (0, self.rend - self.rpos);
        }
        if self.rend + room_min > self.rbuf.len() {
            // Less than the room asked for after the unconsumed bytes: grow, zeroing only
            // the new part.
            self.rbuf.resize(self.rend + room_min, 0);
        }
        let end = self.rbuf.len().min(self.rend + READ_CHUNK_BYTES);
        let room = &mut self.rbuf[self.rend..end];
        let n = self.stream.read(room).await;
        self.rend += *n.as_ref().unwrap_or(&0);
        n
    }

    /// Reads from the socket straight onto the end of `out` (at most `max` bytes), sparing
    /// a large body the copy through the read buffer. Only when nothing is buffered.
    async fn read_append<S: BodySink>(&mut self, out: &mut S, max: usize) -> io::Result<usize> {
        assert!(self.available().is_empty(), "buffered bytes come first");
        if std::mem::take(&mut self.continue_pending) {
            self.stream.write_all(CONTINUE).await?;
        }
        let max = max.min(DIRECT_READ_MAX);
        let Some(out) = out.as_vec() else {
            // A block's record buffer: the bytes land where the record will be written from.
            let room = out.room(max);
            debug_assert!(
                !room.is_empty(),
                "a read into no room would look like the end"
            );
            let n = match self.stream.recv_ready_into(room)? {
                Some(n) => Ok(n),
                None => self.stream.read(room).await,
            };
            out.filled(*n.as_ref().unwrap_or(&0));
            return n;
        };
        let start = out.len();
        if let Some(n) = self.stream.recv_ready_into_spare(out, max)? {
            return Ok(n);
        }
        // Nothing has arrived yet: wait for it through the executor. The span read into is
        // zeroed first (safe Rust has no reads into uninitialized bytes); a read returns
        // what the socket holds, often much less than `max`, so zeroing all of `max` each
        // time zeroed most of a block several times over.
        out.resize(start + max, 0);
        let n = self.stream.read(&mut out[start..]).await;
        out.truncate(start + *n.as_ref().unwrap_or(&0));
        n
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data).await
    }

    /// Ends a connection whose request body was not read whole, after its answer: shuts the
    /// write side (the client sees the answer end), then reads and discards what the client
    /// still sends, until it closes or the linger bounds run out.
    async fn close_lingering(&mut self) {
        if self.stream.close().await.is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + LINGER_TIMEOUT;
        let mut discarded = 0u64;
        while discarded < LINGER_BYTES_MAX {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            // The read buffer may be idle-sized: discard through whatever it holds.
            let end = self.rbuf.len().min(READ_CHUNK_BYTES);
            let room = &mut self.rbuf[..end];
            let stream = &mut self.stream;
            match glommio::timer::timeout(left, async { Ok(stream.read(room).await) }).await {
                Ok(Ok(n)) if n > 0 => discarded += n as u64,
                _ => return,
            }
        }
    }
}

/// Where [`Body::read_into`] puts the decoded bytes: a vector, or the record buffer of an
/// upload's next block (`objects::BlockSink`).
pub trait BodySink {
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// The sink as a vector, if it is one (direct reads fill its spare capacity).
    fn as_vec(&mut self) -> Option<&mut Vec<u8>>;
    /// Otherwise: room for at most `max` more bytes at the end, for a direct read...
    fn room(&mut self, max: usize) -> &mut [u8];
    /// ...of which the first `n` bytes were filled.
    fn filled(&mut self, n: usize);
}

impl BodySink for Vec<u8> {
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes)
    }
    fn as_vec(&mut self) -> Option<&mut Vec<u8>> {
        Some(self)
    }
    fn room(&mut self, _max: usize) -> &mut [u8] {
        unreachable!("direct reads into a vector use its spare capacity")
    }
    fn filled(&mut self, _n: usize) {
        unreachable!("direct reads into a vector use its spare capacity")
    }
}

/// Reads of a plain body at least this large skip the read buffer (`ConnIo::read_append`).
const DIRECT_READ_MIN: usize = 16 * 1024;
/// Most one direct read asks for (and zeroes first).
const DIRECT_READ_MAX: usize = 256 * 1024;

enum Framing {
    Empty,
    Length { remaining: u64 },
    Chunked { decoder: ChunkedDecoder, done: bool },
}

/// The aws-chunked layer (Content-Encoding: aws-chunked), with chunk signatures checked
/// when the payload is signed.
struct AwsLayer {
    decoder: AwsChunkedDecoder,
    pending: Vec<u8>,
    pending_pos: usize,
    verifier: Option<ChunkVerifier>,
    chunk_hash: Sha256,
    chunk_signature: Option<String>,
    trailer_signature: Option<String>,
    /// The payload mode signs its trailer: a missing trailer signature is refused.
    trailer_signature_required: bool,
    done: bool,
}

/// A further decoding of the payload, pure: POST form uploads pass on only the bytes of
/// the form's file (`post_object`).
pub trait PayloadFilter {
    /// Consumes a prefix of `input` and appends what it yields to `out`. Returns the bytes
    /// consumed and whether the filtered payload ended. Consuming nothing without ending
    /// asks for more input.
    fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), S3Error>;
}

struct FilterLayer {
    filter: Box<dyn PayloadFilter>,
    pending: Vec<u8>,
    pending_pos: usize,
    done: bool,
}

/// How fast a body comes, counting only the time spent waiting on the client
/// (`--min-body-rate`): pure arithmetic, so that it can be tested without a socket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BodyPace {
    /// Bytes per second at least, after `BODY_RATE_GRACE`; 0: no minimum.
    pub min_rate: u64,
    pub waited: Duration,
    pub bytes: u64,
}

impl BodyPace {
    /// How long the next read may wait: `IO_TIMEOUT`, or less when the body's allowance
    /// (the grace, plus a second per `min_rate` bytes received) runs out sooner.
    pub fn read_timeout(&self) -> Duration {
        if self.min_rate == 0 {
            return IO_TIMEOUT;
        }
        let earned = Duration::from_secs_f64(self.bytes as f64 / self.min_rate as f64);
        (BODY_RATE_GRACE + earned)
            .saturating_sub(self.waited)
            .min(IO_TIMEOUT)
    }

    pub fn record(&mut self, waited: Duration, bytes: usize) {
        self.waited += waited;
        self.bytes += bytes as u64;
    }
}

/// A request body as the operation sees it: the decoded payload, pulled piece by piece.
pub struct Body<'c> {
    io: &'c mut ConnIo,
    framing: Framing,
    aws: Option<AwsLayer>,
    filter: Option<FilterLayer>,
    trailers: Vec<(String, String)>,
    decoded_bytes: u64,
    pace: BodyPace,
    /// A read ran out of the body's allowance under `--min-body-rate`.
    too_slow: bool,
}

impl<'c> Body<'c> {
    fn new(io: &'c mut ConnIo, framing: BodyFraming) -> Self {
        let framing = match framing {
            BodyFraming::Empty => Framing::Empty,
            BodyFraming::Length(0) => Framing::Empty,
            BodyFraming::Length(n) => Framing::Length { remaining: n },
            BodyFraming::Chunked => Framing::Chunked {
                decoder: ChunkedDecoder::new(),
                done: false,
            },
        };
        let pace = BodyPace {
            min_rate: io.min_body_rate,
            ..BodyPace::default()
        };
        Body {
            io,
            framing,
            aws: None,
            filter: None,
            trailers: Vec::new(),
            decoded_bytes: 0,
            pace,
            too_slow: false,
        }
    }

    /// The most bytes the body can hold, when its framing says (Content-Length: the
    /// encoded length, which bounds the decoded one).
    pub fn length_hint(&self) -> Option<u64> {
        match &self.framing {
            Framing::Empty => Some(0),
            Framing::Length { remaining } => Some(self.decoded_bytes + remaining),
            Framing::Chunked { .. } => None,
        }
    }

    /// Whether the body was ended for coming slower than `--min-body-rate`.
    pub fn too_slow(&self) -> bool {
        self.too_slow
    }

    /// Maps a timed read's outcome, counting its wait against the body's pace.
    fn paced(
        &mut self,
        outcome: Result<io::Result<usize>, glommio::GlommioError<()>>,
        started: std::time::Instant,
        timeout: Duration,
    ) -> Result<usize, S3Error> {
        let n = *outcome
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref().ok())
            .unwrap_or(&0);
        self.pace.record(started.elapsed(), n);
        match outcome {
            Ok(Ok(0)) => Err(S3Error::IncompleteBody),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(_)) => Err(S3Error::IncompleteBody),
            Err(_) => {
                self.too_slow = timeout < IO_TIMEOUT;
                Err(S3Error::RequestTimeout)
            }
        }
    }

    /// Decodes `Content-Encoding: aws-chunked` on top of the transfer framing; with a
    /// verifier, every chunk signature (and with `signed_trailer` the trailer's) is checked.
    pub fn enable_aws_chunked(&mut self, verifier: Option<ChunkVerifier>, signed_trailer: bool) {
        self.aws = Some(AwsLayer {
            decoder: AwsChunkedDecoder::new(),
            pending: Vec::new(),
            pending_pos: 0,
            verifier,
            chunk_hash: Sha256::new(),
            chunk_signature: None,
            trailer_signature: None,
            trailer_signature_required: signed_trailer,
            done: false,
        });
    }

    /// Passes the payload through `filter` from now on, starting with `pending` (payload
    /// bytes the caller read already and did not use).
    pub fn set_filter(&mut self, filter: Box<dyn PayloadFilter>, pending: Vec<u8>) {
        assert!(self.filter.is_none(), "one filter at a time");
        self.filter = Some(FilterLayer {
            filter,
            pending,
            pending_pos: 0,
            done: false,
        });
    }

    /// Removes the filter: what remains of the payload is read (or drained) unfiltered.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Trailers of the aws-chunked stream (or of HTTP chunked encoding), once the body ended.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    pub fn decoded_bytes(&self) -> u64 {
        self.decoded_bytes
    }

    /// True when nothing of the body remains to be read.
    pub fn is_finished(&self) -> bool {
        let framing_done = match &self.framing {
            Framing::Empty => true,
            Framing::Length { remaining } => *remaining == 0,
            Framing::Chunked { done, .. } => *done,
        };
        if let Some(filter) = &self.filter {
            return filter.done;
        }
        framing_done && self.aws.as_ref().is_none_or(|a| a.done)
    }

    /// Appends decoded payload bytes to `out` (about `want` at most). Returns 0 at the end.
    pub async fn read_into<S: BodySink>(
        &mut self,
        out: &mut S,
        want: usize,
    ) -> Result<usize, S3Error> {
        let n = if self.filter.is_some() {
            match out.as_vec() {
                Some(v) => self.read_filtered(v).await?,
                None => {
                    let mut v = Vec::new();
                    let n = self.read_filtered(&mut v).await?;
                    out.extend_from_slice(&v);
                    n
                }
            }
        } else if self.aws.is_some() {
            self.read_aws(out, want).await?
        } else {
            self.read_framed(out, want).await?
        };
        self.decoded_bytes += n as u64;
        Ok(n)
    }

    /// Reads the whole body, refusing one larger than `limit` bytes
    /// (`MaxMessageLengthExceeded`): before reading any of it when its length says so.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, S3Error> {
        let plain = self.aws.is_none() && self.filter.is_none();
        if let Framing::Length { remaining } = self.framing {
            if plain && remaining > limit as u64 {
                return Err(S3Error::MaxMessageLengthExceeded);
            }
        }
        let mut out = Vec::new();
        while self.read_into(&mut out, READ_CHUNK_BYTES).await? > 0 {
            if out.len() > limit {
                return Err(S3Error::MaxMessageLengthExceeded);
            }
        }
        Ok(out)
    }

    /// Reads more of the body into the connection's buffer, within the body's pace.
    async fn fill(&mut self) -> Result<(), S3Error> {
        let (started, timeout) = (std::time::Instant::now(), self.pace.read_timeout());
        let io = &mut self.io;
        let read =
            glommio::timer::timeout(timeout, async { Ok(io.fill(READ_CHUNK_BYTES).await) }).await;
        self.paced(read, started, timeout).map(|_| ())
    }

    /// `ConnIo::read_append` with the timeout and errors of [`Body::fill`].
    async fn read_direct<S: BodySink>(
        &mut self,
        out: &mut S,
        max: usize,
    ) -> Result<usize, S3Error> {
        let (started, timeout) = (std::time::Instant::now(), self.pace.read_timeout());
        let io = &mut self.io;
        let read = glommio::timer::timeout(timeout, async { Ok(io.read_append(out, max).await) });
        let read = read.await;
        self.paced(read, started, timeout)
    }

    /// The filter layer, fed from the aws-chunked or the framing layer.
    async fn read_filtered(&mut self, out: &mut Vec<u8>) -> Result<usize, S3Error> {
        let mut layer = self
            .filter
            .take()
            .expect("read_filtered runs with a filter");
        let result = loop {
            if layer.done {
                break Ok(0);
            }
            let before = out.len();
            let input = &layer.pending[layer.pending_pos..];
            let (consumed, ended) = match layer.filter.filter(input, out) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            assert!(consumed <= input.len());
            layer.pending_pos += consumed;
            layer.done = ended;
            let produced = out.len() - before;
            if produced > 0 || ended {
                break Ok(produced);
            }
            if consumed == 0 {
                layer.pending.drain(..layer.pending_pos);
                layer.pending_pos = 0;
                let got = if self.aws.is_some() {
                    self.read_aws(&mut layer.pending, READ_CHUNK_BYTES).await
                } else {
                    self.read_framed(&mut layer.pending, READ_CHUNK_BYTES).await
                };
                match got {
                    Ok(0) => break Err(S3Error::IncompleteBody),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            }
        };
        self.filter = Some(layer);
        result
    }

    /// The transfer-framing layer: Content-Length or HTTP chunked.
    async fn read_framed<S: BodySink>(
        &mut self,
        out: &mut S,
        want: usize,
    ) -> Result<usize, S3Error> {
        loop {
            match &mut self.framing {
                Framing::Empty => return Ok(0),
                Framing::Length { remaining } => {
                    if *remaining == 0 {
                        return Ok(0);
                    }
                    if self.io.available().is_empty() {
                        let max = want.min(*remaining as usize);
                        if max >= DIRECT_READ_MIN {
                            let n = self.read_direct(out, max).await?;
                            let Framing::Length { remaining } = &mut self.framing else {
                                unreachable!()
                            };
                            *remaining -= n as u64;
                            return Ok(n);
                        }
                        self.fill().await?;
                        continue;
                    }
                    let Framing::Length { remaining } = &mut self.framing else {
                        unreachable!()
                    };
                    let available = self.io.available();
                    let n = available.len().min(want).min(*remaining as usize);
                    out.extend_from_slice(&available[..n]);
                    *remaining -= n as u64;
                    self.io.consume(n);
                    return Ok(n);
                }
                Framing::Chunked { decoder, done } => {
                    if *done {
                        return Ok(0);
                    }
                    let (consumed, event) = decoder
                        .decode(self.io.available())
                        .map_err(|_| S3Error::IncompleteBody)?;
                    let produced = match event {
                        Some(BodyEvent::Data(data)) => {
                            out.extend_from_slice(data);
                            Some(data.len())
                        }
                        Some(BodyEvent::Done) => {
                            *done = true;
                            self.trailers.extend(decoder.trailers().iter().cloned());
                            Some(0)
                        }
                        None => None,
                    };
                    self.io.consume(consumed);
                    match produced {
                        Some(n) if n > 0 || self.is_finished() => return Ok(n),
                        Some(_) => {}
                        None if consumed == 0 => self.fill().await?,
                        None => {}
                    }
                }
            }
        }
    }

    /// The aws-chunked layer, fed from the framing layer.
    async fn read_aws<S: BodySink>(&mut self, out: &mut S, want: usize) -> Result<usize, S3Error> {
        let mut produced = 0;
        loop {
            let aws = self
                .aws
                .as_mut()
                .expect("read_aws runs with the aws layer on");
            if aws.done {
                return Ok(produced);
            }
            if aws.pending_pos == aws.pending.len() {
                aws.pending.clear();
                aws.pending_pos = 0;
                let mut pending = std::mem::take(&mut aws.pending);
                let n = self.read_framed(&mut pending, READ_CHUNK_BYTES).await;
                let aws = self.aws.as_mut().expect("still on");
                aws.pending = pending;
                if n? == 0 {
                    return Err(S3Error::IncompleteBody);
                }
                continue;
            }
            let AwsLayer {
                decoder,
                pending,
                pending_pos,
                ..
            } = aws;
            let (consumed, event) = decoder
                .decode(&pending[*pending_pos..])
                .map_err(|e| S3Error::InvalidRequest(format!("bad aws-chunked body: {e}")))?;
            let mut chunk_end = false;
            let mut ended = false;
            match event {
                Some(AwsChunkEvent::Data(data)) => {
                    out.extend_from_slice(data);
                    produced += data.len();
                    if aws.verifier.is_some() {
                        aws.chunk_hash.update(data);
                    }
                }
                Some(AwsChunkEvent::ChunkStart { signature, .. }) => {
                    aws.chunk_signature = signature;
                    aws.chunk_hash = Sha256::new();
                }
                Some(AwsChunkEvent::ChunkEnd) => chunk_end = true,
                Some(AwsChunkEvent::Trailer { name, value }) => {
                    if name == "x-amz-trailer-signature" {
                        aws.trailer_signature = Some(value);
                    } else {
                        self.trailers.push((name, value));
                    }
                }
                Some(AwsChunkEvent::Done) => ended = true,
                None => {}
            }
            let aws = self.aws.as_mut().expect("still on");
            aws.pending_pos += consumed;
            if chunk_end {
                if let Some(verifier) = aws.verifier.as_mut() {
                    let hash: [u8; 32] = std::mem::take(&mut aws.chunk_hash).finalize().into();
                    let signature = aws.chunk_signature.take().unwrap_or_default();
                    verifier.verify_chunk(&hash, &signature)?;
                }
            }
            if ended {
                if let Some(verifier) = aws.verifier.as_mut() {
                    match aws.trailer_signature.take() {
                        Some(signature) => {
                            let mut canonical = Vec::new();
                            for (name, value) in &self.trailers {
                                canonical.extend_from_slice(format!("{name}:{value}\n").as_bytes());
                            }
                            verifier.verify_trailer(&canonical, &signature)?;
                        }
                        None if aws.trailer_signature_required => {
                            return Err(S3Error::SignatureDoesNotMatch);
                        }
                        None => {}
                    }
                }
                // Nothing but line ends may follow the end of the payload.
                let unread = &aws.pending[aws.pending_pos..];
                if !unread.iter().all(|b| b.is_ascii_whitespace()) {
                    return Err(S3Error::InvalidRequest(
                        "bytes after the end of the aws-chunked body".into(),
                    ));
                }
                aws.done = true;
                // The framing may still hold its own end (HTTP chunked's last chunk).
                let mut rest = Vec::new();
                while self.read_framed(&mut rest, READ_CHUNK_BYTES).await? > 0 {
                    if !rest.iter().all(|b| b.is_ascii_whitespace()) {
                        return Err(S3Error::InvalidRequest(
                            "bytes after the end of the aws-chunked body".into(),
                        ));
                    }
                    rest.clear();
                }
                return Ok(produced);
            }
            if produced >= want {
                return Ok(produced);
            }
            if consumed == 0 && event_was_none(chunk_end, ended) {
                // The decoder needs more bytes than `pending` holds: get them.
                let aws = self.aws.as_mut().expect("still on");
                let mut pending = std::mem::take(&mut aws.pending);
                pending.drain(..aws.pending_pos);
                let got = self.read_framed(&mut pending, READ_CHUNK_BYTES).await;
                let aws = self.aws.as_mut().expect("still on");
                aws.pending = pending;
                aws.pending_pos = 0;
                if got? == 0 {
                    return Err(S3Error::IncompleteBody);
                }
            }
        }
    }

    /// Reads and discards what is left of the body, up to a bound. True if it all went.
    async fn drain(&mut self) -> bool {
        // A body declared larger than the bound is not waited for.
        if let Framing::Length { remaining } = self.framing {
            if remaining > DRAIN_BYTES_MAX {
                return false;
            }
        }
        let mut sink = Vec::new();
        let mut drained = 0u64;
        while drained <= DRAIN_BYTES_MAX {
            sink.clear();
            match self.read_into(&mut sink, READ_CHUNK_BYTES).await {
                Ok(0) => return self.is_finished(),
                Ok(n) => drained += n as u64,
                Err(_) => return false,
            }
        }
        false
    }
}

fn event_was_none(chunk_end: bool, ended: bool) -> bool {
    !chunk_end && !ended
}

/// What an operation answers.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ResponseBody,
}

pub enum ResponseBody {
    Empty,
    Bytes(Vec<u8>),
    /// A HEAD answer: the length of what a GET would send, and no body.
    HeadOnly {
        content_length: u64,
    },
    /// Object data streamed from blocks.
    Object(ObjectBody),
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: ResponseBody::Empty,
        }
    }
    pub fn xml(status: u16, xml: String) -> Self {
        let mut r = Response::new(status);
        r.headers
            .push(("Content-Type".into(), "application/xml".into()));
        r.body = ResponseBody::Bytes(xml.into_bytes());
        r
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Bytes of body this response sends (none for HEAD).
    pub fn body_len(&self) -> u64 {
        match &self.body {
            ResponseBody::Empty | ResponseBody::HeadOnly { .. } => 0,
            ResponseBody::Bytes(b) => b.len() as u64,
            ResponseBody::Object(o) => o.len(),
        }
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The S3 API (`--s3-addr`).
    S3,
    /// Buckets served as static websites (`--web-addr`).
    Web,
}

/// Serves one connection until it closes, errs, or idles out.
pub async fn serve(shard: Rc<Gateway>, tcp: TcpStream, listener: Listener) {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let tls = Arc::clone(&shard.tls);
    let handshake =
        glommio::timer::timeout(HEAD_TIMEOUT, async { Ok(Stream::accept(tcp, &tls).await) });
    let stream = match handshake.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(shard = shard.id, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    shard.metrics.borrow_mut().connection_opened();
    let _open = OpenConnection(&shard);
    let mut io = ConnIo::new(stream, shard.config.limits.min_body_rate);
    loop {
        let head = match read_head(&mut io).await {
            HeadRead::Head(head) => head,
            HeadRead::Closed => return,
            HeadRead::Bad(error) => {
                let started = std::time::Instant::now();
                let rid = super::s3::router::request_id(&shard);
                let response = super::s3::router::error_response(&error, "", &rid, false);
                let (status, length) = (response.status, response.body_len());
                let _ = write_response(&shard, &mut io, response, false, &rid).await;
                let took = started.elapsed();
                (shard.metrics.borrow_mut()).request("Invalid", status, took, 0, length);
                return;
            }
        };
        if !serve_request(&shard, &mut io, head, listener).await {
            return;
        }
        io.shrink();
    }
}

/// Answers a connection the node has no room for (`--max-connections`): 503 SlowDown and
/// close, without reading anything, within a bounded time. A TLS connection is closed
/// unanswered (a plain response would mean nothing to it).
pub async fn refuse(shard: Rc<Gateway>, tcp: TcpStream) {
    shard.metrics.borrow_mut().connection_refused();
    if shard.config.tls.is_some() {
        return;
    }
    let rid = super::s3::router::request_id(&shard);
    let error = S3Error::SlowDown;
    let body = crate::s3::xml::error_xml(error.code(), &error.message(), "", &rid, &[]);
    let length = body.len().to_string();
    let mut out = Vec::with_capacity(256 + body.len());
    http::write_response_head(
        &mut out,
        error.status(),
        &[
            ("Content-Type", "application/xml"),
            ("Content-Length", &length),
            ("x-amz-request-id", &rid),
            ("Server", "Granary"),
            ("Connection", "close"),
        ],
    );
    out.extend_from_slice(body.as_bytes());
    let mut tcp = tcp;
    let _ = glommio::timer::timeout(Duration::from_secs(2), async {
        Ok(tcp.write_all(&out).await)
    })
    .await;
}

enum HeadRead {
    Head(http::RequestHead),
    Closed,
    Bad(S3Error),
}

async fn read_head(io: &mut ConnIo) -> HeadRead {
    // Wait (idle) for the first byte of the next request.
    if io.available().is_empty() {
        let first = glommio::timer::timeout(IDLE_TIMEOUT, async {
            Ok(io.fill(HEAD_READ_ROOM_MIN).await)
        })
        .await;
        match first {
            Ok(Ok(n)) if n > 0 => {}
            _ => return HeadRead::Closed,
        }
    }
    let head = glommio::timer::timeout(HEAD_TIMEOUT, async {
        loop {
            match http::parse_head(io.available()) {
                Ok(Some((head, used))) => {
                    io.consume(used);
                    return Ok(HeadRead::Head(head));
                }
                Ok(None) => match io.fill(HEAD_READ_ROOM_MIN).await {
                    Ok(n) if n > 0 => {}
                    // Closed mid-head: nothing to answer to.
                    _ => return Ok(HeadRead::Closed),
                },
                Err(e) => return Ok(HeadRead::Bad(S3Error::from(e))),
            }
        }
    })
    .await;
    head.unwrap_or(HeadRead::Bad(S3Error::RequestTimeout))
}

/// Counts a connection open for as long as it lives.
struct OpenConnection<'s>(&'s Gateway);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.metrics.borrow_mut().connection_closed();
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'s>(&'s Gateway);

impl<'s> InFlight<'s> {
    fn new(shard: &'s Gateway) -> Self {
        shard
            .requests_in_flight
            .set(shard.requests_in_flight.get() + 1);
        InFlight(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.0.requests_in_flight.get();
        assert!(n > 0, "requests in flight never go below zero");
        self.0.requests_in_flight.set(n - 1);
    }
}

/// Handles one request. Returns whether the connection may serve another.
async fn serve_request(
    shard: &Rc<Gateway>,
    io: &mut ConnIo,
    head: http::RequestHead,
    listener: Listener,
) -> bool {
    let in_flight = InFlight::new(shard);
    let started = std::time::Instant::now();
    let rid = super::s3::router::request_id(shard);
    // The S3 operation, worked out once: the router's dispatch, the access checks and the
    // metrics label all follow it.
    let s3_op = match listener {
        Listener::Web => None,
        Listener::S3 => {
            let (bucket, key) = super::s3::router::address(shard, &head);
            Some(S3Op::of(&head, bucket.is_some(), key.is_some()))
        }
    };
    let op = s3_op.map_or("Website", S3Op::label);
    let framing = match http::body_framing(&head) {
        Ok(f) => f,
        Err(e) => {
            let response =
                super::s3::router::error_response(&S3Error::from(e), &head.path, &rid, false);
            let _ = write_response(shard, io, response, false, &rid).await;
            return false;
        }
    };
    io.continue_pending = head.expects_continue()
        && !matches!(framing, BodyFraming::Empty)
        && io.available().is_empty();
    let zero_length = matches!(framing, BodyFraming::Length(0));
    let mut body = Body::new(io, framing);
    let response = respond(shard, &head, &mut body, s3_op, &rid).await;
    let body_done = body.is_finished();
    let bytes_in = body.decoded_bytes();
    // A body the client never got to send (we answered before 100 Continue) or that is
    // too large to drain means the connection cannot carry another request; nor does
    // one of a stopping node.
    let mut keep_alive = head.keep_alive() && !shard.life.stopping();
    if !body_done {
        if body.io.continue_pending {
            keep_alive = false;
        } else {
            keep_alive = keep_alive && body.drain().await;
        }
    }
    let body_unread = !body.is_finished();
    // A zero-length body with `Expect: 100-continue` still gets its interim 100, as S3
    // sends it: botocore answered with a final status at once mis-parses the next response
    // on the connection.
    if std::mem::take(&mut io.continue_pending)
        && zero_length
        && io.write_all(CONTINUE).await.is_err()
    {
        return false;
    }
    let (status, bytes_out) = (response.status, response.body_len());
    let written = write_response(shard, io, response, keep_alive, &rid).await;
    let took = started.elapsed();
    (shard.metrics.borrow_mut()).request(op, status, took, bytes_in, bytes_out);
    tracing::debug!(
        target: "granary::access",
        request_id = rid.as_str(),
        op,
        method = head.method.as_str(),
        path = head.path.as_str(),
        status,
        bytes_in,
        bytes_out,
        micros = took.as_micros() as u64,
        "request"
    );
    match written {
        Ok(()) if !keep_alive && body_unread => {
            // The request is answered: lingering does not hold a stop or count as one.
            drop(in_flight);
            io.close_lingering().await;
            false
        }
        Ok(()) => keep_alive,
        Err(_) => false,
    }
}

/// The answer to a request: the operation's, or its error's. An object's first piece is
/// read before the head goes out (`ObjectBody::prefetch`).
async fn respond(
    shard: &Rc<Gateway>,
    head: &http::RequestHead,
    body: &mut Body<'_>,
    s3_op: Option<S3Op>,
    rid: &str,
) -> Response {
    let is_head = head.method == "HEAD";
    let (result, listener) = match s3_op {
        Some(op) => (
            super::s3::router::handle(shard, op, head, body).await,
            Listener::S3,
        ),
        None => (
            Ok(super::website::handle(shard, head, rid).await),
            Listener::Web,
        ),
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => super::s3::router::error_response(&error, &head.path, rid, is_head),
    };
    if let ResponseBody::Object(object) = &mut response.body {
        if let Err(error) = object.prefetch(shard).await {
            response = super::s3::router::error_response(&error, &head.path, rid, is_head);
        }
    }
    super::s3::cors::add_response_headers(shard, head, listener, &mut response);
    if body.too_slow() {
        shard.metrics.borrow_mut().request_too_slow();
        tracing::info!(
            shard = shard.id,
            path = head.path.as_str(),
            "request body slower than --min-body-rate: ended"
        );
    }
    response
}

async fn write_response(
    shard: &Rc<Gateway>,
    io: &mut ConnIo,
    response: Response,
    keep_alive: bool,
    rid: &str,
) -> io::Result<()> {
    let Response {
        status,
        mut headers,
        body,
    } = response;
    let content_length = match &body {
        ResponseBody::Empty => 0,
        ResponseBody::Bytes(b) => b.len() as u64,
        ResponseBody::HeadOnly { content_length } => *content_length,
        ResponseBody::Object(o) => o.len(),
    };
    if status != 204 && status != 304 && status >= 200 {
        headers.push(("Content-Length".into(), content_length.to_string()));
    }
    headers.push(("x-amz-request-id".into(), rid.to_string()));
    headers.push(("Server".into(), "Granary".into()));
    // The node's clock (a test's manual clock moves it too).
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(shard.clock.now_ms());
    headers.push(("Date".into(), http::http_date(now)));
    if !keep_alive {
        headers.push(("Connection".into(), "close".into()));
    }
    let borrowed: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::with_capacity(512);
    http::write_response_head(&mut out, status, &borrowed);
    match body {
        ResponseBody::Bytes(bytes) => {
            out.extend_from_slice(&bytes);
            io.write_all(&out).await?;
        }
        ResponseBody::Empty | ResponseBody::HeadOnly { .. } => io.write_all(&out).await?,
        ResponseBody::Object(object) => {
            io.write_all(&out).await?;
            object.stream_to(shard, io).await?;
        }
    }
    io.stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::{BodyPace, BODY_RATE_GRACE, IO_TIMEOUT};
    use std::time::Duration;

    #[test]
    fn a_body_earns_a_second_per_min_rate_bytes_after_the_grace() {
        let mut pace = BodyPace {
            min_rate: 1000,
            ..BodyPace::default()
        };
        assert_eq!(pace.read_timeout(), BODY_RATE_GRACE.min(IO_TIMEOUT));
        // A byte every 10 s (the slow drip of outside testing) runs out after the grace.
        pace.record(Duration::from_secs(10), 1);
        pace.record(Duration::from_secs(10), 1);
        assert!(pace.read_timeout() < Duration::from_millis(10));
        // A body at the minimum rate never runs out.
        let mut steady = BodyPace {
            min_rate: 1000,
            ..BodyPace::default()
        };
        for _ in 0..1000 {
            steady.record(Duration::from_secs(1), 1000);
        }
        assert_eq!(steady.read_timeout(), BODY_RATE_GRACE);
        // Off: every read gets the plain timeout.
        let off = BodyPace {
            min_rate: 0,
            waited: Duration::from_secs(3600),
            bytes: 0,
        };
        assert_eq!(off.read_timeout(), IO_TIMEOUT);
    }
}
