//! Credit: a sender within its credit is never refused, one past it always is, and the
//! receiver never buffers more than its window. Outbox: priority order, turns between
//! the calls of one priority, the bound, and cancel.

use super::*;
use crate::rpc::frame::Priority;
use proptest::prelude::*;

#[test]
fn a_sender_within_its_credit_is_accepted_and_one_byte_more_is_an_overrun() {
    let mut recv = RecvWindow::new(1000);
    let mut send = SendWindow::new(1000);
    assert_eq!(send.sendable(1500), 1000);
    send.on_send(600);
    recv.on_chunk(600).unwrap();
    send.on_send(400);
    recv.on_chunk(400).unwrap();
    assert_eq!(send.sendable(1), 0);
    assert_eq!(recv.credit_bytes(), 0);
    let error = recv.on_chunk(1).unwrap_err();
    assert_eq!(
        error,
        FlowError::Overrun {
            bytes: 1,
            credit: 0
        }
    );
    assert_eq!(
        error.to_string(),
        "the peer sent 1 bytes of stream data with only 0 bytes of credit"
    );
    assert_eq!(
        recv.buffered_bytes(),
        1000,
        "the refused chunk is not counted"
    );
}

#[test]
fn an_overrun_in_the_middle_of_a_window_is_caught_too() {
    let mut recv = RecvWindow::new(STREAM_WINDOW_BYTES);
    recv.on_chunk(STREAM_WINDOW_BYTES as usize - 10).unwrap();
    assert!(matches!(
        recv.on_chunk(11),
        Err(FlowError::Overrun {
            bytes: 11,
            credit: 10
        })
    ));
    recv.on_chunk(10).unwrap();
}

#[test]
fn the_receiver_grants_again_once_half_the_window_has_drained() {
    let mut recv = RecvWindow::new(1000);
    let mut send = SendWindow::new(1000);
    send.on_send(1000);
    recv.on_chunk(1000).unwrap();
    assert_eq!(recv.on_consumed(400), None, "600 still outstanding");
    let grant = recv.on_consumed(100).expect("half drained");
    assert_eq!(grant, 500);
    assert_eq!(recv.credit_bytes(), 500);
    send.on_credit(grant).unwrap();
    assert_eq!(send.credit_bytes(), 500);
    assert_eq!(recv.buffered_bytes(), 500);
    // The window never opens beyond its size, however the consumer drains.
    send.on_send(500);
    recv.on_chunk(500).unwrap();
    assert_eq!(recv.buffered_bytes(), 1000);
    assert!(recv.on_chunk(1).is_err());
}

#[test]
fn credit_beyond_what_fits_is_a_protocol_error() {
    let mut send = SendWindow::new(u32::MAX - 5);
    send.on_credit(5).unwrap();
    assert_eq!(
        send.on_credit(1),
        Err(FlowError::CreditOverflow {
            credit: u32::MAX,
            grant: 1
        })
    );
}

#[test]
#[should_panic(expected = "sent past the credit")]
fn sending_past_the_credit_is_a_bug() {
    SendWindow::new(10).on_send(11);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A sender that sends whatever its credit allows and a consumer that drains at its
    /// own pace: every byte arrives, never refused, and the receiver's buffer never
    /// passes the window.
    #[test]
    fn an_honest_sender_is_never_refused_and_buffers_stay_bounded(
        steps in prop::collection::vec((any::<bool>(), 1usize..700), 1..200),
        window in 2u32..3000,
    ) {
        let mut send = SendWindow::new(window);
        let mut recv = RecvWindow::new(window);
        let (mut sent, mut consumed) = (0usize, 0usize);
        let mut grants = Vec::new();
        for (sending, amount) in steps {
            if sending {
                let bytes = send.sendable(amount);
                send.on_send(bytes);
                prop_assert!(recv.on_chunk(bytes).is_ok());
                sent += bytes;
            } else {
                let bytes = amount.min(recv.buffered_bytes() as usize);
                if let Some(grant) = recv.on_consumed(bytes) {
                    grants.push(grant);
                }
                consumed += bytes;
                // Credit frames arrive later than they were sent: deliver them in batches.
                if grants.len() > 1 || amount % 3 == 0 {
                    for grant in grants.drain(..) {
                        prop_assert!(send.on_credit(grant).is_ok());
                    }
                }
            }
            prop_assert!(recv.buffered_bytes() <= u64::from(window));
            prop_assert_eq!(recv.buffered_bytes(), (sent - consumed) as u64);
        }
    }
}

