//! A real SIGKILL crash test. The test binary re-executes itself as a child (the ignored
//! test `crash_child`) that writes blocks and inline objects under `always` as fast as it
//! can and prints one line per acknowledgement; the parent kills it with SIGKILL at random
//! moments, reopens the store and checks every acknowledged write is present and intact.

mod storage_util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use granary::meta::types::*;
use granary::storage::ShardStore;
use rand::Rng;
use storage_util::*;

const CHILD_ENV: &str = "GRANARY_CRASH_CHILD_DIR";
const SEED_ENV: &str = "GRANARY_CRASH_CHILD_SEED";

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
    run(move || async move {
        let s = ShardStore::open(std::path::Path::new(&dir), cfg())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let s = Rc::clone(&s);
            tasks.push(glommio::spawn_local(async move {
                let mut i = 0u64;
                loop {
                    let seed = base + t * 100_000 + i;
                    i += 1;
                    if seed % 2 == 0 {
                        let d = data(block_len(seed), seed);
                        s.put_block(BlockHash::of(&d), d).await.unwrap();
                        ack(&format!("B {seed}"));
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
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked_blocks: Vec<u64> = Vec::new();
    let mut acked_objects: Vec<u64> = Vec::new();
    let started = Instant::now();
    let mut checked = (0usize, 0usize);
    let mut prev_len = (0usize, 0usize);
    for cycle in 0..20u64 {
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
        std::thread::sleep(Duration::from_millis(rng.gen_range(80..500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let before = acked_blocks.len() + acked_objects.len();
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
                "B" => acked_blocks.push(n),
                "O" => acked_objects.push(n),
                _ => {}
            }
        }
        let new = acked_blocks.len() + acked_objects.len() - before;
        // Reopen in this process and check every acknowledged write.
        let path = dir.path().to_path_buf();
        // Every acknowledged write so far on every 5th cycle and the last; the new ones
        // (and the previous cycle's) otherwise, to keep the test short.
        let full = cycle % 5 == 4 || cycle == 19;
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
            let s = ShardStore::open(&path, cfg()).await.unwrap();
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
    eprintln!("crash test took {:?}", started.elapsed());
}
