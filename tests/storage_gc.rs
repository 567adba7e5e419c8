//! Space reclaim: GC after the grace delay, compaction (live data survives it, and an
//! interruption at any of its steps), scrub marking bad blocks.

mod storage_util;

use std::path::Path;

use granary::meta::types::*;
use granary::storage::{record, ShardStore, StorageConfig, StorageError};
use storage_util::*;

fn gc_cfg() -> StorageConfig {
    StorageConfig {
        block_gc_delay_s: 0,
        maintenance_interval_s: 0,
        scrub_bytes_per_s: 0,
        segment_bytes: 256 << 10,
        compact_live_ratio: 0.6,
        ..cfg()
    }
}

fn segment_bytes_on_disk(dir: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir(dir.join("segments")).unwrap() {
        n += 1;
        bytes += e.unwrap().metadata().unwrap().len();
    }
    (n, bytes)
}

async fn check(
    s: std::rc::Rc<ShardStore>,
    blocks: &[(BlockHash, Vec<u8>)],
) -> std::rc::Rc<ShardStore> {
    for (i, (h, d)) in blocks.iter().enumerate() {
        let live = i % 3 == 2 || i == 0;
        let r = s.read_block(h, 0, d.len() as u32).await;
        if live {
            assert_eq!(r.unwrap(), *d, "block {i}");
            assert_eq!(s.block_info(h).unwrap().unwrap().refs, 1);
        } else {
            assert_eq!(r, Err(StorageError::NotFound), "block {i}");
        }
    }
    s
}

#[test]
fn gc_and_compaction_reclaim_space_and_keep_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        let blocks: Vec<_> = (0..30).map(|i| block(50_000, i)).collect();
        for (h, d) in &blocks {
            // One at a time: one record per batch, segments roll at 256 KiB.
            s.put_block(*h, d.clone(), H).await.unwrap();
        }
        let (segs_before, bytes_before) = segment_bytes_on_disk(&path);
        assert!(segs_before >= 5, "{segs_before} segments");
        // A block held twice survives one release.
        s.put_block(blocks[0].0, blocks[0].1.clone(), holder(2))
            .await
            .unwrap();
        for (i, (h, _)) in blocks.iter().enumerate() {
            if i % 3 != 2 {
                s.release_block(h, H).await.unwrap();
            }
        }
        let dropped = s.gc_now().await.unwrap();
        assert_eq!(dropped, 19);
        assert_eq!(s.stats().blocks, 11);
        let dead = s.stats().dead_bytes;
        assert!(dead > 19 * 50_000, "dead {dead}");
        let n = s.compact_now().await.unwrap();
        assert!(n >= 4, "compacted {n}");
        let (segs_after, bytes_after) = segment_bytes_on_disk(&path);
        assert!(segs_after < segs_before);
        assert!(
            bytes_after < bytes_before / 2,
            "{bytes_before} -> {bytes_after}"
        );
        let s = check(s, &blocks).await;
        assert!(s.stats().compacted_segments >= 4);
        s.close().await.unwrap();
        drop(s);
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        let s = check(s, &blocks).await;
        // A dropped block can be stored again.
        s.put_block(blocks[1].0, blocks[1].1.clone(), H)
            .await
            .unwrap();
        assert_eq!(
            s.read_block(&blocks[1].0, 0, 50_000).await.unwrap(),
            blocks[1].1
        );
        s.close().await.unwrap();
    });
}

#[test]
fn grace_delay_keeps_zero_count_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // The store's clock, moved by hand: the delay is counted on it.
        let ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1_000_000_000));
        let cfg = StorageConfig {
            block_gc_delay_s: 3600,
            clock: granary::clock::Clock::manual(1, std::sync::Arc::clone(&ms)),
            ..gc_cfg()
        };
        let s = ShardStore::open(&path, cfg).await.unwrap();
        let (h, d) = block(10_000, 1);
        s.put_block(h, d.clone(), H).await.unwrap();
        s.release_block(&h, H).await.unwrap();
        assert_eq!(s.gc_now().await.unwrap(), 0);
        assert_eq!(s.read_block(&h, 0, 10_000).await.unwrap(), d);
        let ordering = std::sync::atomic::Ordering::Relaxed;
        ms.fetch_add(3_599_000, ordering);
        assert_eq!(
            s.gc_now().await.unwrap(),
            0,
            "a second before the delay ends"
        );
        ms.fetch_add(2_000, ordering);
        assert_eq!(
            s.gc_now().await.unwrap(),
            1,
            "the delay has passed on the store's clock"
        );
        s.close().await.unwrap();
    });
}

