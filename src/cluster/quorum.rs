//! When a write is done and when a read has its answer: quorum bookkeeping as state
//! machines. They take replies and time as input and return the messages to send and the
//! outcome; they do no I/O and hold no timer, so the node's driver and a deterministic
//! simulation run exactly this code.
//!
//! A call names one or more replica sets (one per active layout version: while a layout
//! change is in progress a write must reach the quorum of every active version's set).
//! A node present in several sets is asked once and counts in each.
//!
//! - A **write** is sent to every replica of every set at once and is done when each set
//!   has `write` acknowledgements. It fails as soon as one set can no longer reach its
//!   quorum (too many refusals or transport errors), or at its deadline.
//! - A **read** is sent to the first `read` replicas of its preference order (the node
//!   itself, then its zone, then the quickest); every failure, and every `hedge_ms`
//!   without enough answers, asks the next replica. It is done at `read` answers, and
//!   fails when the replicas left cannot make up the quorum, or at its deadline.

use std::collections::BTreeSet;

/// The quorums of a replication factor (Garage's meanings of the consistency modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Reads and writes overlap: R + W > RF.
    Consistent,
    /// Reads from one replica (may miss the latest write while a node lags); writes as
    /// consistent.
    Degraded,
    /// One replica for reads and writes: a write may be lost with that one node.
    Dangerous,
}

