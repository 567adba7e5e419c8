//! Every data request and answer survives postcard, the encoding of the RPC to come: what
//! one shard asks of another could cross a network as it is.

use super::*;
use crate::meta::types::{
    BlockRef, BucketRecord, Checksum, ChecksumAlgorithm, KeyRecord, Lww, ObjectData, Permissions,
    Stamp, UploadState,
};

fn bucket() -> BucketId {
    BucketId([7; 16])
}

fn stamp() -> Stamp {
    Stamp {
        time_ms: 1_700_000_000_000,
        counter: 3,
        node: 42,
    }
}

fn checksum() -> Option<Checksum> {
    Some(Checksum {
        algorithm: ChecksumAlgorithm::Crc32c,
        base64: "AAAAAA==".into(),
        composite: false,
    })
}

fn object() -> ObjectRow {
    ObjectRow {
        bucket: bucket(),
        key: "a/key".into(),
        version: VersionId([5; 16]),
        stamp: stamp(),
        bytes: 5,
        etag: "\"etag\"".into(),
        last_modified_ms: 3,
        headers: vec![("content-type".into(), "text/plain".into())],
        checksum: checksum(),
        parts: Vec::new(),
        data: ObjectData::Blocks(vec![BlockRef {
            hash: BlockHash([9; 32]),
            bytes: 5,
        }]),
    }
}

fn upload() -> UploadRow {
    UploadRow {
        bucket: bucket(),
        key: "a/key".into(),
        upload_id: "u1".into(),
        initiated_ms: 4,
        headers: Vec::new(),
        checksum_algorithm: Some(ChecksumAlgorithm::Sha256),
        state: Lww::new(stamp(), UploadState::InProgress),
    }
}

fn part() -> PartRow {
    PartRow {
        upload_id: "u1".into(),
        number: 2,
        stamp: stamp(),
        holder: Holder([4; 16]),
        bytes: 5 << 20,
        etag: "\"p\"".into(),
        last_modified_ms: 5,
        checksum: checksum(),
        blocks: Vec::new(),
    }
}

fn bucket_row() -> BucketRow {
    BucketRow {
        id: bucket(),
        name: "b".into(),
        created_ms: 1,
        stamp: stamp(),
        deleted: false,
        grants: vec![("GRKEY".into(), Permissions::default())],
        website: None,
        cors: Vec::new(),
        public_read: true,
        lifecycle: None,
        tags: vec![("t".into(), "v".into())],
    }
}

fn key_row() -> KeyRow {
    KeyRow {
        access_key_id: "GRKEY".into(),
        secret_access_key: "secret".into(),
        name: "root".into(),
        created_ms: 1,
        stamp: stamp(),
        deleted: false,
        create_bucket: true,
    }
}

fn completed() -> CompletedUpload {
    CompletedUpload {
        upload_id: "u1".into(),
        parts: vec![(1, "\"p\"".into())],
        etag: "\"e-1\"".into(),
        checksum: None,
        completed_ms: 6,
    }
}

/// One request of each kind (an exhaustive match below keeps the list whole).
fn requests() -> Vec<DataRequest> {
    use DataRequest as R;
    let (b, k) = (bucket(), || "a/key".to_string());
    let hash = BlockHash([1; 32]);
    let mut out = vec![
        R::PutBlock {
            hash,
            data: BlockData::Bytes(vec![1, 2, 3]),
            holder: Holder([2; 16]),
        },
        R::ReadBlock {
            hash,
            offset: 4,
            len: 5,
        },
        R::ReleaseBlock {
            hash,
            holder: Holder([2; 16]),
        },
        R::AddBlockRef {
            hash,
            holder: Holder::RECOVERED,
        },
        R::GetObject {
            bucket: b,
            key: k(),
        },
        R::PutObject {
            row: object(),
            condition: Some(WriteCondition::EtagMatches("\"e\"".into())),
        },
        R::DeleteObject {
            bucket: b,
            key: k(),
            version: VersionId([6; 16]),
            stamp: stamp(),
            condition: Some(WriteCondition::VersionIs(VersionId([5; 16]))),
        },
        R::ListObjects {
            bucket: b,
            prefix: "a/".into(),
            start_after: "a/0".into(),
            limit: 1000,
        },
        R::BucketHasObjects { bucket: b },
    ];
    out.extend(upload_and_global_requests());
    out
}

