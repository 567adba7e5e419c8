//! End-to-end behaviour of one ShardStore: blocks, objects, multipart rows, global tables,
//! group commit, reopen, corruption handling.

mod storage_util;

use std::rc::Rc;

use granary::meta::types::*;
use granary::storage::{
    Completing, Completion, ObjectPut, ObjectWrite, PutIf, ShardStore, StorageError, META_FORMAT,
};
use storage_util::*;
use PutIf::Written;

#[test]
fn blocks_round_trip_dedup_and_refcounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let (h1, d1) = block(1 << 20, 1);
        let (h2, d2) = block(200_000, 2);
        let (h0, d0) = block(0, 3);
        s.put_block(h1, d1.clone(), H).await.unwrap();
        s.put_block(h2, d2.clone(), H).await.unwrap();
        s.put_block(h0, d0.clone(), H).await.unwrap();
        assert_eq!(s.read_block(&h1, 0, 1 << 20).await.unwrap(), d1);
        assert_eq!(s.read_block(&h0, 0, 0).await.unwrap(), d0);
        // Ranges, including across chunk boundaries and far from the header.
        for (off, len) in [
            (0u32, 1u32),
            (65535, 2),
            (70_000, 100_000),
            (199_999, 1),
            (10, 0),
        ] {
            assert_eq!(
                s.read_block(&h2, off, len).await.unwrap(),
                &d2[off as usize..(off + len) as usize]
            );
        }
        for (off, len) in [(900_000u32, 100_000u32), (300_000, 65536)] {
            assert_eq!(
                s.read_block(&h1, off, len).await.unwrap(),
                &d1[off as usize..(off + len) as usize]
            );
        }
        assert!(matches!(
            s.read_block(&h2, 199_999, 2).await,
            Err(StorageError::Invalid(_))
        ));
        assert_eq!(
            s.read_block(&BlockHash([9; 32]), 0, 1).await,
            Err(StorageError::NotFound)
        );
        // Dedup: a second holder's put writes no data, adds its reference; the same holder
        // putting again (a retry) adds nothing.
        let written = s.stats().data_bytes_written;
        s.put_block(h1, d1.clone(), holder(2)).await.unwrap();
        s.put_block(h1, d1.clone(), holder(2)).await.unwrap();
        assert_eq!(s.stats().data_bytes_written, written);
        assert_eq!(s.block_info(&h1).unwrap().unwrap().refs, 2);
        s.release_block(&h1, H).await.unwrap();
        s.release_block(&h1, H).await.unwrap();
        assert_eq!(
            s.block_info(&h1).unwrap().unwrap().refs,
            1,
            "a release counts once"
        );
        s.release_block(&h1, holder(2)).await.unwrap();
        let e = s.block_info(&h1).unwrap().unwrap();
        assert_eq!(e.refs, 0);
        assert!(e.zero_since_ms > 0);
        // Still readable during the grace delay; a new put revives it.
        assert_eq!(s.read_block(&h1, 0, 10).await.unwrap(), &d1[..10]);
        s.put_block(h1, d1.clone(), H).await.unwrap();
        let e = s.block_info(&h1).unwrap().unwrap();
        assert_eq!((e.refs, e.zero_since_ms), (1, 0));
        assert_eq!(
            s.release_block(&BlockHash([7; 32]), H).await,
            Err(StorageError::NotFound)
        );
        // A reference without the data (a copy): counted for a stored block, refused for
        // an absent one; neither reads nor writes a byte.
        let (read, written) = (s.stats().read_bytes, s.stats().data_bytes_written);
        assert!(s.add_block_ref(&h2, holder(3)).await.unwrap());
        assert_eq!(s.block_info(&h2).unwrap().unwrap().refs, 2);
        assert!(!s.add_block_ref(&BlockHash([7; 32]), H).await.unwrap());
        assert!(s.block_info(&BlockHash([7; 32])).unwrap().is_none());
        assert_eq!(
            (s.stats().read_bytes, s.stats().data_bytes_written),
            (read, written)
        );
        s.release_block(&h2, H).await.unwrap();
        let st = s.stats();
        assert_eq!(st.blocks, 3);
        assert!(st.live_bytes > 1 << 20);
        s.close().await.unwrap();
        drop(s);
        // Reopen: everything still there.
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        assert_eq!(s.read_block(&h1, 0, 1 << 20).await.unwrap(), d1);
        assert_eq!(s.read_block(&h2, 0, 200_000).await.unwrap(), d2);
        assert_eq!(s.block_info(&h1).unwrap().unwrap().refs, 1);
        assert_eq!(s.stats().recovered_records, 0);
        s.close().await.unwrap();
    });
}

