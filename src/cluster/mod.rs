//! The cluster's decisions as pure state machines: they take messages and time and return
//! messages to send, with no I/O, no executor and no clock of their own, so that the node's
//! driver and a deterministic simulation of many nodes run the same code.
//!
//! - `layout`: which nodes hold each partition (zones, capacities, fewest moves).
//! - `membership`: who is in the cluster and who is up (failure detection, gossip, clock
//!   offsets).
//! - `quorum`: when a write is done and when a read has its answer, across the replica sets
//!   of every active layout version.

pub mod layout;
pub mod membership;
pub mod quorum;
