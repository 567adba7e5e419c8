//! Recovery: records written after the last checkpoint are re-indexed, a torn tail is
//! truncated at every possible cut, and writes go on after it; the index matches a model.

mod storage_util;

use std::collections::BTreeMap;
use std::path::Path;

use granary::meta::types::*;
use granary::storage::{record, ShardStore, StorageError};
use proptest::prelude::*;
use storage_util::*;

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.pop().unwrap()
}

#[test]
fn torn_tail_truncated_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (ha, da) = block(100_000, 1);
        let (hb, db) = block(3000, 2);
        {
            let s = ShardStore::open(&path, cfg()).await.unwrap();
            s.put_block(ha, da.clone(), H).await.unwrap();
            s.put_block(hb, db.clone(), H).await.unwrap();
            s.put_object(obj("k", b"v")).await.unwrap();
            s.close().await.unwrap();
        }
        // Records appended after the checkpoint, as if the process died between the data
        // fdatasync and the index commit.
        let seg = active_segment(&path);
        let base = std::fs::read(&seg).unwrap();
        let tail: Vec<(BlockHash, Vec<u8>)> =
            vec![block(5000, 3), block(70_000, 4), block(9000, 5)];
        let mut image = base.clone();
        let mut ends = vec![base.len()];
        for (h, d) in &tail {
            image.extend(record::encode(h, d));
            ends.push(image.len());
        }
        let mut cuts: Vec<usize> = (base.len()..=image.len()).step_by(1536).collect();
        for &e in &ends {
            cuts.extend([e.saturating_sub(1), e, e + 1, e + 4095, e + 4097]);
        }
        cuts.retain(|&c| c >= base.len() && c <= image.len());
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            std::fs::write(&seg, &image[..cut]).unwrap();
            let s = ShardStore::open(&path, cfg()).await.unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(
                std::fs::metadata(&seg).unwrap().len() as usize,
                ends[complete],
                "cut {cut}: tail not truncated to the last whole record"
            );
            assert_eq!(s.stats().recovered_records, complete as u64);
            assert_eq!(s.read_block(&ha, 0, 100_000).await.unwrap(), da);
            assert_eq!(s.read_block(&hb, 0, 3000).await.unwrap(), db);
            assert!(s.get_object(&BUCKET, "k").unwrap().is_some());
            for (i, (h, d)) in tail.iter().enumerate() {
                if i < complete {
                    assert_eq!(s.read_block(h, 0, d.len() as u32).await.unwrap(), *d);
                    // Possibly acknowledged (a new block is acked once its record is
                    // synced): count 1.
                    assert_eq!(s.block_info(h).unwrap().unwrap().refs, 1);
                } else {
                    assert_eq!(s.block_info(h).unwrap(), None, "cut {cut} block {i}");
                }
            }
            // Writes continue after the truncation point and survive a reopen.
            let (hn, dn) = block(4000, 100 + cut as u64);
            s.put_block(hn, dn.clone(), H).await.unwrap();
            s.close().await.unwrap();
            drop(s);
            let s = ShardStore::open(&path, cfg()).await.unwrap();
            assert_eq!(s.read_block(&hn, 0, 4000).await.unwrap(), dn);
            assert_eq!(s.stats().recovered_records, 0);
            s.close().await.unwrap();
            drop(s);
            // Reset the index for the next cut: restore the pre-tail image and LMDB state
            // by re-running from a fresh copy.
            std::fs::remove_dir_all(&path).unwrap();
            std::fs::create_dir_all(&path).unwrap();
            let s = ShardStore::open(&path, cfg()).await.unwrap();
            s.put_block(ha, da.clone(), H).await.unwrap();
            s.put_block(hb, db.clone(), H).await.unwrap();
            s.put_object(obj("k", b"v")).await.unwrap();
            s.close().await.unwrap();
            drop(s);
            assert_eq!(std::fs::read(&seg).unwrap(), base);
        }
    });
}