#[test]
fn concurrent_puts_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..512u64 {
            let s = Rc::clone(&s);
            tasks.push(glommio::spawn_local(async move {
                s.put_object(obj(&format!("k{i:04}"), &data(100, i)))
                    .await
                    .unwrap();
                if i % 4 == 0 {
                    let (h, d) = block(50_000, 1000 + i);
                    s.put_block(h, d, H).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        let st = s.stats();
        assert!(st.meta_commits < 512, "no group commit: {st:?}");
        assert!(st.data_batches < 128, "no data batching: {st:?}");
        assert_eq!(st.blocks, 128);
        let all = s.list_objects(&BUCKET, "", "", 10_000).unwrap();
        assert_eq!(all.len(), 512);
        assert_eq!(s.bucket_object_count(&BUCKET).unwrap(), 512);
        s.close().await.unwrap();
    });
}

#[test]
fn objects_list_conditional_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        assert!(s.bucket_is_empty(&BUCKET).unwrap());
        for k in ["b", "a", "a/1", "a/2", "c", "é", "a\u{1}"] {
            let written = s.put_object(obj(k, k.as_bytes())).await.unwrap();
            assert_eq!(written, ObjectWrite::default());
        }
        let other = BucketId([2; 16]);
        let mut o = obj("a", b"x");
        o.bucket = other;
        s.put_object(o).await.unwrap();
        let keys = |v: Vec<ObjectRow>| v.into_iter().map(|r| r.key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list_objects(&BUCKET, "", "", 100).unwrap()),
            ["a", "a\u{1}", "a/1", "a/2", "b", "c", "é"]
        );
        assert_eq!(
            keys(s.list_objects(&BUCKET, "a/", "", 100).unwrap()),
            ["a/1", "a/2"]
        );
        assert_eq!(
            keys(s.list_objects(&BUCKET, "a/", "a/1", 100).unwrap()),
            ["a/2"]
        );
        assert_eq!(
            keys(s.list_objects(&BUCKET, "", "a/2", 2).unwrap()),
            ["b", "c"]
        );
        assert_eq!(
            keys(s.list_objects(&BUCKET, "", "é", 2).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(keys(s.list_objects(&other, "", "", 100).unwrap()), ["a"]);
        assert!(!s.bucket_is_empty(&other).unwrap());
        s.close().await.unwrap();
    });
}

