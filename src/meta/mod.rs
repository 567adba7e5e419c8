//! Metadata: the rows Granary keeps (pure types) and their order-preserving key encodings.
//! The LMDB store that persists them lives in `storage`.

pub mod crdt;
pub mod keys;
pub mod lifecycle;
pub mod placement;
pub mod types;
pub mod v1;
pub mod website;
