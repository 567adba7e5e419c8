//! Granary: a distributed, S3-compatible object store, thread-per-core on io_uring.
//!
//! Layers, from the bottom (`tests/tidy.rs` checks the import rules and that no top-level
//! modules import each other in a circle; `docs/architecture.md` has the map):
//! - sans-IO, pure: `http` (knows no S3), `s3` (SigV4, XML, errors, checksums), `meta`
//!   (rows, key encodings, CRDT merges). None of them imports glommio or heed, nor any of
//!   the modules below.
//! - `cluster`: pure state machines of the cluster's decisions (quorums); like the three
//!   above it imports no glommio or heed, nor any module below.
//! - `rpc`: the sans-IO core of node-to-node RPC (frames, flow control, the handshake);
//!   it imports no handler, no storage, no S3 or HTTP and no heed.
//! - `storage`: the engine (segments on glommio DmaFile, LMDB through heed); knows no API,
//!   no handler and no runtime. `gather` (batches from a channel) and `constants` serve all.
//! - `runtime`: executors, the mesh, stop signals, heartbeats, port checks; knows no
//!   handler (`api`, `model`, `node`).
//! - `model`: bucket, key and object rules, the data operations shards ask of each other,
//!   and placement; knows no `api` and no `node`.
//! - `api`: S3 and admin handlers, websites, connections, TLS, metrics, MD5 lanes.
//! - `node`: wires runtime, model and api into a running node. `config`, `cli` and
//!   `repair` face the user; the `granary` binary calls `node` and `cli`.

pub mod api;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod constants;
pub mod gather;
pub mod http;
pub mod meta;
pub mod model;
pub mod node;
pub mod repair;
pub mod rpc;
pub mod runtime;
pub mod s3;
pub mod storage;

#[cfg(test)]
mod robustness;