/// Writes merge by version: the newest is visible, what it replaces is dropped (its blocks
/// are released by the caller), a write older than the visible version is dropped itself;
/// conditions are decided in the transaction that writes.
#[test]
fn object_writes_merge_conditions_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        for k in ["b", "c"] {
            s.put_object(obj(k, k.as_bytes())).await.unwrap();
        }
        // A newer version replaces the visible one, which the write drops.
        let old_b = s.get_object(&BUCKET, "b").unwrap().unwrap();
        let w = s.put_object(obj("b", b"new")).await.unwrap();
        assert_eq!(
            w.previous.as_ref().unwrap().data,
            ObjectData::Inline(b"b".to_vec())
        );
        assert_eq!(w.dropped, vec![old_b]);
        // An older write meets a newer version: it is dropped itself, never visible.
        let mut stale = obj("b", b"stale");
        stale.stamp.time_ms = 0;
        let w = s.put_object(stale.clone()).await.unwrap();
        assert_eq!(w.dropped, vec![stale]);
        // If-None-Match: * races: exactly one of many concurrent creators wins.
        let mut tasks = Vec::new();
        for i in 0..50u8 {
            let s = Rc::clone(&s);
            tasks.push(glommio::spawn_local(async move {
                s.put_object_if(obj("race", &[i]), Some(Condition::Absent))
                    .await
                    .unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            if let ObjectPut::Written(_) = t.await {
                won += 1;
            }
        }
        assert_eq!(won, 1);
        let late = s.put_object_if(obj("race", b"z"), Some(Condition::Absent));
        assert!(matches!(late.await.unwrap(), ObjectPut::Refused(Some(_))));
        let got = s.get_object(&BUCKET, "b").unwrap().unwrap();
        assert_eq!(got.data, ObjectData::Inline(b"new".to_vec()));
        let deleted = s
            .delete_object(&BUCKET, "b", VersionId::random(), next_stamp())
            .await;
        assert_eq!(deleted.unwrap().dropped, vec![got]);
        let again = s
            .delete_object(&BUCKET, "b", VersionId::random(), next_stamp())
            .await;
        assert_eq!(again.unwrap(), ObjectWrite::default());
        assert_eq!(s.get_object(&BUCKET, "b").unwrap(), None);
        // A conditional delete (lifecycle: only the version found expired) is refused once
        // the object changed, and done while it holds.
        let old = s.get_object(&BUCKET, "c").unwrap().unwrap();
        let newer = obj("c", b"rewritten");
        s.put_object(newer.clone()).await.unwrap();
        let marker = (VersionId::random(), next_stamp());
        let refused = s
            .delete_object_if(
                &BUCKET,
                "c",
                marker,
                Some(Condition::VersionIs(old.version)),
            )
            .await
            .unwrap();
        assert_eq!(refused, ObjectPut::Refused(Some(newer.clone())));
        let marker = (VersionId::random(), next_stamp());
        let done = s
            .delete_object_if(
                &BUCKET,
                "c",
                marker,
                Some(Condition::VersionIs(newer.version)),
            )
            .await
            .unwrap();
        let ObjectPut::Written(done) = done else {
            panic!("the delete of the version found is done")
        };
        assert_eq!(done.previous, Some(newer));
        assert_eq!(s.get_object(&BUCKET, "c").unwrap(), None);
        s.close().await.unwrap();
    });
}

