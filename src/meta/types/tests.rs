//! The merge laws of every stored row type (`docs/metadata.md`), over random rows built
//! from a few values each, so that ties and repeats are common.

use super::*;
use crate::meta::crdt::laws;
use proptest::prelude::*;

fn stamp() -> impl Strategy<Value = Stamp> {
    (0u64..4, 0u32..2, 0u64..3).prop_map(|(time_ms, counter, node)| Stamp {
        time_ms,
        counter,
        node,
    })
}

fn version() -> impl Strategy<Value = ObjectVersion> {
    (0u8..4, stamp(), prop::option::of(0u8..3)).prop_map(|(id, stamp, data)| ObjectVersion {
        id: VersionId([id; 16]),
        stamp,
        state: match data {
            None => VersionState::DeleteMarker,
            Some(d) => VersionState::Complete(Box::new(ObjectMeta {
                bytes: u64::from(d),
                etag: format!("\"{d}\""),
                last_modified_ms: stamp.time_ms,
                headers: vec![],
                checksum: None,
                parts: vec![],
                data: ObjectData::Inline(vec![d]),
            })),
        },
    })
}

fn object() -> impl Strategy<Value = ObjectRecord> {
    prop::collection::vec(version(), 1..4).prop_map(|versions| {
        let mut record = ObjectRecord {
            bucket: BucketId([1; 16]),
            key: "k".into(),
            versions: Vec::new(),
        };
        for v in versions {
            record.merge(&ObjectRecord {
                versions: vec![v],
                ..record.clone()
            });
        }
        record
    })
}

fn upload() -> impl Strategy<Value = UploadRow> {
    (stamp(), 0u8..3).prop_map(|(stamp, s)| UploadRow {
        bucket: BucketId([1; 16]),
        key: "k".into(),
        upload_id: "u".into(),
        initiated_ms: 1,
        headers: vec![],
        checksum_algorithm: None,
        state: Lww::new(
            stamp,
            match s {
                0 => UploadState::InProgress,
                1 => UploadState::Aborted,
                _ => UploadState::Completed(CompletedUpload {
                    upload_id: "u".into(),
                    parts: vec![(1, "\"e\"".into())],
                    etag: "\"e-1\"".into(),
                    checksum: None,
                    completed_ms: stamp.time_ms,
                }),
            },
        ),
    })
}

fn part() -> impl Strategy<Value = PartRow> {
    (stamp(), 0u8..3).prop_map(|(stamp, h)| PartRow {
        upload_id: "u".into(),
        number: 1,
        stamp,
        holder: Holder([h; 16]),
        bytes: u64::from(h),
        etag: format!("\"{h}\""),
        last_modified_ms: 1,
        checksum: None,
        blocks: vec![],
    })
}

fn bucket() -> impl Strategy<Value = BucketRecord> {
    let grants = prop::collection::btree_map(
        prop::sample::select(vec!["a".to_string(), "b".to_string()]),
        (stamp(), any::<bool>()),
        0..3,
    );
    (
        (stamp(), any::<bool>()),
        (stamp(), any::<bool>()),
        (stamp(), prop::option::of(0u8..2)),
        (stamp(), 0u8..3),
        grants,
    )
        .prop_map(|(deleted, public, lifecycle, tags, grants)| BucketRecord {
            id: BucketId([1; 16]),
            name: "b".into(),
            created_ms: 1,
            deleted: Lww::new(deleted.0, deleted.1),
            website: Lww::new(Stamp::ZERO, None),
            cors: Lww::new(Stamp::ZERO, vec![]),
            public_read: Lww::new(public.0, public.1),
            lifecycle: Lww::new(
                lifecycle.0,
                lifecycle
                    .1
                    .map(|n| crate::meta::lifecycle::LifecycleConfig {
                        rules: (0..n)
                            .map(|i| crate::meta::lifecycle::LifecycleRule {
                                id: i.to_string(),
                                enabled: true,
                                prefix: String::new(),
                                legacy_prefix: false,
                                expiration: None,
                                abort_incomplete_days: Some(1),
                            })
                            .collect(),
                    }),
            ),
            tags: Lww::new(tags.0, vec![("t".into(), tags.1.to_string())]),
            grants: grants
                .into_iter()
                .map(|(k, (s, read))| {
                    let p = Permissions {
                        read,
                        write: false,
                        owner: false,
                    };
                    (k, Lww::new(s, p))
                })
                .collect(),
        })
}

fn key() -> impl Strategy<Value = KeyRecord> {
    (
        (stamp(), 0u8..3),
        (stamp(), any::<bool>()),
        (stamp(), any::<bool>()),
    )
        .prop_map(|(name, deleted, create)| KeyRecord {
            access_key_id: "GK1".into(),
            secret_access_key: "s".into(),
            created_ms: 1,
            name: Lww::new(name.0, name.1.to_string()),
            deleted: Lww::new(deleted.0, deleted.1),
            create_bucket: Lww::new(create.0, create.1),
        })
}

