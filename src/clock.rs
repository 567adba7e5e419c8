//! Time, as a node reads it: the one place wall-clock time is read, and the hybrid logical
//! clock that stamps rows (`meta::crdt::Hlc`). A node owns one `Clock`, shared by its
//! shards; tests replace the physical time with one they move by hand, so that two nodes in
//! one process, or a simulation, each have a clock of their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::meta::crdt::{Hlc, Stamp};

#[derive(Clone)]
pub struct Clock {
    physical: Physical,
    hlc: Arc<Mutex<Hlc>>,
}

#[derive(Clone)]
enum Physical {
    System,
    /// Milliseconds since the epoch, set by a test.
    Manual(Arc<AtomicU64>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.physical {
            Physical::System => "system",
            Physical::Manual(_) => "manual",
        };
        write!(f, "Clock({kind}, node {:016x})", self.node())
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Clock {
    /// The system clock, stamping as node `node`.
    pub fn system(node: u64) -> Clock {
        Clock {
            physical: Physical::System,
            hlc: Arc::new(Mutex::new(Hlc::new(node))),
        }
    }

    /// A clock whose physical time is `ms`, moved by the caller.
    pub fn manual(node: u64, ms: Arc<AtomicU64>) -> Clock {
        Clock {
            physical: Physical::Manual(ms),
            hlc: Arc::new(Mutex::new(Hlc::new(node))),
        }
    }

    pub fn node(&self) -> u64 {
        self.lock().node()
    }

    /// Physical time, in milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.physical {
            Physical::System => system_ms(),
            Physical::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// A stamp above every stamp this node issued or observed.
    pub fn stamp(&self) -> Stamp {
        let now = self.now_ms();
        self.lock().stamp(now)
    }

    /// Takes note of a stamp seen in a row or message.
    pub fn observe(&self, seen: Stamp) {
        self.lock().observe(seen);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hlc> {
        self.hlc.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told_and_stamps_stay_ordered() {
        let ms = Arc::new(AtomicU64::new(1000));
        let clock = Clock::manual(5, Arc::clone(&ms));
        let a = clock.stamp();
        let b = clock.stamp();
        assert!(b > a && a.time_ms == 1000 && b.time_ms == 1000);
        ms.store(900, Ordering::Relaxed);
        assert!(
            clock.stamp() > b,
            "a clock stepping back keeps stamps ordered"
        );
        ms.store(2000, Ordering::Relaxed);
        assert_eq!(clock.stamp().time_ms, 2000);
        assert_eq!(clock.node(), 5);
        let shared = clock.clone();
        let before = shared.stamp();
        assert!(clock.stamp() > before, "clones share one clock");
    }
}
