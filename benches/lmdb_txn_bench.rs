//! What a metadata insert costs LMDB as the tree grows, by key order and by how many
//! inserts share one transaction.
//!
//! `cargo bench --bench lmdb_txn_bench -- [--dir D] [--objects N] [--txn 56,512,4096,16384]
//! [--keys sequential,random] [--json F]`
//! (D must be on the file system to measure; default ./target/lmdb-txn-bench).
//!
//! Each case opens a fresh environment the way a shard does (`NO_READ_AHEAD`, a durable
//! commit: LMDB writes the pages a transaction dirtied and syncs) and stores `N` object rows
//! as a PutObject of a 16-byte object does: one lookup of the previous row, one put of the
//! postcard-encoded row under bucket id + key. Keys are million's (`granary-bench million`):
//! `m/<batch>/<index>` in order, or `r/` + a 64-bit hash of the object's number. The default
//! `N`, 524,288, is one shard's half of a million on a two-shard server; a transaction of
//! 56 inserts is what one group commit held per shard under million's load (stop 17).
//!
//! Per eighth of the inserts it reports the time per insert (commits and syncs included)
//! and the bytes LMDB handed to `write()` per insert (`wchar` of `/proc/self/io`: pages
//! rewritten by copy-on-write; the device's own count is not per process). The question
//! it answers: would applying many group commits in one LMDB transaction (a metadata log
//! in front of LMDB, see `docs/bench/s3-end-to-end.md`) keep random inserts flat?

use std::path::{Path, PathBuf};
use std::time::Instant;

use granary::meta::types::{BucketId, ObjectData, ObjectRecord, ObjectRow, Stamp, VersionId};
use heed::types::Bytes;
use heed::{Database, EnvFlags, EnvOpenOptions};

use bench_util::Cli;

mod bench_util;

struct Args {
    dir: PathBuf,
    objects: u64,
    txns: Vec<u64>,
    keys: Vec<Order>,
    json: Option<PathBuf>,
}

#[derive(Clone, Copy)]
enum Order {
    Sequential,
    Random,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Sequential => "sequential",
            Order::Random => "random",
        }
    }
}

const CLI: Cli = Cli {
    name: "lmdb_txn_bench",
    synopsis: "[--dir D] [--objects N] [--txn N[,N...]] [--keys sequential,random] [--json F]",
};

fn args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("target/lmdb-txn-bench"),
        objects: 524_288,
        txns: vec![56, 512, 4096, 16384],
        keys: vec![Order::Sequential, Order::Random],
        json: None,
    };
    let mut args = CLI.args();
    while let Some(x) = args.flag() {
        match x.as_str() {
            "--dir" => a.dir = args.value(&x, "a path").into(),
            "--json" => a.json = Some(args.value(&x, "a path").into()),
            "--objects" => {
                a.objects = CLI.parsed_as(
                    &x,
                    &args.value(&x, "a count"),
                    "a count of at least 8 (one per eighth)",
                    |n: &u64| *n >= 8,
                )
            }
            "--txn" => {
                let list = args.value(&x, "numbers like 56,4096");
                a.txns = list
                    .split(',')
                    .map(|n| CLI.parsed(&x, n, |t| *t > 0))
                    .collect();
            }
            "--keys" => {
                a.keys = args
                    .value(&x, "sequential, random or both")
                    .split(',')
                    .map(|k| match k {
                        "sequential" => Order::Sequential,
                        "random" => Order::Random,
                        other => {
                            CLI.usage(&format!("--keys wants sequential or random, not {other:?}"))
                        }
                    })
                    .collect()
            }
            // cargo bench passes --bench to every bench binary.
            other => args.unknown(other),
        }
    }
    a
}

/// million's key for object `n` (tools/bench/src/exp.rs, `million_key`).
fn key(n: u64, order: Order) -> String {
    match order {
        Order::Sequential => format!("m/{:05}/{:05}", n / 8192, n % 8192),
        Order::Random => {
            let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("r/{:016x}", z ^ (z >> 31))
        }
    }
}

const BUCKET: BucketId = BucketId([9; 16]);

/// The record a PutObject of a 16-byte object stores.
fn row(key: String, n: u64) -> Vec<u8> {
    let row = ObjectRow {
        bucket: BUCKET,
        key,
        version: VersionId([n as u8; 16]),
        stamp: Stamp {
            time_ms: 1_795_000_000_000 + n,
            counter: 0,
            node: 1,
        },
        bytes: 16,
        etag: "\"0123456789abcdef0123456789abcdef\"".into(),
        last_modified_ms: 1_795_000_000_000 + n,
        headers: vec![],
        checksum: None,
        parts: vec![],
        data: ObjectData::Inline(vec![7; 16]),
    };
    postcard::to_stdvec(&ObjectRecord::of_row(&row)).expect("row encodes")
}

