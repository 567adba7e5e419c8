//! Fault handling: a full disk is a clear error and the store stays usable; periodic and
//! never policies acknowledge, sync in the background and reopen consistently.

mod storage_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use granary::storage::{FsyncPolicy, ShardStore, StorageConfig, StorageError};
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
            match s.put_block(h, d.clone()).await {
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
            s.decref_block(h).await.unwrap();
        }
        s.gc_now().await.unwrap();
        s.compact_now().await.unwrap();
        let (h, d) = block(1 << 20, 999);
        s.put_block(h, d.clone()).await.unwrap();
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
                s.put_block(*h, d.clone()).await.unwrap();
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
