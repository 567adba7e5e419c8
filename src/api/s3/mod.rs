//! The S3 API: from a request to its S3 operation (`op`, parsed once), its dispatch
//! (`router`), and the operations.

pub mod access;
pub mod attributes;
pub mod bucket_config;
pub mod cors;
pub mod list;
pub mod multipart;
pub mod objects;
pub mod op;
pub mod part_copy;
pub mod post_object;
pub mod router;
