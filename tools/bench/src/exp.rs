//! The S3 experiments: lat, ttfb, million, mixed, large.

use crate::http::{Conn, Endpoint};
use crate::s3::{self, must, pool, run, Op};
use crate::stats::{f, fmt, median, num, print_table, summarize, Sample};
use crate::Opts;
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Ctx {
    pub ep: Arc<Endpoint>,
    pub o: Opts,
    /// Random suffix of this run's bucket names.
    pub tag: String,
}

impl Ctx {
    pub fn bucket(&self, exp: &str) -> String {
        format!("gb-{exp}-{}", self.tag)
    }
    pub fn smoke(&self) -> bool {
        self.o.smoke
    }
    fn concurrency(&self, normal: usize, smoke: usize) -> usize {
        self.o
            .concurrency
            .unwrap_or(if self.smoke() { smoke } else { normal })
            .max(1)
    }
    fn size(&self, normal: u64, smoke: u64) -> Result<u64> {
        match &self.o.size {
            Some(s) => parse_size(s),
            None => Ok(if self.smoke() { smoke } else { normal }),
        }
    }
    /// `large`'s object size, concurrency and objects per round (also the sink's, in raw).
    pub fn large_size(&self) -> Result<u64> {
        self.size(64 << 20, (3 << 20) + 5)
    }
    pub fn large_concurrency(&self) -> usize {
        self.concurrency(16, 4)
    }
    pub fn large_count(&self) -> u64 {
        self.pick(self.o.count, 2 * self.large_concurrency() as u64, 8)
    }
    pub fn pick<T: Copy>(&self, given: Option<T>, normal: T, smoke: T) -> T {
        given.unwrap_or(if self.smoke() { smoke } else { normal })
    }
}

/// `16`, `4KiB`, `4.5MiB`, `1GiB`, `10MB` (decimal), into bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => bail!("bad size unit in {s:?}"),
    };
    Ok((n * mult).round() as u64)
}

pub fn human_size(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1 << 20 {
        let m = b as f64 / MIB;
        if m.fract() == 0.0 {
            format!("{m:.0} MiB")
        } else {
            format!("{m:.1} MiB")
        }
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

fn ms(v: &Value, k: &str) -> String {
    fmt(f(&v[k]))
}

fn op_row(name: &str, v: &Value) -> Vec<String> {
    vec![
        name.to_string(),
        v["count"].to_string(),
        v["errors"].to_string(),
        ms(v, "p50_ms"),
        ms(v, "p90_ms"),
        ms(v, "p99_ms"),
        ms(v, "mean_ms"),
    ]
}

async fn cleanup(ctx: &Ctx, conns: Vec<Conn>, bucket: &str) -> Result<Vec<Conn>> {
    if ctx.o.no_cleanup {
        return Ok(conns);
    }
    s3::empty_and_delete(conns, bucket).await
}

/// One request at a time: the latency of each basic operation on small objects.
pub async fn lat(ctx: &Ctx) -> Result<Value> {
    let n = ctx.pick(ctx.o.count, 200, 5);
    let size = ctx.size(16, 16)?;
    let bucket = ctx.bucket("lat");
    let mut conn = Conn::new(ctx.ep.clone());
    must(&mut conn, &Op::CreateBucket(bucket.clone())).await?;
    let key = |i: u64| format!("lat/{i:06}");
    let mut by_op: Vec<(&str, Vec<Sample>)> = Vec::new();
    let mut phase = |name: &'static str, samples: Vec<Sample>| by_op.push((name, samples));
    let mut v = Vec::new();
    for i in 0..n {
        v.push(
            run(
                &mut conn,
                &Op::Put {
                    bucket: bucket.clone(),
                    key: key(i),
                    id: i,
                    size,
                },
            )
            .await
            .0,
        );
    }
    phase("PutObject", std::mem::take(&mut v));
    for i in 0..n {
        v.push(
            run(
                &mut conn,
                &Op::Get {
                    bucket: bucket.clone(),
                    key: key(i),
                },
            )
            .await
            .0,
        );
    }
    phase("GetObject", std::mem::take(&mut v));
    for _ in 0..n {
        let op = Op::ListObjects {
            bucket: bucket.clone(),
            prefix: "lat/".into(),
            max_keys: 1000,
            token: None,
        };
        v.push(run(&mut conn, &op).await.0);
    }
    phase("ListObjects", std::mem::take(&mut v));
    for _ in 0..n {
        v.push(run(&mut conn, &Op::ListBuckets).await.0);
    }
    phase("ListBuckets", std::mem::take(&mut v));
    for i in 0..n {
        v.push(
            run(
                &mut conn,
                &Op::Delete {
                    bucket: bucket.clone(),
                    key: key(i),
                },
            )
            .await
            .0,
        );
    }
    phase("DeleteObject", std::mem::take(&mut v));
    if !ctx.o.no_cleanup {
        must(&mut conn, &Op::DeleteBucket(bucket.clone())).await?;
    }

    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (name, samples) in &by_op {
        let mut s = summarize(samples);
        table.push(op_row(name, &s));
        s["op"] = json!(name);
        rows.push(s);
    }
    print_table(
        &format!("lat: one request at a time, {n} of each, {size}-byte objects (ms)"),
        &["op", "n", "errors", "p50", "p90", "p99", "mean"],
        &table,
    );
    let rtt = connect_rtt(&ctx.ep).await?;
    println!("round trip (TCP connect): {} ms", fmt(rtt));
    Ok(json!({
        "workload": {"count": n, "size": size, "concurrency": 1, "objects_listed": n},
        "rtt_ms": num(rtt),
        "rows": rows,
    }))
}

/// Median TCP connect time: one round trip to the endpoint.
async fn connect_rtt(ep: &Endpoint) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let s = tokio::net::TcpStream::connect(ep.addr).await?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
        drop(s);
    }
    Ok(median(&v))
}