/// Bytes this process has handed to write() and friends so far.
fn wchar() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar: ").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

struct Eighth {
    us_per_insert: f64,
    bytes_per_insert: f64,
}

struct Case {
    order: Order,
    txn: u64,
    total_s: f64,
    eighths: Vec<Eighth>,
    file_bytes: u64,
}

fn run(dir: &Path, objects: u64, txn: u64, order: Order) -> heed::Result<Case> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let mut opts = EnvOpenOptions::new();
    opts.map_size(16 << 30).max_dbs(4);
    // SAFETY: NO_READ_AHEAD is a hint; this process alone opens this directory.
    let env = unsafe {
        opts.flags(EnvFlags::NO_READ_AHEAD);
        opts.open(dir)?
    };
    let mut w = env.write_txn()?;
    let db: Database<Bytes, Bytes> = env.create_database(&mut w, Some("objects"))?;
    w.commit()?;

    let eighth = objects / 8;
    let mut eighths = Vec::new();
    let start = Instant::now();
    // Time, bytes written and inserts done when the last eighth closed.
    let (mut t0, mut b0, mut mark) = (Instant::now(), wchar(), 0);
    let mut n = 0;
    while n < objects {
        let mut w = env.write_txn()?;
        let end = (n + txn).min(objects);
        for i in n..end {
            let name = key(i, order);
            let mut k = BUCKET.0.to_vec();
            k.extend_from_slice(name.as_bytes());
            let prev = db.get(&w, &k)?.map(<[u8]>::len);
            std::hint::black_box(prev);
            db.put(&mut w, &k, &row(name, i))?;
        }
        w.commit()?;
        n = end;
        // An eighth closes at the first commit at or past its last insert.
        if eighths.len() < 8 && n >= (eighths.len() as u64 + 1) * eighth {
            let (t, b) = (Instant::now(), wchar());
            let done = (n - mark) as f64;
            eighths.push(Eighth {
                us_per_insert: t.duration_since(t0).as_secs_f64() * 1e6 / done,
                bytes_per_insert: (b - b0) as f64 / done,
            });
            (t0, b0, mark) = (t, b, n);
        }
    }
    let total_s = start.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(dir.join("data.mdb"))?.len();
    drop(env);
    let _ = std::fs::remove_dir_all(dir);
    Ok(Case {
        order,
        txn,
        total_s,
        eighths,
        file_bytes,
    })
}

fn main() {
    let a = args();
    // The same names as granary-bench's million (its unit test pins the same values).
    assert_eq!(key(0, Order::Random), "r/e220a8397b1dcdaf");
    assert_eq!(key(3 * 8192 + 17, Order::Sequential), "m/00003/00017");
    println!(
        "# LMDB, one environment as a shard opens it, {} object rows of a 16-byte object ({} B \
         each) under bucket id + million's keys; dir {}",
        a.objects,
        row(key(0, Order::Random), 0).len(),
        a.dir.display()
    );
    println!(
        "| keys | inserts per txn | total s | µs per insert, 1st eighth | last eighth | last / \
         first | bytes written per insert, 1st eighth | last eighth | data.mdb MB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut json = Vec::new();
    for &order in &a.keys {
        for &txn in &a.txns {
            let c = run(&a.dir.join("env"), a.objects, txn, order).expect("LMDB case runs");
            let (first, last) = (&c.eighths[0], &c.eighths[c.eighths.len() - 1]);
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} |",
                c.order.name(),
                c.txn,
                c.total_s,
                first.us_per_insert,
                last.us_per_insert,
                last.us_per_insert / first.us_per_insert,
                first.bytes_per_insert,
                last.bytes_per_insert,
                c.file_bytes as f64 / 1e6
            );
            json.push(format!(
                "{{\"keys\": \"{}\", \"txn\": {}, \"objects\": {}, \"total_s\": {:.4}, \
                 \"us_per_insert\": [{}], \"bytes_per_insert\": [{}], \"file_bytes\": {}}}",
                c.order.name(),
                c.txn,
                a.objects,
                c.total_s,
                c.eighths
                    .iter()
                    .map(|e| format!("{:.3}", e.us_per_insert))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.eighths
                    .iter()
                    .map(|e| format!("{:.1}", e.bytes_per_insert))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.file_bytes
            ));
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, format!("[\n  {}\n]\n", json.join(",\n  "))).expect("write --json");
    }
}
