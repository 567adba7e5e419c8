//! Which nodes hold each partition: the assignment of a layout, computed from the roles the
//! operator gave (zone and capacity per node), the replication factor and the previous
//! assignment. Pure and deterministic: every node computes the same assignment from the
//! same input.
//!
//! The rules, in order:
//! 1. Each partition has `rf` replicas on distinct nodes.
//! 2. Its replicas are in distinct zones while there are enough zones: a partition spans
//!    `min(rf, zones)` zones.
//! 3. Each node's share of the `partitions × rf` replicas is proportional to its capacity,
//!    as far as rules 1 and 2 allow (a node holds a partition at most once; with as many
//!    zones as replicas, a zone at most once).
//! 4. A change moves as few replicas as it can: replicas stay where they are unless their
//!    node left, lost capacity or the zone rule moves them.
//!
//! How: the best share of every node is computed first (water-filling under the caps of
//! rules 1 and 2, rounded by largest remainder), then the previous assignment is kept where
//! it is valid, empty places are filled by the nodes furthest below their share, and
//! replicas move from nodes above their share to nodes below it, one at a time.

use std::collections::BTreeMap;

/// A node's id (the same as in stamps and `granary status`).
pub type NodeId = u64;

/// What the operator gave a node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Role {
    pub zone: String,
    /// Bytes; a node of capacity 0 holds no data (a gateway).
    pub capacity: u64,
}

/// The replicas of every partition, as node ids.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    pub rf: usize,
    pub replicas: Vec<Vec<NodeId>>,
}

impl Assignment {
    /// Replicas each node holds.
    pub fn counts(&self) -> BTreeMap<NodeId, usize> {
        let mut counts = BTreeMap::new();
        for set in &self.replicas {
            for &n in set {
                *counts.entry(n).or_default() += 1;
            }
        }
        counts
    }

