//! Node-to-node RPC, the sans-IO core: bytes in, values out. Nothing here reads a socket,
//! spawns a task or reads a clock; the connection driver owns the socket and the timers
//! and feeds this code, so that a real node and a deterministic simulation run the same
//! protocol. `docs/rpc.md` is the reader's page; this is the summary.
//!
//! - [`frame`]: the wire. A frame is a 14-byte little-endian header (kind, priority, id,
//!   payload length) and a payload of at most [`frame::FRAME_PAYLOAD_BYTES_MAX`] bytes.
//!   [`frame::Decoder`] accepts bytes split anywhere, never panics on any input, and never
//!   buffers more than one frame. Typed messages travel as postcard in request and
//!   response payloads ([`frame::encode_message`], [`frame::decode_message`]).
//! - [`handshake`]: the first frames on a connection. Each side sends a `Hello` (protocol
//!   versions it speaks, node id, a fresh nonce), then a `Proof`: a blake3 keyed hash, under
//!   the cluster secret, of its role and both hellos. The secret never crosses the wire, a
//!   recorded proof fails against a fresh nonce, and the connection speaks the highest
//!   version both sides know.
//! - [`flow`]: what keeps memory bounded whatever the peer does. Stream data flows only
//!   within the credit its receiver granted ([`flow::RecvWindow`], [`flow::SendWindow`]);
//!   a peer that sends past its credit breaks the protocol and the connection closes. The
//!   [`flow::Outbox`] orders what a connection sends: by priority, streams of one
//!   priority taking turns chunk by chunk, with a bound on the bytes queued.
//!
//! Calls and streams share one id space per connection. Both sides may call: the dialer
//! numbers its calls with even ids, the listener with odd ones ([`Role::owns_call`]), so
//! the two never collide; id 0 is no call. A call's request, its response and the
//! streams that go with it (at most one each way) all carry the call's id.

pub mod flow;
pub mod frame;
pub mod handshake;

/// Which end of a connection a node is: the one that dialed, or the one that accepted.
/// The handshake's proofs and the parity of call ids depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opened the TCP connection; its call ids are even.
    Dialer,
    /// Accepted the TCP connection; its call ids are odd.
    Listener,
}

impl Role {
    /// The other end's role.
    pub fn peer(self) -> Role {
        match self {
            Role::Dialer => Role::Listener,
            Role::Listener => Role::Dialer,
        }
    }

    /// The byte that stands for this role in a handshake transcript.
    fn tag(self) -> u8 {
        match self {
            Role::Dialer => 1,
            Role::Listener => 2,
        }
    }

    /// Whether this side numbers the call `id` (0 belongs to neither side).
    pub fn owns_call(self, id: u64) -> bool {
        id != 0 && id.is_multiple_of(2) == (self == Role::Dialer)
    }

    /// The id of this side's `sequence`-th call (from 0): 2, 4, 6… for the dialer and
    /// 1, 3, 5… for the listener. `None` once the ids run out (after 2^63 calls).
    pub fn call_id(self, sequence: u64) -> Option<u64> {
        let id = match self {
            Role::Dialer => sequence.checked_add(1)?.checked_mul(2)?,
            Role::Listener => sequence.checked_mul(2)?.checked_add(1)?,
        };
        assert!(self.owns_call(id));
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_of_the_two_sides_never_collide() {
        for sequence in 0..100 {
            let dialer = Role::Dialer.call_id(sequence).unwrap();
            let listener = Role::Listener.call_id(sequence).unwrap();
            assert!(Role::Dialer.owns_call(dialer) && !Role::Listener.owns_call(dialer));
            assert!(Role::Listener.owns_call(listener) && !Role::Dialer.owns_call(listener));
        }
        assert_eq!(Role::Dialer.call_id(0), Some(2));
        assert_eq!(Role::Listener.call_id(0), Some(1));
        assert!(!Role::Dialer.owns_call(0) && !Role::Listener.owns_call(0));
        assert_eq!(Role::Dialer.call_id(u64::MAX / 2), None);
        assert_eq!(Role::Listener.call_id(u64::MAX / 2), Some(u64::MAX));
        assert_eq!(Role::Dialer.peer(), Role::Listener);
    }
}
