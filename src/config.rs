//! Configuration, read in one place: command-line flags override the TOML file
//! (`--config`, default `/etc/granary.toml` when it exists), which overrides the defaults.
//! Every setting has a flag and a key of the same name (dashes become underscores).
//! `docs/configuration.md` lists them all; a test keeps that table and this file in step.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::constants::{BLOCK_BYTES_DEFAULT, BLOCK_BYTES_MAX, INLINE_THRESHOLD_BYTES_DEFAULT};

/// Flags of `granary server`. Every field is optional so that the file and the defaults
/// can fill what the command line leaves out.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerArgs {
    /// Directory holding all data and metadata [default: ./granary-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the S3 API listener [default: 127.0.0.1:3900]
    #[arg(long)]
    pub s3_addr: Option<SocketAddr>,
    /// Address of the admin API listener [default: 127.0.0.1:3903]
    #[arg(long)]
    pub admin_addr: Option<SocketAddr>,
    /// Number of shards (one pinned thread each) [default: usable cores]
    #[arg(long)]
    pub shards: Option<u16>,
    /// Region name that requests must be signed for [default: us-east-1]
    #[arg(long)]
    pub s3_region: Option<String>,
    /// Domain under which `<bucket>.<domain>` is virtual-host-style addressing [default: none]
    #[arg(long)]
    pub s3_root_domain: Option<String>,
    /// Block size in bytes: large objects are cut into blocks of this size [default: 1048576]
    #[arg(long)]
    pub block_size: Option<u64>,
    /// Objects smaller than this many bytes live inline in metadata [default: 3072]
    #[arg(long)]
    pub inline_threshold: Option<u64>,
    /// Durability of block data: always | periodic:<ms> | never [default: always]
    #[arg(long)]
    pub data_fsync: Option<String>,
    /// Durability of metadata: always | periodic:<ms> | never [default: always]
    #[arg(long)]
    pub metadata_fsync: Option<String>,
    /// A group commit closes once it holds this many bytes [default: 8388608]
    #[arg(long)]
    pub fsync_batch_bytes: Option<u64>,
    /// A group commit waits at most this many microseconds for more writes; 0 takes what is
    /// queued while the previous sync ran [default: 0]
    #[arg(long)]
    pub fsync_batch_delay_us: Option<u64>,
    /// Seconds a block stays at reference count zero before it is deleted [default: 600]
    #[arg(long)]
    pub block_gc_delay_s: Option<u64>,
    /// Log format: human | json [default: human]
    #[arg(long)]
    pub log_format: Option<String>,
    /// Length of one lifecycle "day" in seconds; shorter only to test lifecycle rules
    /// [default: 86400]
    #[arg(long)]
    pub lifecycle_day_secs: Option<u64>,
    /// Seconds between two lifecycle passes over a shard's objects [default: 3600]
    #[arg(long)]
    pub lifecycle_scan_interval_s: Option<u64>,
}

pub use crate::storage::FsyncPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The validated configuration of a server: explicit values, no hidden defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub s3_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shards: u16,
    pub s3_region: String,
    pub s3_root_domain: Option<String>,
    pub block_size: u64,
    pub inline_threshold: u64,
    pub data_fsync: FsyncPolicy,
    pub metadata_fsync: FsyncPolicy,
    pub fsync_batch_bytes: u64,
    pub fsync_batch_delay_us: u64,
    pub block_gc_delay_s: u64,
    pub log_format: LogFormat,
    pub lifecycle_day_secs: u64,
    pub lifecycle_scan_interval_s: u64,
}

/// A setting that cannot be accepted: names the key and says what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("configuration key `{key}`: {problem}")]
pub struct ConfigError {
    pub key: &'static str,
    pub problem: String,
}

