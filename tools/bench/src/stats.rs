//! Latency summaries and printed tables.

use serde_json::{json, Value};
use std::time::Duration;

/// One finished request.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub op: &'static str,
    pub dur: Duration,
    pub ok: bool,
    pub bytes: u64,
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    quantile(&v, 0.5)
}

/// Count, errors and latency percentiles (ms) of the samples of one operation.
pub fn summarize(samples: &[Sample]) -> Value {
    let mut ms: Vec<f64> = samples.iter().map(|s| s.dur.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let errors = samples.iter().filter(|s| !s.ok).count();
    let bytes: u64 = samples.iter().filter(|s| s.ok).map(|s| s.bytes).sum();
    let mean = if ms.is_empty() {
        f64::NAN
    } else {
        ms.iter().sum::<f64>() / ms.len() as f64
    };
    json!({
        "count": samples.len(),
        "errors": errors,
        "bytes": bytes,
        "p50_ms": num(quantile(&ms, 0.5)),
        "p90_ms": num(quantile(&ms, 0.9)),
        "p99_ms": num(quantile(&ms, 0.99)),
        "max_ms": num(ms.last().copied().unwrap_or(f64::NAN)),
        "mean_ms": num(mean),
    })
}

/// A JSON number, or null for NaN/infinite.
pub fn num(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1e4).round() / 1e4)
    } else {
        Value::Null
    }
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Formats a number with a sensible number of digits.
pub fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

pub fn print_table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    println!("\n## {title}");
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:>w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        line(r.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn summary() {
        let s = |ms: u64, ok| Sample {
            op: "GET",
            dur: Duration::from_millis(ms),
            ok,
            bytes: 10,
        };
        let v = summarize(&[s(1, true), s(2, true), s(3, false)]);
        assert_eq!(v["count"], 3);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["bytes"], 20);
        assert_eq!(v["p50_ms"], 2.0);
    }
}