/// Completing an upload is one transaction: the first Complete writes the object and
/// removes the upload and its parts; a second Complete, an Abort or an UploadPart after it
/// finds the upload gone (the Complete remembered, so a retry can be answered), and a
/// Complete whose parts changed since they were read writes nothing.
#[test]
fn completing_an_upload_is_atomic_and_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        s.put_upload(upload("k", "u1")).await.unwrap();
        for n in [1, 2, 3] {
            s.put_part(&BUCKET, "k", part("u1", n)).await.unwrap();
        }
        let completing = |chosen: Vec<PartRow>| Completing {
            object: obj("k", b"made of parts"),
            upload_id: "u1".into(),
            chosen,
            condition: None,
        };
        // A part read, then uploaded again: nothing is written.
        let mut stale = part("u1", 1);
        stale.etag = "\"old\"".into();
        let changed = s.complete_upload(completing(vec![stale])).await.unwrap();
        assert!(matches!(changed, Completion::PartsChanged), "{changed:?}");
        assert_eq!(s.get_object(&BUCKET, "k").unwrap(), None);

        let first = s
            .complete_upload(completing(vec![part("u1", 1), part("u1", 3)]))
            .await;
        match first.unwrap() {
            Completion::Completed { written, unused } => {
                assert_eq!(written, ObjectWrite::default());
                assert_eq!(unused, vec![part("u1", 2)]);
            }
            other => panic!("first Complete: {other:?}"),
        }
        assert!(s.get_object(&BUCKET, "k").unwrap().is_some());
        assert_eq!(s.get_upload(&BUCKET, "k", "u1").unwrap(), None);
        assert!(s
            .list_parts((&BUCKET, "k"), "u1", 0, 100)
            .unwrap()
            .is_empty());
        match s
            .complete_upload(completing(vec![part("u1", 1)]))
            .await
            .unwrap()
        {
            Completion::AlreadyCompleted(done) => {
                assert_eq!(done.etag, obj("k", b"made of parts").etag);
                assert_eq!(
                    done.parts,
                    vec![(1, part("u1", 1).etag), (3, part("u1", 3).etag)]
                );
            }
            other => panic!("second Complete: {other:?}"),
        }
        let (gone, parts) = s
            .abort_upload(&BUCKET, "k", "u1", next_stamp())
            .await
            .unwrap();
        assert_eq!((gone, parts), (None, vec![]));
        let late = s.put_part(&BUCKET, "k", part("u1", 4)).await.unwrap();
        assert_eq!(late, PutIf::Refused(None));
        assert!(s
            .list_parts((&BUCKET, "k"), "u1", 0, 100)
            .unwrap()
            .is_empty());

        // Aborted first: a Complete then finds nothing.
        s.put_upload(upload("k", "u2")).await.unwrap();
        s.put_part(&BUCKET, "k", part("u2", 1)).await.unwrap();
        s.abort_upload(&BUCKET, "k", "u2", next_stamp())
            .await
            .unwrap();
        let mut late = completing(vec![part("u2", 1)]);
        late.upload_id = "u2".into();
        let after_abort = s.complete_upload(late).await.unwrap();
        assert!(
            matches!(after_abort, Completion::NoSuchUpload),
            "{after_abort:?}"
        );

        // DeleteBucket's sweep takes every upload of the bucket and its parts.
        s.put_upload(upload("x", "u3")).await.unwrap();
        s.put_part(&BUCKET, "x", part("u3", 7)).await.unwrap();
        let swept = s.delete_bucket_uploads(&BUCKET).await.unwrap();
        assert_eq!(swept, vec![part("u3", 7)]);
        assert!(s.list_uploads(&BUCKET, "", "", "", 10).unwrap().is_empty());
        s.close().await.unwrap();
    });
}

fn upload(key: &str, id: &str) -> UploadRow {
    UploadRow {
        bucket: BUCKET,
        key: key.into(),
        upload_id: id.into(),
        initiated_ms: 5,
        headers: vec![],
        checksum_algorithm: None,
        state: Lww::new(Stamp::ZERO, UploadState::InProgress),
    }
}

fn part(id: &str, n: u32) -> PartRow {
    PartRow {
        upload_id: id.into(),
        number: n,
        stamp: Stamp::ZERO,
        holder: holder(n as u8),
        bytes: 10,
        etag: format!("\"p{n}\""),
        last_modified_ms: 1,
        checksum: None,
        blocks: vec![BlockRef {
            hash: BlockHash([n as u8; 32]),
            bytes: 10,
        }],
    }
}