fn bad(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

pub const DEFAULT_CONFIG_PATH: &str = "/etc/granary.toml";

impl ServerArgs {
    /// Reads a TOML file into the same shape as the flags. Unknown keys are refused.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| bad("(file)", e.to_string()))
    }

    /// `self` (flags) wins over `file`.
    pub fn overlay(self, file: ServerArgs) -> ServerArgs {
        ServerArgs {
            data_dir: self.data_dir.or(file.data_dir),
            s3_addr: self.s3_addr.or(file.s3_addr),
            admin_addr: self.admin_addr.or(file.admin_addr),
            shards: self.shards.or(file.shards),
            s3_region: self.s3_region.or(file.s3_region),
            s3_root_domain: self.s3_root_domain.or(file.s3_root_domain),
            block_size: self.block_size.or(file.block_size),
            inline_threshold: self.inline_threshold.or(file.inline_threshold),
            data_fsync: self.data_fsync.or(file.data_fsync),
            metadata_fsync: self.metadata_fsync.or(file.metadata_fsync),
            fsync_batch_bytes: self.fsync_batch_bytes.or(file.fsync_batch_bytes),
            fsync_batch_delay_us: self.fsync_batch_delay_us.or(file.fsync_batch_delay_us),
            block_gc_delay_s: self.block_gc_delay_s.or(file.block_gc_delay_s),
            log_format: self.log_format.or(file.log_format),
            lifecycle_day_secs: self.lifecycle_day_secs.or(file.lifecycle_day_secs),
            lifecycle_scan_interval_s: self
                .lifecycle_scan_interval_s
                .or(file.lifecycle_scan_interval_s),
        }
    }

    /// Fills defaults and checks every value.
    pub fn validate(self, usable_cores: u16) -> Result<ServerConfig, ConfigError> {
        let shards = self.shards.unwrap_or(usable_cores.max(1));
        if shards == 0 || shards > 256 {
            return Err(bad("shards", "must be between 1 and 256"));
        }
        let block_size = self.block_size.unwrap_or(BLOCK_BYTES_DEFAULT);
        if !(64 * 1024..=BLOCK_BYTES_MAX).contains(&block_size) || !block_size.is_multiple_of(4096)
        {
            return Err(bad(
                "block_size",
                format!("must be a multiple of 4096 between 65536 and {BLOCK_BYTES_MAX}"),
            ));
        }
        let inline_threshold = self
            .inline_threshold
            .unwrap_or(INLINE_THRESHOLD_BYTES_DEFAULT);
        if inline_threshold > 64 * 1024 {
            return Err(bad("inline_threshold", "must be at most 65536 bytes"));
        }
        let fsync = |key, v: Option<String>| -> Result<FsyncPolicy, ConfigError> {
            v.as_deref()
                .unwrap_or("always")
                .parse()
                .map_err(|e: String| bad(key, e))
        };
        let log_format = match self.log_format.as_deref().unwrap_or("human") {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => return Err(bad("log_format", format!("`{other}` is not human or json"))),
        };
        let s3_region = self.s3_region.unwrap_or_else(|| "us-east-1".into());
        if s3_region.is_empty() || !s3_region.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("s3_region", "must be a non-empty name without spaces"));
        }
        let lifecycle_day_secs = self.lifecycle_day_secs.unwrap_or(86_400);
        if lifecycle_day_secs == 0 {
            return Err(bad("lifecycle_day_secs", "must be at least 1"));
        }
        let lifecycle_scan_interval_s = self.lifecycle_scan_interval_s.unwrap_or(3_600);
        if lifecycle_scan_interval_s == 0 {
            return Err(bad("lifecycle_scan_interval_s", "must be at least 1"));
        }
        let fsync_batch_bytes = self.fsync_batch_bytes.unwrap_or(8 << 20);
        if !(4096..=(1 << 30)).contains(&fsync_batch_bytes) {
            return Err(bad(
                "fsync_batch_bytes",
                "must be between 4096 and 1073741824",
            ));
        }
        Ok(ServerConfig {
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("granary-data")),
            s3_addr: self
                .s3_addr
                .unwrap_or_else(|| "127.0.0.1:3900".parse().expect("literal")),
            admin_addr: self
                .admin_addr
                .unwrap_or_else(|| "127.0.0.1:3903".parse().expect("literal")),
            shards,
            s3_region,
            s3_root_domain: self.s3_root_domain.filter(|d| !d.is_empty()),
            block_size,
            inline_threshold,
            data_fsync: fsync("data_fsync", self.data_fsync)?,
            metadata_fsync: fsync("metadata_fsync", self.metadata_fsync)?,
            fsync_batch_bytes,
            fsync_batch_delay_us: self.fsync_batch_delay_us.unwrap_or(0),
            block_gc_delay_s: self.block_gc_delay_s.unwrap_or(600),
            log_format,
            lifecycle_day_secs,
            lifecycle_scan_interval_s,
        })
    }
}

