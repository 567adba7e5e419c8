//! The RPC wire format: frames, their codec, and the postcard helpers for typed messages.
//!
//! A frame is a fixed 14-byte header followed by its payload; every integer is
//! little-endian:
//!
//! ```text
//! byte  0       kind            (Kind: 0x01 Hello … 0x31 Pong; 0 and unknown values refused)
//! byte  1       priority        (0 control, 1 metadata, 2 block data, 3 background)
//! bytes 2..10   id              (u64: the call or stream; 0 for Hello and Proof)
//! bytes 10..14  payload length  (u32, at most FRAME_PAYLOAD_BYTES_MAX)
//! bytes 14..    payload
//! ```
//!
//! Invariants the decoder keeps, whatever bytes arrive: it never panics; it refuses a
//! length over the limit as soon as the header is in, before allocating for the payload;
//! it holds at most `HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX` bytes; after an error it
//! returns that error forever (the connection is to be closed, there is no resync).
//! The encoder asserts what the decoder checks, so what we send always decodes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 14;
/// Largest payload of one frame: a 1 MiB block chunk, or a message carrying a whole 1 MiB
/// block inline, plus 64 KiB for the message around it. Larger data goes as a stream.
pub const FRAME_PAYLOAD_BYTES_MAX: u32 = 1024 * 1024 + 64 * 1024;
/// Largest encoded frame.
pub const FRAME_BYTES_MAX: usize = HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX as usize;
/// Bytes of a `Hello` payload: magic, version range, node id, nonce. Frozen forever: every
/// version of Granary must read the hello of every other to tell it what it speaks.
pub const HELLO_PAYLOAD_BYTES: usize = 4 + 2 + 2 + 8 + 32;
/// The first bytes of a `Hello` payload: a peer that is not a Granary node is told apart
/// at once.
pub const HELLO_MAGIC: [u8; 4] = *b"GRAN";
/// Bytes of a `Proof` payload (a blake3 hash).
pub const PROOF_BYTES: usize = 32;
/// Bytes of a `Credit` payload (a u32).
const CREDIT_PAYLOAD_BYTES: usize = 4;

const _: () = assert!(HEADER_BYTES == 1 + 1 + 8 + 4);
const _: () = assert!(FRAME_PAYLOAD_BYTES_MAX as usize >= HELLO_PAYLOAD_BYTES);
const _: () = assert!(FRAME_PAYLOAD_BYTES_MAX <= u32::MAX / 2);

/// The kind of a frame: its first byte. Values are spread by family (handshake 0x0_,
/// calls 0x1_, streams 0x2_, liveness 0x3_); 0 is no kind, so a zeroed buffer is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Handshake, first frame each way: versions, node id, nonce.
    Hello = 0x01,
    /// Handshake, second frame each way: the keyed hash proving the cluster secret.
    Proof = 0x02,
    /// A call: postcard message, id chosen by the caller.
    Request = 0x10,
    /// A call's answer: postcard message, the call's id.
    Response = 0x11,
    /// A call's failure: postcard message (the layer above's error type), the call's id.
    ErrorResponse = 0x12,
    /// Stream data of a call; consumes the sender's credit.
    StreamChunk = 0x20,
    /// The end of a call's stream; payload for the layer above (empty, or a trailer).
    StreamEnd = 0x21,
    /// Grants the peer more bytes of stream data on a call (payload: u32).
    Credit = 0x22,
    /// The sender gives up a call: drop its state, send nothing more for it.
    Cancel = 0x23,
    /// Liveness probe; the id is echoed in the `Pong`.
    Ping = 0x30,
    /// Answer to a `Ping`, same id.
    Pong = 0x31,
}

