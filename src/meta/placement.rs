//! Which shard of a node holds each partition: data, recorded in the data directory
//! (`storage::placement`), not arithmetic on the shard count. Started with another shard
//! count, a node computes a new placement that moves as few partitions as it can, and
//! moves them before it serves. The same map becomes partition → (node, shard) in a
//! cluster. Pure: computed from values, no I/O.

use serde::{Deserialize, Serialize};

use super::types::Partition;
use crate::constants::PARTITION_COUNT;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Shards of the node.
    pub shards: u16,
    /// The shard of each partition, by partition number.
    pub owner: Vec<u16>,
}

/// A partition going from one shard to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub partition: Partition,
    pub from: u16,
    pub to: u16,
}

impl Placement {
    /// The placement of a new node: partition `p` on shard `p % shards` (what every
    /// release before placement was recorded computed, so a data directory of one of them
    /// is described by it at the shard count it ran with).
    pub fn striped(shards: u16) -> Placement {
        assert!(shards > 0, "a node has at least one shard");
        Placement {
            shards,
            owner: (0..PARTITION_COUNT)
                .map(|p| (p % u32::from(shards)) as u16)
                .collect(),
        }
    }

    pub fn shard_of(&self, p: Partition) -> u16 {
        self.owner[usize::from(p.0)]
    }

    pub fn partitions_of(&self, shard: u16) -> Vec<Partition> {
        (0..self.owner.len())
            .filter(|&p| self.owner[p] == shard)
            .map(|p| Partition(p as u16))
            .collect()
    }

    /// A placement on `shards` shards with every shard's share within one partition of the
    /// others', moving as few partitions as that allows: a partition stays where it is
    /// unless its shard is gone or holds more than its share.
    pub fn rebalanced(&self, shards: u16) -> Placement {
        assert!(shards > 0, "a node has at least one shard");
        let n = self.owner.len();
        let base = n / usize::from(shards);
        let extra = n % usize::from(shards);
        // The shards that keep one more partition than the others: those holding most now,
        // so that fewer partitions move.
        let mut held = vec![0usize; usize::from(shards)];
        for &o in &self.owner {
            if o < shards {
                held[usize::from(o)] += 1;
            }
        }
        let mut by_load: Vec<u16> = (0..shards).collect();
        by_load.sort_by_key(|&s| (std::cmp::Reverse(held[usize::from(s)]), s));
        let mut target = vec![base; usize::from(shards)];
        for &s in by_load.iter().take(extra) {
            target[usize::from(s)] += 1;
        }
        let mut kept = vec![0usize; usize::from(shards)];
        let mut owner = vec![u16::MAX; n];
        for (p, &o) in self.owner.iter().enumerate() {
            if o < shards && kept[usize::from(o)] < target[usize::from(o)] {
                owner[p] = o;
                kept[usize::from(o)] += 1;
            }
        }
        let mut open: Vec<u16> = (0..shards)
            .filter(|&s| kept[usize::from(s)] < target[usize::from(s)])
            .rev()
            .collect();
        for slot in owner.iter_mut().filter(|o| **o == u16::MAX) {
            let s = *open.last().expect("the targets add up to every partition");
            *slot = s;
            kept[usize::from(s)] += 1;
            if kept[usize::from(s)] == target[usize::from(s)] {
                open.pop();
            }
        }
        Placement { shards, owner }
    }

    /// The partitions whose shard differs in `to`, in partition order.
    pub fn moves(&self, to: &Placement) -> Vec<Move> {
        self.owner
            .iter()
            .zip(&to.owner)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(p, (&from, &to))| Move {
                partition: Partition(p as u16),
                from,
                to,
            })
            .collect()
    }

    /// Whether the placement is one this build can use: a shard for each partition, each
    /// below the shard count.
    pub fn valid(&self) -> bool {
        self.shards > 0
            && self.owner.len() == PARTITION_COUNT as usize
            && self.owner.iter().all(|&o| o < self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shares(p: &Placement) -> Vec<usize> {
        (0..p.shards).map(|s| p.partitions_of(s).len()).collect()
    }

    #[test]
    fn a_new_node_stripes_partitions() {
        let p = Placement::striped(2);
        assert_eq!(p.shard_of(Partition(0)), 0);
        assert_eq!(p.shard_of(Partition(7)), 1);
        assert_eq!(shares(&p), [128, 128]);
        assert!(p.valid());
    }

    proptest! {
        /// Whatever the placement and the new shard count: shares differ by at most one,
        /// every partition has a live shard, and only the partitions that must move do
        /// (those on a shard that is gone, or beyond their shard's share).
        #[test]
        fn rebalancing_is_even_and_moves_the_least(
            from in 1u16..9, to in 1u16..9, steps in 0usize..3,
        ) {
            let mut start = Placement::striped(from);
            for i in 0..steps {
                start = start.rebalanced(((from as usize + i) % 8 + 1) as u16);
            }
            let next = start.rebalanced(to);
            prop_assert!(next.valid());
            let s = shares(&next);
            prop_assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
            // The least that must move: partitions on removed shards, and each remaining
            // shard's partitions beyond the most it may keep.
            let most = (PARTITION_COUNT as usize).div_ceil(to as usize);
            let least: usize = (0..start.shards)
                .map(|sh| {
                    let held = start.partitions_of(sh).len();
                    if sh >= to { held } else { held.saturating_sub(most) }
                })
                .sum();
            let moved = start.moves(&next).len();
            prop_assert!(moved >= least);
            // Shards that stay keep up to their share; those with one extra are chosen
            // among the most loaded, so at most `to` more partitions move than the least.
            prop_assert!(moved <= least + to as usize, "moved {} least {}", moved, least);
            prop_assert_eq!(next.rebalanced(to), next.clone(), "rebalancing again moves nothing");
        }
    }
}
