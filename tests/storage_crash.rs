//! A real SIGKILL crash test. The test binary re-executes itself as a child (the ignored
//! test `crash_child`) that writes blocks and inline objects under `always` as fast as it
//! can and prints one line per acknowledgement; the parent kills it with SIGKILL at random
//! moments, reopens the store and checks every acknowledged write is present and intact.
//! A second variant also drops blocks and runs GC and compaction continuously, so kills
//! land in the middle of compactions.

mod storage_util;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use granary::meta::types::*;
use granary::storage::index::Checkpoint;
use granary::storage::{record, ShardStore};
use rand::Rng;
use storage_util::*;

const CHILD_ENV: &str = "GRANARY_CRASH_CHILD_DIR";
const SEED_ENV: &str = "GRANARY_CRASH_CHILD_SEED";
const MODE_ENV: &str = "GRANARY_CRASH_CHILD_MODE";

fn mode_cfg(compaction: bool) -> granary::storage::StorageConfig {
    if compaction {
        granary::storage::StorageConfig {
            segment_bytes: 1 << 20,
            block_gc_delay_s: 0,
            maintenance_interval_s: 0,
            compact_live_ratio: 0.7,
            ..cfg()
        }
    } else {
        cfg()
    }
}

fn block_len(seed: u64) -> usize {
    500 + (seed.wrapping_mul(7919) % 300_000) as usize
}