impl Kind {
    /// The kind of a first byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x01 => Kind::Hello,
            0x02 => Kind::Proof,
            0x10 => Kind::Request,
            0x11 => Kind::Response,
            0x12 => Kind::ErrorResponse,
            0x20 => Kind::StreamChunk,
            0x21 => Kind::StreamEnd,
            0x22 => Kind::Credit,
            0x23 => Kind::Cancel,
            0x30 => Kind::Ping,
            0x31 => Kind::Pong,
            _ => return None,
        })
    }

    /// Control frames are small, fixed-size and always sent at control priority: the
    /// outbox keeps room for them so that credit and liveness never wait behind data.
    pub fn is_control(self) -> bool {
        match self {
            Kind::Hello | Kind::Proof | Kind::Credit | Kind::Cancel | Kind::Ping | Kind::Pong => {
                true
            }
            Kind::Request
            | Kind::Response
            | Kind::ErrorResponse
            | Kind::StreamChunk
            | Kind::StreamEnd => false,
        }
    }

    /// The payload length a kind must have, if fixed.
    fn payload_bytes_fixed(self) -> Option<usize> {
        match self {
            Kind::Hello => Some(HELLO_PAYLOAD_BYTES),
            Kind::Proof => Some(PROOF_BYTES),
            Kind::Credit => Some(CREDIT_PAYLOAD_BYTES),
            Kind::Cancel | Kind::Ping | Kind::Pong => Some(0),
            Kind::Request
            | Kind::Response
            | Kind::ErrorResponse
            | Kind::StreamChunk
            | Kind::StreamEnd => None,
        }
    }
}

/// The order in which a connection sends what it has queued: lower values first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Priority {
    /// Handshake, credit, cancel, ping; and calls that must never wait (layout, health).
    Control = 0,
    /// Metadata reads and writes: small, and an S3 client is waiting.
    Metadata = 1,
    /// Block data an S3 client is waiting for.
    BlockData = 2,
    /// Anti-entropy, resync, rebalancing, scrub repair.
    Background = 3,
}

/// How many priorities there are.
pub const PRIORITY_COUNT: usize = 4;

impl Priority {
    /// Every priority, in sending order.
    pub const ALL: [Priority; PRIORITY_COUNT] = [
        Priority::Control,
        Priority::Metadata,
        Priority::BlockData,
        Priority::Background,
    ];

    /// The priority of a header byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Priority> {
        Priority::ALL.get(usize::from(byte)).copied()
    }

    /// The index of this priority in `ALL`.
    pub fn index(self) -> usize {
        usize::from(self as u8)
    }
}

/// The range of protocol versions a node speaks, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRange {
    /// Oldest version spoken.
    pub min: u16,
    /// Newest version spoken.
    pub max: u16,
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "version {}", self.min)
        } else {
            write!(f, "versions {} to {}", self.min, self.max)
        }
    }
}

/// The first frame each side sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol versions the sender speaks.
    pub versions: VersionRange,
    /// The sender's node id.
    pub node_id: u64,
    /// Fresh random bytes, never reused: they make every transcript unique.
    pub nonce: [u8; 32],
}

impl Hello {
    /// The payload bytes; the handshake's transcript hashes exactly these.
    pub fn to_bytes(&self) -> [u8; HELLO_PAYLOAD_BYTES] {
        let mut out = [0u8; HELLO_PAYLOAD_BYTES];
        out[0..4].copy_from_slice(&HELLO_MAGIC);
        out[4..6].copy_from_slice(&self.versions.min.to_le_bytes());
        out[6..8].copy_from_slice(&self.versions.max.to_le_bytes());
        out[8..16].copy_from_slice(&self.node_id.to_le_bytes());
        out[16..48].copy_from_slice(&self.nonce);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Hello, FrameError> {
        assert_eq!(bytes.len(), HELLO_PAYLOAD_BYTES);
        if bytes[0..4] != HELLO_MAGIC {
            return Err(FrameError::BadMagic);
        }
        Ok(Hello {
            versions: VersionRange {
                min: u16::from_le_bytes([bytes[4], bytes[5]]),
                max: u16::from_le_bytes([bytes[6], bytes[7]]),
            },
            node_id: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            nonce: bytes[16..48].try_into().expect("32 bytes"),
        })
    }
}

/// One frame, decoded. Control kinds carry no priority (they are always control);
/// call and stream kinds carry the priority their sender gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Handshake: who the sender is and what it speaks.
    Hello(Hello),
    /// Handshake: the sender's keyed hash of the transcript.
    Proof([u8; PROOF_BYTES]),
    /// A call.
    Request {
        id: u64,
        priority: Priority,
        payload: Vec<u8>,
    },
    /// A call's answer.
    Response {
        id: u64,
        priority: Priority,
        payload: Vec<u8>,
    },
    /// A call's failure.
    ErrorResponse {
        id: u64,
        priority: Priority,
        payload: Vec<u8>,
    },
    /// Stream data of call `id`.
    StreamChunk {
        id: u64,
        priority: Priority,
        payload: Vec<u8>,
    },
    /// The end of call `id`'s stream from this sender.
    StreamEnd {
        id: u64,
        priority: Priority,
        payload: Vec<u8>,
    },
    /// The peer may send `bytes` more bytes of stream data on call `id`.
    Credit { id: u64, bytes: u32 },
    /// The sender abandons call `id`.
    Cancel { id: u64 },
    /// Liveness probe.
    Ping { id: u64 },
    /// Answer to the `Ping` with the same id.
    Pong { id: u64 },
}

