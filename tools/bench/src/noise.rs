//! The machine's own batch-to-batch spread: the same fixed work repeated in batches about as
//! long as million's, with no store, disk or network involved.
//!
//! million's target asks every batch to stay within 10 % of the first. On a shared virtual
//! machine the speed of the machine itself moves: a server's work misses the caches (B-tree
//! pages, connection buffers, the kernel's socket paths), and how long a miss takes depends
//! on what the host's other guests do with the shared caches and memory. This experiment
//! measures that floor: one thread per core follows a random cycle through its own large
//! array (each load depends on the one before, so every step waits for memory), the same
//! number of steps in every batch. Whatever spread its batches show, no store can be
//! blamed for.

use crate::exp::Ctx;
use crate::stats::{fmt, median, num, print_table};
use anyhow::Result;
use rand::Rng;
use serde_json::{json, Value};
use std::time::Instant;

/// A random cyclic permutation (Sattolo's algorithm): following `next[i]` from any index
/// visits every entry before returning, so the walk never settles into the caches.
fn cycle(entries: usize) -> Vec<u32> {
    let mut next: Vec<u32> = (0..entries as u32).collect();
    let mut rng = rand::thread_rng();
    for i in (1..entries).rev() {
        let j = rng.gen_range(0..i);
        next.swap(i, j);
    }
    next
}

/// Follows the cycle `steps` times from `at`; returns where it stopped.
fn walk(next: &[u32], mut at: u32, steps: u64) -> u32 {
    for _ in 0..steps {
        at = next[at as usize];
    }
    std::hint::black_box(at)
}

/// One batch: every thread walks its own cycle `steps` times; the batch's wall time.
fn batch(arrays: &[Vec<u32>], cursors: &mut [u32], steps: u64) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for (next, at) in arrays.iter().zip(cursors.iter_mut()) {
            s.spawn(move || *at = walk(next, *at, steps));
        }
    });
    t.elapsed().as_secs_f64()
}

pub fn noise(ctx: &Ctx) -> Result<Value> {
    let batches = ctx.pick(ctx.o.batches, 128, 3).max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // 128 MiB per thread: far past any cache of this machine (4 MiB in smoke mode).
    let entries: usize = if ctx.smoke() { 1 << 20 } else { 32 << 20 };
    let target_s = if ctx.smoke() { 0.02 } else { 0.25 };
    println!(
        "\n## noise: {batches} batches of fixed memory-bound work, {threads} threads, {} MiB each",
        (entries * 4) >> 20
    );
    let arrays: Vec<Vec<u32>> = (0..threads).map(|_| cycle(entries)).collect();
    let mut cursors: Vec<u32> = vec![0; threads];
    // Calibrate the steps per batch once, so that a batch lasts about `target_s`; from
    // then on every batch does exactly the same work.
    let probe = 1 << 18;
    let probe_s = batch(&arrays, &mut cursors, probe).max(1e-6);
    let steps = ((probe as f64) * target_s / probe_s).max(1.0) as u64;
    let mut secs = Vec::with_capacity(batches as usize);
    let mut rows = Vec::new();
    for b in 0..batches {
        let s = batch(&arrays, &mut cursors, steps);
        secs.push(s);
        println!("batch {b:4}: {s:8.3} s  {:5.2}× first", s / secs[0]);
        rows.push(json!({"batch": b, "secs": num(s)}));
    }
    let first = secs[0];
    let med = median(&secs);
    let max = secs.iter().copied().fold(0.0, f64::max);
    let mean = secs.iter().sum::<f64>() / secs.len() as f64;
    let cv =
        (secs.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / secs.len() as f64).sqrt() / mean;
    print_table(
        "noise: summary",
        &[
            "batches",
            "first s",
            "median s",
            "max s",
            "max/first",
            "max/median",
            "cv",
        ],
        &[vec![
            batches.to_string(),
            fmt(first),
            fmt(med),
            fmt(max),
            fmt(max / first),
            fmt(max / med),
            fmt(cv),
        ]],
    );
    Ok(json!({
        "workload": {"batches": batches, "threads": threads, "bytes_per_thread": entries * 4,
                     "steps_per_batch": steps},
        "rows": rows,
        "summary": {"first_s": num(first), "median_s": num(med), "max_s": num(max),
                    "max_over_first": num(max / first), "max_over_median": num(max / med),
                    "cv": num(cv)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_visits_every_entry_once() {
        let next = cycle(1000);
        let mut seen = vec![false; next.len()];
        let mut at = 0u32;
        for _ in 0..next.len() {
            assert!(!seen[at as usize], "entry {at} visited twice");
            seen[at as usize] = true;
            at = next[at as usize];
        }
        assert_eq!(at, 0, "the walk returns to its start after every entry");
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn a_walk_continues_where_it_stopped() {
        let next = cycle(97);
        let at = walk(&next, 5, 40);
        assert_eq!(walk(&next, at, 60), walk(&next, 5, 100));
    }
}
