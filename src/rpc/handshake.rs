//! Mutual authentication at connect time, from the cluster secret, as a state machine.
//!
//! Both sides send a `Hello` at once (versions spoken, node id, 32 fresh random bytes),
//! then, once the peer's hello is in, a `Proof`:
//!
//! ```text
//! proof(role) = blake3::keyed_hash(secret,
//!     PROOF_DOMAIN ‖ role tag (1 dialer, 2 listener) ‖ dialer hello ‖ listener hello)
//! ```
//!
//! where a hello is its 48 payload bytes (magic, versions, node id, nonce). Each side
//! checks the peer's proof against the one it computes for the peer's role. Hence:
//! - the secret never crosses the wire, only hashes keyed with it;
//! - a recorded proof fails on a new connection, whose peer brought a fresh nonce;
//! - a proof reflected back to its sender fails, the role differs;
//! - the version ranges are in the transcript, so no one in between can lower the version
//!   the two sides agree on (the highest both speak).
//!
//! The caller supplies the nonce (from a CSPRNG in production, fixed in tests), and the
//! timeout (`HANDSHAKE_TIMEOUT_MS` is the suggested one): this code reads no clock.

use super::frame::{Frame, Hello, Kind, VersionRange, PROOF_BYTES};
use super::Role;

/// The protocol versions this build speaks. Rolling upgrades: a release that introduces
/// version N+1 still speaks N; only once every node runs it may a later release drop N.
pub const PROTOCOL_VERSIONS: VersionRange = VersionRange { min: 1, max: 1 };
/// How long a driver should wait for a handshake to finish before closing.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// The domain string of the proof: hashes keyed with the secret for other purposes can
/// never be taken for a proof.
pub const PROOF_DOMAIN: &[u8] = b"granary rpc handshake proof, v1";

/// The 32-byte secret every node of a cluster shares. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret([u8; 32]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(hidden)")
    }
}

/// Why a cluster secret given by the operator is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the cluster secret must be 64 hexadecimal characters (32 bytes), got {chars} \
         characters; generate one with `openssl rand -hex 32`"
    )]
    WrongLength { chars: usize },
    #[error("the cluster secret must be hexadecimal (0-9, a-f), character {position} is not")]
    NotHex { position: usize },
    #[error("the cluster secret is all zeros; generate one with `openssl rand -hex 32`")]
    AllZero,
}

impl ClusterSecret {
    /// A secret from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ClusterSecret {
        ClusterSecret(bytes)
    }

    /// Parses the operator's form: 64 hexadecimal characters, either case, surrounding
    /// whitespace ignored (a secret file ends with a newline). Errors never quote it.
    pub fn parse_hex(text: &str) -> Result<ClusterSecret, SecretError> {
        let text = text.trim();
        let chars = text.chars().count();
        if chars != 64 || text.len() != 64 {
            return Err(SecretError::WrongLength { chars });
        }
        let mut bytes = [0u8; 32];
        let digits = text.as_bytes();
        for (i, byte) in bytes.iter_mut().enumerate() {
            let digit = |at: usize| {
                char::from(digits[at])
                    .to_digit(16)
                    .ok_or(SecretError::NotHex { position: at + 1 })
            };
            let value = digit(2 * i)? * 16 + digit(2 * i + 1)?;
            *byte = u8::try_from(value).expect("two hex digits");
        }
        if bytes == [0u8; 32] {
            return Err(SecretError::AllZero);
        }
        Ok(ClusterSecret(bytes))
    }
}

/// What a side needs to run the handshake.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    /// Whether this side dialed or accepted.
    pub role: Role,
    /// This node's id.
    pub node_id: u64,
    /// The versions this side speaks (`PROTOCOL_VERSIONS` outside tests).
    pub versions: VersionRange,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// 32 bytes from a CSPRNG, never reused.
    pub nonce: [u8; 32],
    /// The node the dialer meant to reach, if it knows: another node answering is an error.
    pub expected_peer: Option<u64>,
}

/// Why a handshake failed. The connection closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("no common protocol version: this node speaks {ours}, the peer speaks {theirs}")]
    NoCommonVersion {
        ours: VersionRange,
        theirs: VersionRange,
    },
    #[error("the peer's version range is empty or starts at 0 ({min} to {max})")]
    BadVersionRange { min: u16, max: u16 },
    #[error("wrong cluster secret: the peer's proof does not match this node's secret")]
    WrongSecret,
    #[error("expected a {expected:?} frame during the handshake, got {got:?}")]
    UnexpectedFrame { expected: Kind, got: Kind },
    #[error("the handshake is over; no frame is expected")]
    Finished,
    #[error("connected to itself (node {node_id:#018x})")]
    SelfConnection { node_id: u64 },
    #[error("expected node {expected:#018x}, reached node {got:#018x}")]
    WrongPeer { expected: u64, got: u64 },
}

