//! Storage engine benchmark: one shard (one glommio executor), 1 MiB blocks and tiny
//! inline objects, per fsync policy, at concurrency 1, 16 and 256; beside fio's figure for
//! the same file system and access pattern measured in the same run.
//!
//! `cargo bench --bench storage_bench -- [--dir D] [--json F] [--secs S] [--runs N] [--quick]
//! [--only blocks|inline] [--conc N] [--fsync always|periodic:100|never] [--input sealed|vec]`
//! (D must be on the file system to measure; default ./target/storage-bench).
//!
//! `--input` is how blocks reach the engine: `sealed` (the default, what the server does)
//! in record buffers filled and sealed by the receiving side, `vec` as plain vectors that
//! the engine copies and checksums into its own buffer.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bench_util::Cli;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use granary::meta::types::{BlockHash, BucketId, Holder, ObjectData, ObjectRow, Stamp, VersionId};
use granary::storage::{BlockBuf, FsyncPolicy, ShardStore, StorageConfig};

mod bench_util;

struct Args {
    dir: PathBuf,
    json: Option<PathBuf>,
    secs: f64,
    runs: usize,
    quick: bool,
    only: Option<String>,
    /// Only these concurrencies.
    conc: Option<Vec<usize>>,
    /// Only this fsync policy.
    fsync: Option<String>,
}

impl Args {
    fn concurrencies(&self) -> Vec<usize> {
        match &self.conc {
            Some(c) => c.clone(),
            None if self.quick => vec![1, 256],
            None => vec![1, 16, 256],
        }
    }
}

fn args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("target/storage-bench"),
        json: None,
        secs: 2.0,
        runs: 3,
        quick: false,
        only: None,
        conc: None,
        fsync: None,
    };
    let mut args = CLI.args();
    while let Some(x) = args.flag() {
        match x.as_str() {
            "--dir" => a.dir = args.value(&x, "a path").into(),
            "--json" => a.json = Some(args.value(&x, "a path").into()),
            "--secs" => a.secs = CLI.parsed(&x, &args.value(&x, "seconds"), |s: &f64| *s > 0.0),
            "--runs" => a.runs = CLI.parsed(&x, &args.value(&x, "a count"), |n: &usize| *n > 0),
            "--quick" => a.quick = true,
            "--only" => a.only = Some(args.value(&x, "blocks or inline")),
            "--conc" => {
                let list = args.value(&x, "numbers like 1,16");
                let c: Vec<usize> = list
                    .split(',')
                    .map(|n| CLI.parsed(&x, n, |c| *c > 0))
                    .collect();
                a.conc = Some(c);
            }
            "--fsync" => a.fsync = Some(args.value(&x, "a policy")),
            "--input" => {
                let input = match args.value(&x, "sealed or vec").as_str() {
                    "sealed" => Input::Sealed,
                    "vec" => Input::Vec,
                    other => CLI.usage(&format!("--input wants sealed or vec, not {other:?}")),
                };
                let _ = INPUT.set(input);
            }
            other => args.unknown(other),
        }
    }
    a
}

const CLI: Cli = Cli {
    name: "storage_bench",
    synopsis: concat!(
        "[--only blocks|inline] \\\n",
        "    [--fsync always|periodic:MS|never] [--conc N[,N...]] [--runs N] [--secs S] \\\n",
        "    [--input sealed|vec] [--quick] [--dir PATH] [--json PATH]",
    ),
};

/// How blocks reach the engine (`--input`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Input {
    /// In record buffers, sealed before the timed section (`put_block_buf`).
    Sealed,
    /// As vectors (`put_block`: the engine copies and checksums them).
    Vec,
}

static INPUT: OnceLock<Input> = OnceLock::new();

fn input() -> Input {
    *INPUT.get_or_init(|| Input::Sealed)
}

