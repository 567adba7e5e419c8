//! Ratios between two result files of the same run (ours and a peer's), against the
//! raw limits measured in ours, and the targets.

use crate::http::{Checksum, Payload};
use crate::stats::{f, fmt, median, num, print_table};
use anyhow::{Context, Result};
use clap::ValueEnum;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn load(p: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// Objects a million run wrote: its batches times their size.
fn million_objects(workload: &Value) -> u64 {
    workload["batches"].as_u64().unwrap_or(0) * workload["batch_size"].as_u64().unwrap_or(0)
}

/// What `large`'s PUT bodies carried (its workload's signing and checksum), so what a
/// store had to hash in each.
fn payload_of(w: &Value) -> Payload {
    Payload {
        signed: w["signed_payload"].as_bool().unwrap_or(false),
        checksum: w["checksum"]
            .as_str()
            .and_then(|c| Checksum::from_str(c, false).ok())
            .unwrap_or(Checksum::None),
    }
}

/// One core's in-memory rate (GB/s, CPU time) of the hashes `p` requires, one after the
/// other, from a `raw` result.
fn hashing_rate(raw: &Value, p: Payload) -> f64 {
    let mut s_per_gb = 1.0 / f(&raw["md5_gb_per_s"]);
    if p.signed {
        s_per_gb += 1.0 / f(&raw["sha256_gb_per_s"]);
    }
    if p.checksum == Checksum::Crc32 {
        s_per_gb += 1.0 / f(&raw["crc32_gb_per_s"]);
    }
    1.0 / s_per_gb
}

fn row_by<'a>(exp: &'a Value, key: &str, val: &Value) -> Option<&'a Value> {
    exp["rows"].as_array()?.iter().find(|r| &r[key] == val)
}

struct Out {
    rows: Vec<Value>,
    table: Vec<Vec<String>>,
}

impl Out {
    /// A figure of ours beside the peer's (or a limit) and the ratio; `target` is the
    /// ratio to reach, `higher` says whether a higher ratio is better.
    fn add(
        &mut self,
        what: &str,
        ours: f64,
        other: f64,
        other_name: &str,
        ratio: f64,
        target: Option<(f64, bool)>,
    ) {
        let pass = target.map(|(t, higher)| if higher { ratio >= t } else { ratio <= t });
        let target_text = match target {
            Some((t, true)) => format!("≥ {}", fmt(t)),
            Some((t, false)) => format!("≤ {}", fmt(t)),
            None => String::new(),
        };
        let verdict = match pass {
            Some(true) => "met",
            Some(false) if ratio.is_finite() => "missed",
            Some(false) => "n/a",
            None => "",
        };
        self.table.push(vec![
            what.into(),
            fmt(ours),
            format!("{} ({other_name})", fmt(other)),
            fmt(ratio),
            target_text.clone(),
            verdict.into(),
        ]);
        self.rows.push(json!({
            "what": what, "ours": num(ours), "other": num(other), "other_name": other_name,
            "ratio": num(ratio), "target": target_text, "pass": pass,
        }));
    }
}

/// Each figure is the median over the files of one side that hold the experiment (runs
/// of the same workload), so noisy single runs weigh less.
struct Side {
    docs: Vec<Value>,
    label: String,
}

impl Side {
    fn load(paths: &[PathBuf]) -> Result<Side> {
        let docs = paths.iter().map(|p| load(p)).collect::<Result<Vec<_>>>()?;
        let label = docs
            .first()
            .and_then(|d| d["label"].as_str())
            .unwrap_or("?")
            .to_string();
        Ok(Side { docs, label })
    }
    /// Median of `fig` over the runs that have experiment `exp`.
    fn fig(&self, exp: &str, fig: impl Fn(&Value) -> f64) -> f64 {
        let v: Vec<f64> = self
            .docs
            .iter()
            .map(|d| &d["experiments"][exp])
            .filter(|e| !e.is_null() && e.get("error").is_none())
            .map(&fig)
            .collect();
        median(&v)
    }
    /// The first run that has experiment `exp` (for its workload and row names).
    fn first(&self, exp: &str) -> Option<&Value> {
        self.docs
            .iter()
            .map(|d| &d["experiments"][exp])
            .find(|e| !e.is_null() && e.get("error").is_none())
    }
    fn runs(&self, exp: &str) -> usize {
        self.docs
            .iter()
            .filter(|d| !d["experiments"][exp].is_null())
            .count()
    }
}