/// Compaction interrupted after writing the copies but before repointing the index, and
/// after repointing but before deleting the old file: both reopen with live data intact,
/// and a later pass finishes the job.
#[test]
fn compaction_interrupted_at_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let blocks: Vec<_> = (0..12).map(|i| block(60_000, 100 + i)).collect();
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        for (h, d) in &blocks {
            s.put_block(*h, d.clone(), H).await.unwrap();
        }
        for (h, _) in blocks.iter().step_by(2) {
            s.release_block(h, H).await.unwrap();
        }
        s.gc_now().await.unwrap();
        s.close().await.unwrap();
        drop(s);
        let live: Vec<_> = blocks.iter().skip(1).step_by(2).cloned().collect();
        let mut segs: Vec<_> = std::fs::read_dir(path.join("segments"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        let saved: Vec<(std::path::PathBuf, Vec<u8>)> = segs
            .iter()
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect();

        // Step 1 interrupted: copies of live records appended after the checkpoint, index
        // not repointed.
        let active = segs.last().unwrap().clone();
        let mut img = std::fs::read(&active).unwrap();
        for (h, d) in &live {
            img.extend(record::encode(h, d));
        }
        std::fs::write(&active, &img).unwrap();
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        for (h, d) in &live {
            assert_eq!(s.read_block(h, 0, d.len() as u32).await.unwrap(), *d);
            assert_eq!(s.block_info(h).unwrap().unwrap().refs, 1);
        }
        assert!(s.compact_now().await.unwrap() >= 1);
        s.close().await.unwrap();
        drop(s);

        // Step 2 interrupted: index repointed and segment rows dropped, old files still
        // there (restore them).
        for (p, bytes) in &saved[..saved.len() - 1] {
            if !p.exists() {
                std::fs::write(p, bytes).unwrap();
            }
        }
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        for (h, d) in &live {
            assert_eq!(s.read_block(h, 0, d.len() as u32).await.unwrap(), *d);
        }
        let before = segment_bytes_on_disk(&path).0;
        assert!(s.compact_now().await.unwrap() >= 1);
        assert!(segment_bytes_on_disk(&path).0 < before);
        for (h, d) in &live {
            assert_eq!(s.read_block(h, 0, d.len() as u32).await.unwrap(), *d);
            assert_eq!(s.block_info(h).unwrap().unwrap().refs, 1);
        }
        s.close().await.unwrap();
    });
}

#[test]
fn scrub_marks_corrupt_blocks_bad() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        let blocks: Vec<_> = (0..6).map(|i| block(20_000, 200 + i)).collect();
        for (h, d) in &blocks {
            s.put_block(*h, d.clone(), H).await.unwrap();
        }
        s.sync_all().await.unwrap();
        let victim = blocks[3].0;
        let e = s.block_info(&victim).unwrap().unwrap();
        let seg = path.join("segments").join(format!("seg-{:08}", e.segment));
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[e.offset as usize + 500] ^= 0x80;
        std::fs::write(&seg, &bytes).unwrap();
        let mut bad = 0;
        let mut checked = 0;
        loop {
            let p = s.scrub_step(2).await.unwrap();
            bad += p.bad;
            checked += p.checked;
            if p.wrapped {
                break;
            }
        }
        assert_eq!((checked, bad), (6, 1));
        s.sync_all().await.unwrap();
        assert_eq!(s.stats().bad_blocks, 1);
        assert!(matches!(
            s.read_block(&victim, 0, 10).await,
            Err(StorageError::Corrupt(_))
        ));
        // A later put of the content (from a replica) repairs it.
        s.put_block(victim, blocks[3].1.clone(), H).await.unwrap();
        s.sync_all().await.unwrap();
        assert_eq!(s.stats().bad_blocks, 0);
        assert_eq!(s.read_block(&victim, 0, 20_000).await.unwrap(), blocks[3].1);
        s.close().await.unwrap();
    });
}

/// The offline repair's reference setting keeps GC's queue in step: references raised from
/// none take the block out of the queue (GC keeps it), references set to none queue it (GC
/// drops it).
#[test]
fn set_block_holders_moves_blocks_in_and_out_of_the_gc_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, gc_cfg()).await.unwrap();
        let (a, da) = block(10_000, 1);
        let (b, db) = block(10_000, 2);
        s.put_block(a, da.clone(), H).await.unwrap();
        s.put_block(b, db.clone(), H).await.unwrap();
        s.sync_all().await.unwrap();
        let (indexed, mut held) = (s.indexed_blocks().unwrap(), Default::default());
        s.collect_row_holders(&mut held).unwrap();
        assert_eq!(indexed.len(), 2);
        assert!(held.is_empty(), "no rows hold references yet");
        // a: released to 0 (queued for GC), then found still held by two: raised to 2.
        s.release_block(&a, H).await.unwrap();
        let two = vec![holder(1), holder(2)];
        s.set_block_holders(vec![(a, two.clone()), (b, vec![])])
            .await
            .unwrap();
        let mut got = s.block_holders(&a).unwrap();
        got.sort();
        assert_eq!(got, two);
        assert_eq!(s.gc_now().await.unwrap(), 1, "only b goes");
        assert_eq!(s.block_info(&a).unwrap().unwrap().refs, 2);
        assert_eq!(s.read_block(&a, 0, 10_000).await.unwrap(), da);
        assert_eq!(
            s.read_block(&b, 0, 10_000).await,
            Err(StorageError::NotFound)
        );
        // Unknown blocks are an error, not a silent success.
        assert_eq!(
            s.set_block_holders(vec![(b, vec![H])]).await,
            Err(StorageError::NotFound)
        );
        s.close().await.unwrap();
    });
}
