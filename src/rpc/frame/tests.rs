//! The codec: every kind round-trips, input split anywhere decodes the same, and no input
//! panics the decoder or makes it hold more than one frame's worth of bytes.

use super::*;
use proptest::prelude::*;

/// One frame of every kind (two of the call kinds, to cover priorities and empty and
/// non-empty payloads).
fn every_kind() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello {
            versions: VersionRange { min: 1, max: 3 },
            node_id: 0x0123_4567_89ab_cdef,
            nonce: [7; 32],
        }),
        Frame::Proof([0xa5; PROOF_BYTES]),
        Frame::Request {
            id: 2,
            priority: Priority::Metadata,
            payload: b"get".to_vec(),
        },
        Frame::Request {
            id: 4,
            priority: Priority::Control,
            payload: Vec::new(),
        },
        Frame::Response {
            id: 2,
            priority: Priority::Metadata,
            payload: b"ok".to_vec(),
        },
        Frame::ErrorResponse {
            id: 3,
            priority: Priority::Background,
            payload: b"no such key".to_vec(),
        },
        Frame::StreamChunk {
            id: 6,
            priority: Priority::BlockData,
            payload: vec![0xff; 300],
        },
        Frame::StreamEnd {
            id: 6,
            priority: Priority::BlockData,
            payload: Vec::new(),
        },
        Frame::Credit {
            id: 6,
            bytes: 2 * 1024 * 1024,
        },
        Frame::Cancel { id: u64::MAX },
        Frame::Ping { id: 99 },
        Frame::Pong { id: 99 },
    ]
}

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        encode(frame, &mut out);
    }
    out
}

/// Feeds `pieces` in order (pushing the rest of a piece again whenever the decoder took
/// less) and returns the frames decoded.
fn decode_pieces(decoder: &mut Decoder, pieces: &[&[u8]]) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        loop {
            let taken = decoder.push(rest);
            rest = &rest[taken..];
            while let Some(frame) = decoder.next_frame()? {
                frames.push(frame);
            }
            if rest.is_empty() {
                break;
            }
            assert!(taken > 0 || decoder.room_bytes() > 0, "no progress");
        }
    }
    Ok(frames)
}

#[test]
fn every_kind_round_trips() {
    for frame in every_kind() {
        let bytes = encoded(std::slice::from_ref(&frame));
        assert_eq!(bytes.len(), frame.encoded_bytes(), "{frame:?}");
        let mut decoder = Decoder::new();
        assert_eq!(decoder.push(&bytes), bytes.len());
        assert_eq!(decoder.next_frame(), Ok(Some(frame.clone())));
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered_bytes(), 0);
    }
}

#[test]
fn the_header_is_laid_out_as_documented() {
    let frame = Frame::Request {
        id: 0x0102_0304_0506_0708,
        priority: Priority::BlockData,
        payload: vec![0xaa, 0xbb, 0xcc],
    };
    let bytes = encoded(&[frame]);
    assert_eq!(
        bytes,
        [0x10, 2, 8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 0, 0xaa, 0xbb, 0xcc]
    );
    let credit = encoded(&[Frame::Credit { id: 1, bytes: 5 }]);
    assert_eq!(
        credit,
        [0x22, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0]
    );
    let hello = Hello {
        versions: VersionRange { min: 1, max: 2 },
        node_id: 3,
        nonce: [4; 32],
    };
    let bytes = hello.to_bytes();
    assert_eq!(
        &bytes[..16],
        b"GRAN\x01\x00\x02\x00\x03\x00\x00\x00\x00\x00\x00\x00"
    );
    assert_eq!(bytes[16..], [4; 32]);
}

#[test]
fn frames_split_at_every_byte_boundary_decode_the_same() {
    let frames = every_kind();
    let bytes = encoded(&frames);
    for cut in 0..=bytes.len() {
        let mut decoder = Decoder::new();
        let decoded = decode_pieces(&mut decoder, &[&bytes[..cut], &bytes[cut..]]).unwrap();
        assert_eq!(decoded, frames, "cut at {cut}");
        assert_eq!(decoder.buffered_bytes(), 0);
    }
    let mut decoder = Decoder::new();
    let single: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(decode_pieces(&mut decoder, &single).unwrap(), frames);
}