impl Consistency {
    /// Read and write quorums for `rf` replicas.
    pub fn quorums(self, rf: usize) -> Quorums {
        let rf = rf.max(1);
        let read = rf.div_ceil(2);
        let write = rf + 1 - read;
        match self {
            Consistency::Consistent => Quorums { read, write },
            Consistency::Degraded => Quorums { read: 1, write },
            Consistency::Dangerous => Quorums { read: 1, write: 1 },
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "consistent" => Ok(Consistency::Consistent),
            "degraded" => Ok(Consistency::Degraded),
            "dangerous" => Ok(Consistency::Dangerous),
            other => Err(format!(
                "unknown consistency mode {other:?} (consistent, degraded or dangerous)"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorums {
    pub read: usize,
    pub write: usize,
}

/// Where a call stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<N> {
    /// Not decided: wait for more replies or the next tick.
    Pending,
    /// Every set has its quorum: the call is done (later replies change nothing).
    Reached,
    /// The quorum cannot be reached any more (or the deadline passed): the call failed.
    /// `acks` are the replicas that did answer.
    Failed { acks: Vec<N>, reason: FailReason },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// Too many replicas refused or could not be reached.
    TooFewReplicas,
    /// The deadline passed first.
    Deadline,
}

/// A reply from a replica: it did what was asked (`ok`), or refused it or could not be
/// reached (a transport error is a failed reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<N> {
    pub from: N,
    pub ok: bool,
}

/// The bookkeeping of one write.
#[derive(Clone, Debug)]
pub struct WriteCall<N: Ord + Copy> {
    sets: Vec<Vec<N>>,
    need: usize,
    acks: BTreeSet<N>,
    failed: BTreeSet<N>,
    deadline_ms: u64,
    decided: Option<Outcome<N>>,
}

impl<N: Ord + Copy> WriteCall<N> {
    /// A write to `sets` (each a replica set of one active layout version) that needs
    /// `need` acknowledgements in each, before `deadline_ms`. Returns the call and the
    /// replicas to send it to (each once).
    pub fn start(sets: Vec<Vec<N>>, need: usize, deadline_ms: u64) -> (Self, Vec<N>) {
        let mut to: Vec<N> = Vec::new();
        let mut seen = BTreeSet::new();
        for set in &sets {
            for &n in set {
                if seen.insert(n) {
                    to.push(n);
                }
            }
        }
        let call = WriteCall {
            sets,
            need,
            acks: BTreeSet::new(),
            failed: BTreeSet::new(),
            deadline_ms,
            decided: None,
        };
        (call, to)
    }

    /// Takes a reply in. Replies from a node not asked, and repeated replies, are ignored.
    pub fn reply(&mut self, reply: Reply<N>) -> Outcome<N> {
        if self.decided.is_none()
            && self.sets.iter().any(|s| s.contains(&reply.from))
            && !self.acks.contains(&reply.from)
            && !self.failed.contains(&reply.from)
        {
            if reply.ok {
                self.acks.insert(reply.from);
            } else {
                self.failed.insert(reply.from);
            }
        }
        self.outcome()
    }

    /// Takes the time in: past the deadline an undecided call fails.
    pub fn tick(&mut self, now_ms: u64) -> Outcome<N> {
        if self.decided.is_none() && now_ms >= self.deadline_ms {
            self.decided = Some(Outcome::Failed {
                acks: self.acks.iter().copied().collect(),
                reason: FailReason::Deadline,
            });
        }
        self.outcome()
    }

    /// Replicas that acknowledged so far.
    pub fn acks(&self) -> impl Iterator<Item = &N> {
        self.acks.iter()
    }

    fn outcome(&mut self) -> Outcome<N> {
        if let Some(done) = &self.decided {
            return done.clone();
        }
        let need = self.need;
        let reached = self
            .sets
            .iter()
            .all(|s| s.iter().filter(|n| self.acks.contains(n)).count() >= need.min(s.len()));
        let hopeless = self.sets.iter().any(|s| {
            let possible = s.iter().filter(|n| !self.failed.contains(n)).count();
            possible < need.min(s.len())
        });
        let outcome = if reached {
            Outcome::Reached
        } else if hopeless {
            Outcome::Failed {
                acks: self.acks.iter().copied().collect(),
                reason: FailReason::TooFewReplicas,
            }
        } else {
            return Outcome::Pending;
        };
        self.decided = Some(outcome.clone());
        outcome
    }
}

/// The bookkeeping of one read.
#[derive(Clone, Debug)]
pub struct ReadCall<N: Ord + Copy> {
    /// Replicas in the order they are asked.
    order: Vec<N>,
    need: usize,
    asked: usize,
    answers: BTreeSet<N>,
    failed: BTreeSet<N>,
    hedge_ms: u64,
    next_hedge_ms: u64,
    deadline_ms: u64,
    decided: Option<Outcome<N>>,
}

/// What a read step returns: where it stands, and the replicas to ask now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadStep<N> {
    pub outcome: Outcome<N>,
    pub ask: Vec<N>,
}

impl<N: Ord + Copy> ReadCall<N> {
    /// A read from the replicas of `order` (preferred first) that needs `need` answers.
    /// With no answer in `hedge_ms`, one more replica is asked (and again each `hedge_ms`).
    pub fn start(
        order: Vec<N>,
        need: usize,
        (now_ms, hedge_ms, deadline_ms): (u64, u64, u64),
    ) -> (Self, Vec<N>) {
        let need = need.clamp(1, order.len().max(1));
        let mut call = ReadCall {
            order,
            need,
            asked: 0,
            answers: BTreeSet::new(),
            failed: BTreeSet::new(),
            hedge_ms,
            next_hedge_ms: now_ms.saturating_add(hedge_ms),
            deadline_ms,
            decided: None,
        };
        let ask = call.ask_more(need);
        (call, ask)
    }

    pub fn reply(&mut self, reply: Reply<N>) -> ReadStep<N> {
        let asked = &self.order[..self.asked];
        let mut ask = Vec::new();
        if self.decided.is_none()
            && asked.contains(&reply.from)
            && !self.answers.contains(&reply.from)
            && !self.failed.contains(&reply.from)
        {
            if reply.ok {
                self.answers.insert(reply.from);
            } else {
                self.failed.insert(reply.from);
                ask = self.ask_more(1);
            }
        }
        ReadStep {
            outcome: self.outcome(),
            ask,
        }
    }

    pub fn tick(&mut self, now_ms: u64) -> ReadStep<N> {
        let mut ask = Vec::new();
        if self.decided.is_none() {
            if now_ms >= self.deadline_ms {
                self.decided = Some(Outcome::Failed {
                    acks: self.answers.iter().copied().collect(),
                    reason: FailReason::Deadline,
                });
            } else if now_ms >= self.next_hedge_ms {
                self.next_hedge_ms = now_ms.saturating_add(self.hedge_ms);
                ask = self.ask_more(1);
            }
        }
        ReadStep {
            outcome: self.outcome(),
            ask,
        }
    }

    /// When the driver should tick next (the hedge or the deadline).
    pub fn next_tick_ms(&self) -> u64 {
        if self.asked < self.order.len() {
            self.next_hedge_ms.min(self.deadline_ms)
        } else {
            self.deadline_ms
        }
    }

    pub fn answers(&self) -> impl Iterator<Item = &N> {
        self.answers.iter()
    }

    fn ask_more(&mut self, n: usize) -> Vec<N> {
        let end = (self.asked + n).min(self.order.len());
        let ask = self.order[self.asked..end].to_vec();
        self.asked = end;
        ask
    }

    fn outcome(&mut self) -> Outcome<N> {
        if let Some(done) = &self.decided {
            return done.clone();
        }
        let outcome = if self.answers.len() >= self.need {
            Outcome::Reached
        } else if self.order.len() - self.failed.len() < self.need {
            Outcome::Failed {
                acks: self.answers.iter().copied().collect(),
                reason: FailReason::TooFewReplicas,
            }
        } else {
            return Outcome::Pending;
        };
        self.decided = Some(outcome.clone());
        outcome
    }
}

#[cfg(test)]
mod tests;