/// Time to first byte and full transfer time of GetObject, per object size.
pub async fn ttfb(ctx: &Ctx) -> Result<Value> {
    let sizes: Vec<u64> = match &ctx.o.sizes {
        Some(s) => s.split(',').map(parse_size).collect::<Result<_>>()?,
        None if ctx.smoke() => vec![64 << 10, 3 << 19],
        None => vec![1 << 20, 9 << 19, 64 << 20],
    };
    let reps = ctx.pick(ctx.o.repeat, 5, 2);
    let bucket = ctx.bucket("ttfb");
    let mut conn = Conn::new(ctx.ep.clone());
    must(&mut conn, &Op::CreateBucket(bucket.clone())).await?;
    let key = |s: u64| format!("ttfb/{s}");
    for (i, &s) in sizes.iter().enumerate() {
        must(
            &mut conn,
            &Op::Put {
                bucket: bucket.clone(),
                key: key(s),
                id: 1_000_000 + i as u64,
                size: s,
            },
        )
        .await?;
    }
    let rtt = connect_rtt(&ctx.ep).await?;
    let mut per: Vec<Vec<(f64, f64, f64, bool)>> = vec![Vec::new(); sizes.len()];
    for _ in 0..reps {
        for (i, &s) in sizes.iter().enumerate() {
            // A fresh connection each time, as a browser fetching one object would.
            let mut c = Conn::new(ctx.ep.clone());
            let r = c
                .send(
                    &Op::Get {
                        bucket: bucket.clone(),
                        key: key(s),
                    }
                    .request(),
                )
                .await;
            match r {
                Ok(r) => per[i].push((
                    r.t_headers.as_secs_f64() * 1e3,
                    r.t_first_byte.as_secs_f64() * 1e3,
                    r.t_total.as_secs_f64() * 1e3,
                    r.ok() && r.body_len == s,
                )),
                Err(e) => {
                    eprintln!("ttfb GET failed: {e:#}");
                    per[i].push((f64::NAN, f64::NAN, f64::NAN, false));
                }
            }
        }
    }
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        let col = |k: usize| -> Vec<f64> { per[i].iter().map(|t| [t.0, t.1, t.2][k]).collect() };
        let errors = per[i].iter().filter(|t| !t.3).count();
        let ttfbs = col(1);
        let total_p50 = median(&col(2));
        let min = ttfbs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ttfbs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mbps = s as f64 / 1e6 / (total_p50 / 1e3);
        let row = json!({
            "size": s, "count": per[i].len(), "errors": errors,
            "headers_p50_ms": num(median(&col(0))),
            "ttfb_p50_ms": num(median(&ttfbs)), "ttfb_min_ms": num(min), "ttfb_max_ms": num(max),
            "total_p50_ms": num(total_p50), "mb_per_s": num(mbps),
        });
        table.push(vec![
            human_size(s),
            per[i].len().to_string(),
            errors.to_string(),
            ms(&row, "headers_p50_ms"),
            ms(&row, "ttfb_p50_ms"),
            ms(&row, "ttfb_min_ms"),
            ms(&row, "ttfb_max_ms"),
            ms(&row, "total_p50_ms"),
            fmt(mbps),
        ]);
        rows.push(row);
    }
    print_table(
        &format!("ttfb: GetObject on a new connection, {reps} times per size; round trip (TCP connect) {} ms", fmt(rtt)),
        &["size", "n", "errors", "headers p50 ms", "ttfb p50 ms", "min", "max", "total p50 ms", "MB/s"],
        &table,
    );
    for &s in &sizes {
        must(
            &mut conn,
            &Op::Delete {
                bucket: bucket.clone(),
                key: key(s),
            },
        )
        .await?;
    }
    if !ctx.o.no_cleanup {
        must(&mut conn, &Op::DeleteBucket(bucket.clone())).await?;
    }
    Ok(json!({
        "workload": {"sizes": sizes, "repeat": reps, "concurrency": 1},
        "rtt_ms": num(rtt),
        "rows": rows,
    }))
}

