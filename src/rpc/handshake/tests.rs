//! The handshake between two in-memory sides: success whichever hello is read first,
//! and each way it must fail (wrong secret, replayed or reflected proof, no common
//! version, wrong or same node), with errors that say why.

use super::*;
use crate::rpc::frame::{encode, Decoder};

const SECRET_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn secret() -> ClusterSecret {
    ClusterSecret::parse_hex(SECRET_HEX).unwrap()
}

fn config(role: Role, node_id: u64, nonce: u8) -> HandshakeConfig {
    HandshakeConfig {
        role,
        node_id,
        versions: PROTOCOL_VERSIONS,
        secret: secret(),
        nonce: [nonce; 32],
        expected_peer: None,
    }
}

/// Sends a frame over the wire (encode, decode), as a connection would.
fn wire(frame: &Frame) -> Frame {
    let mut bytes = Vec::new();
    encode(frame, &mut bytes);
    let mut decoder = Decoder::new();
    assert_eq!(decoder.push(&bytes), bytes.len());
    decoder.next_frame().unwrap().unwrap()
}

fn proof_of_progress(progress: Progress) -> Frame {
    match progress {
        Progress::Send(frame) => frame,
        Progress::Established(e) => panic!("established before the proof: {e:?}"),
    }
}

fn established(progress: Progress) -> Established {
    match progress {
        Progress::Established(e) => e,
        Progress::Send(frame) => panic!("expected the end, got {frame:?}"),
    }
}

/// Runs both sides to the end; `listener_first` picks which side reads its peer's
/// hello first. Returns each side's outcome and every byte that crossed the wire.
fn run(
    dialer: HandshakeConfig,
    listener: HandshakeConfig,
    listener_first: bool,
) -> (
    Result<Established, HandshakeError>,
    Result<Established, HandshakeError>,
    Vec<u8>,
) {
    let mut seen = Vec::new();
    let (mut d, d_hello) = Handshake::start(dialer);
    let (mut l, l_hello) = Handshake::start(listener);
    encode(&d_hello, &mut seen);
    encode(&l_hello, &mut seen);
    let (d_step, l_step) = if listener_first {
        let l_step = l.handle(wire(&d_hello));
        (d.handle(wire(&l_hello)), l_step)
    } else {
        let d_step = d.handle(wire(&l_hello));
        (d_step, l.handle(wire(&d_hello)))
    };
    let (d_proof, l_proof) = match (d_step, l_step) {
        (Ok(d_progress), Ok(l_progress)) => {
            (proof_of_progress(d_progress), proof_of_progress(l_progress))
        }
        // A side that fails hangs up; the other, still waiting, ends with `Finished`.
        (d_step, l_step) => {
            let hung_up = Err(HandshakeError::Finished);
            return (d_step.and(hung_up.clone()), l_step.and(hung_up), seen);
        }
    };
    encode(&d_proof, &mut seen);
    encode(&l_proof, &mut seen);
    let d_end = d.handle(wire(&l_proof)).map(established);
    let l_end = l.handle(wire(&d_proof)).map(established);
    (d_end, l_end, seen)
}

#[test]
fn two_nodes_with_the_same_secret_authenticate_each_other() {
    for listener_first in [false, true] {
        let (d, l, _) = run(
            config(Role::Dialer, 10, 1),
            config(Role::Listener, 20, 2),
            listener_first,
        );
        assert_eq!(
            d,
            Ok(Established {
                version: PROTOCOL_VERSIONS.max,
                peer_node_id: 20
            })
        );
        assert_eq!(
            l,
            Ok(Established {
                version: PROTOCOL_VERSIONS.max,
                peer_node_id: 10
            })
        );
    }
}

#[test]
fn the_secret_never_crosses_the_wire() {
    let (d, l, seen) = run(
        config(Role::Dialer, 10, 1),
        config(Role::Listener, 20, 2),
        false,
    );
    assert!(d.is_ok() && l.is_ok());
    let secret = secret().0;
    assert!(!seen.windows(8).any(|w| secret.windows(8).any(|s| s == w)));
}

