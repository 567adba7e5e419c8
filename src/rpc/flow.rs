//! Flow control and send scheduling: what keeps a connection's memory bounded whatever
//! the peer does, and a small call from waiting behind bulk data.
//!
//! **Credit.** Stream data (the payload of `StreamChunk` frames, nothing else) flows only
//! within credit its receiver granted. When a call's stream opens, each side counts an
//! implicit first grant of `STREAM_WINDOW_BYTES`, so the first chunks leave without a
//! round trip; after that the receiver grants more (`Credit` frames) as its consumer
//! drains, keeping at most one window outstanding. [`RecvWindow`] is the receiver's
//! state: it refuses data past the credit (a protocol error: the connection closes) and
//! says when to grant. [`SendWindow`] is the sender's: how much it may send now.
//! Invariant, per stream: received − consumed ≤ granted − consumed ≤ window, so the
//! data a receiver buffers is bounded by the window, and a connection's by
//! `STREAMS_INCOMING_MAX` windows (a driver refuses streams beyond that many).
//!
//! **Scheduling.** [`Outbox`] holds the frames a connection has yet to write. It sends the
//! highest priority first; within a priority the calls take turns, one frame each, so a
//! long stream and a short request of the same priority share the link. Its bytes are
//! bounded: `push` returns `Full` and the caller waits until frames leave. Control frames
//! (credit, cancel, ping) have a reserve beyond the bound, so that a full outbox never
//! withholds the credit that would let the peer drain it.

use std::collections::{HashMap, VecDeque};

use super::frame::{encode, Frame, Kind, FRAME_BYTES_MAX, PRIORITY_COUNT};

/// The receive window of one stream: credit granted when it opens, and kept topped up.
/// At 4 MiB a stream runs at 4 GB/s with 1 ms of round trip, 40 MB/s with 100 ms.
pub const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// The chunk size stream senders should use: a 64 KiB chunk occupies a 1 Gbit/s link for
/// half a millisecond, which is how long a control frame may wait behind it.
pub const STREAM_CHUNK_BYTES: u32 = 64 * 1024;
/// Streams a node receives at once on one connection. With `STREAM_WINDOW_BYTES` this
/// bounds the stream data a connection buffers to 64 MiB.
pub const STREAMS_INCOMING_MAX: u32 = 16;
/// The default bound of an outbox's queued bytes.
pub const OUTBOX_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;
/// Bytes of control frames an outbox accepts beyond its bound.
pub const OUTBOX_CONTROL_RESERVE_BYTES: usize = 64 * 1024;

const _: () = assert!(STREAM_CHUNK_BYTES <= STREAM_WINDOW_BYTES / 2);
const _: () = assert!(OUTBOX_BYTES_MAX_DEFAULT >= FRAME_BYTES_MAX);

/// A breach of flow control by the peer: the connection must close.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("the peer sent {bytes} bytes of stream data with only {credit} bytes of credit")]
    Overrun { bytes: u64, credit: u64 },
    #[error("the peer granted credit beyond {max} bytes ({credit} + {grant})", max = u32::MAX)]
    CreditOverflow { credit: u32, grant: u32 },
}

/// The receiving side of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvWindow {
    window_bytes: u32,
    /// Credit granted since the stream opened, the implicit first window included.
    granted_bytes: u64,
    received_bytes: u64,
    consumed_bytes: u64,
}

impl RecvWindow {
    /// A stream just opened, with `window_bytes` of implicit credit.
    pub fn new(window_bytes: u32) -> RecvWindow {
        assert!(
            window_bytes >= 2,
            "a window that halves to nothing never re-grants"
        );
        RecvWindow {
            window_bytes,
            granted_bytes: u64::from(window_bytes),
            received_bytes: 0,
            consumed_bytes: 0,
        }
    }

    /// A chunk of `bytes` arrived: an error if it goes past the credit.
    pub fn on_chunk(&mut self, bytes: usize) -> Result<(), FlowError> {
        let credit = self.credit_bytes();
        let bytes = bytes as u64;
        if bytes > credit {
            return Err(FlowError::Overrun { bytes, credit });
        }
        self.received_bytes += bytes;
        self.check();
        Ok(())
    }

    /// The consumer took `bytes` of received data. Returns the credit to grant now, if
    /// any: once half the window has drained, enough to open it again (so a steady
    /// stream costs one `Credit` frame per half window).
    pub fn on_consumed(&mut self, bytes: usize) -> Option<u32> {
        let bytes = bytes as u64;
        assert!(
            bytes <= self.buffered_bytes(),
            "consumed more than received"
        );
        self.consumed_bytes += bytes;
        let outstanding = self.granted_bytes - self.consumed_bytes;
        let window = u64::from(self.window_bytes);
        let grant = if outstanding <= window / 2 {
            let grant = window - outstanding;
            self.granted_bytes += grant;
            Some(u32::try_from(grant).expect("at most one window"))
        } else {
            None
        };
        self.check();
        grant
    }

    /// Bytes received and not yet consumed: never over the window.
    pub fn buffered_bytes(&self) -> u64 {
        self.received_bytes - self.consumed_bytes
    }

    /// Bytes the peer may still send.
    pub fn credit_bytes(&self) -> u64 {
        self.granted_bytes - self.received_bytes
    }

    fn check(&self) {
        assert!(self.consumed_bytes <= self.received_bytes);
        assert!(self.received_bytes <= self.granted_bytes);
        assert!(self.granted_bytes - self.consumed_bytes <= u64::from(self.window_bytes));
    }
}

/// The sending side of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendWindow {
    credit_bytes: u32,
}

impl SendWindow {
    /// A stream just opened, with the receiver's implicit first grant.
    pub fn new(initial_bytes: u32) -> SendWindow {
        SendWindow {
            credit_bytes: initial_bytes,
        }
    }