fn chunk(id: u64, priority: Priority, byte: u8) -> Frame {
    Frame::StreamChunk {
        id,
        priority,
        payload: vec![byte; 100],
    }
}

fn request(id: u64, priority: Priority) -> Frame {
    Frame::Request {
        id,
        priority,
        payload: vec![0; 10],
    }
}

fn drain(outbox: &mut Outbox) -> Vec<Frame> {
    std::iter::from_fn(|| outbox.pop()).collect()
}

#[test]
fn the_outbox_sends_the_highest_priority_first() {
    let mut outbox = Outbox::default();
    outbox.push(request(1, Priority::Background)).unwrap();
    outbox.push(chunk(3, Priority::BlockData, 0)).unwrap();
    outbox.push(request(5, Priority::Metadata)).unwrap();
    outbox.push(Frame::Credit { id: 7, bytes: 9 }).unwrap();
    outbox.push(request(9, Priority::Control)).unwrap();
    let order: Vec<u64> = drain(&mut outbox).iter().map(Frame::id).collect();
    assert_eq!(order, [7, 9, 5, 3, 1]);
    assert!(outbox.is_empty());
    assert_eq!(outbox.queued_bytes(), 0);
}

#[test]
fn calls_of_one_priority_take_turns_chunk_by_chunk() {
    let mut outbox = Outbox::default();
    for id in [2, 4, 6] {
        for n in 0..3 {
            outbox.push(chunk(id, Priority::BlockData, n)).unwrap();
        }
    }
    // A short request of the same priority waits one turn, not behind whole streams.
    outbox.push(request(8, Priority::BlockData)).unwrap();
    let order: Vec<(u64, u8)> = drain(&mut outbox)
        .iter()
        .map(|f| (f.id(), f.payload().first().copied().unwrap_or(0xee)))
        .collect();
    assert_eq!(
        order,
        [
            (2, 0),
            (4, 0),
            (6, 0),
            (8, 0),
            (2, 1),
            (4, 1),
            (6, 1),
            (2, 2),
            (4, 2),
            (6, 2)
        ]
    );
}

#[test]
fn a_frame_of_higher_priority_overtakes_a_stream_in_progress() {
    let mut outbox = Outbox::default();
    for n in 0..4 {
        outbox.push(chunk(2, Priority::Background, n)).unwrap();
    }
    assert_eq!(outbox.pop().unwrap().id(), 2);
    outbox.push(request(5, Priority::Metadata)).unwrap();
    outbox.push(Frame::Ping { id: 1 }).unwrap();
    let order: Vec<u64> = drain(&mut outbox).iter().map(Frame::id).collect();
    assert_eq!(order, [1, 5, 2, 2, 2]);
}

#[test]
fn the_outbox_is_bounded_but_keeps_room_for_control_frames() {
    let mut outbox = Outbox::new(FRAME_BYTES_MAX);
    let per_frame = chunk(2, Priority::BlockData, 0).encoded_bytes();
    let mut pushed = 0;
    let refused = loop {
        match outbox.push(chunk(2, Priority::BlockData, 0)) {
            Ok(()) => pushed += 1,
            Err(Full(frame)) => break frame,
        }
    };
    assert_eq!(pushed, FRAME_BYTES_MAX / per_frame);
    assert_eq!(
        refused,
        chunk(2, Priority::BlockData, 0),
        "the frame is handed back"
    );
    assert!(outbox.queued_bytes() <= FRAME_BYTES_MAX);
    assert!(
        outbox.push(request(3, Priority::Control)).is_err(),
        "data, though urgent"
    );
    outbox.push(Frame::Credit { id: 3, bytes: 1 }).unwrap();
    outbox.push(Frame::Pong { id: 4 }).unwrap();
    // Control frames have their reserve, and no more.
    let mut control = 2;
    while outbox.push(Frame::Pong { id: 4 }).is_ok() {
        control += 1;
    }
    let pong_bytes = Frame::Pong { id: 4 }.encoded_bytes();
    assert!(control * pong_bytes <= OUTBOX_CONTROL_RESERVE_BYTES + per_frame);
    assert!(outbox.queued_bytes() <= FRAME_BYTES_MAX + OUTBOX_CONTROL_RESERVE_BYTES);
    // Frames leaving make room.
    while outbox.queued_bytes() + per_frame > FRAME_BYTES_MAX {
        outbox.pop().unwrap();
    }
    outbox.push(refused).unwrap();
}