#[test]
fn a_wrong_secret_fails_on_both_sides() {
    let mut other = config(Role::Listener, 20, 2);
    other.secret = ClusterSecret::from_bytes([9; 32]);
    let (d, l, _) = run(config(Role::Dialer, 10, 1), other, false);
    assert_eq!(d, Err(HandshakeError::WrongSecret));
    assert_eq!(l, Err(HandshakeError::WrongSecret));
    let message = HandshakeError::WrongSecret.to_string();
    assert!(message.starts_with("wrong cluster secret"), "{message}");
}

#[test]
fn a_recorded_dialer_transcript_fails_against_a_fresh_nonce() {
    // An eavesdropper records a whole successful handshake...
    let (mut d, d_hello) = Handshake::start(config(Role::Dialer, 10, 1));
    let (mut l, l_hello) = Handshake::start(config(Role::Listener, 20, 2));
    let d_proof = proof_of_progress(d.handle(l_hello).unwrap());
    let l_proof = proof_of_progress(l.handle(d_hello.clone()).unwrap());
    assert!(l.handle(d_proof.clone()).is_ok());
    assert!(d.handle(l_proof.clone()).is_ok());
    // ...then plays the dialer's part to the listener, which brings a new nonce.
    let (mut fresh, _) = Handshake::start(config(Role::Listener, 20, 3));
    assert!(matches!(fresh.handle(d_hello), Ok(Progress::Send(_))));
    assert_eq!(fresh.handle(d_proof), Err(HandshakeError::WrongSecret));
    // And the listener's part to a dialer.
    let (mut dialer, _) = Handshake::start(config(Role::Dialer, 10, 4));
    assert!(dialer
        .handle(Frame::Hello(Hello {
            versions: PROTOCOL_VERSIONS,
            node_id: 20,
            nonce: [2; 32],
        }))
        .is_ok());
    assert_eq!(dialer.handle(l_proof), Err(HandshakeError::WrongSecret));
}

#[test]
fn a_proof_reflected_to_its_sender_fails() {
    let (mut l, _) = Handshake::start(config(Role::Listener, 20, 2));
    // The attacker claims to be node 10 and returns the listener's own proof.
    let own = proof_of_progress(
        l.handle(Frame::Hello(Hello {
            versions: PROTOCOL_VERSIONS,
            node_id: 10,
            nonce: [2; 32],
        }))
        .unwrap(),
    );
    assert_eq!(l.handle(own), Err(HandshakeError::WrongSecret));
}

#[test]
fn the_connection_speaks_the_highest_common_version() {
    let range = |min, max| VersionRange { min, max };
    assert_eq!(agree(range(1, 3), range(2, 5)), Ok(3));
    assert_eq!(agree(range(2, 5), range(1, 3)), Ok(3));
    assert_eq!(agree(range(1, 1), range(1, 1)), Ok(1));
    let mut dialer = config(Role::Dialer, 10, 1);
    dialer.versions = range(1, 2);
    let mut listener = config(Role::Listener, 20, 2);
    listener.versions = range(2, 4);
    let (d, l, _) = run(dialer, listener, true);
    assert_eq!(d.unwrap().version, 2);
    assert_eq!(l.unwrap().version, 2);
}

#[test]
fn no_common_version_names_both_ranges() {
    let mut dialer = config(Role::Dialer, 10, 1);
    dialer.versions = VersionRange { min: 1, max: 2 };
    let mut listener = config(Role::Listener, 20, 2);
    listener.versions = VersionRange { min: 3, max: 4 };
    let (d, l, _) = run(dialer, listener, false);
    let error = d.unwrap_err();
    assert_eq!(
        error.to_string(),
        "no common protocol version: this node speaks versions 1 to 2, \
         the peer speaks versions 3 to 4"
    );
    assert!(l.is_err());
}

