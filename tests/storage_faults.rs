//! Fault handling: a full disk is a clear error and the store stays usable; periodic and
//! never policies acknowledge, sync in the background and reopen consistently.

mod storage_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use granary::meta::types::BlockHash;
use granary::storage::{DiskKind, FsyncPolicy, ShardStore, SimDisk, StorageConfig, StorageError};
use storage_util::*;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A small ext4 file system on a loop device, or None where that is not possible.
fn small_fs(dir: &Path, mib: u64) -> Option<Mount> {
    let img = dir.join("fs.img");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).ok()?;
    std::fs::File::create(&img).ok()?.set_len(mib << 20).ok()?;
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0"])
        .arg(&img)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let ok = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .ok()?
        .success();
    ok.then_some(Mount(mnt))
}

#[test]
fn disk_full_is_an_error_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = small_fs(dir.path(), 24) else {
        eprintln!("skipped: cannot mount a loop file system here");
        return;
    };
    let path = m.0.join("shard");
    run(move || async move {
        let cfg = StorageConfig {
            segment_bytes: 2 << 20,
            block_gc_delay_s: 0,
            maintenance_interval_s: 0,
            scrub_bytes_per_s: 0,
            lmdb_map_bytes: 64 << 20,
            ..cfg()
        };
        let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
        let mut stored = Vec::new();
        let err = loop {
            let (h, d) = block(1 << 20, stored.len() as u64);
            match s.put_block(h, d.clone(), H).await {
                Ok(()) => stored.push((h, d)),
                Err(e) => break e,
            }
            assert!(stored.len() < 100, "the small file system never filled");
        };
        assert!(matches!(err, StorageError::DiskFull(_)), "{err:?}");
        assert!(stored.len() >= 5);
        // Everything acknowledged is still readable; metadata still works.
        for (h, d) in &stored {
            assert_eq!(s.read_block(h, 0, 1 << 20).await.unwrap(), *d);
        }
        s.put_object(obj("still-works", b"x")).await.unwrap();
        // Free space: drop most blocks, GC, compact; then writes work again.
        for (h, _) in &stored[..stored.len() - 1] {
            s.release_block(h, H).await.unwrap();
        }
        s.gc_now().await.unwrap();
        s.compact_now().await.unwrap();
        let (h, d) = block(1 << 20, 999);
        s.put_block(h, d.clone(), H).await.unwrap();
        assert_eq!(s.read_block(&h, 0, 1 << 20).await.unwrap(), d);
        let (lh, ld) = stored.last().unwrap();
        assert_eq!(s.read_block(lh, 0, 1 << 20).await.unwrap(), *ld);
        s.close().await.unwrap();
        drop(s);
        let s = ShardStore::open(&path, cfg).await.unwrap();
        assert_eq!(s.read_block(&h, 0, 1 << 20).await.unwrap(), d);
        assert!(s.get_object(&BUCKET, "still-works").unwrap().is_some());
        s.close().await.unwrap();
    });
    drop(m);
}

#[test]
fn periodic_and_never_policies() {
    for policy in [
        FsyncPolicy::Periodic(Duration::from_millis(20)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let cfg = StorageConfig {
                data_fsync: policy,
                metadata_fsync: policy,
                ..cfg()
            };
            let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
            let blocks: Vec<_> = (0..20).map(|i| block(30_000, i)).collect();
            for (h, d) in &blocks {
                s.put_block(*h, d.clone(), H).await.unwrap();
                s.put_object(obj(&h.to_hex(), b"v")).await.unwrap();
            }
            sleep_ms(80).await;
            let st = s.stats();
            if matches!(policy, FsyncPolicy::Periodic(_)) {
                assert!(st.data_syncs > 0, "no background sync: {st:?}");
            } else {
                assert_eq!(st.data_syncs, 0);
            }
            s.close().await.unwrap();
            drop(s);
            let s = ShardStore::open(&path, cfg).await.unwrap();
            for (h, d) in &blocks {
                assert_eq!(s.read_block(h, 0, 30_000).await.unwrap(), *d);
                assert!(s.get_object(&BUCKET, &h.to_hex()).unwrap().is_some());
            }
        });
    }
}

// ---------------------------------------------------------------- injected I/O errors
// On the simulated disk (`DiskKind::Sim`), which fails the next write or fdatasync on
// request and can lose power afterwards.