    /// Bytes that may be sent now.
    pub fn credit_bytes(&self) -> u32 {
        self.credit_bytes
    }

    /// How many of `wanted` bytes may be sent now.
    pub fn sendable(&self, wanted: usize) -> usize {
        wanted.min(self.credit_bytes as usize)
    }

    /// A chunk of `bytes` was queued; sending past the credit is a bug of the caller.
    pub fn on_send(&mut self, bytes: usize) {
        assert!(bytes <= self.credit_bytes as usize, "sent past the credit");
        self.credit_bytes -= u32::try_from(bytes).expect("within the credit");
    }

    /// The peer granted `grant` more bytes; more than 4 GiB held at once is not a
    /// receiver this protocol knows.
    pub fn on_credit(&mut self, grant: u32) -> Result<(), FlowError> {
        self.credit_bytes =
            self.credit_bytes
                .checked_add(grant)
                .ok_or(FlowError::CreditOverflow {
                    credit: self.credit_bytes,
                    grant,
                })?;
        Ok(())
    }
}

/// The outbox refused a frame: too many bytes are queued. The frame is handed back; push
/// it again once some have left.
#[derive(Debug, PartialEq, Eq)]
pub struct Full(pub Frame);

/// The frames of one priority, by call.
#[derive(Debug, Default)]
struct Lane {
    /// Ids with frames queued, in turn order; each present once.
    turns: VecDeque<u64>,
    frames: HashMap<u64, VecDeque<Frame>>,
}

/// The frames a connection has yet to write, in sending order (see the module docs).
#[derive(Debug)]
pub struct Outbox {
    lanes: [Lane; PRIORITY_COUNT],
    queued_bytes: usize,
    queued_frames: usize,
    bytes_max: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(OUTBOX_BYTES_MAX_DEFAULT)
    }
}

impl Outbox {
    /// An empty outbox holding at most `bytes_max` bytes of frames (encoded size), plus
    /// the control reserve. It must hold the largest frame.
    pub fn new(bytes_max: usize) -> Outbox {
        assert!(bytes_max >= FRAME_BYTES_MAX);
        Outbox {
            lanes: Default::default(),
            queued_bytes: 0,
            queued_frames: 0,
            bytes_max,
        }
    }

    /// Bytes of frames queued (encoded size).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Frames queued.
    pub fn queued_frames(&self) -> usize {
        self.queued_frames
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued_frames == 0
    }

    /// Whether `push(frame)` would take the frame now.
    pub fn has_room(&self, frame: &Frame) -> bool {
        let limit = if frame.kind().is_control() {
            self.bytes_max + OUTBOX_CONTROL_RESERVE_BYTES
        } else {
            self.bytes_max
        };
        self.queued_bytes + frame.encoded_bytes() <= limit
    }

    /// Queues `frame` behind the frames of its call and priority, or hands it back if the
    /// bound would be passed. A call's frames keep their order within a priority.
    pub fn push(&mut self, frame: Frame) -> Result<(), Full> {
        if !self.has_room(&frame) {
            return Err(Full(frame));
        }
        self.queued_bytes += frame.encoded_bytes();
        self.queued_frames += 1;
        let lane = &mut self.lanes[frame.priority().index()];
        let id = frame.id();
        let queue = lane.frames.entry(id).or_default();
        if queue.is_empty() {
            lane.turns.push_back(id);
        }
        queue.push_back(frame);
        Ok(())
    }

    /// The next frame to write: from the highest priority with frames, the call whose
    /// turn it is.
    pub fn pop(&mut self) -> Option<Frame> {
        let lane = self.lanes.iter_mut().find(|l| !l.turns.is_empty())?;
        let id = lane.turns.pop_front().expect("lane not empty");
        let queue = lane.frames.get_mut(&id).expect("an id in turn has frames");
        let frame = queue.pop_front().expect("an id in turn has frames");
        if queue.is_empty() {
            lane.frames.remove(&id);
        } else {
            lane.turns.push_back(id);
        }
        assert_eq!(frame.id(), id);
        self.queued_bytes -= frame.encoded_bytes();
        self.queued_frames -= 1;
        Some(frame)
    }

    /// Encodes frames into `out`, in order, until it holds at least `bytes_target` bytes
    /// or the outbox is empty; returns how many frames. One write of `out` then carries
    /// many small frames.
    pub fn encode_into(&mut self, out: &mut Vec<u8>, bytes_target: usize) -> usize {
        let mut count = 0;
        while out.len() < bytes_target {
            let Some(frame) = self.pop() else { break };
            encode(&frame, out);
            count += 1;
        }
        count
    }

    /// Drops every queued frame of call `id` (request, response, stream data and end,
    /// credit), of every priority; pings, pongs and cancels stay. Returns the bytes
    /// freed. The caller then queues a `Cancel` if the peer knows of the call.
    pub fn cancel(&mut self, id: u64) -> usize {
        let mut freed_bytes = 0;
        let mut freed_frames = 0;
        for lane in &mut self.lanes {
            let Some(queue) = lane.frames.get_mut(&id) else {
                continue;
            };
            queue.retain(|frame| {
                let keep = matches!(
                    frame.kind(),
                    Kind::Ping | Kind::Pong | Kind::Cancel | Kind::Hello | Kind::Proof
                );
                if !keep {
                    freed_bytes += frame.encoded_bytes();
                    freed_frames += 1;
                }
                keep
            });
            if queue.is_empty() {
                lane.frames.remove(&id);
                lane.turns.retain(|turn| *turn != id);
            }
        }
        self.queued_bytes -= freed_bytes;
        self.queued_frames -= freed_frames;
        freed_bytes
    }
}

#[cfg(test)]
mod tests;
