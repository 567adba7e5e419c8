//! What a shard counts about the requests it serves (labelled by `s3::op::S3Op::label`),
//! the snapshot it hands to the admin API (`ShardStats`), and the Prometheus text rendering
//! of all shards' snapshots. Each shard counts in its own `Recorder` (no sharing); a scrape
//! asks every shard for a snapshot through the mesh.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::model::tasks::TaskProgress;
use crate::storage::StorageStats;

/// Upper bounds (seconds) of the latency histogram's buckets; the last bucket is +Inf.
pub const LATENCY_BOUNDS_S: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations per bucket (not cumulative): one per bound, then +Inf.
    pub buckets: Vec<u64>,
    pub sum_s: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BOUNDS_S.len() + 1];
        }
        let i = LATENCY_BOUNDS_S
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BOUNDS_S.len());
        self.buckets[i] += 1;
        self.sum_s += seconds;
        self.count += 1;
    }
}

/// One shard's request counters.
#[derive(Default)]
pub struct Recorder {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    bytes_in: u64,
    bytes_out: u64,
    connections_open: u64,
    connections_total: u64,
    /// Connections closed at once because the node serves `--max-connections` already.
    connections_refused: u64,
    /// Requests ended because their body came slower than `--min-body-rate`.
    requests_too_slow: u64,
    /// GETs whose object data could not be read (a block missing or corrupt).
    object_read_errors: u64,
}

impl Recorder {
    pub fn connection_refused(&mut self) {
        self.connections_refused += 1;
    }

    pub fn request_too_slow(&mut self) {
        self.requests_too_slow += 1;
    }

    pub fn object_read_failed(&mut self) {
        self.object_read_errors += 1;
    }

    pub fn request(
        &mut self,
        op: &'static str,
        status: u16,
        took: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        *self.requests.entry((op, status)).or_default() += 1;
        self.latency
            .entry(op)
            .or_default()
            .observe(took.as_secs_f64());
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    pub fn connection_opened(&mut self) {
        self.connections_open += 1;
        self.connections_total += 1;
    }

    pub fn connection_closed(&mut self) {
        self.connections_open = self.connections_open.saturating_sub(1);
    }
}

/// A shard's whole state, as the admin API reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    pub shard: u16,
    pub requests: Vec<RequestCount>,
    pub latency: Vec<OpLatency>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    #[serde(default)]
    pub connections_refused: u64,
    #[serde(default)]
    pub requests_too_slow: u64,
    #[serde(default)]
    pub object_read_errors: u64,
    pub requests_in_flight: u64,
    pub storage: StorageStats,
    pub tasks: Vec<TaskProgress>,
    pub lifecycle: LifecycleFigures,
    #[serde(default)]
    pub md5: Md5Figures,
}

/// How the shard's MD5 lanes were used (`api::md5_lanes`): mean lanes per round is
/// `blocks / rounds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Md5Figures {
    pub rounds: u64,
    pub blocks: u64,
    pub bytes: u64,
}

