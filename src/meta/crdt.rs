//! The laws by which rows merge (`docs/metadata.md`): hybrid logical clock stamps,
//! last-writer-wins registers, and the `Merge` trait every stored row implements. Pure: no
//! I/O, no clock read here (the caller passes the physical time in).
//!
//! A merge is commutative, associative and idempotent (the property tests below and in
//! `meta::types` check each row type), so replicas that saw the same writes in any order,
//! any number of times, hold the same row.

use serde::{Deserialize, Serialize};

/// When a value was written, and by whom: a hybrid logical clock reading. Ordered by
/// physical milliseconds, then a counter of the events of one millisecond, then the node
/// id, so that two stamps of different events never compare equal.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    pub time_ms: u64,
    pub counter: u32,
    pub node: u64,
}

impl Stamp {
    /// The stamp of data written before stamps existed, or by the migration (older than
    /// every stamp a node issues).
    pub const ZERO: Stamp = Stamp {
        time_ms: 0,
        counter: 0,
        node: 0,
    };
}

/// A node's hybrid logical clock: each stamp it issues is above every stamp it issued or
/// observed before, and follows physical time while physical time moves forward. A write
/// therefore needs no read of the current row to be ordered after it (one round trip, where
/// Garage reads first), as long as the clocks of the nodes stay close
/// (`--max-clock-offset`, the cluster issue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hlc {
    node: u64,
    last: Stamp,
}

impl Hlc {
    pub fn new(node: u64) -> Hlc {
        Hlc {
            node,
            last: Stamp {
                node,
                ..Stamp::ZERO
            },
        }
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    /// A new stamp at physical time `now_ms`.
    pub fn stamp(&mut self, now_ms: u64) -> Stamp {
        let next = if now_ms > self.last.time_ms {
            Stamp {
                time_ms: now_ms,
                counter: 0,
                node: self.node,
            }
        } else if self.last.counter < u32::MAX {
            Stamp {
                time_ms: self.last.time_ms,
                counter: self.last.counter + 1,
                node: self.node,
            }
        } else {
            // Four billion events in one millisecond: borrow the next one.
            Stamp {
                time_ms: self.last.time_ms + 1,
                counter: 0,
                node: self.node,
            }
        };
        debug_assert!(next > self.last);
        self.last = next;
        next
    }

    /// Takes note of a stamp seen in a row or message: stamps issued after it are above it.
    pub fn observe(&mut self, seen: Stamp) {
        if (seen.time_ms, seen.counter) > (self.last.time_ms, self.last.counter) {
            self.last = Stamp {
                node: self.node,
                ..seen
            };
        }
    }
}

/// A value that merges commutatively, associatively and idempotently.
pub trait Merge {
    /// `self` becomes the merge of `self` and `other`.
    fn merge(&mut self, other: &Self);
}

/// A last-writer-wins register: the value with the higher stamp. Two writes with one stamp
/// are one write (stamps are unique per event), but should two values ever carry one stamp,
/// the greater encoding wins, so that merging stays commutative.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lww<T> {
    pub stamp: Stamp,
    pub value: T,
}

impl<T> Lww<T> {
    pub fn new(stamp: Stamp, value: T) -> Lww<T> {
        Lww { stamp, value }
    }

    /// Sets the value if `stamp` is newer than the current one.
    pub fn set(&mut self, stamp: Stamp, value: T) {
        if stamp > self.stamp {
            self.stamp = stamp;
            self.value = value;
        }
    }
}

impl<T: Clone + Serialize> Merge for Lww<T> {
    fn merge(&mut self, other: &Self) {
        let take = match other.stamp.cmp(&self.stamp) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => encoded(&other.value) > encoded(&self.value),
        };
        if take {
            *self = other.clone();
        }
    }
}

/// The bytes that break a tie between two values of one stamp.
pub(crate) fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

impl<T: Merge + Clone> Merge for Option<T> {
    fn merge(&mut self, other: &Self) {
        match (self.as_mut(), other) {
            (_, None) => {}
            (None, Some(o)) => *self = Some(o.clone()),
            (Some(s), Some(o)) => s.merge(o),
        }
    }
}

