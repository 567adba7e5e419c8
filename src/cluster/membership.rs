//! Who is in the cluster and who is up, as one node sees it: a state machine fed with what
//! the node hears (connections made and lost, pongs, peer lists) and the time, returning
//! what to do (dial, ping, send a peer list, close). The node's RPC driver runs it on its
//! sockets; a simulation runs it on a message bus (see the tests).
//!
//! - **Killed peers** are down at once: their connection closes (the kernel resets it), and
//!   a node whose connection is lost is down until a new handshake succeeds. Redials follow
//!   after `redial_every_ms`, doubling while they fail up to `redial_max_ms` (10 s), so a
//!   node gone for good costs little; a node that restarts dials its peers itself at once,
//!   and after a partition heals the two sides meet within `redial_max_ms`.
//! - **Silent peers** (a partition drops their packets, or the process is stopped) are down
//!   when no pong came for `silent_down_ms`; their connection is closed and redialed.
//! - **Peers are learned** from the bootstrap addresses, from the list kept in the data
//!   directory, and from gossip: every `gossip_every_ms` a node sends what it knows to a
//!   few peers in turn (about log₂ of the cluster), and dials the peers it learns.
//! - **Clocks** are compared on every pong: the offset of a peer's clock is its reading minus
//!   the middle of the round trip. A node whose clock is off the median of its up peers by
//!   more than the bound must not stamp writes (`clock_off_by`).

use std::collections::BTreeMap;

pub use super::layout::NodeId;

/// A node as peers know it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerInfo {
    pub id: NodeId,
    /// What peers dial (`--rpc-public-addr`).
    pub rpc_addr: String,
}

/// The rhythm of failure detection and gossip.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub ping_every_ms: u64,
    pub silent_down_ms: u64,
    pub redial_every_ms: u64,
    pub redial_max_ms: u64,
    pub gossip_every_ms: u64,
}

impl Default for Timing {
    /// A killed node is down at once (its connection resets), a silent one within 5 s.
    fn default() -> Timing {
        Timing {
            ping_every_ms: 1000,
            silent_down_ms: 5000,
            redial_every_ms: 1000,
            redial_max_ms: 10_000,
            gossip_every_ms: 2000,
        }
    }
}

/// What the node heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Time passed (the driver ticks at least every `ping_every_ms / 2`).
    Tick,
    /// A handshake with `peer` succeeded, on a connection either side opened.
    Connected { peer: PeerInfo },
    /// The connection to `id` closed (reset, refused on redial, or closed by us).
    Disconnected { id: NodeId },
    /// Dialing `addr` failed (no node there, or the handshake was refused).
    DialFailed { addr: String },
    /// `from` answered the ping sent at `sent_ms` (our clock), its clock reading `clock_ms`.
    Pong {
        from: NodeId,
        sent_ms: u64,
        clock_ms: u64,
    },
    /// `from` told us the peers it knows.
    Peers { from: NodeId, peers: Vec<PeerInfo> },
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Dial {
        addr: String,
    },
    /// Ping `to`, stamping `sent_ms` (it comes back in the pong).
    Ping {
        to: NodeId,
        sent_ms: u64,
    },
    SendPeers {
        to: NodeId,
        peers: Vec<PeerInfo>,
    },
    Close {
        id: NodeId,
    },
}

/// What a node knows of a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub info: PeerInfo,
    pub connected: bool,
    pub up: bool,
    /// When it was last heard from (a handshake or a pong), our clock.
    pub last_seen_ms: Option<u64>,
    pub rtt_ms: Option<u64>,
    /// Its clock minus ours, from the last pong.
    pub clock_offset_ms: Option<i64>,
    last_ping_ms: Option<u64>,
    last_dial_ms: Option<u64>,
    /// Wait before the next dial: doubles with each dial that does not connect.
    redial_ms: u64,
}

pub struct Membership {
    me: PeerInfo,
    timing: Timing,
    peers: BTreeMap<NodeId, PeerState>,
    /// Addresses to dial until a peer answers from them.
    bootstrap: Vec<(String, Option<u64>)>,
    last_gossip_ms: Option<u64>,
    gossip_turn: usize,
}

impl Membership {
    /// `known`: the peers kept from an earlier run; `bootstrap`: addresses to dial.
    pub fn new(me: PeerInfo, known: Vec<PeerInfo>, bootstrap: Vec<String>, timing: Timing) -> Self {
        let mut m = Membership {
            me,
            timing,
            peers: BTreeMap::new(),
            bootstrap: bootstrap.into_iter().map(|a| (a, None)).collect(),
            last_gossip_ms: None,
            gossip_turn: 0,
        };
        for peer in known {
            m.learn(peer);
        }
        m
    }

    pub fn me(&self) -> &PeerInfo {
        &self.me
    }

    /// Every peer known, up or down, in id order.
    pub fn peers(&self) -> impl Iterator<Item = &PeerState> {
        self.peers.values()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        id == self.me.id || self.peers.get(&id).is_some_and(|p| p.up)
    }