fn sim_cfg(sim: &SimDisk) -> StorageConfig {
    StorageConfig {
        disk: DiskKind::Sim(sim.clone()),
        maintenance_interval_s: 0,
        scrub_bytes_per_s: 0,
        ..cfg()
    }
}

async fn assert_all_readable(s: &ShardStore, blocks: &[(BlockHash, Vec<u8>)], ctx: &str) {
    for (h, d) in blocks {
        match s.read_block(h, 0, d.len() as u32).await {
            Ok(got) => assert!(got == *d, "{ctx}: block {} wrong bytes", h.to_hex()),
            Err(e) => panic!("{ctx}: acknowledged block {} lost: {e}", h.to_hex()),
        }
    }
}

async fn assert_scrub_clean(s: &ShardStore, ctx: &str) {
    loop {
        let p = s.scrub_step(1000).await.unwrap();
        assert_eq!(p.bad, 0, "{ctx}: the scrub found corrupt blocks");
        if p.wrapped {
            break;
        }
    }
    assert_eq!(s.stats().bad_blocks, 0, "{ctx}");
}

#[test]
fn failed_fdatasync_disables_block_writes_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let sim = SimDisk::new(21).with_keep_unsynced(0.0);
        let cfg = sim_cfg(&sim);
        let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
        let mut acked: Vec<_> = (0..20)
            .map(|i| block(20_000 + i as usize * 999, i))
            .collect();
        for (h, d) in &acked {
            s.put_block(*h, d.clone(), H).await.unwrap();
        }
        s.put_object(obj("before", b"1")).await.unwrap();

        sim.fail_next_sync(libc::EIO);
        let (hx, dx) = block(5000, 100);
        let e = s.put_block(hx, dx.clone(), H).await.unwrap_err();
        assert!(
            matches!(&e, StorageError::Failed(m) if m.contains("fdatasync")),
            "{e:?}"
        );
        // Latched: new blocks are refused with a clear error until the store is reopened.
        let (hy, dy) = block(5000, 101);
        let e = s.put_block(hy, dy.clone(), H).await.unwrap_err();
        assert!(matches!(e, StorageError::Failed(_)), "{e:?}");
        assert!(e.to_string().contains("reopen"), "{e}");
        // Nothing acknowledged is lost, reads and metadata writes go on, and a put of a
        // stored block is only a reference (no data write).
        assert_all_readable(&s, &acked, "after the failed sync").await;
        s.put_object(obj("after", b"2")).await.unwrap();
        s.put_block(acked[0].0, acked[0].1.clone(), H)
            .await
            .unwrap();
        s.close().await.unwrap();
        drop(s);

        // Reopen (a restart): consistent, everything acknowledged there, writes work again.
        let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
        assert_all_readable(&s, &acked, "after reopen").await;
        assert!(s.get_object(&BUCKET, "before").unwrap().is_some());
        assert!(s.get_object(&BUCKET, "after").unwrap().is_some());
        s.put_block(hy, dy.clone(), H).await.unwrap();
        acked.push((hy, dy));
        assert_scrub_clean(&s, "after reopen").await;
        // Then the power goes: still everything acknowledged (the unacknowledged block
        // whose sync failed was synced by recovery before it was re-indexed, or is gone).
        sim.power_loss();
        let _ = s.close().await;
        drop(s);
        let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
        assert_all_readable(&s, &acked, "after the power loss").await;
        match s.read_block(&hx, 0, dx.len() as u32).await {
            Ok(got) => assert_eq!(got, dx),
            Err(StorageError::NotFound) => {}
            Err(e) => panic!("{e:?}"),
        }
        assert_scrub_clean(&s, "after the power loss").await;
        let (hz, dz) = block(7000, 102);
        s.put_block(hz, dz.clone(), H).await.unwrap();
        assert_eq!(s.read_block(&hz, 0, 7000).await.unwrap(), dz);
        s.close().await.unwrap();
    });
}

/// After an injected EIO (under `always`, a write that may have failed in its flush), block
/// writes are latched off: check that, and reopen the store.
async fn reopen_if_latched(
    s: Rc<ShardStore>,
    path: &Path,
    cfg: &StorageConfig,
    errno: i32,
) -> Rc<ShardStore> {
    if errno != libc::EIO {
        return s;
    }
    let (h, d) = block(10_000, 1999);
    let e = s.put_block(h, d, H).await.unwrap_err();
    assert!(matches!(e, StorageError::Failed(_)), "latched: {e:?}");
    s.close().await.unwrap();
    drop(s);
    ShardStore::open(path, cfg.clone()).await.unwrap()
}

