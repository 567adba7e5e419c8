//! Segment-file I/O of the engine, behind one small type so that tests can swap the disk.
//!
//! Every segment-file operation of the store goes through here: open/create
//! ([`Disk::open`]), aligned writes from DMA buffers, reads, `fdatasync`, truncate,
//! preallocation and size ([`SegFile`]), and the directory operations (list, remove,
//! sync). Two implementations:
//!
//! - [`DiskKind::Real`] (the default): glommio's `DmaFile` (O_DIRECT over io_uring). The
//!   abstraction is an enum match per call: no allocation, no dynamic dispatch, the same
//!   buffers as before.
//! - [`DiskKind::Sim`]: **a test facility**, an in-memory disk ([`SimDisk`]) that keeps, per
//!   file, the bytes as written and the bytes as of the last `fdatasync`, and per directory
//!   the names as of the last directory sync. [`SimDisk::power_loss`] throws away
//!   everything no sync covered (keeping a random subset of the unsynced 4 KiB pages, as a
//!   real disk may, which also produces torn writes); [`SimDisk::crash`] models a process
//!   crash (nothing is lost, the old store's handles die); [`SimDisk::fail_next_write`] and
//!   [`SimDisk::fail_next_sync`] inject I/O errors. It is compiled in every build (the
//!   integration tests in `tests/` use the library), but nothing outside tests selects it.
//!
//! LMDB does its own I/O and does not go through this module (see `docs/storage.md` for
//! what that means for the simulation).

use std::collections::{BTreeSet, HashMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::StorageError;

type Result<T> = std::result::Result<T, StorageError>;

/// Which disk the store's segment files live on ([`StorageConfig::disk`](super::StorageConfig)).
#[derive(Clone, Debug, Default)]
pub enum DiskKind {
    /// The real file system, through glommio `DmaFile` (O_DIRECT).
    #[default]
    Real,
    /// An in-memory simulated disk (tests only): see [`SimDisk`].
    Sim(SimDisk),
}

/// The disk of one open store. For the simulated disk it remembers the power cycle it was
/// opened in: after a simulated power loss or crash, every operation of the old store
/// fails (the machine it ran on is gone) and cannot touch the new state.
pub(crate) enum Disk {
    Real,
    Sim { sim: SimDisk, gen: u64 },
}

impl Disk {
    pub(crate) fn attach(kind: &DiskKind) -> Disk {
        match kind {
            DiskKind::Real => Disk::Real,
            DiskKind::Sim(sim) => Disk::Sim {
                sim: sim.clone(),
                gen: sim.lock().gen,
            },
        }
    }

    /// False once a simulated power loss or crash ended the power cycle this store was
    /// opened in (the store then commits nothing more to LMDB either). Always true for the
    /// real disk.
    #[inline]
    pub(crate) fn alive(&self) -> bool {
        match self {
            Disk::Real => true,
            Disk::Sim { sim, gen } => sim.lock().gen == *gen,
        }
    }

    /// Open a segment file for reading and writing (creating it if `create`). With
    /// `synced_writes` the file is opened `O_DSYNC`: a write completes only once it is
    /// durable, as if an `fdatasync` followed it (see [`SegFile::write_at`]).
    pub(crate) async fn open(
        &self,
        path: &Path,
        create: bool,
        synced_writes: bool,
    ) -> Result<SegFile> {
        match self {
            Disk::Real => Ok(SegFile::Real(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(create)
                    .custom_flags(if synced_writes { libc::O_DSYNC } else { 0 })
                    .dma_open(path)
                    .await?,
            )),
            Disk::Sim { sim, gen } => sim
                .open(*gen, path, create, synced_writes)
                .map(SegFile::Sim),
        }
    }

    /// Names of the files in `dir`.
    pub(crate) fn list(&self, dir: &Path) -> Result<Vec<String>> {
        match self {
            Disk::Real => {
                let mut out = Vec::new();
                for ent in std::fs::read_dir(dir)? {
                    out.push(ent?.file_name().to_string_lossy().into_owned());
                }
                Ok(out)
            }
            Disk::Sim { sim, gen } => sim.list(*gen, dir),
        }
    }

    pub(crate) fn remove(&self, path: &Path) -> Result<()> {
        match self {
            Disk::Real => Ok(std::fs::remove_file(path)?),
            Disk::Sim { sim, gen } => sim.remove(*gen, path),
        }
    }

    /// Make the creation and removal of files in `dir` durable (fsync of the directory;
    /// on the blocking pool for the real disk).
    pub(crate) async fn sync_dir(&self, dir: &Path) -> Result<()> {
        match self {
            Disk::Real => {
                let dir = dir.to_path_buf();
                glommio::executor()
                    .spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                    .await?;
                Ok(())
            }
            Disk::Sim { sim, gen } => {
                sim.check(*gen, "directory sync")?;
                sim.latency(true).await;
                sim.sync_dir(*gen, dir)
            }
        }
    }
}

/// One open segment file.
pub(crate) enum SegFile {
    Real(DmaFile),
    Sim(SimFile),
}

/// Bytes read from a segment file.
pub(crate) enum ReadBuf {
    Real(ReadResult),
    Sim(Vec<u8>),
}

impl Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ReadBuf::Real(r) => r,
            ReadBuf::Sim(v) => v,
        }
    }
}