/// The key of million's object number `n`: batch then index, in the order they are
/// written; or, with `random`, a bijective 64-bit mix of `n` (splitmix64's finalizer), so
/// keys are distinct and each batch spreads over the whole key space.
fn million_key(n: u64, batch_size: u64, random: bool) -> String {
    if random {
        let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        format!("r/{:016x}", z ^ (z >> 31))
    } else {
        format!("m/{:05}/{:05}", n / batch_size, n % batch_size)
    }
}

/// Batches of tiny objects at high concurrency: does the cost grow with the object count?
pub async fn million(ctx: &Ctx) -> Result<Value> {
    let batches = ctx.pick(ctx.o.batches, 128, 3);
    let batch_size = ctx.pick(ctx.o.batch_size, 8192, 64);
    let conc = ctx.concurrency(256, 16);
    let size = ctx.size(16, 16)?;
    let bucket = ctx.bucket("million");
    let mut conns = s3::conns(&ctx.ep, conc);
    must(&mut conns[0], &Op::CreateBucket(bucket.clone())).await?;
    // Every connection open before the clock starts: the first batch measures storing
    // 8192 objects into an empty bucket, not 256 TCP handshakes.
    conns = s3::warm(
        conns,
        Op::ListObjects {
            bucket: bucket.clone(),
            prefix: String::new(),
            max_keys: 1,
            token: None,
        },
    )
    .await?;
    println!(
        "\n## million: {batches} batches of {batch_size} objects of {size} B, concurrency {conc}{}{}",
        if ctx.o.same_keys {
            " (control: every batch rewrites the same keys)"
        } else {
            ""
        },
        if ctx.o.random_keys {
            ", keys in random order"
        } else {
            ""
        }
    );
    let mut secs = Vec::new();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    let t_all = Instant::now();
    let mut server_cpu = Vec::new();
    let mut steal_total = 0.0;
    let same_keys = ctx.o.same_keys;
    let random_keys = ctx.o.random_keys;
    for b in 0..batches {
        let bk = bucket.clone();
        let kb = if same_keys { 0 } else { b };
        let cpu = CpuMeter::start(ctx.o.server_pid);
        let t = Instant::now();
        let (c, samples) = pool(
            conns,
            batch_size,
            Arc::new(move |i| Op::Put {
                bucket: bk.clone(),
                key: million_key(kb * batch_size + i, batch_size, random_keys),
                id: b * batch_size + i,
                size,
            }),
        )
        .await;
        conns = c;
        let s = t.elapsed().as_secs_f64();
        // The server's CPU per batch (with --server-pid): the cost of a batch, apart from
        // the wall-clock noise of a shared machine.
        let used = cpu.stop();
        let srv = used["server_cpu_s"].as_f64().unwrap_or(f64::NAN);
        let steal = used["steal_cpu_s"].as_f64().unwrap_or(f64::NAN);
        server_cpu.push(srv);
        steal_total += if steal.is_finite() { steal } else { 0.0 };
        let errors = samples.iter().filter(|x| !x.ok).count();
        secs.push(s);
        let first = secs[0];
        let note = |v: f64, what: &str| {
            if v.is_finite() {
                format!("  {what} {v:.2} s")
            } else {
                String::new()
            }
        };
        // Steal (time the hypervisor gave this machine's virtual CPUs to other guests) is
        // shown only when there was some.
        let steal_note = if steal > 0.0 {
            note(steal, "steal")
        } else {
            String::new()
        };
        println!(
            "batch {b:4}: {:8.3} s  {:9.0} obj/s  {:5.2}× first  errors {errors}{}{}",
            s,
            batch_size as f64 / s,
            s / first,
            note(srv, "server CPU"),
            steal_note,
        );
        rows.push(json!({"batch": b, "secs": num(s), "errors": errors,
                         "objects_per_s": num(batch_size as f64 / s), "server_cpu_s": num(srv),
                         "steal_cpu_s": num(steal)}));
        all.extend(samples);
        if errors as u64 == batch_size {
            bail!("million: every request of batch {b} failed");
        }
    }
    let total = t_all.elapsed().as_secs_f64();
    let first = secs[0];
    let max = secs.iter().copied().fold(0.0, f64::max);
    let last = *secs.last().unwrap();
    // The first batch still carries the server's own warm-up (fresh heaps, the first pages
    // of the map); compare with the median too.
    let med = median(&secs);
    let lat = summarize(&all);
    // Growth in trend: the last eighth of the batches against the first (means), in time
    // and in server CPU.
    let eighth = |v: &[f64], last: bool| {
        let n = (v.len() / 8).max(1);
        let part = if last { &v[v.len() - n..] } else { &v[..n] };
        part.iter().sum::<f64>() / n as f64
    };
    let time_trend = eighth(&secs, true) / eighth(&secs, false);
    let cpu_first = eighth(&server_cpu, false);
    let cpu_trend = if cpu_first > 0.0 {
        eighth(&server_cpu, true) / cpu_first
    } else {
        f64::NAN // no --server-pid, or batches too short for /proc's 10 ms ticks
    };
    println!(
        "last eighth of the batches over the first: time {time_trend:.2}×, server CPU {}",
        if cpu_trend.is_finite() {
            format!("{cpu_trend:.2}×")
        } else {
            "- (no --server-pid)".into()
        }
    );
    let summary = json!({
        "objects": batches * batch_size,
        "total_s": num(total),
        "objects_per_s": num((batches * batch_size) as f64 / total),
        "first_s": num(first), "median_s": num(med), "max_s": num(max), "last_s": num(last),
        "max_over_first": num(max / first), "last_over_first": num(last / first),
        "max_over_median": num(max / med),
        "last_eighth_over_first_eighth": num(time_trend),
        "server_cpu_last_eighth_over_first_eighth": num(cpu_trend),
        "steal_cpu_s": num(steal_total),
        "errors": lat["errors"],
        "latency": lat,
    });
    print_table(
        "million: summary",
        &[
            "objects",
            "total s",
            "obj/s",
            "first s",
            "median s",
            "max s",
            "last s",
            "max/first",
            "last/first",
            "p50 ms",
            "p99 ms",
            "errors",
        ],
        &[vec![
            (batches * batch_size).to_string(),
            fmt(total),
            fmt((batches * batch_size) as f64 / total),
            fmt(first),
            fmt(med),
            fmt(max),
            fmt(last),
            fmt(max / first),
            fmt(last / first),
            ms(&summary["latency"], "p50_ms"),
            ms(&summary["latency"], "p99_ms"),
            summary["errors"].to_string(),
        ]],
    );
    if !ctx.o.no_cleanup {
        cleanup(ctx, conns, &bucket).await?;
    }
    Ok(json!({
        "workload": {"batches": batches, "batch_size": batch_size, "size": size, "concurrency": conc,
                     "same_keys": same_keys, "random_keys": random_keys,
                     "connections_warmed": true},
        "rows": rows,
        "summary": summary,
    }))
}