    /// How far this node's clock is off the median of its up peers' clocks, if it is off
    /// by more than `max_ms` (None: within the bound, or no peer to compare with).
    pub fn clock_off_by(&self, max_ms: u64) -> Option<i64> {
        let mut offsets: Vec<i64> = self
            .peers
            .values()
            .filter(|p| p.up)
            .filter_map(|p| p.clock_offset_ms)
            .collect();
        if offsets.is_empty() {
            return None;
        }
        offsets.sort_unstable();
        // Peers' clocks minus ours: ours minus theirs is the opposite.
        let ours = -offsets[offsets.len() / 2];
        (ours.unsigned_abs() > max_ms).then_some(ours)
    }

    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Tick => {}
            Event::Connected { peer } => {
                if peer.id != self.me.id {
                    let id = peer.id;
                    self.bootstrap.retain(|(a, _)| *a != peer.rpc_addr);
                    let state = self.learn(peer);
                    state.connected = true;
                    state.up = true;
                    state.last_seen_ms = Some(now_ms);
                    state.last_ping_ms = None;
                    state.redial_ms = 0;
                    out.push(Action::SendPeers {
                        to: id,
                        peers: self.known(),
                    });
                }
            }
            Event::Disconnected { id } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.connected = false;
                    p.up = false;
                }
            }
            Event::DialFailed { addr } => {
                for p in self.peers.values_mut() {
                    if p.info.rpc_addr == addr && !p.connected {
                        p.up = false;
                    }
                }
            }
            Event::Pong {
                from,
                sent_ms,
                clock_ms,
            } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    let rtt = now_ms.saturating_sub(sent_ms);
                    p.last_seen_ms = Some(now_ms);
                    p.rtt_ms = Some(rtt);
                    p.clock_offset_ms = Some(clock_ms as i64 - (sent_ms + rtt / 2) as i64);
                    p.up = p.connected;
                }
            }
            Event::Peers { peers, .. } => {
                for peer in peers {
                    if peer.id != self.me.id && !self.peers.contains_key(&peer.id) {
                        self.learn(peer);
                    }
                }
            }
        }
        self.tick(now_ms, &mut out);
        out
    }

    fn learn(&mut self, info: PeerInfo) -> &mut PeerState {
        let state = self.peers.entry(info.id).or_insert_with(|| PeerState {
            info: info.clone(),
            connected: false,
            up: false,
            last_seen_ms: None,
            rtt_ms: None,
            clock_offset_ms: None,
            last_ping_ms: None,
            last_dial_ms: None,
            redial_ms: 0,
        });
        state.info.rpc_addr = info.rpc_addr;
        state
    }

    fn known(&self) -> Vec<PeerInfo> {
        std::iter::once(self.me.clone())
            .chain(self.peers.values().map(|p| p.info.clone()))
            .collect()
    }

    /// What time asks for: pings, silent peers closed, redials, gossip.
    fn tick(&mut self, now: u64, out: &mut Vec<Action>) {
        let t = self.timing;
        let due = |last: Option<u64>, every: u64| last.is_none_or(|l| now >= l + every);
        for (&id, p) in self.peers.iter_mut() {
            if p.connected {
                let heard = p.last_seen_ms.unwrap_or(0);
                if now >= heard + t.silent_down_ms {
                    p.up = false;
                    p.connected = false;
                    out.push(Action::Close { id });
                } else if due(p.last_ping_ms, t.ping_every_ms) {
                    p.last_ping_ms = Some(now);
                    out.push(Action::Ping {
                        to: id,
                        sent_ms: now,
                    });
                }
            }
            if !p.connected && due(p.last_dial_ms, p.redial_ms) {
                p.last_dial_ms = Some(now);
                p.redial_ms = (p.redial_ms * 2).clamp(t.redial_every_ms, t.redial_max_ms);
                out.push(Action::Dial {
                    addr: p.info.rpc_addr.clone(),
                });
            }
        }
        // Bootstrap addresses never heard from (a name, not the peer's own address, or a
        // node not up yet): every redial interval while this node knows no one up, then
        // at the slowest redial pace.
        let alone = !self.peers.values().any(|p| p.up);
        let every = if alone {
            t.redial_every_ms
        } else {
            t.redial_max_ms
        };
        for (addr, last) in self.bootstrap.iter_mut() {
            if *addr != self.me.rpc_addr && due(*last, every) {
                *last = Some(now);
                out.push(Action::Dial { addr: addr.clone() });
            }
        }
        if due(self.last_gossip_ms, t.gossip_every_ms) {
            self.last_gossip_ms = Some(now);
            let up: Vec<NodeId> = self
                .peers
                .values()
                .filter(|p| p.up)
                .map(|p| p.info.id)
                .collect();
            if !up.is_empty() {
                let known = self.known();
                for k in 0..gossip_fanout(self.peers.len() + 1).min(up.len()) {
                    let to = up[(self.gossip_turn + k) % up.len()];
                    out.push(Action::SendPeers {
                        to,
                        peers: known.clone(),
                    });
                }
                self.gossip_turn = self.gossip_turn.wrapping_add(1);
            }
        }
    }
}

/// Peers a node gossips to per round in a cluster of `nodes`: about log₂ of it, at least 1.
pub fn gossip_fanout(nodes: usize) -> usize {
    (usize::BITS - nodes.max(1).leading_zeros()) as usize
}

#[cfg(test)]
mod tests;