#[test]
fn multipart_rows_and_global_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        for (k, id) in [("a", "u2"), ("a", "u1"), ("b", "u3"), ("ab", "u4")] {
            s.put_upload(upload(k, id)).await.unwrap();
        }
        let ids = |v: Vec<UploadRow>| v.into_iter().map(|u| u.upload_id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list_uploads(&BUCKET, "", "", "", 10).unwrap()),
            ["u1", "u2", "u4", "u3"]
        );
        assert_eq!(
            ids(s.list_uploads(&BUCKET, "", "a", "", 10).unwrap()),
            ["u4", "u3"]
        );
        assert_eq!(
            ids(s.list_uploads(&BUCKET, "", "a", "u1", 10).unwrap()),
            ["u2", "u4", "u3"]
        );
        assert_eq!(
            ids(s.list_uploads(&BUCKET, "a", "", "", 10).unwrap()),
            ["u1", "u2", "u4"]
        );
        assert_eq!(
            ids(s.list_uploads(&BUCKET, "", "", "", 2).unwrap()),
            ["u1", "u2"]
        );
        assert_eq!(
            s.get_upload(&BUCKET, "a", "u1").unwrap(),
            Some(upload("a", "u1"))
        );
        for n in [3, 1, 2, 10000] {
            let put = s.put_part(&BUCKET, "a", part("u1", n)).await.unwrap();
            assert_eq!(put, Written(None));
        }
        s.put_part(&BUCKET, "a", part("u2", 1)).await.unwrap();
        let again = s.put_part(&BUCKET, "a", part("u1", 2)).await.unwrap();
        assert_eq!(again, Written(Some(part("u1", 2))));
        let nums = |v: Vec<PartRow>| v.into_iter().map(|p| p.number).collect::<Vec<_>>();
        assert_eq!(
            nums(s.list_parts((&BUCKET, "a"), "u1", 0, 100).unwrap()),
            [1, 2, 3, 10000]
        );
        assert_eq!(nums(s.list_parts((&BUCKET, "a"), "u1", 2, 1).unwrap()), [3]);
        assert_eq!(
            nums(s.list_parts((&BUCKET, "a"), "u1", u32::MAX, 10).unwrap()),
            Vec::<u32>::new()
        );
        let (u, parts) = s
            .abort_upload(&BUCKET, "a", "u1", next_stamp())
            .await
            .unwrap();
        assert_eq!(u, Some(upload("a", "u1")));
        assert_eq!(nums(parts), [1, 2, 3, 10000]);
        assert!(s
            .list_parts((&BUCKET, "a"), "u1", 0, 100)
            .unwrap()
            .is_empty());
        assert_eq!(
            nums(s.list_parts((&BUCKET, "a"), "u2", 0, 100).unwrap()),
            [1]
        );

        s.close().await.unwrap();
    });
}

#[test]
fn global_tables_store_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let b = |name: &str, id: u8| BucketRow {
            id: BucketId([id; 16]),
            name: name.into(),
            created_ms: 1,
            stamp: Stamp::ZERO,
            deleted: false,
            grants: vec![],
            website: None,
            cors: vec![],
            public_read: false,
            lifecycle: None,
            tags: vec![],
        };
        let record = |v: BucketRow| BucketRecord::of_view(&v, Stamp::ZERO);
        s.put_bucket(record(b("zeta", 1))).await.unwrap();
        s.put_bucket(record(b("alpha", 2))).await.unwrap();
        let names: Vec<_> = s
            .list_buckets()
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        let alpha = s.get_bucket(&BucketId([2; 16])).unwrap();
        assert_eq!(alpha.map(|r| r.view()), Some(b("alpha", 2)));
        let key = KeyRow {
            access_key_id: "GK1".into(),
            secret_access_key: "s".into(),
            name: "k".into(),
            created_ms: 1,
            stamp: Stamp::ZERO,
            deleted: false,
            create_bucket: true,
        };
        let key = KeyRecord::of_view(&key, Stamp::ZERO);
        s.put_key(key.clone()).await.unwrap();
        assert_eq!(s.list_keys().unwrap(), vec![key.clone()]);
        assert_eq!(s.get_key("GK1").unwrap(), Some(key));
        s.close().await.unwrap();
    });
}

