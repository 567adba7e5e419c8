//! The node's side of the admin API: health, status, statistics, metrics and operator
//! tasks. Every shard is asked through the mesh; a shard that does not answer in time makes
//! the node unhealthy.

use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;

use super::tables::{error_json, Answer};
use crate::api::metrics::{self, ShardStats};
use crate::api::Gateway;
use crate::model::now_ms;
use crate::model::ops::{DataRequest, DataResponse, Task};

/// How long a shard may take to answer a health or statistics request.
const SHARD_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Every shard's snapshot, or the shards that did not answer in time.
pub async fn all_stats(shard: &Rc<Gateway>) -> Result<Vec<ShardStats>, Vec<u16>> {
    let mut stats = Vec::with_capacity(usize::from(shard.shards));
    let mut missing = Vec::new();
    for s in 0..shard.shards {
        let answer = glommio::timer::timeout(SHARD_ANSWER_TIMEOUT, async {
            Ok(shard.control.stats(s).await)
        })
        .await;
        match answer {
            Ok(Some(one)) => stats.push(one),
            _ => missing.push(s),
        }
    }
    if missing.is_empty() {
        Ok(stats)
    } else {
        Err(missing)
    }
}

/// `GET /health`: 200 only while every shard answers and the node is not stopping.
pub async fn health(shard: &Rc<Gateway>) -> Answer {
    if shard.life.stopping() {
        return (503, error_json("the node is stopping"));
    }
    match all_stats(shard).await {
        Ok(_) => (
            200,
            serde_json::json!({ "status": "ok", "shards": shard.shards }).to_string(),
        ),
        Err(missing) => (
            503,
            serde_json::json!({ "status": "unavailable", "shards_not_answering": missing })
                .to_string(),
        ),
    }
}

/// `GET /metrics`, in the Prometheus text format.
pub async fn prometheus(shard: &Rc<Gateway>) -> Result<String, Answer> {
    match all_stats(shard).await {
        Ok(stats) => Ok(metrics::render_prometheus(&stats)),
        Err(missing) => Err((
            503,
            error_json(&format!("shards {missing:?} did not answer")),
        )),
    }
}

#[derive(Serialize)]
struct Status<'a> {
    node_id: String,
    version: &'static str,
    uptime_s: u64,
    shards: u16,
    s3_addr: String,
    admin_addr: String,
    tls: bool,
    data_fsync: String,
    metadata_fsync: String,
    buckets: usize,
    keys: usize,
    tasks: Vec<ShardTasks<'a>>,
}

#[derive(Serialize)]
struct ShardTasks<'a> {
    shard: u16,
    tasks: &'a [metrics::TaskProgress],
}

/// `GET /v1/status`.
pub async fn status(shard: &Rc<Gateway>) -> Answer {
    let stats = match all_stats(shard).await {
        Ok(stats) => stats,
        Err(missing) => {
            return (
                503,
                error_json(&format!("shards {missing:?} did not answer")),
            )
        }
    };
    let config = &shard.config;
    let global = shard.global.borrow();
    let status = Status {
        node_id: format!("{:016x}", shard.node_id),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: now_ms().saturating_sub(shard.started_ms) / 1000,
        shards: shard.shards,
        s3_addr: config.s3_addr.to_string(),
        admin_addr: config.admin_addr.to_string(),
        tls: config.tls.is_some(),
        data_fsync: config.data_fsync.to_string(),
        metadata_fsync: config.metadata_fsync.to_string(),
        buckets: global.buckets().count(),
        keys: global.keys().count(),
        tasks: stats
            .iter()
            .map(|s| ShardTasks {
                shard: s.shard,
                tasks: &s.tasks,
            })
            .collect(),
    };
    (
        200,
        serde_json::to_string(&status).expect("status serializes"),
    )
}

/// `GET /v1/stats`: every shard's snapshot.
pub async fn stats(shard: &Rc<Gateway>) -> Answer {
    match all_stats(shard).await {
        Ok(stats) => (200, serde_json::to_string(&stats).expect("stats serialize")),
        Err(missing) => (
            503,
            error_json(&format!("shards {missing:?} did not answer")),
        ),
    }
}

/// `POST /v1/scrub` and `POST /v1/gc`: start the task on every shard.
pub async fn start(shard: &Rc<Gateway>, task: Task) -> Answer {
    let mut busy = Vec::new();
    for s in 0..shard.shards {
        match shard.call_on(s, DataRequest::StartTask { task }).await {
            DataResponse::Done(Ok(())) => {}
            DataResponse::Done(Err(e)) => busy.push(format!("shard {s}: {e:?}")),
            other => busy.push(format!("shard {s}: {other:?}")),
        }
    }
    if busy.is_empty() {
        (
            202,
            serde_json::json!({ "started": task.name(), "shards": shard.shards }).to_string(),
        )
    } else {
        (409, error_json(&busy.join("; ")))
    }
}