impl Frame {
    /// The kind of this frame.
    pub fn kind(&self) -> Kind {
        match self {
            Frame::Hello(_) => Kind::Hello,
            Frame::Proof(_) => Kind::Proof,
            Frame::Request { .. } => Kind::Request,
            Frame::Response { .. } => Kind::Response,
            Frame::ErrorResponse { .. } => Kind::ErrorResponse,
            Frame::StreamChunk { .. } => Kind::StreamChunk,
            Frame::StreamEnd { .. } => Kind::StreamEnd,
            Frame::Credit { .. } => Kind::Credit,
            Frame::Cancel { .. } => Kind::Cancel,
            Frame::Ping { .. } => Kind::Ping,
            Frame::Pong { .. } => Kind::Pong,
        }
    }

    /// The frame's id: its call or stream, its ping, or 0 for the handshake.
    pub fn id(&self) -> u64 {
        match self {
            Frame::Hello(_) | Frame::Proof(_) => 0,
            Frame::Request { id, .. }
            | Frame::Response { id, .. }
            | Frame::ErrorResponse { id, .. }
            | Frame::StreamChunk { id, .. }
            | Frame::StreamEnd { id, .. }
            | Frame::Credit { id, .. }
            | Frame::Cancel { id }
            | Frame::Ping { id }
            | Frame::Pong { id } => *id,
        }
    }

    /// The priority the frame is sent with (control for every control kind).
    pub fn priority(&self) -> Priority {
        match self {
            Frame::Request { priority, .. }
            | Frame::Response { priority, .. }
            | Frame::ErrorResponse { priority, .. }
            | Frame::StreamChunk { priority, .. }
            | Frame::StreamEnd { priority, .. } => *priority,
            Frame::Hello(_)
            | Frame::Proof(_)
            | Frame::Credit { .. }
            | Frame::Cancel { .. }
            | Frame::Ping { .. }
            | Frame::Pong { .. } => Priority::Control,
        }
    }

    /// The payload bytes of a call or stream frame (empty for control frames, whose
    /// payloads are fixed encodings of their fields).
    pub fn payload(&self) -> &[u8] {
        match self {
            Frame::Request { payload, .. }
            | Frame::Response { payload, .. }
            | Frame::ErrorResponse { payload, .. }
            | Frame::StreamChunk { payload, .. }
            | Frame::StreamEnd { payload, .. } => payload,
            _ => &[],
        }
    }

    /// Bytes of the payload on the wire.
    pub fn payload_bytes(&self) -> usize {
        self.kind()
            .payload_bytes_fixed()
            .unwrap_or(self.payload().len())
    }

    /// Bytes of the whole frame on the wire.
    pub fn encoded_bytes(&self) -> usize {
        HEADER_BYTES + self.payload_bytes()
    }
}

/// Appends `frame` to `out`. A payload over `FRAME_PAYLOAD_BYTES_MAX` is a bug of the
/// caller (messages are checked by `encode_message`, chunks are cut smaller): it panics.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let payload_bytes = frame.payload_bytes();
    assert!(payload_bytes <= FRAME_PAYLOAD_BYTES_MAX as usize);
    let start = out.len();
    out.reserve(HEADER_BYTES + payload_bytes);
    out.push(frame.kind() as u8);
    out.push(frame.priority() as u8);
    out.extend_from_slice(&frame.id().to_le_bytes());
    let length = u32::try_from(payload_bytes).expect("checked against the limit");
    out.extend_from_slice(&length.to_le_bytes());
    match frame {
        Frame::Hello(hello) => out.extend_from_slice(&hello.to_bytes()),
        Frame::Proof(proof) => out.extend_from_slice(proof),
        Frame::Credit { bytes, .. } => out.extend_from_slice(&bytes.to_le_bytes()),
        _ => out.extend_from_slice(frame.payload()),
    }
    assert_eq!(out.len() - start, frame.encoded_bytes());
}