/// What the lifecycle worker of a shard has done since start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleFigures {
    pub passes: u64,
    pub objects_scanned: u64,
    pub objects_expired: u64,
    pub uploads_scanned: u64,
    pub uploads_aborted: u64,
    /// When the last pass ended (ms since the epoch; 0: none yet).
    pub last_pass_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestCount {
    pub op: String,
    pub status: u16,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpLatency {
    pub op: String,
    pub histogram: Histogram,
}

impl Recorder {
    /// The request part of a snapshot.
    pub fn fill(&self, stats: &mut ShardStats) {
        stats.requests = self
            .requests
            .iter()
            .map(|((op, status), count)| RequestCount {
                op: op.to_string(),
                status: *status,
                count: *count,
            })
            .collect();
        stats.latency = self
            .latency
            .iter()
            .map(|(op, h)| OpLatency {
                op: op.to_string(),
                histogram: h.clone(),
            })
            .collect();
        stats.bytes_in = self.bytes_in;
        stats.bytes_out = self.bytes_out;
        stats.connections_open = self.connections_open;
        stats.connections_total = self.connections_total;
        stats.connections_refused = self.connections_refused;
        stats.requests_too_slow = self.requests_too_slow;
        stats.object_read_errors = self.object_read_errors;
    }
}

/// One metric family: its HELP and TYPE lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The per-shard counters and gauges taken straight from a snapshot.
type Getter = fn(&ShardStats) -> f64;

const SHARD_SERIES: &[(&str, &str, &str, Getter)] = &[
    (
        "granary_received_bytes_total",
        "counter",
        "Request body bytes received",
        |s| s.bytes_in as f64,
    ),
    (
        "granary_sent_bytes_total",
        "counter",
        "Response body bytes sent",
        |s| s.bytes_out as f64,
    ),
    (
        "granary_connections_open",
        "gauge",
        "S3 connections open",
        |s| s.connections_open as f64,
    ),
    (
        "granary_connections_accepted_total",
        "counter",
        "S3 connections accepted",
        |s| s.connections_total as f64,
    ),
    (
        "granary_connections_refused_total",
        "counter",
        "Connections closed at once: the node served --max-connections already",
        |s| s.connections_refused as f64,
    ),
    (
        "granary_requests_too_slow_total",
        "counter",
        "Requests ended because their body came slower than --min-body-rate",
        |s| s.requests_too_slow as f64,
    ),
    (
        "granary_object_read_errors_total",
        "counter",
        "Object reads that found a block missing or corrupt",
        |s| s.object_read_errors as f64,
    ),
    (
        "granary_requests_in_flight",
        "gauge",
        "S3 requests being served",
        |s| s.requests_in_flight as f64,
    ),
    (
        "granary_data_syncs_total",
        "counter",
        "fdatasync calls on segment files",
        |s| s.storage.data_syncs as f64,
    ),
    (
        "granary_data_batches_total",
        "counter",
        "Group commits of block data",
        |s| s.storage.data_batches as f64,
    ),
    (
        "granary_data_batch_blocks_total",
        "counter",
        "Blocks written by group commits (divide by batches for the mean batch size)",
        |s| s.storage.data_batch_blocks as f64,
    ),
    (
        "granary_data_written_bytes_total",
        "counter",
        "Bytes written to segment files",
        |s| s.storage.data_bytes_written as f64,
    ),
    (
        "granary_block_read_bytes_total",
        "counter",
        "Block bytes read for clients (GETs, part copies; a CopyObject reads none)",
        |s| s.storage.read_bytes as f64,
    ),
    (
        "granary_data_sync_seconds_total",
        "counter",
        "Time spent in periodic data fdatasync (under always, the flush is in the write)",
        |s| s.storage.sync_us as f64 / 1e6,
    ),
    (
        "granary_meta_commits_total",
        "counter",
        "LMDB write transactions committed",
        |s| s.storage.meta_commits as f64,
    ),
    (
        "granary_meta_commit_ops_total",
        "counter",
        "Metadata writes committed (divide by commits for the mean batch size)",
        |s| s.storage.meta_commit_ops as f64,
    ),
    (
        "granary_meta_commit_seconds_total",
        "counter",
        "Time spent in LMDB commits",
        |s| s.storage.commit_us as f64 / 1e6,
    ),
    (
        "granary_pending_blocks",
        "gauge",
        "Acknowledged blocks waiting for their index commit",
        |s| s.storage.pending_blocks as f64,
    ),
    ("granary_blocks", "gauge", "Blocks in the index", |s| {
        s.storage.blocks as f64
    }),
    ("granary_segments", "gauge", "Segment files", |s| {
        s.storage.segments as f64
    }),
    (
        "granary_segment_live_bytes",
        "gauge",
        "Segment bytes of live blocks",
        |s| s.storage.live_bytes as f64,
    ),
    (
        "granary_segment_dead_bytes",
        "gauge",
        "Segment bytes no block points at (compaction reclaims them)",
        |s| s.storage.dead_bytes as f64,
    ),
    (
        "granary_lmdb_bytes",
        "gauge",
        "Size of the LMDB environment on disk",
        |s| s.storage.lmdb_bytes as f64,
    ),
    (
        "granary_bad_blocks",
        "gauge",
        "Blocks marked corrupt",
        |s| s.storage.bad_blocks as f64,
    ),
    (
        "granary_scrub_checked_blocks_total",
        "counter",
        "Blocks the scrub read and verified",
        |s| s.storage.scrubbed_blocks as f64,
    ),
    (
        "granary_scrub_passes_total",
        "counter",
        "Scrub passes completed",
        |s| s.storage.scrub_passes as f64,
    ),
    (
        "granary_scrub_pass_checked_blocks",
        "gauge",
        "Blocks checked so far in the current scrub pass",
        |s| s.storage.scrub_pass_checked as f64,
    ),
    (
        "granary_scrub_errors_total",
        "counter",
        "Corrupt blocks found by the scrub",
        |s| s.storage.scrub_bad_found as f64,
    ),
    (
        "granary_gc_dropped_blocks_total",
        "counter",
        "Blocks deleted by GC",
        |s| s.storage.gc_dropped as f64,
    ),
    (
        "granary_compacted_segments_total",
        "counter",
        "Segments reclaimed by compaction",
        |s| s.storage.compacted_segments as f64,
    ),
    (
        "granary_md5_rounds_total",
        "counter",
        "Passes of the MD5 lanes (upload blocks hashed together, one lane each)",
        |s| s.md5.rounds as f64,
    ),
    (
        "granary_md5_blocks_total",
        "counter",
        "Upload blocks hashed in the MD5 lanes (divided by rounds: mean lanes per pass)",
        |s| s.md5.blocks as f64,
    ),
    (
        "granary_md5_bytes_total",
        "counter",
        "Upload bytes hashed in the MD5 lanes",
        |s| s.md5.bytes as f64,
    ),
    (
        "granary_lifecycle_passes_total",
        "counter",
        "Lifecycle passes completed over the shard's objects and uploads",
        |s| s.lifecycle.passes as f64,
    ),
    (
        "granary_lifecycle_scanned_objects_total",
        "counter",
        "Objects the lifecycle worker looked at",
        |s| s.lifecycle.objects_scanned as f64,
    ),
    (
        "granary_lifecycle_expired_objects_total",
        "counter",
        "Objects deleted by lifecycle expiration rules",
        |s| s.lifecycle.objects_expired as f64,
    ),
    (
        "granary_lifecycle_aborted_uploads_total",
        "counter",
        "Incomplete multipart uploads aborted by lifecycle rules",
        |s| s.lifecycle.uploads_aborted as f64,
    ),
    (
        "granary_lifecycle_last_pass_timestamp_seconds",
        "gauge",
        "When the last lifecycle pass ended (0: none yet)",
        |s| s.lifecycle.last_pass_ms as f64 / 1000.0,
    ),
];

/// All shards' snapshots in the Prometheus text format (version 0.0.4).
pub fn render_prometheus(all: &[ShardStats]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    {
        let name = "granary_requests_total";
        let mut f = Family::new(
            &mut out,
            name,
            "counter",
            "S3 requests by operation and status",
        );
        for s in all {
            let shard = s.shard.to_string();
            for r in &s.requests {
                let status = r.status.to_string();
                let labels = [
                    ("shard", shard.as_str()),
                    ("op", &r.op),
                    ("status", &status),
                ];
                f.sample(name, &labels, r.count as f64);
            }
        }
    }
    {
        let name = "granary_request_duration_seconds";
        let mut f = Family::new(
            &mut out,
            name,
            "histogram",
            "S3 request latency by operation, head to last byte of the response",
        );
        for s in all {
            let shard = s.shard.to_string();
            for l in &s.latency {
                let mut cumulative = 0;
                for (i, count) in l.histogram.buckets.iter().enumerate() {
                    cumulative += count;
                    let le = LATENCY_BOUNDS_S
                        .get(i)
                        .map_or("+Inf".to_string(), |b| b.to_string());
                    let labels = [("shard", shard.as_str()), ("op", &l.op), ("le", &le)];
                    f.sample(&format!("{name}_bucket"), &labels, cumulative as f64);
                }
                let labels = [("shard", shard.as_str()), ("op", &l.op)];
                f.sample(&format!("{name}_sum"), &labels, l.histogram.sum_s);
                f.sample(&format!("{name}_count"), &labels, l.histogram.count as f64);
            }
        }
    }
    for (name, kind, help, get) in SHARD_SERIES {
        let mut f = Family::new(&mut out, name, kind, help);
        for s in all {
            let shard = s.shard.to_string();
            f.sample(name, &[("shard", &shard)], get(s));
        }
    }
    {
        let name = "granary_task_progress_ratio";
        let mut f = Family::new(
            &mut out,
            name,
            "gauge",
            "Progress of the latest operator task (scrub, gc) per shard, 0 to 1",
        );
        for s in all {
            let shard = s.shard.to_string();
            for t in &s.tasks {
                f.sample(name, &[("shard", &shard), ("task", &t.task)], t.ratio());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let mut r = Recorder::default();
        r.request("GetObject", 200, Duration::from_micros(300), 0, 10);
        r.request("GetObject", 200, Duration::from_millis(3), 0, 10);
        r.request("GetObject", 404, Duration::from_secs(100), 0, 0);
        let mut s = ShardStats::default();
        r.fill(&mut s);
        let text = render_prometheus(&[s]);
        assert!(
            text.contains(
                "granary_requests_total{shard=\"0\",op=\"GetObject\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        let bucket = "granary_request_duration_seconds_bucket{shard=\"0\",op=\"GetObject\"";
        assert!(
            text.contains(&format!("{bucket},le=\"0.0005\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{bucket},le=\"0.005\"}} 2\n")),
            "{text}"
        );
        assert!(text.contains(
            "granary_request_duration_seconds_bucket{shard=\"0\",op=\"GetObject\",le=\"+Inf\"} 3\n"
        ));
        assert!(text
            .contains("granary_request_duration_seconds_count{shard=\"0\",op=\"GetObject\"} 3\n"));
        assert!(text.contains("granary_sent_bytes_total{shard=\"0\"} 20\n"));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
