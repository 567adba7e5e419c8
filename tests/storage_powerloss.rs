//! Simulated power loss through the engine's disk abstraction: the store runs on
//! `DiskKind::Sim`, an in-memory disk that forgets every write no fdatasync covered (keeping
//! a random subset of the unsynced 4 KiB pages, so records tear at page boundaries) and
//! every file name no directory sync covered. LMDB is real (see docs/storage.md: under
//! `always` its state at the cut is its state on disk; under weaker policies the test takes
//! the outcome where LMDB kept everything).
//!
//! Each case runs many "lives" on one simulated disk: open (recovery), check everything
//! against a model of the acknowledged writes, run concurrent writers (blocks, inline
//! objects, block-backed objects, overwrites, concurrent duplicate blocks), cut the power
//! at a random moment while writes are in flight, and start over.
//!
//! - `always`: every acknowledged write is present and intact after every reopen, the
//!   scrub finds nothing bad, and new writes work.
//! - `never` / `periodic`: the store opens, every read returns the right bytes or a clean
//!   `Corrupt`/`NotFound` (never wrong bytes, never another error, never a panic), new
//!   writes work; and after a process crash (some lives end in one instead of a power
//!   loss) everything acknowledged is present, as these policies promise.
//!
//! Seeds: `GRANARY_POWERLOSS_SEED=<n>` runs one case with that seed; failures print the
//! seed. (Task interleaving depends on timing, so a seed reproduces the workload and the
//! torn-page choices, not the exact instant of the cut.)

