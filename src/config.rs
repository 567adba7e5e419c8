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
    /// Address of the static website listener [default: 127.0.0.1:3902]
    #[arg(long)]
    pub web_addr: Option<SocketAddr>,
    /// Domain under which `<bucket>.<domain>` in Host names a website bucket [default: none]
    #[arg(long)]
    pub web_root_domain: Option<String>,
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
    /// Bearer token of the admin API [default: read from --admin-token-file]
    #[arg(long, env = "GRANARY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin API's bearer token, created (mode 0600) when missing
    /// [default: <data-dir>/admin.token]
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Bearer token that /metrics requires [default: none, /metrics is open]
    #[arg(long, env = "GRANARY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// PEM certificate chain: with --tls-key, the listeners speak TLS (reloaded on SIGHUP)
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Seconds a graceful stop waits for requests in flight [default: 30]
    #[arg(long)]
    pub shutdown_timeout_s: Option<u64>,
    /// Length of one lifecycle "day" in seconds; shorter only to test lifecycle rules
    /// [default: 86400]
    #[arg(long)]
    pub lifecycle_day_secs: Option<u64>,
    /// Seconds between two lifecycle passes over a shard's objects [default: 3600]
    #[arg(long)]
    pub lifecycle_scan_interval_s: Option<u64>,
    /// Most connections the node serves at once (S3 and website listeners together); one
    /// more is answered 503 SlowDown and closed [default: 4096]
    #[arg(long)]
    pub max_connections: Option<u64>,
    /// Slowest request body accepted, in bytes per second: after a grace of 20 s a body
    /// must have come at least this fast, counting only the time spent waiting for the
    /// client; 0 turns the check off [default: 1024]
    #[arg(long)]
    pub min_body_rate: Option<u64>,
    /// Most bytes of upload bodies the node holds in memory at once, over all requests; an
    /// upload beyond it waits for room, and answers 503 SlowDown if none comes within
    /// 5 s [default: 536870912]
    #[arg(long)]
    pub max_buffered_bytes: Option<u64>,
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
    pub web_addr: SocketAddr,
    pub web_root_domain: Option<String>,
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
    pub admin_token: Option<String>,
    pub admin_token_file: PathBuf,
    pub metrics_token: Option<String>,
    pub tls: Option<TlsFiles>,
    pub shutdown_timeout_s: u64,
    pub limits: ConnectionLimits,
}

/// What one node spends on its clients at most (`--max-connections`, `--min-body-rate`,
/// `--max-buffered-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: u64,
    pub min_body_rate: u64,
    pub max_buffered_bytes: u64,
}

impl ConnectionLimits {
    fn from_args(args: &ServerArgs, block_size: u64, shards: u16) -> Result<Self, ConfigError> {
        let max_connections = args.max_connections.unwrap_or(4096);
        if max_connections == 0 {
            return Err(bad("max_connections", "must be at least 1"));
        }
        let max_buffered_bytes = args.max_buffered_bytes.unwrap_or(512 << 20);
        // Each shard has its share, and must have room for one upload's blocks at least.
        let least = crate::constants::UPLOAD_BLOCKS_BUFFERED * block_size * u64::from(shards);
        if max_buffered_bytes < least {
            return Err(bad(
                "max_buffered_bytes",
                format!("must be at least {least} (one upload's blocks in flight per shard)"),
            ));
        }
        Ok(ConnectionLimits {
            max_connections,
            min_body_rate: args.min_body_rate.unwrap_or(1024),
            max_buffered_bytes,
        })
    }
}