/// A map whose entries merge by key (each entry its own CRDT): keys are never removed, an
/// entry's value says what it holds (a register of `None`, a tombstone).
impl<K: Ord + Clone, V: Merge + Clone> Merge for std::collections::BTreeMap<K, V> {
    fn merge(&mut self, other: &Self) {
        for (k, v) in other {
            match self.get_mut(k) {
                Some(mine) => mine.merge(v),
                None => {
                    self.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod laws {
    //! The three laws, as helpers for the property tests of every row type.
    use super::Merge;
    use std::fmt::Debug;

    pub fn merged<T: Merge + Clone>(a: &T, b: &T) -> T {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    /// Commutative, associative and idempotent on these three values.
    pub fn check<T: Merge + Clone + PartialEq + Debug>(a: &T, b: &T, c: &T) {
        assert_eq!(merged(a, b), merged(b, a), "commutative");
        assert_eq!(
            merged(&merged(a, b), c),
            merged(a, &merged(b, c)),
            "associative"
        );
        assert_eq!(merged(a, a), *a, "idempotent");
        let ab = merged(a, b);
        assert_eq!(merged(&ab, b), ab, "idempotent on a merged value");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn stamp() -> impl Strategy<Value = Stamp> {
        (0u64..4, 0u32..3, 0u64..3).prop_map(|(time_ms, counter, node)| Stamp {
            time_ms,
            counter,
            node,
        })
    }

    proptest! {
        #[test]
        fn lww_registers_merge_lawfully(
            a in (stamp(), 0u8..4), b in (stamp(), 0u8..4), c in (stamp(), 0u8..4),
        ) {
            let r = |(s, v): (Stamp, u8)| Lww::new(s, v);
            laws::check(&r(a), &r(b), &r(c));
        }

        #[test]
        fn maps_of_registers_merge_lawfully(
            a in prop::collection::btree_map(0u8..4, (stamp(), any::<bool>()), 0..4),
            b in prop::collection::btree_map(0u8..4, (stamp(), any::<bool>()), 0..4),
            c in prop::collection::btree_map(0u8..4, (stamp(), any::<bool>()), 0..4),
        ) {
            use std::collections::BTreeMap;
            let m = |m: BTreeMap<u8, (Stamp, bool)>| -> BTreeMap<u8, Lww<bool>> {
                m.into_iter().map(|(k, (s, v))| (k, Lww::new(s, v))).collect()
            };
            laws::check(&m(a), &m(b), &m(c));
        }

        #[test]
        fn a_clock_only_moves_forward(
            steps in prop::collection::vec((0u64..50, prop::option::of(stamp())), 1..40),
        ) {
            let mut hlc = Hlc::new(7);
            let mut last = Stamp::ZERO;
            for (now, seen) in steps {
                if let Some(seen) = seen {
                    hlc.observe(seen);
                    let s = hlc.stamp(now);
                    prop_assert!(s > seen || (s.time_ms, s.counter) > (seen.time_ms, seen.counter));
                    prop_assert!(s > last);
                    last = s;
                } else {
                    let s = hlc.stamp(now);
                    prop_assert!(s > last);
                    prop_assert!(s.time_ms >= now);
                    prop_assert_eq!(s.node, 7);
                    last = s;
                }
            }
        }
    }

    #[test]
    fn a_clock_follows_physical_time() {
        let mut hlc = Hlc::new(1);
        assert_eq!(
            hlc.stamp(100),
            Stamp {
                time_ms: 100,
                counter: 0,
                node: 1
            }
        );
        assert_eq!(hlc.stamp(100).counter, 1);
        assert_eq!(hlc.stamp(90).time_ms, 100, "a clock step back keeps order");
        assert_eq!(hlc.stamp(101).counter, 0);
        hlc.observe(Stamp {
            time_ms: 500,
            counter: 3,
            node: 2,
        });
        let s = hlc.stamp(101);
        assert_eq!((s.time_ms, s.counter, s.node), (500, 4, 1));
    }
}