/// The requests of uploads and of the global tables.
fn upload_and_global_requests() -> Vec<DataRequest> {
    use DataRequest as R;
    let (b, k, u) = (bucket(), || "a/key".to_string(), || "u1".to_string());
    vec![
        R::PutUpload { row: upload() },
        R::GetUpload {
            bucket: b,
            key: k(),
            upload_id: u(),
        },
        R::DeleteUpload {
            bucket: b,
            key: k(),
            upload_id: u(),
            stamp: stamp(),
        },
        R::ListUploads {
            bucket: b,
            prefix: String::new(),
            key_marker: k(),
            limit: 10,
        },
        R::PutPart {
            bucket: b,
            key: k(),
            row: part(),
        },
        R::CompleteUpload {
            row: object(),
            upload_id: u(),
            chosen: vec![part()],
            condition: Some(WriteCondition::Absent),
        },
        R::GetCompletedUpload {
            bucket: b,
            key: k(),
            upload_id: u(),
        },
        R::DeleteBucketUploads { bucket: b },
        R::ListParts {
            bucket: b,
            key: k(),
            upload_id: u(),
            after: 1,
            limit: 1000,
        },
        R::ChangeBucket {
            name: "b".into(),
            edit: BucketEdit::Grant {
                key: "GRKEY".into(),
                permissions: Permissions::default(),
            },
            hold: NameHold::Take,
        },
        R::PutKey { row: key_row() },
        R::GlobalSnapshot,
        R::GlobalUpdate {
            buckets: vec![BucketRecord::of_view(&bucket_row(), stamp())],
            keys: vec![KeyRecord::of_view(&key_row(), stamp())],
        },
        R::StartTask { task: Task::Scrub },
    ]
}

fn request_kind(r: &DataRequest) -> usize {
    use DataRequest as R;
    match r {
        R::PutBlock { .. } => 0,
        R::ReadBlock { .. } => 1,
        R::ReleaseBlock { .. } => 2,
        R::AddBlockRef { .. } => 3,
        R::GetObject { .. } => 4,
        R::PutObject { .. } => 5,
        R::DeleteObject { .. } => 6,
        R::ListObjects { .. } => 7,
        R::BucketHasObjects { .. } => 8,
        R::PutUpload { .. } => 9,
        R::GetUpload { .. } => 10,
        R::DeleteUpload { .. } => 11,
        R::ListUploads { .. } => 12,
        R::PutPart { .. } => 13,
        R::CompleteUpload { .. } => 14,
        R::GetCompletedUpload { .. } => 15,
        R::DeleteBucketUploads { .. } => 16,
        R::ListParts { .. } => 17,
        R::ChangeBucket { .. } => 18,
        R::PutKey { .. } => 19,
        R::GlobalSnapshot => 20,
        R::GlobalUpdate { .. } => 21,
        R::StartTask { .. } => 22,
    }
}

