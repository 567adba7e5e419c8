//! Metadata format 1 → 2, in place, on a stopped node's shard environments (LMDB only;
//! segments are unchanged). Run at start before any store opens (`storage::placement`).
//!
//! Format 1 overwrote rows in place, keyed them without their partition, and counted a
//! block's references as a number. Format 2 (`meta::types`) keeps records that merge, keys
//! that start with their partition, and one row per (block, holder). Two phases, each safe
//! to run again after a crash:
//! 1. each environment's rows are rewritten in one transaction, which also marks the
//!    environment format 2 with its block references still to build;
//! 2. once every environment is format 2, the references are built from the holders all
//!    rows name (a block's rows may sit on another shard than its index entry), one
//!    transaction per environment, which clears its mark.
//!
//! Versions and holders of format-1 rows are derived from what the row holds (bucket, key,
//! stamp, upload id, part number), so that running a phase again yields the same rows. A
//! block counted but named by no row keeps a `Holder::RECOVERED` reference: the migration
//! frees nothing (`granary repair refcounts` can, once the node runs).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{Database, Env};

use super::{
    corrupt, decode_row, encode_row, heed_opts, Dbs, OpenGuard, Result, FORMAT_KEY, META_FORMAT,
};
use crate::meta::keys::{block_ref_key, object_key, part_key, upload_key};
use crate::meta::types::{
    BlockHash, BlockRefRow, BucketRecord, BucketRow, Holder, KeyRecord, KeyRow, Lww, ObjectRecord,
    ObjectRow, PartRow, PartSummary, Partition, Stamp, UploadRow, UploadState, VersionId,
};
use crate::meta::v1;
use crate::storage::index::{gc_key, BlockEntry};
use crate::storage::StorageConfig;

/// Marks an environment whose block references phase 2 has still to build.
pub(super) const REFS_PENDING_KEY: &[u8] = b"migrate_refs_pending";

/// The format of a shard environment's rows: `None` for an environment with no format mark
/// and no rows (new).
pub fn format_of(dir: &Path, cfg: &StorageConfig) -> Result<Option<u32>> {
    let meta = dir.join("meta");
    if !meta.join("data.mdb").exists() {
        return Ok(None);
    }
    let (env, db) = open_raw(&meta, cfg)?;
    let r = env.read_txn()?;
    let found = db.state.get(&r, FORMAT_KEY)?.map(|b| {
        <[u8; 4]>::try_from(b)
            .map(u32::from_le_bytes)
            .map_err(|_| corrupt("bad metadata format row"))
    });
    match found.transpose()? {
        Some(f) => Ok(Some(f)),
        // Written before the mark existed: format 1, if it holds anything.
        None => {
            Ok((db.objects.len(&r)? + db.buckets.len(&r)? + db.blocks.len(&r)? > 0).then_some(1))
        }
    }
}

fn open_raw(meta: &Path, cfg: &StorageConfig) -> Result<(Env, Dbs)> {
    // SAFETY: the caller holds the directory's lock (or is only reading its format before
    // any store of this process opens it); no other process opens a shard's files.
    let env = unsafe { heed_opts(cfg).open(meta)? };
    let mut w = env.write_txn()?;
    let db = super::create_dbs(&env, &mut w)?;
    w.commit()?;
    Ok((env, db))
}

/// Migrates the environments of `dirs` (every shard directory of a node) to format 2.
pub fn migrate(dirs: &[PathBuf], cfg: &StorageConfig) -> Result<()> {
    let mut envs = Vec::new();
    for dir in dirs {
        let guard = OpenGuard::take(dir, &cfg.resources)?;
        let (env, db) = open_raw(&dir.join("meta"), cfg)?;
        envs.push((dir.clone(), env, db, guard));
    }
    let uploads = upload_owners(&envs)?;
    for (dir, env, db, _) in &envs {
        if stored_format(env, db)? == Some(1) || unmarked_rows(env, db)? {
            convert_rows(env, db, &uploads)?;
            tracing::info!(dir = %dir.display(), "metadata rows migrated to format 2");
        }
    }
    let pending: Vec<bool> = envs
        .iter()
        .map(|(_, env, db, _)| refs_pending(env, db))
        .collect::<Result<_>>()?;
    if pending.iter().any(|p| *p) {
        let held = holders_named(&envs)?;
        for ((dir, env, db, _), pending) in envs.iter().zip(pending) {
            if pending {
                build_refs(env, db, &held)?;
                tracing::info!(dir = %dir.display(), "block references built");
            }
        }
    }
    for (_, env, _, _) in &envs {
        env.force_sync()?;
    }
    Ok(())
}

fn stored_format(env: &Env, db: &Dbs) -> Result<Option<u32>> {
    let r = env.read_txn()?;
    Ok(db
        .state
        .get(&r, FORMAT_KEY)?
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes))
}