#[test]
fn lost_indexed_data_reads_as_error_not_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (ha, da) = block(100_000, 1);
        let (hb, db) = block(200_000, 2);
        {
            let s = ShardStore::open(&path, cfg()).await.unwrap();
            s.put_block(ha, da.clone(), H).await.unwrap();
            s.put_block(hb, db.clone(), H).await.unwrap();
            s.close().await.unwrap();
        }
        let seg = active_segment(&path);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 150_000).unwrap();
        drop(f);
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        assert_eq!(s.read_block(&ha, 0, 100_000).await.unwrap(), da);
        assert!(matches!(
            s.read_block(&hb, 0, 200_000).await,
            Err(StorageError::Corrupt(_))
        ));
        // The store stays usable.
        let (hc, dc) = block(10_000, 3);
        s.put_block(hc, dc.clone(), H).await.unwrap();
        assert_eq!(s.read_block(&hc, 0, 10_000).await.unwrap(), dc);
        s.close().await.unwrap();
    });
}

#[derive(Clone, Debug)]
enum MOp {
    PutBlock(u8, u8),
    Decref(u8, u8),
    PutObject(u8, u8),
    DeleteObject(u8),
    Reopen,
}

fn mop() -> impl Strategy<Value = MOp> {
    prop_oneof![
        4 => (0u8..6, 0u8..3).prop_map(|(b, h)| MOp::PutBlock(b, h)),
        3 => (0u8..7, 0u8..3).prop_map(|(b, h)| MOp::Decref(b, h)),
        3 => (0u8..5, any::<u8>()).prop_map(|(k, v)| MOp::PutObject(k, v)),
        2 => (0u8..5).prop_map(MOp::DeleteObject),
        1 => Just(MOp::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The index and object table against a BTreeMap model under random operations,
    /// with reopens in between (issued concurrently in small groups).
    #[test]
    fn index_matches_model(ops in proptest::collection::vec(mop(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let blocks: Vec<(BlockHash, Vec<u8>)> =
                (0..7).map(|i| block(1000 + 37_000 * i as usize, i)).collect();
            // Each block's holders (a block stays indexed, at no reference, until GC).
            let mut refs: BTreeMap<u8, std::collections::BTreeSet<u8>> = BTreeMap::new();
            let mut objs: BTreeMap<String, u8> = BTreeMap::new();
            let mut s = ShardStore::open(&path, fast_cfg()).await.unwrap();
            for op in ops {
                match op {
                    MOp::PutBlock(i, by) => {
                        let (h, d) = blocks[i as usize].clone();
                        s.put_block(h, d, holder(by)).await.unwrap();
                        refs.entry(i).or_default().insert(by);
                    }
                    MOp::Decref(i, by) => {
                        let r = s.release_block(&blocks[i as usize].0, holder(by)).await;
                        match refs.get_mut(&i) {
                            None => assert_eq!(r, Err(StorageError::NotFound)),
                            Some(held) => {
                                r.unwrap();
                                held.remove(&by);
                            }
                        }
                    }
                    MOp::PutObject(k, v) => {
                        let key = format!("key{k}");
                        let prev = s.put_object(obj(&key, &[v])).await.unwrap();
                        assert_eq!(prev.previous.is_some(), objs.contains_key(&key));
                        objs.insert(key, v);
                    }
                    MOp::DeleteObject(k) => {
                        let key = format!("key{k}");
                        let marker = (VersionId::random(), next_stamp());
                        let prev = s.delete_object(&BUCKET, &key, marker.0, marker.1).await;
                        let prev = prev.unwrap().previous;
                        assert_eq!(prev.map(|r| r.data), objs.remove(&key).map(|v| ObjectData::Inline(vec![v])));
                    }
                    MOp::Reopen => {
                        s.close().await.unwrap();
                        drop(s);
                        s = ShardStore::open(&path, fast_cfg()).await.unwrap();
                    }
                }
                for (i, (h, d)) in blocks.iter().enumerate() {
                    let info = s.block_info(h).unwrap();
                    let held = refs.get(&(i as u8)).map(|h| h.len() as u64);
                    assert_eq!(info.map(|e| e.refs), held);
                    if info.is_some() {
                        assert_eq!(&s.read_block(h, 0, d.len() as u32).await.unwrap(), d);
                    }
                }
                let listed: Vec<(String, ObjectData)> = s
                    .list_objects(&BUCKET, "", "", 100)
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.key, r.data))
                    .collect();
                let model: Vec<(String, ObjectData)> = objs
                    .iter()
                    .map(|(k, v)| (k.clone(), ObjectData::Inline(vec![*v])))
                    .collect();
                assert_eq!(listed, model);
            }
            assert_eq!(s.stats().blocks as usize, refs.len());
            s.close().await.unwrap();
        });
    }
}