/// One answer of each kind, errors included.
fn responses() -> Vec<DataResponse> {
    use DataResponse as A;
    let refused = DataError::Rejected(S3Error::BadDigest(Some(ChecksumAlgorithm::Sha1)));
    vec![
        A::Done(Ok(())),
        A::Done(Err(DataError::Busy("a scrub is running already".into()))),
        A::Block(Ok(vec![0; 70])),
        A::Block(Err(DataError::BlockUnavailable("bad crc".into()))),
        A::Object(Ok(Some(object()))),
        A::Written(Ok(ObjectWrite {
            previous: Some(object()),
            dropped: vec![object()],
        })),
        A::Objects(Ok(vec![object(), object()])),
        A::Flag(Ok(true)),
        A::Upload(Ok(Some(upload()))),
        A::Uploads(Ok(vec![upload()])),
        A::Part(Ok(PutIf::Written(Some(part())))),
        A::Part(Ok(PutIf::Refused(None))),
        A::Parts(Err(DataError::Storage("disk full".into()))),
        A::UploadRemoved(Ok((Some(upload()), vec![part()]))),
        A::Completion(Ok(Completion::Completed {
            written: ObjectWrite::default(),
            unused: vec![part()],
        })),
        A::Completion(Ok(Completion::AlreadyCompleted(completed()))),
        A::Completion(Ok(Completion::NoSuchUpload)),
        A::Completion(Ok(Completion::PartsChanged)),
        A::Completion(Ok(Completion::Refused(None))),
        A::Completed(Ok(Some(completed()))),
        A::Global {
            buckets: vec![BucketRecord::of_view(&bucket_row(), stamp())],
            keys: vec![KeyRecord::of_view(&key_row(), stamp())],
        },
        A::Bucket(Ok(Some(bucket_row()))),
        A::Bucket(Err(refused)),
        A::Failed(DataError::Transport("the mesh is closed".into())),
        A::Failed(DataError::Protocol("answered Done".into())),
        A::Object(Err(DataError::PreconditionFailed)),
        A::Object(Err(DataError::NoSuchKey)),
    ]
}

fn response_kind(a: &DataResponse) -> usize {
    use DataResponse as A;
    match a {
        A::Done(_) => 0,
        A::Block(_) => 1,
        A::Object(_) => 2,
        A::Objects(_) => 3,
        A::Flag(_) => 4,
        A::Upload(_) => 5,
        A::Uploads(_) => 6,
        A::Part(_) => 7,
        A::Parts(_) => 8,
        A::UploadRemoved(_) => 9,
        A::Completion(_) => 10,
        A::Completed(_) => 11,
        A::Global { .. } => 12,
        A::Bucket(_) => 13,
        A::Failed(_) => 14,
        A::Written(_) => 15,
    }
}

fn covers_every_kind<T>(samples: &[T], kind: fn(&T) -> usize, kinds: usize) {
    let mut seen = vec![false; kinds];
    for s in samples {
        seen[kind(s)] = true;
    }
    let missing: Vec<usize> = (0..kinds).filter(|k| !seen[*k]).collect();
    assert!(missing.is_empty(), "no sample of kinds {missing:?}");
}

#[test]
fn every_request_survives_postcard() {
    let samples = requests();
    covers_every_kind(&samples, request_kind, 23);
    for request in samples {
        let wire = postcard::to_allocvec(&request).unwrap();
        let back: DataRequest = postcard::from_bytes(&wire).unwrap();
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
    }
}

#[test]
fn every_answer_survives_postcard() {
    let samples = responses();
    covers_every_kind(&samples, response_kind, 16);
    for response in samples {
        let wire = postcard::to_allocvec(&response).unwrap();
        let back: DataResponse = postcard::from_bytes(&wire).unwrap();
        assert_eq!(format!("{back:?}"), format!("{response:?}"));
    }
}

#[test]
fn a_record_buffer_arrives_as_its_bytes() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let request = DataRequest::PutBlock {
        hash: BlockHash([1; 32]),
        data: BlockData::Record(crate::storage::BlockBuf::from(&data[..])),
        holder: Holder([3; 16]),
    };
    let wire = postcard::to_allocvec(&request).unwrap();
    match postcard::from_bytes(&wire).unwrap() {
        DataRequest::PutBlock {
            data: BlockData::Bytes(bytes),
            ..
        } => assert_eq!(bytes, data),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unexpected_answer_is_an_error_not_a_panic() {
    assert_eq!(
        DataResponse::Flag(Ok(true)).done(),
        Err(DataError::Protocol(
            "answered Flag(Ok(true)) to a request expecting Done".into()
        ))
    );
    let lost = DataError::Transport("the mesh is closed".into());
    assert_eq!(DataResponse::Failed(lost.clone()).block(), Err(lost));
    assert!(DataResponse::Done(Ok(())).global().is_err());
    assert_eq!(
        S3Error::from(DataError::Transport("gone".into())),
        S3Error::InternalError("transport: gone".into())
    );
}