/// A warp-like mixed workload over a set of live objects, for a duration.
pub async fn mixed(ctx: &Ctx) -> Result<Value> {
    let conc = ctx.concurrency(64, 8);
    let size = ctx.size(4096, 4096)?;
    let duration = ctx.pick(ctx.o.duration, 30.0, 2.0);
    let objects = ctx.pick(ctx.o.objects, 2500, 40);
    let weights: Vec<u32> = ctx
        .o
        .mix
        .split(',')
        .map(|w| w.trim().parse())
        .collect::<Result<_, _>>()
        .context("--mix takes four weights: GET,STAT,PUT,DELETE")?;
    if objects == 0 {
        bail!("mixed needs --objects of at least 1");
    }
    if weights.len() != 4 || weights.iter().sum::<u32>() == 0 {
        bail!("--mix takes four weights: GET,STAT,PUT,DELETE");
    }
    let bucket = ctx.bucket("mixed");
    let conns = s3::conns(&ctx.ep, conc);
    let mut conns = conns;
    must(&mut conns[0], &Op::CreateBucket(bucket.clone())).await?;
    let key = |id: u64| format!("mx/{id:08}");
    let bk = bucket.clone();
    let (conns, pre) = pool(
        conns,
        objects,
        Arc::new(move |i| Op::Put {
            bucket: bk.clone(),
            key: key(i),
            id: i,
            size,
        }),
    )
    .await;
    if pre.iter().any(|s| !s.ok) {
        bail!("mixed: preparing {objects} objects failed");
    }
    let live = Arc::new(Mutex::new((0..objects).collect::<Vec<u64>>()));
    let next_id = Arc::new(AtomicU64::new(objects));
    // Reads answered 404 for a key that another worker deleted meanwhile: the right answer
    // (a worker picks a live key, and it may be deleted before its read arrives).
    let gone = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(duration);
    let weights = Arc::new(weights);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (live, next_id, weights, bucket, gone) = (
            live.clone(),
            next_id.clone(),
            weights.clone(),
            bucket.clone(),
            gone.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let total: u32 = weights.iter().sum();
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let mut x = rng.gen_range(0..total);
                let mut kind = 0;
                while x >= weights[kind] {
                    x -= weights[kind];
                    kind += 1;
                }
                let pick = |rng: &mut rand::rngs::StdRng| {
                    let l = live.lock().unwrap();
                    l[rng.gen_range(0..l.len())]
                };
                let mut picked = None;
                let op = match kind {
                    0 => Op::Get {
                        bucket: bucket.clone(),
                        key: key(*picked.insert(pick(&mut rng))),
                    },
                    1 => Op::Head {
                        bucket: bucket.clone(),
                        key: key(*picked.insert(pick(&mut rng))),
                    },
                    3 => {
                        let mut l = live.lock().unwrap();
                        if (l.len() as u64) > objects / 2 {
                            let i = rng.gen_range(0..l.len());
                            let id = l.swap_remove(i);
                            Op::Delete {
                                bucket: bucket.clone(),
                                key: key(id),
                            }
                        } else {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            Op::Put {
                                bucket: bucket.clone(),
                                key: key(id),
                                id,
                                size,
                            }
                        }
                    }
                    _ => {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        Op::Put {
                            bucket: bucket.clone(),
                            key: key(id),
                            id,
                            size,
                        }
                    }
                };
                let (mut s, resp) = run(&mut conn, &op).await;
                if let (Some(id), Some(r)) = (picked, &resp) {
                    if r.status == 404 && !live.lock().unwrap().contains(&id) {
                        s.ok = true;
                        gone.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let (Op::Put { id, .. }, true) = (&op, s.ok) {
                    live.lock().unwrap().push(*id);
                }
                samples.push(s);
            }
            (conn, samples)
        }));
    }
    let mut conns = Vec::new();
    let mut all: Vec<Sample> = Vec::new();
    for t in tasks {
        let (c, s) = t.await.expect("worker panicked");
        conns.push(c);
        all.extend(s);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (label, name) in [
        ("GET", "GetObject"),
        ("STAT", "HeadObject"),
        ("PUT", "PutObject"),
        ("DELETE", "DeleteObject"),
        ("total", ""),
    ] {
        let samples: Vec<Sample> = all
            .iter()
            .filter(|s| name.is_empty() || s.op == name)
            .copied()
            .collect();
        let mut s = summarize(&samples);
        let ops = samples.len() as f64 / elapsed;
        let mbps = f(&s["bytes"]) / 1e6 / elapsed;
        s["op"] = json!(label);
        s["ops_per_s"] = num(ops);
        s["mb_per_s"] = num(mbps);
        table.push(vec![
            label.to_string(),
            s["count"].to_string(),
            s["errors"].to_string(),
            fmt(ops),
            fmt(mbps),
            ms(&s, "p50_ms"),
            ms(&s, "p90_ms"),
            ms(&s, "p99_ms"),
        ]);
        rows.push(s);
    }
    print_table(
        &format!(
            "mixed: {} for {:.1} s, objects of {}, concurrency {conc}, {objects} objects to start",
            ctx.o.mix,
            elapsed,
            human_size(size)
        ),
        &[
            "op", "n", "errors", "ops/s", "MB/s", "p50 ms", "p90 ms", "p99 ms",
        ],
        &table,
    );
    let gone = gone.load(Ordering::Relaxed);
    println!("({gone} reads of keys deleted meanwhile answered 404, as they should: not errors)");
    cleanup(ctx, conns, &bucket).await?;
    Ok(json!({
        "workload": {"size": size, "concurrency": conc, "duration_s": num(elapsed), "objects": objects, "mix": ctx.o.mix},
        "rows": rows,
        "reads_of_deleted_keys": gone,
    }))
}