#[test]
fn the_largest_frame_round_trips_and_the_decoder_holds_no_more() {
    let frame = Frame::StreamChunk {
        id: 2,
        priority: Priority::BlockData,
        payload: vec![1; FRAME_PAYLOAD_BYTES_MAX as usize],
    };
    let bytes = encoded(&[frame.clone(), Frame::Ping { id: 1 }]);
    let mut decoder = Decoder::new();
    // Offered everything at once, it takes exactly one frame's worth.
    assert_eq!(decoder.push(&bytes), FRAME_BYTES_MAX);
    assert_eq!(decoder.room_bytes(), 0);
    assert!(decoder.capacity_bytes() <= decoder.buffer_bytes_max());
    assert_eq!(decoder.next_frame(), Ok(Some(frame)));
    assert_eq!(decoder.push(&bytes[FRAME_BYTES_MAX..]), HEADER_BYTES);
    assert_eq!(decoder.next_frame(), Ok(Some(Frame::Ping { id: 1 })));
    assert!(decoder.capacity_bytes() <= decoder.buffer_bytes_max());
}

#[test]
#[should_panic(expected = "FRAME_PAYLOAD_BYTES_MAX")]
fn encoding_a_payload_over_the_limit_is_a_bug() {
    let frame = Frame::Response {
        id: 1,
        priority: Priority::Metadata,
        payload: vec![0; FRAME_PAYLOAD_BYTES_MAX as usize + 1],
    };
    encode(&frame, &mut Vec::new());
}

fn header(kind: u8, priority: u8, id: u64, length: u32) -> Vec<u8> {
    let mut out = vec![kind, priority];
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out
}

fn first_error(bytes: &[u8]) -> FrameError {
    let mut decoder = Decoder::new();
    decoder.push(bytes);
    decoder.next_frame().expect_err("a bad frame")
}

#[test]
fn a_length_over_the_limit_fails_on_the_header_alone() {
    let mut decoder = Decoder::new();
    decoder.push(&header(0x20, 2, 1, u32::MAX));
    let error = decoder.next_frame().unwrap_err();
    assert_eq!(
        error,
        FrameError::TooLarge {
            kind: Kind::StreamChunk,
            length: u32::MAX,
            max: FRAME_PAYLOAD_BYTES_MAX
        }
    );
    assert!(
        decoder.capacity_bytes() < 1024,
        "nothing allocated for the payload"
    );
    // The error sticks, and no more bytes are taken.
    assert_eq!(decoder.push(&[0; 10]), 0);
    assert_eq!(decoder.next_frame(), Err(error));
    let just_over = header(0x10, 1, 1, FRAME_PAYLOAD_BYTES_MAX + 1);
    assert!(matches!(
        first_error(&just_over),
        FrameError::TooLarge { .. }
    ));
}

#[test]
fn malformed_headers_are_refused_with_their_reason() {
    assert_eq!(first_error(&header(0, 0, 0, 0)), FrameError::UnknownKind(0));
    assert_eq!(
        first_error(&header(b'G', 0, 0, 0)),
        FrameError::UnknownKind(b'G')
    );
    assert_eq!(
        first_error(&header(0x10, 4, 1, 0)),
        FrameError::UnknownPriority {
            kind: Kind::Request,
            value: 4
        }
    );
    assert_eq!(
        first_error(&header(0x30, 1, 1, 0)),
        FrameError::ControlPriority {
            kind: Kind::Ping,
            value: 1
        }
    );
    assert_eq!(
        first_error(&header(0x22, 0, 1, 8)),
        FrameError::BadLength {
            kind: Kind::Credit,
            length: 8,
            expected: 4
        }
    );
    assert_eq!(
        first_error(&header(0x02, 0, 5, 32)),
        FrameError::NonZeroId {
            kind: Kind::Proof,
            id: 5
        }
    );
    let mut not_granary = header(0x01, 0, 0, HELLO_PAYLOAD_BYTES as u32);
    not_granary.extend_from_slice(&[0; HELLO_PAYLOAD_BYTES]);
    assert_eq!(first_error(&not_granary), FrameError::BadMagic);
}