#[test]
fn corrupt_block_is_an_error_then_repaired_by_put() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let (h, d) = block(300_000, 9);
        s.put_block(h, d.clone(), H).await.unwrap();
        let e = s.block_info(&h).unwrap().unwrap();
        // Flip a byte in the second chunk of the data on disk.
        let seg = path.join("segments").join(format!("seg-{:08}", e.segment));
        let mut bytes = std::fs::read(&seg).unwrap();
        let at = e.offset as usize + 100 + 70_000;
        bytes[at] ^= 1;
        std::fs::write(&seg, &bytes).unwrap();
        // The first chunk still reads; the corrupted one is an error, never wrong bytes.
        assert_eq!(s.read_block(&h, 0, 1000).await.unwrap(), &d[..1000]);
        assert!(matches!(
            s.read_block(&h, 65_536, 10_000).await,
            Err(StorageError::Corrupt(_))
        ));
        // Marked bad: no longer served at all, nor referenced without its data.
        s.sync_all().await.unwrap();
        assert!(s.block_info(&h).unwrap().unwrap().bad);
        assert!(!s.add_block_ref(&h, H).await.unwrap());
        assert!(matches!(
            s.read_block(&h, 0, 1000).await,
            Err(StorageError::Corrupt(_))
        ));
        // A put of the same content repairs it.
        s.put_block(h, d.clone(), holder(2)).await.unwrap();
        assert_eq!(s.read_block(&h, 0, 300_000).await.unwrap(), d);
        s.sync_all().await.unwrap(); // the index entry of a fresh record commits after the ack
        assert_eq!(s.block_info(&h).unwrap().unwrap().refs, 2);
        s.close().await.unwrap();
    });
}

#[test]
fn streaming_reads_verify_chunks_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let (h, d) = block(1_000_000, 5);
        s.put_block(h, d.clone(), H).await.unwrap();
        let r = s.open_block(&h).await.unwrap();
        assert_eq!(r.len(), 1_000_000);
        let mut got = Vec::new();
        let mut off = 0u32;
        while off < r.len() {
            let n = (r.len() - off).min(65_536);
            got.extend(r.read(off, n).await.unwrap());
            off += n;
        }
        assert_eq!(got, d);
        assert_eq!(r.read(999_990, 10).await.unwrap(), &d[999_990..]);
        assert!(matches!(
            r.read(999_990, 11).await,
            Err(StorageError::Invalid(_))
        ));
        // A chunk corrupted on disk after opening: that read fails, others still work.
        let e = s.block_info(&h).unwrap().unwrap();
        let seg = path.join("segments").join(format!("seg-{:08}", e.segment));
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[e.offset as usize + 4096 + 3 * 65_536] ^= 4;
        std::fs::write(&seg, &bytes).unwrap();
        assert!(r.read(0, 1000).await.is_ok());
        assert!(matches!(
            r.read(3 * 65_536, 10).await,
            Err(StorageError::Corrupt(_))
        ));
        assert_eq!(
            s.open_block(&BlockHash([1; 32])).await.err(),
            Some(StorageError::NotFound)
        );
        s.close().await.unwrap();
    });
}

#[test]
fn longest_keys_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let key = "k".repeat(granary::constants::OBJECT_KEY_BYTES_MAX);
        s.put_object(obj(&key, b"x")).await.unwrap();
        assert!(s.get_object(&BUCKET, &key).unwrap().is_some());
        let mut u = UploadRow {
            bucket: BUCKET,
            key: key.clone(),
            upload_id: "u".repeat(64),
            initiated_ms: 1,
            headers: vec![],
            checksum_algorithm: None,
            state: Lww::new(Stamp::ZERO, UploadState::InProgress),
        };
        s.put_upload(u.clone()).await.unwrap();
        assert_eq!(
            s.get_upload(&BUCKET, &key, &u.upload_id).unwrap(),
            Some(u.clone())
        );
        u.upload_id = "v".repeat(64);
        s.put_upload(u).await.unwrap();
        assert_eq!(s.list_uploads(&BUCKET, "", "", "", 10).unwrap().len(), 2);
        s.close().await.unwrap();
    });
}