impl SegFile {
    /// An aligned buffer for [`SegFile::write_at`].
    pub(crate) fn alloc_buffer(&self, len: usize) -> DmaBuffer {
        match self {
            SegFile::Real(f) => f.alloc_dma_buffer(len),
            SegFile::Sim(_) => glommio::allocate_dma_buffer(len),
        }
    }

    /// Write `buf` at `pos` (both aligned, as O_DIRECT requires); returns bytes written.
    /// Once this returns, the caller's is the only reference to `buf` again. On a file
    /// opened with synced writes, success means the bytes are durable; an error may come
    /// from the write or from its flush, and the two cannot be told apart.
    pub(crate) async fn write_at(&self, buf: Rc<DmaBuffer>, pos: u64) -> Result<usize> {
        match self {
            SegFile::Real(f) => Ok(f.write_rc_at(buf, pos).await?),
            SegFile::Sim(f) => f.write_at(buf.as_bytes(), pos).await,
        }
    }

    /// Read up to `len` bytes at `pos` (short at the end of the file).
    pub(crate) async fn read_at(&self, pos: u64, len: usize) -> Result<ReadBuf> {
        match self {
            SegFile::Real(f) => Ok(ReadBuf::Real(f.read_at(pos, len).await?)),
            SegFile::Sim(f) => f.read_at(pos, len).await.map(ReadBuf::Sim),
        }
    }

    /// Close the file now (errors are logged: nothing is left to do about them).
    pub(crate) async fn close(self) {
        if let SegFile::Real(f) = self {
            if let Err(e) = f.close().await {
                tracing::warn!(error = %e, "closing a segment file failed");
            }
        }
    }

    pub(crate) async fn fdatasync(&self) -> Result<()> {
        match self {
            SegFile::Real(f) => Ok(f.fdatasync().await?),
            SegFile::Sim(f) => f.fdatasync().await,
        }
    }

    pub(crate) async fn truncate(&self, size: u64) -> Result<()> {
        match self {
            SegFile::Real(f) => Ok(f.truncate(size).await?),
            SegFile::Sim(f) => f.truncate(size),
        }
    }

    /// Allocate `size` bytes of blocks without changing the file size.
    pub(crate) async fn pre_allocate(&self, size: u64) -> Result<()> {
        match self {
            SegFile::Real(f) => Ok(f.pre_allocate(size, true).await?),
            SegFile::Sim(f) => f.disk.check(f.gen, "preallocate"),
        }
    }

    pub(crate) async fn file_size(&self) -> Result<u64> {
        match self {
            SegFile::Real(f) => Ok(f.file_size().await?),
            SegFile::Sim(f) => f.with(|d| d.data.len() as u64, "stat"),
        }
    }
}