mod storage_util;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use granary::meta::types::*;
use granary::storage::{DiskKind, FsyncPolicy, ShardStore, SimDisk, StorageConfig, StorageError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storage_util::*;

const WRITERS: u64 = 8;

fn sim_cfg(sim: &SimDisk, policy: FsyncPolicy) -> StorageConfig {
    StorageConfig {
        data_fsync: policy,
        metadata_fsync: policy,
        fsync_batch_bytes: 512 << 10,
        // Small segments: lives roll to new segments (and sync the directory) often.
        segment_bytes: 1 << 20,
        maintenance_interval_s: 0,
        scrub_bytes_per_s: 0,
        lmdb_map_bytes: 1 << 30,
        disk: DiskKind::Sim(sim.clone()),
        ..cfg()
    }
}

fn block_len(seed: u64) -> usize {
    1 + (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as usize % 150_000
}

fn block_of(seed: u64) -> (BlockHash, Vec<u8>) {
    let d = data(block_len(seed), seed);
    (BlockHash::of(&d), d)
}

#[derive(Default)]
struct KeyState {
    /// The last acknowledged row.
    acked: Option<ObjectRow>,
    /// A put that was not acknowledged (in flight at the cut, or failed): it may be there.
    inflight: Option<ObjectRow>,
    /// Every row ever put at this key.
    ever: Vec<ObjectRow>,
    /// The last acknowledged row must be there (cleared by a power loss under a weak
    /// policy).
    must: bool,
}

#[derive(Default)]
struct Model {
    /// Acknowledged blocks: hash -> (seed, must be readable).
    blocks: HashMap<BlockHash, (u64, bool)>,
    objects: HashMap<String, KeyState>,
    acks: u64,
}

impl Model {
    fn weaken(&mut self) {
        for v in self.blocks.values_mut() {
            v.1 = false;
        }
        for k in self.objects.values_mut() {
            k.must = false;
        }
    }
}

fn row(key: &str, data: ObjectData, bytes: u64, n: u64) -> ObjectRow {
    let mut r = obj(key, b"");
    r.data = data;
    r.bytes = bytes;
    r.etag = format!("\"{n}\"");
    r
}

/// One writer: a mix of new blocks, blocks from a small shared pool (concurrent
/// duplicates, re-puts of stored blocks), inline objects and block-backed objects, over a
/// few keys of its own (overwrites).
async fn writer(
    s: Rc<ShardStore>,
    m: Rc<RefCell<Model>>,
    stop: Rc<Cell<bool>>,
    seed: u64,
    id: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    let on_err = |e: StorageError, what: &str| {
        // Errors only come from the cut (the old store's I/O fails) or from closing it.
        assert!(
            stop.get(),
            "seed {seed}: {what} failed before the power was cut: {e}"
        );
        assert!(
            matches!(
                e,
                StorageError::Io(_) | StorageError::Failed(_) | StorageError::Closed
            ),
            "seed {seed}: {what}: unexpected error {e:?}"
        );
    };
    while !stop.get() {
        n += 1;
        let op = rng.gen_range(0..10);
        let put = |bseed: u64| {
            let (h, d) = block_of(bseed);
            let s = s.clone();
            async move { (h, d.len(), s.put_block(h, d, H).await) }
        };
        match op {
            0..=3 => {
                let bseed = if rng.gen_bool(0.25) {
                    (1 << 40) | rng.gen_range(0..24)
                } else {
                    (seed << 20) | n
                };
                let (h, _, r) = put(bseed).await;
                match r {
                    Ok(()) => {
                        let mut m = m.borrow_mut();
                        m.blocks.insert(h, (bseed, true));
                        m.acks += 1;
                    }
                    Err(e) => return on_err(e, "put_block"),
                }
            }
            _ => {
                let key = format!("w{id}-{}", rng.gen_range(0..6));
                let (data, bytes) = if op <= 6 {
                    let body = granary_body(&mut rng, n);
                    let len = body.len() as u64;
                    (ObjectData::Inline(body), len)
                } else {
                    let mut refs = Vec::new();
                    let mut total = 0u64;
                    for i in 0..rng.gen_range(1..=3u64) {
                        let bseed = if rng.gen_bool(0.3) {
                            (1 << 40) | rng.gen_range(0..24)
                        } else {
                            (seed << 20) | (n << 2) | i | (1 << 19)
                        };
                        let (h, len, r) = put(bseed).await;
                        match r {
                            Ok(()) => {
                                let mut m = m.borrow_mut();
                                m.blocks.insert(h, (bseed, true));
                                m.acks += 1;
                            }
                            Err(e) => return on_err(e, "put_block"),
                        }
                        refs.push(BlockRef {
                            hash: h,
                            bytes: len as u32,
                        });
                        total += len as u64;
                    }
                    (ObjectData::Blocks(refs), total)
                };
                let r = row(&key, data, bytes, n);
                {
                    let mut m = m.borrow_mut();
                    let k = m.objects.entry(key.clone()).or_default();
                    k.ever.push(r.clone());
                    k.inflight = Some(r.clone());
                }
                match s.put_object(r.clone()).await {
                    Ok(_) => {
                        let mut m = m.borrow_mut();
                        m.acks += 1;
                        let k = m.objects.get_mut(&key).expect("key");
                        k.acked = Some(r);
                        k.inflight = None;
                        k.must = true;
                    }
                    Err(e) => return on_err(e, "put_object"),
                }
            }
        }
    }
}

fn granary_body(rng: &mut StdRng, n: u64) -> Vec<u8> {
    let len = rng.gen_range(0..3000);
    data(len, n ^ rng.gen::<u64>())
}

/// Open, retrying while the previous (crashed) store of this directory is still being
/// torn down by its tasks.
async fn open(path: &Path, cfg: &StorageConfig, seed: u64) -> Rc<ShardStore> {
    let t0 = Instant::now();
    loop {
        match ShardStore::open(path, cfg.clone()).await {
            Ok(s) => return s,
            Err(StorageError::AlreadyOpen(_)) if t0.elapsed() < Duration::from_secs(10) => {}
            Err(StorageError::Meta(m))
                if m.contains("already open") && t0.elapsed() < Duration::from_secs(10) => {}
            Err(e) => panic!("seed {seed}: reopening after the cut failed: {e}"),
        }
        sleep_ms(5).await;
    }
}

/// Check the store against the model. `strict`: the data policy is `always` (nothing
/// acknowledged may be missing, nothing may read as corrupt).
async fn check(s: &ShardStore, m: &Model, strict: bool, ctx: &str) {
    let seeds: HashMap<BlockHash, u64> = m.blocks.iter().map(|(h, v)| (*h, v.0)).collect();
    let mut lost = 0;
    let read = |h: BlockHash, must: bool| {
        let (_, d) = block_of(seeds[&h]);
        async move {
            match s.read_block(&h, 0, d.len() as u32).await {
                Ok(got) => {
                    assert!(got == d, "{ctx}: block {} read WRONG BYTES", h.to_hex());
                    // A range inside it, through the streaming reader too.
                    let off = (d.len() / 3) as u32;
                    let len = (d.len() / 2) as u32;
                    match s.open_block(&h).await {
                        Ok(r) => match r.read(off, len).await {
                            Ok(part) => assert!(
                                part[..] == d[off as usize..][..len as usize],
                                "{ctx}: block {} range read WRONG BYTES",
                                h.to_hex()
                            ),
                            Err(e) => panic!("{ctx}: range read of a readable block: {e}"),
                        },
                        Err(e) => panic!("{ctx}: open_block of a readable block: {e}"),
                    }
                    true
                }
                Err(StorageError::Corrupt(_)) | Err(StorageError::NotFound) if !must => false,
                Err(e) => panic!("{ctx}: block {} (must survive: {must}): {e:?}", h.to_hex()),
            }
        }
    };
    for (h, (_, must)) in &m.blocks {
        if !read(*h, *must || strict).await {
            lost += 1;
        }
    }
    for (key, k) in &m.objects {
        let got = s
            .get_object(&BUCKET, key)
            .unwrap_or_else(|e| panic!("{ctx}: get_object {key}: {e}"));
        if strict || k.must {
            let ok = match (&got, &k.acked) {
                (Some(g), Some(a)) => g == a || k.inflight.as_ref() == Some(g),
                (None, None) => true,
                (Some(g), None) => k.inflight.as_ref() == Some(g),
                (None, Some(_)) => false,
            };
            assert!(
                ok,
                "{ctx}: object {key}: found {:?}, acknowledged {:?}, in flight {:?}",
                got.as_ref().map(|r| &r.etag),
                k.acked.as_ref().map(|r| &r.etag),
                k.inflight.as_ref().map(|r| &r.etag)
            );
        } else if let Some(g) = &got {
            assert!(
                k.ever.contains(g),
                "{ctx}: object {key}: a row never written"
            );
        }
        if let Some(ObjectRow {
            data: ObjectData::Blocks(refs),
            ..
        }) = &got
        {
            for r in refs {
                // Acknowledged before the row was written.
                let must = strict || k.must;
                read(r.hash, must).await;
            }
        }
    }
    // Every indexed block (not only the model's) reads back verified.
    let mut bad = 0;
    loop {
        let p = s
            .scrub_step(256)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: scrub: {e}"));
        bad += p.bad;
        if p.wrapped {
            break;
        }
    }
    let st = s.stats();
    if strict {
        assert_eq!(bad, 0, "{ctx}: the scrub found corrupt blocks");
        assert_eq!(st.bad_blocks, 0, "{ctx}: {st:?}");
        assert_eq!(lost, 0);
    }
    let must_blocks = m.blocks.values().filter(|v| v.1 || strict).count() as u64;
    assert!(st.blocks >= must_blocks, "{ctx}: {st:?}");
    assert!(st.segments >= 1, "{ctx}: {st:?}");
    if st.blocks > 0 {
        assert!(st.live_bytes > 0, "{ctx}: {st:?}");
    }
}

/// `check` with the model taken out of its cell meanwhile (no writer runs during checks).
async fn check_model(s: &ShardStore, model: &Rc<RefCell<Model>>, strict: bool, ctx: &str) {
    let m = std::mem::take(&mut *model.borrow_mut());
    check(s, &m, strict, ctx).await;
    *model.borrow_mut() = m;
}

enum End {
    PowerLoss,
    Crash,
}

fn power_loss_case(policy: FsyncPolicy, seed: u64, lives: u64) {
    eprintln!("power loss case: policy {policy}, seed {seed} (GRANARY_POWERLOSS_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let sim = SimDisk::new(seed).with_keep_unsynced(rng.gen_range(0.0..0.9));
        let cfg = sim_cfg(&sim, policy);
        let strict = policy == FsyncPolicy::Always;
        let model = Rc::new(RefCell::new(Model::default()));
        let mut lost_pages = 0;
        let mut kept_pages = 0;
        let mut lost_files = 0;
        for life in 0..lives {
            let ctx = format!("seed {seed}, policy {policy}, opening life {life}");
            let s = open(&path, &cfg, seed).await;
            check_model(&s, &model, strict, &ctx).await;
            // Writers, and the cut at a random moment once some writes were acknowledged.
            let stop = Rc::new(Cell::new(false));
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    glommio::spawn_local(writer(
                        s.clone(),
                        model.clone(),
                        stop.clone(),
                        seed.wrapping_mul(1000).wrapping_add(life * WRITERS + w + 1),
                        w,
                    ))
                })
                .collect();
            let start = model.borrow().acks;
            let target = start + rng.gen_range(0..80);
            let t0 = Instant::now();
            while model.borrow().acks < target && t0.elapsed() < Duration::from_secs(20) {
                sleep_ms(1).await;
            }
            glommio::timer::sleep(Duration::from_micros(rng.gen_range(0..4000))).await;
            let end = if strict || rng.gen_bool(0.6) {
                End::PowerLoss
            } else {
                End::Crash
            };
            match end {
                End::PowerLoss => {
                    let r = sim.power_loss();
                    lost_pages += r.lost_pages;
                    kept_pages += r.kept_pages;
                    lost_files += r.lost_files;
                }
                End::Crash => sim.crash(),
            }
            stop.set(true);
            let _ = s.close().await; // fails: its disk is gone
            for t in tasks {
                t.await;
            }
            drop(s);
            if let (End::PowerLoss, false) = (end, strict) {
                model.borrow_mut().weaken();
            }
            assert!(
                model.borrow().acks > start || life == 0 || target == start,
                "seed {seed}: life {life} made no progress"
            );
        }
        // After the last cut: reopen, check, write, close cleanly, reopen: all there.
        let ctx = format!("seed {seed}, policy {policy}, final");
        let s = open(&path, &cfg, seed).await;
        check_model(&s, &model, strict, &ctx).await;
        let stop = Rc::new(Cell::new(false));
        let before = model.borrow().acks;
        let t = glommio::spawn_local(writer(
            s.clone(),
            model.clone(),
            stop.clone(),
            seed ^ 0xfeed,
            99,
        ));
        while model.borrow().acks < before + 30 {
            sleep_ms(1).await;
        }
        stop.set(true);
        t.await;
        s.close().await.unwrap();
        drop(s);
        let s = open(&path, &cfg, seed).await;
        let m = std::mem::take(&mut *model.borrow_mut());
        for (h, (bseed, must)) in &m.blocks {
            if *must {
                let (_, d) = block_of(*bseed);
                assert_eq!(
                    s.read_block(h, 0, d.len() as u32).await.ok().as_deref(),
                    Some(&d[..]),
                    "{ctx}: block written after the last reopen lost"
                );
            }
        }
        check(&s, &m, strict, &ctx).await;
        s.close().await.unwrap();
        let st = sim.stats();
        eprintln!(
            "seed {seed}: {} acks, {} blocks, {} keys; at the cuts: {lost_pages} unsynced pages lost, {kept_pages} kept, {lost_files} unsynced files lost; {st:?}",
            m.acks,
            m.blocks.len(),
            m.objects.len()
        );
        if strict {
            assert!(st.syncs > 0 && st.dir_syncs > 0);
        }
    });
}

fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("GRANARY_POWERLOSS_SEED") {
        Ok(s) => vec![s.parse().expect("GRANARY_POWERLOSS_SEED: a number")],
        Err(_) => {
            // The fixed seeds, and one fresh each run.
            let mut v = default.to_vec();
            v.push(rand::thread_rng().gen_range(1_000..1_000_000));
            v
        }
    }
}

#[test]
fn power_loss_always_keeps_every_acknowledged_write() {
    for seed in seeds(&[1, 2, 3]) {
        power_loss_case(FsyncPolicy::Always, seed, 15);
    }
}

#[test]
fn power_loss_never_opens_consistently() {
    for seed in seeds(&[3, 4, 6]) {
        power_loss_case(FsyncPolicy::Never, seed, 15);
    }
}

#[test]
fn power_loss_periodic_opens_consistently() {
    for seed in seeds(&[5, 7]) {
        power_loss_case(FsyncPolicy::Periodic(Duration::from_millis(5)), seed, 15);
    }
}

/// A strict disk (nothing unsynced survives) and a cut right after a burst of writes:
/// under `never` the index points at lost data; everything still reads as a clean error,
/// a put of a lost block writes it again, and writing goes on in a new segment (never
/// below the checkpoint, where recovery would not find it after a later crash).
#[test]
fn never_policy_lost_data_then_crash_keeps_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let sim = SimDisk::new(11).with_keep_unsynced(0.0);
        let cfg = StorageConfig {
            // One segment: the checkpoint ends up deep inside it.
            segment_bytes: 64 << 20,
            ..sim_cfg(&sim, FsyncPolicy::Never)
        };
        let s = open(&path, &cfg, 11).await;
        let old: Vec<_> = (0..40).map(|i| block_of(7000 + i)).collect();
        for (h, d) in &old {
            s.put_block(*h, d.clone(), H).await.unwrap();
            s.put_object(obj(&h.to_hex(), b"v")).await.unwrap();
        }
        // Each put_object's commit carried the index entry of the block before it: the
        // index points at every block (LMDB keeps it; the segment data is unsynced).
        assert_eq!(s.stats().pending_blocks, 0);
        let r = sim.power_loss();
        assert!(r.lost_pages > 0 || r.lost_files > 0, "{r:?}");
        let _ = s.close().await;
        drop(s);
        let s = open(&path, &cfg, 11).await;
        // Put some of the lost blocks again before anything reads them: the index still
        // has their entries, but `open` verified them and marked them bad, so the put
        // writes the data again instead of counting a reference to nothing.
        for (h, d) in &old[..8] {
            s.put_block(*h, d.clone(), H).await.unwrap();
        }
        for (h, d) in &old[8..] {
            match s.read_block(h, 0, d.len() as u32).await {
                Ok(got) => assert!(got == *d, "wrong bytes"),
                Err(StorageError::Corrupt(_)) | Err(StorageError::NotFound) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        // A few small blocks, acknowledged (and crashed) before their index entries are
        // committed (those wait up to 20 ms for company).
        let new: Vec<_> = (0..5u64)
            .map(|i| {
                let d = data(4000, 8000 + i);
                (BlockHash::of(&d), d)
            })
            .collect();
        for (h, d) in &new {
            s.put_block(*h, d.clone(), H).await.unwrap();
        }
        // A process crash right away (index entries may not be committed yet): recovery
        // must find every new record.
        sim.crash();
        let _ = s.close().await;
        drop(s);
        let s = open(&path, &cfg, 11).await;
        for (h, d) in new.iter().chain(&old[..8]) {
            assert_eq!(
                s.read_block(h, 0, d.len() as u32).await.unwrap(),
                *d,
                "a block acknowledged after the reopen was lost by a crash"
            );
        }
        s.close().await.unwrap();
    });
}
