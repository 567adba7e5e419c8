//! A deterministic simulation of a few nodes on a message bus: each node is exactly the
//! state machine a real node runs; the bus delivers actions as events at once, and drops
//! what crosses a partition or reaches a killed node.

use super::*;
use std::collections::{BTreeSet, VecDeque};

const STEP_MS: u64 = 100;

struct Sim {
    nodes: BTreeMap<NodeId, Membership>,
    alive: BTreeSet<NodeId>,
    /// Nodes cut off from every other (their packets dropped, no reset).
    cut: BTreeSet<NodeId>,
    /// Each node's clock minus the true time.
    skew: BTreeMap<NodeId, i64>,
    now: u64,
}

fn addr(id: NodeId) -> String {
    format!("10.0.0.{id}:3901")
}

fn info(id: NodeId) -> PeerInfo {
    PeerInfo {
        id,
        rpc_addr: addr(id),
    }
}

impl Sim {
    /// `n` nodes that know only node 1's address.
    fn new(n: u64) -> Sim {
        let mut sim = Sim {
            nodes: BTreeMap::new(),
            alive: BTreeSet::new(),
            cut: BTreeSet::new(),
            skew: BTreeMap::new(),
            now: 0,
        };
        for id in 1..=n {
            sim.start(id, Vec::new());
        }
        sim
    }

    fn start(&mut self, id: NodeId, known: Vec<PeerInfo>) {
        let m = Membership::new(info(id), known, vec![addr(1)], Timing::default());
        self.nodes.insert(id, m);
        self.alive.insert(id);
    }

    fn linked(&self, a: NodeId, b: NodeId) -> bool {
        self.alive.contains(&a)
            && self.alive.contains(&b)
            && !self.cut.contains(&a)
            && !self.cut.contains(&b)
    }

    fn clock(&self, id: NodeId) -> u64 {
        (self.now as i64 + self.skew.get(&id).copied().unwrap_or(0)) as u64
    }

    /// Kills `id`: every connection to it resets.
    fn kill(&mut self, id: NodeId) {
        self.alive.remove(&id);
        let others: Vec<NodeId> = self.alive.iter().copied().collect();
        let mut events = VecDeque::new();
        for o in others {
            events.push_back((o, Event::Disconnected { id }));
        }
        self.run(events);
    }

    fn run(&mut self, mut events: VecDeque<(NodeId, Event)>) {
        while let Some((at, event)) = events.pop_front() {
            if !self.alive.contains(&at) {
                continue;
            }
            let now = self.clock(at);
            let actions = self.nodes.get_mut(&at).unwrap().handle(now, event);
            for action in actions {
                self.deliver(at, action, &mut events);
            }
        }
    }

    fn deliver(&self, from: NodeId, action: Action, events: &mut VecDeque<(NodeId, Event)>) {
        match action {
            Action::Dial { addr: a } => {
                let to = self.nodes.keys().copied().find(|&id| addr(id) == a);
                match to.filter(|&to| self.linked(from, to)) {
                    Some(to) => {
                        events.push_back((from, Event::Connected { peer: info(to) }));
                        events.push_back((to, Event::Connected { peer: info(from) }));
                    }
                    // A killed node refuses at once; a cut one times out: both fail.
                    None => events.push_back((from, Event::DialFailed { addr: a })),
                }
            }
            Action::Ping { to, sent_ms } => {
                if self.linked(from, to) {
                    let clock_ms = self.clock(to);
                    events.push_back((
                        from,
                        Event::Pong {
                            from: to,
                            sent_ms,
                            clock_ms,
                        },
                    ));
                }
            }
            Action::SendPeers { to, peers } => {
                if self.linked(from, to) {
                    events.push_back((to, Event::Peers { from, peers }));
                }
            }
            Action::Close { id } => {
                events.push_back((from, Event::Disconnected { id }));
                if self.linked(from, id) {
                    events.push_back((id, Event::Disconnected { id: from }));
                }
            }
        }
    }

    fn step(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += STEP_MS;
            let ticks = self.alive.iter().map(|&id| (id, Event::Tick)).collect();
            self.run(ticks);
        }
    }

    /// The peers `id` sees up.
    fn up_at(&self, id: NodeId) -> BTreeSet<NodeId> {
        self.nodes[&id]
            .peers()
            .filter(|p| p.up)
            .map(|p| p.info.id)
            .collect()
    }

    /// Steps until `done` holds (at most `limit_ms`): the time it took.
    fn until(&mut self, limit_ms: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now - start <= limit_ms {
            if done(self) {
                return Some(self.now - start);
            }
            self.step(STEP_MS);
        }
        None
    }
}

