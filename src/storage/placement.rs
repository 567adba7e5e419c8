//! The data directory of a node, and getting it ready before the shards start.
//!
//! `node.json` records the directory's format, the node's identity, which shard holds each
//! partition (`meta::placement`), and the partitions still to move. At start:
//! - a new directory gets the striped placement of its shard count;
//! - a directory written by a release before this format (shard directories, no
//!   `node.json`) is migrated (`store::migrate`), and then every partition is gathered on the
//!   shard the striped placement gives it: rows may sit on any shard after the shard count
//!   changed under such a release;
//! - started with another shard count, the node rebalances its placement, moving as few
//!   partitions as it can;
//! - a directory of a format this build does not know is refused, never misread.
//!
//! Moves are crash-safe: the new placement and the partitions to move are written first
//! (atomically: a temporary file, synced, renamed, the directory synced); then each
//! partition is gathered on its shard from every other shard (rows merged, blocks copied
//! with their holders, the target synced), dropped from the others, and only then struck
//! off the list. A SIGKILL at any moment leaves a list to finish at the next start; a
//! gather repeated changes nothing. The node accepts connections only once the list is
//! empty, so reads and listings are complete from its first answer.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::store::migrate;
use super::{ShardStore, StorageConfig, Table};
use crate::clock::Clock;
use crate::meta::placement::Placement;
use crate::meta::types::{BlockHash, Partition};

/// The format of a data directory written by this build. Format 1 had no `node.json`.
pub const DATA_FORMAT: u32 = 2;
const NODE_FILE: &str = "node.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFile {
    pub format: u32,
    /// The node's id (16 hex digits), as in the `node_id` file.
    pub node_id: String,
    pub placement: Placement,
    /// Partitions to gather on their shard before the node serves.
    pub moving: Vec<Partition>,
}

/// The shard directories (`shard-<n>`) of a data directory, by shard number.
pub fn shard_dirs(data_dir: &Path) -> anyhow::Result<Vec<(u16, PathBuf)>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Ok(found);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.parse::<u16>().ok());
        if let Some(id) = id {
            found.push((id, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

pub fn shard_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

fn read_node_file(data_dir: &Path) -> anyhow::Result<Option<NodeFile>> {
    let path = data_dir.join(NODE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let format = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_u64()));
    match format {
        Some(f) if f == u64::from(DATA_FORMAT) => {}
        Some(f) => bail!(
            "{} says this data directory is format {f}; this build of Granary reads format \
             {DATA_FORMAT} (and migrates format 1): it was written by another release, run \
             that one",
            path.display()
        ),
        None => bail!("{} is not a Granary node file", path.display()),
    }
    let file: NodeFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Granary node file", path.display()))?;
    if !file.placement.valid() {
        bail!("{}: the placement it records is not valid", path.display());
    }
    Ok(Some(file))
}

/// Partitions a data directory still has to move between shards (its node stopped, or
/// died, before it finished them): nothing may count blocks before the node finishes them.
pub fn pending_moves(data_dir: &Path) -> anyhow::Result<usize> {
    Ok(read_node_file(data_dir)?.map_or(0, |f| f.moving.len()))
}

/// Writes `node.json` atomically and durably.
fn write_node_file(data_dir: &Path, file: &NodeFile) -> anyhow::Result<()> {
    use std::io::Write;
    let path = data_dir.join(NODE_FILE);
    let tmp = data_dir.join(format!("{NODE_FILE}.tmp"));
    let text = serde_json::to_string_pretty(file).expect("a node file serializes");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}

/// Gets the data directory ready for `shards` shards (see the module docs) and returns the
/// placement the shards serve.
pub fn prepare(
    data_dir: &Path,
    shards: u16,
    clock: &Clock,
    watch: &Watch,
) -> anyhow::Result<Placement> {
    let cfg = StorageConfig {
        maintenance_interval_s: 0,
        scrub_bytes_per_s: 0,
        clock: clock.clone(),
        ..StorageConfig::default()
    };
    let mut file = match read_node_file(data_dir)? {
        Some(file) => file,
        None => first_file(data_dir, shards, (clock, watch), &cfg)?,
    };
    if file.placement.shards != shards {
        let next = file.placement.rebalanced(shards);
        let moved = file.placement.moves(&next);
        tracing::info!(
            from = file.placement.shards,
            to = shards,
            partitions = moved.len(),
            "the shard count changed: moving partitions between shards"
        );
        for m in moved {
            if !file.moving.contains(&m.partition) {
                file.moving.push(m.partition);
            }
        }
        file.moving.sort();
        file.placement = next;
        write_node_file(data_dir, &file)?;
    }
    if !file.moving.is_empty() {
        gather_all(data_dir, &mut file, cfg, watch.clone())?;
    }
    remove_idle_shard_dirs(data_dir, file.placement.shards)?;
    Ok(file.placement)
}

/// What the node's start is watched by: whether it was asked to stop (between two
/// partitions a move then ends, leaving the rest for the next start), and a progress
/// report (systemd's status and start timeout).
#[derive(Clone)]
pub struct Watch {
    pub stopping: Arc<dyn Fn() -> bool + Send + Sync>,
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            stopping: Arc::new(|| false),
            progress: Arc::new(|_| {}),
        }
    }
}

