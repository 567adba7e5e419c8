//! Block reference counts against the rows that hold the references: the pure comparison
//! behind `granary repair refcounts` (sans-IO).
//!
//! A block's count must equal the number of places that name it: one per entry of an
//! object's block list and of an upload part's (a block named twice counts twice). A block
//! is written, or its count raised, before the row naming it commits, so a crash in between
//! leaves the count above the rows: space nothing will ever free (`leaked`). The opposite
//! (`short`) should never happen; where it does, a later release would free a block still
//! in use. A row naming a block no shard indexes is an object that cannot be read
//! (`missing`). Counted while the node is stopped, so no write is half done.

use std::collections::{HashMap, HashSet};

use crate::meta::types::BlockHash;

/// One indexed block, as the repair sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indexed {
    pub hash: BlockHash,
    pub refs: u64,
    pub record_len: u32,
}

/// A block whose count differs from the references held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub hash: BlockHash,
    /// The count stored in the index.
    pub refs: u64,
    /// References the rows hold: the count to set.
    pub held: u64,
    pub record_len: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefReport {
    /// Indexed blocks compared.
    pub blocks: u64,
    /// Count above the references held.
    pub leaked: Vec<Mismatch>,
    /// Count below the references held.
    pub short: Vec<Mismatch>,
    /// Named by rows (this many times), indexed nowhere.
    pub missing: Vec<(BlockHash, u64)>,
}

impl RefReport {
    pub fn consistent(&self) -> bool {
        self.leaked.is_empty() && self.short.is_empty() && self.missing.is_empty()
    }

    /// Segment bytes that GC can take back once the leaked counts are set: the records of
    /// blocks no row names at all.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.leaked
            .iter()
            .filter(|m| m.held == 0)
            .map(|m| u64::from(m.record_len))
            .sum()
    }

    /// The counts to set (leaked and short alike), as (block, count).
    pub fn fixes(&self) -> impl Iterator<Item = (BlockHash, u64)> + '_ {
        self.leaked
            .iter()
            .chain(&self.short)
            .map(|m| (m.hash, m.held))
    }
}

/// Compares the indexed counts with the references `held` by the rows of every shard.
pub fn compare(
    held: &HashMap<BlockHash, u64>,
    indexed: impl IntoIterator<Item = Indexed>,
) -> RefReport {
    let mut report = RefReport::default();
    let mut seen = HashSet::new();
    for b in indexed {
        report.blocks += 1;
        seen.insert(b.hash);
        let want = held.get(&b.hash).copied().unwrap_or(0);
        let m = Mismatch {
            hash: b.hash,
            refs: b.refs,
            held: want,
            record_len: b.record_len,
        };
        match b.refs.cmp(&want) {
            std::cmp::Ordering::Greater => report.leaked.push(m),
            std::cmp::Ordering::Less => report.short.push(m),
            std::cmp::Ordering::Equal => {}
        }
    }
    report.missing = held
        .iter()
        .filter(|(h, _)| !seen.contains(*h))
        .map(|(h, n)| (*h, *n))
        .collect();
    report.missing.sort_by_key(|(h, _)| h.0);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(n: u8) -> BlockHash {
        BlockHash([n; 32])
    }

    fn ix(n: u8, refs: u64) -> Indexed {
        Indexed {
            hash: h(n),
            refs,
            record_len: 4096 * u32::from(n),
        }
    }

    #[test]
    fn sorts_blocks_into_leaked_short_and_missing() {
        let held = HashMap::from([(h(1), 1), (h(2), 2), (h(3), 3), (h(9), 1)]);
        let r = compare(&held, [ix(1, 1), ix(2, 5), ix(3, 1), ix(4, 1), ix(5, 0)]);
        assert_eq!(r.blocks, 5);
        assert_eq!(
            r.leaked
                .iter()
                .map(|m| (m.hash, m.held))
                .collect::<Vec<_>>(),
            [(h(2), 2), (h(4), 0)]
        );
        assert_eq!(
            r.short.iter().map(|m| (m.hash, m.held)).collect::<Vec<_>>(),
            [(h(3), 3)]
        );
        assert_eq!(r.missing, [(h(9), 1)]);
        // Only block 4 is named by nothing: its record comes back.
        assert_eq!(r.reclaimable_bytes(), 4 * 4096);
        assert_eq!(
            r.fixes().collect::<Vec<_>>(),
            [(h(2), 2), (h(4), 0), (h(3), 3)]
        );
        assert!(!r.consistent());
    }

    #[test]
    fn matching_counts_are_consistent() {
        let held = HashMap::from([(h(1), 2)]);
        let r = compare(&held, [ix(1, 2), ix(2, 0)]);
        assert!(r.consistent());
        assert_eq!(r.fixes().count(), 0);
    }

    proptest! {
        /// Whatever the counts, after applying the fixes every indexed block's count equals
        /// the references held, and a second comparison finds nothing but the missing.
        #[test]
        fn fixes_make_counts_match(
            refs in proptest::collection::vec(0u64..4, 1..40),
            held in proptest::collection::vec(0u64..4, 1..50),
        ) {
            let held: HashMap<BlockHash, u64> = held
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (h(i as u8), *n))
                .collect();
            let indexed: Vec<Indexed> =
                refs.iter().enumerate().map(|(i, r)| ix(i as u8, *r)).collect();
            let report = compare(&held, indexed.clone());
            let fixes: HashMap<BlockHash, u64> = report.fixes().collect();
            let fixed: Vec<Indexed> = indexed
                .iter()
                .map(|b| Indexed { refs: fixes.get(&b.hash).copied().unwrap_or(b.refs), ..*b })
                .collect();
            let again = compare(&held, fixed);
            prop_assert!(again.leaked.is_empty() && again.short.is_empty());
            prop_assert_eq!(again.missing, report.missing);
        }
    }
}
