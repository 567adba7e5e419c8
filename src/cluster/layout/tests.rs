use super::*;
use proptest::prelude::*;

fn roles(nodes: &[(NodeId, &str, u64)]) -> BTreeMap<NodeId, Role> {
    nodes
        .iter()
        .map(|&(id, zone, capacity)| {
            (
                id,
                Role {
                    zone: zone.to_string(),
                    capacity,
                },
            )
        })
        .collect()
}

/// The rules every assignment keeps: rf distinct nodes of the layout per partition, spread
/// over min(rf, zones) zones.
fn check_rules(a: &Assignment, roles: &BTreeMap<NodeId, Role>, rf: usize) {
    let zones: std::collections::BTreeSet<&str> = roles
        .values()
        .filter(|r| r.capacity > 0)
        .map(|r| r.zone.as_str())
        .collect();
    for (p, set) in a.replicas.iter().enumerate() {
        assert_eq!(set.len(), rf, "partition {p}: {set:?}");
        let mut unique = set.clone();
        unique.dedup();
        assert_eq!(unique.len(), rf, "partition {p} repeats a node: {set:?}");
        let mut set_zones: Vec<&str> = set.iter().map(|n| roles[n].zone.as_str()).collect();
        set_zones.sort_unstable();
        set_zones.dedup();
        assert!(
            set_zones.len() >= rf.min(zones.len()),
            "partition {p} spans {set_zones:?}"
        );
        assert!(set.iter().all(|n| roles[n].capacity > 0));
    }
}

/// Every node within one replica of its best share.
fn check_balance(a: &Assignment, roles: &BTreeMap<NodeId, Role>, rf: usize) {
    let best = shares_of(roles, rf, a.replicas.len());
    let counts = a.counts();
    let ids: Vec<NodeId> = roles
        .iter()
        .filter(|(_, r)| r.capacity > 0)
        .map(|(&id, _)| id)
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let got = counts.get(id).copied().unwrap_or(0) as i64;
        let want = best[i] as i64;
        assert!(
            (got - want).abs() <= 1,
            "node {id} holds {got}, its best share is {want}: {counts:?} vs {best:?}"
        );
    }
}

#[test]
fn three_nodes_in_three_zones_hold_every_partition_once_each() {
    let r = roles(&[(1, "a", 100), (2, "b", 100), (3, "c", 100)]);
    let a = assign(&r, 3, 256, None).unwrap();
    check_rules(&a, &r, 3);
    assert!(a.counts().values().all(|&c| c == 256));
}

#[test]
fn shares_follow_capacity() {
    let r = roles(&[(1, "a", 100), (2, "a", 300), (3, "b", 200), (4, "b", 200)]);
    let a = assign(&r, 2, 256, None).unwrap();
    check_rules(&a, &r, 2);
    check_balance(&a, &r, 2);
    let c = a.counts();
    assert_eq!(c[&1] + c[&2], 256, "zone a holds each partition once");
    assert!(c[&2] > 2 * c[&1], "{c:?}");
}

#[test]
fn a_big_node_in_a_small_zone_count_is_capped_at_one_replica_per_partition() {
    // Zone a has most of the capacity, but with rf 3 and 3 zones it can hold each partition
    // only once: its share is capped and the rest goes to the other zones.
    let r = roles(&[(1, "a", 10_000), (2, "b", 10), (3, "c", 10), (4, "c", 10)]);
    let a = assign(&r, 3, 256, None).unwrap();
    check_rules(&a, &r, 3);
    check_balance(&a, &r, 3);
    assert_eq!(a.counts()[&1], 256);
}

#[test]
fn gateways_and_errors() {
    let r = roles(&[(1, "a", 100), (2, "b", 0)]);
    assert_eq!(
        assign(&r, 2, 256, None),
        Err(LayoutError::NotEnoughNodes { rf: 2, nodes: 1 })
    );
    assert!(assign(&r, 1, 100, None).is_err());
    let a = assign(&r, 1, 256, None).unwrap();
    assert!(a.replicas.iter().all(|s| s == &vec![1]));
}

#[test]
fn the_same_input_gives_the_same_assignment() {
    let r = roles(&[(9, "a", 5), (3, "b", 7), (4, "a", 2), (12, "c", 9)]);
    let a = assign(&r, 2, 1024, None).unwrap();
    let prev = assign(&r, 3, 1024, None).unwrap();
    assert_eq!(a, assign(&r, 2, 1024, None).unwrap());
    assert_eq!(
        assign(&r, 3, 1024, Some(&prev)).unwrap(),
        assign(&r, 3, 1024, Some(&prev)).unwrap()
    );
}