proptest! {
    #[test]
    fn objects_merge_lawfully(a in object(), b in object(), c in object()) {
        laws::check(&a, &b, &c);
    }

    #[test]
    fn uploads_merge_lawfully(a in upload(), b in upload(), c in upload()) {
        laws::check(&a, &b, &c);
    }

    #[test]
    fn parts_merge_lawfully(a in part(), b in part(), c in part()) {
        laws::check(&a, &b, &c);
    }

    #[test]
    fn block_refs_merge_lawfully(
        a in (stamp(), any::<bool>()), b in (stamp(), any::<bool>()), c in (stamp(), any::<bool>()),
    ) {
        let r = |(stamp, released)| BlockRefRow { stamp, released };
        laws::check(&r(a), &r(b), &r(c));
    }

    #[test]
    fn buckets_merge_lawfully(a in bucket(), b in bucket(), c in bucket()) {
        laws::check(&a, &b, &c);
    }

    #[test]
    fn keys_merge_lawfully(a in key(), b in key(), c in key()) {
        laws::check(&a, &b, &c);
    }

    /// The newest version is visible whatever the order of the writes, and a write older
    /// than the current version is dropped (its blocks released), never shown.
    #[test]
    fn the_newest_version_wins_in_any_order(versions in prop::collection::vec(version(), 1..6)) {
        let newest = versions.iter().max_by_key(|v| (v.stamp, v.id)).unwrap().clone();
        let record = |v: &ObjectVersion| ObjectRecord {
            bucket: BucketId([1; 16]),
            key: "k".into(),
            versions: vec![v.clone()],
        };
        let mut forward = record(&versions[0]);
        let mut backward = record(versions.last().unwrap());
        for v in &versions {
            forward.merge(&record(v));
        }
        for v in versions.iter().rev() {
            backward.merge(&record(v));
        }
        prop_assert_eq!(&forward, &backward);
        prop_assert_eq!(forward.versions.len(), 1);
        let kept = &forward.versions[0];
        prop_assert_eq!((kept.stamp, kept.id), (newest.stamp, newest.id));
    }

    /// A delete marker newer than a write hides it; a write newer than a delete shows.
    #[test]
    fn a_bucket_view_round_trips_through_updates(
        base in bucket(), public in any::<bool>(), s in stamp(),
    ) {
        let later = Stamp { time_ms: 100, ..s };
        let mut record = base.clone();
        let mut view = record.view();
        view.public_read = public;
        view.tags = vec![("x".into(), "y".into())];
        record.update(&view, later);
        let got = record.view();
        prop_assert_eq!(got.public_read, public);
        prop_assert_eq!(got.tags, vec![("x".to_string(), "y".to_string())]);
        prop_assert_eq!(got.grants, base.view().grants);
    }
}

#[test]
fn two_changes_to_different_settings_of_a_bucket_both_stay() {
    let view = BucketRow {
        id: BucketId([1; 16]),
        name: "b".into(),
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
    let start = BucketRecord::of_view(&view, Stamp::ZERO);
    let at = |node| Stamp {
        time_ms: 5,
        counter: 0,
        node,
    };
    let mut one = start.clone();
    one.update(
        &BucketRow {
            tags: vec![("team".into(), "a".into())],
            ..view.clone()
        },
        at(1),
    );
    let mut two = start.clone();
    two.update(
        &BucketRow {
            public_read: true,
            grants: vec![(
                "GK2".into(),
                Permissions {
                    read: true,
                    write: false,
                    owner: false,
                },
            )],
            ..view.clone()
        },
        at(2),
    );
    one.merge(&two);
    let merged = one.view();
    assert_eq!(merged.tags, vec![("team".to_string(), "a".to_string())]);
    assert!(merged.public_read);
    assert_eq!(merged.grants.len(), 1);
}

#[test]
fn a_multipart_object_holds_each_parts_blocks_under_the_parts_holder() {
    let b = |n: u8| BlockRef {
        hash: BlockHash([n; 32]),
        bytes: 1,
    };
    let summary = |number, first_block, h: u8| PartSummary {
        number,
        bytes: 1,
        etag: String::new(),
        first_block,
        checksum: None,
        holder: Holder([h; 16]),
    };
    let row = ObjectRow {
        bucket: BucketId([1; 16]),
        key: "k".into(),
        version: VersionId([9; 16]),
        stamp: Stamp::ZERO,
        bytes: 3,
        etag: String::new(),
        last_modified_ms: 0,
        headers: vec![],
        checksum: None,
        parts: vec![summary(1, 0, 7), summary(3, 2, 8)],
        data: ObjectData::Blocks(vec![b(1), b(2), b(3)]),
    };
    assert_eq!(
        row.block_holders(),
        vec![
            (BlockHash([1; 32]), Holder([7; 16])),
            (BlockHash([2; 32]), Holder([7; 16])),
            (BlockHash([3; 32]), Holder([8; 16])),
        ]
    );
    let single = ObjectRow {
        parts: vec![],
        ..row
    };
    assert!(single
        .block_holders()
        .iter()
        .all(|(_, h)| *h == Holder([9; 16])));
}