/// Why the bytes from a peer are not a frame. Any of these ends the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    #[error("unknown priority {value} in a {kind:?} frame")]
    UnknownPriority { kind: Kind, value: u8 },
    #[error("a {kind:?} frame must have control priority, got priority {value}")]
    ControlPriority { kind: Kind, value: u8 },
    #[error("a {kind:?} frame of {length} bytes is over the limit of {max} bytes")]
    TooLarge { kind: Kind, length: u32, max: u32 },
    #[error("a {kind:?} frame's payload must be {expected} bytes, got {length}")]
    BadLength {
        kind: Kind,
        length: u32,
        expected: usize,
    },
    #[error("a {kind:?} frame must have id 0, got {id}")]
    NonZeroId { kind: Kind, id: u64 },
    #[error("the hello does not start with Granary's magic: the peer is not a Granary node")]
    BadMagic,
}

/// A frame header, read and checked.
struct Header {
    kind: Kind,
    priority: Priority,
    id: u64,
    length: u32,
}

/// Reads and checks the header at the start of `bytes` (at least `HEADER_BYTES` long),
/// against a payload limit of `payload_max`.
fn parse_header(bytes: &[u8], payload_max: u32) -> Result<Header, FrameError> {
    assert!(bytes.len() >= HEADER_BYTES);
    let kind = Kind::from_byte(bytes[0]).ok_or(FrameError::UnknownKind(bytes[0]))?;
    let value = bytes[1];
    let priority = Priority::from_byte(value).ok_or(FrameError::UnknownPriority { kind, value })?;
    if kind.is_control() && priority != Priority::Control {
        return Err(FrameError::ControlPriority { kind, value });
    }
    let id = u64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes"));
    let length = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes"));
    if length > payload_max {
        return Err(FrameError::TooLarge {
            kind,
            length,
            max: payload_max,
        });
    }
    if let Some(expected) = kind.payload_bytes_fixed() {
        if length as usize != expected {
            return Err(FrameError::BadLength {
                kind,
                length,
                expected,
            });
        }
    }
    if matches!(kind, Kind::Hello | Kind::Proof) && id != 0 {
        return Err(FrameError::NonZeroId { kind, id });
    }
    Ok(Header {
        kind,
        priority,
        id,
        length,
    })
}

/// Builds the frame of a checked header and its whole payload.
fn build_frame(header: &Header, payload: &[u8]) -> Result<Frame, FrameError> {
    assert_eq!(payload.len(), header.length as usize);
    let (id, priority) = (header.id, header.priority);
    let owned = || payload.to_vec();
    Ok(match header.kind {
        Kind::Hello => Frame::Hello(Hello::from_bytes(payload)?),
        Kind::Proof => Frame::Proof(payload.try_into().expect("length checked")),
        Kind::Request => Frame::Request {
            id,
            priority,
            payload: owned(),
        },
        Kind::Response => Frame::Response {
            id,
            priority,
            payload: owned(),
        },
        Kind::ErrorResponse => Frame::ErrorResponse {
            id,
            priority,
            payload: owned(),
        },
        Kind::StreamChunk => Frame::StreamChunk {
            id,
            priority,
            payload: owned(),
        },
        Kind::StreamEnd => Frame::StreamEnd {
            id,
            priority,
            payload: owned(),
        },
        Kind::Credit => Frame::Credit {
            id,
            bytes: u32::from_le_bytes(payload.try_into().expect("length checked")),
        },
        Kind::Cancel => Frame::Cancel { id },
        Kind::Ping => Frame::Ping { id },
        Kind::Pong => Frame::Pong { id },
    })
}