/// An environment from before the format mark existed (format 1) that holds rows.
fn unmarked_rows(env: &Env, db: &Dbs) -> Result<bool> {
    let r = env.read_txn()?;
    Ok(db.state.get(&r, FORMAT_KEY)?.is_none()
        && db.objects.len(&r)? + db.buckets.len(&r)? + db.blocks.len(&r)? > 0)
}

fn refs_pending(env: &Env, db: &Dbs) -> Result<bool> {
    let r = env.read_txn()?;
    Ok(db.state.get(&r, REFS_PENDING_KEY)?.is_some())
}

type Envs = Vec<(PathBuf, Env, Dbs, OpenGuard)>;

/// Upload id → (bucket, key), from the format-1 uploads of every environment: a part row
/// of format 1 names only its upload.
fn upload_owners(envs: &Envs) -> Result<HashMap<String, (crate::meta::types::BucketId, String)>> {
    let mut out = HashMap::new();
    for (_, env, db, _) in envs {
        if stored_format(env, db)? == Some(META_FORMAT) {
            continue;
        }
        let r = env.read_txn()?;
        for item in db.uploads.iter(&r)? {
            let (_, v) = item?;
            let u: v1::UploadRow = decode_row(v)?;
            out.insert(u.upload_id, (u.bucket, u.key));
        }
    }
    Ok(out)
}

fn v1_stamp(s: v1::Stamp) -> Stamp {
    Stamp {
        time_ms: s.time_ms,
        counter: 0,
        node: s.node,
    }
}

/// 16 bytes of blake3 over the parts, for versions and holders derived from format-1 rows.
fn derived(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().as_bytes()[..16]
        .try_into()
        .expect("16 of 32 bytes")
}

fn object_of(old: v1::ObjectRow) -> ObjectRow {
    let stamp = v1_stamp(old.stamp);
    let version = VersionId(derived(&[
        b"v1-object",
        &old.bucket.0,
        old.key.as_bytes(),
        &stamp.time_ms.to_le_bytes(),
    ]));
    let parts = old
        .parts
        .into_iter()
        .map(|p: v1::PartSummary| PartSummary {
            holder: Holder(derived(&[
                b"v1-object-part",
                &version.0,
                &p.number.to_le_bytes(),
            ])),
            number: p.number,
            bytes: p.bytes,
            etag: p.etag,
            first_block: p.first_block,
            checksum: p.checksum,
        })
        .collect();
    ObjectRow {
        bucket: old.bucket,
        key: old.key,
        version,
        stamp,
        bytes: old.bytes,
        etag: old.etag,
        last_modified_ms: old.last_modified_ms,
        headers: old.headers,
        checksum: old.checksum,
        parts,
        data: old.data,
    }
}

/// Phase 1 for one environment: every row rewritten, in one transaction.
fn convert_rows(
    env: &Env,
    db: &Dbs,
    uploads: &HashMap<String, (crate::meta::types::BucketId, String)>,
) -> Result<()> {
    let mut w = env.write_txn()?;
    let objects = drain::<v1::ObjectRow>(db.objects, &mut w)?;
    for old in objects {
        let row = object_of(old);
        let k = object_key(&row.bucket, &row.key);
        db.objects
            .put(&mut w, &k, &encode_row(&ObjectRecord::of_row(&row))?)?;
    }
    for old in drain::<v1::UploadRow>(db.uploads, &mut w)? {
        let row = UploadRow {
            state: Lww::new(
                Stamp {
                    time_ms: old.initiated_ms,
                    ..Stamp::ZERO
                },
                UploadState::InProgress,
            ),
            bucket: old.bucket,
            key: old.key,
            upload_id: old.upload_id,
            initiated_ms: old.initiated_ms,
            headers: old.headers,
            checksum_algorithm: old.checksum_algorithm,
        };
        let k = upload_key(&row.bucket, &row.key, &row.upload_id);
        db.uploads.put(&mut w, &k, &encode_row(&row)?)?;
    }
    for old in drain::<v1::PartRow>(db.parts, &mut w)? {
        // A part of no upload (left by an abort that raced it) is dropped; its blocks keep
        // their recovered references.
        let Some((bucket, key)) = uploads.get(&old.upload_id) else {
            continue;
        };
        let p = Partition::of_object(bucket, key);
        let row = PartRow {
            holder: Holder(derived(&[
                b"v1-upload-part",
                old.upload_id.as_bytes(),
                &old.number.to_le_bytes(),
            ])),
            stamp: Stamp {
                time_ms: old.last_modified_ms,
                ..Stamp::ZERO
            },
            upload_id: old.upload_id,
            number: old.number,
            bytes: old.bytes,
            etag: old.etag,
            last_modified_ms: old.last_modified_ms,
            checksum: old.checksum,
            blocks: old.blocks,
        };
        db.parts.put(
            &mut w,
            &part_key(p, &row.upload_id, row.number),
            &encode_row(&row)?,
        )?;
    }
    convert_global(db, &mut w)?;
    db.state
        .put(&mut w, FORMAT_KEY, &META_FORMAT.to_le_bytes())?;
    db.state.put(&mut w, REFS_PENDING_KEY, &[1])?;
    w.commit()?;
    Ok(())
}