/// Where the TLS certificate chain and key are read from (at start and on SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
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
            web_addr: self.web_addr.or(file.web_addr),
            web_root_domain: self.web_root_domain.or(file.web_root_domain),
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
            admin_token: self.admin_token.or(file.admin_token),
            admin_token_file: self.admin_token_file.or(file.admin_token_file),
            metrics_token: self.metrics_token.or(file.metrics_token),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            shutdown_timeout_s: self.shutdown_timeout_s.or(file.shutdown_timeout_s),
            lifecycle_day_secs: self.lifecycle_day_secs.or(file.lifecycle_day_secs),
            lifecycle_scan_interval_s: self
                .lifecycle_scan_interval_s
                .or(file.lifecycle_scan_interval_s),
            max_connections: self.max_connections.or(file.max_connections),
            min_body_rate: self.min_body_rate.or(file.min_body_rate),
            max_buffered_bytes: self.max_buffered_bytes.or(file.max_buffered_bytes),
        }
    }

    /// Fills defaults and checks every value.
    pub fn validate(self, usable_cores: u16) -> Result<ServerConfig, ConfigError> {
        let shards = self.shards.unwrap_or(usable_cores.clamp(1, 256));
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
        let limits = ConnectionLimits::from_args(&self, block_size, shards)?;
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
        let tls = tls_files(self.tls_cert, self.tls_key)?;
        let shutdown_timeout_s = self.shutdown_timeout_s.unwrap_or(30);
        if shutdown_timeout_s > 24 * 3600 {
            return Err(bad("shutdown_timeout_s", "must be at most 86400 seconds"));
        }
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("granary-data"));
        Ok(ServerConfig {
            limits,
            admin_token: bearer_token("admin_token", self.admin_token)?,
            admin_token_file: self
                .admin_token_file
                .unwrap_or_else(|| data_dir.join(crate::constants::ADMIN_TOKEN_FILE)),
            metrics_token: bearer_token("metrics_token", self.metrics_token)?,
            tls,
            shutdown_timeout_s,
            data_dir,
            s3_addr: self
                .s3_addr
                .unwrap_or_else(|| "127.0.0.1:3900".parse().expect("literal")),
            admin_addr: self
                .admin_addr
                .unwrap_or_else(|| "127.0.0.1:3903".parse().expect("literal")),
            web_addr: self
                .web_addr
                .unwrap_or_else(|| "127.0.0.1:3902".parse().expect("literal")),
            web_root_domain: self.web_root_domain.filter(|d| !d.is_empty()),
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

/// Both TLS files, or neither.
fn tls_files(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad("tls_key", "is needed with tls_cert")),
        (None, Some(_)) => Err(bad("tls_cert", "is needed with tls_key")),
    }
}

/// A bearer token long enough not to be guessed, and printable.
fn bearer_token(key: &'static str, token: Option<String>) -> Result<Option<String>, ConfigError> {
    match token {
        Some(t) if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) => Err(bad(
            key,
            "must be at least 16 printable characters without spaces",
        )),
        other => Ok(other),
    }
}