// ------------------------------------------------------------------ the simulated disk

/// The unit a power loss keeps or forgets (a page of the page cache / a device sector
/// group; records are aligned to it).
pub const SIM_PAGE: usize = 4096;

/// An in-memory disk for tests: see the module docs. Cheap to clone (shared state); put it
/// in [`StorageConfig::disk`](super::StorageConfig) as `DiskKind::Sim(disk.clone())` and
/// keep a clone to cut the power.
///
/// Model:
/// - A file's *data* (what reads see) changes with every write and truncate; its *durable*
///   image becomes a copy of the data (pages written since the last sync, and the size) at
///   each `fdatasync` — at the moment the sync is issued, so writes still in flight are not
///   covered.
/// - A file created or removed is durably so only after its directory is synced (at a
///   power loss each unsynced creation or removal is kept with probability
///   `keep_unsynced`, like a page).
/// - [`power_loss`](SimDisk::power_loss): each file is reset to its durable image, except
///   that every page written since the last sync is kept with probability
///   `keep_unsynced` (default 0.5) — any subset may have reached the platters, so records
///   can be torn at page boundaries; kept pages past the durable end extend the file
///   (holes read as zeros). Names go back to the last directory sync. The store that was
///   running is dead: every further operation of it fails with EIO.
/// - A failed `fdatasync` (injected) makes nothing durable; the pages stay unsynced (as
///   O_DIRECT writes sitting in the device's volatile cache would: a later successful
///   flush persists them, a power loss may drop them). Buffered I/O's "fsyncgate"
///   behaviour (pages marked clean after a failed writeback, lost for good) is not
///   modelled: the segments are O_DIRECT.
/// - An injected write failure writes nothing.
#[derive(Clone)]
pub struct SimDisk(Arc<Mutex<Sim>>);

/// What one [`SimDisk::power_loss`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Unsynced pages forgotten.
    pub lost_pages: u64,
    /// Unsynced pages that happened to survive.
    pub kept_pages: u64,
    /// Files whose creation was never made durable and did not survive (gone).
    pub lost_files: u64,
    /// Files whose removal was never made durable and did not survive (back).
    pub revived_files: u64,
}

/// Operation counts of a [`SimDisk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub writes: u64,
    pub syncs: u64,
    pub dir_syncs: u64,
    pub failed_writes: u64,
    pub failed_syncs: u64,
    pub power_losses: u64,
    /// Pages written and not yet synced, over all files.
    pub unsynced_pages: u64,
}

struct Sim {
    /// Power cycle: handles of an older one are dead.
    gen: u64,
    next_id: u64,
    /// The namespace as processes see it.
    names: HashMap<PathBuf, u64>,
    /// The namespace as of the last sync of each directory.
    durable_names: HashMap<PathBuf, u64>,
    files: HashMap<u64, SimData>,
    rng: StdRng,
    keep_unsynced: f64,
    write_latency: Duration,
    sync_latency: Duration,
    fail_write: Option<i32>,
    fail_sync: Option<i32>,
    stats: SimStats,
}

#[derive(Default)]
struct SimData {
    /// The bytes as written (reads see these); its length is the file size.
    data: Vec<u8>,
    /// The bytes as of the last successful fdatasync.
    durable: Vec<u8>,
    /// Pages written since the last fdatasync.
    dirty: BTreeSet<u64>,
    /// Open handles (a removed file stays readable through them).
    handles: usize,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("SimDisk")
            .field("power_cycle", &s.gen)
            .field("files", &s.names.len())
            .finish()
    }
}

fn sim_err(errno: i32, what: &str) -> StorageError {
    let e = std::io::Error::from_raw_os_error(errno);
    let msg = format!("simulated disk, {what}: {e}");
    match errno {
        libc::ENOSPC | libc::EDQUOT => StorageError::DiskFull(msg),
        _ => StorageError::Io(msg),
    }
}