fn convert_global(db: &Dbs, w: &mut heed::RwTxn) -> Result<()> {
    for old in drain::<v1::BucketRow>(db.buckets, w)? {
        let view = BucketRow {
            id: old.id,
            name: old.name,
            created_ms: old.created_ms,
            stamp: v1_stamp(old.stamp),
            deleted: old.deleted,
            grants: old.grants,
            website: old.website,
            cors: old.cors,
            public_read: old.public_read,
            lifecycle: old.lifecycle,
            tags: old.tags,
        };
        let record = BucketRecord::of_view(&view, view.stamp);
        db.buckets.put(w, &record.id.0, &encode_row(&record)?)?;
    }
    for old in drain::<v1::KeyRow>(db.keys, w)? {
        let view = KeyRow {
            access_key_id: old.access_key_id,
            secret_access_key: old.secret_access_key,
            name: old.name,
            created_ms: old.created_ms,
            stamp: v1_stamp(old.stamp),
            deleted: old.deleted,
            create_bucket: old.create_bucket,
        };
        let record = KeyRecord::of_view(&view, view.stamp);
        db.keys
            .put(w, record.access_key_id.as_bytes(), &encode_row(&record)?)?;
    }
    Ok(())
}

/// Every row of a table, decoded, and the table emptied.
fn drain<T: serde::de::DeserializeOwned>(
    table: Database<Bytes, Bytes>,
    w: &mut heed::RwTxn,
) -> Result<Vec<T>> {
    let mut rows = Vec::new();
    for item in table.iter(w)? {
        let (_, v) = item?;
        rows.push(decode_row(v)?);
    }
    table.clear(w)?;
    Ok(rows)
}

/// The holders every row of every environment names, by block.
fn holders_named(envs: &Envs) -> Result<HashMap<BlockHash, BTreeSet<Holder>>> {
    let mut held: HashMap<BlockHash, BTreeSet<Holder>> = HashMap::new();
    for (_, env, db, _) in envs {
        let r = env.read_txn()?;
        for item in db.objects.iter(&r)? {
            let record: ObjectRecord = decode_row(item?.1)?;
            for v in &record.versions {
                for (hash, holder) in record.row(v).map(|r| r.block_holders()).unwrap_or_default() {
                    held.entry(hash).or_default().insert(holder);
                }
            }
        }
        for item in db.parts.iter(&r)? {
            let part: PartRow = decode_row(item?.1)?;
            for b in &part.blocks {
                held.entry(b.hash).or_default().insert(part.holder);
            }
        }
    }
    Ok(held)
}

/// Phase 2 for one environment: a reference per holder of each block it indexes, the
/// counts derived from them, the GC queue in step.
fn build_refs(env: &Env, db: &Dbs, held: &HashMap<BlockHash, BTreeSet<Holder>>) -> Result<()> {
    let mut w = env.write_txn()?;
    let mut entries = Vec::new();
    for item in db.blocks.iter(&w)? {
        let (k, v) = item?;
        let hash = BlockHash(k.try_into().map_err(|_| corrupt("bad block index key"))?);
        entries.push((
            hash,
            BlockEntry::decode(v).ok_or_else(|| corrupt("bad block entry"))?,
        ));
    }
    db.block_refs.clear(&mut w)?;
    let row = encode_row(&BlockRefRow {
        stamp: Stamp::ZERO,
        released: false,
    })?;
    for (hash, mut e) in entries {
        let mut holders: Vec<Holder> = held.get(&hash).into_iter().flatten().copied().collect();
        if holders.is_empty() && e.refs > 0 {
            holders.push(Holder::RECOVERED);
        }
        for h in &holders {
            db.block_refs.put(&mut w, &block_ref_key(&hash, h), &row)?;
        }
        let refs = holders.len() as u64;
        if refs > 0 && e.zero_since_ms != 0 {
            db.gc.delete(&mut w, &gc_key(e.zero_since_ms, &hash))?;
            e.zero_since_ms = 0;
        }
        e.refs = refs;
        db.blocks.put(&mut w, &hash.0, &e.encode())?;
    }
    db.state.delete(&mut w, REFS_PENDING_KEY)?;
    w.commit()?;
    Ok(())
}