#[test]
fn a_downgraded_hello_fails_the_proof() {
    // Someone in between rewrites the listener's versions; the proofs cover them.
    let mut dialer = config(Role::Dialer, 10, 1);
    dialer.versions = VersionRange { min: 1, max: 3 };
    let mut listener = config(Role::Listener, 20, 2);
    listener.versions = VersionRange { min: 1, max: 3 };
    let (mut d, d_hello) = Handshake::start(dialer);
    let (mut l, l_hello) = Handshake::start(listener);
    let Frame::Hello(mut forged) = l_hello else {
        unreachable!()
    };
    forged.versions = VersionRange { min: 1, max: 1 };
    let d_proof = proof_of_progress(d.handle(Frame::Hello(forged)).unwrap());
    let l_proof = proof_of_progress(l.handle(d_hello).unwrap());
    assert_eq!(d.handle(l_proof), Err(HandshakeError::WrongSecret));
    assert_eq!(l.handle(d_proof), Err(HandshakeError::WrongSecret));
}

#[test]
fn the_wrong_node_or_the_node_itself_is_refused() {
    let mut dialer = config(Role::Dialer, 10, 1);
    dialer.expected_peer = Some(30);
    let (d, _, _) = run(dialer, config(Role::Listener, 20, 2), false);
    assert_eq!(
        d,
        Err(HandshakeError::WrongPeer {
            expected: 30,
            got: 20
        })
    );
    let (d, _, _) = run(
        config(Role::Dialer, 10, 1),
        config(Role::Listener, 10, 2),
        false,
    );
    assert_eq!(d, Err(HandshakeError::SelfConnection { node_id: 10 }));
}

#[test]
fn frames_out_of_turn_are_errors() {
    let (mut d, _) = Handshake::start(config(Role::Dialer, 10, 1));
    assert_eq!(
        d.handle(Frame::Ping { id: 1 }),
        Err(HandshakeError::UnexpectedFrame {
            expected: Kind::Hello,
            got: Kind::Ping
        })
    );
    let (mut d, _) = Handshake::start(config(Role::Dialer, 10, 1));
    let (_, l_hello) = Handshake::start(config(Role::Listener, 20, 2));
    d.handle(l_hello.clone()).unwrap();
    assert_eq!(
        d.handle(l_hello),
        Err(HandshakeError::UnexpectedFrame {
            expected: Kind::Proof,
            got: Kind::Hello
        })
    );
    let bad_range = Frame::Hello(Hello {
        versions: VersionRange { min: 3, max: 2 },
        node_id: 20,
        nonce: [0; 32],
    });
    let (mut d, _) = Handshake::start(config(Role::Dialer, 10, 1));
    assert_eq!(
        d.handle(bad_range),
        Err(HandshakeError::BadVersionRange { min: 3, max: 2 })
    );
}

#[test]
fn a_finished_handshake_takes_no_more_frames() {
    let (mut d, d_hello) = Handshake::start(config(Role::Dialer, 10, 1));
    let (mut l, l_hello) = Handshake::start(config(Role::Listener, 20, 2));
    let d_proof = proof_of_progress(d.handle(l_hello).unwrap());
    let l_proof = proof_of_progress(l.handle(d_hello).unwrap());
    established(d.handle(l_proof.clone()).unwrap());
    established(l.handle(d_proof).unwrap());
    assert_eq!(d.handle(l_proof), Err(HandshakeError::Finished));
}

#[test]
fn the_operator_secret_is_64_hex_characters() {
    let parsed = ClusterSecret::parse_hex(&format!("  {}\n", SECRET_HEX.to_uppercase()));
    assert_eq!(parsed, Ok(secret()));
    assert_eq!(secret().0[..3], [0, 1, 2]);
    assert_eq!(
        ClusterSecret::parse_hex("abcd"),
        Err(SecretError::WrongLength { chars: 4 })
    );
    let mut bad = SECRET_HEX.to_string();
    bad.replace_range(10..11, "g");
    assert_eq!(
        ClusterSecret::parse_hex(&bad),
        Err(SecretError::NotHex { position: 11 })
    );
    let accented = format!("é{}", &SECRET_HEX[2..]);
    assert!(ClusterSecret::parse_hex(&accented).is_err());
    assert_eq!(
        ClusterSecret::parse_hex(&"0".repeat(64)),
        Err(SecretError::AllZero)
    );
    let message = SecretError::WrongLength { chars: 4 }.to_string();
    assert!(message.contains("64 hexadecimal characters"), "{message}");
    assert_eq!(format!("{:?}", secret()), "ClusterSecret(hidden)");
}