/// The result of a handshake: who the peer is and what the connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Established {
    /// The protocol version of this connection: the highest both sides speak.
    pub version: u16,
    /// The peer's node id, now authenticated.
    pub peer_node_id: u64,
}

/// What to do after a frame of the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Send this frame (our proof), then wait for the peer's.
    Send(Frame),
    /// The peer is authenticated: the connection is open.
    Established(Established),
}

/// Where a handshake is.
#[derive(Clone, Debug)]
enum State {
    ExpectHello,
    ExpectProof { peer: Hello, version: u16 },
    Done,
}

/// One side of the handshake: `start` gives the hello to send, `handle` takes each frame
/// of the peer until `Established` or an error. After an error, drop it.
#[derive(Debug)]
pub struct Handshake {
    config: HandshakeConfig,
    state: State,
}

impl Handshake {
    /// A handshake, and the hello to send at once.
    pub fn start(config: HandshakeConfig) -> (Handshake, Frame) {
        assert!(config.versions.min >= 1);
        assert!(config.versions.min <= config.versions.max);
        let hello = Frame::Hello(ours(&config));
        let handshake = Handshake {
            config,
            state: State::ExpectHello,
        };
        (handshake, hello)
    }

    /// Takes the peer's next frame.
    pub fn handle(&mut self, frame: Frame) -> Result<Progress, HandshakeError> {
        match (&self.state, frame) {
            (State::ExpectHello, Frame::Hello(peer)) => self.handle_hello(peer),
            (State::ExpectProof { peer, version }, Frame::Proof(proof)) => {
                let (peer, version) = (*peer, *version);
                let expected = proof_of(&self.config, self.config.role.peer(), &peer);
                // blake3::Hash equality runs in constant time.
                if blake3::Hash::from_bytes(proof) != expected {
                    return Err(HandshakeError::WrongSecret);
                }
                self.state = State::Done;
                Ok(Progress::Established(Established {
                    version,
                    peer_node_id: peer.node_id,
                }))
            }
            (State::ExpectHello, other) => Err(HandshakeError::UnexpectedFrame {
                expected: Kind::Hello,
                got: other.kind(),
            }),
            (State::ExpectProof { .. }, other) => Err(HandshakeError::UnexpectedFrame {
                expected: Kind::Proof,
                got: other.kind(),
            }),
            (State::Done, _) => Err(HandshakeError::Finished),
        }
    }

    fn handle_hello(&mut self, peer: Hello) -> Result<Progress, HandshakeError> {
        let theirs = peer.versions;
        if theirs.min == 0 || theirs.min > theirs.max {
            return Err(HandshakeError::BadVersionRange {
                min: theirs.min,
                max: theirs.max,
            });
        }
        if peer.node_id == self.config.node_id {
            return Err(HandshakeError::SelfConnection {
                node_id: peer.node_id,
            });
        }
        if let Some(expected) = self.config.expected_peer {
            if expected != peer.node_id {
                return Err(HandshakeError::WrongPeer {
                    expected,
                    got: peer.node_id,
                });
            }
        }
        let version = agree(self.config.versions, theirs)?;
        let proof = proof_of(&self.config, self.config.role, &peer);
        self.state = State::ExpectProof { peer, version };
        Ok(Progress::Send(Frame::Proof(*proof.as_bytes())))
    }
}

/// The highest version both ranges hold.
pub fn agree(ours: VersionRange, theirs: VersionRange) -> Result<u16, HandshakeError> {
    let version = ours.max.min(theirs.max);
    if version < ours.min.max(theirs.min) {
        return Err(HandshakeError::NoCommonVersion { ours, theirs });
    }
    assert!(version >= ours.min && version <= ours.max);
    assert!(version >= theirs.min && version <= theirs.max);
    Ok(version)
}

fn ours(config: &HandshakeConfig) -> Hello {
    Hello {
        versions: config.versions,
        node_id: config.node_id,
        nonce: config.nonce,
    }
}

/// The proof the side playing `role` sends, on a connection where the peer of this
/// config said `peer`.
fn proof_of(config: &HandshakeConfig, role: Role, peer: &Hello) -> blake3::Hash {
    let ours = ours(config);
    let (dialer, listener) = match config.role {
        Role::Dialer => (ours, *peer),
        Role::Listener => (*peer, ours),
    };
    let mut hasher = blake3::Hasher::new_keyed(&config.secret.0);
    hasher.update(PROOF_DOMAIN);
    hasher.update(&[role.tag()]);
    hasher.update(&dialer.to_bytes());
    hasher.update(&listener.to_bytes());
    let proof = hasher.finalize();
    assert_eq!(proof.as_bytes().len(), PROOF_BYTES);
    proof
}

#[cfg(test)]
mod tests;
