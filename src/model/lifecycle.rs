//! The lifecycle worker: on every shard, a low-priority task that periodically walks the
//! shard's own objects and multipart uploads of each bucket with lifecycle rules, deletes
//! the objects whose expiration has come and aborts the uploads older than their rule
//! allows. It works in small batches, yields between items, and stops with the node.
//!
//! The worker reads the rows its own shard holds, and deletes and aborts through the same
//! owner-side operations as any client (`ops::DataRequest::DeleteObject`, `DeleteUpload`),
//! never writing the store past them. An object is deleted only if its row is still the one
//! found expired (a conditional delete decided in the store's write transaction), so an
//! object rewritten meanwhile survives. Progress is logged per pass and counted in
//! `LifecycleStats`.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use glommio::{Latency, Shares};

use super::ops::{DataError, DataRequest, WriteCondition};
use super::{now_ms, release_blocks, release_dropped, Shard};
use crate::meta::lifecycle::LifecycleConfig;
use crate::meta::types::{BucketRow, VersionId};

/// Shares of the lifecycle task queue (foreground tasks run in the default queue, 1000).
const LIFECYCLE_SHARES: usize = 25;
/// Rows read from the store at once.
const BATCH: usize = 256;
/// How often a sleeping worker looks whether the node is stopping.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What the lifecycle worker of a shard has done since the node started.
#[derive(Default, Debug)]
pub struct LifecycleStats {
    pub passes: Cell<u64>,
    pub objects_scanned: Cell<u64>,
    pub objects_expired: Cell<u64>,
    pub uploads_scanned: Cell<u64>,
    pub uploads_aborted: Cell<u64>,
    /// When the last pass ended (ms since the epoch; 0: none yet).
    pub last_pass_ms: Cell<u64>,
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

/// Starts the worker of this shard in its own low-shares task queue.
pub fn spawn(shard: &Rc<Shard>) {
    let tq = glommio::executor().create_task_queue(
        Shares::Static(LIFECYCLE_SHARES),
        Latency::NotImportant,
        "lifecycle",
    );
    match glommio::spawn_local_into(run(Rc::downgrade(shard)), tq) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => {
            tracing::error!(
                shard = shard.id,
                "could not start the lifecycle worker: {e}"
            );
        }
    }
}

async fn run(shard: Weak<Shard>) {
    loop {
        let Some((interval, life)) = shard.upgrade().map(|s| {
            let interval = Duration::from_secs(s.config.lifecycle_scan_interval_s);
            (interval, std::sync::Arc::clone(&s.life))
        }) else {
            return;
        };
        let wake = Instant::now() + interval;
        while Instant::now() < wake {
            if life.stopping() {
                return;
            }
            glommio::timer::sleep(STOP_POLL.min(wake - Instant::now())).await;
        }
        let Some(s) = shard.upgrade() else { return };
        pass(&s).await;
    }
}

/// Counts a batch of work as a request in flight, so that a graceful stop waits for it.
struct InFlight<'a>(&'a Shard);

impl<'a> InFlight<'a> {
    fn new(shard: &'a Shard) -> Self {
        bump(&shard.requests_in_flight, 1);
        InFlight(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .requests_in_flight
            .set(self.0.requests_in_flight.get() - 1);
    }
}

/// One pass over every bucket with lifecycle rules.
pub async fn pass(shard: &Rc<Shard>) {
    let started = Instant::now();
    let stats = &shard.lifecycle_stats;
    let before = (
        stats.objects_scanned.get(),
        stats.objects_expired.get(),
        stats.uploads_aborted.get(),
    );
    let buckets: Vec<BucketRow> = shard
        .global
        .borrow()
        .buckets()
        .filter(|b| b.lifecycle.is_some())
        .cloned()
        .collect();
    for bucket in &buckets {
        let config = bucket.lifecycle.as_ref().expect("filtered");
        if config.expires_objects() {
            expire_objects(shard, bucket, config).await;
        }
        if config.aborts_uploads() {
            abort_uploads(shard, bucket, config).await;
        }
        if shard.life.stopping() {
            return;
        }
    }
    bump(&stats.passes, 1);
    stats.last_pass_ms.set(now_ms());
    let scanned = stats.objects_scanned.get() - before.0;
    let expired = stats.objects_expired.get() - before.1;
    let aborted = stats.uploads_aborted.get() - before.2;
    let ms = started.elapsed().as_millis() as u64;
    if expired + aborted > 0 {
        tracing::info!(
            shard = shard.id,
            buckets = buckets.len(),
            scanned,
            expired,
            aborted,
            ms,
            "lifecycle pass"
        );
    } else {
        tracing::debug!(
            shard = shard.id,
            buckets = buckets.len(),
            scanned,
            ms,
            "lifecycle pass"
        );
    }
}

/// The prefixes to walk: those of enabled expiration rules, without any that another one
/// already covers.
fn walk_prefixes(config: &LifecycleConfig, expiration: bool) -> Vec<String> {
    let mut prefixes: Vec<String> = config
        .rules
        .iter()
        .filter(|r| {
            r.enabled
                && if expiration {
                    r.expiration.is_some()
                } else {
                    r.abort_incomplete_days.is_some()
                }
        })
        .map(|r| r.prefix.clone())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let all = prefixes.clone();
    prefixes.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q.as_str())));
    prefixes
}

