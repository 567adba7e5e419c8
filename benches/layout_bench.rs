//! How long computing a layout takes, and how balanced it is, at sizes the cluster will
//! reach: `cargo bench --bench layout_bench` (release build; a benchmark, not a test).
//!
//! For each size: the first assignment, then one node added and one removed from it. It
//! prints the time of each, the replicas moved beside the least a change needs (every
//! replica a node must gain), and the balance: the worst node's distance from its best
//! share, in replicas and as a fraction of that share. The target of the scale issue:
//! 1,000 nodes of mixed capacities in 10 zones, 16,384 partitions, RF 3, under 2 s, every
//! node within 10 % (or one partition) of its best share.
//!
//! Flags: `--sizes NODES:PARTITIONS,...` (default 64:256,256:4096,1000:16384), `--rf N`
//! (default 3), `--zones N` (default 10).

use std::collections::BTreeMap;
use std::time::Instant;

use granary::cluster::layout::{assign, shares_of, Assignment, NodeId, Role};

/// Capacities from 1 to 10 units, zones in turn: deterministic.
fn cluster(nodes: u64, zones: u64) -> BTreeMap<NodeId, Role> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..nodes)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let role = Role {
                zone: format!("zone-{}", i % zones),
                capacity: (1 + x % 10) * 1_000_000_000_000,
            };
            (1 + i * 2, role)
        })
        .collect()
}

/// The worst node's distance from its best share, in replicas; and the largest distance
/// as a fraction of the share among nodes more than one replica off (0 when none is).
fn balance(a: &Assignment, roles: &BTreeMap<NodeId, Role>) -> (u64, f64) {
    let best = shares_of(roles, a.rf, a.replicas.len());
    let counts = a.counts();
    let ids = roles
        .iter()
        .filter(|(_, r)| r.capacity > 0)
        .map(|(id, _)| id);
    let (mut off_max, mut fraction_max) = (0u64, 0.0f64);
    for (i, id) in ids.enumerate() {
        let off = (counts.get(id).copied().unwrap_or(0) as u64).abs_diff(best[i]);
        off_max = off_max.max(off);
        if off > 1 {
            fraction_max = fraction_max.max(off as f64 / best[i].max(1) as f64);
        }
    }
    (off_max, fraction_max)
}

fn least_moves(prev: &Assignment, roles: &BTreeMap<NodeId, Role>) -> u64 {
    let best = shares_of(roles, prev.rf, prev.replicas.len());
    let held = prev.counts();
    let ids = roles
        .iter()
        .filter(|(_, r)| r.capacity > 0)
        .map(|(id, _)| id);
    ids.enumerate()
        .map(|(i, id)| best[i].saturating_sub(held.get(id).copied().unwrap_or(0) as u64))
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let sizes = flag("--sizes").unwrap_or_else(|| "64:256,256:4096,1000:16384".into());
    let rf: usize = flag("--rf").map_or(3, |v| v.parse().expect("--rf N"));
    let zones: u64 = flag("--zones").map_or(10, |v| v.parse().expect("--zones N"));
    println!(
        "| nodes | partitions | step | seconds | moved | least | worst node off its best share \
         (replicas; % where more than one) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for size in sizes.split(',') {
        let (n, p) = size.split_once(':').expect("--sizes NODES:PARTITIONS,...");
        let (n, p): (u64, usize) = (n.parse().unwrap(), p.parse().unwrap());
        let roles = cluster(n, zones);
        let row = |step: &str, secs: f64, a: &Assignment, r, moved: String, least: String| {
            let (off, fraction) = balance(a, r);
            println!(
                "| {n} | {p} | {step} | {secs:.3} | {moved} | {least} | {off} replicas, {:.1} % |",
                fraction * 100.0
            );
        };
        let t = Instant::now();
        let first = assign(&roles, rf, p, None).expect("a layout");
        row(
            "first",
            t.elapsed().as_secs_f64(),
            &first,
            &roles,
            "-".into(),
            "-".into(),
        );

        let mut grown = roles.clone();
        grown.insert(
            0,
            Role {
                zone: "zone-0".into(),
                capacity: 5_000_000_000_000,
            },
        );
        let t = Instant::now();
        let added = assign(&grown, rf, p, Some(&first)).expect("a layout");
        let secs = t.elapsed().as_secs_f64();
        let (moved, least) = (added.moves_from(&first), least_moves(&first, &grown));
        row(
            "one added",
            secs,
            &added,
            &grown,
            moved.to_string(),
            least.to_string(),
        );

        let mut shrunk = roles.clone();
        let gone = *roles.keys().nth(roles.len() / 2).unwrap();
        shrunk.remove(&gone);
        let t = Instant::now();
        let removed = assign(&shrunk, rf, p, Some(&first)).expect("a layout");
        let secs = t.elapsed().as_secs_f64();
        let (moved, least) = (removed.moves_from(&first), least_moves(&first, &shrunk));
        row(
            "one removed",
            secs,
            &removed,
            &shrunk,
            moved.to_string(),
            least.to_string(),
        );
    }
}
