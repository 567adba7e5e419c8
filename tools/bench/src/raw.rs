//! The machine's limits, measured in the same run: fio (io_uring, O_DIRECT) for the
//! storage patterns, iperf3 on loopback, and one core's MD5 / SHA-256 rate.

use crate::exp::{human_size, parse_size, Ctx};
use crate::stats::{fmt, num, print_table};
use anyhow::{anyhow, bail, Context, Result};
use md5::Md5;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn need(tool: &str) -> Result<()> {
    if !have(tool) {
        bail!(
            "raw needs `{tool}`: apt-get install -y fio iperf3 (tools/install-test-deps.sh does)"
        );
    }
    Ok(())
}

/// One fio job; returns (MB/s, IOPS, p99 completion latency in ms) of its read or write side.
fn fio(
    file: &Path,
    name: &str,
    rw: &str,
    bs: &str,
    depth: u32,
    size: u64,
    runtime_s: u32,
) -> Result<(f64, f64, f64)> {
    let out = Command::new("fio")
        .args([
            "--name",
            name,
            "--filename",
            &file.display().to_string(),
            "--ioengine=io_uring",
            "--direct=1",
            "--rw",
            rw,
            "--bs",
            bs,
            "--iodepth",
            &depth.to_string(),
            "--size",
            &size.to_string(),
            "--runtime",
            &runtime_s.to_string(),
            "--numjobs=1",
            "--group_reporting",
            "--output-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running fio")?;
    if !out.status.success() {
        bail!(
            "fio {name} failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before the JSON.
    let start = text
        .find('{')
        .ok_or_else(|| anyhow!("fio printed no JSON"))?;
    let v: Value = serde_json::from_str(&text[start..]).context("parsing fio JSON")?;
    let side = if rw.contains("read") { "read" } else { "write" };
    let job = &v["jobs"][0][side];
    let bw = job["bw_bytes"].as_f64().unwrap_or(0.0) / 1e6;
    let iops = job["iops"].as_f64().unwrap_or(0.0);
    let p99 = job["clat_ns"]["percentile"]["99.000000"]
        .as_f64()
        .unwrap_or(f64::NAN)
        / 1e6;
    Ok((bw, iops, p99))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// iperf3 over loopback, one stream: Gbit/s received.
fn iperf(seconds: u32, streams: u32) -> Result<f64> {
    let port = free_port()?.to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s")?;
    let mut result = Err(anyhow!("iperf3 server did not answer"));
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let out = Command::new("iperf3")
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                &seconds.to_string(),
                "-P",
                &streams.to_string(),
                "-J",
            ])
            .output()
            .context("running iperf3 -c")?;
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).context("parsing iperf3 JSON")?;
            result = Ok(v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0)
                / 1e9);
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_secs() -> f64 {
    thread_cpu_ns() as f64 / 1e9
}

/// GB/s of one core for a hash: bytes over the thread's CPU time (not wall time, so that
/// other processes on a busy machine do not lower it), and over wall time.
fn hash_rate<F: FnMut(&[u8])>(buf: &[u8], mut f: F) -> (f64, f64) {
    f(&buf[..1 << 20]); // warm-up
    let t = Instant::now();
    let c = thread_cpu_secs();
    f(buf);
    let cpu = thread_cpu_secs() - c;
    let gb = buf.len() as f64 / 1e9;
    (gb / cpu, gb / t.elapsed().as_secs_f64())
}

pub fn raw(ctx: &Ctx) -> Result<Value> {
    need("fio")?;
    need("iperf3")?;
    let smoke = ctx.o.smoke;
    // The same depth as `large` (16, 4 in smoke mode), so its GET has a fio figure beside it.
    let depth = ctx.o.concurrency.unwrap_or(if smoke { 4 } else { 16 }) as u32;
    let fio_size = match &ctx.o.fio_size {
        Some(s) => parse_size(s)?,
        None if smoke => 16 << 20,
        None => 2 << 30,
    };
    let runtime = if smoke { 1 } else { 10 };
    let dir = ctx.o.raw_dir.clone();
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("granary-bench-fio-{}.dat", ctx.tag));
    let mut rows = Vec::new();
    let mut table = Vec::new();
    let mut push = |what: &str, depth: u32, r: (f64, f64, f64)| {
        rows.push(json!({"what": what, "depth": depth, "mb_per_s": num(r.0), "iops": num(r.1), "p99_ms": num(r.2)}));
        table.push(vec![
            what.to_string(),
            depth.to_string(),
            fmt(r.0),
            fmt(r.1),
            fmt(r.2),
        ]);
    };
    let jobs: Vec<(&str, &str, &str, u32)> = vec![
        ("1 MiB seq write", "write", "1M", depth),
        ("1 MiB seq read", "read", "1M", depth),
        ("1 MiB seq write", "write", "1M", 1),
        ("1 MiB seq read", "read", "1M", 1),
        ("4 KiB rand write", "randwrite", "4k", 32),
        ("4 KiB rand read", "randread", "4k", 32),
    ];
    let res = (|| -> Result<()> {
        for (what, rw, bs, d) in &jobs {
            push(
                what,
                *d,
                fio(&file, "granary-bench", rw, bs, *d, fio_size, runtime)?,
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&file);
    res?;
    let iperf_s = if smoke { 1 } else { 5 };
    let gbit1 = iperf(iperf_s, 1)?;
    let gbit2 = iperf(iperf_s, 2)?;
    table.push(vec![
        "iperf3 loopback TCP, 1 stream".into(),
        "–".into(),
        fmt(gbit1 * 1e3 / 8.0),
        "–".into(),
        "–".into(),
    ]);
    table.push(vec![
        "iperf3 loopback TCP, 2 streams".into(),
        "–".into(),
        fmt(gbit2 * 1e3 / 8.0),
        "–".into(),
        "–".into(),
    ]);

    let hash_len = if smoke { 16 << 20 } else { 256 << 20 };
    let mut buf = vec![0u8; hash_len];
    rand::Rng::fill(&mut rand::thread_rng(), &mut buf[..]);
    // The limit: one MD5 stream with the fastest single-stream code we have (md5-many's,
    // which Granary uses); RustCrypto's md-5 (asm) for reference; and 8 streams at once in
    // the SIMD lanes of one core, as Granary hashes concurrent uploads.
    let (md5, md5_wall) = hash_rate(&buf, |b| {
        std::hint::black_box(md5_many::md5(b));
    });
    let (md5_rustcrypto, _) = hash_rate(&buf, |b| {
        std::hint::black_box(Md5::digest(b));
    });
    let lanes = md5_many::Md5Many::new();
    let (md5_lanes8, _) = hash_rate(&buf, |b| {
        let eighths: Vec<&[u8]> = b.chunks(b.len().div_ceil(8)).collect();
        let mut out = vec![[0u8; 16]; eighths.len()];
        lanes.hash_many(&eighths, &mut out);
        std::hint::black_box(out);
    });
    let (sha, sha_wall) = hash_rate(&buf, |b| {
        std::hint::black_box(Sha256::digest(b));
    });
    // CRC32 as the checksum header carries it (x-amz-checksum-crc32), with crc-fast as
    // Granary computes it.
    let (crc32, _) = hash_rate(&buf, |b| {
        std::hint::black_box(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, b));
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let both = 1.0 / (1.0 / md5 + 1.0 / sha);
    for (what, gbs) in [
        ("MD5, one core (CPU time)", md5),
        ("MD5, one core (wall time)", md5_wall),
        (
            "MD5 (RustCrypto md-5, asm), one core (CPU time)",
            md5_rustcrypto,
        ),
        (
            "MD5, 8 streams in SIMD lanes, one core (CPU time)",
            md5_lanes8,
        ),
        ("SHA-256, one core (CPU time)", sha),
        ("SHA-256, one core (wall time)", sha_wall),
        ("MD5 + SHA-256, one core (CPU time)", both),
        ("CRC32, one core (CPU time)", crc32),
    ] {
        table.push(vec![
            what.into(),
            "–".into(),
            fmt(gbs * 1e3),
            "–".into(),
            "–".into(),
        ]);
    }
    print_table(
        &format!("raw: fio io_uring O_DIRECT on {} ({} file, {runtime} s per job), iperf3 loopback, hashing ({human} buffer); {cores} cores",
            dir.display(), human_size(fio_size), human = human_size(hash_len as u64)),
        &["what", "depth", "MB/s", "IOPS", "p99 ms"],
        &table,
    );
    Ok(json!({
        "workload": {"fio_size": fio_size, "runtime_s": runtime, "dir": dir.display().to_string(), "depth": depth},
        "rows": rows,
        "loopback_gbit_1": num(gbit1),
        "loopback_gbit_2": num(gbit2),
        "md5_gb_per_s": num(md5),
        "sha256_gb_per_s": num(sha),
        "md5_wall_gb_per_s": num(md5_wall),
        "md5_rustcrypto_gb_per_s": num(md5_rustcrypto),
        "md5_lanes8_gb_per_s": num(md5_lanes8),
        "sha256_wall_gb_per_s": num(sha_wall),
        "md5_sha256_gb_per_s": num(both),
        "crc32_gb_per_s": num(crc32),
        "cores": cores,
    }))
}