#[test]
#[ignore = "child process of sigkill_during_writes"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let base: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let compaction = std::env::var(MODE_ENV).as_deref() == Ok("compaction");
    run(move || async move {
        let s = ShardStore::open(std::path::Path::new(&dir), mode_cfg(compaction))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        if compaction {
            let s = Rc::clone(&s);
            tasks.push(glommio::spawn_local(async move {
                loop {
                    s.gc_now().await.unwrap();
                    s.compact_now().await.unwrap();
                    sleep_ms(10).await;
                }
            }));
        }
        for t in 0..16u64 {
            let s = Rc::clone(&s);
            tasks.push(glommio::spawn_local(async move {
                let mut i = 0u64;
                loop {
                    let seed = base + t * 100_000 + i;
                    i += 1;
                    if seed.is_multiple_of(2) {
                        let d = data(block_len(seed), seed);
                        let h = BlockHash::of(&d);
                        s.put_block(h, d, H).await.unwrap();
                        if compaction && seed.is_multiple_of(3) {
                            // Garbage for GC and compaction: never reported as acknowledged.
                            s.release_block(&h, H).await.unwrap();
                        } else {
                            ack(&format!("B {seed}"));
                        }
                    } else {
                        let key = format!("o{seed}");
                        s.put_object(obj(&key, &data(64, seed))).await.unwrap();
                        ack(&format!("O {seed}"));
                    }
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {line}").unwrap();
    out.flush().unwrap();
}

#[test]
fn sigkill_during_writes() {
    crash_cycles(false, false, 20, 80..500);
}

#[test]
fn sigkill_during_compaction() {
    crash_cycles(true, false, 20, 80..400);
}

/// Simulated power loss under `always`: after each SIGKILL the newest segment also loses a
/// random part of what was not yet synced (anything after the last acknowledged record
/// and after the index checkpoint: a synced write is never lost), as a disk that forgets
/// unsynced writes would. LMDB needs no simulation: under `always` every commit is synced
/// before anything depends on it.
#[test]
fn power_loss_after_sigkill() {
    crash_cycles(false, true, 12, 80..400);
}

fn read_checkpoint(dir: &Path) -> Checkpoint {
    // SAFETY: no store has this environment open while the test peeks at it.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .max_dbs(16)
            .map_size(1 << 30)
            .open(dir.join("meta"))
            .unwrap()
    };
    let r = env.read_txn().unwrap();
    let db: Option<heed::Database<heed::types::Bytes, heed::types::Bytes>> =
        env.open_database(&r, Some("state")).unwrap();
    let c = db
        .and_then(|db| {
            db.get(&r, b"checkpoint")
                .unwrap()
                .and_then(Checkpoint::decode)
        })
        .unwrap_or_default();
    drop(r);
    env.prepare_for_closing().wait();
    c
}

/// Forget a random part of the newest segment's unsynced tail, or, when it has none, leave
/// a torn write at its end.
fn simulate_power_loss(dir: &Path, acked: &HashSet<BlockHash>, rng: &mut impl Rng) -> Loss {
    let mut segs: Vec<(u32, PathBuf)> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let id = p
                .file_name()?
                .to_str()?
                .strip_prefix("seg-")?
                .parse()
                .ok()?;
            Some((id, p))
        })
        .collect();
    segs.sort();
    let Some((id, path)) = segs.pop() else {
        return Loss::None;
    };
    let bytes = std::fs::read(&path).unwrap();
    let ckpt = read_checkpoint(dir);
    let mut lower = match ckpt.segment.cmp(&id) {
        std::cmp::Ordering::Equal => ckpt.offset as usize,
        std::cmp::Ordering::Less => 0,
        std::cmp::Ordering::Greater => return Loss::None,
    };
    let (found, _) = record::scan(&bytes);
    for (off, h) in &found {
        if acked.contains(&h.hash) {
            lower = lower.max(*off + h.record_len());
        }
    }
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    if lower >= bytes.len() {
        // Every write that reached the file was acknowledged (the kill fell between
        // writes), so there is nothing unsynced to forget. Simulate the other thing a
        // power loss leaves: a torn write, part of a record in flight that landed after
        // the last synced one. Recovery must cut it off and append after it.
        let mut torn = vec![0u8; 512 * rng.gen_range(1..=8)];
        rng.fill(&mut torn[..]);
        if let Some((off, h)) = found.last() {
            // Start like a real record (its header), then garbage.
            let n = h.record_len().min(64).min(torn.len());
            torn[..n].copy_from_slice(&bytes[*off..*off + n]);
        }
        use std::io::{Seek, SeekFrom};
        let mut f = f;
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(&torn).unwrap();
        f.sync_all().unwrap();
        return Loss::Torn;
    }
    let cut = (rng.gen_range(lower..=bytes.len()) & !511).max(lower);
    f.set_len(cut as u64).unwrap();
    f.sync_all().unwrap();
    Loss::Dropped((bytes.len() - cut) as u64)
}

/// What one simulated power loss did to the newest segment.
enum Loss {
    None,
    /// Bytes of the unsynced tail forgotten.
    Dropped(u64),
    /// A torn record appended.
    Torn,
}

/// Reads the child's acknowledgement lines into the seeds of blocks and objects.
fn parse_acks(lines: Vec<String>, blocks: &mut Vec<u64>, objects: &mut Vec<u64>) {
    for l in lines {
        // A line cut by the kill has no newline: `lines()` still yields it, but then it
        // may be partial; only whole "ACK X n" lines with a valid number count.
        let mut it = l.split_whitespace();
        if it.next() != Some("ACK") {
            continue;
        }
        let (Some(kind), Some(n), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match kind {
            "B" => blocks.push(n),
            "O" => objects.push(n),
            _ => {}
        }
    }
}

fn crash_cycles(
    compaction: bool,
    power_loss: bool,
    cycles: u64,
    sleep_ms_range: std::ops::Range<u64>,
) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked_blocks: Vec<u64> = Vec::new();
    let mut acked_objects: Vec<u64> = Vec::new();
    let started = Instant::now();
    let mut checked = (0usize, 0usize);
    let mut prev_len = (0usize, 0usize);
    let mut acked_hashes: HashSet<BlockHash> = HashSet::new();
    let (mut dropped, mut torn) = (0u64, 0u32);
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(SEED_ENV, ((cycle + 1) * 10_000_000).to_string())
            .env(MODE_ENV, if compaction { "compaction" } else { "writes" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(sleep_ms_range.clone())));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let before = acked_blocks.len() + acked_objects.len();
        parse_acks(lines, &mut acked_blocks, &mut acked_objects);
        let new = acked_blocks.len() + acked_objects.len() - before;
        if power_loss {
            for &seed in &acked_blocks[prev_len.0..] {
                acked_hashes.insert(BlockHash::of(&data(block_len(seed), seed)));
            }
            match simulate_power_loss(dir.path(), &acked_hashes, &mut rng) {
                Loss::None => {}
                Loss::Dropped(n) => dropped += n,
                Loss::Torn => torn += 1,
            }
        }
        // Reopen in this process and check every acknowledged write.
        let path = dir.path().to_path_buf();
        // Every acknowledged write so far on every 5th cycle and the last; the new ones
        // (and the previous cycle's) otherwise, to keep the test short.
        let full = cycle % 5 == 4 || cycle == cycles - 1;
        let (b, o) = if full {
            (acked_blocks.clone(), acked_objects.clone())
        } else {
            (
                acked_blocks[checked.0..].to_vec(),
                acked_objects[checked.1..].to_vec(),
            )
        };
        checked = (prev_len.0, prev_len.1);
        prev_len = (acked_blocks.len(), acked_objects.len());
        run(move || async move {
            let s = ShardStore::open(&path, mode_cfg(compaction)).await.unwrap();
            for seed in b {
                let d = data(block_len(seed), seed);
                let h = BlockHash::of(&d);
                let got = s.read_block(&h, 0, d.len() as u32).await;
                assert_eq!(
                    got.as_deref().ok(),
                    Some(&d[..]),
                    "cycle {cycle}: block {seed} lost"
                );
                assert!(s.block_info(&h).unwrap().unwrap().refs >= 1);
            }
            for seed in o {
                let row = s.get_object(&BUCKET, &format!("o{seed}")).unwrap();
                let row = row.unwrap_or_else(|| panic!("cycle {cycle}: object {seed} lost"));
                assert_eq!(row.data, ObjectData::Inline(data(64, seed)));
            }
            let st = s.stats();
            assert!(st.blocks >= 1 || cycle == 0);
            s.close().await.unwrap();
        });
        eprintln!(
            "cycle {cycle}: {new} acks, total {} blocks {} objects",
            acked_blocks.len(),
            acked_objects.len()
        );
    }
    assert!(
        acked_blocks.len() > 20 && acked_objects.len() > 20,
        "the child made too little progress to test anything"
    );
    if power_loss {
        // Whether a kill leaves an unsynced tail depends on where it falls; either way
        // recovery was exercised against a damaged segment end.
        assert!(
            dropped > 0 || torn > 0,
            "the simulated power losses never touched a segment"
        );
        eprintln!("power loss: dropped {dropped} unsynced bytes; {torn} torn tails");
    }
    if compaction {
        // Compaction ran: segment files below the newest one were deleted.
        let ids: Vec<u32> = std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().to_string();
                n.strip_prefix("seg-")?.parse().ok()
            })
            .collect();
        let max = ids.iter().copied().max().unwrap_or(0);
        assert!(
            (ids.len() as u32) < max,
            "no segment was ever compacted: {} files, newest {max}",
            ids.len()
        );
    }
    eprintln!("crash test took {:?}", started.elapsed());
}
