use super::*;
use proptest::prelude::*;

#[test]
fn quorums_follow_the_consistency_mode() {
    let q = |mode: Consistency, rf| {
        let q = mode.quorums(rf);
        (q.read, q.write)
    };
    assert_eq!(q(Consistency::Consistent, 1), (1, 1));
    assert_eq!(q(Consistency::Consistent, 2), (1, 2));
    assert_eq!(q(Consistency::Consistent, 3), (2, 2));
    assert_eq!(q(Consistency::Consistent, 5), (3, 3));
    assert_eq!(q(Consistency::Degraded, 3), (1, 2));
    assert_eq!(q(Consistency::Dangerous, 3), (1, 1));
    for rf in 1..10 {
        let c = Consistency::Consistent.quorums(rf);
        assert!(
            c.read + c.write > rf,
            "reads must meet the last write at rf {rf}"
        );
    }
    assert_eq!("degraded".parse(), Ok(Consistency::Degraded));
    assert!("strong".parse::<Consistency>().is_err());
}

#[test]
fn a_write_is_done_at_its_quorum_and_later_replies_change_nothing() {
    let (mut call, to) = WriteCall::start(vec![vec![1, 2, 3]], 2, 1000);
    assert_eq!(to, vec![1, 2, 3]);
    assert_eq!(call.reply(Reply { from: 2, ok: true }), Outcome::Pending);
    assert_eq!(
        call.reply(Reply { from: 2, ok: true }),
        Outcome::Pending,
        "counted once"
    );
    assert_eq!(
        call.reply(Reply { from: 9, ok: true }),
        Outcome::Pending,
        "not asked"
    );
    assert_eq!(call.reply(Reply { from: 3, ok: true }), Outcome::Reached);
    assert_eq!(call.reply(Reply { from: 1, ok: false }), Outcome::Reached);
    assert_eq!(call.tick(5000), Outcome::Reached);
}

#[test]
fn a_write_fails_as_soon_as_its_quorum_is_out_of_reach() {
    let (mut call, _) = WriteCall::start(vec![vec![1, 2, 3]], 2, 1000);
    assert_eq!(call.reply(Reply { from: 1, ok: true }), Outcome::Pending);
    assert_eq!(call.reply(Reply { from: 2, ok: false }), Outcome::Pending);
    assert_eq!(
        call.reply(Reply { from: 3, ok: false }),
        Outcome::Failed {
            acks: vec![1],
            reason: FailReason::TooFewReplicas
        }
    );
    let (mut slow, _) = WriteCall::start(vec![vec![1, 2, 3]], 2, 1000);
    slow.reply(Reply { from: 1, ok: true });
    assert_eq!(slow.tick(999), Outcome::Pending);
    assert!(matches!(
        slow.tick(1000),
        Outcome::Failed {
            reason: FailReason::Deadline,
            ..
        }
    ));
    assert!(matches!(
        slow.reply(Reply { from: 2, ok: true }),
        Outcome::Failed { .. }
    ));
}

#[test]
fn during_a_layout_change_a_write_needs_the_quorum_of_every_version() {
    // Old set {1,2,3}, new set {3,4,5}: node 3 is asked once and counts in both.
    let (mut call, to) = WriteCall::start(vec![vec![1, 2, 3], vec![3, 4, 5]], 2, 1000);
    assert_eq!(to, vec![1, 2, 3, 4, 5]);
    assert_eq!(call.reply(Reply { from: 1, ok: true }), Outcome::Pending);
    assert_eq!(call.reply(Reply { from: 2, ok: true }), Outcome::Pending);
    assert_eq!(call.reply(Reply { from: 3, ok: true }), Outcome::Pending);
    assert_eq!(call.reply(Reply { from: 5, ok: true }), Outcome::Reached);
}

#[test]
fn a_read_asks_its_quorum_first_and_one_more_per_failure_or_hedge() {
    let (mut call, ask) = ReadCall::start(vec![7, 8, 9], 2, (0, 100, 1000));
    assert_eq!(ask, vec![7, 8]);
    let step = call.reply(Reply { from: 8, ok: false });
    assert_eq!(step.ask, vec![9]);
    assert_eq!(step.outcome, Outcome::Pending);
    assert_eq!(
        call.reply(Reply { from: 7, ok: true }).outcome,
        Outcome::Pending
    );
    assert_eq!(
        call.reply(Reply { from: 9, ok: true }).outcome,
        Outcome::Reached
    );

    let (mut slow, ask) = ReadCall::start(vec![1, 2, 3], 1, (0, 100, 1000));
    assert_eq!(ask, vec![1]);
    assert_eq!(slow.next_tick_ms(), 100);
    assert_eq!(slow.tick(50).ask, Vec::<i32>::new());
    assert_eq!(
        slow.tick(100).ask,
        vec![2],
        "no answer in time: hedge to the next"
    );
    assert_eq!(slow.next_tick_ms(), 200);
    assert_eq!(
        slow.reply(Reply { from: 2, ok: true }).outcome,
        Outcome::Reached
    );
    assert_eq!(
        slow.tick(200).ask,
        Vec::<i32>::new(),
        "done: no more hedges"
    );
}

