//! `granary repair`: checks and repairs of a stopped node's data directory, run offline
//! so that no write is half done while they count (each shard's lock refuses a running
//! node's directory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::storage::refcheck::{self, RefReport};
use crate::storage::{ShardStore, StorageConfig};

/// The shard directories (`shard-<n>`) of a data directory, in shard order: those
/// `storage::placement` finds, with a clear error for a directory that holds none.
fn shard_dirs(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::metadata(data_dir)
        .with_context(|| format!("reading the data directory {}", data_dir.display()))?;
    let found = crate::storage::placement::shard_dirs(data_dir)?;
    if found.is_empty() {
        bail!(
            "{} holds no shard-<n> directories: is it a Granary data directory?",
            data_dir.display()
        );
    }
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Compares every block's references with the holders the rows of all shards name
/// (`storage::refcheck`); with `fix`, sets the references to those holders. A block left
/// with none is dropped by GC after the grace delay once the node runs again.
pub fn refcounts(data_dir: &Path, fix: bool) -> anyhow::Result<RefReport> {
    let moving = crate::storage::placement::pending_moves(data_dir)?;
    if moving > 0 {
        bail!(
            "{} has {moving} partitions still to move between shards: start the node once \
             (it finishes them before it serves), stop it, then run the repair",
            data_dir.display()
        );
    }
    let dirs = shard_dirs(data_dir)?;
    let cfg = StorageConfig {
        // Nothing in the background while counting: no GC, compaction or scrub.
        maintenance_interval_s: 0,
        scrub_bytes_per_s: 0,
        ..StorageConfig::default()
    };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("repair")
        .spawn(move || async move {
            let mut stores = Vec::new();
            for dir in &dirs {
                let store = ShardStore::open(dir, cfg.clone())
                    .await
                    .with_context(|| format!("opening the store in {}", dir.display()))?;
                stores.push(store);
            }
            let mut held = HashMap::new();
            let mut indexed = Vec::new();
            let mut owner = HashMap::new();
            for (i, store) in stores.iter().enumerate() {
                store.collect_row_holders(&mut held)?;
                for b in store.indexed_blocks()? {
                    owner.insert(b.hash, i);
                    indexed.push(b);
                }
            }
            let report = refcheck::compare(&held, indexed);
            if fix {
                let mut per_store = vec![Vec::new(); stores.len()];
                for (hash, holders) in report.fixes() {
                    per_store[owner[&hash]].push((hash, holders));
                }
                for (store, fixes) in stores.iter().zip(per_store) {
                    if !fixes.is_empty() {
                        store.set_block_holders(fixes).await?;
                    }
                }
            }
            for store in stores {
                store.close().await?;
            }
            anyhow::Ok(report)
        })
        .map_err(|e| anyhow::anyhow!("starting the repair's executor: {e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("the repair's executor failed: {e:?}"))?
}

/// The report as the command prints it.
pub fn describe(report: &RefReport, fixed: bool) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut out = format!("checked {} blocks\n", report.blocks);
    out.push_str(&format!(
        "leaked: {} blocks with references no row holds ({:.1} MiB that nothing \
         references)\n",
        report.leaked.len(),
        mib(report.reclaimable_bytes())
    ));
    out.push_str(&format!(
        "short: {} blocks missing a reference a row holds\n",
        report.short.len()
    ));
    out.push_str(&format!(
        "missing: {} blocks named by rows and stored on no shard\n",
        report.missing.len()
    ));
    for (hash, n) in report.missing.iter().take(20) {
        out.push_str(&format!("  missing {} (named {n} times)\n", hash.to_hex()));
    }
    let to_set = report.leaked.len() + report.short.len();
    out.push_str(&if report.consistent() {
        "consistent\n".to_string()
    } else if fixed {
        format!(
            "set {to_set} counts (the references of {to_set} blocks); blocks left with none \
             go to GC after the grace delay (--block-gc-delay-s) once the node runs\n"
        )
    } else if to_set > 0 {
        format!("run again with --fix to set {to_set} counts\n")
    } else {
        String::new()
    });
    out
}