/// Sets the metadata format marker of a closed store's environment.
fn set_meta_format(path: &std::path::Path, format: u32) {
    use heed::types::Bytes;
    // SAFETY: the store is closed; nothing else has this environment open.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(1 << 30)
            .max_dbs(16)
            .open(path.join("meta"))
            .unwrap()
    };
    let mut w = env.write_txn().unwrap();
    let state = env
        .open_database::<Bytes, Bytes>(&w, Some("state"))
        .unwrap()
        .unwrap();
    state.put(&mut w, b"format", &format.to_le_bytes()).unwrap();
    w.commit().unwrap();
    env.prepare_for_closing().wait();
}

#[test]
fn a_store_of_another_metadata_format_is_refused_with_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let p = path.clone();
    run(move || async move {
        let s = ShardStore::open(&p, cfg()).await.unwrap();
        s.put_object(obj("k", b"kept")).await.unwrap();
        s.close().await.unwrap();
    });
    set_meta_format(&path, 7);
    let p = path.clone();
    run(move || async move {
        match ShardStore::open(&p, cfg()).await {
            Err(StorageError::Invalid(why)) => {
                assert!(why.contains("format 7"), "{why}");
                assert!(why.contains(&format!("format {}", META_FORMAT)), "{why}");
            }
            Err(other) => panic!("expected a format error, got {other}"),
            Ok(_) => panic!("a store of format 7 opened"),
        }
    });
    // Refused, not damaged: with the marker back, the row is there.
    set_meta_format(&path, META_FORMAT);
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        assert!(s.get_object(&BUCKET, "k").unwrap().is_some());
        s.close().await.unwrap();
    });
}

/// Descriptors this process holds on files under `dir`.
fn open_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.starts_with(dir))
        .collect()
}

#[test]
fn close_releases_every_file_even_as_the_executor_ends() {
    // A segment file merely dropped waits for glommio's next I/O cycle to be closed; at the
    // end of an executor that never comes, and the open files kept a test's file system
    // busy (it could not be unmounted).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let (h, d) = block(300_000, 1);
        s.put_block(h, d, H).await.unwrap();
        s.close().await.unwrap();
        assert!(matches!(
            s.read_block(&h, 0, 10).await,
            Err(StorageError::Closed)
        ));
    });
    assert_eq!(
        open_files_under(dir.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// Every row change passes the row-change hook once committed, with the old and new
/// encodings' hashes: the place a Merkle tree will be kept current.
#[test]
fn every_row_change_passes_the_hook() {
    use granary::storage::{RowChange, RowHook, Table};
    use std::cell::RefCell;

    struct Seen(Rc<RefCell<Vec<RowChange>>>);
    impl RowHook for Seen {
        fn changed(&mut self, change: &RowChange) {
            self.0.borrow_mut().push(change.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let s = ShardStore::open(&path, cfg()).await.unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        s.set_row_hook(Box::new(Seen(Rc::clone(&seen))));
        let (h, d) = block(10_000, 1);
        s.put_block(h, d, H).await.unwrap();
        s.put_object(obj("k", b"v1")).await.unwrap();
        s.put_object(obj("k", b"v2")).await.unwrap();
        s.delete_object(&BUCKET, "k", VersionId::random(), next_stamp())
            .await
            .unwrap();
        s.release_block(&h, H).await.unwrap();
        s.sync_all().await.unwrap();
        let seen = seen.borrow().clone();
        let of = |t: Table| seen.iter().filter(|c| c.table == t).collect::<Vec<_>>();
        let objects = of(Table::Objects);
        assert_eq!(objects.len(), 3, "{objects:?}");
        assert!(objects[0].old.is_none() && objects[0].new.is_some());
        assert_eq!(
            objects[1].old, objects[0].new,
            "a change names the value it replaced"
        );
        assert!(
            objects[2].new.is_none(),
            "the tombstone is collected at once"
        );
        let refs = of(Table::BlockRefs);
        assert_eq!(refs.len(), 2);
        assert!(refs[0].new.is_some() && refs[1].new.is_none());
        s.close().await.unwrap();
    });
}
