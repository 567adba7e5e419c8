//! granary-bench: an S3 load generator and the benchmark suite of docs/benchmarks.md.
//!
//! Each experiment prints a table and adds its result to one JSON document (schema in
//! docs/bench/tools.md): `{"tool", "schema", "label", "endpoint", "started_unix", "smoke",
//! "machine", "experiments": {name: {"workload", "rows", ...}}}`.

mod compare;
mod exp;
mod http;
mod noise;
mod raw;
mod s3;
mod sigv4;
mod sink;
mod stats;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "granary-bench",
    about = "S3 benchmark suite: lat, ttfb, million, mixed, large, raw, noise"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand, Clone, PartialEq)]
enum Cmd {
    /// One request at a time: ListBuckets, ListObjects, PutObject, GetObject, DeleteObject.
    Lat,
    /// Time to first byte and transfer time of GetObject for 1, 4.5 and 64 MiB objects.
    Ttfb,
    /// Batches of 8192 16-byte objects at high concurrency, 128 times: time per batch.
    Million,
    /// Warp-like mixed workload (GET,STAT,PUT,DELETE weights) for a duration.
    Mixed,
    /// Large objects (64 MiB, concurrency 16): PUT then GET throughput.
    Large,
    /// The machine's limits: fio (io_uring, O_DIRECT), iperf3 on loopback, MD5/SHA-256, and
    /// `large`'s PUT into a sink that only receives and hashes.
    Raw,
    /// The machine's own spread: fixed memory-bound work (no store, disk or network) in
    /// batches about as long as million's. Not part of `all`.
    Noise,
    /// Every experiment above but noise, in that order (minus --skip).
    All,
    /// Ratios between result files: ours (with raw) and a peer's; each figure is the
    /// median over the comma-separated files of its side.
    Compare {
        #[arg(value_delimiter = ',', num_args = 1, required = true)]
        ours: Vec<PathBuf>,
        #[arg(value_delimiter = ',', num_args = 1, required = true)]
        peer: Vec<PathBuf>,
    },
}

#[derive(Args, Clone, PartialEq)]
pub struct Opts {
    /// S3 endpoint, http://host:port.
    #[arg(
        long,
        global = true,
        env = "GRANARY_BENCH_ENDPOINT",
        default_value = "http://127.0.0.1:3900"
    )]
    pub endpoint: String,
    #[arg(long, global = true, env = "AWS_ACCESS_KEY_ID", default_value = "")]
    pub access_key: String,
    #[arg(
        long,
        global = true,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub secret_key: String,
    #[arg(long, global = true, default_value = "us-east-1")]
    pub region: String,
    /// Name of the store under test, written into the JSON (e.g. granary, garage).
    #[arg(long, global = true, default_value = "target")]
    pub label: String,
    /// Parallel connections (one worker each). Default per experiment.
    #[arg(long, global = true)]
    pub concurrency: Option<usize>,
    /// Object size, e.g. 16, 4KiB, 64MiB. Default per experiment.
    #[arg(long, global = true)]
    pub size: Option<String>,
    /// ttfb: comma-separated object sizes.
    #[arg(long, global = true)]
    pub sizes: Option<String>,
    /// mixed: seconds to run.
    #[arg(long, global = true)]
    pub duration: Option<f64>,
    /// million: number of batches.
    #[arg(long, global = true)]
    pub batches: Option<u64>,
    /// million: objects per batch.
    #[arg(long, global = true)]
    pub batch_size: Option<u64>,
    /// million: write the first batch's keys again in every batch, so the store never holds
    /// more than one batch of objects. A control: whatever spread its batches show has
    /// nothing to do with the number of objects stored.
    #[arg(long, global = true)]
    pub same_keys: bool,
    /// million: name objects in a pseudo-random order (a bijective hash of the object's
    /// number) instead of batch by batch, so each batch's inserts land all over the key
    /// space already stored, as uploads from many independent clients do.
    #[arg(long, global = true)]
    pub random_keys: bool,
    /// lat: requests per operation; large: objects per round.
    #[arg(long, global = true)]
    pub count: Option<u64>,
    /// ttfb: GETs per size; large: rounds.
    #[arg(long, global = true)]
    pub repeat: Option<usize>,
    /// mixed: objects created before the clock starts.
    #[arg(long, global = true)]
    pub objects: Option<u64>,
    /// mixed: weights of GET,STAT,PUT,DELETE.
    #[arg(long, global = true, default_value = "45,30,15,10")]
    pub mix: String,
    /// Sign payloads (SHA-256 of each body) instead of UNSIGNED-PAYLOAD.
    #[arg(long, global = true)]
    pub signed_payload: bool,
    /// Send each PUT body's checksum in a signed header, as boto3, the AWS CLI and the AWS
    /// SDKs do by default (`x-amz-checksum-crc32`); the store must verify it.
    #[arg(long, global = true, value_enum, default_value = "none")]
    pub checksum: http::Checksum,
    /// Keep the buckets and objects the experiments create.
    #[arg(long, global = true)]
    pub no_cleanup: bool,
    /// large: drop the page cache (root) between PUT and GET.
    #[arg(long, global = true)]
    pub drop_caches: bool,
    /// large, million: PID of the server, to report the CPU time it uses (per GB; per batch).
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// raw: directory for fio's file (put it on the stores' file system).
    #[arg(long, global = true, default_value = "/tmp")]
    pub raw_dir: PathBuf,
    /// raw: size of fio's file (default 2GiB, 16MiB in smoke mode).
    #[arg(long, global = true)]
    pub fio_size: Option<String>,
    /// all: experiments to leave out, comma-separated.
    #[arg(long, global = true, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Seconds and tiny sizes: checks that the tool works, measures nothing.
    #[arg(long, global = true)]
    pub smoke: bool,
    /// Record the result under this experiment name (e.g. ttfb_netsim for ttfb on a
    /// simulated link); only with a single experiment.
    #[arg(long, global = true)]
    pub record_as: Option<String>,
    /// Write the result document here.
    #[arg(long, global = true)]
    pub json_out: Option<PathBuf>,
}