pub fn compare(ours_p: &[PathBuf], peer_p: &[PathBuf], out_p: Option<&Path>) -> Result<Value> {
    let o = Side::load(ours_p)?;
    let p = Side::load(peer_p)?;
    let peer_name = p.label.clone();
    let mut out = Out {
        rows: Vec::new(),
        table: Vec::new(),
    };
    let has = |e: &str| o.first(e).is_some() && p.first(e).is_some();

    // Large objects.
    if has("large") {
        let w = &o.first("large").unwrap()["workload"];
        let conc = w["concurrency"].as_u64().unwrap_or(16);
        let payload = payload_of(w);
        let hashes = payload.hashes();
        let put = o.fig("large", |e| f(&e["summary"]["put_mb_per_s"]));
        let get = o.fig("large", |e| f(&e["summary"]["get_mb_per_s"]));
        if o.first("raw").is_some() {
            let per_core = o.fig("raw", |e| hashing_rate(e, payload)) * 1e3;
            let cores = o.fig("raw", |e| f(&e["cores"]));
            let limit = per_core * cores;
            let name = format!("{cores} × {} MB/s {hashes}", fmt(per_core));
            // The target's limit, measured: the same PUTs from the same client into a sink
            // that only receives and hashes (`raw`, put_sink), so the client's share of the
            // cores and the TCP copies are in it as they are in the store's figure.
            let sink = o.fig("raw", |e| f(&e["put_sink"]["mb_per_s"]));
            out.add(
                "large PUT MB/s vs a sink that only receives and hashes",
                put,
                sink,
                &format!("sink, {hashes}"),
                put / sink,
                Some((0.9, true)),
            );
            // In-memory hashing on every core, as if the client cost nothing: for reference.
            out.add(
                "large PUT MB/s vs in-memory hashing on all cores",
                put,
                limit,
                &name,
                put / limit,
                None,
            );
            let fio_read = o.fig("raw", |e| {
                e["rows"]
                    .as_array()
                    .and_then(|rows| {
                        rows.iter().find(|r| {
                            r["what"] == "1 MiB seq read" && r["depth"].as_u64() == Some(conc)
                        })
                    })
                    .map(|r| f(&r["mb_per_s"]))
                    .unwrap_or(f64::NAN)
            });
            out.add(
                &format!("large GET MB/s vs fio 1 MiB read QD{conc}"),
                get,
                fio_read,
                "fio",
                get / fio_read,
                Some((0.8, true)),
            );
        }
        // CPU per GB: how much of the server's CPU goes to the hashing S3 demands. This
        // holds whatever else runs on the machine, unlike MB/s.
        let cpu_per_gb = |side: &Side, op: &str| {
            side.fig("large", |e| {
                let rows: Vec<&Value> = e["rows"]
                    .as_array()
                    .map(|r| r.iter().filter(|r| r["op"] == op).collect())
                    .unwrap_or_default();
                let cpu: f64 = rows.iter().map(|r| f(&r["cpu"]["server_cpu_s"])).sum();
                let gb: f64 = rows.iter().map(|r| f(&r["bytes"])).sum::<f64>() / 1e9;
                cpu / gb
            })
        };
        let (so, sp) = (cpu_per_gb(&o, "PUT"), cpu_per_gb(&p, "PUT"));
        if o.first("raw").is_some() && so.is_finite() {
            let hash_s_per_gb = 1.0 / o.fig("raw", |e| hashing_rate(e, payload));
            out.add(
                "large PUT server CPU s/GB vs hashing's (ratio = hash share)",
                so,
                hash_s_per_gb,
                &hashes,
                hash_s_per_gb / so,
                Some((0.9, true)),
            );
        }
        if so.is_finite() && sp.is_finite() {
            out.add(
                "large PUT server CPU s/GB",
                so,
                sp,
                &peer_name,
                so / sp,
                None,
            );
            let (go, gp) = (cpu_per_gb(&o, "GET"), cpu_per_gb(&p, "GET"));
            out.add(
                "large GET server CPU s/GB",
                go,
                gp,
                &peer_name,
                go / gp,
                None,
            );
        }
        let pput = p.fig("large", |e| f(&e["summary"]["put_mb_per_s"]));
        let pget = p.fig("large", |e| f(&e["summary"]["get_mb_per_s"]));
        out.add(
            "large PUT MB/s",
            put,
            pput,
            &peer_name,
            put / pput,
            Some((1.5, true)),
        );
        out.add(
            "large GET MB/s",
            get,
            pget,
            &peer_name,
            get / pget,
            Some((1.5, true)),
        );
    }

    // Small objects, mixed.
    if has("mixed") {
        for op in ["total", "GET", "STAT", "PUT", "DELETE"] {
            let total = op == "total";
            let get = |side: &Side, k: &str| {
                side.fig("mixed", |e| {
                    row_by(e, "op", &json!(op))
                        .map(|r| f(&r[k]))
                        .unwrap_or(f64::NAN)
                })
            };
            let (a, b) = (get(&o, "ops_per_s"), get(&p, "ops_per_s"));
            out.add(
                &format!("mixed {op} ops/s"),
                a,
                b,
                &peer_name,
                a / b,
                total.then_some((3.0, true)),
            );
            let (a, b) = (get(&o, "p99_ms"), get(&p, "p99_ms"));
            out.add(
                &format!("mixed {op} p99 ms"),
                a,
                b,
                &peer_name,
                a / b,
                total.then_some((0.5, false)),
            );
        }
    }

    // A million objects.
    if has("million") {
        let g = |side: &Side, k: &str| side.fig("million", |e| f(&e["summary"][k]));
        // Both stores ran the same workload (run.sh's MILLION_FLAGS): say which keys.
        let w = &o.first("million").unwrap()["workload"];
        let n = million_objects(w);
        let keys = if w["random_keys"].as_bool() == Some(true) {
            ", random keys"
        } else {
            ""
        };
        let (a, b) = (g(&o, "total_s"), g(&p, "total_s"));
        out.add(
            &format!("million ({n} objects{keys}) total s (ratio = peer/ours, speed-up)"),
            a,
            b,
            &peer_name,
            b / a,
            Some((5.0, true)),
        );
        // The target (every batch within 10 % of the first) is about a million objects:
        // it is judged on Granary's full run when there is one, else on this comparison.
        let full = o.first("million_full").is_some();
        let mo = g(&o, "max_over_first");
        out.add(
            "million slowest batch / first batch",
            mo,
            g(&p, "max_over_first"),
            &peer_name,
            mo,
            (!full).then_some((1.1, false)),
        );
        let mm = g(&o, "max_over_median");
        out.add(
            "million slowest batch / median batch",
            mm,
            g(&p, "max_over_median"),
            &peer_name,
            mm,
            None,
        );
        // Growth with the object count, both stores: mean time of the last eighth of the
        // batches over the first eighth's.
        let t = g(&o, "last_eighth_over_first_eighth");
        out.add(
            "million last eighth / first eighth of the batches, time",
            t,
            g(&p, "last_eighth_over_first_eighth"),
            &peer_name,
            t,
            None,
        );
    }
    // Granary alone at the full count: sequential keys, random keys, and the control (the
    // same keys rewritten), each beside the machine's own spread (noise: fixed work, no
    // store) when it ran.
    let noise = o.first("noise").map(|_| {
        (
            o.fig("noise", |e| f(&e["summary"]["max_over_first"])),
            o.fig("noise", |e| f(&e["summary"]["max_over_median"])),
        )
    });
    for (exp, name, target) in [
        ("million_full", "million full", Some((1.1, false))),
        ("million_random", "million full, random keys", None),
        ("million_control", "million control (same keys)", None),
    ] {
        let Some(e) = o.first(exp) else { continue };
        let n = million_objects(&e["workload"]);
        let g = |k: &str| o.fig(exp, |e| f(&e["summary"][k]));
        let (floor_first, floor_median) = noise.unwrap_or((f64::NAN, f64::NAN));
        let (mo, mm) = (g("max_over_first"), g("max_over_median"));
        out.add(
            &format!("{name} ({n} objects) slowest batch / first"),
            mo,
            floor_first,
            "noise: fixed work",
            mo,
            target,
        );
        out.add(
            &format!("{name} slowest batch / median"),
            mm,
            floor_median,
            "noise: fixed work",
            mm,
            None,
        );
        for (k, what) in [
            ("last_eighth_over_first_eighth", "time"),
            ("server_cpu_last_eighth_over_first_eighth", "server CPU"),
        ] {
            let v = g(k);
            out.add(
                &format!("{name} last eighth / first eighth, {what}"),
                v,
                f64::NAN,
                "-",
                v,
                None,
            );
        }
    }

    // One request at a time; on a simulated link also in round trips (latency amplification).
    for exp in ["lat", "lat_netsim"] {
        if !has(exp) {
            continue;
        }
        let rtt_o = o.fig(exp, |e| f(&e["rtt_ms"]));
        let rtt_p = p.fig(exp, |e| f(&e["rtt_ms"]));
        for r in o.first(exp).unwrap()["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let op = r["op"].clone();
            let name = op.as_str().unwrap_or("?").to_string();
            for q in ["p50_ms", "p99_ms"] {
                let g = |side: &Side| {
                    side.fig(exp, |e| {
                        row_by(e, "op", &op).map(|r| f(&r[q])).unwrap_or(f64::NAN)
                    })
                };
                let (a, b) = (g(&o), g(&p));
                out.add(
                    &format!("{exp} {name} {q} (ratio = ours/peer)"),
                    a,
                    b,
                    &peer_name,
                    a / b,
                    None,
                );
                if exp == "lat_netsim" && q == "p50_ms" {
                    out.add(
                        &format!("{exp} {name} p50 in round trips (ours; other = peer's)"),
                        a / rtt_o,
                        b / rtt_p,
                        &peer_name,
                        (a / rtt_o) / (b / rtt_p),
                        None,
                    );
                }
            }
        }
    }

    // Time to first byte.
    for exp in ["ttfb", "ttfb_netsim"] {
        if !has(exp) {
            continue;
        }
        let rtt = o.fig(exp, |e| f(&e["rtt_ms"]));
        for r in o.first(exp).unwrap()["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let size = r["size"].clone();
            let hs = crate::exp::human_size(size.as_u64().unwrap_or(0));
            for q in ["ttfb_p50_ms", "total_p50_ms"] {
                let g = |side: &Side| {
                    side.fig(exp, |e| {
                        row_by(e, "size", &size)
                            .map(|r| f(&r[q]))
                            .unwrap_or(f64::NAN)
                    })
                };
                let (a, b) = (g(&o), g(&p));
                out.add(
                    &format!("{exp} {hs} {q} (ratio = ours/peer)"),
                    a,
                    b,
                    &peer_name,
                    a / b,
                    None,
                );
                if exp == "ttfb_netsim" && q == "ttfb_p50_ms" {
                    let limit = 30.0 + rtt;
                    out.add(
                        &format!("{exp} {hs} ttfb ms vs 30 ms + RTT"),
                        a,
                        limit,
                        "30 ms + RTT",
                        a / limit,
                        Some((1.0, false)),
                    );
                }
            }
        }
    }

    print_table(
        &format!(
            "compare: {} against {} (medians over runs: ours {}, peer {})",
            o.label,
            peer_name,
            o.docs.len(),
            p.docs.len()
        ),
        &["figure", "ours", "other", "ratio", "target", "verdict"],
        &out.table,
    );
    let runs: Value = [
        "lat",
        "ttfb",
        "ttfb_netsim",
        "million",
        "million_full",
        "million_random",
        "million_control",
        "noise",
        "mixed",
        "large",
        "raw",
    ]
    .iter()
    .map(|e| (e.to_string(), json!({"ours": o.runs(e), "peer": p.runs(e)})))
    .collect::<serde_json::Map<_, _>>()
    .into();
    let result = json!({
        "tool": "granary-bench", "schema": 1, "kind": "compare",
        "ours": ours_p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "peer": peer_p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "ours_label": o.label, "peer_label": peer_name,
        "runs": runs,
        "rows": out.rows,
    });
    if let Some(p) = out_p {
        std::fs::write(p, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(result)
}