impl SimDisk {
    /// An empty disk; `seed` drives which unsynced pages survive a power loss.
    pub fn new(seed: u64) -> SimDisk {
        SimDisk(Arc::new(Mutex::new(Sim {
            gen: 1,
            next_id: 1,
            names: HashMap::new(),
            durable_names: HashMap::new(),
            files: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            keep_unsynced: 0.5,
            write_latency: Duration::from_micros(20),
            sync_latency: Duration::from_micros(300),
            fail_write: None,
            fail_sync: None,
            stats: SimStats::default(),
        })))
    }

    /// Probability that an unsynced page survives a power loss (0: a strict disk that
    /// loses everything unsynced).
    pub fn with_keep_unsynced(self, p: f64) -> SimDisk {
        self.lock().keep_unsynced = p.clamp(0.0, 1.0);
        self
    }

    /// How long a write and a sync take (timer sleeps, so that other tasks, and a power
    /// loss, can run while they are in flight).
    pub fn with_latency(self, write: Duration, sync: Duration) -> SimDisk {
        {
            let mut s = self.lock();
            s.write_latency = write;
            s.sync_latency = sync;
        }
        self
    }

    /// Cut the power: see the type docs. The store that was open must not be used for
    /// anything but dropping (its operations fail); open a new one on the same config.
    pub fn power_loss(&self) -> PowerLoss {
        let mut s = self.lock();
        let s = &mut *s;
        let mut r = PowerLoss::default();
        s.gen += 1;
        s.stats.power_losses += 1;
        // Each namespace change since the last directory sync (a creation, a removal)
        // reached the disk or not, like an unsynced page.
        let mut names = s.durable_names.clone();
        let mut created: Vec<(&PathBuf, &u64)> = s
            .names
            .iter()
            .filter(|(p, id)| s.durable_names.get(*p) != Some(id))
            .collect();
        created.sort();
        for (path, &id) in created {
            if s.rng.gen_bool(s.keep_unsynced) {
                names.insert(path.clone(), id);
            } else {
                r.lost_files += 1;
            }
        }
        let mut removed: Vec<(&PathBuf, &u64)> = s
            .durable_names
            .iter()
            .filter(|(p, id)| s.names.get(*p) != Some(id))
            .collect();
        removed.sort();
        for (path, &id) in removed {
            if s.rng.gen_bool(s.keep_unsynced) {
                if names.get(path) == Some(&id) {
                    names.remove(path);
                }
            } else {
                r.revived_files += 1;
            }
        }
        s.names = names;
        s.durable_names = s.names.clone();
        let live: BTreeSet<u64> = s.names.values().copied().collect();
        s.files.retain(|id, _| live.contains(id));
        let mut ids: Vec<u64> = s.files.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let f = s.files.get_mut(&id).expect("file");
            let mut img = f.durable.clone();
            for &p in &f.dirty {
                let start = p as usize * SIM_PAGE;
                if start >= f.data.len() {
                    continue;
                }
                if s.rng.gen_bool(s.keep_unsynced) {
                    let end = (start + SIM_PAGE).min(f.data.len());
                    if img.len() < end {
                        img.resize(end, 0);
                    }
                    img[start..end].copy_from_slice(&f.data[start..end]);
                    r.kept_pages += 1;
                } else {
                    r.lost_pages += 1;
                }
            }
            f.dirty.clear();
            f.data = img.clone();
            f.durable = img;
            f.handles = 0;
        }
        r
    }

    /// A process crash: the running store's handles die, nothing written is lost (the
    /// page cache survives the process).
    pub fn crash(&self) {
        let mut s = self.lock();
        s.gen += 1;
        for f in s.files.values_mut() {
            f.handles = 0;
        }
        let live: BTreeSet<u64> = s
            .names
            .values()
            .chain(s.durable_names.values())
            .copied()
            .collect();
        s.files.retain(|id, _| live.contains(id));
    }

    /// The next write (to any file) fails with `errno` (e.g. `libc::EIO`, `libc::ENOSPC`)
    /// and writes nothing.
    pub fn fail_next_write(&self, errno: i32) {
        self.lock().fail_write = Some(errno);
    }

    /// The next `fdatasync` fails with `errno` and makes nothing durable.
    pub fn fail_next_sync(&self, errno: i32) {
        self.lock().fail_sync = Some(errno);
    }

    pub fn stats(&self) -> SimStats {
        let s = self.lock();
        let mut st = s.stats;
        st.unsynced_pages = s.files.values().map(|f| f.dirty.len() as u64).sum();
        st
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, gen: u64, what: &str) -> Result<()> {
        if self.lock().gen == gen {
            Ok(())
        } else {
            Err(sim_err(
                libc::EIO,
                &format!("{what} after the power was cut"),
            ))
        }
    }

    async fn latency(&self, sync: bool) {
        let d = {
            let s = self.lock();
            if sync {
                s.sync_latency
            } else {
                s.write_latency
            }
        };
        if d.is_zero() {
            futures_lite::future::yield_now().await;
        } else {
            glommio::timer::sleep(d).await;
        }
    }

    fn open(&self, gen: u64, path: &Path, create: bool, dsync: bool) -> Result<SimFile> {
        self.check(gen, "open")?;
        let mut s = self.lock();
        let id = match s.names.get(path) {
            Some(&id) => id,
            None if create => {
                let id = s.next_id;
                s.next_id += 1;
                s.names.insert(path.to_path_buf(), id);
                s.files.insert(id, SimData::default());
                id
            }
            None => return Err(sim_err(libc::ENOENT, &format!("open {}", path.display()))),
        };
        s.files.get_mut(&id).expect("named file exists").handles += 1;
        Ok(SimFile {
            disk: self.clone(),
            id,
            gen,
            dsync,
        })
    }

    fn list(&self, gen: u64, dir: &Path) -> Result<Vec<String>> {
        self.check(gen, "list")?;
        let s = self.lock();
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn remove(&self, gen: u64, path: &Path) -> Result<()> {
        self.check(gen, "remove")?;
        let mut s = self.lock();
        match s.names.remove(path) {
            Some(id) => {
                s.free_if_unused(id);
                Ok(())
            }
            None => Err(sim_err(libc::ENOENT, &format!("remove {}", path.display()))),
        }
    }

    fn sync_dir(&self, gen: u64, dir: &Path) -> Result<()> {
        self.check(gen, "directory sync")?;
        let mut s = self.lock();
        let s = &mut *s;
        s.stats.dir_syncs += 1;
        let gone: Vec<(PathBuf, u64)> = s
            .durable_names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, &id)| (p.clone(), id))
            .collect();
        for (p, _) in &gone {
            s.durable_names.remove(p);
        }
        for (p, &id) in &s.names {
            if p.parent() == Some(dir) {
                s.durable_names.insert(p.clone(), id);
            }
        }
        for (_, id) in gone {
            s.free_if_unused(id);
        }
        Ok(())
    }
}