impl Opts {
    /// What PUT bodies carry to vouch for themselves.
    pub fn payload(&self) -> http::Payload {
        http::Payload {
            signed: self.signed_payload,
            checksum: self.checksum,
        }
    }
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": model,
        "mem_gib": (mem_kb as f64 / 1048576.0).round(),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg": read("/proc/loadavg").trim(),
    })
}

async fn run(cli: Cli) -> Result<()> {
    let o = cli.opts.clone();
    if let Cmd::Compare { ours, peer } = &cli.cmd {
        compare::compare(ours, peer, o.json_out.as_deref())?;
        return Ok(());
    }
    if cli.cmd != Cmd::Noise && (o.access_key.is_empty() || o.secret_key.is_empty()) {
        bail!("credentials missing: --access-key/--secret-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    }
    let signer = sigv4::Signer::new(&o.access_key, &o.secret_key, &o.region);
    let ep = http::Endpoint::new(&o.endpoint, signer, o.payload())?;
    let tag: String = {
        use rand::Rng;
        let mut r = rand::thread_rng();
        (0..8)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[r.gen_range(0..36)]))
            .collect()
    };
    let ctx = exp::Ctx {
        ep,
        o: o.clone(),
        tag,
    };
    let all = ["lat", "ttfb", "million", "mixed", "large", "raw"];
    let chosen: Vec<&str> = match cli.cmd {
        Cmd::Lat => vec!["lat"],
        Cmd::Ttfb => vec!["ttfb"],
        Cmd::Million => vec!["million"],
        Cmd::Mixed => vec!["mixed"],
        Cmd::Large => vec!["large"],
        Cmd::Raw => vec!["raw"],
        Cmd::Noise => vec!["noise"],
        Cmd::All => {
            for s in &o.skip {
                if !all.contains(&s.as_str()) {
                    bail!("--skip {s}: not an experiment ({})", all.join(", "));
                }
            }
            all.iter()
                .copied()
                .filter(|e| !o.skip.iter().any(|s| s == e))
                .collect()
        }
        Cmd::Compare { .. } => unreachable!(),
    };
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut doc = json!({
        "tool": "granary-bench",
        "schema": 1,
        "label": o.label,
        "endpoint": o.endpoint,
        "started_unix": started,
        "smoke": o.smoke,
        "signed_payload": o.signed_payload,
        "checksum": o.checksum.name(),
        "machine": machine(),
        "experiments": {},
    });
    if o.record_as.is_some() && chosen.len() != 1 {
        bail!("--record-as needs a single experiment");
    }
    let mut failed = Vec::new();
    for e in chosen {
        let name = o.record_as.clone().unwrap_or_else(|| e.to_string());
        let t = std::time::Instant::now();
        let r = match e {
            "lat" => exp::lat(&ctx).await,
            "ttfb" => exp::ttfb(&ctx).await,
            "million" => exp::million(&ctx).await,
            "noise" => noise::noise(&ctx),
            "mixed" => exp::mixed(&ctx).await,
            "large" => exp::large(&ctx).await,
            "raw" => {
                async {
                    let mut v = raw::raw(&ctx)?;
                    v["put_sink"] = sink::put_limit(&ctx).await?;
                    Ok(v)
                }
                .await
            }
            _ => unreachable!(),
        };
        match r {
            Ok(mut v) => {
                v["elapsed_s"] = stats::num(t.elapsed().as_secs_f64());
                doc["experiments"][&name] = v;
            }
            Err(err) => {
                eprintln!("{e} failed: {err:#}");
                doc["experiments"][&name] = json!({"error": format!("{err:#}")});
                failed.push(e);
            }
        }
        // Write after each experiment: a long run that dies keeps what it measured.
        if let Some(p) = &o.json_out {
            std::fs::write(p, serde_json::to_string_pretty(&doc)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("granary-bench: {e:#}");
        std::process::exit(1);
    }
}
