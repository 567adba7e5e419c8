//! Operator tasks a shard runs on request (admin API `POST /v1/scrub`, `POST /v1/gc`), with
//! their progress kept for `granary status` and the metrics.

use std::rc::Rc;

use super::ops::{DataError, DataResult, Task};
use super::{now_ms, Shard};
use serde::{Deserialize, Serialize};

/// Blocks verified per step of a requested scrub, between yields.
const SCRUB_STEP_BLOCKS: usize = 64;

/// A long operator action on one shard (scrub, GC), as `granary status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    /// `scrub` or `gc`.
    pub task: String,
    /// `running`, `done` or `failed: <why>`.
    pub state: String,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// Units done and (when known) the total: blocks for a scrub, blocks dropped and
    /// segments compacted for GC.
    pub done: u64,
    pub total: Option<u64>,
}

impl TaskProgress {
    /// Fraction done, 0 to 1 (1 once finished).
    pub fn ratio(&self) -> f64 {
        if self.finished_ms.is_some() {
            return 1.0;
        }
        match self.total {
            Some(t) if t > 0 => (self.done as f64 / t as f64).min(1.0),
            _ => 0.0,
        }
    }
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Scrub => "scrub",
            Task::Gc => "gc",
        }
    }
}

impl Shard {
    /// Starts `task` unless one of its kind is running here already.
    pub fn start_task(self: &Rc<Self>, task: Task) -> DataResult<()> {
        let name = task.name();
        {
            let mut tasks = self.tasks.borrow_mut();
            if tasks
                .iter()
                .any(|t| t.task == name && t.finished_ms.is_none())
            {
                return Err(DataError::Busy(format!("a {name} is running already")));
            }
            tasks.retain(|t| t.task != name);
            tasks.push(TaskProgress {
                task: name.into(),
                state: "running".into(),
                started_ms: now_ms(),
                finished_ms: None,
                done: 0,
                total: (task == Task::Scrub).then(|| self.store.stats().blocks),
            });
        }
        let shard = Rc::clone(self);
        glommio::spawn_local(async move {
            let result = match task {
                Task::Scrub => shard.run_scrub().await,
                Task::Gc => shard.run_gc().await,
            };
            let state = match &result {
                Ok(()) => "done".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            tracing::info!(shard = shard.id, task = name, state, "operator task ended");
            shard.update_task(name, |t| {
                t.state = state;
                t.finished_ms = Some(now_ms());
            });
        })
        .detach();
        Ok(())
    }

    fn update_task(&self, name: &str, f: impl FnOnce(&mut TaskProgress)) {
        if let Some(t) = self.tasks.borrow_mut().iter_mut().find(|t| t.task == name) {
            f(t);
        }
    }

    async fn run_scrub(&self) -> Result<(), String> {
        tracing::info!(shard = self.id, "scrub requested: verifying every block");
        loop {
            let step = self
                .store
                .scrub_step(SCRUB_STEP_BLOCKS)
                .await
                .map_err(|e| e.to_string())?;
            self.update_task("scrub", |t| t.done += step.checked);
            if step.wrapped {
                return Ok(());
            }
            glommio::yield_if_needed().await;
        }
    }

    async fn run_gc(&self) -> Result<(), String> {
        let dropped = self.store.gc_now().await.map_err(|e| e.to_string())?;
        self.update_task("gc", |t| t.done += dropped);
        let compacted = self.store.compact_now().await.map_err(|e| e.to_string())?;
        self.update_task("gc", |t| t.done += compacted);
        tracing::info!(shard = self.id, dropped, compacted, "GC requested: done");
        Ok(())
    }
}