#[test]
fn cancel_drops_a_calls_frames_and_nothing_else() {
    let mut outbox = Outbox::default();
    outbox.push(request(2, Priority::BlockData)).unwrap();
    for n in 0..3 {
        outbox.push(chunk(2, Priority::BlockData, n)).unwrap();
        outbox.push(chunk(4, Priority::BlockData, n)).unwrap();
    }
    outbox.push(Frame::Credit { id: 2, bytes: 10 }).unwrap();
    outbox.push(Frame::Ping { id: 2 }).unwrap();
    let before = outbox.queued_bytes();
    let freed = outbox.cancel(2);
    let expected = request(2, Priority::BlockData).encoded_bytes()
        + 3 * chunk(2, Priority::BlockData, 0).encoded_bytes()
        + Frame::Credit { id: 2, bytes: 10 }.encoded_bytes();
    assert_eq!(freed, expected);
    assert_eq!(outbox.queued_bytes(), before - freed);
    outbox.push(Frame::Cancel { id: 2 }).unwrap();
    let left: Vec<(Kind, u64)> = drain(&mut outbox)
        .iter()
        .map(|f| (f.kind(), f.id()))
        .collect();
    assert_eq!(
        left,
        [
            (Kind::Ping, 2),
            (Kind::Cancel, 2),
            (Kind::StreamChunk, 4),
            (Kind::StreamChunk, 4),
            (Kind::StreamChunk, 4)
        ]
    );
    assert_eq!(outbox.cancel(2), 0, "nothing left to cancel");
    assert_eq!(outbox.queued_bytes(), 0);
}

#[test]
fn encode_into_batches_frames_for_one_write() {
    let mut outbox = Outbox::default();
    for id in 1..=10 {
        outbox.push(Frame::Ping { id }).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(
        outbox.encode_into(&mut out, 30),
        3,
        "stops once past the target"
    );
    assert_eq!(out.len(), 3 * HEADER);
    assert_eq!(outbox.encode_into(&mut out, usize::MAX), 7);
    let mut decoder = crate::rpc::frame::Decoder::new();
    assert_eq!(decoder.push(&out), out.len());
    for id in 1..=10 {
        assert_eq!(decoder.next_frame(), Ok(Some(Frame::Ping { id })));
    }
}

const HEADER: usize = crate::rpc::frame::HEADER_BYTES;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever is pushed and cancelled: the byte count matches the frames inside, it
    /// never passes the bound, each call's frames leave in their order, and no frame
    /// leaves before one of a higher priority that was queued with it.
    #[test]
    fn the_outbox_keeps_its_books_and_its_orders(
        ops in prop::collection::vec((0u8..10, 1u64..6, 0usize..4), 1..120),
    ) {
        let mut outbox = Outbox::new(FRAME_BYTES_MAX);
        let mut sequence = 0u8;
        let mut popped = Vec::new();
        for (op, id, priority) in ops {
            match op {
                0..=5 => {
                    sequence = sequence.wrapping_add(1);
                    let frame = Frame::StreamChunk {
                        id,
                        priority: Priority::ALL[priority],
                        payload: vec![sequence; 1 + 1000 * usize::from(op)],
                    };
                    let _ = outbox.push(frame);
                }
                6 | 7 => popped.extend(outbox.pop()),
                8 => { outbox.cancel(id); }
                _ => { let _ = outbox.push(Frame::Ping { id }); }
            }
            prop_assert!(outbox.queued_bytes() <= FRAME_BYTES_MAX + OUTBOX_CONTROL_RESERVE_BYTES);
        }
        let rest = drain(&mut outbox);
        prop_assert_eq!(outbox.queued_bytes(), 0);
        prop_assert_eq!(outbox.queued_frames(), 0);
        for window in rest.windows(2) {
            prop_assert!(window[0].priority() <= window[1].priority());
        }
        let mut last: HashMap<(u64, Priority), u8> = HashMap::new();
        for frame in popped.iter().chain(&rest) {
            if let Some(&sequence) = frame.payload().first() {
                let key = (frame.id(), frame.priority());
                let before = last.insert(key, sequence).unwrap_or(0);
                prop_assert!(before < sequence, "frames of one call reordered");
            }
        }
    }
}