#[test]
fn a_read_fails_when_the_replicas_left_cannot_answer_enough() {
    let (mut call, _) = ReadCall::start(vec![1, 2, 3], 2, (0, 100, 1000));
    call.reply(Reply { from: 1, ok: false });
    let step = call.reply(Reply { from: 2, ok: false });
    assert!(matches!(
        step.outcome,
        Outcome::Failed {
            reason: FailReason::TooFewReplicas,
            ..
        }
    ));
    assert!(step.ask.is_empty(), "{step:?}");
}

/// A random schedule of replies and ticks for a write.
fn schedule() -> impl Strategy<Value = Vec<(u8, bool, u16)>> {
    prop::collection::vec((0u8..7, any::<bool>(), 0u16..300), 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the order of replies, a write is reached exactly when every set holds
    /// `need` acknowledgements before the deadline, and a decision never changes.
    #[test]
    fn a_write_decides_once_and_only_on_a_quorum_of_every_set(
        sets in prop::collection::vec(prop::collection::btree_set(0u8..7, 1..5), 1..3),
        need in 1usize..4,
        events in schedule(),
    ) {
        let sets: Vec<Vec<u8>> = sets.into_iter().map(|s| s.into_iter().collect()).collect();
        let (mut call, to) = WriteCall::start(sets.clone(), need, 1000);
        let asked: BTreeSet<u8> = sets.iter().flatten().copied().collect();
        prop_assert_eq!(to.len(), asked.len());
        let mut now = 0u64;
        let mut first: Option<(Outcome<u8>, BTreeSet<u8>, bool)> = None;
        let mut acks = BTreeSet::new();
        let mut failed = BTreeSet::new();
        for (from, ok, dt) in events {
            now += u64::from(dt);
            let outcome = if now >= 1000 {
                call.tick(now)
            } else {
                if asked.contains(&from) && !acks.contains(&from) && !failed.contains(&from) {
                    if ok { acks.insert(from); } else { failed.insert(from); }
                }
                call.reply(Reply { from, ok })
            };
            match &first {
                Some((decided, ..)) => prop_assert_eq!(&outcome, decided),
                None if outcome != Outcome::Pending => {
                    first = Some((outcome, acks.clone(), now >= 1000));
                }
                None => {}
            }
        }
        if let Some((Outcome::Reached, acks_then, _)) = &first {
            for set in &sets {
                let n = set.iter().filter(|n| acks_then.contains(n)).count();
                prop_assert!(n >= need.min(set.len()));
            }
        }
        if first.is_none() {
            for set in &sets {
                let n = set.iter().filter(|n| acks.contains(n)).count();
                let possible = set.iter().filter(|n| !failed.contains(n)).count();
                prop_assert!(n < need.min(set.len()) || sets.len() > 1);
                prop_assert!(possible >= need.min(set.len()));
            }
        }
    }

    /// A read never asks a replica twice, never asks beyond its order, and is reached
    /// exactly when `need` distinct replicas answered.
    #[test]
    fn a_read_asks_each_replica_at_most_once(
        n in 1u8..6,
        need in 1usize..4,
        events in schedule(),
    ) {
        let order: Vec<u8> = (0..n).collect();
        let (mut call, first) = ReadCall::start(order.clone(), need, (0, 50, 1000));
        let mut asked: Vec<u8> = first;
        let mut answered = BTreeSet::new();
        let mut now = 0;
        for (from, ok, dt) in events {
            now += u64::from(dt);
            let step = if dt % 2 == 0 {
                call.tick(now)
            } else {
                let was_asked = asked.contains(&from);
                let step = call.reply(Reply { from, ok });
                if was_asked && ok && step.outcome == Outcome::Reached {
                    answered.insert(from);
                }
                step
            };
            asked.extend(step.ask);
            let unique: BTreeSet<u8> = asked.iter().copied().collect();
            prop_assert_eq!(unique.len(), asked.len());
            prop_assert!(asked.iter().all(|a| order.contains(a)));
            if step.outcome == Outcome::Reached {
                prop_assert!(call.answers().count() >= need.min(order.len()));
            }
        }
    }
}