#[test]
fn an_http_client_on_the_rpc_port_is_refused_at_once() {
    let error = first_error(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(error.to_string(), "unknown frame kind 0x47");
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sample {
    key: String,
    size: u64,
    parts: Vec<u32>,
}

#[test]
fn messages_round_trip_through_postcard() {
    let sample = Sample {
        key: "photos/cat.jpg".to_string(),
        size: 1 << 40,
        parts: vec![1, 2, 3],
    };
    let bytes = encode_message(&sample).unwrap();
    assert_eq!(decode_message::<Sample>(&bytes), Ok(sample));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        decode_message::<Sample>(&longer),
        Err(MessageError::TrailingBytes(1))
    );
    let error = decode_message::<Sample>(&bytes[..bytes.len() - 2]).unwrap_err();
    assert!(matches!(error, MessageError::Decode(_)), "{error:?}");
    assert!(error.to_string().starts_with("message decoding failed"));
    let huge = vec![0u8; FRAME_PAYLOAD_BYTES_MAX as usize];
    assert!(matches!(
        encode_message(&huge),
        Err(MessageError::TooLarge { .. })
    ));
}

/// A frame of any kind, with payloads up to `payload_max` bytes.
fn any_frame(payload_max: usize) -> impl Strategy<Value = Frame> {
    let priority = prop::sample::select(Priority::ALL.to_vec());
    let payload = prop::collection::vec(any::<u8>(), 0..=payload_max);
    (0u8..11, any::<u64>(), priority, payload, any::<[u8; 32]>()).prop_map(
        |(kind, id, priority, payload, bytes)| match kind {
            0 => Frame::Hello(Hello {
                versions: VersionRange {
                    min: u16::from(bytes[0]),
                    max: u16::from(bytes[1]),
                },
                node_id: id,
                nonce: bytes,
            }),
            1 => Frame::Proof(bytes),
            2 => Frame::Request {
                id,
                priority,
                payload,
            },
            3 => Frame::Response {
                id,
                priority,
                payload,
            },
            4 => Frame::ErrorResponse {
                id,
                priority,
                payload,
            },
            5 => Frame::StreamChunk {
                id,
                priority,
                payload,
            },
            6 => Frame::StreamEnd {
                id,
                priority,
                payload,
            },
            7 => Frame::Credit {
                id,
                bytes: id as u32,
            },
            8 => Frame::Cancel { id },
            9 => Frame::Ping { id },
            _ => Frame::Pong { id },
        },
    )
}

/// Random bytes, with a well-formed header now and then so that lengths near and over
/// the limit, and payloads cut anywhere, come up often.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (0usize..11, 0u8..5, any::<u64>(), 0u32..160).prop_map(|(k, p, id, len)| {
            let kinds = [1u8, 2, 0x10, 0x11, 0x12, 0x20, 0x21, 0x22, 0x23, 0x30, 0x31];
            header(kinds[k], p, id, len)
        }),
        (0u32..160).prop_map(|len| {
            let mut frame = header(0x20, 2, 6, len);
            frame.resize(HEADER_BYTES + len as usize, 0x5a);
            frame
        }),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, in arbitrary pieces, against a small limit (so the bound is
    /// reached): no panic, and never more buffered or allocated than one frame's worth.
    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill_the_decoder(
        bytes in hostile_bytes(),
        cuts in prop::collection::vec(0usize..256, 0..8),
    ) {
        let mut decoder = Decoder::with_payload_max(100);
        let max = decoder.buffer_bytes_max();
        let mut rest = &bytes[..];
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let piece = cuts.next().unwrap_or(rest.len()).min(rest.len());
            let taken = decoder.push(&rest[..piece.max(1)]);
            rest = &rest[taken..];
            prop_assert!(decoder.buffered_bytes() <= max);
            prop_assert!(decoder.capacity_bytes() <= max);
            match decoder.next_frame() {
                Ok(Some(frame)) => prop_assert!(frame.payload_bytes() <= 100),
                Ok(None) => prop_assert!(taken > 0 || rest.is_empty()),
                Err(_) => break,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any frames, encoded and split anywhere, decode to themselves.
    #[test]
    fn any_frames_round_trip_split_anywhere(
        frames in prop::collection::vec(any_frame(200), 0..12),
        cuts in prop::collection::vec(0usize..3000, 0..6),
    ) {
        let bytes = encoded(&frames);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            pieces.push(&bytes[from..cut]);
            from = cut;
        }
        let mut decoder = Decoder::new();
        prop_assert_eq!(decode_pieces(&mut decoder, &pieces).unwrap(), frames);
    }
}