impl Sim {
    fn free_if_unused(&mut self, id: u64) {
        let named =
            self.names.values().any(|&i| i == id) || self.durable_names.values().any(|&i| i == id);
        if !named && self.files.get(&id).is_some_and(|f| f.handles == 0) {
            self.files.remove(&id);
        }
    }
}

/// An open file of a [`SimDisk`].
pub(crate) struct SimFile {
    disk: SimDisk,
    id: u64,
    gen: u64,
    /// Opened `O_DSYNC`: each write is followed by a flush of what was written before it
    /// was issued, and of its own pages (an injected sync failure fails the write).
    dsync: bool,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut s = self.disk.lock();
        if s.gen != self.gen {
            return;
        }
        if let Some(f) = s.files.get_mut(&self.id) {
            f.handles = f.handles.saturating_sub(1);
        }
        s.free_if_unused(self.id);
    }
}

impl SimFile {
    fn with<T>(&self, op: impl FnOnce(&mut SimData) -> T, what: &str) -> Result<T> {
        let mut s = self.disk.lock();
        if s.gen != self.gen {
            return Err(sim_err(
                libc::EIO,
                &format!("{what} after the power was cut"),
            ));
        }
        match s.files.get_mut(&self.id) {
            Some(f) => Ok(op(f)),
            None => Err(sim_err(libc::EIO, &format!("{what}: file is gone"))),
        }
    }