fn all_but(n: u64, me: NodeId, gone: &[NodeId]) -> BTreeSet<NodeId> {
    (1..=n).filter(|&i| i != me && !gone.contains(&i)).collect()
}

#[test]
fn nodes_that_know_one_address_find_each_other() {
    let mut sim = Sim::new(6);
    let took = sim.until(10_000, |s| {
        (1..=6).all(|i| s.up_at(i) == all_but(6, i, &[]))
    });
    assert!(
        took.is_some(),
        "{:?}",
        (1..=6).map(|i| sim.up_at(i)).collect::<Vec<_>>()
    );
    assert!(took.unwrap() <= 5_000, "gossip took {took:?} ms");
}

#[test]
fn a_killed_node_is_down_at_once_and_up_again_when_it_comes_back() {
    let mut sim = Sim::new(5);
    sim.step(6_000);
    sim.kill(3);
    for i in [1, 2, 4, 5] {
        assert_eq!(
            sim.up_at(i),
            all_but(5, i, &[3]),
            "node {i} still sees 3 up"
        );
        let p = sim.nodes[&i].peers().find(|p| p.info.id == 3).unwrap();
        assert!(
            !p.up && p.last_seen_ms.is_some(),
            "a node that left stays listed, down"
        );
    }
    // It restarts knowing its peers (kept in its data directory).
    sim.start(3, vec![info(2)]);
    let took = sim.until(3_000, |s| (1..=5).all(|i| s.up_at(i) == all_but(5, i, &[])));
    assert!(took.is_some(), "node 3 not seen up again");
}

#[test]
fn a_silent_node_is_down_within_the_silence_bound_and_back_when_healed() {
    let mut sim = Sim::new(4);
    sim.step(6_000);
    sim.cut.insert(4);
    let bound = Timing::default().silent_down_ms + 1_000;
    let took = sim.until(bound, |s| {
        [1, 2, 3].iter().all(|&i| !s.up_at(i).contains(&4)) && s.up_at(4).is_empty()
    });
    assert!(
        took.is_some(),
        "a silent node must be seen down within {bound} ms"
    );
    assert!(
        took.unwrap() >= 3_000,
        "not before pings had time to fail: {took:?}"
    );
    sim.cut.clear();
    let took = sim.until(3_000, |s| (1..=4).all(|i| s.up_at(i) == all_but(4, i, &[])));
    assert!(took.is_some(), "healed, node 4 must be up again everywhere");
}

#[test]
fn a_node_whose_clock_is_off_knows_it_and_the_others_do_not_blame_themselves() {
    let mut sim = Sim::new(4);
    sim.skew.insert(4, 60_000);
    sim.step(6_000);
    let off = sim.nodes[&4].clock_off_by(500);
    assert!(
        off.is_some_and(|o| (59_000..=61_000).contains(&o)),
        "node 4 is 60 s ahead: {off:?}"
    );
    for i in 1..=3 {
        assert_eq!(sim.nodes[&i].clock_off_by(500), None, "node {i}");
    }
}

#[test]
fn gossip_fanout_grows_with_the_log_of_the_cluster() {
    assert_eq!(gossip_fanout(1), 1);
    assert_eq!(gossip_fanout(3), 2);
    assert_eq!(gossip_fanout(64), 7);
    assert_eq!(gossip_fanout(1000), 10);
}

#[test]
fn a_node_gone_for_good_is_dialed_less_and_less() {
    let mut sim = Sim::new(3);
    sim.step(6_000);
    sim.kill(3);
    let mut dials = 0;
    for _ in 0..600 {
        sim.now += STEP_MS;
        for id in [1, 2] {
            let now = sim.clock(id);
            let actions = sim.nodes.get_mut(&id).unwrap().handle(now, Event::Tick);
            for action in actions {
                if action == (Action::Dial { addr: addr(3) }) {
                    dials += 1;
                    sim.run(VecDeque::from([(id, Event::DialFailed { addr: addr(3) })]));
                } else {
                    let mut events = VecDeque::new();
                    sim.deliver(id, action, &mut events);
                    sim.run(events);
                }
            }
        }
    }
    // 60 s: dials 1, 2, 4, 8, then 10 s apart: about 9 each, not 60.
    assert!(
        dials <= 2 * 10,
        "{dials} dials of a dead node in 60 s by two nodes"
    );
    assert!(dials >= 2 * 4, "it is still dialed now and then: {dials}");
}