#[test]
fn failed_write_fails_its_batch_and_the_store_goes_on() {
    // Under `always` the segments are O_DSYNC, so an I/O error of a write may be its
    // flush's: block writes are latched off until the store is reopened, as after a
    // failed fdatasync. A full disk refuses the write before anything is done: the store
    // goes on at once.
    for errno in [libc::EIO, libc::ENOSPC] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            // Slow writes: several batches are in flight when one fails.
            let sim = SimDisk::new(22)
                .with_latency(Duration::from_micros(300), Duration::from_micros(300));
            let cfg = StorageConfig {
                fsync_batch_bytes: 64 << 10,
                ..sim_cfg(&sim)
            };
            let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
            let mut acked: Vec<_> = (0..5).map(|i| block(30_000, i)).collect();
            for (h, d) in &acked {
                s.put_block(*h, d.clone(), H).await.unwrap();
            }
            sim.fail_next_write(errno);
            let tasks: Vec<_> = (0..24u64)
                .map(|i| {
                    let s = s.clone();
                    glommio::spawn_local(async move {
                        let (h, d) = block(20_000 + i as usize * 100, 1000 + i);
                        let r = s.put_block(h, d.clone(), H).await;
                        (h, d, r)
                    })
                })
                .collect();
            let mut failed = 0;
            for t in tasks {
                let (h, d, r) = t.await;
                match r {
                    Ok(()) => acked.push((h, d)),
                    Err(StorageError::DiskFull(_)) if errno == libc::ENOSPC => failed += 1,
                    // The failed batch (EIO), or a batch in flight behind it.
                    Err(StorageError::Io(_)) => failed += 1,
                    Err(StorageError::Failed(_)) if errno == libc::EIO => failed += 1,
                    Err(e) => panic!("errno {errno}: unexpected {e:?}"),
                }
            }
            assert!(failed >= 1, "the injected write failure failed nobody");
            assert_eq!(sim.stats().failed_writes, 1);
            let s = reopen_if_latched(s, &path, &cfg, errno).await;
            // The store goes on: later writes succeed, metadata too.
            for i in 0..10u64 {
                let (h, d) = block(10_000, 2000 + i);
                s.put_block(h, d.clone(), H).await.unwrap();
                acked.push((h, d));
            }
            s.put_object(obj("k", b"v")).await.unwrap();
            assert_all_readable(&s, &acked, "after the failed write").await;
            // The segment was rewound: the acknowledged records lie back to back from the
            // start of the segment, with no hole where the failed batch was (recovery
            // stops at the first hole, so records after one could not be re-indexed).
            let mut at: Vec<(u32, u64, u32)> = acked
                .iter()
                .map(|(h, _)| {
                    let e = s.block_info(h).unwrap().unwrap();
                    (e.segment, e.offset, e.record_len)
                })
                .collect();
            at.sort_unstable();
            let mut next = 0;
            for (seg, off, len) in at {
                assert_eq!(seg, 1, "one segment");
                assert_eq!(off, next, "errno {errno}: hole in the segment before {off}");
                next = off + len as u64;
            }
            // A process crash right away (some index entries not committed): recovery
            // finds every acknowledged record.
            sim.crash();
            let _ = s.close().await;
            drop(s);
            let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
            assert_all_readable(&s, &acked, "after a crash").await;
            assert!(s.get_object(&BUCKET, "k").unwrap().is_some());
            assert_scrub_clean(&s, "after a crash").await;
            // And a power loss (everything acknowledged was synced).
            sim.power_loss();
            let _ = s.close().await;
            drop(s);
            let s = ShardStore::open(&path, cfg.clone()).await.unwrap();
            assert_all_readable(&s, &acked, "after a power loss").await;
            assert_scrub_clean(&s, "after a power loss").await;
            let (h, d) = block(3000, 3000);
            s.put_block(h, d.clone(), H).await.unwrap();
            assert_eq!(s.read_block(&h, 0, 3000).await.unwrap(), d);
            s.close().await.unwrap();
        });
    }
}