enum Block {
    Sealed(BlockBuf),
    Vec(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    Blocks1M,
    Inline100,
}

struct Outcome {
    ops: u64,
    secs: f64,
    bytes: u64,
    p50_us: f64,
    p99_us: f64,
    syncs: u64,
    commits: u64,
    mean_data_batch: f64,
    mean_meta_batch: f64,
    /// µs per data batch: encode, write, fdatasync; µs per LMDB commit.
    encode_us: f64,
    write_us: f64,
    sync_us: f64,
    commit_us: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn make_data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = vec![0u8; len];
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    v
}

/// Unique 1 MiB blocks, hashed (and for `--input sealed`, in sealed record buffers) before
/// the timed section: the server hashes and seals a block while its bytes arrive.
fn make_blocks(count: usize) -> Vec<(BlockHash, Block)> {
    let base = make_data(1 << 20, 42);
    (0..count)
        .map(|i| {
            let mut d = base.clone();
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let hash = BlockHash::of(&d);
            let block = match input() {
                Input::Sealed => Block::Sealed(BlockBuf::sealed_copy(&hash, &d)),
                Input::Vec => Block::Vec(d),
            };
            (hash, block)
        })
        .collect()
}

/// What sealing a filled 1 MiB record buffer costs the receiving side (µs, median of 20):
/// the chunk checksums that `--input sealed` leaves out of the engine's time.
fn seal_cost_us() -> f64 {
    let data = make_data(1 << 20, 7);
    let mut times: Vec<f64> = (0..20u64)
        .map(|i| {
            let mut b = BlockBuf::with_capacity(data.len());
            b.extend_from_slice(&data);
            let hash = BlockHash([i as u8; 32]);
            let t = Instant::now();
            b.seal(&hash);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// The shard is pinned, as the server's are (`GRANARY_BENCH_UNPINNED=1` leaves it free);
/// its blocking thread (LMDB commits) is not, so a commit's CPU work does not preempt the
/// shard (the server places its pools the same way).
fn shard_placement() -> Placement {
    match std::env::var("GRANARY_BENCH_UNPINNED").as_deref() {
        Ok("1") => Placement::Unbound,
        _ => Placement::Fixed(0),
    }
}

fn run_one(dir: &Path, w: Workload, policy: FsyncPolicy, conc: usize, secs: f64) -> Outcome {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let dir = dir.to_path_buf();
    // Pre-generate the blocks (unique, hashed) outside the timed section: hashing is the
    // server's job while the bytes arrive.
    let max_ops = match w {
        Workload::Blocks1M => ((secs * 2500.0) as usize).clamp(256, 2000),
        Workload::Inline100 => 2_000_000,
    };
    let blocks = match w {
        Workload::Blocks1M => make_blocks(max_ops),
        Workload::Inline100 => Vec::new(),
    };
    LocalExecutorBuilder::new(shard_placement())
        .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
        .io_memory(io_memory())
        .spawn(move || async move {
            let cfg = StorageConfig {
                data_fsync: policy,
                metadata_fsync: policy,
                maintenance_interval_s: 0,
                scrub_bytes_per_s: 0,
                preallocate_segments: std::env::var("GRANARY_BENCH_PREALLOC").as_deref() == Ok("1"),
                ..StorageConfig::default()
            };
            let s = match ShardStore::open(&dir, cfg).await {
                Ok(s) => s,
                Err(e) => panic!("opening the store in {}: {e}", dir.display()),
            };
            let blocks = Rc::new(RefCell::new(blocks));
            let next = Rc::new(Cell::new(0usize));
            let lat = Rc::new(RefCell::new(Vec::with_capacity(100_000)));
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs_f64(secs);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let (s, blocks, next, lat) = (s.clone(), blocks.clone(), next.clone(), lat.clone());
                tasks.push(glommio::spawn_local(async move {
                    loop {
                        let i = next.get();
                        if i >= max_ops || Instant::now() >= deadline {
                            break;
                        }
                        next.set(i + 1);
                        let t = Instant::now();
                        match w {
                            Workload::Blocks1M => {
                                let (h, d) = std::mem::replace(
                                    &mut blocks.borrow_mut()[i],
                                    (BlockHash([0; 32]), Block::Vec(Vec::new())),
                                );
                                let put = match d {
                                    Block::Sealed(b) => s.put_block_buf(h, b, BENCH_HOLDER).await,
                                    Block::Vec(v) => s.put_block(h, v, BENCH_HOLDER).await,
                                };
                                if let Err(e) = put {
                                    eprintln!("put_block: {e}");
                                    break;
                                }
                            }
                            Workload::Inline100 => {
                                if let Err(e) = s.put_object(row(i)).await {
                                    eprintln!("put_object: {e}");
                                    break;
                                }
                            }
                        }
                        lat.borrow_mut().push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
            let secs = t0.elapsed().as_secs_f64();
            let st = s.stats();
            s.close().await.unwrap();
            let mut l = lat.borrow().clone();
            l.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let ops = l.len() as u64;
            Outcome {
                ops,
                secs,
                bytes: match w {
                    Workload::Blocks1M => ops << 20,
                    Workload::Inline100 => ops * 100,
                },
                p50_us: percentile(&l, 0.5),
                p99_us: percentile(&l, 0.99),
                syncs: st.data_syncs,
                commits: st.meta_commits,
                mean_data_batch: st.mean_data_batch,
                mean_meta_batch: st.mean_meta_batch,
                encode_us: st.encode_us as f64 / st.data_batches.max(1) as f64,
                write_us: st.write_us as f64 / st.data_batches.max(1) as f64,
                sync_us: st.sync_us as f64 / st.data_batches.max(1) as f64,
                commit_us: st.commit_us as f64 / st.meta_commits.max(1) as f64,
            }
        })
        .unwrap()
        .join()
        .unwrap()
}

/// What holds the benchmark's blocks.
const BENCH_HOLDER: Holder = Holder([5; 16]);

fn row(i: usize) -> ObjectRow {
    ObjectRow {
        bucket: BucketId([3; 16]),
        key: format!("bench/{i:09}"),
        version: VersionId([0; 16]),
        stamp: Stamp {
            time_ms: i as u64,
            counter: 0,
            node: 1,
        },
        bytes: 100,
        etag: "\"0123456789abcdef0123456789abcdef\"".into(),
        last_modified_ms: 0,
        headers: vec![],
        checksum: None,
        parts: vec![],
        data: ObjectData::Inline(vec![7; 100]),
    }
}

/// The space fio writes into.
#[derive(Clone, Copy, PartialEq)]
enum Space {
    /// Appends to a new, empty file: new blocks, as a store's segments get them.
    Fresh,
    /// A 1 GiB file written over and over (fio's own default once laid out): blocks that
    /// are already allocated and written, so an fdatasync has no metadata to journal.
    Overwrite,
}

/// fio's figure (MB/s and IOPS) for `bs` writes at `iodepth`, O_DIRECT, io_uring,
/// fdatasync after every write when `sync`.
fn fio(
    dir: &Path,
    bs: &str,
    iodepth: usize,
    sync: bool,
    secs: f64,
    space: Space,
) -> Option<(f64, f64)> {
    std::fs::create_dir_all(dir).ok()?;
    let file = dir.join("fio.dat");
    let _ = std::fs::remove_file(&file);
    let mut args = vec![
        "--name=w".to_string(),
        format!("--filename={}", file.display()),
        format!("--bs={bs}"),
        "--rw=write".into(),
        "--direct=1".into(),
        "--ioengine=io_uring".into(),
        format!("--iodepth={iodepth}"),
        format!("--fdatasync={}", if sync { 1 } else { 0 }),
        "--time_based".into(),
        format!("--runtime={}", secs.ceil() as u64),
        "--output-format=json".into(),
    ];
    match space {
        // Larger than fio can write in the run, so it never wraps around to written blocks.
        Space::Fresh => args.extend([
            "--size=64G".into(),
            "--file_append=1".into(),
            "--fallocate=none".into(),
        ]),
        Space::Overwrite => args.push("--size=1G".into()),
    }
    let out = Command::new("fio").args(&args).output().ok()?;
    let _ = std::fs::remove_file(&file);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let w = &v["jobs"][0]["write"];
    Some((w["bw_bytes"].as_f64()? / 1e6, w["iops"].as_f64()?))
}

/// Each run's figure over the fio run of its round, taken just before (MB/s for blocks,
/// sync/s for inline objects): on a machine whose speed changes by the minute, a pair
/// taken together says more than two medians taken over several minutes.
fn paired_ratios(w: Workload, runs: &[Outcome], fio: &[Option<(f64, f64)>]) -> Vec<f64> {
    runs.iter()
        .zip(fio)
        .filter_map(|(o, f)| {
            let (mb, iops) = (*f)?;
            Some(match w {
                Workload::Blocks1M => o.bytes as f64 / o.secs / 1e6 / mb,
                Workload::Inline100 => o.ops as f64 / o.secs / iops,
            })
        })
        .collect()
}

/// The middle element by `key` (the upper one of an even count).
fn median_by<T: Copy>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> Option<T> {
    v.sort_by(|x, y| key(x).partial_cmp(&key(y)).unwrap());
    v.get(v.len() / 2).copied()
}

/// Column widths of the table; the first two columns are left-aligned.
const WIDTHS: [usize; 14] = [10, 13, 5, 10, 9, 9, 10, 10, 9, 9, 11, 7, 10, 7];

fn print_row<S: AsRef<str>>(cells: &[S]) {
    let line: Vec<String> = cells
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .map(|(i, (c, w))| match i {
            0 | 1 => format!("{:<w$}", c.as_ref()),
            _ => format!("{:>w$}", c.as_ref()),
        })
        .collect();
    println!("{}", line.join(" "));
}

/// The median run of one workload, policy and concurrency: its table row (and the batch
/// timings for blocks) printed, its JSON returned.
fn report(
    a: &Args,
    (w, p, c): (Workload, FsyncPolicy, usize),
    mut runs: Vec<Outcome>,
    fio_paired: &[Option<(f64, f64)>],
    fio_ovw: Option<(f64, f64)>,
) -> serde_json::Value {
    let fio_sync = median_by(fio_paired.iter().flatten().copied().collect(), |f| f.0);
    let paired = paired_ratios(w, &runs, fio_paired);
    runs.sort_by(|x, y| {
        (x.ops as f64 / x.secs)
            .partial_cmp(&(y.ops as f64 / y.secs))
            .unwrap()
    });
    let o = runs.swap_remove(runs.len() / 2);
    let ops_s = o.ops as f64 / o.secs;
    let mb_s = o.bytes as f64 / o.secs / 1e6;
    let syncs_s = (o.syncs + o.commits) as f64 / o.secs;
    let (fio_txt, ratio) = match (w, fio_sync) {
        (Workload::Blocks1M, Some((mb, _))) => (format!("{mb:.0} MB/s"), mb_s / mb),
        (Workload::Inline100, Some((_, iops))) => (format!("{iops:.0} sync/s"), ops_s / iops),
        _ => ("n/a".into(), f64::NAN),
    };
    let ovw = match (w, fio_ovw) {
        (Workload::Blocks1M, Some((mb, _))) => Some((mb, mb_s / mb)),
        _ => None,
    };
    print_row(&[
        format!("{w:?}"),
        p.to_string(),
        c.to_string(),
        format!("{ops_s:.0}"),
        format!("{mb_s:.1}"),
        format!("{syncs_s:.0}"),
        format!("{:.1}", o.mean_data_batch),
        format!("{:.1}", o.mean_meta_batch),
        format!("{:.0}", o.p50_us),
        format!("{:.0}", o.p99_us),
        fio_txt,
        format!("{ratio:.2}"),
        ovw.map(|(mb, _)| format!("{mb:.0} MB/s"))
            .unwrap_or_default(),
        ovw.map(|(_, r)| format!("{r:.2}")).unwrap_or_default(),
    ]);
    let paired_median = median_by(paired.clone(), |r| *r);
    if !paired.is_empty() {
        let each: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "#   ratio to fio round by round (each run over the fio run of its round): {} \
             (median {:.2})",
            each.join(" "),
            paired_median.unwrap_or(f64::NAN)
        );
    }
    if w == Workload::Blocks1M {
        println!(
            "#   per data batch: encode {:.0} µs, write {:.0} µs{}, separate fdatasync {:.0} µs; \
             per LMDB commit {:.0} µs",
            o.encode_us,
            o.write_us,
            if p == FsyncPolicy::Always {
                " (with its flush: O_DSYNC)"
            } else {
                ""
            },
            o.sync_us,
            o.commit_us
        );
    }
    let fio = fio_sync.map(|(mb, iops)| serde_json::json!({"mb_per_s": mb, "iops": iops}));
    serde_json::json!({
        "workload": format!("{w:?}"), "fsync": p.to_string(), "concurrency": c,
        "shards": 1, "runs": a.runs, "ops": o.ops, "secs": o.secs, "ops_per_s": ops_s,
        "mb_per_s": mb_s, "syncs_per_s": syncs_s, "data_syncs": o.syncs,
        "meta_commits": o.commits, "mean_data_batch": o.mean_data_batch,
        "mean_meta_batch": o.mean_meta_batch, "p50_us": o.p50_us, "p99_us": o.p99_us,
        "batch_encode_us": o.encode_us, "batch_write_us": o.write_us,
        "batch_sync_us": o.sync_us, "commit_us": o.commit_us,
        "fio": fio,
        "fio_space": if w == Workload::Blocks1M { "fresh" } else { "overwrite" },
        "ratio": ratio,
        "paired_ratios": paired,
        "paired_ratio_median": paired_median,
        "fio_overwrite_mb_per_s": ovw.map(|(mb, _)| mb),
        "ratio_overwrite": ovw.map(|(_, r)| r),
    })
}

fn main() {
    let a = args();
    let concs = a.concurrencies();
    let policies: Vec<FsyncPolicy> = match &a.fsync {
        Some(p) => vec![p.parse().expect("--fsync always|periodic:<ms>|never")],
        None => vec![
            FsyncPolicy::Always,
            FsyncPolicy::Periodic(Duration::from_millis(100)),
            FsyncPolicy::Never,
        ],
    };
    let mut json = Vec::new();
    println!(
        "# storage engine, 1 shard, dir {} (fio: O_DIRECT io_uring sequential write; for blocks \
         into fresh space like the segments, and 'ovw' over written blocks)",
        a.dir.display()
    );
    println!(
        "# blocks reach the engine as {:?} (sealing a filled 1 MiB block in place costs the \
         receiving side {:.0} µs)",
        input(),
        seal_cost_us()
    );
    print_row(&[
        "workload",
        "fsync",
        "conc",
        "ops/s",
        "MB/s",
        "syncs/s",
        "data-batch",
        "meta-batch",
        "p50 µs",
        "p99 µs",
        "fio",
        "ratio",
        "fio ovw",
        "ratio",
    ]);
    for w in [Workload::Blocks1M, Workload::Inline100] {
        match (a.only.as_deref(), w) {
            (Some("blocks"), Workload::Inline100) | (Some("inline"), Workload::Blocks1M) => {
                continue
            }
            _ => {}
        }
        for &c in &concs {
            // fio in the same run, interleaved with ours, `runs` rounds: the same pattern with
            // fdatasync after every write. Medians are reported, and each round's own ratio
            // (the machines are noisy).
            let mut fio_runs: Vec<Option<(f64, f64)>> = Vec::new();
            let mut fio_ovw_runs: Vec<Option<(f64, f64)>> = Vec::new();
            let mut ours: Vec<Vec<Outcome>> = policies.iter().map(|_| Vec::new()).collect();
            for _ in 0..a.runs {
                let (bs, depth) = match w {
                    Workload::Blocks1M => ("1M", c.min(64)),
                    Workload::Inline100 => ("4k", 1),
                };
                // Blocks go to new space (segments are appended); inline objects to LMDB's
                // pages, mostly written before.
                fio_ovw_runs.push(fio(&a.dir, bs, depth, true, a.secs, Space::Overwrite));
                if w == Workload::Blocks1M {
                    fio_runs.push(fio(&a.dir, bs, depth, true, a.secs, Space::Fresh));
                }
                for (i, p) in policies.iter().enumerate() {
                    ours[i].push(run_one(&a.dir.join("store"), w, *p, c, a.secs));
                }
            }
            let fio_ovw = median_by(fio_ovw_runs.iter().flatten().copied().collect(), |f| f.0);
            let fio_paired = match w {
                Workload::Blocks1M => &fio_runs,
                Workload::Inline100 => &fio_ovw_runs,
            };
            for (p, runs) in policies.iter().zip(ours) {
                json.push(report(&a, (w, *p, c), runs, fio_paired, fio_ovw));
                if let Some(p) = &a.json {
                    let _ = std::fs::write(p, serde_json::to_string_pretty(&json).unwrap());
                }
            }
        }
    }
    if let Some((mb, _)) = fio(&a.dir, "1M", 16, false, a.secs, Space::Overwrite) {
        println!("# fio 1 MiB O_DIRECT sequential write, no sync, QD16: {mb:.0} MB/s");
        json.push(serde_json::json!({"fio_raw_1m_qd16_mb_per_s": mb}));
    }
    let _ = std::fs::remove_dir_all(a.dir.join("store"));
    if let Some(p) = a.json {
        std::fs::write(&p, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        println!("# results written to {}", p.display());
    }
}

/// glommio's registered I/O memory: batches are encoded into it (pre-faulted, pinned),
/// so it should hold two batches in flight. Needs the memlock limit (root or
/// `LimitMEMLOCK=infinity`); `GRANARY_BENCH_IO_MEMORY_MIB` overrides.
fn io_memory() -> usize {
    std::env::var("GRANARY_BENCH_IO_MEMORY_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(24)
        << 20
}
