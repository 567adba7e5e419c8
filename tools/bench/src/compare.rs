//! Ratios between two result files of the same run (ours and a peer's), against the
//! raw limits measured in ours, and the targets.

use crate::stats::{f, fmt, num, print_table};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;

fn load(p: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
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
    fn add(&mut self, what: &str, ours: f64, other: f64, other_name: &str, ratio: f64, target: Option<(f64, bool)>) {
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

pub fn compare(ours_p: &Path, peer_p: &Path, out_p: Option<&Path>) -> Result<Value> {
    let ours = load(ours_p)?;
    let peer = load(peer_p)?;
    let peer_name = peer["label"].as_str().unwrap_or("peer").to_string();
    let (o, p) = (&ours["experiments"], &peer["experiments"]);
    let mut out = Out { rows: Vec::new(), table: Vec::new() };
    let raw = &o["raw"];

    // Large objects.
    if !o["large"].is_null() {
        let lo = &o["large"]["summary"];
        let lp = &p["large"]["summary"];
        let conc = o["large"]["workload"]["concurrency"].as_u64().unwrap_or(16);
        let signed = o["large"]["workload"]["signed_payload"].as_bool().unwrap_or(false);
        let put = f(&lo["put_mb_per_s"]);
        let get = f(&lo["get_mb_per_s"]);
        if !raw.is_null() {
            let per_core = if signed { f(&raw["md5_sha256_gb_per_s"]) } else { f(&raw["md5_gb_per_s"]) } * 1e3;
            let cores = raw["cores"].as_f64().unwrap_or(1.0);
            let limit = per_core * cores;
            let name = format!("{} × {} MB/s", cores, fmt(per_core));
            out.add("large PUT MB/s vs hashing (all cores)", put, limit, &name, put / limit, Some((0.9, true)));
            let fio_read = raw["rows"].as_array().and_then(|rows| {
                rows.iter().find(|r| r["what"] == "1 MiB seq read" && r["depth"].as_u64() == Some(conc))
            });
            if let Some(fr) = fio_read {
                let fr = f(&fr["mb_per_s"]);
                out.add(&format!("large GET MB/s vs fio read QD{conc}"), get, fr, "fio", get / fr, Some((0.8, true)));
            }
        }
        let pput = f(&lp["put_mb_per_s"]);
        let pget = f(&lp["get_mb_per_s"]);
        out.add("large PUT MB/s", put, pput, &peer_name, put / pput, Some((1.5, true)));
        out.add("large GET MB/s", get, pget, &peer_name, get / pget, Some((1.5, true)));
    }

    // Small objects, mixed.
    if !o["mixed"].is_null() {
        for op in ["total", "GET", "STAT", "PUT", "DELETE"] {
            let (ro, rp) = match (row_by(&o["mixed"], "op", &json!(op)), row_by(&p["mixed"], "op", &json!(op))) {
                (Some(a), Some(b)) => (a, b),
                _ => continue,
            };
            let total = op == "total";
            let (a, b) = (f(&ro["ops_per_s"]), f(&rp["ops_per_s"]));
            out.add(&format!("mixed {op} ops/s"), a, b, &peer_name, a / b, total.then_some((3.0, true)));
            let (a, b) = (f(&ro["p99_ms"]), f(&rp["p99_ms"]));
            out.add(&format!("mixed {op} p99 ms"), a, b, &peer_name, a / b, total.then_some((0.5, false)));
        }
    }

    // A million objects.
    if !o["million"].is_null() {
        let so = &o["million"]["summary"];
        let sp = &p["million"]["summary"];
        let (a, b) = (f(&so["total_s"]), f(&sp["total_s"]));
        out.add("million total s (ratio = peer/ours, speed-up)", a, b, &peer_name, b / a, Some((5.0, true)));
        let mo = f(&so["max_over_first"]);
        out.add("million slowest batch / first batch", mo, f(&sp["max_over_first"]), &peer_name, mo, Some((1.1, false)));
        let mm = f(&so["max_over_median"]);
        out.add("million slowest batch / median batch", mm, f(&sp["max_over_median"]), &peer_name, mm, None);
    }

    // One request at a time.
    if !o["lat"].is_null() {
        for r in o["lat"]["rows"].as_array().cloned().unwrap_or_default() {
            if let Some(rp) = row_by(&p["lat"], "op", &r["op"]) {
                let op = r["op"].as_str().unwrap_or("?");
                for q in ["p50_ms", "p99_ms"] {
                    let (a, b) = (f(&r[q]), f(&rp[q]));
                    out.add(&format!("lat {op} {q} (ratio = ours/peer)"), a, b, &peer_name, a / b, None);
                }
            }
        }
    }

    // Time to first byte.
    if !o["ttfb"].is_null() {
        for r in o["ttfb"]["rows"].as_array().cloned().unwrap_or_default() {
            if let Some(rp) = row_by(&p["ttfb"], "size", &r["size"]) {
                let size = crate::exp::human_size(r["size"].as_u64().unwrap_or(0));
                for q in ["ttfb_p50_ms", "total_p50_ms"] {
                    let (a, b) = (f(&r[q]), f(&rp[q]));
                    out.add(&format!("ttfb {size} {q} (ratio = ours/peer)"), a, b, &peer_name, a / b, None);
                }
            }
        }
    }

    print_table(
        &format!("compare: {} against {}", ours["label"].as_str().unwrap_or("ours"), peer_name),
        &["figure", "ours", "other", "ratio", "target", "verdict"],
        &out.table,
    );
    let result = json!({
        "tool": "granary-bench", "schema": 1, "kind": "compare",
        "ours": ours_p.display().to_string(), "peer": peer_p.display().to_string(),
        "ours_label": ours["label"], "peer_label": peer_name,
        "rows": out.rows,
    });
    if let Some(p) = out_p {
        std::fs::write(p, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(result)
}
