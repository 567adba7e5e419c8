//! Block references against the rows that hold them: the pure comparison behind `granary
//! repair refcounts` (sans-IO).
//!
//! A block's references must be exactly the holders that rows name: each object version's
//! (its own version for a single PUT or a copy, each part's holder for a multipart object)
//! and each upload part's; its count (derived) must equal its references. A block is
//! written, or a reference added, before the row naming it commits, so a crash in between
//! leaves a reference no row explains: space nothing will ever free (`leaked`; also every
//! block found unindexed at recovery, held by `Holder::RECOVERED`). The opposite (`short`)
//! should never happen; where it does, a release of the other holders would free a block
//! still in use. A row naming a block no shard indexes is an object that cannot be read
//! (`missing`). Counted while the node is stopped, so no write is half done.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::meta::types::{BlockHash, Holder};

/// One indexed block, as the repair sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indexed {
    pub hash: BlockHash,
    /// The count stored in the index.
    pub refs: u64,
    /// The holders of its references.
    pub holders: Vec<Holder>,
    pub record_len: u32,
}

/// A block whose references differ from the holders rows name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub hash: BlockHash,
    /// The count stored in the index.
    pub refs: u64,
    /// The holders rows name: the references to set.
    pub held: BTreeSet<Holder>,
    pub record_len: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefReport {
    /// Indexed blocks compared.
    pub blocks: u64,
    /// References (or a count) beyond the holders rows name.
    pub leaked: Vec<Mismatch>,
    /// Holders rows name that hold no reference.
    pub short: Vec<Mismatch>,
    /// Named by rows (by this many holders), indexed nowhere.
    pub missing: Vec<(BlockHash, u64)>,
}

impl RefReport {
    pub fn consistent(&self) -> bool {
        self.leaked.is_empty() && self.short.is_empty() && self.missing.is_empty()
    }

    /// Segment bytes that GC can take back once the leaked references are released: the
    /// records of blocks no row names at all.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.leaked
            .iter()
            .filter(|m| m.held.is_empty())
            .map(|m| u64::from(m.record_len))
            .sum()
    }

    /// The references to set (leaked and short alike), as (block, holders).
    pub fn fixes(&self) -> impl Iterator<Item = (BlockHash, Vec<Holder>)> + '_ {
        self.leaked
            .iter()
            .chain(&self.short)
            .map(|m| (m.hash, m.held.iter().copied().collect()))
    }
}

/// Compares the indexed references with the holders `held` by the rows of every shard.
pub fn compare(
    held: &HashMap<BlockHash, BTreeSet<Holder>>,
    indexed: impl IntoIterator<Item = Indexed>,
) -> RefReport {
    let mut report = RefReport::default();
    let mut seen = HashSet::new();
    let none = BTreeSet::new();
    for b in indexed {
        report.blocks += 1;
        seen.insert(b.hash);
        let want = held.get(&b.hash).unwrap_or(&none);
        let have: BTreeSet<Holder> = b.holders.iter().copied().collect();
        let m = Mismatch {
            hash: b.hash,
            refs: b.refs,
            held: want.clone(),
            record_len: b.record_len,
        };
        if !want.is_subset(&have) {
            report.short.push(m);
        } else if have != *want || b.refs != have.len() as u64 {
            report.leaked.push(m);
        }
    }
    report.missing = held
        .iter()
        .filter(|(h, _)| !seen.contains(*h))
        .map(|(h, n)| (*h, n.len() as u64))
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

    fn holders(ns: &[u8]) -> BTreeSet<Holder> {
        ns.iter().map(|n| Holder([*n; 16])).collect()
    }

    fn ix(n: u8, have: &[u8]) -> Indexed {
        Indexed {
            hash: h(n),
            refs: have.len() as u64,
            holders: holders(have).into_iter().collect(),
            record_len: 4096 * u32::from(n),
        }
    }

    #[test]
    fn sorts_blocks_into_leaked_short_and_missing() {
        let held = HashMap::from([
            (h(1), holders(&[1])),
            (h(2), holders(&[1, 2])),
            (h(3), holders(&[1, 2, 3])),
            (h(9), holders(&[1])),
        ]);
        let recovered = Indexed {
            holders: vec![Holder::RECOVERED],
            ..ix(5, &[])
        };
        let miscounted = Indexed {
            refs: 7,
            ..ix(1, &[1])
        };
        let r = compare(
            &held,
            [
                miscounted,
                ix(2, &[1, 2, 5]),
                ix(3, &[1]),
                ix(4, &[4]),
                recovered,
            ],
        );
        assert_eq!(r.blocks, 5);
        let hashes = |v: &[Mismatch]| v.iter().map(|m| m.hash).collect::<Vec<_>>();
        assert_eq!(hashes(&r.leaked), [h(1), h(2), h(4), h(5)]);
        assert_eq!(hashes(&r.short), [h(3)]);
        assert_eq!(r.missing, [(h(9), 1)]);
        // Blocks 4 and 5 are named by nothing: their records come back.
        assert_eq!(r.reclaimable_bytes(), (4 + 5) * 4096);
        let fixes: Vec<_> = r.fixes().collect();
        assert_eq!(fixes[1], (h(2), holders(&[1, 2]).into_iter().collect()));
        assert!(!r.consistent());
    }

    #[test]
    fn matching_references_are_consistent() {
        let held = HashMap::from([(h(1), holders(&[1, 2]))]);
        let r = compare(&held, [ix(1, &[1, 2])]);
        assert!(r.consistent());
        assert_eq!(r.fixes().count(), 0);
    }

    proptest! {
        /// Whatever the references, after applying the fixes every indexed block holds
        /// exactly the holders rows name, and a second comparison finds nothing but the
        /// missing.
        #[test]
        fn fixes_make_references_match(
            have in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..3), 1..30),
            want in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..3), 1..40),
        ) {
            let held: HashMap<BlockHash, BTreeSet<Holder>> = want
                .iter()
                .enumerate()
                .filter(|(_, w)| !w.is_empty())
                .map(|(i, w)| (h(i as u8), holders(w)))
                .collect();
            let indexed: Vec<Indexed> =
                have.iter().enumerate().map(|(i, hv)| ix(i as u8, hv)).collect();
            let report = compare(&held, indexed.clone());
            let fixes: HashMap<BlockHash, Vec<Holder>> = report.fixes().collect();
            let fixed: Vec<Indexed> = indexed
                .into_iter()
                .map(|b| match fixes.get(&b.hash) {
                    Some(f) => Indexed { refs: f.len() as u64, holders: f.clone(), ..b },
                    None => b,
                })
                .collect();
            let again = compare(&held, fixed);
            prop_assert!(again.leaked.is_empty() && again.short.is_empty());
            prop_assert_eq!(again.missing, report.missing);
        }
    }
}