fn drop_caches() {
    // Needs root; without it the GET phase may be served from the page cache (said in the output).
    let ok = std::process::Command::new("sync")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    if !ok {
        eprintln!("large: could not drop the page cache (not root?)");
    }
}

/// CPU seconds (user + system) used so far by a process (`self` or a PID), from /proc.
fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

/// (busy, total, steal) CPU seconds of the whole machine so far, from /proc/stat. Steal is
/// time the hypervisor gave this machine's virtual CPUs to others: work that waited.
fn machine_cpu_secs() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some(((total - idle) / 100.0, total / 100.0, v.get(7)? / 100.0))
}

/// CPU use over a phase: this process, the server (with --server-pid), the whole machine.
pub struct CpuMeter {
    client: Option<f64>,
    server: Option<f64>,
    machine: Option<(f64, f64, f64)>,
    server_pid: Option<String>,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        let server_pid = server_pid.map(|p| p.to_string());
        CpuMeter {
            client: proc_cpu_secs("self"),
            server: server_pid.as_deref().and_then(proc_cpu_secs),
            machine: machine_cpu_secs(),
            server_pid,
        }
    }
    /// CPU seconds of client, server, and of everything else on the machine, since start.
    pub fn stop(&self) -> Value {
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        let client = d(self.client, proc_cpu_secs("self"));
        let server = d(
            self.server,
            self.server_pid.as_deref().and_then(proc_cpu_secs),
        );
        let (busy, total, steal) = match (self.machine, machine_cpu_secs()) {
            (Some(a), Some(b)) => (b.0 - a.0, b.1 - a.1, b.2 - a.2),
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        let others = busy - client - if server.is_finite() { server } else { 0.0 };
        json!({"client_cpu_s": num(client), "server_cpu_s": num(server),
               "others_cpu_s": num(others), "machine_cpu_s": num(total),
               "steal_cpu_s": num(steal)})
    }
}