    async fn write_at(&self, buf: &[u8], pos: u64) -> Result<usize> {
        if !pos.is_multiple_of(512) || !buf.len().is_multiple_of(512) {
            return Err(sim_err(libc::EINVAL, "unaligned O_DIRECT write"));
        }
        let fail = {
            let mut s = self.disk.lock();
            s.stats.writes += 1;
            let f = s.fail_write.take();
            if f.is_some() {
                s.stats.failed_writes += 1;
            }
            f
        };
        if let Some(errno) = fail {
            self.disk.latency(false).await;
            return Err(sim_err(errno, "write"));
        }
        let end = pos as usize + buf.len();
        let covered = self.with(
            |f| {
                let pos = pos as usize;
                if f.data.len() < end {
                    f.data.resize(end, 0);
                }
                f.data[pos..end].copy_from_slice(buf);
                let first = (pos / SIM_PAGE) as u64;
                let last = end.div_ceil(SIM_PAGE) as u64;
                f.dirty.extend(first..last);
                // What an O_DSYNC write's flush covers: writes done before it was issued,
                // and its own pages (not those of writes issued while it is in flight).
                f.dirty.iter().copied().collect::<Vec<u64>>()
            },
            "write",
        )?;
        self.disk.latency(false).await;
        // The write is applied; its completion is not delivered after a power loss.
        self.with(|_| (), "write")?;
        if self.dsync {
            self.flush(Some((&covered, end)), "write (O_DSYNC)").await?;
        }
        Ok(buf.len())
    }

    async fn read_at(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let out = self.with(
            |f| {
                let start = (pos as usize).min(f.data.len());
                let end = (pos as usize).saturating_add(len).min(f.data.len());
                f.data[start..end].to_vec()
            },
            "read",
        )?;
        futures_lite::future::yield_now().await;
        Ok(out)
    }

    async fn fdatasync(&self) -> Result<()> {
        self.flush(None, "fdatasync").await
    }

    /// Make pages durable: `Some((pages, end))` those pages and the file size up to `end`
    /// (an O_DSYNC write's own flush), `None` every page written so far (`fdatasync`). An
    /// injected sync failure makes nothing durable.
    async fn flush(&self, only: Option<(&[u64], usize)>, what: &str) -> Result<()> {
        let fail = {
            let mut s = self.disk.lock();
            let f = s.fail_sync.take();
            if f.is_some() {
                s.stats.failed_syncs += 1;
            } else {
                s.stats.syncs += 1;
            }
            f
        };
        self.with(
            |f| {
                if fail.is_some() {
                    // The flush failed: nothing became durable.
                    return;
                }
                let (pages, size): (Vec<u64>, usize) = match only {
                    Some((pages, end)) => {
                        let size = f.durable.len().max(end).min(f.data.len());
                        (pages.to_vec(), size)
                    }
                    None => (f.dirty.iter().copied().collect(), f.data.len()),
                };
                f.durable.resize(size, 0);
                for p in pages {
                    let start = p as usize * SIM_PAGE;
                    if start >= size || !f.dirty.remove(&p) {
                        continue;
                    }
                    let end = (start + SIM_PAGE).min(size);
                    f.durable[start..end].copy_from_slice(&f.data[start..end]);
                }
                if only.is_none() {
                    f.dirty.clear();
                }
            },
            what,
        )?;
        self.disk.latency(true).await;
        self.with(|_| (), what)?;
        match fail {
            Some(errno) => Err(sim_err(errno, what)),
            None => Ok(()),
        }
    }