async fn expire_objects(shard: &Rc<Shard>, bucket: &BucketRow, config: &LifecycleConfig) {
    let day_ms = shard.config.lifecycle_day_secs * 1000;
    let stats = &shard.lifecycle_stats;
    for prefix in walk_prefixes(config, true) {
        let mut cursor = String::new();
        loop {
            if shard.life.stopping() {
                return;
            }
            let rows = match shard
                .store
                .list_objects(&bucket.id, &prefix, &cursor, BATCH)
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(
                        shard = shard.id,
                        bucket = %bucket.name,
                        "lifecycle scan failed: {e}",
                    );
                    return;
                }
            };
            let Some(last) = rows.last() else { break };
            cursor = last.key.clone();
            bump(&stats.objects_scanned, rows.len() as u64);
            let now = now_ms();
            let expired: Vec<_> = rows
                .into_iter()
                .filter(|row| config.object_expired(&row.key, row.last_modified_ms, now, day_ms))
                .collect();
            if expired.is_empty() {
                glommio::yield_if_needed().await;
                continue;
            }
            // The batch's conditional deletes are sent together, so they share the store's
            // group commits; then their blocks are released, also together.
            let _in_flight = InFlight::new(shard);
            let deletes = expired.iter().map(|row| {
                shard.call(DataRequest::DeleteObject {
                    bucket: bucket.id,
                    key: row.key.clone(),
                    version: VersionId::random(),
                    stamp: shard.clock.stamp(),
                    condition: Some(WriteCondition::VersionIs(row.version)),
                })
            });
            let mut removed = Vec::new();
            let mut failed = false;
            for outcome in futures::future::join_all(deletes).await {
                match outcome.written() {
                    Ok(written) if written.previous.is_some() => removed.push(written),
                    // Rewritten or deleted meanwhile.
                    Ok(_) | Err(DataError::PreconditionFailed) => {}
                    Err(e) => {
                        tracing::warn!(
                            shard = shard.id,
                            bucket = %bucket.name,
                            "lifecycle delete failed: {e:?}",
                        );
                        failed = true;
                    }
                }
            }
            futures::future::join_all(removed.iter().map(|w| release_dropped(shard, w))).await;
            bump(&stats.objects_expired, removed.len() as u64);
            for old in removed.iter().filter_map(|w| w.previous.as_ref()) {
                tracing::debug!(
                    shard = shard.id,
                    bucket = %bucket.name,
                    key = %old.key,
                    "lifecycle: expired",
                );
            }
            if failed {
                return;
            }
            drop(_in_flight);
            glommio::yield_if_needed().await;
        }
    }
}

async fn abort_uploads(shard: &Rc<Shard>, bucket: &BucketRow, config: &LifecycleConfig) {
    let day_ms = shard.config.lifecycle_day_secs * 1000;
    let stats = &shard.lifecycle_stats;
    for prefix in walk_prefixes(config, false) {
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            if shard.life.stopping() {
                return;
            }
            let uploads =
                match shard
                    .store
                    .list_uploads(&bucket.id, &prefix, &key_marker, &id_marker, BATCH)
                {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(
                            shard = shard.id,
                            bucket = %bucket.name,
                            "lifecycle scan failed: {e}",
                        );
                        return;
                    }
                };
            let Some(last) = uploads.last() else { break };
            (key_marker, id_marker) = (last.key.clone(), last.upload_id.clone());
            bump(&stats.uploads_scanned, uploads.len() as u64);
            let now = now_ms();
            let stale: Vec<_> = uploads
                .into_iter()
                .filter(|u| config.upload_stale(&u.key, u.initiated_ms, now, day_ms))
                .collect();
            if stale.is_empty() {
                glommio::yield_if_needed().await;
                continue;
            }
            let _in_flight = InFlight::new(shard);
            let aborts = stale.iter().map(|u| {
                shard.call(DataRequest::DeleteUpload {
                    bucket: bucket.id,
                    key: u.key.clone(),
                    upload_id: u.upload_id.clone(),
                    stamp: shard.clock.stamp(),
                })
            });
            let mut parts = Vec::new();
            let mut failed = false;
            for (upload, outcome) in stale.iter().zip(futures::future::join_all(aborts).await) {
                match outcome.upload_removed() {
                    Ok((Some(_), removed)) => {
                        parts.extend(removed);
                        bump(&stats.uploads_aborted, 1);
                        tracing::debug!(
                            shard = shard.id,
                            bucket = %bucket.name,
                            key = %upload.key,
                            "lifecycle: upload aborted",
                        );
                    }
                    Ok((None, _)) => {} // completed or aborted meanwhile
                    Err(e) => {
                        tracing::warn!(
                            shard = shard.id,
                            bucket = %bucket.name,
                            "lifecycle abort failed: {e:?}",
                        );
                        failed = true;
                    }
                }
            }
            let releases = parts
                .iter()
                .map(|p| release_blocks(shard, p.holder, &p.blocks));
            futures::future::join_all(releases).await;
            if failed {
                return;
            }
            drop(_in_flight);
            glommio::yield_if_needed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::lifecycle::{Expiration, LifecycleRule};

    #[test]
    fn prefixes_covered_by_another_are_walked_once() {
        let rule = |prefix: &str, enabled: bool| LifecycleRule {
            id: prefix.into(),
            enabled,
            prefix: prefix.into(),
            legacy_prefix: false,
            expiration: Some(Expiration::Days(1)),
            abort_incomplete_days: None,
        };
        let config = LifecycleConfig {
            rules: vec![
                rule("logs/2024/", true),
                rule("logs/", true),
                rule("data/", true),
                rule("x/", false),
                rule("logs/", true),
            ],
        };
        assert_eq!(walk_prefixes(&config, true), vec!["data/", "logs/"]);
        assert!(walk_prefixes(&config, false).is_empty());
    }
}