    /// Replicas that are on a node in `self` and were not on it in `prev`.
    pub fn moves_from(&self, prev: &Assignment) -> usize {
        self.replicas
            .iter()
            .zip(&prev.replicas)
            .map(|(now, before)| now.iter().filter(|n| !before.contains(n)).count())
            .sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    NotEnoughNodes { rf: usize, nodes: usize },
    BadPartitionCount(usize),
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::NotEnoughNodes { rf, nodes } => write!(
                f,
                "replication factor {rf} needs at least {rf} nodes with capacity; the layout \
                 has {nodes}"
            ),
            LayoutError::BadPartitionCount(n) => write!(
                f,
                "the partition count must be a power of two from 1 to 65536, not {n}"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

/// The nodes of a computation, by index, in id order.
struct Nodes {
    ids: Vec<NodeId>,
    zone: Vec<usize>,
    capacity: Vec<u64>,
    zones: usize,
}

impl Nodes {
    fn new(roles: &BTreeMap<NodeId, Role>) -> Nodes {
        let mut zone_index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut nodes = Nodes {
            ids: Vec::new(),
            zone: Vec::new(),
            capacity: Vec::new(),
            zones: 0,
        };
        for (&id, role) in roles.iter().filter(|(_, r)| r.capacity > 0) {
            let next = zone_index.len();
            let z = *zone_index.entry(role.zone.as_str()).or_insert(next);
            nodes.ids.push(id);
            nodes.zone.push(z);
            nodes.capacity.push(role.capacity);
        }
        nodes.zones = zone_index.len();
        nodes
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }
}

/// Computes the assignment of `partitions` partitions with `rf` replicas onto the nodes of
/// `roles`, moving as little as possible from `prev`.
pub fn assign(
    roles: &BTreeMap<NodeId, Role>,
    rf: usize,
    partitions: usize,
    prev: Option<&Assignment>,
) -> Result<Assignment, LayoutError> {
    if !partitions.is_power_of_two() || partitions > 65_536 {
        return Err(LayoutError::BadPartitionCount(partitions));
    }
    let nodes = Nodes::new(roles);
    if nodes.ids.len() < rf || rf == 0 {
        return Err(LayoutError::NotEnoughNodes {
            rf,
            nodes: nodes.ids.len(),
        });
    }
    let targets = shares(&nodes, rf, partitions);
    let mut state = State::new(&nodes, rf, partitions, &targets);
    if let Some(prev) = prev.filter(|p| p.replicas.len() == partitions) {
        state.keep(prev);
    }
    state.fill();
    state.balance();
    if let Some(prev) = prev.filter(|p| p.replicas.len() == partitions) {
        state.undo_needless_moves(prev);
    }
    Ok(Assignment {
        rf,
        replicas: state
            .sets
            .iter()
            .map(|set| {
                let mut ids: Vec<NodeId> = set.iter().map(|&i| nodes.ids[i]).collect();
                ids.sort_unstable();
                ids
            })
            .collect(),
    })
}

/// The best share of each node with capacity, in id order: replicas proportional to
/// capacity within the bounds of the rules (see `zone_bounds`); what `granary layout show`
/// can print beside what each node holds.
pub fn shares_of(roles: &BTreeMap<NodeId, Role>, rf: usize, partitions: usize) -> Vec<u64> {
    shares(&Nodes::new(roles), rf, partitions)
}

fn shares(nodes: &Nodes, rf: usize, partitions: usize) -> Vec<u64> {
    let n = nodes.ids.len();
    let p = partitions as f64;
    let (zone_min, zone_max) = zone_bounds(nodes.zones, rf, partitions);
    let (zone_min, zone_max) = (zone_min as f64, zone_max as f64);
    // Water-filling: nodes and zones whose proportional share passes a bound are fixed at
    // it, and what is left is shared again among the others.
    let mut share = vec![0.0f64; n];
    let mut fixed = vec![false; n];
    for _ in 0..=2 * n + 2 {
        let left =
            (partitions * rf) as f64 - (0..n).filter(|&i| fixed[i]).map(|i| share[i]).sum::<f64>();
        let free: Vec<usize> = (0..n).filter(|&i| !fixed[i]).collect();
        let free_cap: f64 = free.iter().map(|&i| nodes.capacity[i] as f64).sum();
        if free.is_empty() || free_cap == 0.0 {
            break;
        }
        for &i in &free {
            share[i] = left * nodes.capacity[i] as f64 / free_cap;
        }
        let mut changed = false;
        for &i in &free {
            if share[i] > p {
                share[i] = p;
                fixed[i] = true;
                changed = true;
            }
        }
        if changed {
            continue; // share again what the capped nodes could not take, then check zones
        }
        for z in 0..nodes.zones {
            let members: Vec<usize> = (0..n).filter(|&i| nodes.zone[i] == z).collect();
            let sum: f64 = members.iter().map(|&i| share[i]).sum();
            let goal = if sum > zone_max + 1e-9 {
                zone_max
            } else if sum < zone_min - 1e-9 {
                zone_min
            } else {
                continue;
            };
            // The zone's share is set: its nodes share it (none above `p`), fixed.
            let weights: Vec<f64> = members.iter().map(|&i| nodes.capacity[i] as f64).collect();
            let within = water_fill(&weights, goal, p);
            for (k, &i) in members.iter().enumerate() {
                share[i] = within[k];
                fixed[i] = true;
            }
            changed = true;
        }
        if !changed {
            break;
        }
    }
    round_shares(
        nodes,
        &share,
        partitions * rf,
        partitions,
        (zone_min as u64, zone_max as u64),
    )
}

/// How many replicas a zone holds at least and at most: with more zones than replicas, a
/// partition has each zone at most once; with as many, exactly once; with fewer, every
/// partition has every zone at least once.
fn zone_bounds(zones: usize, rf: usize, partitions: usize) -> (usize, usize) {
    match zones.cmp(&rf) {
        std::cmp::Ordering::Greater => (0, partitions),
        std::cmp::Ordering::Equal => (partitions, partitions),
        std::cmp::Ordering::Less => (partitions, partitions * (rf - zones + 1)),
    }
}

/// Shares `total` in proportion to `weights`, none above `cap` (what a capped one cannot
/// take goes to the others).
fn water_fill(weights: &[f64], total: f64, cap: f64) -> Vec<f64> {
    let mut out = vec![0.0; weights.len()];
    let mut capped = vec![false; weights.len()];
    loop {
        let left = total
            - out
                .iter()
                .zip(&capped)
                .filter(|(_, &c)| c)
                .map(|(s, _)| s)
                .sum::<f64>();
        let w: f64 = weights
            .iter()
            .zip(&capped)
            .filter(|(_, &c)| !c)
            .map(|(w, _)| w)
            .sum();
        if w == 0.0 {
            return out;
        }
        let mut again = false;
        for k in 0..weights.len() {
            if !capped[k] {
                out[k] = left * weights[k] / w;
                if out[k] > cap {
                    out[k] = cap;
                    capped[k] = true;
                    again = true;
                }
            }
        }
        if !again {
            return out;
        }
    }
}

/// Rounds shares to whole replicas summing to `total` (largest remainder, ties to the
/// lower id), keeping every node at most `partitions` and every zone within `zone`
/// (first the zones below their least, then everyone by remainder, then anyone with room).
fn round_shares(
    nodes: &Nodes,
    share: &[f64],
    total: usize,
    partitions: usize,
    (zone_min, zone_max): (u64, u64),
) -> Vec<u64> {
    let n = share.len();
    let mut out: Vec<u64> = share.iter().map(|s| s.floor() as u64).collect();
    let mut zone_sum = vec![0u64; nodes.zones];
    for i in 0..n {
        zone_sum[nodes.zone[i]] += out[i];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (share[a] - share[a].floor(), share[b] - share[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut missing = total as u64 - out.iter().sum::<u64>().min(total as u64);
    for pass in 0..3 {
        for &i in &order {
            if missing == 0 {
                break;
            }
            let z = nodes.zone[i];
            let room = out[i] < partitions as u64 && zone_sum[z] < zone_max;
            let wants = match pass {
                0 => zone_sum[z] < zone_min && share[i] > out[i] as f64,
                1 => share[i] > out[i] as f64,
                _ => true,
            };
            if room && wants {
                out[i] += 1;
                zone_sum[z] += 1;
                missing -= 1;
            }
        }
    }
    out
}

/// An assignment being built, by node index.
struct State<'a> {
    nodes: &'a Nodes,
    rf: usize,
    /// How many replicas of a partition go to distinct zones.
    spread: usize,
    target: &'a [u64],
    sets: Vec<Vec<usize>>,
    count: Vec<u64>,
    /// The partitions each node holds (kept with `sets` by `place` and `replace`).
    parts: Vec<Vec<usize>>,
}

impl<'a> State<'a> {
    fn new(nodes: &'a Nodes, rf: usize, partitions: usize, target: &'a [u64]) -> State<'a> {
        State {
            nodes,
            rf,
            spread: rf.min(nodes.zones),
            target,
            sets: vec![Vec::with_capacity(rf); partitions],
            count: vec![0; nodes.ids.len()],
            parts: vec![Vec::new(); nodes.ids.len()],
        }
    }

    /// Puts `node` in partition `p`.
    fn place(&mut self, p: usize, node: usize) {
        self.sets[p].push(node);
        self.count[node] += 1;
        self.parts[node].push(p);
    }

    /// Puts `to` in `from`'s place in partition `p`.
    fn replace(&mut self, p: usize, from: usize, to: usize) {
        let at = self.sets[p]
            .iter()
            .position(|&i| i == from)
            .expect("a member");
        self.sets[p][at] = to;
        self.count[from] -= 1;
        self.count[to] += 1;
        let k = self.parts[from]
            .iter()
            .position(|&q| q == p)
            .expect("indexed");
        self.parts[from].swap_remove(k);
        self.parts[to].push(p);
    }

    /// Whether `node` may join `set` (of which `without` is left out) keeping the zone
    /// rule reachable: the set, once full, must span `spread` zones. Allocation-free: it
    /// runs for every (node, partition) pair a change looks at.
    fn may_join(&self, set: &[usize], without: Option<usize>, node: usize) -> bool {
        let zone = &self.nodes.zone;
        let (mut members, mut zones) = (1, 1); // `node` and its zone
        for (k, &i) in set.iter().enumerate() {
            if Some(i) == without {
                continue;
            }
            if i == node {
                return false;
            }
            members += 1;
            let counted = zone[i] == zone[node]
                || set[..k]
                    .iter()
                    .any(|&j| Some(j) != without && zone[j] == zone[i]);
            if !counted {
                zones += 1;
            }
        }
        members <= self.rf && zones + (self.rf - members) >= self.spread
    }

    /// Keeps the previous replicas of nodes still in the layout, as long as the zone rule
    /// holds (a node above its share gives replicas up in `balance`, one move each). Where
    /// the zone rule drops one of a partition's replicas (a zone was added), the one
    /// dropped is of the node furthest above its share, so that the drop is also a move
    /// the balance needs.
    fn keep(&mut self, prev: &Assignment) {
        let members: Vec<Vec<usize>> = prev
            .replicas
            .iter()
            .map(|set| set.iter().filter_map(|&id| self.nodes.index(id)).collect())
            .collect();
        let mut surplus: Vec<i64> = self.target.iter().map(|&t| -(t as i64)).collect();
        for &i in members.iter().flatten() {
            surplus[i] += 1;
        }
        for (p, mut set) in members.into_iter().enumerate() {
            // The least surplus first: the node furthest above its share is left out.
            set.sort_by_key(|&i| (surplus[i], i));
            for i in set {
                if self.sets[p].len() < self.rf && self.may_join(&self.sets[p], None, i) {
                    self.place(p, i);
                } else {
                    surplus[i] -= 1;
                }
            }
        }
    }

    /// Fills every empty place. Partitions missing one replica (a node left) are matched
    /// to nodes below their share as a whole (augmenting paths: a place taken early can be
    /// handed on), so that each place costs one move; the rest take the eligible node
    /// furthest below its share (by deficit, then id: deterministic).
    fn fill(&mut self) {
        self.match_single_places();
        for p in 0..self.sets.len() {
            while self.sets[p].len() < self.rf {
                let best = (0..self.nodes.ids.len())
                    .filter(|&i| self.may_join(&self.sets[p], None, i))
                    .max_by_key(|&i| {
                        (self.target[i] as i64 - self.count[i] as i64, usize::MAX - i)
                    });
                let Some(i) = best else {
                    break;
                };
                self.place(p, i);
            }
        }
    }

    /// Matches the partitions that miss exactly one replica with nodes below their share.
    fn match_single_places(&mut self) {
        let n = self.nodes.ids.len();
        let places: Vec<usize> = (0..self.sets.len())
            .filter(|&p| self.sets[p].len() + 1 == self.rf)
            .collect();
        let eligible: Vec<Vec<usize>> = places
            .iter()
            .map(|&p| {
                (0..n)
                    .filter(|&i| self.may_join(&self.sets[p], None, i))
                    .collect()
            })
            .collect();
        let mut room: Vec<u64> = (0..n)
            .map(|i| self.target[i].saturating_sub(self.count[i]))
            .collect();
        // taken[i]: the places (indices into `places`) node i was matched to.
        let mut taken: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut matched: Vec<Option<usize>> = vec![None; places.len()];
        for place in 0..places.len() {
            let mut seen = vec![false; n];
            augment(
                place,
                &eligible,
                &mut room,
                (&mut taken, &mut matched),
                &mut seen,
            );
        }
        for (place, node) in matched.into_iter().enumerate() {
            if let Some(i) = node {
                self.place(places[place], i);
            }
        }
    }

    /// Moves replicas from nodes above their share to nodes below it: directly where a
    /// partition allows it, else along a chain of moves (over → a → b → under, each a
    /// valid move in some partition; the nodes between keep their counts).
    fn balance(&mut self) {
        let n = self.nodes.ids.len();
        loop {
            let mut moved = false;
            for under in 0..n {
                if self.count[under] < self.target[under] {
                    moved |= self.direct_moves_to(under);
                }
            }
            for over in 0..n {
                while self.count[over] > self.target[over] && self.move_along_chain(over) {
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Cancels pairs of moves that undo each other's effect on the counts: `x` took `y`'s
    /// place in one partition and `y` took `x`'s in another. Putting both back keeps every
    /// count and saves two moves (where the zone rule allows it).
    fn undo_needless_moves(&mut self, prev: &Assignment) {
        let before: Vec<Vec<usize>> = prev
            .replicas
            .iter()
            .map(|set| set.iter().filter_map(|&id| self.nodes.index(id)).collect())
            .collect();
        loop {
            // (newcomer, node it replaced) → partitions where that happened.
            let mut swaps: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
            for (p, set) in self.sets.iter().enumerate() {
                let gone: Vec<usize> = before[p]
                    .iter()
                    .copied()
                    .filter(|i| !set.contains(i))
                    .collect();
                for &x in set.iter().filter(|i| !before[p].contains(i)) {
                    for &y in &gone {
                        swaps.entry((x, y)).or_default().push(p);
                    }
                }
            }
            let mut undone = false;
            for (&(x, y), ps) in &swaps {
                let Some(qs) = swaps.get(&(y, x)) else {
                    continue;
                };
                if x > y {
                    continue; // each pair once
                }
                'pair: for &p in ps {
                    for &q in qs {
                        if p != q && self.undo_pair((p, x, y), (q, y, x)) {
                            undone = true;
                            break 'pair;
                        }
                    }
                }
                if undone {
                    break;
                }
            }
            if !undone {
                break;
            }
        }
    }

    /// Puts `y` back in place of `x` in `p` and `x` back in place of `y` in `q`, if both
    /// keep the zone rule.
    fn undo_pair(
        &mut self,
        (p, x, y): (usize, usize, usize),
        (q, _, _): (usize, usize, usize),
    ) -> bool {
        let (sp, sq) = (&self.sets[p], &self.sets[q]);
        if !sp.contains(&x) || !sq.contains(&y) {
            return false;
        }
        if !self.may_join(sp, Some(x), y) || !self.may_join(sq, Some(y), x) {
            return false;
        }
        self.replace(p, x, y);
        self.replace(q, y, x);
        true
    }

    /// Moves replicas of nodes above their share straight to `to`, as many as it lacks:
    /// a matching of their surplus to partitions `to` may join (augmenting paths, so that
    /// a partition taken early can be handed on when another node can use no other).
    fn direct_moves_to(&mut self, to: usize) -> bool {
        let n = self.nodes.ids.len();
        let mut surplus: Vec<u64> = (0..n)
            .map(|i| self.count[i].saturating_sub(self.target[i]))
            .collect();
        // The partitions each node above its share could give to `to`.
        let sites: Vec<Vec<usize>> = (0..n)
            .map(|x| {
                if surplus[x] == 0 || x == to {
                    return Vec::new();
                }
                let mut sites: Vec<usize> = self.parts[x]
                    .iter()
                    .copied()
                    .filter(|&p| self.may_join(&self.sets[p], Some(x), to))
                    .collect();
                sites.sort_unstable(); // the same order on every node
                sites
            })
            .collect();
        let mut given: Vec<Option<usize>> = vec![None; self.sets.len()];
        let mut wanted = self.target[to] - self.count[to];
        for (x, surplus) in surplus.iter_mut().enumerate() {
            while wanted > 0 && *surplus > 0 {
                let mut seen = vec![false; self.sets.len()];
                if !give(x, &sites, &mut given, &mut seen) {
                    break;
                }
                *surplus -= 1;
                wanted -= 1;
            }
        }
        let mut moved = false;
        for (p, x) in given.into_iter().enumerate() {
            if let Some(x) = x {
                self.replace(p, x, to);
                moved = true;
            }
        }
        moved
    }

    /// The partition where `from` may give its place to `to`, if any.
    fn move_site(&self, from: usize, to: usize) -> Option<usize> {
        self.parts[from]
            .iter()
            .copied()
            .filter(|&p| self.may_join(&self.sets[p], Some(from), to))
            .min()
    }

    /// Moves one replica of `from` to `to` in some partition where the rules allow it.
    fn move_one(&mut self, from: usize, to: usize) -> bool {
        let Some(p) = self.move_site(from, to) else {
            return false;
        };
        let at = self.sets[p]
            .iter()
            .position(|&i| i == from)
            .expect("member");
        self.sets[p][at] = to;
        self.count[from] -= 1;
        self.count[to] += 1;
        true
    }

    /// Finds the shortest chain of moves from `over` to a node below its share (breadth
    /// first over "may give a place to") and makes them.
    fn move_along_chain(&mut self, over: usize) -> bool {
        let n = self.nodes.ids.len();
        let mut came_from: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        seen[over] = true;
        let mut queue = std::collections::VecDeque::from([over]);
        let mut end = None;
        'search: while let Some(u) = queue.pop_front() {
            for v in 0..n {
                if seen[v] || self.move_site(u, v).is_none() {
                    continue;
                }
                seen[v] = true;
                came_from[v] = Some(u);
                if self.count[v] < self.target[v] {
                    end = Some(v);
                    break 'search;
                }
                queue.push_back(v);
            }
        }
        let Some(mut v) = end else {
            return false;
        };
        let mut chain = Vec::new();
        while let Some(u) = came_from[v] {
            chain.push((u, v));
            v = u;
        }
        // From the end back: each move is checked again as it is made.
        let mut all = true;
        for (u, v) in chain {
            all &= self.move_one(u, v);
        }
        all
    }
}

/// Finds a node for `place`: one with room, or one whose earlier place can move on to
/// another node (depth first, each node visited once).
fn augment(
    place: usize,
    eligible: &[Vec<usize>],
    room: &mut [u64],
    (taken, matched): (&mut [Vec<usize>], &mut [Option<usize>]),
    seen: &mut [bool],
) -> bool {
    for &i in &eligible[place] {
        if seen[i] {
            continue;
        }
        seen[i] = true;
        if room[i] > 0 {
            room[i] -= 1;
            taken[i].push(place);
            matched[place] = Some(i);
            return true;
        }
        for k in 0..taken[i].len() {
            let other = taken[i][k];
            if augment(other, eligible, room, (&mut *taken, &mut *matched), seen) {
                taken[i][k] = place;
                matched[place] = Some(i);
                return true;
            }
        }
    }
    false
}

/// Finds a partition for one more replica of `x` to give: a free one of its sites, or one
/// taken by another node that can give elsewhere instead (depth first).
fn give(x: usize, sites: &[Vec<usize>], given: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &p in &sites[x] {
        if seen[p] {
            continue;
        }
        seen[p] = true;
        match given[p] {
            None => {
                given[p] = Some(x);
                return true;
            }
            Some(other) if other != x => {
                if give(other, sites, given, seen) {
                    given[p] = Some(x);
                    return true;
                }
            }
            Some(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
