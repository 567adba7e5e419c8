//! Granary: a distributed, S3-compatible object store, thread-per-core on io_uring.
//!
//! Layering (enforced by review and `tests/tidy.rs`):
//! - sans-IO, pure: `http`, `s3` (sigv4, xml, error, checksum), `meta::keys`, `meta::types`,
//!   `storage::record`. These never import glommio or heed.
//! - I/O: `storage` (segments on glommio DmaFile, LMDB through heed), `runtime` (executors,
//!   mesh), `server` (connections, S3 operations), `gather` (batches from a channel).

pub mod api;
pub mod cli;
pub mod config;
pub mod constants;
pub mod gather;
pub mod http;
pub mod meta;
pub mod model;
pub mod node;
pub mod repair;
pub mod runtime;
pub mod s3;
pub mod storage;

#[cfg(test)]
mod robustness;