impl ServerConfig {
    /// The effective configuration as a TOML file would give it (`--print-config`), with
    /// secrets masked. Feeding it back with `--config` gives the same configuration.
    pub fn to_toml(&self) -> String {
        use toml::Value;
        let mut t = toml::Table::new();
        let mut put = |key: &str, value: Value| {
            t.insert(key.to_string(), value);
        };
        let path = |p: &PathBuf| Value::String(p.display().to_string());
        let int = |n: u64| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        let masked = |v: &Option<String>| v.as_ref().map(|_| Value::String("********".into()));
        put("data_dir", path(&self.data_dir));
        put("s3_addr", Value::String(self.s3_addr.to_string()));
        put("admin_addr", Value::String(self.admin_addr.to_string()));
        put("web_addr", Value::String(self.web_addr.to_string()));
        if let Some(d) = &self.web_root_domain {
            put("web_root_domain", Value::String(d.clone()));
        }
        put("shards", int(u64::from(self.shards)));
        put("s3_region", Value::String(self.s3_region.clone()));
        if let Some(d) = &self.s3_root_domain {
            put("s3_root_domain", Value::String(d.clone()));
        }
        put("block_size", int(self.block_size));
        put("inline_threshold", int(self.inline_threshold));
        put("data_fsync", Value::String(self.data_fsync.to_string()));
        put(
            "metadata_fsync",
            Value::String(self.metadata_fsync.to_string()),
        );
        put("fsync_batch_bytes", int(self.fsync_batch_bytes));
        put("fsync_batch_delay_us", int(self.fsync_batch_delay_us));
        put("block_gc_delay_s", int(self.block_gc_delay_s));
        let log_format = match self.log_format {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        };
        put("log_format", Value::String(log_format.into()));
        if let Some(v) = masked(&self.admin_token) {
            put("admin_token", v);
        }
        put("admin_token_file", path(&self.admin_token_file));
        if let Some(v) = masked(&self.metrics_token) {
            put("metrics_token", v);
        }
        if let Some(tls) = &self.tls {
            put("tls_cert", path(&tls.cert));
            put("tls_key", path(&tls.key));
        }
        put("shutdown_timeout_s", int(self.shutdown_timeout_s));
        put("lifecycle_day_secs", int(self.lifecycle_day_secs));
        put(
            "lifecycle_scan_interval_s",
            int(self.lifecycle_scan_interval_s),
        );
        put("max_connections", int(self.limits.max_connections));
        put("min_body_rate", int(self.limits.min_body_rate));
        put("max_buffered_bytes", int(self.limits.max_buffered_bytes));
        toml::to_string(&t).expect("a TOML table serializes")
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
        assert_eq!(c.web_addr.to_string(), "127.0.0.1:3902");
        assert_eq!(c.web_root_domain, None);
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

    /// The long flags of `granary server`.
    fn flags() -> Vec<String> {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Probe {
            #[command(flatten)]
            args: ServerArgs,
        }
        Probe::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    }

    /// docs/configuration.md lists every flag and key of `granary server`.
    #[test]
    fn the_configuration_table_lists_every_setting() {
        let doc = include_str!("../docs/configuration.md");
        let flags = flags();
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
    fn printed_config_reads_back_and_masks_secrets() {
        let args = ServerArgs {
            shards: Some(3),
            data_fsync: Some("periodic:250".into()),
            admin_token: Some("0123456789abcdef-secret".into()),
            tls_cert: Some("/etc/granary/cert.pem".into()),
            tls_key: Some("/etc/granary/key.pem".into()),
            ..Default::default()
        };
        let config = args.validate(2).unwrap();
        let text = config.to_toml();
        assert!(!text.contains("0123456789abcdef-secret"), "{text}");
        assert!(text.contains("admin_token = \"********\""), "{text}");
        let back = ServerArgs::from_toml(&text).unwrap();
        assert_eq!(back.shards, Some(3));
        assert_eq!(back.data_fsync.as_deref(), Some("periodic:250"));
        let again = ServerArgs {
            admin_token: None,
            ..back
        }
        .validate(2)
        .unwrap();
        assert_eq!(again.tls, config.tls);
        assert_eq!(
            again.to_toml().replace("admin_token = \"********\"\n", ""),
            text.replace("admin_token = \"********\"\n", "")
        );
    }

    /// `--print-config` shows every setting (those without a default once they are set).
    #[test]
    fn printed_config_has_every_key() {
        let args = ServerArgs {
            s3_root_domain: Some("s3.example".into()),
            web_root_domain: Some("web.example".into()),
            admin_token: Some("0123456789abcdef".into()),
            metrics_token: Some("0123456789abcdef".into()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        let printed: toml::Table = toml::from_str(&args.validate(2).unwrap().to_toml()).unwrap();
        for flag in flags() {
            let key = flag.replace('-', "_");
            assert!(printed.contains_key(&key), "--print-config lacks {key}");
        }
    }

    #[test]
    fn tls_needs_both_files_and_tokens_must_be_long() {
        let args = ServerArgs {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert_eq!(args.validate(2).unwrap_err().key, "tls_key");
        let args = ServerArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        let e = args.validate(2).unwrap_err();
        assert_eq!(e.key, "admin_token");
        assert!(e.problem.contains("16"), "{}", e.problem);
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
