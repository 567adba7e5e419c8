//! The `granary` command: parse the command line, read the configuration, run.

use clap::{Parser, Subcommand};
use granary::cli::{AdminTarget, BucketCommand, KeyCommand, NodeCommand};
use granary::config::{LogFormat, ServerArgs, DEFAULT_CONFIG_PATH};

/// mimalloc instead of glibc's malloc: on small requests, where the server allocates and
/// frees many short strings and vectors, it took a quarter less server CPU per PUT
/// (`docs/bench/s3-end-to-end.md`, "Allocator"). Every `GlobalAlloc` frees from any
/// thread, which is all that `BlockBuf`'s `Send` needs of it (`src/storage/blockbuf.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "granary",
    version,
    about = "A distributed, S3-compatible object store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (with no configuration: a single local node, data in ./granary-data)
    Server {
        /// TOML configuration file [default: /etc/granary.toml when it exists]
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Print the effective configuration (TOML, secrets masked) and exit
        #[arg(long)]
        print_config: bool,
        // Boxed: the flags are many, the other commands small.
        #[command(flatten)]
        args: Box<ServerArgs>,
    },
    /// Manage access keys of a running node
    Key {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage buckets of a running node
    Bucket {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Status of a running node: identity, configuration, operator tasks
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Counters and storage figures of a running node, per shard
    Stats {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Start a full scrub (read and verify every block) on a running node
    Scrub {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Start block GC and segment compaction on a running node
    Gc {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Check (and repair) a stopped node's data directory
    Repair {
        #[command(subcommand)]
        command: RepairCommand,
    },
}

#[derive(Subcommand)]
enum RepairCommand {
    /// Compare every block's reference count with the references objects and upload parts
    /// hold (a crash between a block's write and its object's commit leaves a count too
    /// high: space never freed); exits 1 if a row names a block no shard stores
    Refcounts {
        /// Data directory of the stopped node
        #[arg(long, default_value = "granary-data")]
        data_dir: std::path::PathBuf,
        /// Set the counts to the references held (else only report)
        #[arg(long)]
        fix: bool,
    },
}

/// Errors reach the user as one line (with their causes), never as a backtrace.
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("granary: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server {
            config,
            print_config,
            args,
        } => {
            let file = match config {
                Some(path) => Some(path),
                None => Some(std::path::PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
            };
            let file_args = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                    ServerArgs::from_toml(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None => ServerArgs::default(),
            };
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u16;
            let config = (*args).overlay(file_args).validate(cores)?;
            if print_config {
                print!("{}", config.to_toml());
                return Ok(());
            }
            init_logging(config.log_format);
            granary::node::run(config)
        }
        Command::Key { target, command } => granary::cli::key(&target, command),
        Command::Bucket { target, command } => granary::cli::bucket(&target, command),
        Command::Status { target } => granary::cli::node(&target, NodeCommand::Status),
        Command::Stats { target } => granary::cli::node(&target, NodeCommand::Stats),
        Command::Scrub { target } => granary::cli::node(&target, NodeCommand::Scrub),
        Command::Gc { target } => granary::cli::node(&target, NodeCommand::Gc),
        Command::Repair {
            command: RepairCommand::Refcounts { data_dir, fix },
        } => {
            let report = granary::repair::refcounts(&data_dir, fix)?;
            print!("{}", granary::repair::describe(&report, fix));
            if !report.missing.is_empty() {
                anyhow::bail!("{} blocks are missing", report.missing.len());
            }
            Ok(())
        }
    }
}

/// Logs go to stderr, coloured only when it is a terminal: a file or journald gets no
/// escape codes.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRANARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