#[test]
fn adding_a_node_to_three_moves_its_share_and_no_more() {
    let three = roles(&[(1, "a", 100), (2, "b", 100), (3, "c", 100)]);
    let before = assign(&three, 3, 256, None).unwrap();
    let four = roles(&[(1, "a", 100), (2, "b", 100), (3, "c", 100), (4, "d", 100)]);
    let after = assign(&four, 3, 256, Some(&before)).unwrap();
    check_rules(&after, &four, 3);
    check_balance(&after, &four, 3);
    assert_eq!(after.moves_from(&before), after.counts()[&4]);
}

/// A random cluster: 1–64 nodes in 1–5 zones, capacities 1–10 (times a unit).
fn cluster() -> impl Strategy<Value = (BTreeMap<NodeId, Role>, usize)> {
    (
        prop::collection::vec((0u8..5, 1u64..=10), 1..=64),
        1usize..=3,
    )
        .prop_map(|(nodes, rf)| {
            let roles: BTreeMap<NodeId, Role> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (zone, cap))| {
                    (
                        1000 + i as u64 * 7,
                        Role {
                            zone: format!("z{zone}"),
                            capacity: cap * 1_000_000_000,
                        },
                    )
                })
                .collect();
            (roles, rf)
        })
        .prop_filter("rf needs rf nodes", |(roles, rf)| roles.len() >= *rf)
}

/// The fewest moves a change from `prev` to a balanced assignment of `roles` can take:
/// every replica on a removed node, and each node's growth past what it held.
fn minimum_moves(prev: &Assignment, roles: &BTreeMap<NodeId, Role>, rf: usize) -> usize {
    let best = shares_of(roles, rf, prev.replicas.len());
    let held = prev.counts();
    let ids: Vec<NodeId> = roles
        .iter()
        .filter(|(_, r)| r.capacity > 0)
        .map(|(&id, _)| id)
        .collect();
    ids.iter()
        .enumerate()
        .map(|(i, id)| (best[i] as usize).saturating_sub(held.get(id).copied().unwrap_or(0)))
        .sum()
}

/// The size of a maximum matching between `left` and `right` items (Kuhn's augmenting
/// paths, written here apart from the layout's own code).
fn max_matching(left: usize, right: usize, edge: &dyn Fn(usize, usize) -> bool) -> usize {
    fn augment(
        l: usize,
        right: usize,
        edge: &dyn Fn(usize, usize) -> bool,
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for r in 0..right {
            if seen[r] || !edge(l, r) {
                continue;
            }
            seen[r] = true;
            if owner[r].is_none_or(|o| augment(o, right, edge, owner, seen)) {
                owner[r] = Some(l);
                return true;
            }
        }
        false
    }
    let mut owner = vec![None; right];
    (0..left)
        .filter(|&l| augment(l, right, edge, &mut owner, &mut vec![false; right]))
        .count()
}

/// Whether the replicas `others` and `v` keep the zone rule.
fn spreads(roles: &BTreeMap<NodeId, Role>, rf: usize, others: &[NodeId], v: NodeId) -> bool {
    let zones: std::collections::BTreeSet<&str> = roles
        .values()
        .filter(|r| r.capacity > 0)
        .map(|r| r.zone.as_str())
        .collect();
    let mut z: Vec<&str> = others.iter().map(|n| roles[n].zone.as_str()).collect();
    z.push(roles[&v].zone.as_str());
    z.sort_unstable();
    z.dedup();
    !others.contains(&v) && z.len() >= rf.min(zones.len())
}

/// One unit per replica each node is short of (`short`) or above (`!short`) its best share.
fn units(prev: &Assignment, roles: &BTreeMap<NodeId, Role>, rf: usize, short: bool) -> Vec<NodeId> {
    let best = shares_of(roles, rf, prev.replicas.len());
    let held = prev.counts();
    roles
        .iter()
        .filter(|(_, r)| r.capacity > 0)
        .enumerate()
        .flat_map(|(i, (id, _))| {
            let (b, h) = (best[i] as usize, held.get(id).copied().unwrap_or(0));
            std::iter::repeat_n(
                *id,
                if short {
                    b.saturating_sub(h)
                } else {
                    h.saturating_sub(b)
                },
            )
        })
        .collect()
}

/// Of the places a removed node `gone` leaves, how many no node below its share can take
/// directly (the zone rule forbids it): each costs at least one move more than
/// `minimum_moves` counts.
fn places_without_direct_taker(
    prev: &Assignment,
    roles: &BTreeMap<NodeId, Role>,
    rf: usize,
    gone: NodeId,
) -> usize {
    let takers = units(prev, roles, rf, true);
    let places: Vec<Vec<NodeId>> = prev
        .replicas
        .iter()
        .filter(|set| set.contains(&gone))
        .map(|set| set.iter().copied().filter(|&n| n != gone).collect())
        .collect();
    let edge = |l: usize, r: usize| spreads(roles, rf, &places[l], takers[r]);
    places.len() - max_matching(places.len(), takers.len(), &edge)
}