/// Turns the bytes a connection reads into frames: `push` what was read, then call
/// `next_frame` until it returns `Ok(None)`.
///
/// Memory is bounded: the buffer never holds more than one frame's worth
/// (`buffer_bytes_max`), so `push` takes only what fits and says how much it took; when
/// it took less than offered, a whole frame (or an error) is ready, and the caller pushes
/// the rest after taking it. Consumed bytes are skipped with a cursor and the buffer is
/// compacted only when room is needed, so many small frames in one read cost no copying.
#[derive(Debug)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Where the unconsumed bytes of `buffer` start.
    start: usize,
    payload_max: u32,
    failed: Option<FrameError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for frames up to `FRAME_PAYLOAD_BYTES_MAX`.
    pub fn new() -> Decoder {
        Decoder::with_payload_max(FRAME_PAYLOAD_BYTES_MAX)
    }

    /// A decoder with a lower payload limit (tests use a small one to reach the bound).
    pub fn with_payload_max(payload_max: u32) -> Decoder {
        assert!(payload_max <= FRAME_PAYLOAD_BYTES_MAX);
        Decoder {
            buffer: Vec::new(),
            start: 0,
            payload_max,
            failed: None,
        }
    }

    /// The most bytes the decoder ever holds: one header and one largest payload.
    pub fn buffer_bytes_max(&self) -> usize {
        HEADER_BYTES + self.payload_max as usize
    }

    /// Bytes pushed and not yet decoded.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Bytes allocated for the buffer (never over `buffer_bytes_max`).
    pub fn capacity_bytes(&self) -> usize {
        self.buffer.capacity()
    }

    /// How many bytes `push` would take now.
    pub fn room_bytes(&self) -> usize {
        self.buffer_bytes_max() - self.buffered_bytes()
    }

    /// Takes as many of `bytes` as fit and returns how many. Taking fewer than offered
    /// means a frame or an error is ready for `next_frame`; after an error, takes none.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        let taken = bytes.len().min(self.room_bytes());
        if taken == 0 {
            return 0;
        }
        let max = self.buffer_bytes_max();
        if self.start > 0 && self.buffer.len() + taken > self.buffer.capacity().min(max) {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let needed = self.buffer.len() + taken;
        if needed > self.buffer.capacity() {
            // Grow geometrically, but never past the bound: `reserve` alone could.
            let target = needed.max(self.buffer.capacity() * 2).min(max);
            self.buffer.reserve_exact(target - self.buffer.len());
        }
        self.buffer.extend_from_slice(&bytes[..taken]);
        assert!(self.buffered_bytes() <= max);
        assert!(self.buffer.len() <= max);
        taken
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the error that ends
    /// the connection (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.decode_one();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
            self.buffer = Vec::new();
            self.start = 0;
        }
        result
    }

    fn decode_one(&mut self) -> Result<Option<Frame>, FrameError> {
        let available = &self.buffer[self.start..];
        if available.len() < HEADER_BYTES {
            assert!(self.room_bytes() > 0, "a full buffer always holds a header");
            return Ok(None);
        }
        let header = parse_header(available, self.payload_max)?;
        let frame_bytes = HEADER_BYTES + header.length as usize;
        if available.len() < frame_bytes {
            assert!(self.room_bytes() > 0, "a full buffer always holds a frame");
            return Ok(None);
        }
        let frame = build_frame(&header, &available[HEADER_BYTES..frame_bytes])?;
        self.start += frame_bytes;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

/// Why a typed message could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message encoding failed: {0}")]
    Encode(postcard::Error),
    #[error("message of {bytes} bytes is over the frame limit of {max} bytes")]
    TooLarge { bytes: usize, max: u32 },
    #[error("message decoding failed: {0}")]
    Decode(postcard::Error),
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
}

/// A message as a request or response payload (postcard), refused if it would not fit
/// in a frame.
pub fn encode_message<T: Serialize>(message: &T) -> Result<Vec<u8>, MessageError> {
    let bytes = postcard::to_allocvec(message).map_err(MessageError::Encode)?;
    if bytes.len() > FRAME_PAYLOAD_BYTES_MAX as usize {
        return Err(MessageError::TooLarge {
            bytes: bytes.len(),
            max: FRAME_PAYLOAD_BYTES_MAX,
        });
    }
    Ok(bytes)
}

/// The message a payload holds; every byte must belong to it.
pub fn decode_message<T: DeserializeOwned>(payload: &[u8]) -> Result<T, MessageError> {
    let (message, rest) = postcard::take_from_bytes(payload).map_err(MessageError::Decode)?;
    if !rest.is_empty() {
        return Err(MessageError::TrailingBytes(rest.len()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests;