impl crate::storage::StorageConfig {
    /// The storage settings of a server configuration.
    pub fn from_server(config: &ServerConfig) -> Self {
        crate::storage::StorageConfig {
            data_fsync: config.data_fsync,
            metadata_fsync: config.metadata_fsync,
            fsync_batch_bytes: config.fsync_batch_bytes,
            fsync_batch_delay_us: config.fsync_batch_delay_us,
            block_gc_delay_s: config.block_gc_delay_s,
            inline_threshold: config.inline_threshold,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_a_single_local_node() {
        let c = ServerArgs::default().validate(2).unwrap();
        assert_eq!(c.shards, 2);
        assert_eq!(c.s3_addr.to_string(), "127.0.0.1:3900");
        assert_eq!(c.data_fsync, FsyncPolicy::Always);
        assert_eq!(c.metadata_fsync, FsyncPolicy::Always);
        assert_eq!(c.block_size, 1 << 20);
    }

    #[test]
    fn flags_override_the_file() {
        let file = ServerArgs::from_toml("shards = 3\ns3_region = \"garage\"\n").unwrap();
        let flags = ServerArgs {
            shards: Some(1),
            ..Default::default()
        };
        let c = flags.overlay(file).validate(2).unwrap();
        assert_eq!(c.shards, 1);
        assert_eq!(c.s3_region, "garage");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let e = ServerArgs::from_toml("shard = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `shard`"), "{e}");
        let args = ServerArgs {
            data_fsync: Some("sometimes".into()),
            ..Default::default()
        };
        let e = args.validate(2).unwrap_err();
        assert_eq!(e.key, "data_fsync");
        assert!(e.problem.contains("periodic:<ms>"), "{}", e.problem);
        let args = ServerArgs {
            block_size: Some(1000),
            ..Default::default()
        };
        assert_eq!(args.validate(2).unwrap_err().key, "block_size");
    }

    use std::time::Duration;

    /// docs/configuration.md lists every flag and key of `granary server`.
    #[test]
    fn the_configuration_table_lists_every_setting() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Probe {
            #[command(flatten)]
            args: ServerArgs,
        }
        let doc = include_str!("../docs/configuration.md");
        let flags: Vec<String> = Probe::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        assert!(flags.len() >= 14, "{flags:?}");
        for flag in flags {
            let key = flag.replace('-', "_");
            let row = format!("| `--{flag}` | `{key}` |");
            assert!(
                doc.contains(&row),
                "docs/configuration.md lacks the row for --{flag}"
            );
        }
    }

    #[test]
    fn fsync_policies_parse() {
        assert_eq!(
            "periodic:250".parse(),
            Ok(FsyncPolicy::Periodic(Duration::from_millis(250)))
        );
        assert!("periodic:0".parse::<FsyncPolicy>().is_err());
        assert!("periodic:".parse::<FsyncPolicy>().is_err());
        assert_eq!("never".parse(), Ok(FsyncPolicy::Never));
    }
}