/// Of the replicas an added node `new` must receive, how many no node above its share can
/// give it directly (no partition of theirs lets `new` take their place under the zone
/// rule, one replica of `new` per partition): each costs at least one move more.
fn replicas_without_direct_giver(
    prev: &Assignment,
    roles: &BTreeMap<NodeId, Role>,
    rf: usize,
    new: NodeId,
) -> usize {
    let givers = units(prev, roles, rf, false);
    let wanted = units(prev, roles, rf, true)
        .iter()
        .filter(|&&n| n == new)
        .count();
    let sets = &prev.replicas;
    let edge = |l: usize, p: usize| {
        let x = givers[l];
        let others: Vec<NodeId> = sets[p].iter().copied().filter(|&n| n != x).collect();
        sets[p].contains(&x) && spreads(roles, rf, &others, new)
    };
    wanted.saturating_sub(max_matching(givers.len(), sets.len(), &edge))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_cluster_gets_a_valid_balanced_assignment((roles, rf) in cluster()) {
        let a = assign(&roles, rf, 256, None).unwrap();
        check_rules(&a, &roles, rf);
        check_balance(&a, &roles, rf);
    }

    /// One node added or removed moves at most 1.2 times the least it could (plus two
    /// replicas of rounding). The least: every replica a node gains, plus one for each
    /// replica the zone rule keeps from going straight to where it is needed.
    #[test]
    fn one_node_added_or_removed_moves_little(
        (roles, rf) in cluster(),
        zone in 0u8..6,
        cap in 1u64..=10,
        remove in any::<prop::sample::Index>(),
    ) {
        let before = assign(&roles, rf, 256, None).unwrap();
        let mut grown = roles.clone();
        grown.insert(1, Role { zone: format!("z{zone}"), capacity: cap * 1_000_000_000 });
        let after = assign(&grown, rf, 256, Some(&before)).unwrap();
        check_rules(&after, &grown, rf);
        check_balance(&after, &grown, rf);
        let least = minimum_moves(&before, &grown, rf)
            + replicas_without_direct_giver(&before, &grown, rf, 1);
        let moved = after.moves_from(&before);
        let bound = least as f64 * 1.2 + 2.0;
        prop_assert!(moved as f64 <= bound, "added: {moved} moves, least {least}");

        if roles.len() > rf {
            let mut shrunk = roles.clone();
            let gone = *remove.get(&roles.keys().copied().collect::<Vec<_>>());
            shrunk.remove(&gone);
            let after = assign(&shrunk, rf, 256, Some(&before)).unwrap();
            check_rules(&after, &shrunk, rf);
            check_balance(&after, &shrunk, rf);
            let least = minimum_moves(&before, &shrunk, rf)
                + places_without_direct_taker(&before, &shrunk, rf, gone);
            let moved = after.moves_from(&before);
            let bound = least as f64 * 1.2 + 2.0;
            prop_assert!(moved as f64 <= bound, "removed: {moved} moves, least {least}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    /// The scale the cluster aims at: 1,000 nodes of mixed capacities in 10 zones, RF 3. The
    /// partition count is 4,096 here to bound the test's time (the benchmark,
    /// `benches/layout_bench.rs`, runs 16,384).
    #[test]
    fn a_thousand_nodes_balance_and_one_more_moves_its_share(
        caps in prop::collection::vec(1u64..=10, 1000),
        cap in 1u64..=10,
    ) {
        let roles: BTreeMap<NodeId, Role> = caps
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let role = Role { zone: format!("z{}", i % 10), capacity: c << 40 };
                (10 + i as u64, role)
            })
            .collect();
        let before = assign(&roles, 3, 4096, None).unwrap();
        check_rules(&before, &roles, 3);
        check_balance(&before, &roles, 3);
        let mut grown = roles.clone();
        grown.insert(1, Role { zone: "z3".into(), capacity: cap << 40 });
        let after = assign(&grown, 3, 4096, Some(&before)).unwrap();
        check_rules(&after, &grown, 3);
        check_balance(&after, &grown, 3);
        let least = minimum_moves(&before, &grown, 3)
            + replicas_without_direct_giver(&before, &grown, 3, 1);
        let moved = after.moves_from(&before);
        prop_assert!(moved as f64 <= least as f64 * 1.2 + 2.0, "{moved} moves, least {least}");
    }
}