/// Shard directories beyond the shard count, once every partition has moved off them:
/// they hold nothing live (their segments only dead records), so they go. A crash while
/// removing one leaves a part of it, removed at the next start.
fn remove_idle_shard_dirs(data_dir: &Path, shards: u16) -> anyhow::Result<()> {
    for (s, dir) in shard_dirs(data_dir)? {
        if s >= shards {
            tracing::info!(dir = %dir.display(), "removing a shard directory no shard uses");
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

/// The node file of a directory that has none: new, or written by a format-1 release.
fn first_file(
    data_dir: &Path,
    shards: u16,
    (clock, watch): (&Clock, &Watch),
    cfg: &StorageConfig,
) -> anyhow::Result<NodeFile> {
    let dirs = shard_dirs(data_dir)?;
    let mut formats = Vec::new();
    for (_, dir) in &dirs {
        formats.push(
            migrate::format_of(dir, cfg)
                .with_context(|| format!("reading the format of {}", dir.display()))?,
        );
    }
    let mut file = NodeFile {
        format: DATA_FORMAT,
        node_id: format!("{:016x}", clock.node()),
        placement: Placement::striped(shards),
        moving: Vec::new(),
    };
    if formats.iter().all(Option::is_none) {
        write_node_file(data_dir, &file)?;
        return Ok(file);
    }
    if let Some(f) = formats
        .iter()
        .flatten()
        .find(|f| **f > migrate_source_max())
    {
        bail!(
            "the shards of {} are format {f}, which this build of Granary does not know: it \
             was written by a newer release",
            data_dir.display()
        );
    }
    tracing::info!(
        dir = %data_dir.display(),
        shards = dirs.len(),
        "migrating a data directory written by an earlier release (format 1)"
    );
    (watch.progress)("migrating the data directory to this release's format");
    let paths: Vec<PathBuf> = dirs.into_iter().map(|(_, d)| d).collect();
    migrate::migrate(&paths, cfg).context("migrating the metadata to this build's format")?;
    // Rows of a partition may be on any shard: gather every partition where it belongs.
    file.moving = Partition::all().collect();
    write_node_file(data_dir, &file)?;
    Ok(file)
}

/// The newest shard format the migration reads (format 2 is this build's own: a crash may
/// have left a directory half migrated).
fn migrate_source_max() -> u32 {
    super::META_FORMAT
}

/// Gathers every partition of `file.moving` on its shard, in an executor of its own,
/// striking each off (durably) once done.
fn gather_all(
    data_dir: &Path,
    file: &mut NodeFile,
    cfg: StorageConfig,
    watch: Watch,
) -> anyhow::Result<()> {
    let mut shards: Vec<u16> = shard_dirs(data_dir)?.into_iter().map(|(s, _)| s).collect();
    shards.extend(0..file.placement.shards);
    shards.sort_unstable();
    shards.dedup();
    let data_dir = data_dir.to_path_buf();
    let todo = file.clone();
    let done =
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("moves")
            .spawn(move || async move {
                gather_in_executor(&data_dir, todo, (&shards, &watch), cfg).await
            })
            .map_err(|e| anyhow::anyhow!("starting the executor that moves partitions: {e}"))?
            .join()
            .map_err(|e| anyhow::anyhow!("moving partitions failed: {e:?}"))??;
    *file = done;
    Ok(())
}

async fn gather_in_executor(
    data_dir: &Path,
    mut file: NodeFile,
    (shards, watch): (&[u16], &Watch),
    cfg: StorageConfig,
) -> anyhow::Result<NodeFile> {
    let mut stores: Vec<(u16, Rc<ShardStore>)> = Vec::new();
    for &s in shards {
        let dir = shard_dir(data_dir, s);
        let store = ShardStore::open(&dir, cfg.clone())
            .await
            .with_context(|| format!("opening the store in {}", dir.display()))?;
        stores.push((s, store));
    }
    let total = file.moving.len();
    while let Some(&p) = file.moving.first() {
        if (watch.stopping)() {
            break;
        }
        let target = file.placement.shard_of(p);
        gather(p, target, &stores).await?;
        file.moving.remove(0);
        write_node_file(data_dir, &file)?;
        let done = total - file.moving.len();
        if done.is_multiple_of(32) || file.moving.is_empty() {
            tracing::info!(done, total, "partitions moved");
            (watch.progress)(&format!(
                "moving partitions between shards: {done} of {total}"
            ));
        }
    }
    for (_, store) in stores {
        store.close().await?;
    }
    if !file.moving.is_empty() {
        anyhow::bail!(
            "stopped before serving, with {} partitions still to move between shards: the \
             next start finishes them",
            file.moving.len()
        );
    }
    Ok(file)
}

/// Rows (and blocks) read per batch of a move.
const MOVE_BATCH: usize = 1024;

/// Partition `p` from every shard but `target` onto `target`, then off the others.
async fn gather(p: Partition, target: u16, stores: &[(u16, Rc<ShardStore>)]) -> anyhow::Result<()> {
    let to = &stores
        .iter()
        .find(|(s, _)| *s == target)
        .expect("the target shard's store is open")
        .1;
    let mut touched = Vec::new();
    for (s, from) in stores {
        if *s == target {
            continue;
        }
        if copy_partition(p, from, to).await? {
            touched.push(from);
        }
    }
    if touched.is_empty() {
        return Ok(());
    }
    // The target holds it durably before the sources let go.
    to.sync_all().await?;
    for from in touched {
        from.drop_partition(p).await?;
        from.sync_all().await?;
    }
    Ok(())
}

/// Copies partition `p`'s rows and blocks from `from` to `to`; whether there was any.
async fn copy_partition(p: Partition, from: &ShardStore, to: &ShardStore) -> anyhow::Result<bool> {
    let mut any = false;
    for table in [Table::Objects, Table::Uploads, Table::Parts] {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = from.partition_rows(table, p, after.as_deref(), MOVE_BATCH)?;
            let Some(last) = rows.last() else { break };
            after = Some(last.0.clone());
            any = true;
            to.import_rows(table, rows).await?;
        }
    }
    let mut after: Option<BlockHash> = None;
    loop {
        let blocks = from.partition_blocks(p, after, MOVE_BATCH)?;
        let Some(last) = blocks.last() else { break };
        after = Some(*last);
        any = true;
        for hash in blocks {
            copy_block(&hash, from, to).await?;
        }
    }
    Ok(any)
}

async fn copy_block(hash: &BlockHash, from: &ShardStore, to: &ShardStore) -> anyhow::Result<()> {
    let holders = from.block_holders(hash)?;
    if holders.is_empty() {
        // Waiting for GC: nothing to move.
        return Ok(());
    }
    let Some(entry) = from.block_info(hash)? else {
        return Ok(());
    };
    match from.read_block(hash, 0, entry.data_len).await {
        Ok(data) => to.import_block(*hash, data, &holders).await?,
        Err(e) => {
            // Unreadable here already (and so for its objects): it moves as a bad block,
            // its references with it, so that a later put of the same content repairs it.
            tracing::error!(block = %hash.to_hex(), "a block to move is unreadable: {e}");
            to.import_bad_block(*hash, entry.data_len, &holders).await?;
        }
    }
    Ok(())
}