/// Large objects at a given concurrency: PUT then GET throughput.
pub async fn large(ctx: &Ctx) -> Result<Value> {
    let size = ctx.large_size()?;
    let conc = ctx.large_concurrency();
    let count = ctx.large_count();
    let rounds = ctx.pick(ctx.o.repeat, 1, 1);
    let bucket = ctx.bucket("large");
    let mut conns = s3::conns(&ctx.ep, conc);
    must(&mut conns[0], &Op::CreateBucket(bucket.clone())).await?;
    let mut rows = Vec::new();
    let mut table = Vec::new();
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for r in 0..rounds as u64 {
        let bk = bucket.clone();
        let key = move |i: u64| format!("lg/{r}/{i:05}");
        let t = Instant::now();
        let cpu = CpuMeter::start(ctx.o.server_pid);
        let (c, put_samples) = pool(
            conns,
            count,
            Arc::new(move |i| Op::Put {
                bucket: bk.clone(),
                key: key(i),
                id: (r << 32) | i,
                size,
            }),
        )
        .await;
        let put_s = t.elapsed().as_secs_f64();
        let put_cpu = cpu.stop();
        if ctx.o.drop_caches {
            drop_caches();
        }
        let bk = bucket.clone();
        let t = Instant::now();
        let cpu = CpuMeter::start(ctx.o.server_pid);
        let (c, mut get_samples) = pool(
            c,
            count,
            Arc::new(move |i| Op::Get {
                bucket: bk.clone(),
                key: key(i),
            }),
        )
        .await;
        let get_s = t.elapsed().as_secs_f64();
        let get_cpu = cpu.stop();
        conns = c;
        for s in get_samples.iter_mut() {
            if s.bytes != size {
                s.ok = false;
            }
        }
        for (op, samples, secs, cpu) in [
            ("PUT", &put_samples, put_s, put_cpu),
            ("GET", &get_samples, get_s, get_cpu),
        ] {
            let mut v = summarize(samples);
            let mbps = f(&v["bytes"]) / 1e6 / secs;
            let gb = f(&v["bytes"]) / 1e9;
            // CPU seconds per GB moved: what the client, the server and the rest cost.
            let per_gb = |k: &str| f(&cpu[k]) / gb;
            v["cpu"] = cpu.clone();
            v["op"] = json!(op);
            v["round"] = json!(r);
            v["mb_per_s"] = num(mbps);
            v["secs"] = num(secs);
            table.push(vec![
                op.to_string(),
                r.to_string(),
                v["count"].to_string(),
                v["errors"].to_string(),
                fmt(mbps),
                ms(&v, "p50_ms"),
                ms(&v, "p99_ms"),
                fmt(per_gb("server_cpu_s")),
                fmt(per_gb("client_cpu_s")),
                fmt(per_gb("others_cpu_s")),
                fmt(per_gb("machine_cpu_s")),
            ]);
            if op == "PUT" {
                puts.push(mbps)
            } else {
                gets.push(mbps)
            }
            rows.push(v);
        }
    }
    print_table(
        &format!(
            "large: {count} objects of {} per round, concurrency {conc}{}",
            human_size(size),
            if ctx.o.drop_caches {
                ", page cache dropped before GET"
            } else {
                ""
            }
        ),
        &[
            "op",
            "round",
            "n",
            "errors",
            "MB/s",
            "p50 ms",
            "p99 ms",
            "CPU s/GB: server",
            "client",
            "other processes",
            "all cores, elapsed",
        ],
        &table,
    );
    cleanup(ctx, conns, &bucket).await?;
    Ok(json!({
        "workload": {"size": size, "concurrency": conc, "count": count, "rounds": rounds,
                     "signed_payload": ctx.o.signed_payload, "checksum": ctx.o.checksum.name(),
                     "hashes": ctx.o.payload().hashes(), "drop_caches": ctx.o.drop_caches},
        "rows": rows,
        "summary": {"put_mb_per_s": num(median(&puts)), "get_mb_per_s": num(median(&gets))},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16").unwrap(), 16);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("4.5MiB").unwrap(), 4_718_592);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(human_size(9 << 19), "4.5 MiB");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(16), "16 B");
    }

    #[test]
    fn million_keys() {
        assert_eq!(million_key(3 * 8192 + 17, 8192, false), "m/00003/00017");
        // splitmix64's first output from seed 0 (tests/clients/test_bench_smoke.py agrees).
        assert_eq!(million_key(0, 8192, true), "r/e220a8397b1dcdaf");
        // Random order: distinct, all of one length, and not in the order written.
        let keys: Vec<String> = (0..1 << 16).map(|n| million_key(n, 8192, true)).collect();
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert!(keys.iter().all(|k| k.len() == 18 && k.starts_with("r/")));
        let rising = keys.windows(2).filter(|w| w[0] < w[1]).count();
        assert!(
            rising > keys.len() / 3 && rising < keys.len() * 2 / 3,
            "{rising}"
        );
    }
}