    fn truncate(&self, size: u64) -> Result<()> {
        self.with(
            |f| {
                let size = size as usize;
                f.data.resize(size, 0);
                let keep = size.div_ceil(SIM_PAGE) as u64;
                f.dirty.retain(|&p| p < keep);
                if !size.is_multiple_of(SIM_PAGE) && keep > 0 {
                    // The last page changed (zeroed past the new end).
                    f.dirty.insert(keep - 1);
                }
            },
            "truncate",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F, Fut, T>(f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
        T: Send + 'static,
    {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(f)
            .expect("executor")
            .join()
            .expect("join")
    }

    fn buf(f: &SegFile, byte: u8, len: usize) -> Rc<DmaBuffer> {
        let mut b = f.alloc_buffer(len);
        b.as_bytes_mut().fill(byte);
        Rc::new(b)
    }

    #[test]
    fn sim_keeps_synced_and_forgets_unsynced() {
        run(|| async {
            let sim = SimDisk::new(1).with_keep_unsynced(0.0);
            let disk = Disk::attach(&DiskKind::Sim(sim.clone()));
            let dir = Path::new("/sim/segments");
            let p = dir.join("seg-1");
            let f = disk.open(&p, true, false).await.unwrap();
            disk.sync_dir(dir).await.unwrap();
            f.write_at(buf(&f, 1, 8192), 0).await.unwrap();
            f.fdatasync().await.unwrap();
            f.write_at(buf(&f, 2, 4096), 8192).await.unwrap();
            f.write_at(buf(&f, 3, 4096), 0).await.unwrap();
            assert_eq!(f.file_size().await.unwrap(), 12288);
            assert_eq!(f.read_at(0, 1).await.unwrap()[0], 3);
            // An unsynced file is gone after the power loss, and so is its name.
            let q = dir.join("seg-2");
            let g = disk.open(&q, true, false).await.unwrap();
            g.write_at(buf(&g, 9, 4096), 0).await.unwrap();
            g.fdatasync().await.unwrap();
            let r = sim.power_loss();
            assert_eq!(r.lost_pages, 2);
            assert_eq!(r.lost_files, 1);
            // The old handles are dead.
            assert!(f.read_at(0, 1).await.is_err());
            assert!(disk.open(&p, false, false).await.is_err());
            let disk = Disk::attach(&DiskKind::Sim(sim.clone()));
            assert_eq!(disk.list(dir).unwrap(), vec!["seg-1".to_string()]);
            let f = disk.open(&p, false, false).await.unwrap();
            assert_eq!(f.file_size().await.unwrap(), 8192);
            assert!(f.read_at(0, 8192).await.unwrap().iter().all(|&b| b == 1));
        });
    }

    #[test]
    fn sim_keeps_a_subset_of_unsynced_pages() {
        run(|| async {
            let sim = SimDisk::new(7).with_keep_unsynced(0.5);
            let disk = Disk::attach(&DiskKind::Sim(sim.clone()));
            let dir = Path::new("/sim");
            let f = disk.open(&dir.join("f"), true, false).await.unwrap();
            disk.sync_dir(dir).await.unwrap();
            f.write_at(buf(&f, 5, 64 * 4096), 0).await.unwrap();
            let r = sim.power_loss();
            assert_eq!(r.kept_pages + r.lost_pages, 64);
            assert!(r.kept_pages > 0 && r.lost_pages > 0, "{r:?}");
            let disk = Disk::attach(&DiskKind::Sim(sim));
            let f = disk.open(&dir.join("f"), false, false).await.unwrap();
            let d = f.read_at(0, 64 * 4096).await.unwrap();
            // Every page is either all new bytes or all zeros (a hole).
            for page in d.chunks(4096) {
                assert!(page.iter().all(|&b| b == 5) || page.iter().all(|&b| b == 0));
            }
        });
    }

    #[test]
    fn sim_faults_and_removal() {
        run(|| async {
            let sim = SimDisk::new(3).with_keep_unsynced(0.0);
            let disk = Disk::attach(&DiskKind::Sim(sim.clone()));
            let dir = Path::new("/sim");
            let f = disk.open(&dir.join("a"), true, false).await.unwrap();
            disk.sync_dir(dir).await.unwrap();
            sim.fail_next_write(libc::ENOSPC);
            let e = f.write_at(buf(&f, 1, 4096), 0).await.unwrap_err();
            assert!(matches!(e, StorageError::DiskFull(_)), "{e:?}");
            assert_eq!(f.file_size().await.unwrap(), 0);
            f.write_at(buf(&f, 1, 4096), 0).await.unwrap();
            sim.fail_next_sync(libc::EIO);
            assert!(matches!(f.fdatasync().await, Err(StorageError::Io(_))));
            assert_eq!(sim.stats().unsynced_pages, 1);
            disk.remove(&dir.join("a")).unwrap();
            assert!(disk.list(dir).unwrap().is_empty());
            // Still readable through the open handle.
            assert_eq!(f.read_at(0, 1).await.unwrap()[0], 1);
            let r = sim.power_loss();
            assert_eq!(r.revived_files, 1);
            let disk = Disk::attach(&DiskKind::Sim(sim));
            // Back (its removal was never synced), with what was durable: nothing.
            let f = disk.open(&dir.join("a"), false, false).await.unwrap();
            assert_eq!(f.file_size().await.unwrap(), 0);
        });
    }

    #[test]
    fn sim_synced_writes_are_durable_when_they_return() {
        run(|| async {
            let sim = SimDisk::new(5).with_keep_unsynced(0.0);
            let disk = Disk::attach(&DiskKind::Sim(sim.clone()));
            let dir = Path::new("/sim");
            let f = disk.open(&dir.join("d"), true, true).await.unwrap();
            let g = disk.open(&dir.join("p"), true, false).await.unwrap();
            disk.sync_dir(dir).await.unwrap();
            f.write_at(buf(&f, 1, 8192), 0).await.unwrap();
            g.write_at(buf(&g, 1, 8192), 0).await.unwrap();
            assert_eq!(sim.stats().syncs, 1, "the O_DSYNC write flushed");
            // A failed flush fails the write that carried it; nothing of it is durable.
            sim.fail_next_sync(libc::EIO);
            let e = f.write_at(buf(&f, 2, 4096), 8192).await.unwrap_err();
            assert!(matches!(e, StorageError::Io(_)), "{e:?}");
            sim.power_loss();
            let disk = Disk::attach(&DiskKind::Sim(sim));
            let f = disk.open(&dir.join("d"), false, true).await.unwrap();
            assert_eq!(f.file_size().await.unwrap(), 8192);
            assert!(f.read_at(0, 8192).await.unwrap().iter().all(|&b| b == 1));
            let g = disk.open(&dir.join("p"), false, false).await.unwrap();
            assert_eq!(g.file_size().await.unwrap(), 0, "never synced");
        });
    }

    #[test]
    fn real_segment_files_open_o_dsync_for_synced_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seg");
        run(move || async move {
            let disk = Disk::attach(&DiskKind::Real);
            let f = disk.open(&path, true, true).await.unwrap();
            let SegFile::Real(df) = &f else {
                panic!("real file")
            };
            let fd = std::os::fd::AsRawFd::as_raw_fd(df);
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(|v| i64::from_str_radix(v.trim(), 8).unwrap())
                .unwrap();
            assert_ne!(flags & i64::from(libc::O_DSYNC), 0, "{info}");
            assert_eq!(f.write_at(buf(&f, 7, 8192), 0).await.unwrap(), 8192);
            assert_eq!(f.file_size().await.unwrap(), 8192);
            f.close().await;
            // (Read back through std: glommio's first O_DIRECT read on a device probes for
            // IOPOLL, which the store does once at open, see `probe_direct_reads`.)
            assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 7));
        });
    }
}
